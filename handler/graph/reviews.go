package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/caguard/caguard/handler/exclusion"
)

// Application permissions of the exclusion inventory. AccessReview.Read.All is needed to judge
// reviews; the other two only add detail, and their absence degrades it.
const (
	PermReadAccessReviews = "AccessReview.Read.All"
	// PermReadUsers is also what UserExists needs: without it caguard cannot tell a deleted
	// break-glass user from an existing one, and keeps every configured user.
	PermReadUsers   = "User.Read.All"
	PermReadSignIns = "AuditLog.Read.All"
)

// Forbidden reports a 403: the application lacks a permission.
func (e *Error) Forbidden() bool { return e.Status == http.StatusForbidden }

// MissingPermission names the permission a 403 asks for, or "": also for a 403 that asks for a
// licence instead (LicenceMissing), which no permission can cure.
func (e *Error) MissingPermission() string {
	if e.Status != http.StatusForbidden || e.LicenceMissing() {
		return ""
	}
	return e.Permission
}

// Brief describes the failure without Graph's own message text, for answers that leave the process
// (the Evaluate answer, alerts): the status and error code, or the kind of network failure.
func (e *Error) Brief() string {
	switch {
	case e.LicenceMissing():
		return fmt.Sprintf("graph answered %d %s: %s", e.Status, e.Code, licenceNote)
	case e.Status != 0 && e.Code != "":
		return fmt.Sprintf("graph answered %d %s", e.Status, e.Code)
	case e.Status != 0:
		return fmt.Sprintf("graph answered %d", e.Status)
	case e.Code != "":
		return "graph could not be reached (" + e.Code + ")"
	}
	return "graph could not be reached"
}

// The access reviews API, users with signInActivity and a group's own properties are read as raw
// JSON through the same request adapter (authentication, retries, error mapping): their SDK request
// builders live in packages that add minutes to a cold build, and a scope without @odata.type (as in
// Graph's own examples) would lose its query in the SDK's base-type model.
var rawErrorMapping = abstractions.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue}

func (c *Client) link(path string, query url.Values) string {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = strings.ReplaceAll(query.Encode(), "%24", "$")
	return u.String()
}

// getJSON fetches one answer body.
func (c *Client) getJSON(ctx context.Context, link string) ([]byte, error) {
	u, err := url.Parse(link)
	if err != nil {
		return nil, fmt.Errorf("link %q: %w", link, err)
	}
	ri := abstractions.NewRequestInformation()
	ri.Method = abstractions.GET
	ri.SetUri(*u)
	ri.Headers.TryAdd("Accept", "application/json")
	res, err := c.adapter.SendPrimitive(ctx, ri, "[]byte", rawErrorMapping)
	if err != nil {
		return nil, err
	}
	b, _ := res.([]byte)
	return b, nil
}

// getObject fetches one object into v.
func (c *Client) getObject(ctx context.Context, op, perm string, cl *call, link string, v any) error {
	b, err := c.getJSON(ctx, link)
	if err != nil {
		return classify(op, perm, err, cl)
	}
	if len(b) == 0 || json.Unmarshal(b, v) != nil {
		return &Error{Op: op, Code: "MalformedResponse", Message: "the answer is not a JSON object", Transient: true}
	}
	return nil
}

// eachRaw calls each for every item of every page of a collection, following @odata.nextLink under
// the same rules as eachItem.
func (c *Client) eachRaw(ctx context.Context, op, perm string, cl *call, first string, each func(json.RawMessage) error) error {
	pg := pager{c: c}
	link := first
	for {
		var page struct {
			Value    []json.RawMessage `json:"value"`
			NextLink *string           `json:"@odata.nextLink"`
		}
		if err := c.getObject(ctx, op, perm, cl, link, &page); err != nil {
			return err
		}
		if page.Value == nil {
			return &Error{Op: op, Code: "MalformedResponse", Message: "graph answered no collection", Transient: true}
		}
		for _, item := range page.Value {
			if err := each(item); err != nil {
				return err
			}
		}
		next, ok, err := pg.next(page.NextLink)
		if err != nil {
			return &Error{Op: op, Code: "InvalidPaging", Message: err.Error()}
		}
		if !ok {
			return nil
		}
		link = next
	}
}

