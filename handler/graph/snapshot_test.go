package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/graphfake"
	"github.com/caguard/caguard/handler/snapshot"
)

const reviewID = "dddddddd-0000-0000-0000-0000000000aa"

// tenantOf is a tenant with a compliant managed policy that excludes its break-glass groups and
// users, a policy that references a strength by id, an access review of the first group, and users
// who signed in: first a failed attempt recently, their last success long ago.
type tenantOf struct {
	users, groups []string
	scenario      graphfake.Scenario
}

func newTenantOf(users, groups, members int) tenantOf {
	var t tenantOf
	sc := graphfake.Scenario{Users: map[string]json.RawMessage{}, Groups: map[string]graphfake.Group{}}
	for i := range users {
		id := fmt.Sprintf("11111111-0000-0000-0000-%012d", i)
		t.users = append(t.users, id)
		sc.Users[id] = json.RawMessage(fmt.Sprintf(`{"displayName":"Break-glass %d","accountEnabled":%t,
			"signInActivity":{"lastSignInDateTime":"now-1d","lastNonInteractiveSignInDateTime":"now-2d","lastSuccessfulSignInDateTime":"now-%dd"}}`, i, i%3 != 2, 10+i))
	}
	for g := range groups {
		gid := fmt.Sprintf("bbbbbbbb-0000-0000-0000-%012d", g)
		t.groups = append(t.groups, gid)
		grp := graphfake.Group{DisplayName: fmt.Sprintf("Break-glass group %d", g), GroupTypes: []string{}}
		for m := range members {
			grp.Members = append(grp.Members, graphfake.Member{ID: fmt.Sprintf("cccccccc-%04d-0000-0000-%012d", g, m), DisplayName: fmt.Sprintf("Member %d.%d", g, m)})
		}
		sc.Groups[gid] = grp
	}
	exclUsers, _ := json.Marshal(t.users)
	exclGroups, _ := json.Marshal(t.groups)
	sc.Policies = []json.RawMessage{
		json.RawMessage(`{"id":"` + managedPolicyID + `","displayName":"caguard: require MFA for Azure management","state":"enabled",
			"conditions":{"clientAppTypes":["all"],"applications":{"includeApplications":["` + capolicy.AzureManagementAppID + `"]},
			"users":{"includeUsers":["All"],"excludeUsers":` + string(exclUsers) + `,"excludeGroups":` + string(exclGroups) + `}},
			"grantControls":{"operator":"OR","builtInControls":["mfa"]}}`),
		json.RawMessage(`{"id":"` + strengthPolicyID + `","displayName":"Phishing-resistant admins","state":"enabled",
			"conditions":{"clientAppTypes":["all"],"applications":{"includeApplications":["All"]},"users":{"includeRoles":["62e90394-69f5-4237-9190-012177145e10"]}},
			"grantControls":{"operator":"OR","builtInControls":[],"authenticationStrength":{"id":"` + graphfake.StrengthPhishingResistant + `"}}}`),
	}
	if groups > 0 {
		sc.AccessReviews = []graphfake.AccessReview{{
			Definition: json.RawMessage(`{"id":"` + reviewID + `","displayName":"Break-glass review","status":"InProgress",
				"scope":{"@odata.type":"#microsoft.graph.accessReviewQueryScope","query":"/groups/` + t.groups[0] + `/transitiveMembers","queryType":"MicrosoftGraph"},
				"settings":{"recurrence":{"pattern":{"type":"absoluteMonthly","interval":3},"range":{"type":"noEnd"}}}}`),
			Instances: []json.RawMessage{json.RawMessage(`{"id":"eeeeeeee-0000-0000-0000-000000000001","status":"Completed","startDateTime":"now-40d","endDateTime":"now-20d"}`)},
		}}
	}
	t.scenario = sc
	return t
}

// counted starts an emulator seeded with sc and a client whose Graph round trips are counted.
func counted(t *testing.T, fo graphfake.Options, sc graphfake.Scenario, mod func(*Options)) (env, *graphfake.CountingTransport) {
	t.Helper()
	ct := &graphfake.CountingTransport{}
	e := setup(t, fo, "", func(o *Options) {
		o.HTTPClient = &http.Client{Transport: ct}
		if mod != nil {
			mod(o)
		}
	})
	ct.Prefix = e.srv.GraphURL() + "/"
	if err := e.srv.Seed(sc); err != nil {
		t.Fatal(err)
	}
	return e, ct
}

