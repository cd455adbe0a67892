package graphfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Identity governance and directory reads for the exclusion inventory:
//
//   - GET /identityGovernance/accessReviews/definitions and .../definitions/{id}/instances answer the
//     seeded accessReviewScheduleDefinition and accessReviewInstance objects as given (scope objects
//     with @odata.type, settings.recurrence), paged like every collection; they need
//     AccessReview.Read.All (or AccessReview.ReadWrite.All), else 403, so a token without it can be
//     tested through Options.Roles. Definitions are served verbatim, in whatever documented shape
//     they were seeded (handler/exclusion/testdata/scopes.json holds one of each); an instance of a
//     review of one group seeded without a scope gets the definition's, as Graph gives it one.
//   - GET /users/{id} answers a seeded user with $select honoured; it needs User.Read.All (or
//     Directory.Read.All), and selecting signInActivity needs AuditLog.Read.All too, as Graph asks
//     (and a premium licence, Options.NoPremiumLicence). signInActivity is served as seeded:
//     lastSignInDateTime and lastNonInteractiveSignInDateTime count failed attempts too, and only
//     lastSuccessfulSignInDateTime tells a successful sign-in (signInActivity resource type, v1.0).
//   - GET /groups/{id} answers a seeded group (displayName, groupTypes, isAssignableToRole).
//   - In a scenario, a user's or an instance's date-time may be written "now-20d" or "now+5d": it is
//     resolved against Options.Now when seeded and served as an ordinary Graph DateTimeOffset, so a
//     demo tenant's reviews stay current however old the scenario file is.
//   - transitiveMembers describes a member that is a seeded user with its displayName and
//     accountEnabled, the properties Graph returns for a user in a directoryObject collection, when
//     the token may read users (User.Read.All or Directory.Read.All); otherwise those are null.

// Permissions of the governance and user reads.
const (
	PermAccessReviewReadAll      = "AccessReview.Read.All"
	PermAccessReviewReadWriteAll = "AccessReview.ReadWrite.All"
	PermUserReadAll              = "User.Read.All"
	PermAuditLogReadAll          = "AuditLog.Read.All"
)

// AccessReview is one seeded access review: the accessReviewScheduleDefinition as Graph answers it,
// and the accessReviewInstance objects of .../definitions/{id}/instances.
type AccessReview struct {
	Definition json.RawMessage   `json:"definition"`
	Instances  []json.RawMessage `json:"instances,omitempty"`
}

type accessReview struct {
	id         string
	definition object
	instances  []object
}

// seedGovernance copies the scenario's users and access reviews into the tenant, resolving
// relative date-times against now.
func (t *tenant) seedGovernance(sc Scenario, now time.Time) error {
	if t.users == nil {
		t.users = map[string]object{}
	}
	for id, raw := range sc.Users {
		var o object
		if err := json.Unmarshal(relativeTimes(raw, now), &o); err != nil || o == nil {
			return fmt.Errorf("seed user %s: not a JSON object", id)
		}
		o["id"] = mustJSON(id)
		if _, ok := o["@odata.type"]; !ok {
			o["@odata.type"] = mustJSON("#microsoft.graph.user")
		}
		// A group member seeded the user already: what the scenario says of it wins.
		for k, v := range t.users[strings.ToLower(id)] {
			if _, ok := o[k]; !ok {
				o[k] = v
			}
		}
		t.users[strings.ToLower(id)] = o
	}
	for i, ar := range sc.AccessReviews {
		var d object
		if err := json.Unmarshal(ar.Definition, &d); err != nil || d == nil {
			return fmt.Errorf("seed access review %d: definition is not a JSON object", i)
		}
		if d.str("id") == "" {
			d["id"] = mustJSON(newGUID())
		}
		rev := accessReview{id: d.str("id"), definition: d}
		for j, raw := range ar.Instances {
			var in object
			if err := json.Unmarshal(relativeTimes(raw, now), &in); err != nil || in == nil {
				return fmt.Errorf("seed access review %d: instance %d is not a JSON object", i, j)
			}
			if in.str("id") == "" {
				in["id"] = mustJSON(newGUID())
			}
			if _, ok := in["scope"]; !ok {
				if scope, ok := oneGroupInstanceScope(d); ok {
					in["scope"] = scope
				}
			}
			rev.instances = append(rev.instances, in)
		}
		t.reviews = append(t.reviews, rev)
	}
	return nil
}

