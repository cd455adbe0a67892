package alert

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/reconcile"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// sampleAlert is a non-compliant alert with every section filled: a change, a closest policy with
// reasons, and an action that was not performed.
func sampleAlert() reconcile.Alert {
	return reconcile.Alert{
		ID:       "3f2a9c1be07d4a55",
		Time:     time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC),
		TenantID: "11111111-2222-3333-4444-555555555555",
		Trigger:  reconcile.TriggerAuditEvent,
		Verdict:  capolicy.VerdictNonCompliant,
		Summary:  "No enabled policy requires MFA for the Windows Azure Service Management API.",
		Closest: &reconcile.PolicyFinding{
			ID:          "aaaaaaaa-0000-0000-0000-000000000001",
			DisplayName: "Require MFA for Azure management",
			State:       "disabled",
			Reasons: []capolicy.Reason{
				{Code: "STATE_NOT_ENABLED", Message: "The policy is disabled."},
				{Code: "USERS_NOT_ALL", Message: "The policy does not include all users."},
			},
		},
		Changes: []reconcile.Change{{
			Activity:   "Update conditional access policy",
			Kind:       "policy-updated",
			TargetID:   "aaaaaaaa-0000-0000-0000-000000000001",
			TargetName: "Require MFA for Azure management",
			Actor:      "mallory@contoso.example",
			ActorID:    "bbbbbbbb-0000-0000-0000-000000000002",
			ActorIP:    "203.0.113.7",
			Time:       time.Date(2026, 3, 14, 9, 26, 40, 0, time.UTC),
			Fields: []reconcile.FieldChange{
				{Field: "state", From: "enabled", To: "disabled"},
				{Field: "conditions.users.includeUsers", From: "[All]", To: "[]"},
			},
		}},
		Actions: []reconcile.Action{{
			Kind:     reconcile.ActionUpdate,
			PolicyID: "cccccccc-0000-0000-0000-000000000003",
			State:    "enabledForReportingButNotEnforced",
			Fields:   []string{"state"},
			Reason:   "the managed policy differs from its definition in 1 field(s); restore them (alert mode: nothing written; set REMEDIATION_MODE=remediate to restore)",
		}},
		NextStep: "Restore MFA for the Windows Azure Service Management API: fix the closest policy, or run caguard with REMEDIATION_MODE=remediate.",
	}
}

// golden compares got with testdata/name, or rewrites the file under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}
