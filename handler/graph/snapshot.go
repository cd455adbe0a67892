package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/snapshot"
)

// The batched reads and the application permission each needs (POST /$batch itself needs none:
// every request in it is authorised on its own):
//
//	GET /identity/conditionalAccess/policies                          Policy.Read.All
//	GET /policies/authenticationStrengthPolicies                      Policy.Read.All
//	GET /groups/{id}, /groups/{id}/transitiveMembers                  GroupMember.Read.All
//	GET /users?$filter=id in (...)&$select=id,displayName,...         User.Read.All
//	GET /users?$filter=id in (...)&$select=id,signInActivity          User.Read.All and AuditLog.Read.All (and Entra ID P1/P2)
//	GET /identityGovernance/accessReviews/definitions[/{id}/instances] AccessReview.Read.All
//	GET /subscribedSkus                                               LicenseAssignment.Read.All

// ReadTenant reads phase one of a run in JSON batches: one round trip for the first page of
// everything, and one more per further page of the longest read. It carries the Conditional
// Access policies (raw JSON through capolicy.ParsePolicy, as ListPolicies reads them), the
// authentication strength policies (so that a strength answered by id is completed without a
// round trip of its own), each break-glass group with all its transitive members, the break-glass
// users, and with q.Reviews the access review definitions.
//
// It fails only when the policies or the strengths cannot be read, completely: without them no
// policy can be judged. Every other failure stays with its object (Group.Err, UsersErr,
// DefinitionsErr), an *Error like those of the per-call methods. Needs Policy.Read.All,
// GroupMember.Read.All, User.Read.All and, for reviews, AccessReview.Read.All.
func (c *Client) ReadTenant(ctx context.Context, q snapshot.Query) (snapshot.Read, error) {
	const op = "read tenant"
	ctx, cl := c.begin(ctx, op, "")
	out := snapshot.Read{Groups: map[string]snapshot.Group{}, Users: map[string]snapshot.User{}}

	policies := []capolicy.Policy{}
	polRead := &batchRead{op: "list policies", perm: PermReadPolicies, method: http.MethodGet,
		url: "/identity/conditionalAccess/policies"}
	pages := 0
	polRead.page = func(body []byte) (*string, error) {
		pages++
		var page struct {
			Value    *[]json.RawMessage `json:"value"`
			NextLink *string            `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(body, &page); err != nil || page.Value == nil {
			// A page without a collection is not an empty tenant.
			return nil, &Error{Op: polRead.op, Code: "MalformedResponse", Message: "graph answered a page without a value collection", Transient: true}
		}
		for i, raw := range *page.Value {
			p, err := policyFromJSON(raw)
			if err != nil {
				return nil, &Error{Op: polRead.op, Code: "InvalidPolicy", Message: fmt.Sprintf("%v (item %d of page %d)", err, i, pages)}
			}
			policies = append(policies, p)
		}
		return page.NextLink, nil
	}

	var strengths []capolicy.AuthenticationStrength
	strRead := &batchRead{op: "list authentication strengths", perm: PermReadPolicies, method: http.MethodGet,
		url: "/policies/authenticationStrengthPolicies"}
	strRead.page = func(body []byte) (*string, error) {
		// Raw JSON parsed by capolicy, as AuthenticationStrengths reads them: the SDK's model turns
		// a requirementsSatisfied it does not know into nothing and drops a combination holding a
		// method it does not know, and the rules must see both to refuse them.
		var page struct {
			Value    *[]json.RawMessage `json:"value"`
			NextLink *string            `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(body, &page); err != nil || page.Value == nil {
			return nil, &Error{Op: strRead.op, Code: "MalformedResponse", Message: "graph answered a page without a value collection", Transient: true}
		}
		for _, raw := range *page.Value {
			st, err := capolicy.ParseAuthenticationStrength(raw)
			if err != nil {
				return nil, &Error{Op: strRead.op, Code: "InvalidStrength", Message: err.Error()}
			}
			if st.ID != "" {
				strengths = append(strengths, st)
			}
		}
		return page.NextLink, nil
	}

	reads := []*batchRead{polRead, strRead}
	groups, groupReads := c.groupReads(q.GroupIDs, q.MaxMembers)
	reads = append(reads, groupReads...)
	users, userReads := c.userReads(q.UserIDs)
	reads = append(reads, userReads...)

	var defs []exclusion.Definition
	var defRead *batchRead
	if q.Reviews {
		path, query := definitionsQuery()
		defRead = &batchRead{op: "list access review definitions", perm: PermReadAccessReviews, method: http.MethodGet, url: relative(path, query)}
		defRead.page = collection(defRead.op, func(raw json.RawMessage) error {
			d, err := definitionFromJSON(defRead.op, raw)
			if err != nil {
				return err
			}
			defs = append(defs, d)
			return nil
		})
		reads = append(reads, defRead)
	}

	var skus []capolicy.SubscribedSku
	var skuRead *batchRead
	if q.Licences {
		skuRead = subscribedSkusRead(&skus)
		reads = append(reads, skuRead)
	}

	c.runBatches(ctx, cl, reads)

	if polRead.err != nil {
		return snapshot.Read{}, polRead.err
	}
	if strRead.err != nil {
		return snapshot.Read{}, strRead.err
	}
	fillStrengths(policies, strengths)
	out.Policies, out.Strengths = policies, strengths
	out.Groups = groups.result()
	out.Users, out.UsersErr = users.result()
	if defRead != nil {
		if defRead.err != nil {
			out.DefinitionsErr = defRead.err
		} else {
			out.Definitions = defs
		}
	}
	if skuRead != nil {
		if skuRead.err != nil {
			out.SKUsErr = skuRead.err
		} else {
			out.SKUs = skus
		}
	}
	return out, nil
}

// ReadDetails reads phase two of a run in JSON batches: the groups and users phase one did not
// read, the instances of the access reviews that cover an exclusion, and the last successful
// sign-in of excluded users. An empty query costs no round trip. Every failure stays with its
// object; a missing AuditLog.Read.All or licence shows in SignInsErr (Forbidden, LicenceMissing).
func (c *Client) ReadDetails(ctx context.Context, q snapshot.DetailQuery) (snapshot.Details, error) {
	const op = "read exclusion details"
	out := snapshot.Details{Groups: map[string]snapshot.Group{}, Users: map[string]snapshot.User{},
		SignIns: map[string]time.Time{}, Instances: map[string][]exclusion.Instance{}, InstanceErrs: map[string]error{}}
	ctx, cl := c.begin(ctx, op, "")

	groups, reads := c.groupReads(q.GroupIDs, q.MaxMembers)
	users, userReads := c.userReads(q.UserIDs)
	reads = append(reads, userReads...)

	type instanceRead struct {
		read *batchRead
		list []exclusion.Instance
	}
	instances := map[string]*instanceRead{}
	for _, id := range unique(q.InstanceDefinitionIDs) {
		const iop = "list access review instances"
		path, query := instancesQuery(id)
		ir := &instanceRead{read: &batchRead{op: iop, perm: PermReadAccessReviews, method: http.MethodGet, url: relative(path, query)}}
		ir.read.page = collection(iop, func(raw json.RawMessage) error {
			in, err := instanceFromJSON(iop, raw)
			if err != nil {
				return err
			}
			ir.list = append(ir.list, in)
			return nil
		})
		instances[id] = ir
		reads = append(reads, ir.read)
	}

	var signInReads []*batchRead
	for _, chunk := range chunks(unique(q.SignInUserIDs), maxInValues) {
		const sop = "read sign-in activity"
		r := &batchRead{op: sop, perm: PermReadUsers + " and " + PermReadSignIns, method: http.MethodGet,
			url: relative("/users", url.Values{"$filter": {idIn(chunk)}, "$select": {"id,signInActivity"}, "$top": {"999"}})}
		asked := askedByLower(chunk)
		r.page = collection(sop, func(raw json.RawMessage) error {
			var u struct {
				ID             string             `json:"id"`
				SignInActivity *rawSignInActivity `json:"signInActivity"`
			}
			if err := json.Unmarshal(raw, &u); err != nil || u.ID == "" {
				return &Error{Op: sop, Code: "MalformedResponse", Message: "a user has no id"}
			}
			id, ok := asked[strings.ToLower(u.ID)]
			if !ok {
				return nil // not asked for: a filter Graph applied loosely
			}
			if last, ok := u.SignInActivity.lastSuccess(); ok {
				out.SignIns[id] = last
			}
			return nil
		})
		signInReads = append(signInReads, r)
		reads = append(reads, r)
	}

	if len(reads) == 0 {
		return out, nil
	}
	c.runBatches(ctx, cl, reads)

	out.Groups = groups.result()
	out.Users, out.UsersErr = users.result()
	for id, ir := range instances {
		if ir.read.err != nil {
			out.InstanceErrs[id] = ir.read.err
			continue
		}
		out.Instances[id] = ir.list
	}
	for _, r := range signInReads {
		if r.err != nil {
			out.SignIns, out.SignInsErr = map[string]time.Time{}, r.err
			break
		}
	}
	return out, nil
}

// collection is a page function for a collection of raw items.
func collection(op string, each func(json.RawMessage) error) func([]byte) (*string, error) {
	return func(body []byte) (*string, error) {
		var page struct {
			Value    []json.RawMessage `json:"value"`
			NextLink *string           `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(body, &page); err != nil || page.Value == nil {
			return nil, &Error{Op: op, Code: "MalformedResponse", Message: "graph answered no collection", Transient: true}
		}
		for _, item := range page.Value {
			if err := each(item); err != nil {
				return nil, err
			}
		}
		return page.NextLink, nil
	}
}

// groupSet collects the groups read in one run of batches.
type groupSet struct {
	order []string
	byID  map[string]*groupState
}

type groupState struct {
	detail      exclusion.GroupDetail
	ids         []string
	self, items *batchRead
}

func (s groupSet) result() map[string]snapshot.Group {
	out := make(map[string]snapshot.Group, len(s.order))
	for _, id := range s.order {
		g := s.byID[id]
		switch {
		case g.self.err != nil:
			out[id] = snapshot.Group{Err: g.self.err}
		case g.items.err != nil:
			out[id] = snapshot.Group{Err: g.items.err}
		default:
			g.detail.Truncated = g.detail.MemberCount > len(g.detail.Members)
			out[id] = snapshot.Group{Detail: g.detail, MemberIDs: g.ids}
		}
	}
	return out
}

// groupReads builds, for each group, the read of its own properties and the read of its members
// (every page), as GroupDetail and GroupTransitiveMemberIDs read them.
func (c *Client) groupReads(ids []string, maxMembers int) (groupSet, []*batchRead) {
	if maxMembers <= 0 {
		maxMembers = exclusion.DefaultMaxMembers
	}
	const op = "read excluded group"
	set := groupSet{byID: map[string]*groupState{}}
	var reads []*batchRead
	for _, id := range unique(ids) {
		gid := id
		g := &groupState{ids: []string{}}
		g.detail.ID = gid
		path, query := groupQuery(gid)
		g.self = &batchRead{op: op, perm: PermReadMembers, method: http.MethodGet, url: relative(path, query)}
		g.self.page = func(body []byte) (*string, error) {
			var raw rawGroup
			if err := json.Unmarshal(body, &raw); err != nil {
				return nil, &Error{Op: op, Code: "MalformedResponse", Message: "the answer is not a JSON object", Transient: true}
			}
			raw.into(&g.detail, gid)
			return nil, nil
		}
		path, query = membersQuery(gid)
		g.items = &batchRead{op: op, perm: PermReadMembers, method: http.MethodGet, url: relative(path, query)}
		g.items.page = collection(op, func(raw json.RawMessage) error {
			m, err := memberFromJSON(op, raw)
			if err != nil {
				return err
			}
			g.ids = append(g.ids, m.ID)
			g.detail.MemberCount++
			if len(g.detail.Members) < maxMembers {
				g.detail.Members = append(g.detail.Members, m)
			}
			return nil
		})
		if gid == "" {
			e := &Error{Op: op, Code: "ClientError", Message: "empty group id"}
			g.self.fail(e)
			g.items.fail(e)
		}
		set.order = append(set.order, gid)
		set.byID[gid] = g
		reads = append(reads, g.self, g.items)
	}
	return set, reads
}

// maxInValues is how many values one $filter "in" may hold: "requests are limited to 15
// expressions in the filter clause by default" when the in operator is used (Graph's $filter
// query parameter documentation and its known issues).
const maxInValues = 15

// userSet collects the users read in one run of batches.
type userSet struct {
	asked []string
	found map[string]exclusion.Member
	reads []*batchRead
}

func (s userSet) result() (map[string]snapshot.User, error) {
	out := map[string]snapshot.User{}
	for _, r := range s.reads {
		if r.err != nil {
			return out, r.err
		}
	}
	for _, id := range s.asked {
		m, ok := s.found[id]
		if !ok {
			m = exclusion.Member{ID: id}
		}
		out[id] = snapshot.User{Member: m, Found: ok}
	}
	return out, nil
}

// userReads looks the users up by id, 15 to a request: GET /users?$filter=id in (...) with
// $select=id,displayName,accountEnabled. Graph answers the users that exist; an id it leaves out is
// deleted or not yet replicated. This needs User.Read.All, the permission UserExists needs; POST
// /directoryObjects/getByIds would take 1000 ids at once, but its documented permission is
// Directory.Read.All, far broader than caguard needs, and 20 users fit in two sub-requests.
func (c *Client) userReads(ids []string) (userSet, []*batchRead) {
	const op = "look up users"
	set := userSet{found: map[string]exclusion.Member{}}
	for _, id := range unique(ids) {
		if id != "" {
			set.asked = append(set.asked, id)
		}
	}
	for _, chunk := range chunks(set.asked, maxInValues) {
		asked := askedByLower(chunk)
		r := &batchRead{op: op, perm: PermReadUsers, method: http.MethodGet,
			url: relative("/users", url.Values{"$filter": {idIn(chunk)}, "$select": {"id,displayName,accountEnabled"}, "$top": {"999"}})}
		r.page = collection(op, func(raw json.RawMessage) error {
			m, err := memberFromJSON(op, raw)
			if err != nil {
				return err
			}
			if id, ok := asked[strings.ToLower(m.ID)]; ok {
				m.ID = id
				set.found[id] = m
			}
			return nil
		})
		set.reads = append(set.reads, r)
	}
	return set, set.reads
}

// idIn is the OData filter "id in ('a','b')", each id a string literal with its quotes doubled.
func idIn(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = "'" + strings.ReplaceAll(id, "'", "''") + "'"
	}
	return "id in (" + strings.Join(q, ",") + ")"
}

func askedByLower(ids []string) map[string]string {
	m := make(map[string]string, len(ids))
	for _, id := range ids {
		m[strings.ToLower(id)] = id
	}
	return m
}

// unique keeps the first of each id (compared without case, as Graph compares object ids).
func unique(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		k := strings.ToLower(strings.TrimSpace(id))
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, id)
	}
	return out
}

func chunks(ids []string, n int) [][]string {
	var out [][]string
	for len(ids) > 0 {
		k := min(n, len(ids))
		out = append(out, ids[:k])
		ids = ids[k:]
	}
	return out
}
