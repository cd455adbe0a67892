package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/identity"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

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

// page is one page of a Graph collection answer.
type page[T any] interface {
	GetValue() []T
	GetOdataNextLink() *string
}

// eachItem calls each for every item of every page of a collection. get fetches the first page when
// link is empty, else the page at link. An error on any page fails the whole call: a partial list
// would be evaluated as the whole tenant.
func eachItem[T any, P page[T]](c *Client, op, perm string, cl *call, get func(link string) (P, error), each func(T) error) error {
	pg := pager{c: c}
	link := ""
	for {
		resp, err := get(link)
		if err != nil {
			return classify(op, perm, err, cl)
		}
		if any(resp) == nil {
			return &Error{Op: op, Code: "MalformedResponse", Message: "graph answered no collection", Transient: true}
		}
		for _, m := range resp.GetValue() {
			if err := each(m); err != nil {
				return err
			}
		}
		next, ok, err := pg.next(resp.GetOdataNextLink())
		if err != nil {
			return &Error{Op: op, Code: "InvalidPaging", Message: err.Error()}
		}
		if !ok {
			return nil
		}
		link = next
	}
}

// ListPolicies returns every Conditional Access policy, following every page. Strengths that Graph
// answered by id only are completed from /policies/authenticationStrengthPolicies.
// Needs Policy.Read.All.
//
// Policies are read as raw JSON and parsed by capolicy.ParsePolicy, not through the SDK's models:
// in a collection they turn an enum value they do not know into the enum's zero value (an unknown
// client app type reads as "all"), they drop a flags property holding an unknown member
// (excludeGuestsOrExternalUsers vanishes), and they lose properties they do not model; each would
// make a policy look broader than it is. ParsePolicy keeps unknown values as written and lists
// unknown properties, and the rules read both as narrowing.
func (c *Client) ListPolicies(ctx context.Context) ([]capolicy.Policy, error) {
	const op = "list policies"
	ctx, cl := c.begin(ctx, op, PermReadPolicies)
	b := c.policiesBuilder()
	out := []capolicy.Policy{}
	pg := pager{c: c}
	link := ""
	for {
		var ri *abstractions.RequestInformation
		var err error
		if link == "" {
			ri, err = b.ToGetRequestInformation(ctx, nil)
		} else {
			ri, err = b.WithUrl(link).ToGetRequestInformation(ctx, nil)
		}
		if err != nil {
			return nil, classify(op, PermReadPolicies, err, cl)
		}
		body, err := c.getRaw(ctx, ri)
		if err != nil {
			return nil, classify(op, PermReadPolicies, err, cl)
		}
		var page struct {
			Value    *[]json.RawMessage `json:"value"`
			NextLink *string            `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, classify(op, PermReadPolicies, fmt.Errorf("policy page: %w", err), cl)
		}
		if page.Value == nil {
			// A page without a collection is not an empty tenant: evaluating it as one would report
			// that nothing requires MFA, or worse, hide the policies that do not.
			return nil, classify(op, PermReadPolicies, errors.New("graph answered a page without a value collection"), cl)
		}
		for i, raw := range *page.Value {
			p, err := policyFromJSON(raw)
			if err != nil {
				return nil, &Error{Op: op, Code: "InvalidPolicy", Message: fmt.Sprintf("%v (item %d of page %d)", err, i, pg.pages+1)}
			}
			out = append(out, p)
		}
		next, ok, err := pg.next(page.NextLink)
		if err != nil {
			return nil, &Error{Op: op, Code: "InvalidPaging", Message: err.Error()}
		}
		if !ok {
			break
		}
		link = next
	}
	if err := c.completeStrengths(ctx, op, out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetPolicy returns one policy, read as raw JSON like ListPolicies. Needs Policy.Read.All.
func (c *Client) GetPolicy(ctx context.Context, id string) (capolicy.Policy, error) {
	const op = "get policy"
	if id == "" {
		return capolicy.Policy{}, &Error{Op: op, Code: "ClientError", Message: "empty policy id"}
	}
	ctx, cl := c.begin(ctx, op, PermReadPolicies)
	ri, err := c.policiesBuilder().ByConditionalAccessPolicyId(id).ToGetRequestInformation(ctx, nil)
	if err != nil {
		return capolicy.Policy{}, classify(op, PermReadPolicies, err, cl)
	}
	body, err := c.getRaw(ctx, ri)
	if err != nil {
		return capolicy.Policy{}, classify(op, PermReadPolicies, err, cl)
	}
	p, err := policyFromJSON(body)
	if err != nil {
		return capolicy.Policy{}, &Error{Op: op, Code: "InvalidPolicy", Message: err.Error()}
	}
	ps := []capolicy.Policy{p}
	if err := c.completeStrengths(ctx, op, ps); err != nil {
		return capolicy.Policy{}, err
	}
	return ps[0], nil
}

// getRaw sends a request the SDK built and returns the answer's body undecoded. Errors go through
// the same OData error mapping as the SDK's own request builders, so classify sees what it sees for
// any other call; an empty success body is an error, never an empty answer.
func (c *Client) getRaw(ctx context.Context, ri *abstractions.RequestInformation) ([]byte, error) {
	v, err := c.adapter.SendPrimitive(ctx, ri, "[]byte", rawErrorMapping)
	if err != nil {
		return nil, err
	}
	b, ok := v.([]byte)
	if !ok || len(b) == 0 {
		return nil, errors.New("graph answered an empty body")
	}
	return b, nil
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
	body, err := policyBody(p, fields)
	if err != nil {
		return capolicy.Policy{}, &Error{Op: op, Code: "InvalidPolicy", Message: err.Error()}
	}
	ctx, cl := c.begin(ctx, op, PermWritePolicies)
	b := c.policiesBuilder()
	res, err := c.sendJSON(ctx, abstractions.POST, b.UrlTemplate, b.PathParameters, body, models.CreateConditionalAccessPolicyFromDiscriminatorValue)
	if err != nil {
		return capolicy.Policy{}, classify(op, PermWritePolicies, err, cl)
	}
	m, _ := res.(models.ConditionalAccessPolicyable)
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
// sessionControls. Each listed property is sent in full (empty lists as [], absent sections as null),
// so that after Graph's merge it equals p's whatever it held before; a listed grantControls or
// sessionControls that p leaves nil is cleared. Needs Policy.ReadWrite.ConditionalAccess.
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
	body, err := policyBody(p, fields)
	if err != nil {
		return &Error{Op: op, Code: "InvalidPolicy", Message: err.Error()}
	}
	ctx, cl := c.begin(ctx, op, PermWritePolicies)
	b := c.policiesBuilder().ByConditionalAccessPolicyId(id)
	if _, err := c.sendJSON(ctx, abstractions.PATCH, b.UrlTemplate, b.PathParameters, body, nil); err != nil {
		return classify(op, PermWritePolicies, err, cl)
	}
	return nil
}

// sendJSON sends a JSON body built by this package through the SDK's request adapter, so the request
// gets the same authentication, compression, retries and OData error mapping as the SDK's own. With
// parse nil the answer's body is ignored.
func (c *Client) sendJSON(ctx context.Context, method abstractions.HttpMethod, urlTemplate string, pathParameters map[string]string,
	body []byte, parse absser.ParsableFactory) (absser.Parsable, error) {
	ri := abstractions.NewRequestInformationWithMethodAndUrlTemplateAndPathParameters(method, urlTemplate, pathParameters)
	ri.Headers.TryAdd("Accept", "application/json")
	ri.SetStreamContentAndContentType(body, "application/json")
	errs := abstractions.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue}
	if parse == nil {
		return nil, c.adapter.SendNoContent(ctx, ri, errs)
	}
	return c.adapter.Send(ctx, ri, parse, errs)
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
	fillStrengths(ps, all)
	return nil
}

// fillStrengths completes the strengths of ps that Graph answered by id only from all.
func fillStrengths(ps []capolicy.Policy, all []capolicy.AuthenticationStrength) {
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
	ids := []string{}
	err := eachItem(c, op, PermReadMembers, cl,
		func(link string) (models.DirectoryObjectCollectionResponseable, error) {
			if link == "" {
				return b.Get(ctx, cfg)
			}
			// The nextLink carries $select and $top already.
			return b.WithUrl(link).Get(ctx, nil)
		},
		func(m models.DirectoryObjectable) error {
			if m == nil || deref(m.GetId()) == "" {
				return &Error{Op: op, Code: "MalformedResponse", Message: "a member has no id"}
			}
			ids = append(ids, *m.GetId())
			return nil
		})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// AuthenticationStrengths returns the tenant's authentication strength policies, built-in and
// custom. Needs Policy.Read.All.
//
// They are read as raw JSON and parsed by capolicy.ParseAuthenticationStrength, like the policies: the
// SDK's model turns a requirementsSatisfied it does not know into nothing and drops an allowed
// combination holding a method it does not know, and the rules must see both to refuse them.
func (c *Client) AuthenticationStrengths(ctx context.Context) ([]capolicy.AuthenticationStrength, error) {
	const op = "list authentication strengths"
	ctx, cl := c.begin(ctx, op, PermReadPolicies)
	var out []capolicy.AuthenticationStrength
	err := c.eachRaw(ctx, op, PermReadPolicies, cl, c.link("/policies/authenticationStrengthPolicies", nil), func(raw json.RawMessage) error {
		s, err := capolicy.ParseAuthenticationStrength(raw)
		if err != nil {
			return &Error{Op: op, Code: "InvalidStrength", Message: err.Error()}
		}
		if s.ID != "" {
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