// oneGroupInstanceScope is the scope Graph gives each instance of a review of one group. An
// accessReviewInstance's scope is "Created based on scope and instanceEnumerationScope at the
// accessReviewScheduleDefinition level. Defines the scope of users reviewed in a group"
// (accessReviewInstance resource type, v1.0): for a definition without an enumeration scope, or
// one enumerating a single group ("/groups/{id}", as the portal writes it), that is the
// definition's own scope, and an instance seeded without one is served with it. A review of many
// groups has one instance per group, each scoped to its group
// (accessreviewscheduledefinition-list-instances shows "/v1.0/groups/{id}/members/..."): which
// group an instance belongs to only the scenario can say, so such an instance is served as seeded.
func oneGroupInstanceScope(d object) (json.RawMessage, bool) {
	scope, ok := d["scope"]
	if !ok || string(scope) == "null" {
		return nil, false
	}
	var enum *struct {
		Query string `json:"query"`
	}
	if raw, ok := d["instanceEnumerationScope"]; ok {
		if err := json.Unmarshal(raw, &enum); err != nil {
			return nil, false
		}
	}
	if enum == nil || strings.TrimSpace(enum.Query) == "" {
		return scope, true
	}
	q := strings.TrimPrefix(strings.TrimSpace(enum.Query), "/v1.0")
	if path, _, _ := strings.Cut(q, "?"); oneGroupPath.MatchString(strings.TrimRight(path, "/")) {
		return scope, true
	}
	return nil, false
}

var oneGroupPath = regexp.MustCompile(`(?i)^/groups/[^/?]+$`)

var relativeTime = regexp.MustCompile(`^now([+-])(\d{1,5})d$`)

// relativeTimes replaces every string "now-Nd" or "now+Nd" in a JSON value by the date-time N days
// before or after now. A value that is not JSON is returned as is, for the caller to reject.
func relativeTimes(raw json.RawMessage, now time.Time) json.RawMessage {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return raw
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		case string:
			if m := relativeTime.FindStringSubmatch(x); m != nil {
				n, _ := strconv.Atoi(m[2])
				if m[1] == "-" {
					n = -n
				}
				return now.UTC().AddDate(0, 0, n).Format("2006-01-02T15:04:05Z")
			}
		}
		return v
	}
	out, err := json.Marshal(walk(v))
	if err != nil {
		return raw
	}
	return out
}

// describeMember adds what Graph tells of a user member of a group. Without a permission to read
// users, Graph returns such a member with its id and @odata.type only, its other properties null
// ("limited information for inaccessible member objects").
func (t *tenant) describeMember(o object, readUsers bool) {
	if !readUsers && o.str("@odata.type") == "#microsoft.graph.user" {
		for _, k := range []string{"displayName", "userPrincipalName", "accountEnabled"} {
			o[k] = json.RawMessage("null")
		}
		return
	}
	u, ok := t.users[strings.ToLower(o.str("id"))]
	if !ok {
		return
	}
	for _, k := range []string{"displayName", "accountEnabled", "userPrincipalName"} {
		if v, ok := u[k]; ok {
			o[k] = v
		}
	}
}

// routeGovernance serves the routes above and reports whether it answered.
func (s *Server) routeGovernance(w http.ResponseWriter, r *http.Request, c claims, seg []string) bool {
	is := func(i int, name string) bool { return len(seg) > i && strings.EqualFold(seg[i], name) }
	switch {
	case is(0, "identityGovernance") && is(1, "accessReviews") && is(2, "definitions") && (len(seg) == 3 || (len(seg) == 5 && is(4, "instances"))):
	case is(0, "users") && (len(seg) == 1 || len(seg) == 2):
	case is(0, "groups") && len(seg) == 2:
	default:
		return false
	}
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r)
		return true
	}
	switch {
	case is(0, "users"):
		if !s.allowUser(w, r, c) || !s.signInsAllowed(w, r) {
			return true
		}
		if len(seg) == 1 {
			s.listUsers(w, r)
		} else {
			s.getUser(w, r, seg[1])
		}
	case is(0, "groups"):
		if s.allowDirectory(w, r, c) {
			s.getGroup(w, r, seg[1])
		}
	default:
		if !c.has(PermAccessReviewReadAll, PermAccessReviewReadWriteAll) {
			writeError(w, r, http.StatusForbidden, "Forbidden", "Insufficient permissions to perform the operation: AccessReview.Read.All is required.")
			return true
		}
		if len(seg) == 3 {
			s.listDefinitions(w, r)
		} else {
			s.listInstances(w, r, seg[3])
		}
	}
	return true
}