// The round-trip budget: a run that writes nothing reads phase one and phase two in at most three
// Graph round trips, however many break-glass users (1 to 20) and groups (1 to 5) there are.
func TestReadTenantAndDetailsStayWithinThreeRoundTrips(t *testing.T) {
	for _, users := range []int{1, 5, 20} {
		for _, groups := range []int{1, 5} {
			t.Run(fmt.Sprintf("%d users, %d groups", users, groups), func(t *testing.T) {
				tn := newTenantOf(users, groups+1, 3)
				// Graph's own page sizes: 100 for policies and reviews, up to 999 for directory objects.
				e, ct := counted(t, graphfake.Options{PageSize: 999, CollapseAuthenticationStrength: true}, tn.scenario, nil)
				ctx := context.Background()
				phase1, err := e.c.ReadTenant(ctx, snapshot.Query{GroupIDs: tn.groups[:groups], UserIDs: tn.users, Reviews: true})
				if err != nil {
					t.Fatal(err)
				}
				if n := ct.Count(); n != 1 {
					t.Errorf("phase one: %d round trips, want 1", n)
				}
				// Phase two: the group phase one did not read, a user it did not, every sign-in and
				// the review's instances.
				extraUser := "33333333-3333-3333-3333-333333333333"
				phase2, err := e.c.ReadDetails(ctx, snapshot.DetailQuery{GroupIDs: tn.groups[groups:], UserIDs: []string{extraUser},
					SignInUserIDs: tn.users, InstanceDefinitionIDs: []string{reviewID}})
				if err != nil {
					t.Fatal(err)
				}
				if n := ct.Count(); n > 3 {
					t.Errorf("phase one and two: %d round trips, want at most 3", n)
				}
				if n := ct.Count(); n != 2 {
					t.Errorf("phase one and two: %d round trips, want 2 (one batch each)", n)
				}
				if n := e.srv.RoundTrips(); n != ct.Count() {
					t.Errorf("the emulator counted %d round trips, the transport %d", n, ct.Count())
				}

				if len(phase1.Policies) != 2 || len(phase1.Strengths) != 3 {
					t.Fatalf("policies %d, strengths %d; want 2 and the 3 built-in", len(phase1.Policies), len(phase1.Strengths))
				}
				if s := phase1.Policies[1].GrantControls.AuthenticationStrength; s == nil || s.RequirementsSatisfied != "mfa" || len(s.AllowedCombinations) != 3 {
					t.Errorf("strength referenced by id: got %+v, want it completed from the strengths read alongside", s)
				}
				for _, id := range tn.groups[:groups] {
					g := phase1.Groups[id]
					if g.Err != nil || len(g.MemberIDs) != 3 || g.Detail.MemberCount != 3 || !strings.HasPrefix(g.Detail.DisplayName, "Break-glass group") {
						t.Errorf("group %s: got %+v", id, g)
					}
				}
				if phase1.UsersErr != nil || len(phase1.Users) != users {
					t.Fatalf("users: %d, error %v; want %d", len(phase1.Users), phase1.UsersErr, users)
				}
				for i, id := range tn.users {
					u := phase1.Users[id]
					if !u.Found || u.Member.DisplayName != fmt.Sprintf("Break-glass %d", i) || u.Member.AccountEnabled == nil || *u.Member.AccountEnabled != (i%3 != 2) {
						t.Errorf("user %s: got %+v", id, u)
					}
				}
				if phase1.DefinitionsErr != nil || len(phase1.Definitions) != 1 || phase1.Definitions[0].ID != reviewID {
					t.Errorf("definitions: got %+v, %v", phase1.Definitions, phase1.DefinitionsErr)
				}

				extra := phase2.Groups[tn.groups[groups]]
				if extra.Err != nil || len(extra.MemberIDs) != 3 {
					t.Errorf("phase two group: got %+v", extra)
				}
				if u, ok := phase2.Users[extraUser]; !ok || u.Found || phase2.UsersErr != nil {
					t.Errorf("a user the directory does not hold: got %+v (present %t), error %v; want it not found", u, ok, phase2.UsersErr)
				}
				if phase2.SignInsErr != nil || len(phase2.SignIns) != users {
					t.Fatalf("sign-ins: %d, error %v; want %d", len(phase2.SignIns), phase2.SignInsErr, users)
				}
				for i, id := range tn.users {
					// The last success, not the failed attempt of yesterday.
					if d := time.Since(phase2.SignIns[id]); d < time.Duration(10+i-1)*24*time.Hour || d > time.Duration(10+i+1)*24*time.Hour {
						t.Errorf("user %d: last successful sign-in %s ago, want %d days", i, d, 10+i)
					}
				}
				if ins := phase2.Instances[reviewID]; len(ins) != 1 || ins[0].Status != "Completed" || len(phase2.InstanceErrs) != 0 {
					t.Errorf("instances: got %+v, errors %v", phase2.Instances, phase2.InstanceErrs)
				}
			})
		}
	}
}

