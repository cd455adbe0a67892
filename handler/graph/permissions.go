package graph

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// PermReadApplications is the third permission Graph's "Create conditionalAccessPolicy" and
// "Update conditionalAccessPolicy" pages list for application callers, beside Policy.Read.All and
// Policy.ReadWrite.ConditionalAccess.
const PermReadApplications = "Application.Read.All"

// Call is one kind of Microsoft Graph request the client makes, with the application permissions it
// needs. Calls lists every one of them; handler/graph/permissions_test.go runs each Client method
// against the emulator and fails on a request that no entry matches, or whose permissions the
// deployment's sets (infra/graph-permissions.json) do not grant.
type Call struct {
	// Method is the HTTP method.
	Method string
	// Path is the path below the version root; a segment "{id}" matches any one segment, others
	// match without regard to case, as Graph's do.
	Path string
	// Select, when set, matches only a request whose $select names this property; such an entry
	// must come before the one for the same path without it.
	Select string
	// Perms are every permission the request needs.
	Perms []string
	// Batch marks JSON batching: the request itself needs nothing, each of its sub-requests is
	// matched on its own.
	Batch bool
	// Doc is the Graph v1.0 reference page (learn.microsoft.com/graph/api/<Doc>).
	Doc string
}

// Calls is the table of Graph requests. Add a row when the client starts making a new kind of
// request, and put its permission in a set of infra/graph-permissions.json.
var Calls = []Call{
	{Method: "GET", Path: "/identity/conditionalAccess/policies", Perms: []string{PermReadPolicies}, Doc: "conditionalaccessroot-list-policies"},
	{Method: "GET", Path: "/identity/conditionalAccess/policies/{id}", Perms: []string{PermReadPolicies}, Doc: "conditionalaccesspolicy-get"},
	{Method: "POST", Path: "/identity/conditionalAccess/policies", Perms: []string{PermReadPolicies, PermWritePolicies, PermReadApplications}, Doc: "conditionalaccessroot-post-policies"},
	{Method: "PATCH", Path: "/identity/conditionalAccess/policies/{id}", Perms: []string{PermReadPolicies, PermWritePolicies, PermReadApplications}, Doc: "conditionalaccesspolicy-update"},
	{Method: "GET", Path: "/policies/authenticationStrengthPolicies", Perms: []string{PermReadPolicies}, Doc: "authenticationstrengthroot-list-policies"},
	{Method: "GET", Path: "/policies/authenticationStrengthPolicies/{id}", Perms: []string{PermReadPolicies}, Doc: "authenticationstrengthpolicy-get"},
	{Method: "GET", Path: "/groups/{id}", Perms: []string{PermReadMembers}, Doc: "group-get"},
	{Method: "GET", Path: "/groups/{id}/transitiveMembers", Perms: []string{PermReadMembers}, Doc: "group-list-transitivemembers"},
	{Method: "GET", Path: "/identityGovernance/accessReviews/definitions", Perms: []string{PermReadAccessReviews}, Doc: "accessreviewset-list-definitions"},
	{Method: "GET", Path: "/identityGovernance/accessReviews/definitions/{id}/instances", Perms: []string{PermReadAccessReviews}, Doc: "accessreviewscheduledefinition-list-instances"},
	// signInActivity takes AuditLog.Read.All besides User.Read.All ("user resource type", signInActivity).
	{Method: "GET", Path: "/users/{id}", Select: "signInActivity", Perms: []string{PermReadUsers, PermReadSignIns}, Doc: "user-get"},
	{Method: "GET", Path: "/users/{id}", Perms: []string{PermReadUsers}, Doc: "user-get"},
	// Many users in one request: /users?$filter=id in ('…','…')&$select=…
	{Method: "GET", Path: "/users", Select: "signInActivity", Perms: []string{PermReadUsers, PermReadSignIns}, Doc: "user-list"},
	{Method: "GET", Path: "/users", Perms: []string{PermReadUsers}, Doc: "user-list"},
	// Assumption: with types ["user"], User.Read.All is enough. The page lists only
	// Directory.Read.All for applications, but callers report that User.Read.All loads users
	// (microsoft-graph-docs-contrib issue 8798, November 2023); check on the first real deployment.
	{Method: "POST", Path: "/directoryObjects/getByIds", Perms: []string{PermReadUsers}, Doc: "directoryobject-getbyids"},
	// Only when an enabled control needs a licence (the risk controls: Entra ID P2).
	{Method: "GET", Path: "/subscribedSkus", Perms: []string{PermReadLicences}, Doc: "subscribedsku-list"},
	{Method: "POST", Path: "/$batch", Batch: true, Doc: "json-batching"},
}

// Request is one Graph request as a test sees it on the wire: path below the version root, raw
// query, body (for $batch).
type Request struct {
	Method string
	Path   string
	Query  string
	Body   []byte
}

// Needs returns the permissions each of req's requests needs, keyed by "METHOD /path": one entry
// for a plain request, one per sub-request for a $batch. A request that Calls does not list is an
// error, as is a $batch body that does not parse.
func Needs(req Request) (map[string][]string, error) {
	out := map[string][]string{}
	return out, needs(req, out, 0)
}

func needs(req Request, out map[string][]string, depth int) error {
	call, ok := lookup(req)
	key := strings.ToUpper(req.Method) + " " + req.Path
	if !ok {
		return fmt.Errorf("%s is not in graph.Calls: add it there with the permission it needs, and put that permission in a set of infra/graph-permissions.json", key)
	}
	if !call.Batch {
		out[key] = call.Perms
		return nil
	}
	if depth > 0 {
		return fmt.Errorf("%s inside a $batch: Graph does not nest batches", key)
	}
	// JSON batching: {"requests":[{"id":"1","method":"GET","url":"/users/…?$select=…"}, …]}, each url
	// relative to the version root, with or without its leading slash.
	var batch struct {
		Requests []struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		} `json:"requests"`
	}
	if err := json.Unmarshal(req.Body, &batch); err != nil || len(batch.Requests) == 0 {
		return fmt.Errorf("%s: the body is not a JSON batch with requests", key)
	}
	for _, sub := range batch.Requests {
		u, err := url.Parse("/" + strings.TrimPrefix(sub.URL, "/"))
		if err != nil {
			return fmt.Errorf("%s: sub-request url %q: %w", key, sub.URL, err)
		}
		if err := needs(Request{Method: sub.Method, Path: u.Path, Query: u.RawQuery}, out, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func lookup(req Request) (Call, bool) {
	got := strings.Split(strings.Trim(req.Path, "/"), "/")
	q, _ := url.ParseQuery(req.Query)
	selected := map[string]bool{}
	for _, s := range q["$select"] {
		for _, f := range strings.Split(s, ",") {
			selected[strings.ToLower(strings.TrimSpace(f))] = true
		}
	}
	for _, c := range Calls {
		if !strings.EqualFold(c.Method, req.Method) {
			continue
		}
		want := strings.Split(strings.Trim(c.Path, "/"), "/")
		if len(want) != len(got) {
			continue
		}
		match := true
		for i := range want {
			if want[i] != "{id}" && !strings.EqualFold(want[i], got[i]) {
				match = false
				break
			}
		}
		if match && (c.Select == "" || selected[strings.ToLower(c.Select)]) {
			return c, true
		}
	}
	return Call{}, false
}
