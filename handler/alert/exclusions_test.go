package alert

import (
	"strings"
	"testing"
	"time"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/reconcile"
)

func TestMessageListsExclusionReviews(t *testing.T) {
	n := 3
	a := reconcile.Alert{ID: "abc", Time: time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC), TenantID: "t", Verdict: capolicy.VerdictCompliant,
		Exclusions: []exclusion.Item{
			{Kind: exclusion.KindGroup, ID: "g1", DisplayName: "<!channel> break glass", Allowlisted: true, MemberCount: &n,
				Review: exclusion.Review{Status: exclusion.ReviewNone, Detail: "No access review covers this group."},
				Notes:  []string{`member "Old" (u2) is disabled`}},
			{Kind: exclusion.KindUser, ID: "u9", Review: exclusion.NotReviewable()},
		}}
	got := messageText(a)
	for _, want := range []string{
		"Exclusions and their access reviews:",
		`- group "&lt;!channel&gt; break glass" (g1), 3 member(s): review none — No access review covers this group.; member "Old" (u2) is disabled`,
		"- user u9, not an approved break-glass exclusion: review not-reviewable — Access reviews cover groups",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("message lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "<!channel>") {
		t.Errorf("message carries Slack markup from a group name:\n%s", got)
	}
}
