package graph

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/identity"
	"github.com/microsoftgraph/msgraph-sdk-go/policies"

	"github.com/caguard/caguard/handler/capolicy"
)

// maxPages stops a paging loop that a misbehaving server would never end.
const maxPages = 1000

// The request builders are built from the adapter directly rather than through
// GraphServiceClient, whose package imports every Graph API and adds minutes to a cold build.
func (c *Client) policiesBuilder() *identity.ConditionalAccessPoliciesRequestBuilder {
	return identity.NewIdentityRequestBuilderInternal(c.pathParameters, c.adapter).ConditionalAccess().Policies()
}

func (c *Client) groupsBuilder() *groups.GroupsRequestBuilder {
	return groups.NewGroupsRequestBuilderInternal(c.pathParameters, c.adapter)
}

func (c *Client) strengthsBuilder() *policies.AuthenticationStrengthPoliciesRequestBuilder {
	return policies.NewPoliciesRequestBuilderInternal(c.pathParameters, c.adapter).AuthenticationStrengthPolicies()
}

// pager follows @odata.nextLink. Kiota's PageIterator is not used: on the second and later pages it
// loses Graph's error mapping (plain ApiError) unless a process-wide registry is patched.
type pager struct {
	c     *Client
	seen  map[string]bool
	pages int
}

