package graphfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// GET /subscribedSkus answers the seeded subscribedSku objects ("List subscribedSkus", Graph v1.0):
// a collection in one page (the page documents no paging and supports only $select, which is
// honoured), each object as seeded, with an id made of the tenant id and its skuId when it has none,
// as Graph forms them. The documented least-privileged application permission is
// LicenseAssignment.Read.All; Organization.Read.All, Organization.ReadWrite.All, Directory.Read.All and
// Directory.ReadWrite.All also read it. Without one of them it answers 403 Authorization_RequestDenied,
// as directory reads do.

// Permissions that read subscribed SKUs.
const (
	PermLicenseAssignmentReadAll = "LicenseAssignment.Read.All"
	PermOrganizationReadAll      = "Organization.Read.All"
	PermOrganizationReadWriteAll = "Organization.ReadWrite.All"
	PermDirectoryReadWriteAll    = "Directory.ReadWrite.All"
)

// Service plans the emulator's SKUs carry ("Product names and service plan identifiers for
// licensing", Entra docs).
const (
	ServicePlanEntraIDP1 = "41781fb2-bc02-4b7c-bd55-b576c07bb09d" // AAD_PREMIUM
	ServicePlanEntraIDP2 = "eec0eb4f-6444-4f95-aba0-50c24d67f998" // AAD_PREMIUM_P2
)

// SKU is a subscribedSku with the given capabilityStatus (Enabled, Warning, Suspended, Deleted,
// LockedOut) and service plans, each "id:provisioningStatus" (Success, Disabled, PendingActivation,
// ...), for a scenario's subscribedSkus.
func SKU(partNumber, skuID, capabilityStatus string, plans ...string) json.RawMessage {
	type plan struct {
		ServicePlanID      string `json:"servicePlanId"`
		ServicePlanName    string `json:"servicePlanName"`
		ProvisioningStatus string `json:"provisioningStatus"`
		AppliesTo          string `json:"appliesTo"`
	}
	names := map[string]string{ServicePlanEntraIDP1: "AAD_PREMIUM", ServicePlanEntraIDP2: "AAD_PREMIUM_P2"}
	ps := []plan{}
	for _, p := range plans {
		id, status, _ := strings.Cut(p, ":")
		ps = append(ps, plan{ServicePlanID: id, ServicePlanName: names[id], ProvisioningStatus: status, AppliesTo: "User"})
	}
	return mustJSON(map[string]any{
		"skuId": skuID, "skuPartNumber": partNumber, "capabilityStatus": capabilityStatus, "appliesTo": "User",
		"consumedUnits": 1, "prepaidUnits": map[string]int{"enabled": 25, "lockedOut": 0, "suspended": 0, "warning": 0},
		"servicePlans": ps,
	})
}

// seedSkus copies a scenario's subscribed SKUs into the tenant.
func (t *tenant) seedSkus(sc Scenario) error {
	t.skus = nil
	for i, raw := range sc.SubscribedSkus {
		var o object
		if err := json.Unmarshal(raw, &o); err != nil || o == nil {
			return fmt.Errorf("seed subscribed sku %d: not a JSON object", i)
		}
		if o.str("id") == "" {
			o["id"] = mustJSON(t.id + "_" + o.str("skuId"))
		}
		t.skus = append(t.skus, o)
	}
	return nil
}

// SetSubscribedSkus replaces the tenant's subscriptions, as buying or cancelling one does.
func (s *Server) SetSubscribedSkus(skus ...json.RawMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenant.seedSkus(Scenario{SubscribedSkus: skus})
}

func (s *Server) listSubscribedSkus(w http.ResponseWriter, r *http.Request, c claims) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r)
		return
	}
	if !c.has(PermLicenseAssignmentReadAll, PermOrganizationReadAll, PermOrganizationReadWriteAll, PermDirectoryReadAll, PermDirectoryReadWriteAll) {
		writeError(w, r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	fields := selectFields(r)
	s.mu.Lock()
	items := make([]json.RawMessage, 0, len(s.tenant.skus))
	for _, o := range s.tenant.skus {
		items = append(items, project(o, fields).marshal())
	}
	ctx := s.root + "/v1.0/$metadata#subscribedSkus"
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": ctx, "value": items})
}
