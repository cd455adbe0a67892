package reconcile

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
)

// memReviews is an in-memory ExclusionReader, the reconciler's own interface. The Graph adapter
// that implements it is tested against the local Graph emulator.
type memReviews struct {
	groups     map[string]exclusion.GroupDetail
	users      map[string]exclusion.Member
	defs       []exclusion.Definition
	defsErr    error
	signInsErr error // answered when sign-ins are asked for
	calls      []string
}

type forbiddenErr struct{ perm string }

func (e forbiddenErr) Error() string             { return "403 Forbidden" }
func (e forbiddenErr) Forbidden() bool           { return true }
func (e forbiddenErr) MissingPermission() string { return e.perm }
func (e forbiddenErr) Brief() string             { return "graph answered 403 Forbidden" }

type briefErr struct{}

func (briefErr) Error() string {
	return "503 with a long message from Graph that must not leave the process"
}
func (briefErr) Brief() string   { return "graph answered 503 ServiceUnavailable" }
func (briefErr) Retriable() bool { return true }

func (m *memReviews) GroupDetail(ctx context.Context, id string, maxMembers int) (exclusion.GroupDetail, error) {
	m.calls = append(m.calls, "group "+id)
	g, ok := m.groups[id]
	if !ok {
		return exclusion.GroupDetail{}, notFoundErr{}
	}
	if len(g.Members) > maxMembers {
		g.Members, g.Truncated = g.Members[:maxMembers], true
	}
	return g, nil
}

func (m *memReviews) UserDetail(ctx context.Context, id string, signIns bool) (exclusion.Member, error) {
	m.calls = append(m.calls, "user "+id)
	if signIns && m.signInsErr != nil {
		return exclusion.Member{}, m.signInsErr
	}
	u, ok := m.users[id]
	if !ok {
		return exclusion.Member{}, notFoundErr{}
	}
	if !signIns {
		u.LastSignIn = nil
	}
	return u, nil
}

func (m *memReviews) AccessReviewDefinitions(ctx context.Context) ([]exclusion.Definition, error) {
	m.calls = append(m.calls, "definitions")
	if m.defsErr != nil {
		return nil, m.defsErr
	}
	out := make([]exclusion.Definition, len(m.defs))
	for i, d := range m.defs {
		d.Instances = nil // instances come from their own call, as in Graph
		out[i] = d
	}
	return out, nil
}

func (m *memReviews) AccessReviewInstances(ctx context.Context, id string) ([]exclusion.Instance, error) {
	m.calls = append(m.calls, "instances "+id)
	for _, d := range m.defs {
		if d.ID == id {
			return d.Instances, nil
		}
	}
	return nil, notFoundErr{}
}

var runAt = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

func boolp(b bool) *bool { return &b }

// groupPolicy is an enabled policy that meets the control and excludes the break-glass group.
func groupPolicy() capolicy.Policy {
	p := adminPolicy("cccccccc-0000-4000-8000-000000000001", capolicy.StateEnabled)
	p.Conditions.Users = &capolicy.Users{IncludeUsers: []string{"All"}, ExcludeGroups: []string{bgGroup}}
	return p
}

func reviewOf(id string, lastCompleted time.Time) exclusion.Definition {
	return exclusion.Definition{ID: id, DisplayName: "Break-glass review", Status: "InProgress",
		Scope:      &exclusion.Scope{ODataType: "#microsoft.graph.accessReviewQueryScope", Query: "/groups/" + bgGroup + "/transitiveMembers", QueryType: "MicrosoftGraph"},
		Recurrence: &exclusion.Recurrence{PatternType: "absoluteMonthly", Interval: 3, RangeType: "noEnd"},
		Instances:  []exclusion.Instance{{ID: "i1", Status: "Completed", EndDateTime: lastCompleted}}}
}

func reviewReader(defs ...exclusion.Definition) *memReviews {
	last := runAt.AddDate(0, 0, -3)
	return &memReviews{
		groups: map[string]exclusion.GroupDetail{bgGroup: {GroupInfo: exclusion.GroupInfo{ID: bgGroup}, DisplayName: "Break glass", MemberCount: 1,
			Members: []exclusion.Member{{ID: bgUser, DisplayName: "BG 1", AccountEnabled: boolp(true)}}}},
		users: map[string]exclusion.Member{bgUser: {ID: bgUser, DisplayName: "BG 1", AccountEnabled: boolp(true), LastSignIn: &last}},
		defs:  defs,
	}
}

