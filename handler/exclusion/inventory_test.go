package exclusion

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caguard/caguard/handler/capolicy"
)

func TestCollect(t *testing.T) {
	const (
		user1 = "11111111-1111-4111-8111-111111111111"
		user2 = "22222222-2222-4222-8222-222222222222"
	)
	policy := func(id string, users, groups []string) capolicy.Policy {
		return capolicy.Policy{ID: id, Conditions: capolicy.Conditions{Users: &capolicy.Users{IncludeUsers: []string{"All"}, ExcludeUsers: users, ExcludeGroups: groups}}}
	}
	policies := []capolicy.Policy{
		policy("p1", []string{user1, "GuestsOrExternalUsers", "None"}, []string{bgGroup}),
		policy("p2", []string{strings.ToUpper(user1) + "," + user2}, []string{bgGroup, otherGroup}),
		policy("p3", []string{user2}, nil),
		{ID: "p4"},
	}
	cfg := capolicy.Config{BreakGlassUserIDs: []string{user1}, BreakGlassGroupIDs: []string{strings.ToUpper(bgGroup)}}
	got := Collect(policies, func(p capolicy.Policy) bool { return p.ID != "p3" }, cfg)
	want := []Item{
		{Kind: KindUser, ID: user1, Allowlisted: true, PolicyIDs: []string{"p1", "p2"}},
		{Kind: KindGroup, ID: bgGroup, Allowlisted: true, PolicyIDs: []string{"p1", "p2"}},
		{Kind: KindUser, ID: user2, PolicyIDs: []string{"p2"}},
		{Kind: KindGroup, ID: otherGroup, PolicyIDs: []string{"p2"}},
	}
	if len(got) != len(want) {
		t.Fatalf("items: got %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Kind != w.Kind || g.ID != w.ID || g.Allowlisted != w.Allowlisted || !slices.Equal(g.PolicyIDs, w.PolicyIDs) {
			t.Errorf("item %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestMemberNotes(t *testing.T) {
	off, on := false, true
	old, recent := daysAgo(200), daysAgo(3)
	count := 250
	it := Item{Kind: KindGroup, ID: bgGroup, MemberCount: &count, MembersTruncated: true, Members: []Member{
		{ID: "m1", DisplayName: "Break Glass 1", AccountEnabled: &on, LastSignIn: &recent},
		{ID: "m2", DisplayName: "Old Admin", AccountEnabled: &off},
		{ID: "m3", AccountEnabled: &on, LastSignIn: &old},
	}}
	got := it.MemberNotes(now)
	want := []string{
		`member "Old Admin" (m2) is disabled`,
		"member m3 has not signed in since 2026-05-17",
		"the group has 250 members; only the first 3 are listed",
	}
	if !slices.Equal(got, want) {
		t.Errorf("notes:\ngot  %q\nwant %q", got, want)
	}
	user := Item{Kind: KindUser, AccountEnabled: &off}
	if got := user.MemberNotes(now); !slices.Equal(got, []string{"the account is disabled"}) {
		t.Errorf("user notes: got %q", got)
	}
	if got := (Item{Kind: KindUser}).MemberNotes(time.Time{}); got != nil {
		t.Errorf("notes without data: got %q, want none", got)
	}
}

func TestStatusesKeyLowerCaseIDs(t *testing.T) {
	items := []Item{{Kind: KindGroup, ID: strings.ToUpper(bgGroup), Review: Review{Status: ReviewOverdue, Detail: "d"}}}
	got := Statuses(items)
	if r, ok := got[bgGroup]; !ok || r.Status != "overdue" || r.Detail != "d" {
		t.Errorf("statuses: got %+v", got)
	}
}
