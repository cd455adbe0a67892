package graphfake

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func reviewScenario(t *testing.T) *Scenario {
	t.Helper()
	sc, err := ReadScenario(filepath.Join("testdata", "reviews.json"))
	if err != nil {
		t.Fatal(err)
	}
	return &sc
}

func TestAccessReviewDefinitionsPageAndKeepTheirShape(t *testing.T) {
	s := start(t, Options{PageSize: 2}, reviewScenario(t))
	first := call(t, "GET", s.GraphURL()+"/identityGovernance/accessReviews/definitions", s.Token(), nil, nil).json(t)
	values := first["value"].([]any)
	if len(values) != 2 {
		t.Fatalf("first page: got %d definitions, want 2", len(values))
	}
	scope := values[0].(map[string]any)["scope"].(map[string]any)
	if got := scope["@odata.type"]; got != "#microsoft.graph.accessReviewQueryScope" {
		t.Errorf("scope type: got %v", got)
	}
	pattern := values[0].(map[string]any)["settings"].(map[string]any)["recurrence"].(map[string]any)["pattern"].(map[string]any)
	if pattern["type"] != "absoluteMonthly" || pattern["interval"] != float64(3) {
		t.Errorf("recurrence pattern: got %v", pattern)
	}
	next, _ := first["@odata.nextLink"].(string)
	if !strings.HasPrefix(next, s.GraphURL()+"/identityGovernance/accessReviews/definitions?") {
		t.Fatalf("nextLink: got %q, want an absolute link to the next page", next)
	}
	second := call(t, "GET", next, s.Token(), nil, nil).json(t)
	if n := len(second["value"].([]any)); n != 1 || second["@odata.nextLink"] != nil {
		t.Errorf("second page: got %d definitions and nextLink %v, want 1 and none", n, second["@odata.nextLink"])
	}

	inst := call(t, "GET", s.GraphURL()+"/identityGovernance/accessReviews/definitions/d0000000-0000-0000-0000-000000000001/instances?$top=10", s.Token(), nil, nil).json(t)
	if n := len(inst["value"].([]any)); n != 2 {
		t.Errorf("instances: got %d, want 2", n)
	}
	empty := call(t, "GET", s.GraphURL()+"/identityGovernance/accessReviews/definitions/d0000000-0000-0000-0000-000000000002/instances", s.Token(), nil, nil).json(t)
	if v, ok := empty["value"].([]any); !ok || len(v) != 0 {
		t.Errorf("instances of a review with none: got %v, want an empty array", empty["value"])
	}
	if r := call(t, "GET", s.GraphURL()+"/identityGovernance/accessReviews/definitions/nope/instances", s.Token(), nil, nil); r.status != 404 {
		t.Errorf("instances of an unknown definition: got %d, want 404", r.status)
	}
}

func TestGovernanceReadsNeedTheirPermissions(t *testing.T) {
	base := []string{PermPolicyReadAll, PermGroupMemberReadAll}
	cases := []struct {
		name  string
		roles []string
		path  string
		want  int
	}{
		{"access reviews without AccessReview.Read.All are forbidden", base, "/identityGovernance/accessReviews/definitions", 403},
		{"access reviews with AccessReview.Read.All are read", append(base, PermAccessReviewReadAll), "/identityGovernance/accessReviews/definitions", 200},
		{"a user without User.Read.All is forbidden", base, "/users/11111111-1111-1111-1111-111111111111", 403},
		{"a user with User.Read.All is read", append(base, PermUserReadAll), "/users/11111111-1111-1111-1111-111111111111?$select=id,accountEnabled", 200},
		{"sign-in activity without AuditLog.Read.All is forbidden", append(base, PermUserReadAll), "/users/11111111-1111-1111-1111-111111111111?$select=id,signInActivity", 403},
		{"sign-in activity with AuditLog.Read.All is read", append(base, PermUserReadAll, PermAuditLogReadAll), "/users/11111111-1111-1111-1111-111111111111?$select=id,signInActivity", 200},
		{"a group is read with GroupMember.Read.All", base, "/groups/bbbbbbbb-0000-0000-0000-000000000001?$select=id,displayName,groupTypes", 200},
		{"an unknown user is not found", append(base, PermUserReadAll), "/users/99999999-9999-9999-9999-999999999999", 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, Options{Roles: tc.roles}, reviewScenario(t))
			if r := call(t, "GET", s.GraphURL()+tc.path, s.Token(), nil, nil); r.status != tc.want {
				t.Errorf("GET %s: got %d %s, want %d", tc.path, r.status, r.body, tc.want)
			}
		})
	}
}