// next checks a nextLink and reports whether there is one. The link must stay on the Graph host:
// anywhere else the SDK would send it without Authorization, or to a host we do not trust.
func (p *pager) next(link *string) (string, bool, error) {
	if link == nil || *link == "" {
		return "", false, nil
	}
	u, err := url.Parse(*link)
	if err != nil || !strings.EqualFold(u.Scheme, p.c.base.Scheme) || !strings.EqualFold(u.Host, p.c.base.Host) {
		return "", false, fmt.Errorf("@odata.nextLink %q is not on %s", *link, p.c.base.Host)
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	p.pages++
	if p.seen[*link] || p.pages > maxPages {
		return "", false, fmt.Errorf("paging does not end (page %d, %s)", p.pages, *link)
	}
	p.seen[*link] = true
	return *link, true, nil
}

// ListPolicies returns every Conditional Access policy, following every page. Strengths that Graph
// answered by id only are completed from /policies/authenticationStrengthPolicies.
// Needs Policy.Read.All.
func (c *Client) ListPolicies(ctx context.Context) ([]capolicy.Policy, error) {
	const op = "list policies"
	ctx, cl := c.begin(ctx, op, PermReadPolicies)
	resp, err := c.policiesBuilder().Get(ctx, nil)
	if err != nil {
		return nil, classify(op, PermReadPolicies, err, cl)
	}
	out := []capolicy.Policy{}
	pg := pager{c: c}
	for {
		if resp == nil {
			return nil, &Error{Op: op, Code: "MalformedResponse", Message: "graph answered no collection", Transient: true}
		}
		for _, m := range resp.GetValue() {
			p, err := policyFromSDK(m)
			if err != nil {
				return nil, &Error{Op: op, Code: "InvalidPolicy", Message: err.Error()}
			}
			out = append(out, p)
		}
		link, ok, err := pg.next(resp.GetOdataNextLink())
		if err != nil {
			return nil, &Error{Op: op, Code: "InvalidPaging", Message: err.Error()}
		}
		if !ok {
			break
		}
		resp, err = c.policiesBuilder().WithUrl(link).Get(ctx, nil)
		if err != nil {
			return nil, classify(op, PermReadPolicies, err, cl)
		}
	}
	if err := c.completeStrengths(ctx, op, out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetPolicy returns one policy. Needs Policy.Read.All.
func (c *Client) GetPolicy(ctx context.Context, id string) (capolicy.Policy, error) {
	const op = "get policy"
	if id == "" {
		return capolicy.Policy{}, &Error{Op: op, Code: "ClientError", Message: "empty policy id"}
	}
	ctx, cl := c.begin(ctx, op, PermReadPolicies)
	m, err := c.policiesBuilder().ByConditionalAccessPolicyId(id).Get(ctx, nil)
	if err != nil {
		return capolicy.Policy{}, classify(op, PermReadPolicies, err, cl)
	}
	p, err := policyFromSDK(m)
	if err != nil {
		return capolicy.Policy{}, &Error{Op: op, Code: "InvalidPolicy", Message: err.Error()}
	}
	ps := []capolicy.Policy{p}
	if err := c.completeStrengths(ctx, op, ps); err != nil {
		return capolicy.Policy{}, err
	}
	return ps[0], nil
}

// CreatePolicy creates p (display name, state, conditions, grant and session controls) and returns
// the policy Graph created, id included. Needs Policy.ReadWrite.ConditionalAccess.
func (c *Client) CreatePolicy(ctx context.Context, p capolicy.Policy) (capolicy.Policy, error) {
	const op = "create policy"
	fields := []string{FieldDisplayName, FieldState, FieldConditions}
	if p.GrantControls != nil {
		fields = append(fields, FieldGrantControls)
	}
	if p.SessionControls != nil {
		fields = append(fields, FieldSessionControls)
	}
	body, err := policyToSDK(p, fields)
	if err != nil {
		return capolicy.Policy{}, &Error{Op: op, Code: "InvalidPolicy", Message: err.Error()}
	}
	ctx, cl := c.begin(ctx, op, PermWritePolicies)
	m, err := c.policiesBuilder().Post(ctx, body, nil)
	if err != nil {
		return capolicy.Policy{}, classify(op, PermWritePolicies, err, cl)
	}
	created, err := policyFromSDK(m)
	if err != nil {
		return capolicy.Policy{}, &Error{Op: op, Code: "InvalidPolicy", Message: err.Error()}
	}
	if created.ID == "" {
		return capolicy.Policy{}, &Error{Op: op, Code: "MalformedResponse", Message: "graph answered the created policy without an id"}
	}
	return created, nil
}

// UpdatePolicy PATCHes the listed top-level properties of policy id with their values in p, and
// nothing else. fields are Graph names: displayName, state, conditions, grantControls,
// sessionControls; a listed grantControls or sessionControls that p leaves nil is cleared. Needs
// Policy.ReadWrite.ConditionalAccess.
func (c *Client) UpdatePolicy(ctx context.Context, id string, p capolicy.Policy, fields []string) error {
	const op = "update policy"
	if id == "" {
		return &Error{Op: op, Code: "ClientError", Message: "empty policy id"}
	}
	if len(fields) == 0 {
		return &Error{Op: op, Code: "ClientError", Message: "no properties to update"}
	}
	seen := map[string]bool{}
	for _, f := range fields {
		if !writableField(f) {
			return &Error{Op: op, Code: "ClientError", Message: fmt.Sprintf("property %q cannot be written", f)}
		}
		if seen[f] {
			return &Error{Op: op, Code: "ClientError", Message: fmt.Sprintf("property %q listed twice", f)}
		}
		seen[f] = true
	}
	// A fresh model, never one read from Graph: the SDK's backing store does not record changes made
	// to a fetched model, and the PATCH would go out as {}.
	body, err := policyToSDK(p, fields)
	if err != nil {
		return &Error{Op: op, Code: "InvalidPolicy", Message: err.Error()}
	}
	ctx, cl := c.begin(ctx, op, PermWritePolicies)
	if _, err := c.policiesBuilder().ByConditionalAccessPolicyId(id).Patch(ctx, body, nil); err != nil {
		return classify(op, PermWritePolicies, err, cl)
	}
	return nil
}

// completeStrengths fills in authentication strengths that Graph answered by reference only (id
// without requirementsSatisfied), from one listing of the tenant's strengths.
func (c *Client) completeStrengths(ctx context.Context, op string, ps []capolicy.Policy) error {
	need := false
	for _, p := range ps {
		if s := strengthRef(p); s != nil && s.RequirementsSatisfied == "" {
			need = true
			break
		}
	}
	if !need {
		return nil
	}
	all, err := c.AuthenticationStrengths(ctx)
	if err != nil {
		if ge, ok := err.(*Error); ok {
			ge.Op = op + ": " + ge.Op
		}
		return err
	}
	byID := map[string]capolicy.AuthenticationStrength{}
	for _, s := range all {
		byID[strings.ToLower(s.ID)] = s
	}
	for i := range ps {
		s := strengthRef(ps[i])
		if s == nil || s.RequirementsSatisfied != "" {
			continue
		}
		if full, ok := byID[strings.ToLower(s.ID)]; ok {
			*s = full
		}
	}
	return nil
}

func strengthRef(p capolicy.Policy) *capolicy.AuthenticationStrength {
	if p.GrantControls == nil {
		return nil
	}
	return p.GrantControls.AuthenticationStrength
}

// GroupTransitiveMemberIDs returns the object ids of every direct and nested member of a group.
// Needs GroupMember.Read.All.
func (c *Client) GroupTransitiveMemberIDs(ctx context.Context, groupID string) ([]string, error) {
	const op = "list group members"
	if groupID == "" {
		return nil, &Error{Op: op, Code: "ClientError", Message: "empty group id"}
	}
	ctx, cl := c.begin(ctx, op, PermReadMembers)
	top := int32(999)
	cfg := &groups.ItemTransitiveMembersRequestBuilderGetRequestConfiguration{
		QueryParameters: &groups.ItemTransitiveMembersRequestBuilderGetQueryParameters{Select: []string{"id"}, Top: &top},
	}
	b := c.groupsBuilder().ByGroupId(groupID).TransitiveMembers()
	resp, err := b.Get(ctx, cfg)
	if err != nil {
		return nil, classify(op, PermReadMembers, err, cl)
	}
	ids := []string{}
	pg := pager{c: c}
	for {
		if resp == nil {
			return nil, &Error{Op: op, Code: "MalformedResponse", Message: "graph answered no collection", Transient: true}
		}
		for _, m := range resp.GetValue() {
			if m == nil || deref(m.GetId()) == "" {
				return nil, &Error{Op: op, Code: "MalformedResponse", Message: "a member has no id"}
			}
			ids = append(ids, *m.GetId())
		}
		link, ok, err := pg.next(resp.GetOdataNextLink())
		if err != nil {
			return nil, &Error{Op: op, Code: "InvalidPaging", Message: err.Error()}
		}
		if !ok {
			break
		}
		// The nextLink carries $select and $top already.
		resp, err = b.WithUrl(link).Get(ctx, nil)
		if err != nil {
			return nil, classify(op, PermReadMembers, err, cl)
		}
	}
	return ids, nil
}

// AuthenticationStrengths returns the tenant's authentication strength policies, built-in and
// custom. Needs Policy.Read.All.
func (c *Client) AuthenticationStrengths(ctx context.Context) ([]capolicy.AuthenticationStrength, error) {
	const op = "list authentication strengths"
	ctx, cl := c.begin(ctx, op, PermReadPolicies)
	b := c.strengthsBuilder()
	resp, err := b.Get(ctx, nil)
	if err != nil {
		return nil, classify(op, PermReadPolicies, err, cl)
	}
	var out []capolicy.AuthenticationStrength
	pg := pager{c: c}
	for {
		if resp == nil {
			return nil, &Error{Op: op, Code: "MalformedResponse", Message: "graph answered no collection", Transient: true}
		}
		for _, m := range resp.GetValue() {
			if s := strengthFromSDK(m); s != nil {
				out = append(out, *s)
			}
		}
		link, ok, err := pg.next(resp.GetOdataNextLink())
		if err != nil {
			return nil, &Error{Op: op, Code: "InvalidPaging", Message: err.Error()}
		}
		if !ok {
			break
		}
		resp, err = b.WithUrl(link).Get(ctx, nil)
		if err != nil {
			return nil, classify(op, PermReadPolicies, err, cl)
		}
	}
	return out, nil
}