func reviewReconciler(store *memStore, reader *memReviews, mode exclusion.Mode, sinks ...AlertSink) *Reconciler {
	r := newReconciler(store, false, sinks...)
	r.Exclusions = Exclusions{Reader: reader, Mode: mode, Grace: exclusion.DefaultGrace}
	return r
}

func find(items []exclusion.Item, id string) *exclusion.Item {
	for i := range items {
		if items[i].ID == id {
			return &items[i]
		}
	}
	return nil
}

func TestExclusionInventory(t *testing.T) {
	overdue := reviewOf("d-overdue", runAt.AddDate(0, -8, 0))
	current := reviewOf("d-current", runAt.AddDate(0, -1, 0))
	tests := []struct {
		name        string
		mode        exclusion.Mode
		policies    []capolicy.Policy
		reader      *memReviews
		wantGroup   exclusion.ReviewStatus
		wantDetail  string
		wantVerdict capolicy.Verdict
		wantCodes   []string
	}{
		{name: "report mode lists a current review and keeps the verdict", mode: exclusion.ModeReport,
			policies: []capolicy.Policy{groupPolicy()}, reader: reviewReader(current),
			wantGroup: exclusion.ReviewCurrent, wantDetail: "last completed on 2026-10-20", wantVerdict: capolicy.VerdictCompliant},
		{name: "report mode lists an overdue review and keeps the verdict", mode: exclusion.ModeReport,
			policies: []capolicy.Policy{groupPolicy()}, reader: reviewReader(overdue),
			wantGroup: exclusion.ReviewOverdue, wantVerdict: capolicy.VerdictCompliant},
		{name: "report mode lists a group no review covers", mode: exclusion.ModeReport,
			policies: []capolicy.Policy{groupPolicy()}, reader: reviewReader(),
			wantGroup: exclusion.ReviewNone, wantVerdict: capolicy.VerdictCompliant},
		{name: "require mode fails the control for an overdue review", mode: exclusion.ModeRequire,
			policies: []capolicy.Policy{groupPolicy()}, reader: reviewReader(overdue),
			wantGroup: exclusion.ReviewOverdue, wantVerdict: capolicy.VerdictNonCompliant, wantCodes: []string{capolicy.CodeExclusionReviewOverdue}},
		{name: "require mode passes a current review", mode: exclusion.ModeRequire,
			policies: []capolicy.Policy{groupPolicy()}, reader: reviewReader(current),
			wantGroup: exclusion.ReviewCurrent, wantVerdict: capolicy.VerdictCompliant},
		{name: "a missing AccessReview.Read.All makes the review unknown and the run goes on", mode: exclusion.ModeReport,
			policies: []capolicy.Policy{groupPolicy()}, reader: func() *memReviews {
				m := reviewReader(current)
				m.defsErr = forbiddenErr{perm: "AccessReview.Read.All"}
				return m
			}(),
			wantGroup: exclusion.ReviewUnknown, wantDetail: "The AccessReview.Read.All permission is missing", wantVerdict: capolicy.VerdictCompliant},
		{name: "a Graph outage makes the review unknown without Graph's message", mode: exclusion.ModeRequire,
			policies: []capolicy.Policy{groupPolicy()}, reader: func() *memReviews {
				m := reviewReader(current)
				m.defsErr = briefErr{}
				return m
			}(),
			wantGroup: exclusion.ReviewUnknown, wantDetail: "(graph answered 503 ServiceUnavailable)", wantVerdict: capolicy.VerdictNonCompliant,
			wantCodes: []string{capolicy.CodeExclusionReviewUnknown}},
		{name: "off mode reads no reviews", mode: exclusion.ModeOff,
			policies: []capolicy.Policy{groupPolicy()}, reader: reviewReader(current),
			wantGroup: exclusion.ReviewUnknown, wantDetail: "EXCLUSION_REVIEW is off", wantVerdict: capolicy.VerdictCompliant},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := reviewReconciler(&memStore{policies: tc.policies}, tc.reader, tc.mode)
			out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerHTTP})
			if err != nil {
				t.Fatalf("Reconcile: %v", err)
			}
			if out.Report.Verdict != tc.wantVerdict {
				t.Errorf("verdict: got %s, want %s (%s)", out.Report.Verdict, tc.wantVerdict, out.Report.Summary)
			}
			g := find(out.Exclusions, bgGroup)
			if g == nil {
				t.Fatalf("exclusions: got %+v, want the break-glass group", out.Exclusions)
			}
			if g.Kind != exclusion.KindGroup || !g.Allowlisted || g.DisplayName != "Break glass" || g.MemberCount == nil || *g.MemberCount != 1 {
				t.Errorf("group item: got %+v", *g)
			}
			if g.Review.Status != tc.wantGroup {
				t.Errorf("review: got %s (%q), want %s", g.Review.Status, g.Review.Detail, tc.wantGroup)
			}
			if !strings.Contains(g.Review.Detail, tc.wantDetail) {
				t.Errorf("review detail: got %q, want it to contain %q", g.Review.Detail, tc.wantDetail)
			}
			if strings.Contains(g.Review.Detail, "long message") {
				t.Errorf("review detail leaks Graph's message: %q", g.Review.Detail)
			}
			var codes []string
			if len(out.Report.Policies) > 0 {
				for _, reason := range out.Report.Policies[0].Reasons {
					codes = append(codes, reason.Code)
				}
			}
			if !slices.Equal(codes, tc.wantCodes) {
				t.Errorf("codes: got %v, want %v", codes, tc.wantCodes)
			}
			for _, a := range out.Actions {
				if a.Kind != ActionNone {
					t.Errorf("action: got %s (%s), want none: a review finding never prompts a write", a.Kind, a.Reason)
				}
			}
		})
	}
}