// A group of 2500 members takes three pages of 999: the pages follow one another in batches, one
// round trip each, and nothing else costs one more.
func TestReadTenantPagesAGroupOf2500(t *testing.T) {
	tn := newTenantOf(2, 1, 2500)
	e, ct := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
	r, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users, Reviews: true})
	if err != nil {
		t.Fatal(err)
	}
	g := r.Groups[tn.groups[0]]
	if g.Err != nil || len(g.MemberIDs) != 2500 || g.Detail.MemberCount != 2500 || len(g.Detail.Members) != exclusion.DefaultMaxMembers || !g.Detail.Truncated {
		t.Fatalf("group: err %v, %d ids, count %d, %d listed, truncated %t", g.Err, len(g.MemberIDs), g.Detail.MemberCount, len(g.Detail.Members), g.Detail.Truncated)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(g.MemberIDs)))) != 2500 {
		t.Error("member ids repeat across pages")
	}
	if n := ct.Count(); n != 3 {
		t.Errorf("round trips: %d, want 3 (one per page of members)", n)
	}
	d, err := e.c.ReadDetails(context.Background(), snapshot.DetailQuery{})
	if err != nil || len(d.Groups)+len(d.Users)+len(d.SignIns)+len(d.Instances) != 0 {
		t.Fatalf("empty phase two: %+v, %v", d, err)
	}
	if n := ct.Count(); n != 3 {
		t.Errorf("round trips after an empty phase two: %d, want still 3", n)
	}
}

// A sub-request throttled inside a 200 batch is sent again after its Retry-After, alone with
// whatever else is pending, and the run sees no error.
func TestReadTenantRetriesAThrottledSubRequest(t *testing.T) {
	tn := newTenantOf(2, 2, 3)
	e, ct := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
	members := "/v1.0/groups/" + tn.groups[1] + "/transitiveMembers"
	e.srv.Inject(graphfake.Fault{Match: "GET " + members, Times: 1, Status: 429, RetryAfter: "0.3"})
	r, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users})
	if err != nil {
		t.Fatal(err)
	}
	if g := r.Groups[tn.groups[1]]; g.Err != nil || len(g.MemberIDs) != 3 {
		t.Fatalf("throttled group: got %+v", g)
	}
	calls := e.srv.CallsTo("GET " + members)
	if len(calls) != 2 || calls[0].Status != 429 || calls[1].Status != 200 || calls[0].Batch == "" {
		t.Fatalf("member reads: %+v, want a batched 429 then a 200", calls)
	}
	if gap := calls[1].Time.Sub(calls[0].Time); gap < 300*time.Millisecond {
		t.Errorf("retried after %s, want at least the 0.3 s Retry-After", gap)
	}
	if n := len(e.srv.CallsTo("GET /v1.0/groups/" + tn.groups[0] + "/transitiveMembers")); n != 1 {
		t.Errorf("the group that was not throttled was read %d times, want once", n)
	}
	if n := ct.Count(); n != 2 {
		t.Errorf("round trips: %d, want 2", n)
	}
}

// A throttled sub-request whose Retry-After would end past the call's budget is not waited for: its
// read fails as retriable, and the rest of the run is read.
func TestReadTenantDoesNotWaitPastItsBudget(t *testing.T) {
	tn := newTenantOf(1, 2, 3)
	e, _ := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, func(o *Options) { o.RetryBudget = time.Second })
	e.srv.Inject(graphfake.Fault{Match: "GET /v1.0/groups/" + tn.groups[1] + "/transitiveMembers", Status: 429, RetryAfter: "30"})
	start := time.Now()
	r, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s: it waited for a Retry-After past its budget", d)
	}
	ge := asError(t, r.Groups[tn.groups[1]].Err)
	if ge.Status != 429 || !ge.Retriable() || ge.RetryAfter != 30*time.Second || ge.Op != "read excluded group" {
		t.Errorf("throttled group: got %+v", ge)
	}
	if g := r.Groups[tn.groups[0]]; g.Err != nil || len(g.MemberIDs) != 3 {
		t.Errorf("other group: got %+v", g)
	}
}

