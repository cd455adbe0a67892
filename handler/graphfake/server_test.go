package graphfake

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const policiesPath = "/v1.0/identity/conditionalAccess/policies"

func start(t *testing.T, opts Options, sc *Scenario) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if sc != nil {
		if err := s.Seed(*sc); err != nil {
			t.Fatalf("Seed: %v", err)
		}
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

func (r reply) errorCode(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func call(t *testing.T, method, url, token string, body []byte, hdr map[string]string) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func policies(n int) *Scenario {
	sc := &Scenario{}
	for i := range n {
		sc.Policies = append(sc.Policies, json.RawMessage(`{"id":"p`+string(rune('0'+i))+`","displayName":"policy `+string(rune('0'+i))+`","state":"enabled","conditions":{"users":{"includeUsers":["All"]}}}`))
	}
	return sc
}

func TestGraphRequiresAnIssuedToken(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	s := start(t, Options{Now: clock}, policies(1))
	good := s.Token()
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString([]byte("nope"))

	expiredSrv := start(t, Options{Now: clock, TokenLifetime: time.Nanosecond}, policies(1))
	expired := expiredSrv.Token()

	tests := []struct {
		name, url, token string
		want             int
	}{
		{"no token is a 401", s.GraphURL() + "/identity/conditionalAccess/policies", "", 401},
		{"a token this server did not sign is a 401", s.GraphURL() + "/identity/conditionalAccess/policies", forged, 401},
		{"a token that is not a JWT is a 401", s.GraphURL() + "/identity/conditionalAccess/policies", "abc", 401},
		{"an expired token is a 401", expiredSrv.GraphURL() + "/identity/conditionalAccess/policies", expired, 401},
		{"an issued token is accepted", s.GraphURL() + "/identity/conditionalAccess/policies", good, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, "GET", tt.url, tt.token, nil, nil)
			if r.status != tt.want {
				t.Fatalf("status: got %d, want %d (%s)", r.status, tt.want, r.body)
			}
			if tt.want == 401 && r.errorCode(t) != "InvalidAuthenticationToken" {
				t.Errorf("code: got %q, want InvalidAuthenticationToken", r.errorCode(t))
			}
		})
	}
}

