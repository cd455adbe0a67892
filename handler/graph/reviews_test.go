package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/graphfake"
)

const (
	definitionsPath = "/v1.0/identityGovernance/accessReviews/definitions"
	secondaryGroup  = "bbbbbbbb-0000-0000-0000-000000000003"
	bgUser2         = "22222222-2222-2222-2222-222222222222"
)

func TestAccessReviewDefinitionsFollowEveryPageAndKeepTheirScopes(t *testing.T) {
	e := setup(t, graphfake.Options{PageSize: 2}, "drifted.json", nil)
	defs, err := e.c.AccessReviewDefinitions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) != 3 {
		t.Fatalf("definitions: got %d, want 3", len(defs))
	}
	if n := len(e.srv.CallsTo("GET " + definitionsPath)); n != 2 {
		t.Errorf("pages read: got %d, want 2", n)
	}
	first := defs[0]
	if first.Scope == nil || first.Scope.ODataType != "#microsoft.graph.accessReviewQueryScope" ||
		first.Scope.Query != "/groups/"+breakGlassGroup+"/transitiveMembers" || first.Scope.QueryType != "MicrosoftGraph" {
		t.Errorf("scope: got %+v", first.Scope)
	}
	if r := first.Recurrence; r == nil || r.PatternType != "absoluteMonthly" || r.Interval != 3 || r.RangeType != "noEnd" {
		t.Errorf("recurrence: got %+v", first.Recurrence)
	}
	if first.InstanceEnumerationScope != nil {
		t.Errorf("instanceEnumerationScope: got %+v, want none (null in the answer)", first.InstanceEnumerationScope)
	}
	third := defs[2]
	if third.InstanceEnumerationScope == nil || !strings.HasPrefix(third.InstanceEnumerationScope.Query, "/groups?$filter=") {
		t.Errorf("instanceEnumerationScope: got %+v", third.InstanceEnumerationScope)
	}
}

func TestAccessReviewInstancesCarryStatusAndEnd(t *testing.T) {
	now := time.Now().UTC()
	e := setup(t, graphfake.Options{PageSize: 1}, "drifted.json", nil)
	ins, err := e.c.AccessReviewInstances(context.Background(), "dddddddd-0000-0000-0000-000000000001")
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 2 {
		t.Fatalf("instances: got %d, want 2 (over two pages)", len(ins))
	}
	last := ins[1]
	if last.Status != "Completed" || last.Scope == nil || !strings.Contains(last.Scope.Query, breakGlassGroup) {
		t.Errorf("instance: got %+v", last)
	}
	// The scenario ends it 20 days before the emulator's clock.
	if d := now.Sub(last.EndDateTime); d < 19*24*time.Hour || d > 21*24*time.Hour {
		t.Errorf("endDateTime: got %s, want about 20 days ago", last.EndDateTime)
	}
}

func TestAccessReviewsWithoutThePermissionSayWhichIsMissing(t *testing.T) {
	e := setup(t, graphfake.Options{Roles: []string{graphfake.PermPolicyReadAll, graphfake.PermGroupMemberReadAll}}, "drifted.json", nil)
	_, err := e.c.AccessReviewDefinitions(context.Background())
	ge := asError(t, err)
	if !ge.Forbidden() || ge.MissingPermission() != PermReadAccessReviews || ge.Retriable() {
		t.Errorf("error: got status %d permission %q retriable %t, want a 403 naming %s", ge.Status, ge.MissingPermission(), ge.Retriable(), PermReadAccessReviews)
	}
	if b := ge.Brief(); b != "graph answered 403 Forbidden" {
		t.Errorf("brief: got %q, want status and code only", b)
	}
}