// Errors stay with what failed; only policies and strengths fail the read.
func TestReadTenantKeepsEachFailureWithItsObject(t *testing.T) {
	all := []string{graphfake.PermPolicyReadAll, graphfake.PermGroupMemberReadAll, graphfake.PermUserReadAll, graphfake.PermAccessReviewReadAll, graphfake.PermAuditLogReadAll}
	without := func(p string) []string {
		return slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == p })
	}
	const missing = "bbbbbbbb-0000-0000-0000-00000000dead"

	t.Run("a group that does not exist is NotFound, the rest is read", func(t *testing.T) {
		tn := newTenantOf(1, 1, 2)
		e, _ := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
		r, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: []string{missing, tn.groups[0]}, UserIDs: tn.users})
		if err != nil {
			t.Fatal(err)
		}
		if ge := asError(t, r.Groups[missing].Err); !ge.NotFound() || ge.Retriable() {
			t.Errorf("missing group: got %+v, want a 404", ge)
		}
		if g := r.Groups[tn.groups[0]]; g.Err != nil || len(g.MemberIDs) != 2 {
			t.Errorf("existing group: got %+v", g)
		}
	})
	t.Run("without User.Read.All no user is known and the permission is named", func(t *testing.T) {
		tn := newTenantOf(3, 1, 2)
		e, _ := counted(t, graphfake.Options{PageSize: 999, Roles: without(graphfake.PermUserReadAll)}, tn.scenario, nil)
		r, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users})
		if err != nil {
			t.Fatal(err)
		}
		ge := asError(t, r.UsersErr)
		if !ge.Forbidden() || ge.MissingPermission() != PermReadUsers || ge.LicenceMissing() || len(r.Users) != 0 {
			t.Errorf("users: got %+v and %d users, want a 403 naming %s and none", ge, len(r.Users), PermReadUsers)
		}
		if len(r.Policies) != 2 || r.Groups[tn.groups[0]].Err != nil {
			t.Errorf("the rest was not read: %d policies, group error %v", len(r.Policies), r.Groups[tn.groups[0]].Err)
		}
	})
	t.Run("without AccessReview.Read.All the definitions fail alone", func(t *testing.T) {
		tn := newTenantOf(1, 1, 2)
		e, _ := counted(t, graphfake.Options{PageSize: 999, Roles: without(graphfake.PermAccessReviewReadAll)}, tn.scenario, nil)
		r, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users, Reviews: true})
		if err != nil {
			t.Fatal(err)
		}
		if ge := asError(t, r.DefinitionsErr); ge.MissingPermission() != PermReadAccessReviews || r.Definitions != nil {
			t.Errorf("definitions: got %+v, %v", ge, r.Definitions)
		}
		if r.UsersErr != nil || !r.Users[tn.users[0]].Found {
			t.Errorf("users: %+v, %v", r.Users, r.UsersErr)
		}
	})
	t.Run("without Policy.Read.All the read fails, naming it", func(t *testing.T) {
		tn := newTenantOf(1, 1, 2)
		e, _ := counted(t, graphfake.Options{PageSize: 999, Roles: without(graphfake.PermPolicyReadAll)}, tn.scenario, nil)
		_, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users})
		if ge := asError(t, err); ge.MissingPermission() != PermReadPolicies || ge.Op != "list policies" {
			t.Errorf("got %+v, want a 403 of the policy list naming %s", ge, PermReadPolicies)
		}
	})
	t.Run("a policy page without a collection fails the read", func(t *testing.T) {
		tn := newTenantOf(1, 1, 2)
		e, _ := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
		e.srv.Inject(graphfake.Fault{Match: "GET " + policiesPath, Status: 200, Body: `{"@odata.context":"x"}`})
		_, err := e.c.ReadTenant(context.Background(), snapshot.Query{UserIDs: tn.users})
		if ge := asError(t, err); ge.Code != "MalformedResponse" || ge.Op != "list policies" {
			t.Errorf("got %+v, want a malformed policy page", ge)
		}
	})
	t.Run("a nextLink off the Graph host is not followed", func(t *testing.T) {
		tn := newTenantOf(1, 2, 2)
		e, ct := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
		e.srv.Inject(graphfake.Fault{Match: "GET /v1.0/groups/" + tn.groups[0] + "/transitiveMembers", Status: 200,
			Body: `{"value":[{"id":"cccccccc-0000-0000-0000-000000000001"}],"@odata.nextLink":"https://graph.example.net/v1.0/groups/x/transitiveMembers?$skiptoken=1"}`})
		r, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users})
		if err != nil {
			t.Fatal(err)
		}
		if ge := asError(t, r.Groups[tn.groups[0]].Err); ge.Code != "InvalidPaging" {
			t.Errorf("group with a foreign nextLink: got %+v", ge)
		}
		if g := r.Groups[tn.groups[1]]; g.Err != nil || ct.Count() != 1 {
			t.Errorf("other group %+v, %d round trips", g, ct.Count())
		}
	})
	t.Run("a sub-response that is not an object fails its read, retriable", func(t *testing.T) {
		tn := newTenantOf(1, 1, 2)
		e, _ := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
		e.srv.Inject(graphfake.Fault{Match: "GET /v1.0/groups/" + tn.groups[0], Status: 200, Body: "<html>proxy</html>", ContentType: "text/html"})
		r, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users})
		if err != nil {
			t.Fatal(err)
		}
		if ge := asError(t, r.Groups[tn.groups[0]].Err); ge.Code != "MalformedResponse" || !ge.Retriable() {
			t.Errorf("got %+v", ge)
		}
	})
	t.Run("a 503 without Retry-After is retried after a backoff", func(t *testing.T) {
		tn := newTenantOf(2, 1, 2)
		e, ct := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
		e.srv.Inject(graphfake.Fault{Match: "GET /v1.0/users", Times: 2, Status: 503})
		r, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users})
		if err != nil {
			t.Fatal(err)
		}
		if r.UsersErr != nil || !r.Users[tn.users[1]].Found || ct.Count() != 3 {
			t.Errorf("users %+v (%v) after %d round trips, want them read on the third", r.Users, r.UsersErr, ct.Count())
		}
	})
	t.Run("a sub-request throttled more often than MaxRetries fails, naming its attempts", func(t *testing.T) {
		tn := newTenantOf(1, 1, 2)
		e, ct := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, func(o *Options) { o.MaxRetries = 2 })
		e.srv.Inject(graphfake.Fault{Match: "GET /v1.0/identityGovernance/accessReviews/definitions", Status: 429, RetryAfter: "0"})
		r, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users, Reviews: true})
		if err != nil {
			t.Fatal(err)
		}
		if ge := asError(t, r.DefinitionsErr); ge.Status != 429 || ge.Attempts != 3 || !ge.Retriable() {
			t.Errorf("got %+v, want a 429 after 3 attempts", ge)
		}
		if ct.Count() != 3 {
			t.Errorf("round trips: %d, want 3", ct.Count())
		}
	})
	t.Run("a batch Graph cannot serve is retried as a whole", func(t *testing.T) {
		tn := newTenantOf(1, 1, 2)
		e, ct := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
		e.srv.Inject(graphfake.Fault{Match: "POST /v1.0/$batch", Times: 1, Status: 503, RetryAfter: "0"})
		r, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users})
		if err != nil || len(r.Policies) != 2 {
			t.Fatalf("got %d policies, %v", len(r.Policies), err)
		}
		if n := ct.Count(); n != 2 {
			t.Errorf("round trips: %d, want 2 (the 503 and its retry)", n)
		}
	})
	t.Run("a batch of reads is sent again after a dropped connection or a gateway timeout", func(t *testing.T) {
		tn := newTenantOf(1, 1, 2)
		e, ct := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
		e.srv.Inject(graphfake.Fault{Match: "POST /v1.0/$batch", Times: 1, Drop: true})
		e.srv.Inject(graphfake.Fault{Match: "POST /v1.0/$batch", Times: 1, Status: 504})
		r, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users})
		if err != nil || len(r.Policies) != 2 {
			t.Fatalf("got %d policies, %v", len(r.Policies), err)
		}
		if n := ct.Count(); n != 3 {
			t.Errorf("round trips: %d, want 3 (dropped, 504, served)", n)
		}
	})
	t.Run("a batch that keeps failing fails the read, retriable", func(t *testing.T) {
		tn := newTenantOf(1, 1, 2)
		e, _ := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
		e.srv.Inject(graphfake.Fault{Match: "POST /v1.0/$batch", Status: 503, RetryAfter: "0"})
		_, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users})
		if ge := asError(t, err); ge.Status != 503 || !ge.Retriable() || ge.Op != "list policies" {
			t.Errorf("got %+v", ge)
		}
	})
}