func TestMembersAndUsersCarryAccountDetails(t *testing.T) {
	s := start(t, Options{PageSize: 10}, reviewScenario(t))
	m := call(t, "GET", s.GraphURL()+"/groups/bbbbbbbb-0000-0000-0000-000000000001/transitiveMembers?$select=id,displayName,accountEnabled", s.Token(), nil, nil).json(t)
	members := m["value"].([]any)
	if len(members) != 2 {
		t.Fatalf("members: got %d, want 2", len(members))
	}
	second := members[1].(map[string]any)
	if second["@odata.type"] != "#microsoft.graph.user" || second["displayName"] != "Break Glass 2" || second["accountEnabled"] != false {
		t.Errorf("member: got %v, want a disabled user named Break Glass 2", second)
	}
	u := call(t, "GET", s.GraphURL()+"/users/11111111-1111-1111-1111-111111111111?$select=id,signInActivity", s.Token(), nil, nil).json(t)
	sia, _ := u["signInActivity"].(map[string]any)
	if sia["lastSignInDateTime"] != "2026-11-20T08:00:00Z" {
		t.Errorf("signInActivity: got %v", u["signInActivity"])
	}
	if _, ok := u["displayName"]; ok {
		t.Errorf("user: $select was not honoured: %v", u)
	}
	g := call(t, "GET", s.GraphURL()+"/groups/bbbbbbbb-0000-0000-0000-000000000001", s.Token(), nil, nil).json(t)
	if g["displayName"] != "Break glass" || g["isAssignableToRole"] != true {
		t.Errorf("group: got %v", g)
	}
}

func TestRelativeTimesAreResolvedWhenSeeded(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 30, 0, 0, time.UTC)
	sc := &Scenario{
		Users: map[string]json.RawMessage{"u1": json.RawMessage(`{"accountEnabled":true,"signInActivity":{"lastSignInDateTime":"now-200d"}}`)},
		AccessReviews: []AccessReview{{
			Definition: json.RawMessage(`{"id":"d1","scope":{"query":"/groups/g1/members"}}`),
			Instances:  []json.RawMessage{json.RawMessage(`{"id":"i1","status":"Completed","endDateTime":"now-20d","startDateTime":"2026-01-01T00:00:00Z"}`)},
		}},
	}
	s := start(t, Options{Now: func() time.Time { return now }}, sc)
	u := call(t, "GET", s.GraphURL()+"/users/u1?$select=signInActivity", s.Token(), nil, nil).json(t)
	if got := u["signInActivity"].(map[string]any)["lastSignInDateTime"]; got != "2026-05-17T10:30:00Z" {
		t.Errorf("lastSignInDateTime: got %v, want 2026-05-17T10:30:00Z", got)
	}
	in := call(t, "GET", s.GraphURL()+"/identityGovernance/accessReviews/definitions/d1/instances", s.Token(), nil, nil).json(t)
	first := in["value"].([]any)[0].(map[string]any)
	if first["endDateTime"] != "2026-11-13T10:30:00Z" || first["startDateTime"] != "2026-01-01T00:00:00Z" {
		t.Errorf("instance: got %v", first)
	}
}

func TestMembersAreLimitedWithoutPermissionToReadUsers(t *testing.T) {
	s := start(t, Options{Roles: []string{PermGroupMemberReadAll}}, reviewScenario(t))
	m := call(t, "GET", s.GraphURL()+"/groups/bbbbbbbb-0000-0000-0000-000000000001/transitiveMembers?$select=id,displayName,accountEnabled", s.Token(), nil, nil).json(t)
	first := m["value"].([]any)[0].(map[string]any)
	if first["id"] != "11111111-1111-1111-1111-111111111111" || first["@odata.type"] != "#microsoft.graph.user" || first["displayName"] != nil || first["accountEnabled"] != nil {
		t.Errorf("member without User.Read.All: got %v, want id and type only", first)
	}
}

