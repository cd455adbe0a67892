package auditlog

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// brief is the part of a hint that the table tests compare.
type brief struct {
	Kind     Kind
	PolicyID string
	MemberID string
}

func briefs(hs []Hint) []brief {
	var out []brief
	for _, h := range hs {
		out = append(out, brief{h.Kind, h.PolicyID, h.MemberID})
	}
	return out
}

func skipped(kv ...any) map[string]int {
	if len(kv) == 0 {
		return nil
	}
	m := map[string]int{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1].(int)
	}
	return m
}

func TestDecodeBatch(t *testing.T) {
	r := func(name string) string { return rec(t, name) }
	noise := r("noise-update-user")
	caUpdate := brief{KindPolicyUpdated, managedPolicy, ""}
	selfByApp := strings.Replace(r("ca-add"), `{"key":"Category","value":"Conditional Access"}`,
		`{"key":"Category","value":"Conditional Access"},{"key":"AppId","value":"`+caguardApp+`"}`, 1)
	otherTenantUpdate := strings.ReplaceAll(r("ca-update-mfa-removed"), watchedTenant, otherTenant)

	tests := []struct {
		name   string
		events []string // event bodies; each row runs as a string batch and, if valid JSON, an object batch
		// stringsOnly keeps a row out of the object form, where a string element means something else.
		stringsOnly bool
		filter      *Filter // nil: watched()
		want        Counts
		hints       []brief
	}{
		{
			name:   "a conditional access update is relevant",
			events: []string{envelope(r("ca-update-mfa-removed"))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{caUpdate},
		},
		{
			name:   "the core directory companion of a change is counted once, as a companion",
			events: []string{envelope(r("ca-update-companion"), r("ca-update-mfa-removed"))},
			want:   Counts{Events: 1, Records: 2, Relevant: 1, Skipped: skipped(SkipCompanionRecord, 1)},
			hints:  []brief{caUpdate},
		},
		{
			name:   "a companion in an event of its own is still counted as a companion",
			events: []string{envelope(r("ca-update-companion")), envelope(r("ca-update-mfa-removed"))},
			want:   Counts{Events: 2, Records: 2, Relevant: 1, Skipped: skipped(SkipCompanionRecord, 1)},
			hints:  []brief{caUpdate},
		},
		{
			name:   "an add with a null oldValue is relevant",
			events: []string{envelope(r("ca-add"))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{{KindPolicyAdded, managedPolicy, ""}},
		},
		{
			name:   "a delete with a null newValue is relevant",
			events: []string{envelope(r("ca-delete"))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{{KindPolicyDeleted, managedPolicy, ""}},
		},
		{
			name:   "a change by caguard's own service principal is skipped",
			events: []string{envelope(strings.ReplaceAll(r("ca-add"), pipelineSP, caguardSP))},
			want:   Counts{Events: 1, Records: 1, Skipped: skipped(SkipSelfInitiated, 1)},
		},
		{
			name:   "a change by caguard's app id, named in additionalDetails, is skipped",
			events: []string{envelope(selfByApp)},
			want:   Counts{Events: 1, Records: 1, Skipped: skipped(SkipSelfInitiated, 1)},
		},
		{
			name:   "caguard's ids are compared ignoring case",
			events: []string{envelope(strings.ReplaceAll(r("ca-add"), pipelineSP, strings.ToUpper(caguardSP)))},
			want:   Counts{Events: 1, Records: 1, Skipped: skipped(SkipSelfInitiated, 1)},
		},
		{
			name:   "a change in another tenant is skipped",
			events: []string{envelope(otherTenantUpdate)},
			want:   Counts{Events: 1, Records: 1, Skipped: skipped(SkipOtherTenant, 1)},
		},
		{
			name:   "with no tenant configured every tenant is watched",
			events: []string{envelope(otherTenantUpdate)},
			filter: &Filter{},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{caUpdate},
		},
		{
			name:   "the tenant is read from resourceId when tenantId is absent",
			events: []string{envelope(r("ca-update-2019-shape"))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{caUpdate},
		},
		{
			name:   "a tenant read from resourceId can be another tenant",
			events: []string{envelope(strings.ReplaceAll(r("ca-update-2019-shape"), watchedTenant, otherTenant))},
			want:   Counts{Events: 1, Records: 1, Skipped: skipped(SkipOtherTenant, 1)},
		},
		{
			name:   "a failed operation is skipped",
			events: []string{envelope(r("ca-update-failed"))},
			want:   Counts{Events: 1, Records: 1, Skipped: skipped(SkipFailedOperation, 1)},
		},
		{
			name:   "a timed-out operation is skipped",
			events: []string{envelope(strings.Replace(r("ca-update-failed"), `"result":"failure"`, `"result":"Timeout"`, 1))},
			want:   Counts{Events: 1, Records: 1, Skipped: skipped(SkipFailedOperation, 1)},
		},
		{
			name:   "a record without a result is not known to have failed",
			events: []string{envelope(strings.Replace(r("ca-update-failed"), `"result":"failure",`, ``, 1))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{caUpdate},
		},
		{
			name:   "a member added to a break-glass group is relevant",
			events: []string{envelope(r("group-add-member"))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{{KindBreakGlassMembership, breakGlass, contractorUser}},
		},
		{
			name:   "a member removed from a break-glass group is relevant",
			events: []string{envelope(r("group-remove-member"))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{{KindBreakGlassMembership, breakGlass, contractorUser}},
		},
		{
			name:   "a break-glass group id is matched ignoring case",
			events: []string{envelope(strings.ReplaceAll(r("group-add-member"), breakGlass, strings.ToUpper(breakGlass)))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{{KindBreakGlassMembership, strings.ToUpper(breakGlass), contractorUser}},
		},
		{
			name:   "a break-glass group named only in Group.ObjectID is found",
			events: []string{envelope(strings.Replace(r("group-add-member"), `"id":"`+breakGlass+`"`, `"id":null`, 1))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{{KindBreakGlassMembership, breakGlass, contractorUser}},
		},
		{
			name:   "membership of another group is noise",
			events: []string{envelope(strings.ReplaceAll(r("group-add-member"), breakGlass, otherGroup))},
			want:   Counts{Events: 1, Records: 1},
		},
		{
			name:   "membership is noise when no break-glass group is configured",
			events: []string{envelope(r("group-add-member"))},
			filter: &Filter{TenantID: watchedTenant},
			want:   Counts{Events: 1, Records: 1},
		},
		{
			name:   "removing an owner of a break-glass group is noise",
			events: []string{envelope(r("noise-remove-owner"))},
			want:   Counts{Events: 1, Records: 1},
		},
		{
			name:   "a named location change is relevant",
			events: []string{envelope(r("named-location-update"))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{{KindNamedLocation, "41b7e0c9-6f2a-4d13-8e5b-c9a2f7d06b34", ""}},
		},
		{
			name:   "an authentication strength change is relevant",
			events: []string{envelope(r("auth-strength-update"))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{{KindAuthenticationStrength, "0b5d8e3f-c72a-4196-b4e1-3a6f9d0c8e52", ""}},
		},
		{
			name:   "a security defaults change is relevant",
			events: []string{envelope(r("security-defaults-update"))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{{KindSecurityDefaults, "00000000-0000-0000-0000-000000000000", ""}},
		},
		{
			name:   "noise is counted as records and nothing else",
			events: []string{envelope(r("noise-update-user"), r("noise-security-info")), envelope(r("noise-change-password"), r("noise-update-sp"), r("noise-remove-owner"))},
			want:   Counts{Events: 2, Records: 5},
		},
		{
			name:   "noise beside a change in one event is counted too",
			events: []string{envelope(noise, r("ca-delete"), noise)},
			want:   Counts{Events: 1, Records: 3, Relevant: 1},
			hints:  []brief{{KindPolicyDeleted, managedPolicy, ""}},
		},
		{
			name:   "a bare record without an envelope is read as one record",
			events: []string{r("ca-update-mfa-removed"), r("noise-update-sp")},
			want:   Counts{Events: 2, Records: 2, Relevant: 1},
			hints:  []brief{caUpdate},
		},
		{
			name:   "the same record delivered twice gives one hint",
			events: []string{envelope(r("ca-update-mfa-removed")), envelope(r("ca-update-mfa-removed"))},
			want:   Counts{Events: 2, Records: 2, Relevant: 1, Skipped: skipped(SkipDuplicate, 1)},
			hints:  []brief{caUpdate},
		},
		{
			name:   "a record of another log category is noise",
			events: []string{envelope(strings.Replace(r("ca-update-mfa-removed"), `"category":"AuditLogs"`, `"category":"SignInLogs"`, 1))},
			want:   Counts{Events: 1, Records: 1},
		},
		{
			name:   "Level and durationMs as strings are tolerated",
			events: []string{envelope(strings.NewReplacer(`"Level":4`, `"Level":"4"`, `"durationMs":0`, `"durationMs":"0"`).Replace(r("ca-update-mfa-removed")))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{caUpdate},
		},
		{
			name:   "a field of an unexpected type does not lose the record",
			events: []string{envelope(strings.Replace(r("ca-update-mfa-removed"), `"correlationId":"5a1e7f93-0c2d-4b8e-a6f1-3d9c2e7b0a45","Level"`, `"correlationId":42,"Level"`, 1))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{caUpdate},
		},
		{
			name:   "an activity name in capitals is relevant",
			events: []string{envelope(strings.ReplaceAll(r("ca-update-mfa-removed"), "Update conditional access policy", "UPDATE CONDITIONAL ACCESS POLICY"))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{caUpdate},
		},
		{
			name:   "an activity name with an escaped space is relevant",
			events: []string{envelope(strings.ReplaceAll(r("ca-update-mfa-removed"), "Update conditional access policy", `Update conditional access\u0020policy`))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{caUpdate},
		},
		{
			name:   "an activity name found only in operationName is relevant",
			events: []string{envelope(strings.Replace(r("ca-update-mfa-removed"), `"activityDisplayName":"Update conditional access policy"`, `"activityDisplayName":null`, 1))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{caUpdate},
		},
		{
			name: "an empty batch is fine",
			want: Counts{},
		},

		// Bad input never fails the batch.
		{
			name:   "an event that is not JSON is skipped and its neighbours still count",
			events: []string{envelope(r("ca-add")), "this is not json", envelope(r("ca-delete"))},
			want:   Counts{Events: 3, Records: 2, Relevant: 2, Skipped: skipped(SkipEventNotJSON, 1)},
			hints:  []brief{{KindPolicyAdded, managedPolicy, ""}, {KindPolicyDeleted, managedPolicy, ""}},
		},
		{
			name:   "a truncated event is skipped",
			events: []string{envelope(r("ca-add"))[:1500], envelope(r("ca-delete"))},
			want:   Counts{Events: 2, Records: 1, Relevant: 1, Skipped: skipped(SkipEventTruncated, 1)},
			hints:  []brief{{KindPolicyDeleted, managedPolicy, ""}},
		},
		{
			name:   "a truncated noise event is skipped without being decoded",
			events: []string{noiseEvent(t, 0, 3000)[:2500]},
			want:   Counts{Events: 1, Skipped: skipped(SkipEventTruncated, 1)},
		},
		{
			name:   "a relevant-looking event with a grammar error is not JSON",
			events: []string{strings.Replace(envelope(r("ca-add")), `"category":"AuditLogs",`, `"category" "AuditLogs",`, 1), envelope(r("ca-delete"))},
			want:   Counts{Events: 2, Records: 1, Relevant: 1, Skipped: skipped(SkipEventNotJSON, 1)},
			hints:  []brief{{KindPolicyDeleted, managedPolicy, ""}},
		},
		{
			// The documented price of the pre-filter: a noise event is never decoded, so a grammar
			// error inside it goes unseen. No hint can be lost that way.
			name:   "a noise event with a grammar error inside is counted as noise",
			events: []string{strings.Replace(envelope(noise), `"category":"AuditLogs",`, `"category" "AuditLogs",`, 1)},
			want:   Counts{Events: 1, Records: 1},
		},
		{
			name:   "records that is a string, a number, an object or null is not an array",
			events: []string{`{"records":"` + strings.Repeat("x", 10) + `"}`, `{"records":42}`, `{"records":{"time":"x"}}`, `{"records":null}`, envelope(r("ca-delete"))},
			want:   Counts{Events: 5, Records: 1, Relevant: 1, Skipped: skipped(SkipRecordsNotArray, 4)},
			hints:  []brief{{KindPolicyDeleted, managedPolicy, ""}},
		},
		{
			name:   "a record that is not an object is skipped and its neighbours still count",
			events: []string{envelope("42", r("ca-add"), `"text"`, "null", "[]"), envelope("7", noise)},
			want:   Counts{Events: 2, Records: 7, Relevant: 1, Skipped: skipped(SkipRecordNotObject, 5)},
			hints:  []brief{{KindPolicyAdded, managedPolicy, ""}},
		},
		{
			name:        "an event that is JSON but not an object is skipped",
			events:      []string{`42`, `[1,2]`, `"a string"`, `null`, envelope(r("ca-add"))},
			stringsOnly: true,
			want:        Counts{Events: 5, Records: 1, Relevant: 1, Skipped: skipped(SkipEventNotObject, 4)},
			hints:       []brief{{KindPolicyAdded, managedPolicy, ""}},
		},
		{
			name:   "an oversized event is skipped and its neighbours still count",
			events: []string{envelope(r("ca-add"), `{"pad":"`+strings.Repeat("a", maxEventBytes)+`"}`), envelope(r("ca-delete"))},
			want:   Counts{Events: 2, Records: 1, Relevant: 1, Skipped: skipped(SkipOversizedEvent, 1)},
			hints:  []brief{{KindPolicyDeleted, managedPolicy, ""}},
		},
		{
			name:   "an empty event is not JSON",
			events: []string{"", "   ", envelope(r("ca-add"))},
			want:   Counts{Events: 3, Records: 1, Relevant: 1, Skipped: skipped(SkipEventNotJSON, 2)},
			hints:  []brief{{KindPolicyAdded, managedPolicy, ""}},
		},
		{
			name:   "text after the envelope makes the event not JSON",
			events: []string{envelope(noise) + `{}`, envelope(r("ca-add")) + "x"},
			want:   Counts{Events: 2, Skipped: skipped(SkipEventNotJSON, 2)},
		},
		{
			name:   "a byte order mark before the envelope is tolerated",
			events: []string{"\ufeff" + envelope(r("ca-add"))},
			want:   Counts{Events: 1, Records: 1, Relevant: 1},
			hints:  []brief{{KindPolicyAdded, managedPolicy, ""}},
		},
	}
	for _, tt := range tests {
		f := watched()
		if tt.filter != nil {
			f = *tt.filter
		}
		forms := map[string]string{"as strings": stringBatch(tt.events...)}
		if !tt.stringsOnly && allValid(tt.events) {
			forms["as objects"] = objectBatch(tt.events...)
		}
		for form, batch := range forms {
			t.Run(tt.name+"/"+form, func(t *testing.T) {
				res := mustDecode(t, batch, f)
				if !reflect.DeepEqual(res.Counts, tt.want) {
					t.Errorf("counts: got %+v, want %+v", res.Counts, tt.want)
				}
				if got := briefs(res.Hints); !reflect.DeepEqual(got, tt.hints) {
					t.Errorf("hints: got %+v, want %+v", got, tt.hints)
				}
				if res.Reconcile != (len(tt.hints) > 0) {
					t.Errorf("reconcile: got %v, want %v", res.Reconcile, len(tt.hints) > 0)
				}
			})
		}
	}
}

func allValid(events []string) bool {
	for _, e := range events {
		if strings.HasPrefix(e, "\ufeff") || !json.Valid([]byte(e)) {
			return false
		}
	}
	return true
}

func TestDecodeBatchHintFields(t *testing.T) {
	t.Run("an update that removed mfa carries both policy documents", func(t *testing.T) {
		res := mustDecode(t, stringBatch(envelope(rec(t, "ca-update-mfa-removed"))), watched())
		if len(res.Hints) != 1 {
			t.Fatalf("hints: got %d, want 1", len(res.Hints))
		}
		h := res.Hints[0]
		type doc struct {
			ID            string          `json:"id"`
			State         string          `json:"state"`
			GrantControls json.RawMessage `json:"grantControls"`
		}
		var old, new doc
		if err := json.Unmarshal(h.OldValue, &old); err != nil {
			t.Fatalf("oldValue is not the policy document: %v (%s)", err, h.OldValue)
		}
		if err := json.Unmarshal(h.NewValue, &new); err != nil {
			t.Fatalf("newValue is not the policy document: %v (%s)", err, h.NewValue)
		}
		if old.ID != managedPolicy || new.ID != managedPolicy {
			t.Errorf("document ids: got %q and %q, want %q", old.ID, new.ID, managedPolicy)
		}
		if !strings.Contains(string(old.GrantControls), `"mfa"`) {
			t.Errorf("old grantControls: got %s, want mfa", old.GrantControls)
		}
		if new.GrantControls != nil {
			t.Errorf("new grantControls: got %s, want none (mfa removed)", new.GrantControls)
		}
		want := Hint{
			Kind: KindPolicyUpdated, Activity: "Update conditional access policy",
			AuditID:  "IPCGraph_5a1e7f93-0c2d-4b8e-a6f1-3d9c2e7b0a45_Q7KZD_48213",
			PolicyID: managedPolicy, PolicyName: "CIS - Require MFA for Azure management",
			Actor: Actor{UserID: adminUser, UserPrincipalName: "grace.admin@contoso-lab.example", IPAddress: "203.0.113.24"},
			Time:  time.Date(2025, 6, 3, 14, 22, 41, 331820700, time.UTC), CorrelationID: "5a1e7f93-0c2d-4b8e-a6f1-3d9c2e7b0a45",
			Result: "success", OldValue: h.OldValue, NewValue: h.NewValue,
		}
		if !reflect.DeepEqual(h, want) {
			t.Errorf("hint:\n got %+v\nwant %+v", h, want)
		}
	})
	t.Run("an add has no old document and a new one", func(t *testing.T) {
		h := mustDecode(t, stringBatch(envelope(rec(t, "ca-add"))), watched()).Hints[0]
		if h.OldValue != nil || !strings.Contains(string(h.NewValue), `"enabledForReportingButNotEnforced"`) {
			t.Errorf("got old %s new %s, want no old and the report-only new policy", h.OldValue, h.NewValue)
		}
	})
	t.Run("a delete has an old document and no new one", func(t *testing.T) {
		h := mustDecode(t, stringBatch(envelope(rec(t, "ca-delete"))), watched()).Hints[0]
		if h.NewValue != nil || !strings.Contains(string(h.OldValue), managedPolicy) {
			t.Errorf("got old %s new %s, want the old policy and no new", h.OldValue, h.NewValue)
		}
	})
	t.Run("an app with a null appId is named by its service principal", func(t *testing.T) {
		h := mustDecode(t, stringBatch(envelope(rec(t, "ca-add"))), watched()).Hints[0]
		want := Actor{ServicePrincipalID: pipelineSP, DisplayName: "Terraform Pipeline", IPAddress: "198.51.100.7"}
		if h.Actor != want {
			t.Errorf("actor: got %+v, want %+v", h.Actor, want)
		}
	})
	t.Run("values that are not JSON leave the documents nil but keep the hint", func(t *testing.T) {
		res := mustDecode(t, stringBatch(envelope(rec(t, "ca-update-2019-shape"))), watched())
		if len(res.Hints) != 1 || res.Hints[0].OldValue != nil || res.Hints[0].NewValue != nil {
			t.Fatalf("got %+v, want one hint without documents", res.Hints)
		}
		if got, want := res.Hints[0].Actor.IPAddress, ""; got != want {
			t.Errorf("ip address without callerIpAddress: got %q, want %q", got, want)
		}
	})
	t.Run("an oversized policy document is dropped and counted but the hint kept", func(t *testing.T) {
		big := `{\"id\":\"` + managedPolicy + `\",\"pad\":\"` + strings.Repeat("p", maxPolicyBytes) + `\"}`
		r := strings.Replace(rec(t, "ca-delete"), `"newValue":null`, `"newValue":"`+big+`"`, 1)
		res := mustDecode(t, stringBatch(envelope(r)), watched())
		if len(res.Hints) != 1 || res.Hints[0].NewValue != nil || res.Hints[0].OldValue == nil {
			t.Fatalf("got %d hints, want one with old and without new", len(res.Hints))
		}
		if got := res.Counts.Skipped[SkipOversizedField]; got != 1 {
			t.Errorf("oversized fields: got %d, want 1", got)
		}
	})
	t.Run("an oversized name is dropped and counted but the hint kept", func(t *testing.T) {
		r := strings.Replace(rec(t, "ca-delete"), `"displayName":"CIS - Require MFA for Azure management","type"`,
			`"displayName":"`+strings.Repeat("n", maxNameBytes+1)+`","type"`, 1)
		res := mustDecode(t, stringBatch(envelope(r)), watched())
		if len(res.Hints) != 1 || res.Hints[0].PolicyName != "" || res.Counts.Skipped[SkipOversizedField] != 1 {
			t.Fatalf("got %d hints, counts %+v; want one hint without a name and one oversized field", len(res.Hints), res.Counts)
		}
	})
	t.Run("a membership hint names the group and the member", func(t *testing.T) {
		h := mustDecode(t, stringBatch(envelope(rec(t, "group-remove-member"))), watched()).Hints[0]
		if h.PolicyID != breakGlass || h.PolicyName != "BreakGlass-Exclusions" ||
			h.MemberID != contractorUser || h.MemberName != "mallory.contractor@contoso-lab.example" {
			t.Errorf("got group %q %q member %q %q", h.PolicyID, h.PolicyName, h.MemberID, h.MemberName)
		}
		if h.OldValue != nil || h.NewValue != nil {
			t.Errorf("membership documents: got %s %s, want none", h.OldValue, h.NewValue)
		}
	})
	t.Run("an authentication strength hint carries the property holding an object", func(t *testing.T) {
		h := mustDecode(t, stringBatch(envelope(rec(t, "auth-strength-update"))), watched()).Hints[0]
		if !strings.Contains(string(h.NewValue), `"sms"`) || strings.Contains(string(h.OldValue), `"sms"`) {
			t.Errorf("got old %s new %s, want sms added", h.OldValue, h.NewValue)
		}
	})
}

func TestClassifyActivity(t *testing.T) {
	tests := []struct {
		activity, operationType string
		kind                    Kind
		class                   class
	}{
		{"Add conditional access policy", "Add", KindPolicyAdded, classRelevant},
		{"Update conditional access policy", "Update", KindPolicyUpdated, classRelevant},
		{"Delete conditional access policy", "Delete", KindPolicyDeleted, classRelevant},
		{"Add Conditional Access policy", "", KindPolicyAdded, classRelevant},
		{"update CONDITIONAL ACCESS POLICY", "", KindPolicyUpdated, classRelevant},
		{"Hard delete conditional access policy", "Delete", KindPolicyDeleted, classRelevant},
		{"Restore conditional access policy", "Update", KindPolicyUpdated, classRelevant},
		{"Add named location", "Add", KindNamedLocation, classRelevant},
		{"Delete Named Location", "", KindNamedLocation, classRelevant},
		{"Authentication Strength Policy Create", "Add", KindAuthenticationStrength, classRelevant},
		{"Authentication Strength Combination Configuration Update", "Update", KindAuthenticationStrength, classRelevant},
		{"Update security defaults", "Update", KindSecurityDefaults, classRelevant},
		{"Add policy", "Add", "", classCompanion},
		{"UPDATE POLICY", "Update", "", classCompanion},
		{"Delete policy", "Delete", "", classCompanion},
		{"Add member to group", "Assign", KindBreakGlassMembership, classMembership},
		{"Remove member from group", "Unassign", KindBreakGlassMembership, classMembership},
		{"Add eligible member to group in PIM completed (permanent)", "", KindBreakGlassMembership, classMembership},
		{"Remove owner from group", "Unassign", "", classNoise},
		{"Added policy", "Add", "", classNoise},
		{"Update user", "Update", "", classNoise},
		{"Add AuthenticationContextClassReference", "Add", "", classNoise},
		// Unicode case folding would match these; the pre-filter could not see them, so neither may the classifier.
		{"Update \u212aonditional access policy", "", "", classNoise},
		{"Update ſecurity defaults", "", "", classNoise},
	}
	for _, tt := range tests {
		t.Run(tt.activity, func(t *testing.T) {
			kind, cl := classifyActivity(tt.activity, tt.operationType)
			if kind != tt.kind || cl != tt.class {
				t.Errorf("got %q/%d, want %q/%d", kind, cl, tt.kind, tt.class)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2007, 1, 9, 9, 41, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2007-01-09T09:41:00Z", want},
		{"2007-01-09T09:41:00.6816663Z", want.Add(681666300)},
		{"2007-01-09T09:41:00.535404056Z", want.Add(535404056)},
		{"2007-01-09T09:41:00.992099+00:00", want.Add(992099000)},
		{"2007-01-09T11:41:00+02:00", want},
		{"2007-01-09T09:41:00", want},
		{"2007-01-09 09:41:00.049661100", want.Add(49661100)},
		{"1/9/2007 9:41:00 AM", want},
		{"01/09/2007 09:41:00 AM", want},
		{"1/9/2007 10:41:00 AM +01:00", want},
		{"01/09/2007 09:41:00", want},
		{"not a time", time.Time{}},
		{"", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := parseTime(tt.in); !got.Equal(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("activityDateTime is used when time does not parse", func(t *testing.T) {
		if got := parseTime("garbage", "2007-01-09T09:41:00+00:00"); !got.Equal(want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
}

// TestDecodeBatchMixed is a realistic batch: 100 events, mostly noise, a few changes and filtered
// records among them.
func TestDecodeBatchMixed(t *testing.T) {
	events, want := mixedBatch(t)
	for form, batch := range map[string]string{"as strings": stringBatch(events...), "as objects": objectBatch(events...)} {
		t.Run("a mixed batch of 100 events is counted exactly/"+form, func(t *testing.T) {
			res := mustDecode(t, batch, watched())
			if !reflect.DeepEqual(res.Counts, want) {
				t.Errorf("counts: got %+v, want %+v", res.Counts, want)
			}
			wantHints := []brief{
				{KindPolicyUpdated, managedPolicy, ""},
				{KindBreakGlassMembership, breakGlass, contractorUser},
				{KindNamedLocation, "41b7e0c9-6f2a-4d13-8e5b-c9a2f7d06b34", ""},
			}
			if got := briefs(res.Hints); !reflect.DeepEqual(got, wantHints) {
				t.Errorf("hints: got %+v, want %+v", got, wantHints)
			}
			if !res.Reconcile {
				t.Error("reconcile: got false, want true")
			}
			const line = "events=100 records=294 relevant=3 reconcile=true skipped=[companion-record=1 other-tenant=1 self-initiated=1 failed-operation=1 duplicate=1]"
			if got := res.LogLine(); got != line {
				t.Errorf("log line:\n got %s\nwant %s", got, line)
			}
		})
	}
}

// mixedBatch returns 100 events (94 of three noise records each) and the counts they must produce.
func mixedBatch(t testing.TB) ([]string, Counts) {
	r := func(name string) string { return rec(t, name) }
	noise := func(i int) string { return r(noiseNames[i%len(noiseNames)]) }
	special := map[int]string{
		7:  envelope(r("ca-update-mfa-removed"), r("ca-update-companion"), noise(1)),
		23: envelope(strings.ReplaceAll(r("ca-delete"), watchedTenant, otherTenant), noise(2)),
		41: envelope(strings.ReplaceAll(r("ca-add"), pipelineSP, caguardSP)),
		58: envelope(r("group-add-member"), noise(3), noise(4)),
		76: envelope(r("ca-update-failed")),
		93: envelope(r("named-location-update"), r("ca-update-mfa-removed")),
	}
	var events []string
	for i := range 100 {
		if e, ok := special[i]; ok {
			events = append(events, e)
			continue
		}
		events = append(events, envelope(noise(i), noise(i+1), noise(i+2)))
	}
	return events, Counts{
		Events: 100, Records: 94*3 + 3 + 2 + 1 + 3 + 1 + 2, Relevant: 3,
		Skipped: skipped(SkipCompanionRecord, 1, SkipOtherTenant, 1, SkipSelfInitiated, 1, SkipFailedOperation, 1, SkipDuplicate, 1),
	}
}

func TestDecodeBatchArrayLevel(t *testing.T) {
	ca := envelope(rec(t, "ca-add"))
	caString := stringBatch(ca)
	tests := []struct {
		name  string
		batch string
		want  Counts
		hints int
	}{
		{"strings and objects may be mixed", "[" + caString[1:len(caString)-1] + "," + envelope(rec(t, "ca-delete")) + "]",
			Counts{Events: 2, Records: 2, Relevant: 2}, 2},
		{"whitespace around elements is fine", " [ " + caString[1:len(caString)-1] + " ,\n\t" + envelope(rec(t, "noise-update-sp")) + " ] ",
			Counts{Events: 2, Records: 2, Relevant: 1}, 1},
		{"a batch cut off mid-array keeps what came before", caString[:len(caString)-1] + `,"{\"records\":[`,
			Counts{Events: 1, Records: 1, Relevant: 1, Skipped: skipped(SkipBatchTruncated, 1)}, 1},
		{"a batch cut off between elements keeps what came before", caString[:len(caString)-1] + `,`,
			Counts{Events: 1, Records: 1, Relevant: 1, Skipped: skipped(SkipBatchTruncated, 1)}, 1},
		{"a missing comma stops the batch", caString[:len(caString)-1] + ` "{}"]`,
			Counts{Events: 1, Records: 1, Relevant: 1, Skipped: skipped(SkipBatchMalformed, 1)}, 1},
		{"a trailing comma stops the batch", caString[:len(caString)-1] + `,]`,
			Counts{Events: 1, Records: 1, Relevant: 1, Skipped: skipped(SkipBatchMalformed, 1)}, 1},
		{"mismatched brackets stop the batch", `[{"records":[}]`,
			Counts{Skipped: skipped(SkipBatchMalformed, 1)}, 0},
		{"a stray word is an event that is not JSON", "[nope," + caString[1:],
			Counts{Events: 2, Records: 1, Relevant: 1, Skipped: skipped(SkipEventNotJSON, 1)}, 1},
		{"a bad escape makes an event that is not JSON", `["{\"records\":\q[]}",` + caString[1:],
			Counts{Events: 2, Records: 1, Relevant: 1, Skipped: skipped(SkipEventNotJSON, 1)}, 1},
		{"numbers, literals and arrays are not event bodies", "[1,true,null,[1,{}]," + caString[1:],
			Counts{Events: 5, Records: 1, Relevant: 1, Skipped: skipped(SkipEventNotObject, 4)}, 1},
		{"an oversized string element is read past", `["` + strings.Repeat(`\"`, maxEventBytes+1) + `",` + caString[1:],
			Counts{Events: 2, Records: 1, Relevant: 1, Skipped: skipped(SkipOversizedEvent, 1)}, 1},
		{"an oversized object element is read past", `[{"records":["` + strings.Repeat(`a`, maxEventBytes) + `"]},` + caString[1:],
			Counts{Events: 2, Records: 1, Relevant: 1, Skipped: skipped(SkipOversizedEvent, 1)}, 1},
		{"text after the array is ignored", caString + "garbage",
			Counts{Events: 1, Records: 1, Relevant: 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := mustDecode(t, tt.batch, watched())
			if !reflect.DeepEqual(res.Counts, tt.want) {
				t.Errorf("counts: got %+v, want %+v", res.Counts, tt.want)
			}
			if len(res.Hints) != tt.hints {
				t.Errorf("hints: got %d, want %d", len(res.Hints), tt.hints)
			}
		})
	}
}

func TestDecodeBatchNotAnArray(t *testing.T) {
	for _, batch := range []string{"", "   ", `{"records":[]}`, `"[]"`, "null", "42", "x"} {
		t.Run("the batch "+strconvQuote(batch)+" is an error", func(t *testing.T) {
			res, err := DecodeBatch(strings.NewReader(batch), watched())
			if err == nil {
				t.Fatalf("got no error and %+v, want an error", res.Counts)
			}
			if !errors.Is(err, errNotArray) {
				t.Errorf("error: got %v, want it to wrap %v", err, errNotArray)
			}
		})
	}
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// failingReader fails every read.
type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestDecodeBatchReadError(t *testing.T) {
	full := stringBatch(envelope(rec(t, "ca-add")), envelope(rec(t, "ca-delete")))
	boom := errors.New("connection reset")
	cut := strings.Index(full, `","`) + 2 // after the first element
	res, err := DecodeBatch(io.MultiReader(strings.NewReader(full[:cut]), failingReader{boom}), watched())
	if !errors.Is(err, boom) {
		t.Fatalf("error: got %v, want it to wrap %v", err, boom)
	}
	if res.Counts.Events != 1 || len(res.Hints) != 1 || !res.Reconcile {
		t.Errorf("got %s, want the first event decoded", res.LogLine())
	}
}

func TestDecodeBatchOneByteReads(t *testing.T) {
	events, want := mixedBatch(t)
	for form, batch := range map[string]string{"as strings": stringBatch(events...), "as objects": objectBatch(events...)} {
		t.Run("a batch read one byte at a time decodes the same/"+form, func(t *testing.T) {
			res, err := DecodeBatch(iotest.OneByteReader(strings.NewReader(batch)), watched())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Counts, want) {
				t.Errorf("counts: got %+v, want %+v", res.Counts, want)
			}
		})
	}
}

func TestLogLine(t *testing.T) {
	tests := []struct {
		name string
		res  Result
		want string
	}{
		{"an empty result states zeros", Result{}, "events=0 records=0 relevant=0 reconcile=false skipped=[]"},
		{"skip reasons come in pipeline order, unknown ones last and sorted",
			Result{Counts: Counts{Events: 3, Records: 9, Relevant: 1, Skipped: map[string]int{
				"zeta": 1, SkipSelfInitiated: 2, SkipEventNotJSON: 1, "alpha": 4, SkipOtherTenant: 0}}, Reconcile: true},
			"events=3 records=9 relevant=1 reconcile=true skipped=[event-not-json=1 self-initiated=2 alpha=4 zeta=1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.res.LogLine(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestGoldenHints pins the full hints of a batch holding every kind of change. Run with -update
// to rewrite testdata/golden/hints.json after a deliberate change.
func TestGoldenHints(t *testing.T) {
	var events []string
	for _, name := range relevantNames {
		events = append(events, envelope(rec(t, name)))
	}
	res := mustDecode(t, stringBatch(events...), watched())
	got, err := json.MarshalIndent(res.Hints, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden", "hints.json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("hints differ from %s (run with -update after a deliberate change):\n got %s", path, got)
	}
}