func TestInventoryCoversPassingAndManagedPoliciesOnly(t *testing.T) {
	failing := adminPolicy("cccccccc-0000-4000-8000-000000000009", capolicy.StateEnabled)
	failing.DisplayName = "Something else"
	failing.GrantControls = nil
	failing.Conditions.Users.ExcludeUsers = []string{someone}
	m := managed(capolicy.StateReportOnly)
	m.GrantControls = nil // the managed policy is listed even when it fails
	reader := reviewReader()
	r := reviewReconciler(&memStore{policies: []capolicy.Policy{groupPolicy(), failing, m}}, reader, exclusion.ModeReport)
	out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerHTTP})
	if err != nil {
		t.Fatal(err)
	}
	// The break-glass user is excluded directly and is a member of the excluded group: read once.
	if n := slices.Index(reader.calls, "user "+bgUser); n < 0 || slices.Contains(reader.calls[n+1:], "user "+bgUser) {
		t.Errorf("reads: got %v, want the break-glass user read once", reader.calls)
	}
	if find(out.Exclusions, someone) != nil {
		t.Errorf("exclusions list %s, which only a failing policy excludes", someone)
	}
	u := find(out.Exclusions, bgUser)
	if u == nil || !slices.Equal(u.PolicyIDs, []string{m.ID}) {
		t.Fatalf("exclusions: got %+v, want the managed policy's break-glass user", out.Exclusions)
	}
	if u.Review.Status != exclusion.ReviewNotReviewable || !strings.Contains(u.Review.Detail, "break-glass group") {
		t.Errorf("directly excluded user: got %s %q, want not-reviewable with advice", u.Review.Status, u.Review.Detail)
	}
	if u.DisplayName != "BG 1" || u.LastSignIn == nil || u.AccountEnabled == nil || !*u.AccountEnabled {
		t.Errorf("user details: got %+v", *u)
	}
}

func TestMissingSignInPermissionDegradesOnce(t *testing.T) {
	reader := reviewReader()
	reader.signInsErr = forbiddenErr{perm: "User.Read.All and AuditLog.Read.All"}
	p := groupPolicy()
	p.Conditions.Users.ExcludeUsers = []string{bgUser}
	r := reviewReconciler(&memStore{policies: []capolicy.Policy{p}}, reader, exclusion.ModeReport)
	out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerHTTP})
	if err != nil {
		t.Fatal(err)
	}
	u := find(out.Exclusions, bgUser)
	if u == nil || u.DisplayName != "BG 1" || u.LastSignIn != nil {
		t.Fatalf("user: got %+v, want its name without a last sign-in", u)
	}
	if !slices.ContainsFunc(u.Notes, func(n string) bool { return strings.Contains(n, "AuditLog.Read.All") }) {
		t.Errorf("notes: got %q, want a note on AuditLog.Read.All", u.Notes)
	}
	userCalls := 0
	for _, c := range reader.calls {
		if strings.HasPrefix(c, "user ") {
			userCalls++
		}
	}
	// One refused call with sign-ins, then one without, for the user; the group member is not re-read.
	if userCalls != 2 {
		t.Errorf("user reads: got %d (%v), want 2", userCalls, reader.calls)
	}
}

