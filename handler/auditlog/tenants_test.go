package auditlog

import (
	"strings"
	"testing"
)

// With a registry, a record goes to the tenant it names: its hint carries that tenant's id, and a
// record of a tenant outside the registry, or one that names no tenant, is skipped and counted.
func TestFilterRoutesByRegistryTenant(t *testing.T) {
	const third = "0c9e2b41-7a36-4d58-b1f0-e5d7a3c9b214"
	ofTenant := func(tenant string) string {
		return strings.ReplaceAll(rec(t, "ca-update-mfa-removed"), watchedTenant, tenant)
	}
	// The fixture names its tenant in tenantId, properties.tenantId and resourceId; all three go.
	noTenant := ofTenant("")
	f := Filter{
		TenantIDs:          []string{strings.ToUpper(watchedTenant), otherTenant},
		SelfPrincipalIDs:   []string{caguardSP, caguardApp},
		BreakGlassGroupIDs: []string{breakGlass},
	}
	// Distinct audit ids, so that the duplicate check does not hide a record.
	withID := func(r, id string) string {
		return strings.Replace(r, "IPCGraph_5a1e7f93-0c2d-4b8e-a6f1-3d9c2e7b0a45_Q7KZD_48213", id, 1)
	}
	res := mustDecode(t, stringBatch(envelope(
		withID(ofTenant(watchedTenant), "a1"),
		withID(ofTenant(strings.ToUpper(otherTenant)), "a2"),
		withID(ofTenant(third), "a3"),
		withID(noTenant, "a4"),
	)), f)
	if len(res.Hints) != 2 {
		t.Fatalf("got %d hints, want 2 (one per registry tenant): %+v", len(res.Hints), res.Hints)
	}
	if got := res.Hints[0].TenantID; got != watchedTenant {
		t.Errorf("first hint's tenant: got %q, want %q", got, watchedTenant)
	}
	if got := res.Hints[1].TenantID; got != otherTenant {
		t.Errorf("second hint's tenant: got %q, want %q (lower case, as the registry holds it)", got, otherTenant)
	}
	if got := res.Counts.Skipped[SkipOtherTenant]; got != 2 {
		t.Errorf("skipped as other tenant: got %d, want 2 (one outside the registry, one naming none)", got)
	}
	// With a single tenant, hints carry no tenant id, exactly as before the registry.
	single := mustDecode(t, stringBatch(envelope(ofTenant(watchedTenant))), watched())
	if len(single.Hints) != 1 || single.Hints[0].TenantID != "" {
		t.Errorf("single tenant: got %+v, want one hint without a tenant id", single.Hints)
	}
}