// An accessReviewInstance's scope is "Created based on scope and instanceEnumerationScope at the
// accessReviewScheduleDefinition level" (accessReviewInstance resource type, v1.0): an instance of a
// review of one group carries the definition's scope; an instance of a review of many groups names
// its own group, which only the scenario knows.
func TestInstancesOfAReviewOfOneGroupCarryTheDefinitionScope(t *testing.T) {
	const group = "4444d821-ca3b-45cc-98ee-54c00a04deef"
	scope := `{"@odata.type":"#microsoft.graph.accessReviewQueryScope","query":"/groups/` + group + `/transitiveMembers","queryType":"MicrosoftGraph"}`
	perGroup := `{"@odata.type":"#microsoft.graph.accessReviewQueryScope","query":"/v1.0/groups/` + group + `/members/microsoft.graph.user/?$count=true","queryType":"MicrosoftGraph","queryRoot":null}`
	instance := json.RawMessage(`{"id":"i1","status":"Completed","startDateTime":"2026-11-01T00:00:00Z","endDateTime":"2026-11-15T00:00:00Z"}`)
	sc := &Scenario{AccessReviews: []AccessReview{
		{Definition: json.RawMessage(`{"id":"portal","scope":` + scope + `,"instanceEnumerationScope":{"@odata.type":"#microsoft.graph.accessReviewQueryScope","query":"/v1.0/groups/` + group + `","queryType":"MicrosoftGraph"}}`),
			Instances: []json.RawMessage{instance}},
		{Definition: json.RawMessage(`{"id":"api","scope":` + scope + `,"instanceEnumerationScope":null}`),
			Instances: []json.RawMessage{instance}},
		{Definition: json.RawMessage(`{"id":"many","scope":{"@odata.type":"#microsoft.graph.accessReviewQueryScope","query":"./members/microsoft.graph.user/?$count=true","queryType":"MicrosoftGraph"},` +
			`"instanceEnumerationScope":{"@odata.type":"#microsoft.graph.accessReviewQueryScope","query":"/groups?$filter=(groupTypes/any(c:c+eq+'Unified'))&$count=true","queryType":"MicrosoftGraph"}}`),
			Instances: []json.RawMessage{instance, json.RawMessage(`{"id":"i2","status":"Completed","scope":` + perGroup + `}`)}},
	}}
	s := start(t, Options{}, sc)
	instances := func(id string) []any {
		return call(t, "GET", s.GraphURL()+"/identityGovernance/accessReviews/definitions/"+id+"/instances", s.Token(), nil, nil).json(t)["value"].([]any)
	}
	var want any
	if err := json.Unmarshal([]byte(scope), &want); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"portal", "api"} {
		got := instances(id)[0].(map[string]any)["scope"]
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: instance scope: got %v, want the definition's %v", id, got, want)
		}
	}
	many := instances("many")
	if got, ok := many[0].(map[string]any)["scope"]; ok {
		t.Errorf("review of many groups: instance seeded without a scope got %v, want none", got)
	}
	var wantPerGroup any
	if err := json.Unmarshal([]byte(perGroup), &wantPerGroup); err != nil {
		t.Fatal(err)
	}
	if got := many[1].(map[string]any)["scope"]; !reflect.DeepEqual(got, wantPerGroup) {
		t.Errorf("review of many groups: seeded instance scope got %v, want it verbatim %v", got, wantPerGroup)
	}
}

// The list-definitions doc pages with $top and $skip ("GET .../definitions?$top=100&$skip=0").
func TestAccessReviewDefinitionsPageWithSkip(t *testing.T) {
	s := start(t, Options{PageSize: 2}, reviewScenario(t))
	ids := func(page map[string]any) []string {
		var out []string
		for _, v := range page["value"].([]any) {
			out = append(out, v.(map[string]any)["id"].(string))
		}
		return out
	}
	all := ids(call(t, "GET", s.GraphURL()+"/identityGovernance/accessReviews/definitions?$top=100&$skip=0", s.Token(), nil, nil).json(t))
	if len(all) != 2 {
		t.Fatalf("first page with $skip=0: got %v, want 2 definitions", all)
	}
	skipped := call(t, "GET", s.GraphURL()+"/identityGovernance/accessReviews/definitions?$top=1&$skip=1", s.Token(), nil, nil).json(t)
	if got := ids(skipped); len(got) != 1 || got[0] != all[1] {
		t.Errorf("$top=1&$skip=1: got %v, want [%s]", got, all[1])
	}
	next, _ := skipped["@odata.nextLink"].(string)
	if !strings.Contains(next, "%24skip=1") && !strings.Contains(next, "$skip=1") {
		t.Fatalf("nextLink %q does not keep $skip", next)
	}
	last := ids(call(t, "GET", next, s.Token(), nil, nil).json(t))
	if len(last) != 1 || last[0] == all[0] || last[0] == all[1] {
		t.Errorf("the page after $skip=1: got %v, want the third definition only", last)
	}
	if r := call(t, "GET", s.GraphURL()+"/identityGovernance/accessReviews/definitions?$skip=-1", s.Token(), nil, nil); r.status != 400 {
		t.Errorf("$skip=-1: got %d, want 400", r.status)
	}
	if got := ids(call(t, "GET", s.GraphURL()+"/identityGovernance/accessReviews/definitions?$skip=10", s.Token(), nil, nil).json(t)); len(got) != 0 {
		t.Errorf("$skip past the end: got %v, want an empty page", got)
	}
}