type rawScope struct {
	ODataType        string     `json:"@odata.type"`
	Query            string     `json:"query"`
	QueryType        string     `json:"queryType"`
	QueryRoot        *string    `json:"queryRoot"`
	InactiveDuration string     `json:"inactiveDuration"`
	PrincipalScopes  []rawScope `json:"principalScopes"`
	ResourceScopes   []rawScope `json:"resourceScopes"`
}

func (s *rawScope) domain() *exclusion.Scope {
	if s == nil {
		return nil
	}
	out := &exclusion.Scope{ODataType: s.ODataType, Query: s.Query, QueryType: s.QueryType, InactiveDuration: s.InactiveDuration}
	if s.QueryRoot != nil {
		out.QueryRoot = *s.QueryRoot
	}
	for i := range s.PrincipalScopes {
		out.PrincipalScopes = append(out.PrincipalScopes, *s.PrincipalScopes[i].domain())
	}
	for i := range s.ResourceScopes {
		out.ResourceScopes = append(out.ResourceScopes, *s.ResourceScopes[i].domain())
	}
	return out
}

type rawDefinition struct {
	ID                       string    `json:"id"`
	DisplayName              string    `json:"displayName"`
	Status                   string    `json:"status"`
	Scope                    *rawScope `json:"scope"`
	InstanceEnumerationScope *rawScope `json:"instanceEnumerationScope"`
	Settings                 *struct {
		Recurrence *struct {
			Pattern *struct {
				Type     string `json:"type"`
				Interval int    `json:"interval"`
			} `json:"pattern"`
			Range *struct {
				Type    string `json:"type"`
				EndDate string `json:"endDate"`
			} `json:"range"`
		} `json:"recurrence"`
	} `json:"settings"`
}