func TestGroupDetailCountsEveryMemberAndListsTheFirst(t *testing.T) {
	const big = "bbbbbbbb-0000-0000-0000-0000000000ff"
	members := make([]graphfake.Member, 25)
	users := map[string]json.RawMessage{}
	for i := range members {
		id := fmt.Sprintf("cccccccc-0000-0000-0000-%012d", i)
		members[i] = graphfake.Member{ID: id}
		users[id] = json.RawMessage(fmt.Sprintf(`{"displayName":"User %d","accountEnabled":%t}`, i, i != 1))
	}
	e := setup(t, graphfake.Options{PageSize: 10}, "", nil)
	if err := e.srv.Seed(graphfake.Scenario{Users: users, Groups: map[string]graphfake.Group{
		big: {DisplayName: "Too many exceptions", GroupTypes: []string{"Unified"}, Members: members}}}); err != nil {
		t.Fatal(err)
	}
	g, err := e.c.GroupDetail(context.Background(), big, 10)
	if err != nil {
		t.Fatal(err)
	}
	if g.MemberCount != 25 || len(g.Members) != 10 || !g.Truncated {
		t.Errorf("members: got count %d, %d listed, truncated %t; want 25, 10, true", g.MemberCount, len(g.Members), g.Truncated)
	}
	if n := len(e.srv.CallsTo("GET /v1.0/groups/" + big + "/transitiveMembers")); n != 3 {
		t.Errorf("member pages read: got %d, want 3", n)
	}
	if g.DisplayName != "Too many exceptions" || len(g.GroupTypes) != 1 || g.GroupTypes[0] != "Unified" || g.RoleAssignable {
		t.Errorf("group: got %+v", g.GroupInfo)
	}
	if m := g.Members[1]; m.DisplayName != "User 1" || m.AccountEnabled == nil || *m.AccountEnabled {
		t.Errorf("member 1: got %+v, want a disabled User 1", m)
	}
	_, err = e.c.GroupDetail(context.Background(), "bbbbbbbb-0000-0000-0000-00000000dead", 10)
	if ge := asError(t, err); !ge.NotFound() {
		t.Errorf("unknown group: got status %d, want 404", ge.Status)
	}
}

func TestUserDetailDegradesWithoutAuditLog(t *testing.T) {
	withSignIns := []string{graphfake.PermPolicyReadAll, graphfake.PermGroupMemberReadAll, graphfake.PermUserReadAll, graphfake.PermAuditLogReadAll}
	cases := []struct {
		name       string
		roles      []string
		signIns    bool
		wantStatus int
		wantLast   bool
	}{
		{"with AuditLog.Read.All the last sign-in is read", withSignIns, true, 0, true},
		{"without AuditLog.Read.All asking for sign-ins is refused", withSignIns[:3], true, 403, false},
		{"without AuditLog.Read.All the account is still read", withSignIns[:3], false, 0, false},
		{"without User.Read.All nothing is read", withSignIns[:2], false, 403, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, graphfake.Options{Roles: tc.roles}, "drifted.json", nil)
			m, err := e.c.UserDetail(context.Background(), bgUser2, tc.signIns)
			if tc.wantStatus != 0 {
				if ge := asError(t, err); ge.Status != tc.wantStatus || !ge.Forbidden() {
					t.Errorf("error: got %d, want %d", ge.Status, tc.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.DisplayName != "Break-glass 2" || m.AccountEnabled == nil || !*m.AccountEnabled {
				t.Errorf("user: got %+v", m)
			}
			if (m.LastSignIn != nil) != tc.wantLast {
				t.Errorf("last sign-in: got %v, want present %t", m.LastSignIn, tc.wantLast)
			}
			if m.LastSignIn != nil && time.Since(*m.LastSignIn) < exclusion.InactiveAfter {
				t.Errorf("last sign-in: got %s, want the scenario's 200 days ago", m.LastSignIn)
			}
		})
	}
}

func TestAccessReviewDefinitionsRetryThrottling(t *testing.T) {
	e := setup(t, graphfake.Options{PageSize: 2}, "drifted.json", nil)
	e.srv.Inject(graphfake.Fault{Match: "GET " + definitionsPath, Skip: 1, Times: 1, Status: 429, RetryAfter: "0"})
	defs, err := e.c.AccessReviewDefinitions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) != 3 {
		t.Errorf("definitions after a throttled second page: got %d, want 3", len(defs))
	}
}