func TestDisabledAndInactiveMembersAreNoted(t *testing.T) {
	old := runAt.AddDate(0, 0, -200)
	reader := reviewReader()
	reader.groups[bgGroup] = exclusion.GroupDetail{GroupInfo: exclusion.GroupInfo{ID: bgGroup}, DisplayName: "Break glass", MemberCount: 3,
		Members: []exclusion.Member{
			{ID: bgUser, DisplayName: "BG 1", AccountEnabled: boolp(true)},
			{ID: "u-disabled", DisplayName: "Former admin", AccountEnabled: boolp(false)},
			{ID: "u-idle", DisplayName: "Idle admin", AccountEnabled: boolp(true)},
		}}
	reader.users["u-idle"] = exclusion.Member{ID: "u-idle", DisplayName: "Idle admin", AccountEnabled: boolp(true), LastSignIn: &old}
	r := reviewReconciler(&memStore{policies: []capolicy.Policy{groupPolicy()}}, reader, exclusion.ModeReport)
	r.Exclusions.MaxMembers = 2
	out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerHTTP})
	if err != nil {
		t.Fatal(err)
	}
	g := find(out.Exclusions, bgGroup)
	if g == nil || len(g.Members) != 2 || !g.MembersTruncated || *g.MemberCount != 3 {
		t.Fatalf("group: got %+v, want 2 of 3 members listed", g)
	}
	want := []string{`member "Former admin" (u-disabled) is disabled`, "the group has 3 members; only the first 2 are listed"}
	if !slices.Equal(g.Notes, want) {
		t.Errorf("notes:\ngot  %q\nwant %q", g.Notes, want)
	}

	r.Exclusions.MaxMembers = 0
	out, err = r.Reconcile(context.Background(), Request{Trigger: TriggerHTTP})
	if err != nil {
		t.Fatal(err)
	}
	g = find(out.Exclusions, bgGroup)
	if !slices.Contains(g.Notes, `member "Idle admin" (u-idle) has not signed in since 2026-05-04`) {
		t.Errorf("notes: got %q, want the idle member", g.Notes)
	}
}

func TestSweepAlertsOnReviewFindingsWithAStableID(t *testing.T) {
	overdue := reviewOf("d-overdue", runAt.AddDate(0, -8, 0))
	s := &sink{name: "test"}
	store := &memStore{policies: []capolicy.Policy{groupPolicy()}}
	r := reviewReconciler(store, reviewReader(overdue), exclusion.ModeReport, s)

	for _, trig := range []Trigger{TriggerAuditEvent, TriggerHTTP} {
		if _, err := r.Reconcile(context.Background(), Request{Trigger: trig, Act: true}); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.alerts) != 0 {
		t.Fatalf("alerts from %s and %s: got %d, want none: review findings are the sweep's", TriggerAuditEvent, TriggerHTTP, len(s.alerts))
	}
	for night := 0; night < 2; night++ {
		r.Now = func() time.Time { return runAt.AddDate(0, 0, night) }
		if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true}); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.alerts) != 2 {
		t.Fatalf("sweep alerts: got %d, want one a night", len(s.alerts))
	}
	a := s.alerts[0]
	if a.ID != s.alerts[1].ID {
		t.Errorf("alert id: got %s then %s, want the same id for the same finding", a.ID, s.alerts[1].ID)
	}
	if a.Verdict != capolicy.VerdictCompliant || find(a.Exclusions, bgGroup) == nil {
		t.Errorf("alert: got verdict %s and exclusions %+v", a.Verdict, a.Exclusions)
	}
	if !strings.Contains(a.NextStep, "access review") || !strings.Contains(a.NextStep, "review overdue") {
		t.Errorf("next step: got %q", a.NextStep)
	}

	// The review completes: no more alert; it lapses again the same way: the same id as before.
	r.Exclusions.Reader = reviewReader(reviewOf("d-overdue", runAt.AddDate(0, 0, -1)))
	if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true}); err != nil {
		t.Fatal(err)
	}
	if len(s.alerts) != 2 {
		t.Errorf("alerts after the review completed: got %d, want still 2", len(s.alerts))
	}
	r.Exclusions.Reader = reviewReader()
	if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true}); err != nil {
		t.Fatal(err)
	}
	if len(s.alerts) != 3 || s.alerts[2].ID == a.ID {
		t.Errorf("a different finding (no review at all) must have its own id: got %d alerts, ids %s and %s", len(s.alerts), a.ID, s.alerts[len(s.alerts)-1].ID)
	}
}

