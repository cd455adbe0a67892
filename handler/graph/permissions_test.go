package graph

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/graphfake"
	"github.com/caguard/caguard/handler/snapshot"
)

// The permission sets a deployment grants (infra/graph-permissions.json) must cover every Graph
// request the client makes. These tests run each Client method against the emulator, holding a
// token with only the sets that method's feature is granted, record every request on the wire, and
// look each one up in Calls.

const permissionSetsPath = "../../infra/graph-permissions.json"

// permissionSets reads infra/graph-permissions.json: set name -> permissions.
func permissionSets(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(permissionSetsPath)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Sets map[string]struct {
			Permissions []string `json:"permissions"`
		} `json:"sets"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", permissionSetsPath, err)
	}
	out := map[string][]string{}
	for name, s := range f.Sets {
		out[name] = s.Permissions
	}
	for _, must := range []string{"alert", "remediate", "reviews", "users", "signIns"} {
		if len(out[must]) == 0 {
			t.Fatalf("%s has no permissions in set %q", permissionSetsPath, must)
		}
	}
	return out
}

// granted is what a deployment holds for a feature: the alert set, which is always granted, and sets.
func granted(all map[string][]string, sets ...string) []string {
	var out []string
	for _, s := range append([]string{"alert"}, sets...) {
		for _, p := range all[s] {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// recorder is the transport under the client: it sees each Graph request as it leaves the process.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []Request
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	// Token requests to the identity endpoint share this transport; only Graph's are recorded.
	if path, ok := strings.CutPrefix(req.URL.Path, "/v1.0"); ok {
		var body []byte
		if req.Body != nil {
			raw, err := io.ReadAll(req.Body)
			if err != nil {
				return nil, err
			}
			req.Body = io.NopCloser(bytes.NewReader(raw))
			body = raw
			// The SDK's compression handler gzips request bodies.
			if strings.EqualFold(req.Header.Get("Content-Encoding"), "gzip") {
				zr, err := gzip.NewReader(bytes.NewReader(raw))
				if err != nil {
					return nil, err
				}
				if body, err = io.ReadAll(zr); err != nil {
					return nil, err
				}
			}
		}
		r.mu.Lock()
		r.reqs = append(r.reqs, Request{Method: req.Method, Path: path, Query: req.URL.RawQuery, Body: body})
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

func (r *recorder) requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// exercise runs one Client method the way caguard uses it, with the permission sets a deployment
// grants for that use (besides alert).
type exercise struct {
	name   string
	method string
	sets   []string
	run    func(context.Context, *Client) error
}

func exercises() []exercise {
	return []exercise{
		{"list policies", "ListPolicies", nil, func(ctx context.Context, c *Client) error {
			_, err := c.ListPolicies(ctx)
			return err
		}},
		{"get the managed policy", "GetPolicy", nil, func(ctx context.Context, c *Client) error {
			_, err := c.GetPolicy(ctx, managedPolicyID)
			return err
		}},
		{"list authentication strengths", "AuthenticationStrengths", nil, func(ctx context.Context, c *Client) error {
			_, err := c.AuthenticationStrengths(ctx)
			return err
		}},
		{"break-glass group members", "GroupTransitiveMemberIDs", nil, func(ctx context.Context, c *Client) error {
			_, err := c.GroupTransitiveMemberIDs(ctx, breakGlassGroup)
			return err
		}},
		{"excluded group without user details", "GroupDetail", nil, func(ctx context.Context, c *Client) error {
			_, err := c.GroupDetail(ctx, breakGlassGroup, 10)
			return err
		}},
		{"excluded group with user details", "GroupDetail", []string{"users"}, func(ctx context.Context, c *Client) error {
			_, err := c.GroupDetail(ctx, breakGlassGroup, 10)
			return err
		}},
		{"create the managed policy", "CreatePolicy", []string{"remediate"}, func(ctx context.Context, c *Client) error {
			_, err := c.CreatePolicy(ctx, minimalPolicy())
			return err
		}},
		{"restore the managed policy", "UpdatePolicy", []string{"remediate"}, func(ctx context.Context, c *Client) error {
			return c.UpdatePolicy(ctx, managedPolicyID, capolicy.Policy{State: capolicy.StateReportOnly}, []string{FieldState})
		}},
		{"check a break-glass user before a write", "UserExists", []string{"remediate"}, func(ctx context.Context, c *Client) error {
			_, err := c.UserExists(ctx, bgUser2)
			return err
		}},
		{"access review definitions", "AccessReviewDefinitions", []string{"reviews"}, func(ctx context.Context, c *Client) error {
			_, err := c.AccessReviewDefinitions(ctx)
			return err
		}},
		{"access review instances", "AccessReviewInstances", []string{"reviews"}, func(ctx context.Context, c *Client) error {
			_, err := c.AccessReviewInstances(ctx, "dddddddd-0000-0000-0000-000000000001")
			return err
		}},
		// The batched reads of a run: each sub-request must be granted by the sets of its feature, and
		// each object must read without its own error (a 403 inside a batch is not a failed call).
		{"read the tenant in one batch", "ReadTenant", []string{"reviews"}, func(ctx context.Context, c *Client) error {
			r, err := c.ReadTenant(ctx, snapshot.Query{GroupIDs: []string{breakGlassGroup}, Reviews: true})
			if err != nil {
				return err
			}
			return firstErr(r.DefinitionsErr, r.Groups[breakGlassGroup].Err)
		}},
		{"read the tenant with its break-glass users", "ReadTenant", []string{"reviews", "users"}, func(ctx context.Context, c *Client) error {
			r, err := c.ReadTenant(ctx, snapshot.Query{GroupIDs: []string{breakGlassGroup}, UserIDs: []string{bgUser2}, Reviews: true})
			if err != nil {
				return err
			}
			return firstErr(r.DefinitionsErr, r.Groups[breakGlassGroup].Err, r.UsersErr)
		}},
		{"read the tenant with its subscriptions, for a control that needs a licence", "ReadTenant", []string{"reviews", "licences"}, func(ctx context.Context, c *Client) error {
			r, err := c.ReadTenant(ctx, snapshot.Query{GroupIDs: []string{breakGlassGroup}, Reviews: true, Licences: true})
			if err != nil {
				return err
			}
			return firstErr(r.DefinitionsErr, r.Groups[breakGlassGroup].Err, r.SKUsErr)
		}},
		{"read review instances in one batch", "ReadDetails", []string{"reviews"}, func(ctx context.Context, c *Client) error {
			const def = "dddddddd-0000-0000-0000-000000000001"
			d, err := c.ReadDetails(ctx, snapshot.DetailQuery{InstanceDefinitionIDs: []string{def}})
			if err != nil {
				return err
			}
			return firstErr(d.InstanceErrs[def])
		}},
		{"read excluded users and their sign-ins in one batch", "ReadDetails", []string{"users", "signIns"}, func(ctx context.Context, c *Client) error {
			d, err := c.ReadDetails(ctx, snapshot.DetailQuery{GroupIDs: []string{breakGlassGroup}, UserIDs: []string{bgUser2}, SignInUserIDs: []string{bgUser2}})
			if err != nil {
				return err
			}
			return firstErr(d.UsersErr, d.SignInsErr, d.Groups[breakGlassGroup].Err)
		}},
		{"excluded user", "UserDetail", []string{"users"}, func(ctx context.Context, c *Client) error {
			_, err := c.UserDetail(ctx, bgUser2, false)
			return err
		}},
		{"excluded user with sign-in activity", "UserDetail", []string{"signIns"}, func(ctx context.Context, c *Client) error {
			_, err := c.UserDetail(ctx, bgUser2, true)
			return err
		}},
	}
}

// firstErr is the first of errs that is not nil.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// noGraphRequest lists Client methods that send no Graph request, with the reason.
var noGraphRequest = map[string]string{
	"ServicePrincipalID": "reads the oid claim of its own token",
}

func TestEveryGraphRequestNeedsOnlyGrantedPermissions(t *testing.T) {
	sets := permissionSets(t)
	for _, ex := range exercises() {
		t.Run(ex.name, func(t *testing.T) {
			roles := granted(sets, ex.sets...)
			rec := &recorder{next: http.DefaultTransport}
			// The emulator enforces Graph's documented permissions: holding only these roles, the
			// method must succeed.
			e := setup(t, graphfake.Options{Roles: roles}, "drifted.json", func(o *Options) {
				o.HTTPClient = &http.Client{Transport: rec}
			})
			if err := ex.run(context.Background(), e.c); err != nil {
				t.Fatalf("%s with only %v: %v", ex.method, roles, err)
			}
			reqs := rec.requests()
			if len(reqs) == 0 {
				t.Fatalf("%s sent no Graph request; list it in noGraphRequest if that is right", ex.method)
			}
			for _, r := range reqs {
				needs, err := Needs(r)
				if err != nil {
					t.Errorf("%s: %v", ex.method, err)
					continue
				}
				for key, perms := range needs {
					for _, p := range perms {
						if !slices.Contains(roles, p) {
							t.Errorf("%s sends %s, which needs %s; the sets %v of infra/graph-permissions.json grant only %v",
								ex.method, key, p, append([]string{"alert"}, ex.sets...), roles)
						}
					}
				}
			}
		})
	}
}

func TestEveryClientMethodIsExercised(t *testing.T) {
	covered := map[string]bool{}
	for _, ex := range exercises() {
		covered[ex.method] = true
	}
	ctxType := reflect.TypeFor[context.Context]()
	typ := reflect.TypeFor[*Client]()
	for i := range typ.NumMethod() {
		m := typ.Method(i)
		// Methods taking a context are the ones that talk to Graph.
		if m.Type.NumIn() < 2 || m.Type.In(1) != ctxType {
			continue
		}
		if _, ok := noGraphRequest[m.Name]; ok {
			continue
		}
		if !covered[m.Name] {
			t.Errorf("Client.%s is not exercised: add it to exercises() in permissions_test.go with the permission sets its feature is granted", m.Name)
		}
	}
}

func TestEveryListedPermissionIsNeededByACall(t *testing.T) {
	used := map[string]bool{}
	for _, c := range Calls {
		for _, p := range c.Perms {
			used[p] = true
		}
	}
	for name, perms := range permissionSets(t) {
		for _, p := range perms {
			if !used[p] {
				t.Errorf("set %q grants %s, which no entry of graph.Calls needs: drop it, or name the call that needs it", name, p)
			}
		}
	}
	all := map[string]bool{}
	for _, perms := range permissionSets(t) {
		for _, p := range perms {
			all[p] = true
		}
	}
	for _, c := range Calls {
		for _, p := range c.Perms {
			if !all[p] {
				t.Errorf("%s %s needs %s, which no set of infra/graph-permissions.json grants", c.Method, c.Path, p)
			}
		}
	}
}

func TestNeedsLooksUpEachRequest(t *testing.T) {
	cases := []struct {
		name string
		req  Request
		want map[string][]string
		err  string
	}{
		{"a policy read needs Policy.Read.All",
			Request{Method: "GET", Path: "/identity/conditionalAccess/policies/" + managedPolicyID},
			map[string][]string{"GET /identity/conditionalAccess/policies/" + managedPolicyID: {PermReadPolicies}}, ""},
		{"paths match without regard to case",
			Request{Method: "get", Path: "/Identity/ConditionalAccess/Policies"},
			map[string][]string{"GET /Identity/ConditionalAccess/Policies": {PermReadPolicies}}, ""},
		{"a user read with signInActivity also needs AuditLog.Read.All",
			Request{Method: "GET", Path: "/users/" + bgUser2, Query: "$select=id,displayName,signInActivity"},
			map[string][]string{"GET /users/" + bgUser2: {PermReadUsers, PermReadSignIns}}, ""},
		{"a user read without it needs User.Read.All only",
			Request{Method: "GET", Path: "/users/" + bgUser2, Query: "$select=id,accountEnabled"},
			map[string][]string{"GET /users/" + bgUser2: {PermReadUsers}}, ""},
		{"each sub-request of a batch is looked up on its own",
			Request{Method: "POST", Path: "/$batch", Body: []byte(`{"requests":[
				{"id":"1","method":"GET","url":"/identity/conditionalAccess/policies"},
				{"id":"2","method":"GET","url":"users?$filter=id%20in%20('` + bgUser2 + `')&$select=id,signInActivity"},
				{"id":"3","method":"POST","url":"/directoryObjects/getByIds","body":{"ids":["` + bgUser2 + `"],"types":["user"]},"headers":{"Content-Type":"application/json"}}]}`)},
			map[string][]string{
				"GET /identity/conditionalAccess/policies": {PermReadPolicies},
				"GET /users":                      {PermReadUsers, PermReadSignIns},
				"POST /directoryObjects/getByIds": {PermReadUsers},
			}, ""},
		{"the subscriptions need LicenseAssignment.Read.All",
			Request{Method: "GET", Path: "/subscribedSkus", Query: "$select=skuId,servicePlans"},
			map[string][]string{"GET /subscribedSkus": {PermReadLicences}}, ""},
		{"an unlisted path is an error",
			Request{Method: "GET", Path: "/servicePrincipals"}, nil, "GET /servicePrincipals is not in graph.Calls"},
		{"an unlisted method on a listed path is an error",
			Request{Method: "DELETE", Path: "/identity/conditionalAccess/policies/" + managedPolicyID}, nil, "is not in graph.Calls"},
		{"an unlisted sub-request fails its batch",
			Request{Method: "POST", Path: "/$batch", Body: []byte(`{"requests":[{"id":"1","method":"GET","url":"/servicePrincipals"}]}`)},
			nil, "GET /servicePrincipals is not in graph.Calls"},
		{"a batch that is not JSON is an error",
			Request{Method: "POST", Path: "/$batch", Body: []byte(`not json`)}, nil, "not a JSON batch"},
		{"a batch inside a batch is an error",
			Request{Method: "POST", Path: "/$batch", Body: []byte(`{"requests":[{"id":"1","method":"POST","url":"/$batch"}]}`)}, nil, "does not nest"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Needs(tt.req)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error: got %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
