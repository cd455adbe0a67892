package exclusion

import (
	"strings"
	"testing"
	"time"
)

const (
	bgGroup    = "bbbbbbbb-0000-4000-8000-000000000001"
	otherGroup = "bbbbbbbb-0000-4000-8000-000000000002"
)

var now = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func daysAgo(n int) time.Time { return now.AddDate(0, 0, -n) }

func queryScope(q string) *Scope {
	return &Scope{ODataType: "#microsoft.graph.accessReviewQueryScope", Query: q, QueryType: "MicrosoftGraph"}
}

func quarterly() *Recurrence {
	return &Recurrence{PatternType: "absoluteMonthly", Interval: 3, RangeType: "noEnd"}
}

func done(end time.Time) Instance {
	return Instance{ID: "i-" + end.Format("20060102"), Status: "Completed", StartDateTime: end.AddDate(0, 0, -14), EndDateTime: end}
}

func def(id string, scope *Scope, rec *Recurrence, instances ...Instance) Definition {
	return Definition{ID: id, DisplayName: "Review " + id, Status: "InProgress", Scope: scope, Recurrence: rec, Instances: instances}
}

func TestAssess(t *testing.T) {
	grace := DefaultGrace
	group := GroupInfo{ID: bgGroup}
	unified := GroupInfo{ID: bgGroup, GroupTypes: []string{"Unified"}}
	allGroups := def("all", queryScope("./members"), quarterly(), done(daysAgo(20)))
	allGroups.InstanceEnumerationScope = &Scope{Query: "/groups", QueryType: "MicrosoftGraph"}
	m365 := allGroups
	m365.ID = "m365"
	m365.InstanceEnumerationScope = &Scope{Query: "/groups?$filter=(groupTypes/any(c:c eq 'Unified'))", QueryType: "MicrosoftGraph"}
	perGroup := allGroups
	perGroup.ID = "per-group"
	perGroup.Instances = []Instance{
		{Status: "Completed", EndDateTime: daysAgo(5), Scope: queryScope("/groups/" + otherGroup + "/members")},
		{Status: "Completed", EndDateTime: daysAgo(200), Scope: queryScope("/groups/" + bgGroup + "/members")},
	}
	memberships := def("prm", &Scope{ODataType: "#microsoft.graph.principalResourceMembershipsScope",
		PrincipalScopes: []Scope{*queryScope("/users")},
		ResourceScopes:  []Scope{*queryScope("/groups")}}, quarterly(), done(daysAgo(30)))
	guestsOnly := def("guests", queryScope("/groups/"+bgGroup+"/transitiveMembers/microsoft.graph.user/?$filter=(userType eq 'Guest')"), quarterly(), done(daysAgo(10)))
	inactive := def("inactive", &Scope{ODataType: "#microsoft.graph.accessReviewInactiveUsersQueryScope", Query: "/groups/" + bgGroup + "/transitiveMembers", QueryType: "MicrosoftGraph", InactiveDuration: "P30D"}, quarterly(), done(daysAgo(10)))
	ended := def("ended", queryScope("/groups/"+bgGroup+"/transitiveMembers"), &Recurrence{PatternType: "weekly", Interval: 1, RangeType: "endDate", EndDate: "2026-01-31"}, done(daysAgo(3)))

	cases := []struct {
		name   string
		defs   []Definition
		group  GroupInfo
		status ReviewStatus
		defID  string
		detail string
	}{
		{name: "a group with no review at all has none", group: group, status: ReviewNone, detail: "No access review covers this group"},
		{name: "a review of another group does not cover the group", group: group,
			defs: []Definition{def("other", queryScope("/groups/"+otherGroup+"/transitiveMembers"), quarterly(), done(daysAgo(10)))}, status: ReviewNone},
		{name: "a quarterly review of the group's transitive members completed 20 days ago is current", group: group,
			defs:   []Definition{def("q", queryScope("/groups/"+bgGroup+"/transitiveMembers/microsoft.graph.user"), quarterly(), done(daysAgo(120)), done(daysAgo(20)))},
			status: ReviewCurrent, defID: "q", detail: "every 3 months; it last completed on 2026-11-13"},
		{name: "a review of the group's direct members written without an odata type is current", group: group,
			defs:   []Definition{def("d", &Scope{Query: "/groups/" + strings.ToUpper(bgGroup) + "/members"}, quarterly(), done(daysAgo(20)))},
			status: ReviewCurrent, defID: "d", detail: "direct members"},
		{name: "a quarterly review last completed 120 days ago is overdue", group: group,
			defs:   []Definition{def("q", queryScope("/groups/"+bgGroup+"/transitiveMembers"), quarterly(), done(daysAgo(120)))},
			status: ReviewOverdue, defID: "q", detail: "last completed on 2026-08-05"},
		{name: "a quarterly review last completed 100 days ago is still within the grace period", group: group,
			defs:   []Definition{def("q", queryScope("/groups/"+bgGroup+"/transitiveMembers"), quarterly(), done(daysAgo(100)))},
			status: ReviewCurrent, defID: "q"},
		{name: "a recurring review that never completed is overdue", group: group,
			defs:   []Definition{def("new", queryScope("/groups/"+bgGroup+"/transitiveMembers"), quarterly(), Instance{Status: "InProgress", EndDateTime: now.AddDate(0, 0, 10)})},
			status: ReviewOverdue, defID: "new", detail: "no instance of it has completed yet"},
		{name: "a one-time review is overdue even when it completed recently", group: group,
			defs:   []Definition{def("once", queryScope("/groups/"+bgGroup+"/transitiveMembers"), nil, done(daysAgo(2)))},
			status: ReviewOverdue, defID: "once", detail: "does not recur"},
		{name: "a weekly series that ended is overdue", group: group, defs: []Definition{ended}, status: ReviewOverdue, defID: "ended"},
		{name: "a review of all groups covers the group", group: group, defs: []Definition{allGroups}, status: ReviewCurrent, defID: "all", detail: "every group"},
		{name: "a review of all Microsoft 365 groups covers a Microsoft 365 group", group: unified, defs: []Definition{m365}, status: ReviewCurrent, defID: "m365"},
		{name: "a review of all Microsoft 365 groups does not cover a security group", group: group, defs: []Definition{m365}, status: ReviewNone},
		{name: "a review of all Microsoft 365 groups does not cover a role-assignable group",
			group: GroupInfo{ID: bgGroup, GroupTypes: []string{"Unified"}, RoleAssignable: true}, defs: []Definition{m365}, status: ReviewNone},
		{name: "a review of all groups judges the group by its own instance", group: group, defs: []Definition{perGroup}, status: ReviewOverdue, defID: "per-group"},
		{name: "a review of every user's membership of all groups covers the group", group: group, defs: []Definition{memberships}, status: ReviewCurrent, defID: "prm"},
		{name: "a review of guests only does not cover the group", group: group, defs: []Definition{guestsOnly}, status: ReviewNone},
		{name: "a review of inactive members only does not cover the group", group: group, defs: []Definition{inactive}, status: ReviewNone},
		{name: "a current review wins over an overdue one", group: group,
			defs: []Definition{
				def("old", queryScope("/groups/"+bgGroup+"/members"), quarterly(), done(daysAgo(300))),
				def("fresh", queryScope("/groups/"+bgGroup+"/transitiveMembers"), &Recurrence{PatternType: "absoluteYearly", Interval: 1}, done(daysAgo(300))),
			},
			status: ReviewCurrent, defID: "fresh"},
		{name: "an instance that completed as Applied counts", group: group,
			defs:   []Definition{def("a", queryScope("/groups/"+bgGroup+"/transitiveMembers"), quarterly(), Instance{Status: "Applied", EndDateTime: daysAgo(5)})},
			status: ReviewCurrent, defID: "a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Assess(tc.defs, tc.group, now, grace)
			if got.Status != tc.status {
				t.Errorf("status: got %s, want %s (detail %q)", got.Status, tc.status, got.Detail)
			}
			if got.DefinitionID != tc.defID {
				t.Errorf("definition: got %q, want %q", got.DefinitionID, tc.defID)
			}
			if !strings.Contains(got.Detail, tc.detail) {
				t.Errorf("detail: got %q, want it to contain %q", got.Detail, tc.detail)
			}
			if !strings.HasSuffix(got.Detail, ".") {
				t.Errorf("detail %q is not a sentence", got.Detail)
			}
		})
	}
}

func TestRecurrenceString(t *testing.T) {
	cases := []struct {
		r    Recurrence
		want string
	}{
		{Recurrence{PatternType: "weekly", Interval: 1}, "every week"},
		{Recurrence{PatternType: "absoluteMonthly", Interval: 3}, "every 3 months"},
		{Recurrence{PatternType: "relativeYearly", Interval: 0}, "every year"},
		{Recurrence{PatternType: "hourly", Interval: 2}, "on pattern hourly"},
	}
	for _, tc := range cases {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.r, got, tc.want)
		}
	}
}