func TestDefinitionsAreReadOnceAndInstancesOnlyForCoveringReviews(t *testing.T) {
	other := reviewOf("d-other", runAt)
	other.Scope = &exclusion.Scope{Query: "/groups/" + someone + "/members"}
	reader := reviewReader(reviewOf("d-mine", runAt.AddDate(0, -1, 0)), other)
	p := groupPolicy()
	q := adminPolicy("cccccccc-0000-4000-8000-000000000002", capolicy.StateEnabled)
	q.Conditions.Users = p.Conditions.Users
	r := reviewReconciler(&memStore{policies: []capolicy.Policy{p, q}}, reader, exclusion.ModeReport)
	if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerHTTP}); err != nil {
		t.Fatal(err)
	}
	// The group once (two policies exclude it), its member's last sign-in, the definitions once, and
	// the instances of the one review that covers the group.
	want := []string{"group " + bgGroup, "user " + bgUser, "definitions", "instances d-mine"}
	if !slices.Equal(reader.calls, want) {
		t.Errorf("reads: got %v, want %v", reader.calls, want)
	}
}

func TestRequireModeAlertSaysReviewsAloneFail(t *testing.T) {
	s := &sink{name: "test"}
	p := groupPolicy()
	p.Conditions.Users.ExcludeUsers = []string{bgUser}
	r := reviewReconciler(&memStore{policies: []capolicy.Policy{p}}, reviewReader(reviewOf("d-overdue", runAt.AddDate(0, -8, 0))), exclusion.ModeRequire, s)
	out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerAuditEvent, Act: true})
	if err != nil {
		t.Fatal(err)
	}
	if out.Report.Verdict != capolicy.VerdictNonCompliant || len(s.alerts) != 1 {
		t.Fatalf("verdict %s, %d alerts; want non-compliant and one alert", out.Report.Verdict, len(s.alerts))
	}
	if a := out.Actions[0]; a.Kind != ActionNone || !strings.Contains(a.Reason, "no write can fix them") {
		t.Errorf("action: got %s %q, want none, saying a write cannot fix a review", a.Kind, a.Reason)
	}
	if s.alerts[0].Control != capolicy.ControlAzureManagementMFA {
		t.Errorf("alert control: got %q, want the guarded control", s.alerts[0].Control)
	}
	step := s.alerts[0].NextStep
	if strings.Contains(step, "REMEDIATION_MODE") || !strings.Contains(step, "("+bgGroup+") (review overdue): Complete its overdue access review") || !strings.Contains(step, "("+bgUser+") (review not-reviewable)") {
		t.Errorf("next step: got %q, want the overdue group and the directly excluded user, not remediation advice", step)
	}
}

func TestMembersByIDOnlySayWhichPermissionShowsThem(t *testing.T) {
	reader := reviewReader()
	reader.groups[bgGroup] = exclusion.GroupDetail{GroupInfo: exclusion.GroupInfo{ID: bgGroup}, DisplayName: "Break glass", MemberCount: 1,
		Members: []exclusion.Member{{ID: bgUser}}}
	r := reviewReconciler(&memStore{policies: []capolicy.Policy{groupPolicy()}}, reader, exclusion.ModeReport)
	out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerHTTP})
	if err != nil {
		t.Fatal(err)
	}
	if g := find(out.Exclusions, bgGroup); g == nil || !slices.Contains(g.Notes, "member names and accountEnabled not shown: grant User.Read.All to see them") {
		t.Errorf("group: got %+v, want a note naming User.Read.All", g)
	}
}