func TestTokensCarryIdentityClaims(t *testing.T) {
	s := start(t, Options{ObjectID: "obj-1"}, &Scenario{TenantID: "tenant-1"})
	parts := strings.Split(s.Token(), ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c claims
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if c.OID != "obj-1" || c.TID != "tenant-1" || c.AppID != DefaultClientID {
		t.Errorf("claims: got oid=%q tid=%q appid=%q", c.OID, c.TID, c.AppID)
	}
}

func TestIdentityEndpoint(t *testing.T) {
	s := start(t, Options{}, policies(1))
	ep := s.IdentityEndpoint() + "?api-version=2019-08-01&resource=https%3A%2F%2Fgraph.microsoft.com"

	t.Run("a wrong identity header is refused", func(t *testing.T) {
		r := call(t, "GET", ep, "", nil, map[string]string{"X-IDENTITY-HEADER": "wrong"})
		if r.status != 401 {
			t.Fatalf("status: got %d, want 401", r.status)
		}
	})
	t.Run("a user-assigned identity gets a token that Graph accepts", func(t *testing.T) {
		r := call(t, "GET", ep+"&client_id=uami-1", "", nil, map[string]string{"X-IDENTITY-HEADER": s.IdentityHeader()})
		if r.status != 200 {
			t.Fatalf("status: got %d, want 200 (%s)", r.status, r.body)
		}
		m := r.json(t)
		for _, k := range []string{"access_token", "expires_on", "resource", "token_type", "client_id"} {
			if _, ok := m[k]; !ok {
				t.Errorf("answer lacks %q: %s", k, r.body)
			}
		}
		if m["client_id"] != "uami-1" || m["resource"] != "https://graph.microsoft.com" {
			t.Errorf("got client_id=%v resource=%v", m["client_id"], m["resource"])
		}
		tok, _ := m["access_token"].(string)
		if g := call(t, "GET", s.GraphURL()+"/identity/conditionalAccess/policies", tok, nil, nil); g.status != 200 {
			t.Errorf("Graph with the issued token: got %d, want 200", g.status)
		}
	})
}

func TestListPagesWithAbsoluteNextLinks(t *testing.T) {
	s := start(t, Options{PageSize: 2}, policies(5))
	tok := s.Token()
	url := s.GraphURL() + "/identity/conditionalAccess/policies"
	var ids []string
	pages := 0
	for url != "" {
		pages++
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		r := call(t, "GET", url, tok, nil, nil)
		if r.status != 200 {
			t.Fatalf("page %d: status %d", pages, r.status)
		}
		m := r.json(t)
		for _, v := range m["value"].([]any) {
			ids = append(ids, v.(map[string]any)["id"].(string))
		}
		url, _ = m["@odata.nextLink"].(string)
		if url != "" && !strings.HasPrefix(url, s.URL()+"/v1.0/") {
			t.Fatalf("nextLink %q is not absolute under %s", url, s.URL())
		}
	}
	if pages != 3 {
		t.Errorf("pages: got %d, want 3", pages)
	}
	if got := strings.Join(ids, ","); got != "p0,p1,p2,p3,p4" {
		t.Errorf("ids: got %s, want p0,p1,p2,p3,p4", got)
	}
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPatchAcceptsGzip(t *testing.T) {
	s := start(t, Options{}, policies(1))
	tok := s.Token()
	body := gz(t, []byte(`{"state":"disabled"}`))
	r := call(t, "PATCH", s.GraphURL()+"/identity/conditionalAccess/policies/p0", tok, body,
		map[string]string{"Content-Encoding": "gzip", "Content-Type": "application/json"})
	if r.status != 204 {
		t.Fatalf("PATCH: got %d, want 204 (%s)", r.status, r.body)
	}
	calls := s.CallsTo("PATCH " + policiesPath + "/p0")
	if len(calls) != 1 || string(calls[0].Body) != `{"state":"disabled"}` {
		t.Fatalf("call log does not hold the decompressed body: %+v", calls)
	}
	got := call(t, "GET", s.GraphURL()+"/identity/conditionalAccess/policies/p0", tok, nil, nil).json(t)
	if got["state"] != "disabled" || got["modifiedDateTime"] == nil {
		t.Errorf("got state=%v modifiedDateTime=%v, want disabled and a modification time", got["state"], got["modifiedDateTime"])
	}
}

// Graph merges a PATCH: "Existing properties that aren't included in the request body maintain their
// previous values" (Update conditionalAccessPolicy, v1.0). Its own example sends only
// conditions.signInRiskLevels and keeps every other condition.
func TestPatchMergesLikeGraph(t *testing.T) {
	const stored = `{
		"id": "p1", "displayName": "keep me", "state": "enabled",
		"conditions": {
			"users": {"includeUsers": ["All"], "excludeUsers": ["u1"], "excludeRoles": ["r1"]},
			"applications": {"includeApplications": ["All"]},
			"clientAppTypes": ["all"],
			"devices": {"deviceFilter": {"mode": "exclude", "rule": "device.isCompliant -eq True"}},
			"externalTenants": {"@odata.type": "#microsoft.graph.a", "members": ["t1"]}
		},
		"grantControls": {"operator": "OR", "builtInControls": ["mfa"]}}`
	tests := []struct {
		name  string
		patch string
		want  map[string]string // dotted path -> compact JSON; "-" means absent
	}{
		{"the documented example keeps every other condition",
			`{"conditions":{"signInRiskLevels":["high","medium","low"]}}`,
			map[string]string{"conditions.signInRiskLevels": `["high","medium","low"]`, "conditions.users.excludeUsers": `["u1"]`,
				"conditions.clientAppTypes": `["all"]`, "state": `"enabled"`, "grantControls.operator": `"OR"`}},
		{"a nested object merges key by key",
			`{"conditions":{"users":{"excludeUsers":["u2"]}}}`,
			map[string]string{"conditions.users.excludeUsers": `["u2"]`, "conditions.users.excludeRoles": `["r1"]`, "conditions.users.includeUsers": `["All"]`}},
		{"a list replaces rather than appends",
			`{"grantControls":{"builtInControls":["compliantDevice"]}}`,
			map[string]string{"grantControls.builtInControls": `["compliantDevice"]`, "grantControls.operator": `"OR"`}},
		{"an empty list clears a list",
			`{"conditions":{"users":{"excludeRoles":[]}}}`,
			map[string]string{"conditions.users.excludeRoles": `[]`, "conditions.users.excludeUsers": `["u1"]`}},
		{"an explicit null clears a section",
			`{"conditions":{"devices":null}}`,
			map[string]string{"conditions.devices": `null`, "conditions.users.excludeUsers": `["u1"]`}},
		{"an object of another @odata.type replaces the old one whole",
			`{"conditions":{"externalTenants":{"@odata.type":"#microsoft.graph.b","membershipKind":"all"}}}`,
			map[string]string{"conditions.externalTenants.members": `-`, "conditions.externalTenants.membershipKind": `"all"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, Options{}, &Scenario{Policies: []json.RawMessage{json.RawMessage(stored)}, Users: map[string]json.RawMessage{"u1": json.RawMessage(`{}`), "u2": json.RawMessage(`{}`)}})
			tok := s.Token()
			if r := call(t, "PATCH", s.GraphURL()+"/identity/conditionalAccess/policies/p1", tok, []byte(tt.patch), nil); r.status != 204 {
				t.Fatalf("PATCH: got %d, want 204 (%s)", r.status, r.body)
			}
			got := call(t, "GET", s.GraphURL()+"/identity/conditionalAccess/policies/p1", tok, nil, nil).json(t)
			for path, want := range tt.want {
				if g := lookup(t, got, path); g != want {
					t.Errorf("%s: got %s, want %s", path, g, want)
				}
			}
		})
	}
}

// lookup renders the value at a dotted path as compact JSON, or "-" when it is absent.
func lookup(t *testing.T, o map[string]any, path string) string {
	t.Helper()
	var v any = o
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return "-"
		}
		if v, ok = m[k]; !ok {
			return "-"
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUsers(t *testing.T) {
	s := start(t, Options{}, &Scenario{
		Users:  map[string]json.RawMessage{"u1": json.RawMessage(`{"displayName":"One","userPrincipalName":"one@contoso.example"}`)},
		Groups: map[string]Group{"g1": {Members: []Member{{ID: "u2"}}}},
	})
	tok := s.Token()
	t.Run("a seeded user answers with $select honoured", func(t *testing.T) {
		r := call(t, "GET", s.GraphURL()+"/users/u1?$select=id", tok, nil, nil)
		m := r.json(t)
		if r.status != 200 || m["id"] != "u1" || m["displayName"] != nil {
			t.Fatalf("got %d %s, want 200 with the id only", r.status, r.body)
		}
	})
	t.Run("a group member is a user", func(t *testing.T) {
		if r := call(t, "GET", s.GraphURL()+"/users/u2", tok, nil, nil); r.status != 200 {
			t.Fatalf("got %d, want 200", r.status)
		}
	})
	t.Run("a deleted user is a 404", func(t *testing.T) {
		if !s.DeleteUser("u2") {
			t.Fatal("u2 did not exist")
		}
		r := call(t, "GET", s.GraphURL()+"/users/u2", tok, nil, nil)
		if r.status != 404 || r.errorCode(t) != "Request_ResourceNotFound" {
			t.Fatalf("got %d %s, want 404 Request_ResourceNotFound", r.status, r.body)
		}
	})
	t.Run("reading users needs User.Read.All", func(t *testing.T) {
		s := start(t, Options{Roles: []string{PermPolicyReadAll}}, &Scenario{Users: map[string]json.RawMessage{"u1": json.RawMessage(`{}`)}})
		if r := call(t, "GET", s.GraphURL()+"/users/u1", s.Token(), nil, nil); r.status != 403 {
			t.Fatalf("got %d, want 403", r.status)
		}
	})
}

// Graph refuses a whole policy write that names a user or group the directory does not hold.
func TestWritesNamingUnknownObjectsAreRefused(t *testing.T) {
	s := start(t, Options{}, &Scenario{
		Policies: []json.RawMessage{json.RawMessage(`{"id":"p1","displayName":"x","state":"enabled","conditions":{"users":{"includeUsers":["All"]}}}`)},
		Users:    map[string]json.RawMessage{"u1": json.RawMessage(`{}`)},
		Groups:   map[string]Group{"g1": {}},
	})
	tok := s.Token()
	item := s.GraphURL() + "/identity/conditionalAccess/policies/p1"
	tests := []struct {
		name, body string
		want       int
	}{
		{"known users and groups are accepted", `{"conditions":{"users":{"includeUsers":["All"],"excludeUsers":["u1"],"excludeGroups":["g1"]}}}`, 204},
		{"an unknown excluded user is refused", `{"conditions":{"users":{"excludeUsers":["u1","gone"]}}}`, 400},
		{"an unknown excluded group is refused", `{"conditions":{"users":{"excludeGroups":["gone"]}}}`, 400},
		{"a user id in excludeGroups is refused", `{"conditions":{"users":{"excludeGroups":["u1"]}}}`, 400},
		{"the None token is not an object", `{"conditions":{"users":{"includeUsers":["None"]}}}`, 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, "PATCH", item, tok, []byte(tt.body), nil)
			if r.status != tt.want {
				t.Fatalf("got %d, want %d (%s)", r.status, tt.want, r.body)
			}
		})
	}
	r := call(t, "POST", s.GraphURL()+"/identity/conditionalAccess/policies", tok,
		[]byte(`{"displayName":"n","state":"disabled","conditions":{"users":{"includeUsers":["All"],"excludeUsers":["gone"]}}}`), nil)
	if r.status != 400 {
		t.Errorf("create naming an unknown user: got %d, want 400", r.status)
	}
}

func TestCreateGetDelete(t *testing.T) {
	s := start(t, Options{}, nil)
	tok := s.Token()
	body := []byte(`{"displayName":"new","state":"enabledForReportingButNotEnforced",
		"conditions":{"users":{"includeUsers":["All"]},"applications":{"includeApplications":["All"]}},
		"grantControls":{"operator":"OR","authenticationStrength":{"id":"` + StrengthPhishingResistant + `"}}}`)
	r := call(t, "POST", s.GraphURL()+"/identity/conditionalAccess/policies", tok, body, nil)
	if r.status != 201 {
		t.Fatalf("POST: got %d, want 201 (%s)", r.status, r.body)
	}
	created := r.json(t)
	id, _ := created["id"].(string)
	if len(id) != 36 || created["createdDateTime"] == nil {
		t.Fatalf("created policy lacks a GUID id or createdDateTime: %s", r.body)
	}
	got := call(t, "GET", s.GraphURL()+"/identity/conditionalAccess/policies/"+id, tok, nil, nil).json(t)
	strength := got["grantControls"].(map[string]any)["authenticationStrength"].(map[string]any)
	if strength["requirementsSatisfied"] != "mfa" || strength["displayName"] != "Phishing-resistant MFA" {
		t.Errorf("authenticationStrength not expanded: %v", strength)
	}
	if r := call(t, "DELETE", s.GraphURL()+"/identity/conditionalAccess/policies/"+id, tok, nil, nil); r.status != 204 {
		t.Fatalf("DELETE: got %d, want 204", r.status)
	}
	if r := call(t, "GET", s.GraphURL()+"/identity/conditionalAccess/policies/"+id, tok, nil, nil); r.status != 404 {
		t.Fatalf("GET after DELETE: got %d, want 404", r.status)
	}
}

func TestCollapsedAuthenticationStrengthKeepsOnlyTheID(t *testing.T) {
	s := start(t, Options{CollapseAuthenticationStrength: true}, &Scenario{Policies: []json.RawMessage{
		json.RawMessage(`{"id":"p1","displayName":"x","state":"enabled","conditions":{},"grantControls":{"operator":"OR","authenticationStrength":{"id":"` + StrengthMFA + `"}}}`)}})
	got := call(t, "GET", s.GraphURL()+"/identity/conditionalAccess/policies/p1", s.Token(), nil, nil).json(t)
	strength := got["grantControls"].(map[string]any)["authenticationStrength"].(map[string]any)
	if len(strength) != 1 || strength["id"] != StrengthMFA {
		t.Errorf("got %v, want only the id", strength)
	}
}

func TestBadRequestsAndUnknownIDs(t *testing.T) {
	s := start(t, Options{}, policies(1))
	tok := s.Token()
	item := s.GraphURL() + "/identity/conditionalAccess/policies/p0"
	tests := []struct {
		name, method, url, body string
		want                    int
		code                    string
	}{
		{"malformed JSON is a 400", "PATCH", item, `{"state":`, 400, "BadRequest"},
		{"an invalid state is a 400", "PATCH", item, `{"state":"on"}`, 400, "BadRequest"},
		{"a null state is a 400", "PATCH", item, `{"state":null}`, 400, "BadRequest"},
		{"an unknown property is a 400", "PATCH", item, `{"colour":"red"}`, 400, "BadRequest"},
		{"an unknown authentication strength is a 400", "PATCH", item, `{"grantControls":{"authenticationStrength":{"id":"nope"}}}`, 400, "BadRequest"},
		{"a create without state is a 400", "POST", s.GraphURL() + "/identity/conditionalAccess/policies", `{"displayName":"x","conditions":{}}`, 400, "BadRequest"},
		{"GET of an unknown id is a 404", "GET", s.GraphURL() + "/identity/conditionalAccess/policies/nope", "", 404, "ResourceNotFound"},
		{"PATCH of an unknown id is a 404", "PATCH", s.GraphURL() + "/identity/conditionalAccess/policies/nope", `{"state":"disabled"}`, 404, "ResourceNotFound"},
		{"DELETE of an unknown id is a 404", "DELETE", s.GraphURL() + "/identity/conditionalAccess/policies/nope", "", 404, "ResourceNotFound"},
		{"an unknown group is a 404", "GET", s.GraphURL() + "/groups/nope/transitiveMembers", "", 404, "Request_ResourceNotFound"},
		{"an unknown strength is a 404", "GET", s.GraphURL() + "/policies/authenticationStrengthPolicies/nope", "", 404, "ResourceNotFound"},
		{"an unknown segment is a 400", "GET", s.GraphURL() + "/nothing", "", 400, "BadRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			r := call(t, tt.method, tt.url, tok, body, nil)
			if r.status != tt.want || r.errorCode(t) != tt.code {
				t.Fatalf("got %d %q, want %d %q (%s)", r.status, r.errorCode(t), tt.want, tt.code, r.body)
			}
		})
	}
	if got := call(t, "GET", item, tok, nil, nil).json(t); got["state"] != "enabled" {
		t.Errorf("a rejected PATCH changed the policy: %v", got)
	}
}

func TestTransitiveMembersExpandNestedGroupsAndPage(t *testing.T) {
	s := start(t, Options{PageSize: 2}, &Scenario{Groups: map[string]Group{
		"g1": {Members: []Member{{ID: "u1"}, {ID: "g2", ODataType: "#microsoft.graph.group"}, {ID: "u2"}}},
		"g2": {Members: []Member{{ID: "u3"}, {ID: "u1"}}},
	}})
	tok := s.Token()
	url := s.GraphURL() + "/groups/g1/transitiveMembers?$select=id"
	var ids []string
	for url != "" {
		r := call(t, "GET", url, tok, nil, nil)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		m := r.json(t)
		for _, v := range m["value"].([]any) {
			o := v.(map[string]any)
			if _, ok := o["displayName"]; ok {
				t.Errorf("$select=id answered more: %v", o)
			}
			if o["@odata.type"] == nil {
				t.Errorf("member lacks @odata.type: %v", o)
			}
			ids = append(ids, o["id"].(string))
		}
		url, _ = m["@odata.nextLink"].(string)
		if url != "" && !strings.Contains(url, "select=id") {
			t.Errorf("nextLink %q dropped $select", url)
		}
	}
	if got := strings.Join(ids, ","); got != "u1,g2,u2,u3" {
		t.Errorf("members: got %s, want u1,g2,u2,u3", got)
	}
}

func TestBuiltInAuthenticationStrengths(t *testing.T) {
	s := start(t, Options{PageSize: 50}, nil)
	m := call(t, "GET", s.GraphURL()+"/policies/authenticationStrengthPolicies", s.Token(), nil, nil).json(t)
	got := map[string]string{}
	for _, v := range m["value"].([]any) {
		o := v.(map[string]any)
		got[o["id"].(string)] = o["requirementsSatisfied"].(string)
	}
	for _, id := range []string{StrengthMFA, StrengthPasswordlessMFA, StrengthPhishingResistant} {
		if got[id] != "mfa" {
			t.Errorf("built-in %s: requirementsSatisfied %q, want mfa", id, got[id])
		}
	}
}

func TestRolesAreEnforced(t *testing.T) {
	s := start(t, Options{Roles: []string{PermPolicyReadAll}}, &Scenario{Groups: map[string]Group{"g1": {}}})
	tok := s.Token()
	if r := call(t, "GET", s.GraphURL()+"/identity/conditionalAccess/policies", tok, nil, nil); r.status != 200 {
		t.Errorf("read with Policy.Read.All: got %d, want 200", r.status)
	}
	if r := call(t, "POST", s.GraphURL()+"/identity/conditionalAccess/policies", tok, []byte(`{}`), nil); r.status != 403 {
		t.Errorf("create without Policy.ReadWrite.ConditionalAccess: got %d, want 403", r.status)
	}
	if r := call(t, "GET", s.GraphURL()+"/groups/g1/transitiveMembers", tok, nil, nil); r.status != 403 || r.errorCode(t) != "Authorization_RequestDenied" {
		t.Errorf("members without GroupMember.Read.All: got %d %s, want 403", r.status, r.body)
	}
}

func TestFaults(t *testing.T) {
	s := start(t, Options{}, policies(3))
	tok := s.Token()
	list := s.GraphURL() + "/identity/conditionalAccess/policies"

	t.Run("a throttle applies Times times then serves normally", func(t *testing.T) {
		s.Reset()
		s.Inject(Fault{Match: "GET " + policiesPath, Status: 429, RetryAfter: "1", Times: 1})
		r := call(t, "GET", list, tok, nil, nil)
		if r.status != 429 || r.header.Get("Retry-After") != "1" || r.errorCode(t) != "TooManyRequests" {
			t.Fatalf("got %d Retry-After=%q %s", r.status, r.header.Get("Retry-After"), r.body)
		}
		if r := call(t, "GET", list, tok, nil, nil); r.status != 200 {
			t.Fatalf("second call: got %d, want 200", r.status)
		}
		calls := s.Calls()
		if len(calls) != 2 || !calls[0].Fault || calls[0].Status != 429 || calls[1].Fault {
			t.Errorf("call log: %+v", calls)
		}
	})
	t.Run("Skip lets the first requests through", func(t *testing.T) {
		s.Reset()
		s.Inject(Fault{Match: "GET /v1.0/identity/*", Skip: 1, Status: 503, Times: 1})
		if r := call(t, "GET", list, tok, nil, nil); r.status != 200 {
			t.Fatalf("first: got %d, want 200", r.status)
		}
		if r := call(t, "GET", list+"?$skiptoken=2", tok, nil, nil); r.status != 503 {
			t.Fatalf("second: got %d, want 503", r.status)
		}
	})
	t.Run("the method must match", func(t *testing.T) {
		s.Reset()
		s.Inject(Fault{Match: "POST " + policiesPath, Status: 500})
		if r := call(t, "GET", list, tok, nil, nil); r.status != 200 {
			t.Fatalf("got %d, want 200", r.status)
		}
	})
	t.Run("a malformed body is sent verbatim", func(t *testing.T) {
		s.Reset()
		s.Inject(Fault{Match: policiesPath, Status: 200, Body: `{"value": [`})
		if r := call(t, "GET", list, tok, nil, nil); r.status != 200 || string(r.body) != `{"value": [` {
			t.Fatalf("got %d %q", r.status, r.body)
		}
	})
	t.Run("an error without a message has only a code", func(t *testing.T) {
		s.Reset()
		s.Inject(Fault{Match: policiesPath, Status: 500, NoMessage: true})
		r := call(t, "GET", list, tok, nil, nil)
		e := r.json(t)["error"].(map[string]any)
		if _, ok := e["message"]; ok || e["code"] != "InternalServerError" {
			t.Fatalf("got %s", r.body)
		}
	})
	t.Run("a delay slows the answer", func(t *testing.T) {
		s.Reset()
		s.Inject(Fault{Match: policiesPath, Delay: 50 * time.Millisecond, Times: 1})
		t0 := time.Now()
		if r := call(t, "GET", list, tok, nil, nil); r.status != 200 {
			t.Fatalf("got %d, want 200 after the delay", r.status)
		}
		if d := time.Since(t0); d < 50*time.Millisecond {
			t.Errorf("answered after %v, want at least 50ms", d)
		}
	})
	t.Run("ignored fields are accepted and not applied", func(t *testing.T) {
		s.Reset()
		s.Inject(Fault{Match: "PATCH " + policiesPath + "/*", IgnoreFields: []string{"conditions.users.excludeUsers"}})
		r := call(t, "PATCH", list+"/p1", tok, []byte(`{"displayName":"renamed","conditions":{"users":{"excludeUsers":[]}}}`), nil)
		if r.status != 204 {
			t.Fatalf("got %d, want 204 (%s)", r.status, r.body)
		}
		got := call(t, "GET", list+"/p1", tok, nil, nil).json(t)
		if got["displayName"] != "renamed" || lookup(t, got, "conditions.users.excludeUsers") != "-" {
			t.Errorf("got %v, want the rename applied and excludeUsers never set", got)
		}
		if c := s.CallsTo("PATCH " + list[len(s.URL()):] + "/p1"); len(c) != 1 || !strings.Contains(string(c[0].Body), "excludeUsers") {
			t.Errorf("the call log must keep the body as sent: %+v", c)
		}
	})
	t.Run("a dropped connection gives the client an error", func(t *testing.T) {
		s.Reset()
		s.Inject(Fault{Match: policiesPath, Drop: true})
		req, _ := http.NewRequest("GET", list, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("got status %d, want a transport error", resp.StatusCode)
		}
		if calls := s.Calls(); len(calls) == 0 || calls[0].Status != 0 {
			t.Errorf("a dropped call should be logged with status 0: %+v", calls)
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	s := start(t, Options{}, policies(4))
	tok := s.Token()
	send := func(method, url, body string) (int, error) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				s.Inject(Fault{Match: "GET /nothing", Status: 500})
				_ = s.Calls()
			}
			if st, err := send("PATCH", s.GraphURL()+"/identity/conditionalAccess/policies/p1", `{"displayName":"n"}`); err != nil || st != 204 {
				t.Errorf("PATCH: got %d, %v", st, err)
			}
			if st, err := send("GET", s.GraphURL()+"/identity/conditionalAccess/policies", ""); err != nil || st != 200 {
				t.Errorf("GET: got %d, %v", st, err)
			}
		}()
	}
	wg.Wait()
	if got := len(s.CallsTo("* " + policiesPath + "*")); got != 16 {
		t.Errorf("calls: got %d, want 16", got)
	}
}

func TestScenarioFiles(t *testing.T) {
	dir := filepath.Join("..", "..", "scripts", "scenarios")
	tests := []struct {
		file     string
		policies int
		groups   int
	}{
		{"compliant.json", 2, 1},
		{"drifted.json", 5, 3},
		{"empty.json", 0, 2},
		{"unrecognised.json", 6, 1},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			sc, err := ReadScenario(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(sc.Policies) != tt.policies || len(sc.Groups) != tt.groups {
				t.Fatalf("got %d policies, %d groups; want %d, %d", len(sc.Policies), len(sc.Groups), tt.policies, tt.groups)
			}
			s := start(t, Options{}, &sc)
			if s.TenantID() != "00000000-0000-0000-0000-0000000000aa" {
				t.Errorf("tenant: got %s", s.TenantID())
			}
			// Every seeded policy must be one a client can write back unchanged.
			for _, raw := range s.Policies() {
				var o object
				if err := json.Unmarshal(raw, &o); err != nil {
					t.Fatal(err)
				}
				if msg := s.checkPolicyBody(o, o.str("id")); msg != "" {
					t.Errorf("policy %s: %s", o.str("id"), msg)
				}
			}
		})
	}
	t.Run("the drifted break-glass group holds two users", func(t *testing.T) {
		sc, err := ReadScenario(filepath.Join(dir, "drifted.json"))
		if err != nil {
			t.Fatal(err)
		}
		s := start(t, Options{PageSize: 10}, &sc)
		m := call(t, "GET", s.GraphURL()+"/groups/bbbbbbbb-0000-0000-0000-000000000001/transitiveMembers", s.Token(), nil, nil).json(t)
		if n := len(m["value"].([]any)); n != 2 {
			t.Errorf("members: got %d, want 2", n)
		}
	})
}

func TestLoadScenarioRejectsUnknownFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(path, []byte(`{"polices": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.LoadScenario(path); err == nil {
		t.Fatal("a misspelt field was accepted")
	}
}

// The lag fault plays Entra's replication: a patched policy reads as it was for the next reads, and a
// created one answers 404 and is missing from the list.
func TestLag(t *testing.T) {
	s := start(t, Options{}, nil)
	s.Lag(2, 2)
	tok := s.Token()
	do := func(method, path, body string) reply {
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		return call(t, method, s.URL()+path, tok, b, map[string]string{"Content-Type": "application/json"})
	}
	created := do(http.MethodPost, policiesPath, `{"displayName":"lagging","state":"disabled",
		"conditions":{"users":{"includeUsers":["All"]},"applications":{"includeApplications":["All"]},"clientAppTypes":["all"]},
		"grantControls":{"operator":"OR","builtInControls":["mfa"]}}`)
	if created.status != http.StatusCreated {
		t.Fatalf("create answered %d: %s", created.status, created.body)
	}
	id, _ := created.json(t)["id"].(string)
	path := policiesPath + "/" + id
	if n := len(do(http.MethodGet, policiesPath, "").json(t)["value"].([]any)); n != 0 {
		t.Fatalf("the list right after the create holds %d policies, want 0", n)
	}
	for i, want := range []int{http.StatusNotFound, http.StatusOK} {
		if got := do(http.MethodGet, path, "").status; got != want {
			t.Fatalf("read %d by id after the create answered %d, want %d", i+2, got, want)
		}
	}
	if got := do(http.MethodPatch, path, `{"state":"enabledForReportingButNotEnforced"}`).status; got != http.StatusNoContent {
		t.Fatalf("patch answered %d", got)
	}
	for i, want := range []string{"disabled", "disabled", "enabledForReportingButNotEnforced"} {
		if got, _ := do(http.MethodGet, path, "").json(t)["state"].(string); got != want {
			t.Fatalf("read %d after the patch saw state %q, want %q", i+1, got, want)
		}
	}
}