// AccessReviewDefinitions lists every access review definition of the tenant, each page followed.
// Needs AccessReview.Read.All. Instances are not included: read them with AccessReviewInstances for
// the definitions that matter.
func (c *Client) AccessReviewDefinitions(ctx context.Context) ([]exclusion.Definition, error) {
	const op = "list access review definitions"
	ctx, cl := c.begin(ctx, op, PermReadAccessReviews)
	// Every nextLink is followed.
	first := c.link(definitionsQuery())
	var out []exclusion.Definition
	err := c.eachRaw(ctx, op, PermReadAccessReviews, cl, first, func(raw json.RawMessage) error {
		def, err := definitionFromJSON(op, raw)
		if err != nil {
			return err
		}
		out = append(out, def)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// definitionsQuery is the first page of the access review definitions: "The default page size for
// this API is 100" (accessreviewset-list-definitions); $top asks for the same explicitly.
func definitionsQuery() (string, url.Values) {
	return "/identityGovernance/accessReviews/definitions", url.Values{"$top": {"100"}}
}

func instancesQuery(definitionID string) (string, url.Values) {
	return "/identityGovernance/accessReviews/definitions/" + url.PathEscape(definitionID) + "/instances", url.Values{"$top": {"100"}}
}

// definitionFromJSON reads one accessReviewScheduleDefinition.
func definitionFromJSON(op string, raw json.RawMessage) (exclusion.Definition, error) {
	var d rawDefinition
	if err := json.Unmarshal(raw, &d); err != nil || d.ID == "" {
		return exclusion.Definition{}, &Error{Op: op, Code: "MalformedResponse", Message: "a definition is not an object with an id"}
	}
	def := exclusion.Definition{ID: d.ID, DisplayName: d.DisplayName, Status: d.Status,
		Scope: d.Scope.domain(), InstanceEnumerationScope: d.InstanceEnumerationScope.domain()}
	if s := d.Settings; s != nil && s.Recurrence != nil && s.Recurrence.Pattern != nil && s.Recurrence.Pattern.Type != "" {
		def.Recurrence = &exclusion.Recurrence{PatternType: s.Recurrence.Pattern.Type, Interval: s.Recurrence.Pattern.Interval}
		if r := s.Recurrence.Range; r != nil {
			def.Recurrence.RangeType, def.Recurrence.EndDate = r.Type, r.EndDate
		}
	}
	return def, nil
}

// instanceFromJSON reads one accessReviewInstance.
func instanceFromJSON(op string, raw json.RawMessage) (exclusion.Instance, error) {
	var in struct {
		ID            string    `json:"id"`
		Status        string    `json:"status"`
		StartDateTime string    `json:"startDateTime"`
		EndDateTime   string    `json:"endDateTime"`
		Scope         *rawScope `json:"scope"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return exclusion.Instance{}, &Error{Op: op, Code: "MalformedResponse", Message: "an instance is not an object"}
	}
	return exclusion.Instance{ID: in.ID, Status: in.Status,
		StartDateTime: graphTime(in.StartDateTime), EndDateTime: graphTime(in.EndDateTime), Scope: in.Scope.domain()}, nil
}

// AccessReviewInstances lists the instances of one definition. Needs AccessReview.Read.All.
func (c *Client) AccessReviewInstances(ctx context.Context, definitionID string) ([]exclusion.Instance, error) {
	const op = "list access review instances"
	if definitionID == "" {
		return nil, &Error{Op: op, Code: "ClientError", Message: "empty definition id"}
	}
	ctx, cl := c.begin(ctx, op, PermReadAccessReviews)
	first := c.link(instancesQuery(definitionID))
	var out []exclusion.Instance
	err := c.eachRaw(ctx, op, PermReadAccessReviews, cl, first, func(raw json.RawMessage) error {
		in, err := instanceFromJSON(op, raw)
		if err != nil {
			return err
		}
		out = append(out, in)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// graphTime reads a Graph DateTimeOffset; an absent or unreadable one is the zero time, which
// callers treat as "not known" (an instance without an end never counts as completed).
func graphTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// groupQuery reads a group's own properties: what the inventory shows and what decides whether a
// review of all Microsoft 365 groups reaches it.
func groupQuery(groupID string) (string, url.Values) {
	return "/groups/" + url.PathEscape(groupID), url.Values{"$select": {"id,displayName,groupTypes,isAssignableToRole"}}
}

// membersQuery reads every direct and nested member with the fields both the rules (ids) and the
// inventory (names, accountEnabled) need, in the largest pages Graph serves for directory objects.
func membersQuery(groupID string) (string, url.Values) {
	return "/groups/" + url.PathEscape(groupID) + "/transitiveMembers", url.Values{"$select": {"id,displayName,accountEnabled"}, "$top": {"999"}}
}

type rawGroup struct {
	ID                 string   `json:"id"`
	DisplayName        string   `json:"displayName"`
	GroupTypes         []string `json:"groupTypes"`
	IsAssignableToRole *bool    `json:"isAssignableToRole"`
}

func (g rawGroup) into(out *exclusion.GroupDetail, groupID string) {
	out.ID, out.DisplayName, out.GroupTypes = groupID, g.DisplayName, g.GroupTypes
	out.RoleAssignable = g.IsAssignableToRole != nil && *g.IsAssignableToRole
}

// memberFromJSON reads one directory object: a user with its name and accountEnabled, anything
// else with what Graph tells of it.
func memberFromJSON(op string, raw json.RawMessage) (exclusion.Member, error) {
	var m struct {
		ID             string `json:"id"`
		DisplayName    string `json:"displayName"`
		AccountEnabled *bool  `json:"accountEnabled"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.ID == "" {
		return exclusion.Member{}, &Error{Op: op, Code: "MalformedResponse", Message: "a member has no id"}
	}
	return exclusion.Member{ID: m.ID, DisplayName: m.DisplayName, AccountEnabled: m.AccountEnabled}, nil
}

// GroupDetail reads a group's name and type, counts its transitive members (every page) and keeps
// the first maxMembers of them with their names and, for users, accountEnabled. Needs
// GroupMember.Read.All.
func (c *Client) GroupDetail(ctx context.Context, groupID string, maxMembers int) (exclusion.GroupDetail, error) {
	const op = "read excluded group"
	var out exclusion.GroupDetail
	if groupID == "" {
		return out, &Error{Op: op, Code: "ClientError", Message: "empty group id"}
	}
	ctx, cl := c.begin(ctx, op, PermReadMembers)
	var g rawGroup
	if err := c.getObject(ctx, op, PermReadMembers, cl, c.link(groupQuery(groupID)), &g); err != nil {
		return out, err
	}
	g.into(&out, groupID)
	err := c.eachRaw(ctx, op, PermReadMembers, cl, c.link(membersQuery(groupID)), func(raw json.RawMessage) error {
		m, err := memberFromJSON(op, raw)
		if err != nil {
			return err
		}
		out.MemberCount++
		if len(out.Members) < maxMembers {
			out.Members = append(out.Members, m)
		}
		return nil
	})
	if err != nil {
		return exclusion.GroupDetail{}, err
	}
	out.Truncated = out.MemberCount > len(out.Members)
	return out, nil
}

// UserDetail reads a user's name, accountEnabled and, with signIns, the last successful sign-in.
// Graph's user resource documents signInActivity as returned only on $select and needing
// AuditLog.Read.All besides User.Read.All (and an Entra ID P1 or P2 licence, LicenceMissing);
// without it the whole request is refused, so the caller asks again without.
func (c *Client) UserDetail(ctx context.Context, userID string, signIns bool) (exclusion.Member, error) {
	const op = "read excluded user"
	if userID == "" {
		return exclusion.Member{}, &Error{Op: op, Code: "ClientError", Message: "empty user id"}
	}
	perm, sel := PermReadUsers, "id,displayName,accountEnabled"
	if signIns {
		perm, sel = PermReadUsers+" and "+PermReadSignIns, sel+",signInActivity"
	}
	ctx, cl := c.begin(ctx, op, perm)
	var u struct {
		ID             string             `json:"id"`
		DisplayName    string             `json:"displayName"`
		AccountEnabled *bool              `json:"accountEnabled"`
		SignInActivity *rawSignInActivity `json:"signInActivity"`
	}
	if err := c.getObject(ctx, op, perm, cl, c.link("/users/"+url.PathEscape(userID), url.Values{"$select": {sel}}), &u); err != nil {
		return exclusion.Member{}, err
	}
	m := exclusion.Member{ID: userID, DisplayName: u.DisplayName, AccountEnabled: u.AccountEnabled}
	if last, ok := u.SignInActivity.lastSuccess(); ok {
		m.LastSignIn = &last
	}
	return m, nil
}

// rawSignInActivity is a user's signInActivity. Only lastSuccessfulSignInDateTime says the account
// was really used: "lastSignInDateTime ... records the last time a user attempted an interactive
// sign-in, whether the attempt was successful or not", and lastNonInteractiveSignInDateTime likewise
// counts failed attempts (signInActivity resource type, v1.0). Graph fills it since December 2023
// and does not backfill it, so an older success reads as none.
type rawSignInActivity struct {
	LastSuccessfulSignInDateTime string `json:"lastSuccessfulSignInDateTime"`
}

func (a *rawSignInActivity) lastSuccess() (time.Time, bool) {
	if a == nil {
		return time.Time{}, false
	}
	t := graphTime(a.LastSuccessfulSignInDateTime)
	return t, !t.IsZero()
}