// Sign-in activity is read apart from the users: a missing AuditLog.Read.All or a tenant without a
// premium licence loses the sign-ins only, and says which of the two it is.
func TestReadDetailsSignInFailures(t *testing.T) {
	tn := newTenantOf(3, 1, 2)
	q := snapshot.DetailQuery{UserIDs: tn.users, SignInUserIDs: tn.users}
	t.Run("no premium licence", func(t *testing.T) {
		e, _ := counted(t, graphfake.Options{PageSize: 999, NoPremiumLicence: true}, tn.scenario, nil)
		d, err := e.c.ReadDetails(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		ge := asError(t, d.SignInsErr)
		if !ge.LicenceMissing() || !ge.Forbidden() || ge.MissingPermission() != "" || ge.Permission != "" || ge.Retriable() {
			t.Errorf("got %+v, want a licence 403 that names no permission", ge)
		}
		if b := ge.Brief(); !strings.Contains(b, "P1 or P2") || !strings.Contains(b, "no permission is missing") {
			t.Errorf("brief %q does not say that a licence is missing", b)
		}
		if !strings.Contains(ge.Error(), "P1 or P2") || strings.Contains(ge.Error(), "needs the") {
			t.Errorf("error %q", ge.Error())
		}
		if len(d.SignIns) != 0 || d.UsersErr != nil || !d.Users[tn.users[0]].Found {
			t.Errorf("users %+v (%v), sign-ins %v", d.Users, d.UsersErr, d.SignIns)
		}
	})
	t.Run("no AuditLog.Read.All", func(t *testing.T) {
		e, _ := counted(t, graphfake.Options{PageSize: 999, Roles: []string{graphfake.PermPolicyReadAll, graphfake.PermGroupMemberReadAll, graphfake.PermUserReadAll}}, tn.scenario, nil)
		d, err := e.c.ReadDetails(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		ge := asError(t, d.SignInsErr)
		if ge.LicenceMissing() || ge.MissingPermission() != PermReadUsers+" and "+PermReadSignIns {
			t.Errorf("got %+v, want a 403 naming %s", ge, PermReadSignIns)
		}
		if !d.Users[tn.users[2]].Found {
			t.Errorf("users: %+v", d.Users)
		}
	})
	t.Run("a definition that is gone fails alone", func(t *testing.T) {
		e, _ := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
		const gone = "dddddddd-0000-0000-0000-00000000dead"
		d, err := e.c.ReadDetails(context.Background(), snapshot.DetailQuery{InstanceDefinitionIDs: []string{reviewID, gone}})
		if err != nil {
			t.Fatal(err)
		}
		if ge := asError(t, d.InstanceErrs[gone]); !ge.NotFound() {
			t.Errorf("gone: %+v", ge)
		}
		if len(d.Instances[reviewID]) != 1 {
			t.Errorf("instances: %+v", d.Instances)
		}
	})
}

// More than 20 requests travel in several batches of at most 20, sent in the same round.
func TestReadTenantSplitsBatchesOfTwenty(t *testing.T) {
	tn := newTenantOf(20, 12, 1)
	e, ct := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
	r, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users, Reviews: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Groups) != 12 || len(r.Users) != 20 {
		t.Fatalf("groups %d, users %d", len(r.Groups), len(r.Users))
	}
	// 2 + 24 + 2 + 1 = 29 requests: two batches.
	batches := e.srv.CallsTo("POST /v1.0/$batch")
	if len(batches) != 2 || ct.Count() != 2 {
		t.Fatalf("batches: %d, round trips %d; want 2", len(batches), ct.Count())
	}
	total := 0
	for _, b := range batches {
		var p struct{ Requests []json.RawMessage }
		if err := json.Unmarshal(b.Body, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Requests) > 20 {
			t.Errorf("a batch carried %d requests", len(p.Requests))
		}
		total += len(p.Requests)
	}
	if total != 29 {
		t.Errorf("requests: %d, want 29", total)
	}
}

// The batched reads answer what the per-call methods answer on the same tenant, with small pages
// so that every read follows nextLinks inside batches, and strengths referenced by id.
func TestBatchedReadsEqualThePerCallMethods(t *testing.T) {
	e := setup(t, graphfake.Options{PageSize: 2, CollapseAuthenticationStrength: true}, "drifted.json", nil)
	ctx := context.Background()
	const deleted = "44444444-4444-4444-4444-444444444444"
	users := []string{"11111111-1111-1111-1111-111111111111", bgUser2, "33333333-3333-3333-3333-333333333333", deleted}
	groups := []string{breakGlassGroup, adminsGroup, secondaryGroup}
	r, err := e.c.ReadTenant(ctx, snapshot.Query{GroupIDs: groups, UserIDs: users, Reviews: true, MaxMembers: 2})
	if err != nil {
		t.Fatal(err)
	}

	ps, err := e.c.ListPolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Policies, ps) {
		t.Errorf("policies differ:\nbatched  %+v\nper call %+v", r.Policies, ps)
	}
	ss, err := e.c.AuthenticationStrengths(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Strengths, ss) {
		t.Errorf("strengths differ:\nbatched  %+v\nper call %+v", r.Strengths, ss)
	}
	for _, id := range groups {
		d, err := e.c.GroupDetail(ctx, id, 2)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := e.c.GroupTransitiveMemberIDs(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		g := r.Groups[id]
		if g.Err != nil || !reflect.DeepEqual(g.Detail, d) || !reflect.DeepEqual(g.MemberIDs, ids) {
			t.Errorf("group %s differs:\nbatched  %+v %v (%v)\nper call %+v %v", id, g.Detail, g.MemberIDs, g.Err, d, ids)
		}
	}
	defs, err := e.c.AccessReviewDefinitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Definitions, defs) {
		t.Errorf("definitions differ:\nbatched  %+v\nper call %+v", r.Definitions, defs)
	}

	var defIDs []string
	for _, d := range defs {
		defIDs = append(defIDs, d.ID)
	}
	details, err := e.c.ReadDetails(ctx, snapshot.DetailQuery{UserIDs: users, SignInUserIDs: users, InstanceDefinitionIDs: defIDs})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range defIDs {
		ins, err := e.c.AccessReviewInstances(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(details.Instances[id], ins) {
			t.Errorf("instances of %s differ:\nbatched  %+v\nper call %+v", id, details.Instances[id], ins)
		}
	}
	for _, id := range users {
		exists, err := e.c.UserExists(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range []snapshot.User{r.Users[id], details.Users[id]} {
			if u.Found != exists {
				t.Errorf("user %s: found %t, UserExists %t", id, u.Found, exists)
			}
		}
		if !exists {
			continue
		}
		m, err := e.c.UserDetail(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		got := r.Users[id].Member
		if last, ok := details.SignIns[id]; ok {
			got.LastSignIn = &last
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("user %s differs:\nbatched  %+v\nper call %+v", id, got, m)
		}
	}
}

// UserDetail takes the last successful sign-in: a recent failed attempt is not use of the account.
func TestUserDetailIgnoresFailedSignIns(t *testing.T) {
	e := setup(t, graphfake.Options{}, "", nil)
	const u = "55555555-5555-5555-5555-555555555555"
	if err := e.srv.Seed(graphfake.Scenario{Users: map[string]json.RawMessage{
		u: json.RawMessage(`{"displayName":"Dormant","accountEnabled":true,"signInActivity":{
			"lastSignInDateTime":"now-0d","lastNonInteractiveSignInDateTime":"now-1d","lastSuccessfulSignInDateTime":"now-300d"}}`),
		"66666666-6666-6666-6666-666666666666": json.RawMessage(`{"displayName":"Only failures","accountEnabled":true,"signInActivity":{
			"lastSignInDateTime":"now-0d","lastNonInteractiveSignInDateTime":null,"lastSuccessfulSignInDateTime":null}}`),
	}}); err != nil {
		t.Fatal(err)
	}
	m, err := e.c.UserDetail(context.Background(), u, true)
	if err != nil {
		t.Fatal(err)
	}
	if m.LastSignIn == nil || time.Since(*m.LastSignIn) < 299*24*time.Hour {
		t.Errorf("last sign-in: got %v, want the success 300 days ago", m.LastSignIn)
	}
	m, err = e.c.UserDetail(context.Background(), "66666666-6666-6666-6666-666666666666", true)
	if err != nil {
		t.Fatal(err)
	}
	if m.LastSignIn != nil {
		t.Errorf("last sign-in: got %v, want none: every attempt failed", m.LastSignIn)
	}
}

// In a tenant without Entra ID P1 or P2, UserDetail's sign-in read says that a licence is missing,
// not a permission, and the account is still read without it.
func TestUserDetailWithoutPremiumLicence(t *testing.T) {
	e := setup(t, graphfake.Options{NoPremiumLicence: true}, "drifted.json", nil)
	_, err := e.c.UserDetail(context.Background(), bgUser2, true)
	ge := asError(t, err)
	if !ge.LicenceMissing() || ge.MissingPermission() != "" || ge.Retriable() {
		t.Errorf("got %+v, want a licence 403 naming no permission", ge)
	}
	m, err := e.c.UserDetail(context.Background(), bgUser2, false)
	if err != nil || m.DisplayName != "Break-glass 2" {
		t.Errorf("without sign-ins: %+v, %v", m, err)
	}
}

// The batched read keeps the per-policy rule of ListPolicies: a policy whose state caguard does not
// know, and a strength holding a requirement and a method it does not know, are read (so the rules
// can fail them alone), not refused; the batch costs no extra round trip for them.
func TestReadTenantKeepsUnknownValuesForThePolicyVerdict(t *testing.T) {
	const custom = "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"
	tn := newTenantOf(1, 1, 2)
	tn.scenario.Policies = append(tn.scenario.Policies, json.RawMessage(`{"id":"p-odd","state":"onAndOff","displayName":"odd","conditions":{}}`))
	tn.scenario.AuthenticationStrengths = []json.RawMessage{json.RawMessage(`{"id":"` + custom +
		`","displayName":"Passkeys and newer","policyType":"custom","requirementsSatisfied":"mfa,futureRequirement",` +
		`"allowedCombinations":["fido2","password,futureMethod"]}`)}
	e, ct := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
	r, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users})
	if err != nil {
		t.Fatalf("read: %v, want the policies with the odd one kept", err)
	}
	var odd *capolicy.Policy
	for i := range r.Policies {
		if r.Policies[i].ID == "p-odd" {
			odd = &r.Policies[i]
		}
	}
	if len(r.Policies) != 3 || odd == nil || odd.State != capolicy.StateUnknown || odd.UnrecognisedState != "onAndOff" {
		t.Fatalf("policies: got %d, odd %+v; want 3 with p-odd in an unknown state naming onAndOff", len(r.Policies), odd)
	}
	var found *capolicy.AuthenticationStrength
	for i := range r.Strengths {
		if r.Strengths[i].ID == custom {
			found = &r.Strengths[i]
		}
	}
	if found == nil || found.RequirementsSatisfied != "mfa,futureRequirement" || !slices.Contains(found.AllowedCombinations, "password,futureMethod") {
		t.Errorf("strength: got %+v, want the unknown requirement and method kept", found)
	}
	if n := ct.Count(); n != 1 {
		t.Errorf("round trips: %d, want 1", n)
	}
}

// A 403 inside a 200 batch says, in words safe to show, which permission the app lacks; a policy
// whose values cannot be decoded is read as a policy that fails alone, naming the value Graph sent,
// and every other policy is still judged; an item that is not a JSON object fails the read naming it.
func TestReadTenantFailuresSayWhatFailed(t *testing.T) {
	t.Run("403 in the batch", func(t *testing.T) {
		tn := newTenantOf(1, 1, 2)
		e, ct := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
		e.srv.Inject(graphfake.Fault{Match: "GET /v1.0/identity/conditionalAccess/policies", Status: 403, Code: "Authorization_RequestDenied"})
		_, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users})
		var ge *Error
		if !errors.As(err, &ge) || ge.Status != http.StatusForbidden {
			t.Fatalf("read: %v, want a 403 *Error", err)
		}
		if w := ge.Describe(); !strings.Contains(w, "403") || !strings.Contains(w, PermReadPolicies) {
			t.Errorf("words %q: want the status and %s", w, PermReadPolicies)
		}
		// The 403 came inside the batch: one round trip, a POST /$batch, no request of its own.
		batches, denied := 0, false
		for _, c := range e.srv.Calls() {
			if graphfake.IsBatch(c) {
				batches++
			}
			denied = denied || c.Path == "/v1.0/identity/conditionalAccess/policies" && c.Batch != "" && c.Status == http.StatusForbidden
		}
		if n := ct.Count(); n != 1 || batches != 1 || !denied {
			t.Errorf("round trips %d, batches %d, 403 inside a batch %v: want one batch holding the denied read", n, batches, denied)
		}
	})
	t.Run("a policy whose values cannot be decoded", func(t *testing.T) {
		tn := newTenantOf(2, 0, 0) // no group: the managed policy can then be compliant
		tn.scenario.Policies = append(tn.scenario.Policies, json.RawMessage(`{"id":"p-broken","displayName":"Broken","state":"enabled","conditions":"not an object"}`))
		e, ct := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
		r, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users})
		if err != nil {
			t.Fatalf("read: %v, want the policies with the broken one kept", err)
		}
		if n := ct.Count(); n != 1 {
			t.Errorf("round trips: %d, want 1", n)
		}
		if len(r.Policies) != 3 {
			t.Fatalf("policies: got %d, want 3", len(r.Policies))
		}
		rep := capolicy.Evaluate(capolicy.Tenant{Policies: r.Policies, AuthenticationStrengths: r.Strengths},
			capolicy.Config{BreakGlassUserIDs: tn.users, BreakGlassGroupIDs: tn.groups})
		var broken, managed *capolicy.PolicyResult
		for i := range rep.Policies {
			switch rep.Policies[i].ID {
			case "p-broken":
				broken = &rep.Policies[i]
			case managedPolicyID:
				managed = &rep.Policies[i]
			}
		}
		if broken == nil || managed == nil {
			t.Fatalf("results %+v: want p-broken and the managed policy", rep.Policies)
		}
		if broken.DisplayName != "Broken" || broken.State != capolicy.StateEnabled || broken.Compliant {
			t.Errorf("p-broken: %+v, want it named, enabled and failing", broken)
		}
		want := capolicy.UnknownValue{Field: "conditions", Value: `"not an object"`}
		found := false
		for _, rs := range broken.Reasons {
			found = found || rs.Code == capolicy.CodeUnrecognisedValue && slices.Contains(rs.Unrecognised, want)
		}
		if !found {
			t.Errorf("p-broken reasons %+v: want %s naming %+v", broken.Reasons, capolicy.CodeUnrecognisedValue, want)
		}
		if !managed.Compliant || !rep.Compliant {
			t.Errorf("managed policy compliant %v, tenant %s: want the other policies still judged (%+v)", managed.Compliant, rep.Verdict, managed.Reasons)
		}
	})
	t.Run("an item that is not an object", func(t *testing.T) {
		tn := newTenantOf(1, 1, 2)
		e, _ := counted(t, graphfake.Options{PageSize: 999}, tn.scenario, nil)
		e.srv.Inject(graphfake.Fault{Match: "GET /v1.0/identity/conditionalAccess/policies", Status: 200, Body: `{"value":[42]}`})
		_, err := e.c.ReadTenant(context.Background(), snapshot.Query{GroupIDs: tn.groups, UserIDs: tn.users})
		var ge *Error
		if !errors.As(err, &ge) || ge.Code != "InvalidPolicy" {
			t.Fatalf("read: %v, want InvalidPolicy", err)
		}
		if w := ge.Describe(); !strings.Contains(w, "item 0 of page 1") {
			t.Errorf("words %q: want the item named", w)
		}
	})
}
