package graphfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func batchScenario() *Scenario {
	return &Scenario{
		Policies: policies(3).Policies,
		Users: map[string]json.RawMessage{
			"11111111-1111-1111-1111-111111111111": json.RawMessage(`{"displayName":"One","accountEnabled":true,
				"signInActivity":{"lastSignInDateTime":"2026-11-20T08:00:00Z","lastSuccessfulSignInDateTime":"2026-11-01T08:00:00Z"}}`),
			"22222222-2222-2222-2222-222222222222": json.RawMessage(`{"displayName":"Two","accountEnabled":false}`),
		},
		Groups: map[string]Group{"g1": {DisplayName: "Group one", Members: []Member{{ID: "11111111-1111-1111-1111-111111111111"}}}},
	}
}

type batchReply struct {
	Responses []struct {
		ID      string            `json:"id"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	} `json:"responses"`
}

func postBatch(t *testing.T, s *Server, token string, requests ...map[string]any) (reply, batchReply) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"requests": requests})
	if err != nil {
		t.Fatal(err)
	}
	r := call(t, "POST", s.GraphURL()+"/$batch", token, body, map[string]string{"Content-Type": "application/json"})
	var br batchReply
	if r.status == 200 {
		if err := json.Unmarshal(r.body, &br); err != nil {
			t.Fatalf("batch answer: %v: %s", err, r.body)
		}
	}
	return r, br
}

func get(id, url string) map[string]any { return map[string]any{"id": id, "method": "GET", "url": url} }

func TestBatchServesEachRequestThroughItsRoute(t *testing.T) {
	s := start(t, Options{PageSize: 2}, batchScenario())
	r, br := postBatch(t, s, s.Token(),
		get("a", "/identity/conditionalAccess/policies"),
		get("b", "groups/g1?$select=id,displayName"),
		get("c", "/users/99999999-9999-9999-9999-999999999999"),
		map[string]any{"id": "d", "method": "POST", "url": "/identity/conditionalAccess/policies", "headers": map[string]string{"Content-Type": "application/json"},
			"body": map[string]any{"displayName": "new", "state": "disabled", "conditions": map[string]any{}}},
	)
	if r.status != 200 || len(br.Responses) != 4 {
		t.Fatalf("got %d %s, want 200 with four responses", r.status, r.body)
	}
	if br.Responses[0].ID == "a" {
		t.Error("responses come in the requests' order; Graph's may not, so the emulator's do not")
	}
	byID := map[string]int{}
	for i, a := range br.Responses {
		byID[a.ID] = i
	}
	pol := br.Responses[byID["a"]]
	var page struct {
		Value    []json.RawMessage `json:"value"`
		NextLink string            `json:"@odata.nextLink"`
	}
	if err := json.Unmarshal(pol.Body, &page); err != nil || pol.Status != 200 || len(page.Value) != 2 || !strings.HasPrefix(page.NextLink, s.GraphURL()+"/identity/") {
		t.Errorf("policies: %d %s", pol.Status, pol.Body)
	}
	if g := br.Responses[byID["b"]]; g.Status != 200 || !strings.Contains(string(g.Body), `"Group one"`) || strings.Contains(string(g.Body), "groupTypes") {
		t.Errorf("group: %d %s", g.Status, g.Body)
	}
	if u := br.Responses[byID["c"]]; u.Status != 404 || !strings.Contains(string(u.Body), "Request_ResourceNotFound") || u.Headers["Content-Type"] == "" {
		t.Errorf("unknown user: %d %v %s", u.Status, u.Headers, u.Body)
	}
	if c := br.Responses[byID["d"]]; c.Status != 201 || len(s.Policies()) != 4 {
		t.Errorf("create in a batch: %d %s", c.Status, c.Body)
	}
	// Each request is on record with its batch id, after the batch itself.
	calls := s.Calls()
	if len(calls) != 5 || calls[0].Path != "/v1.0/$batch" || calls[0].Batch != "" {
		t.Fatalf("calls: %+v", calls)
	}
	for i, want := range []string{"a", "b", "c", "d"} {
		if calls[i+1].Batch != want {
			t.Errorf("call %d: batch id %q, want %q", i+1, calls[i+1].Batch, want)
		}
	}
	if n := s.RoundTrips(); n != 1 {
		t.Errorf("round trips: %d, want 1", n)
	}
}

func TestBatchFaultsApplyPerRequest(t *testing.T) {
	s := start(t, Options{}, batchScenario())
	s.Inject(Fault{Match: "GET /v1.0/groups/g1/transitiveMembers", Times: 1, Status: 429, RetryAfter: "7"})
	r, br := postBatch(t, s, s.Token(), get("1", "/groups/g1/transitiveMembers"), get("2", "/groups/g1"))
	if r.status != 200 {
		t.Fatalf("batch: %d, want 200 around a throttled request", r.status)
	}
	for _, a := range br.Responses {
		switch a.ID {
		case "1":
			if a.Status != 429 || a.Headers["Retry-After"] != "7" || !strings.Contains(string(a.Body), "TooManyRequests") {
				t.Errorf("throttled request: %d %v %s", a.Status, a.Headers, a.Body)
			}
		case "2":
			if a.Status != 200 {
				t.Errorf("other request: %d", a.Status)
			}
		}
	}
	if c := s.CallsTo("GET /v1.0/groups/g1/transitiveMembers"); len(c) != 1 || !c[0].Fault || c[0].Status != 429 {
		t.Errorf("recorded: %+v", c)
	}
}

func TestBatchRefusesWhatGraphRefuses(t *testing.T) {
	s := start(t, Options{}, batchScenario())
	tok := s.Token()
	var many []map[string]any
	for i := range 21 {
		many = append(many, get(fmt.Sprint(i), "/groups/g1"))
	}
	cases := []struct {
		name string
		body string
	}{
		{"more than 20 requests", func() string { b, _ := json.Marshal(map[string]any{"requests": many}); return string(b) }()},
		{"no requests collection", `{"value":[]}`},
		{"not JSON", `{"requests":`},
		{"duplicate ids", `{"requests":[{"id":"1","method":"GET","url":"/groups/g1"},{"id":"1","method":"GET","url":"/groups/g1"}]}`},
		{"a body without Content-Type", `{"requests":[{"id":"1","method":"POST","url":"/identity/conditionalAccess/policies","body":{"displayName":"x"}}]}`},
		{"dependsOn", `{"requests":[{"id":"1","method":"GET","url":"/groups/g1"},{"id":"2","dependsOn":["1"],"method":"GET","url":"/groups/g1"}]}`},
		{"a batch in a batch", `{"requests":[{"id":"1","method":"POST","url":"/$batch","headers":{"Content-Type":"application/json"},"body":{"requests":[]}}]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, "POST", s.GraphURL()+"/$batch", tok, []byte(tc.body), map[string]string{"Content-Type": "application/json"})
			status := r.status
			if tc.name == "a batch in a batch" {
				var br batchReply
				if err := json.Unmarshal(r.body, &br); err != nil || len(br.Responses) != 1 {
					t.Fatalf("got %d %s", r.status, r.body)
				}
				status = br.Responses[0].Status
			}
			if status != 400 {
				t.Errorf("got %d %s, want 400", status, r.body)
			}
		})
	}
	t.Run("without a token", func(t *testing.T) {
		if r := call(t, "POST", s.GraphURL()+"/$batch", "", []byte(`{"requests":[]}`), nil); r.status != 401 {
			t.Errorf("got %d, want 401", r.status)
		}
	})
	t.Run("permissions apply per request", func(t *testing.T) {
		s := start(t, Options{Roles: []string{PermPolicyReadAll}}, batchScenario())
		_, br := postBatch(t, s, s.Token(), get("1", "/identity/conditionalAccess/policies"), get("2", "/groups/g1/transitiveMembers"))
		for _, a := range br.Responses {
			if want := map[string]int{"1": 200, "2": 403}[a.ID]; a.Status != want {
				t.Errorf("request %s: %d, want %d", a.ID, a.Status, want)
			}
		}
	})
}

