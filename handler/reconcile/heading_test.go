package reconcile

import (
	"strings"
	"testing"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
)

// Every outcome has a headline that says in one line what happened and what to do; a restored
// incident never reads as broken, and a compliant tenant with an overdue review never reads as fine.
func TestHeadingForEveryOutcome(t *testing.T) {
	const pid = "aaaaaaaa-0000-4000-8000-000000000001"
	closest := &PolicyFinding{ID: pid, DisplayName: "Require MFA", State: "disabled",
		Reasons: []capolicy.Reason{{Code: capolicy.CodeStateNotEnabled, Message: "The policy is disabled."}}}
	change := []Change{{Actor: "mallory@contoso.example", TargetID: pid, TargetName: "Require MFA"}}
	write := func(state string, held bool) []Action {
		return []Action{{Kind: ActionUpdate, PolicyID: pid, State: state, Written: true, Performed: held}}
	}
	overdue := []exclusion.Item{{ID: "g1", Kind: exclusion.KindGroup, Allowlisted: true, Review: exclusion.Review{Status: exclusion.ReviewOverdue}}}
	for _, tt := range []struct {
		name       string
		a          Alert
		kind       AlertKind
		want, nots []string
	}{
		{"restored enabled", Alert{Verdict: capolicy.VerdictNonCompliant, Closest: closest, Changes: change, Actions: write("enabled", true)},
			AlertRestored, []string{"Restored", "mallory@contoso.example weakened \"Require MFA\"", "enabled", "Ask who changed it"}, []string{"NOT required"}},
		{"restored report-only", Alert{Verdict: capolicy.VerdictNonCompliant, Closest: closest, Changes: change, Actions: write("enabledForReportingButNotEnforced", true)},
			AlertRestored, []string{"Restored in report-only mode", "not enforced yet", "switch it on"}, []string{"NOT required"}},
		{"created", Alert{Verdict: capolicy.VerdictNonCompliant, Actions: []Action{{Kind: ActionCreate, PolicyID: pid, State: "enabledForReportingButNotEnforced", Written: true, Performed: true}}},
			AlertRestored, []string{"created", "report-only", "switch it on"}, nil},
		{"restore did not hold", Alert{Verdict: capolicy.VerdictNonCompliant, Closest: closest, Changes: change, Actions: write("enabled", false)},
			AlertRestoreFailed, []string{"Restore did not hold", "NOT required", "by hand"}, nil},
		{"alert only", Alert{Verdict: capolicy.VerdictNonCompliant, Closest: closest, Changes: change, Actions: []Action{{Kind: ActionUpdate, PolicyID: pid}}},
			AlertNotCompliant, []string{"NOT required", "mallory@contoso.example", "caguard wrote nothing", "REMEDIATION_MODE=remediate"}, nil},
		{"pending enforcement", Alert{Verdict: capolicy.VerdictPendingEnforcement},
			AlertPending, []string{"report-only", "not enforced", "switch it on"}, nil},
		{"compliant, review overdue", Alert{Verdict: capolicy.VerdictCompliant, Exclusions: overdue},
			AlertReviewOverdue, []string{"MFA is required", "one exclusion lacks a current access review", "access review"}, []string{"Nothing to do"}},
		{"require mode, review alone fails", Alert{Verdict: capolicy.VerdictNonCompliant, Exclusions: overdue,
			Closest: &PolicyFinding{ID: pid, Reasons: []capolicy.Reason{{Code: capolicy.CodeExclusionReviewOverdue}}}},
			AlertReviewOverdue, []string{"Not compliant", "EXCLUSION_REVIEW=require"}, []string{"NOT required"}},
		{"compliant", Alert{Verdict: capolicy.VerdictCompliant},
			AlertCompliant, []string{"MFA is required", "Nothing to do"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if k := tt.a.Kind(); k != tt.kind {
				t.Fatalf("kind: got %s, want %s", k, tt.kind)
			}
			h := tt.a.Heading()
			line := h.String()
			if h.What == "" || h.Do == "" || strings.Contains(line, "\n") {
				t.Fatalf("heading %+v: want what happened and what to do, on one line", h)
			}
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("heading %q lacks %q", line, w)
				}
			}
			for _, n := range tt.nots {
				if strings.Contains(line, n) {
					t.Errorf("heading %q must not say %q", line, n)
				}
			}
		})
	}
}

// An excluded account that is not an approved break-glass account is never told to join a
// break-glass group (that would fail the control); every finding gets its own advice.
func TestExclusionAdviceFitsTheFinding(t *testing.T) {
	for _, tt := range []struct {
		name string
		it   exclusion.Item
		want string
	}{
		{"unapproved user", exclusion.Item{Kind: exclusion.KindUser}, "remove the exclusion, or, if it really is a break-glass account, add it to BREAK_GLASS_USER_IDS"},
		{"unapproved group", exclusion.Item{Kind: exclusion.KindGroup}, "remove the exclusion, or, if it really is a break-glass group, add it to BREAK_GLASS_GROUP_IDS"},
		{"overdue", exclusion.Item{Kind: exclusion.KindGroup, Allowlisted: true, Review: exclusion.Review{Status: exclusion.ReviewOverdue}}, "Complete its overdue access review"},
		{"no review", exclusion.Item{Kind: exclusion.KindGroup, Allowlisted: true, Review: exclusion.Review{Status: exclusion.ReviewNone}}, "Create a recurring access review"},
		{"approved user", exclusion.Item{Kind: exclusion.KindUser, Allowlisted: true, Review: exclusion.Review{Status: exclusion.ReviewNotReviewable}}, "Access reviews cover groups, not single users"},
		{"unknown", exclusion.Item{Kind: exclusion.KindGroup, Allowlisted: true, Review: exclusion.Review{Status: exclusion.ReviewUnknown}}, "check it by hand"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := ExclusionAdvice(tt.it)
			if !strings.Contains(got, tt.want) {
				t.Errorf("advice %q lacks %q", got, tt.want)
			}
			if !tt.it.Allowlisted && strings.Contains(strings.ToLower(got), "move the account into") {
				t.Errorf("advice %q tells an unapproved account to join a break-glass group", got)
			}
		})
	}
	if got := ExclusionAdvice(exclusion.Item{Kind: exclusion.KindGroup, Allowlisted: true, Review: exclusion.Review{Status: exclusion.ReviewCurrent}}); got != "" {
		t.Errorf("a current review needs no advice, got %q", got)
	}
}