// allowUser checks the permission to read a user, and AuditLog.Read.All when signInActivity is
// selected: Graph refuses the whole request rather than leaving the property out.
func (s *Server) allowUser(w http.ResponseWriter, r *http.Request, c claims) bool {
	if !c.has(PermUserReadAll, PermDirectoryReadAll) {
		writeError(w, r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return false
	}
	if slices.ContainsFunc(selectFields(r), func(f string) bool { return strings.EqualFold(f, "signInActivity") }) && !c.has(PermAuditLogReadAll) {
		writeError(w, r, http.StatusForbidden, "Authentication_RequestFromUnsupportedUserRole",
			"Calling principal does not have required MSGraph permissions AuditLog.Read.All")
		return false
	}
	return true
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	u, ok := s.tenant.users[strings.ToLower(id)]
	var out object
	if ok {
		out = project(u, selectFields(r)).clone()
		out["@odata.context"] = mustJSON(s.root + "/v1.0/$metadata#users/$entity")
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, r, http.StatusNotFound, "Request_ResourceNotFound",
			"Resource '"+id+"' does not exist or one of its queried reference-property objects are not present.")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	g, ok := s.tenant.groups[id]
	s.mu.Unlock()
	if !ok {
		writeError(w, r, http.StatusNotFound, "Request_ResourceNotFound",
			"Resource '"+id+"' does not exist or one of its queried reference-property objects are not present.")
		return
	}
	out := project(groupObject(id, g), selectFields(r)).clone()
	out["@odata.context"] = mustJSON(s.root + "/v1.0/$metadata#groups/$entity")
	writeJSON(w, http.StatusOK, out)
}

// groupObject is a group as Graph answers it.
func groupObject(id string, g Group) object {
	types := g.GroupTypes
	if types == nil {
		types = []string{}
	}
	return object{
		"@odata.type":        mustJSON("#microsoft.graph.group"),
		"id":                 mustJSON(id),
		"displayName":        mustJSON(g.DisplayName),
		"groupTypes":         mustJSON(types),
		"isAssignableToRole": mustJSON(g.IsAssignableToRole),
		"securityEnabled":    mustJSON(!slices.Contains(types, "Unified")),
		"mailEnabled":        mustJSON(slices.Contains(types, "Unified")),
	}
}

// listDefinitions pages with $top and $skip as well as $skiptoken: "apply pagination using the $skip
// and $top query parameters" (accessreviewset-list-definitions, v1.0). A nextLink keeps $skip, and
// its $skiptoken counts from there.
func (s *Server) listDefinitions(w http.ResponseWriter, r *http.Request) {
	fields := selectFields(r)
	skip := 0
	if v := r.URL.Query().Get("$skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, r, http.StatusBadRequest, "BadRequest", "Invalid $skip value.")
			return
		}
		skip = n
	}
	s.mu.Lock()
	items := make([]json.RawMessage, 0, len(s.tenant.reviews))
	for _, rev := range s.tenant.reviews {
		items = append(items, project(rev.definition, fields).marshal())
	}
	s.mu.Unlock()
	s.writePage(w, r, items[min(skip, len(items)):], "identityGovernance/accessReviews/definitions")
}

func (s *Server) listInstances(w http.ResponseWriter, r *http.Request, id string) {
	fields := selectFields(r)
	s.mu.Lock()
	var items []json.RawMessage
	found := false
	for _, rev := range s.tenant.reviews {
		if rev.id != id {
			continue
		}
		found = true
		for _, in := range rev.instances {
			items = append(items, project(in, fields).marshal())
		}
	}
	s.mu.Unlock()
	if !found {
		writeError(w, r, http.StatusNotFound, "NotFound", "The access review schedule definition "+id+" was not found.")
		return
	}
	if items == nil {
		items = []json.RawMessage{}
	}
	s.writePage(w, r, items, "identityGovernance/accessReviews/definitions('"+id+"')/instances")
}