func TestUsersFilteredByID(t *testing.T) {
	s := start(t, Options{PageSize: 1}, batchScenario())
	tok := s.Token()
	t.Run("in answers the users that exist, paged", func(t *testing.T) {
		r := call(t, "GET", s.GraphURL()+"/users?$filter=id%20in%20('11111111-1111-1111-1111-111111111111','22222222-2222-2222-2222-222222222222','deadbeef')&$select=id,displayName,accountEnabled", tok, nil, nil)
		m := r.json(t)
		v, _ := m["value"].([]any)
		if r.status != 200 || len(v) != 1 || m["@odata.nextLink"] == nil {
			t.Fatalf("got %d %s, want one user and a nextLink", r.status, r.body)
		}
		r = call(t, "GET", m["@odata.nextLink"].(string), tok, nil, nil)
		m = r.json(t)
		v, _ = m["value"].([]any)
		if u, _ := v[0].(map[string]any); len(v) != 1 || u["displayName"] != "Two" || u["accountEnabled"] != false || m["@odata.nextLink"] != nil {
			t.Errorf("second page: %s", r.body)
		}
	})
	t.Run("eq and quotes", func(t *testing.T) {
		r := call(t, "GET", s.GraphURL()+"/users?$filter=id%20eq%20'o''brien'", tok, nil, nil)
		if v, _ := r.json(t)["value"].([]any); r.status != 200 || len(v) != 0 {
			t.Errorf("got %d %s", r.status, r.body)
		}
	})
	t.Run("more than 15 values is a 400", func(t *testing.T) {
		var ids []string
		for i := range 16 {
			ids = append(ids, fmt.Sprintf("'%d'", i))
		}
		r := call(t, "GET", s.GraphURL()+"/users?$filter=id%20in%20("+strings.Join(ids, ",")+")", tok, nil, nil)
		if r.status != 400 {
			t.Errorf("got %d, want 400", r.status)
		}
	})
	t.Run("another filter is a 400", func(t *testing.T) {
		if r := call(t, "GET", s.GraphURL()+"/users?$filter=displayName%20eq%20'One'", tok, nil, nil); r.status != 400 {
			t.Errorf("got %d, want 400", r.status)
		}
	})
	t.Run("signInActivity carries the last successful sign-in", func(t *testing.T) {
		r := call(t, "GET", s.GraphURL()+"/users?$filter=id%20in%20('11111111-1111-1111-1111-111111111111')&$select=id,signInActivity", tok, nil, nil)
		v, _ := r.json(t)["value"].([]any)
		u, _ := v[0].(map[string]any)
		sia, _ := u["signInActivity"].(map[string]any)
		if sia["lastSuccessfulSignInDateTime"] != "2026-11-01T08:00:00Z" {
			t.Errorf("got %s", r.body)
		}
	})
	t.Run("without a premium licence signInActivity is a 403 naming it", func(t *testing.T) {
		s := start(t, Options{NoPremiumLicence: true}, batchScenario())
		for _, path := range []string{"/users?$filter=id%20eq%20'11111111-1111-1111-1111-111111111111'&$select=id,signInActivity",
			"/users/11111111-1111-1111-1111-111111111111?$select=signInActivity"} {
			r := call(t, "GET", s.GraphURL()+path, s.Token(), nil, nil)
			if r.status != 403 || r.errorCode(t) != codeNoPremiumLicence {
				t.Errorf("%s: got %d %s", path, r.status, r.body)
			}
		}
		if r := call(t, "GET", s.GraphURL()+"/users/11111111-1111-1111-1111-111111111111?$select=id,displayName", s.Token(), nil, nil); r.status != 200 {
			t.Errorf("without signInActivity: got %d", r.status)
		}
	})
}

func TestGetByIDs(t *testing.T) {
	s := start(t, Options{Roles: []string{PermDirectoryReadAll}}, batchScenario())
	tok := s.Token()
	body := func(v any) []byte { b, _ := json.Marshal(v); return b }
	ct := map[string]string{"Content-Type": "application/json"}
	t.Run("only existing objects of the requested types", func(t *testing.T) {
		r := call(t, "POST", s.GraphURL()+"/directoryObjects/getByIds?$select=id,displayName,accountEnabled", tok,
			body(map[string]any{"ids": []string{"22222222-2222-2222-2222-222222222222", "g1", "deadbeef"}, "types": []string{"user"}}), ct)
		v, _ := r.json(t)["value"].([]any)
		if r.status != 200 || len(v) != 1 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		if u := v[0].(map[string]any); u["displayName"] != "Two" || u["accountEnabled"] != false || u["@odata.type"] != "#microsoft.graph.user" {
			t.Errorf("user: %v", u)
		}
		r = call(t, "POST", s.GraphURL()+"/directoryObjects/getByIds", tok, body(map[string]any{"ids": []string{"g1", "22222222-2222-2222-2222-222222222222"}}), ct)
		if v, _ := r.json(t)["value"].([]any); len(v) != 2 {
			t.Errorf("every type: %s", r.body)
		}
	})
	t.Run("more than 1000 ids is a 400", func(t *testing.T) {
		ids := make([]string, 1001)
		for i := range ids {
			ids[i] = fmt.Sprint(i)
		}
		if r := call(t, "POST", s.GraphURL()+"/directoryObjects/getByIds", tok, body(map[string]any{"ids": ids}), ct); r.status != 400 {
			t.Errorf("got %d, want 400", r.status)
		}
	})
	t.Run("Directory.Read.All, as documented", func(t *testing.T) {
		s := start(t, Options{Roles: []string{PermUserReadAll}}, batchScenario())
		r := call(t, "POST", s.GraphURL()+"/directoryObjects/getByIds", s.Token(), body(map[string]any{"ids": []string{"g1"}}), ct)
		if r.status != http.StatusForbidden {
			t.Errorf("got %d, want 403", r.status)
		}
	})
}

func TestCountingTransportCountsGraphOnly(t *testing.T) {
	s := start(t, Options{}, batchScenario())
	ct := &CountingTransport{Prefix: s.GraphURL() + "/"}
	hc := &http.Client{Transport: ct}
	for _, u := range []string{s.GraphURL() + "/groups/g1", s.IdentityEndpoint() + "?resource=x", s.GraphURL() + "/$batch"} {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Authorization", "Bearer "+s.Token())
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if ct.Count() != 2 || s.RoundTrips() != 2 {
		t.Errorf("counted %d, emulator %d; want 2 Graph requests (the token request left out)", ct.Count(), s.RoundTrips())
	}
	ct.Reset()
	if ct.Count() != 0 {
		t.Error("Reset did not reset")
	}
}
