package exclusion

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Mode is the EXCLUSION_REVIEW setting.
type Mode string

// Modes.
const (
	// ModeOff reads no access reviews; the inventory still lists the exclusions.
	ModeOff Mode = "off"
	// ModeReport lists review findings and alerts on overdue and missing reviews from the nightly
	// sweep, leaving the verdict alone.
	ModeReport Mode = "report"
	// ModeRequire fails the control (R20) for an exclusion whose review is not current.
	ModeRequire Mode = "require"
)

// DefaultGrace is EXCLUSION_REVIEW_GRACE_DAYS' default: how long past its due date a review may
// finish before it counts as overdue.
const DefaultGrace = 14 * 24 * time.Hour

// Scope is an access review scope as Graph describes it: an accessReviewQueryScope (Query,
// QueryType, QueryRoot), its accessReviewInactiveUsersQueryScope subtype (InactiveDuration), or a
// principalResourceMembershipsScope (PrincipalScopes, ResourceScopes).
type Scope struct {
	ODataType        string
	Query            string
	QueryType        string
	QueryRoot        string
	InactiveDuration string
	PrincipalScopes  []Scope
	ResourceScopes   []Scope
}

// Recurrence is settings.recurrence of a definition: a pattern (daily, weekly, absoluteMonthly,
// relativeMonthly, absoluteYearly, relativeYearly) every Interval units, within a range.
type Recurrence struct {
	PatternType string
	Interval    int
	RangeType   string // endDate, noEnd or numbered
	EndDate     string // yyyy-mm-dd, for RangeType endDate
}

// Instance is one occurrence of a review.
type Instance struct {
	ID            string
	Status        string
	StartDateTime time.Time
	EndDateTime   time.Time
	// Scope is the instance's own scope: for a review of many groups, the group this instance reviews.
	Scope *Scope
}

// Definition is an accessReviewScheduleDefinition with the instances read for it.
type Definition struct {
	ID                       string
	DisplayName              string
	Status                   string
	Scope                    *Scope
	InstanceEnumerationScope *Scope
	Recurrence               *Recurrence
	Instances                []Instance
}

// GroupInfo is what coverage needs to know of a group: reviews of many groups leave out dynamic
// groups and role-assignable groups, and reviews of "all Microsoft 365 groups" other groups too.
type GroupInfo struct {
	ID             string
	GroupTypes     []string
	RoleAssignable bool
}

// enumerated reports whether a review of many groups takes the group in: "Dynamic groups and
// role-assignable groups aren't included in this review" (Graph, "Configure the scope of your access
// review", examples 4 to 6). Graph says so of the Microsoft 365 and Teams reviews; caguard assumes the
// same of every review of many groups, because it cannot tell otherwise and a false "covered" hides a
// missing review.
func (g GroupInfo) enumerated() bool {
	return !containsFold(g.GroupTypes, "DynamicMembership") && !g.RoleAssignable
}

func (g GroupInfo) unified() bool { return containsFold(g.GroupTypes, "Unified") && g.enumerated() }

// Covers reports whether a definition reviews the members of group g, and how, in a few words. A
// review counts only when it reviews every member it may hold: a $filter (guests only) or an
// inactive-users scope reviews a subset, which is not the review the control asks for. A review of
// other resources (roles, access packages, apps) does not count. The shapes are those of Graph's
// "Configure the scope of your access review" (learn.microsoft.com/graph/accessreviews-scope-concept)
// and of the v1.0 examples of accessReviewScheduleDefinition; handler/exclusion/testdata/scopes.json
// holds each with its expected coverage.
//
// instanceEnumerationScope comes in two kinds: "/groups/{id}" (or "/v1.0/groups/{id}"), which is a
// review of that one group (the portal writes it for every group review, and Graph's own
// list-definitions example shows it beside scope "/groups/{id}/transitiveMembers"); and "/groups",
// optionally with a $filter, a review of many groups, one instance each, each reviewing "./members".
func Covers(d Definition, g GroupInfo) (bool, string) {
	if d.Scope == nil {
		return false, ""
	}
	if e := d.InstanceEnumerationScope; e != nil && strings.TrimSpace(e.Query) != "" {
		if inactive(*e) || !graphQuery(*e) {
			return false, ""
		}
		eq := parseQuery(e.Query)
		if eq.narrowed {
			return false, ""
		}
		if id, ok := oneGroup(eq.path); ok {
			// A review of one group: the scope is that group's members, absolute or relative.
			if !strings.EqualFold(id, g.ID) {
				return false, ""
			}
			if sid, how, ok := groupMembersQuery(*d.Scope); ok {
				return strings.EqualFold(sid, g.ID), how
			}
			if members, ok := relativeMembers(*d.Scope); ok {
				return true, "reviews the group's " + members
			}
			return false, ""
		}
		members, ok := relativeMembers(*d.Scope)
		if !ok || eq.path != "/groups" {
			return false, ""
		}
		if eq.filter == "" {
			if g.enumerated() {
				return true, "reviews the " + members + " of every group"
			}
			return false, ""
		}
		if excluded, ok := unifiedFilter(eq.filter); ok && g.unified() && !containsFold(excluded, g.ID) {
			return true, "reviews the " + members + " of every Microsoft 365 group"
		}
		return false, ""
	}
	switch kind := scopeKind(*d.Scope); {
	case kind == "principalresourcemembershipsscope" || (kind == "" && len(d.Scope.ResourceScopes) > 0):
		return membershipsCover(*d.Scope, g)
	case kind == "accessreviewqueryscope" || kind == "":
		if id, how, ok := groupMembersQuery(*d.Scope); ok && strings.EqualFold(id, g.ID) {
			return true, how
		}
	}
	return false, ""
}

// membershipsCover judges a principalResourceMembershipsScope: principalScopes are pools of
// principals, resourceScopes the resources whose access they hold. It covers the group when one pool
// is every user ("/users", no filter, not inactive) and one resource is the group, its members, or
// every group.
func membershipsCover(s Scope, g GroupInfo) (bool, string) {
	allUsers := false
	for _, p := range s.PrincipalScopes {
		q := parseQuery(p.Query)
		if !inactive(p) && graphQuery(p) && knownQueryKind(p) && q.path == "/users" && q.filter == "" && !q.narrowed {
			allUsers = true
		}
	}
	if !allUsers {
		return false, ""
	}
	for _, r := range s.ResourceScopes {
		if inactive(r) || !graphQuery(r) || !knownQueryKind(r) {
			continue
		}
		q := parseQuery(r.Query)
		if q.filter != "" || q.narrowed {
			continue
		}
		if q.path == "/groups" && g.enumerated() {
			return true, "reviews every user's membership of every group"
		}
		if id, ok := oneGroup(q.path); ok && strings.EqualFold(id, g.ID) {
			return true, "reviews every user's membership of the group"
		}
		if id, how, ok := groupMembersQuery(r); ok && strings.EqualFold(id, g.ID) {
			return true, how
		}
	}
	return false, ""
}

// scopeKind is the scope's OData type without namespace, lower case: "" when Graph left it out,
// which the documented group-members example does.
func scopeKind(s Scope) string {
	t := strings.ToLower(strings.TrimSpace(s.ODataType))
	t = strings.TrimPrefix(t, "#")
	return strings.TrimPrefix(t, "microsoft.graph.")
}

// knownQueryKind accepts an accessReviewQueryScope, or a scope whose type Graph left out.
func knownQueryKind(s Scope) bool {
	k := scopeKind(s)
	return k == "" || k == "accessreviewqueryscope"
}

// inactive reports an accessReviewInactiveUsersQueryScope, or any scope that carries an
// inactiveDuration: it reviews only the members who have not signed in for that long.
func inactive(s Scope) bool {
	return scopeKind(s) == "accessreviewinactiveusersqueryscope" || strings.TrimSpace(s.InactiveDuration) != ""
}

func graphQuery(s Scope) bool {
	t := strings.TrimSpace(s.QueryType)
	return t == "" || strings.EqualFold(t, "MicrosoftGraph")
}

// query is a scope query taken apart. queryRoot is not part of it: Graph documents it only for
// relative reviewer queries ("./manager"), and it does not change what a scope reviews.
type query struct {
	path     string // no host or version prefix, no trailing "/", fixed words in lower case
	filter   string // $filter, "" for none
	narrowed bool   // an option other than $filter and $count, or options that cannot be read
}

// parseQuery reads a scope query: Graph writes "/groups/{id}/transitiveMembers",
// "/v1.0/groups/{id}/transitiveMembers/microsoft.graph.user/?$count=true&$filter=(...)" and
// "/groups?$filter=(groupTypes/any(c:c+eq+'Unified'))&$count=true" alike.
func parseQuery(q string) query {
	q = strings.TrimSpace(q)
	for _, prefix := range []string{"https://graph.microsoft.com", "/v1.0", "/beta"} {
		if len(q) >= len(prefix) && strings.EqualFold(q[:len(prefix)], prefix) {
			q = q[len(prefix):]
		}
	}
	path, rawQuery, _ := strings.Cut(q, "?")
	var out query
	out.path = strings.TrimRight(path, "/")
	if rawQuery != "" {
		v, err := url.ParseQuery(rawQuery)
		if err != nil {
			out.narrowed = true
		}
		for k := range v {
			switch strings.ToLower(k) {
			case "$filter":
				out.filter = strings.TrimSpace(v.Get(k))
			case "$count":
			default:
				out.narrowed = true
			}
		}
	}
	segs := strings.Split(out.path, "/")
	for i, s := range segs {
		if !looksLikeID(s) {
			segs[i] = strings.ToLower(s)
		}
	}
	out.path = strings.Join(segs, "/")
	return out
}

func looksLikeID(s string) bool { return len(s) == 36 && strings.Count(s, "-") == 4 }

// oneGroup matches the path "/groups/{id}".
func oneGroup(path string) (string, bool) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(segs) == 2 && segs[0] == "groups" && segs[1] != "" {
		return segs[1], true
	}
	return "", false
}

// groupMembersQuery matches "/groups/{id}/members" or "/groups/{id}/transitiveMembers", optionally
// cast to microsoft.graph.user, without a filter.
func groupMembersQuery(s Scope) (id, how string, ok bool) {
	if inactive(s) || !graphQuery(s) || !knownQueryKind(s) {
		return "", "", false
	}
	q := parseQuery(s.Query)
	if q.filter != "" || q.narrowed {
		return "", "", false
	}
	segs := strings.Split(strings.TrimPrefix(strings.TrimSuffix(q.path, "/microsoft.graph.user"), "/"), "/")
	if len(segs) != 3 || segs[0] != "groups" {
		return "", "", false
	}
	switch segs[2] {
	case "transitivemembers":
		return segs[1], "reviews the group's direct and nested members", true
	case "members":
		return segs[1], "reviews the group's direct members", true
	}
	return "", "", false
}

// relativeMembers matches the per-group scope of a review of many groups: "./members" or
// "./transitiveMembers", optionally cast to users, without a filter; it names which members.
func relativeMembers(s Scope) (string, bool) {
	if inactive(s) || !graphQuery(s) || !knownQueryKind(s) {
		return "", false
	}
	q := parseQuery(s.Query)
	if q.filter != "" || q.narrowed {
		return "", false
	}
	switch strings.TrimSuffix(q.path, "/microsoft.graph.user") {
	case "./members":
		return "direct members", true
	case "./transitivemembers":
		return "direct and nested members", true
	}
	return "", false
}

var (
	unifiedClause = regexp.MustCompile(`^grouptypes/any\(\s*(\w+)\s*:\s*(\w+)\s+eq\s+'unified'\s*\)$`)
	idNeClause    = regexp.MustCompile(`^id\s+ne\s+'([^']*)'$`)
)

// unifiedFilter reads the $filter of a review of all Microsoft 365 groups: the clause
// groupTypes/any(c:c eq 'Unified'), and-ed with any number of "id ne '{group id}'" clauses that leave
// groups out (Graph's accessReviewScope table, "excluding specified groups"). ok is false for any
// other filter, a review of all teams among them: caguard does not know which groups are teams.
func unifiedFilter(f string) (excluded []string, ok bool) {
	unified := false
	for _, c := range splitAnd(f) {
		lc := strings.ToLower(c)
		if m := unifiedClause.FindStringSubmatch(lc); m != nil && m[1] == m[2] {
			unified = true
			continue
		}
		if m := idNeClause.FindStringSubmatch(c); m != nil {
			excluded = append(excluded, m[1])
			continue
		}
		return nil, false
	}
	return excluded, unified
}

// splitAnd splits a filter on its top-level "and", dropping the parentheses around it and each
// clause.
func splitAnd(f string) []string {
	f = unwrap(strings.Join(strings.Fields(f), " "))
	var out []string
	depth, start := 0, 0
	lower := strings.ToLower(f)
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ' ':
			if depth == 0 && strings.HasPrefix(lower[i:], " and ") {
				out = append(out, unwrap(f[start:i]))
				start = i + len(" and ")
				i = start - 1
			}
		}
	}
	return append(out, unwrap(f[start:]))
}

// unwrap removes parentheses that enclose the whole of s.
func unwrap(s string) string {
	for {
		s = strings.TrimSpace(s)
		if len(s) < 2 || s[0] != '(' || s[len(s)-1] != ')' {
			return s
		}
		depth := 0
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 && i < len(s)-1 {
				return s // the first "(" closes before the end: not one enclosing pair
			}
		}
		s = s[1 : len(s)-1]
	}
}

// completed reports whether an instance's status means its review ended: Graph moves a finished
// instance from Completed on to Applying and Applied when decisions are applied.
func completed(status string) bool {
	switch strings.ToLower(strings.TrimSpace(status)) {
	case "completed", "applying", "applied", "autoreviewed":
		return true
	}
	return false
}

// instanceCovers reports whether an instance belongs to group g: for a review of many groups each
// instance carries the scope of its own group.
func instanceCovers(in Instance, g GroupInfo) bool {
	if in.Scope == nil {
		return true
	}
	path := parseQuery(in.Scope.Query).path
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(segs) >= 2 && segs[0] == "groups" && looksLikeID(segs[1]) {
		return strings.EqualFold(segs[1], g.ID)
	}
	return true
}

// next returns when the review after one that ended at last is due, or false when the pattern is not
// a recurrence caguard understands.
func (r Recurrence) next(last time.Time) (time.Time, bool) {
	n := r.Interval
	if n < 1 {
		n = 1
	}
	switch strings.ToLower(r.PatternType) {
	case "daily":
		return last.AddDate(0, 0, n), true
	case "weekly":
		return last.AddDate(0, 0, 7*n), true
	case "absolutemonthly", "relativemonthly":
		return last.AddDate(0, n, 0), true
	case "absoluteyearly", "relativeyearly":
		return last.AddDate(n, 0, 0), true
	}
	return time.Time{}, false
}

// String names the recurrence for a sentence: "every 3 months".
func (r Recurrence) String() string {
	n := max(r.Interval, 1)
	unit := map[string]string{"daily": "day", "weekly": "week", "absolutemonthly": "month", "relativemonthly": "month",
		"absoluteyearly": "year", "relativeyearly": "year"}[strings.ToLower(r.PatternType)]
	if unit == "" {
		return "on pattern " + r.PatternType
	}
	if n == 1 {
		return "every " + unit
	}
	return fmt.Sprintf("every %d %ss", n, unit)
}

// recurring reports whether the definition still recurs at now: a recurrence that caguard
// understands, whose range has not ended, on a definition that is not itself completed.
func (d Definition) recurring(now time.Time) bool {
	r := d.Recurrence
	if r == nil {
		return false
	}
	if _, ok := r.next(now); !ok {
		return false
	}
	// "numbered" ranges carry an endDate too: Graph's own example of a series that "ends 1 year from
	// the startDate" (accessreviewset-post-definitions, example 3) is written so.
	if (strings.EqualFold(r.RangeType, "endDate") || strings.EqualFold(r.RangeType, "numbered")) && r.EndDate != "" {
		end, err := time.Parse("2006-01-02", r.EndDate)
		if err == nil && end.AddDate(0, 0, 1).Before(now) {
			return false
		}
	}
	return !strings.EqualFold(d.Status, "Completed")
}

// Assess judges the access review of group g from the definitions that Graph lists, at now.
//
// current: a recurring definition covers the group and its last completed instance (for g) ended at
// most one recurrence plus grace ago. overdue: a definition covers the group but none is current,
// because the last instance is older than that, no instance has completed yet, or the review does not
// recur (a one-time review, or a series that ended); the control asks for a regular interval, and a
// review that has never finished has not reviewed anything. none: no definition covers the group.
func Assess(defs []Definition, g GroupInfo, now time.Time, grace time.Duration) Review {
	var best *Review
	for _, d := range defs {
		ok, how := Covers(d, g)
		if !ok {
			continue
		}
		var last *time.Time
		for _, in := range d.Instances {
			if !completed(in.Status) || in.EndDateTime.IsZero() || in.EndDateTime.After(now) || !instanceCovers(in, g) {
				continue
			}
			if last == nil || in.EndDateTime.After(*last) {
				t := in.EndDateTime.UTC()
				last = &t
			}
		}
		r := Review{DefinitionID: d.ID, LastCompleted: last}
		name := quote(d.DisplayName, d.ID)
		switch {
		case !d.recurring(now):
			r.Status = ReviewOverdue
			r.Detail = fmt.Sprintf("Access review %s %s but does not recur, so it does not keep the exclusion in check on a regular interval.", name, how)
		case last == nil:
			r.Status = ReviewOverdue
			r.Detail = fmt.Sprintf("Access review %s %s %s but no instance of it has completed yet.", name, how, d.Recurrence)
		default:
			due, _ := d.Recurrence.next(*last)
			if !now.After(due.Add(grace)) {
				r.Status = ReviewCurrent
				r.Detail = fmt.Sprintf("Access review %s %s %s; it last completed on %s.", name, how, d.Recurrence, last.Format("2006-01-02"))
			} else {
				r.Status = ReviewOverdue
				r.Detail = fmt.Sprintf("Access review %s %s %s but last completed on %s; the next was due by %s (grace included).",
					name, how, d.Recurrence, last.Format("2006-01-02"), due.Add(grace).Format("2006-01-02"))
			}
		}
		if better(r, best) {
			best = &r
		}
	}
	if best == nil {
		return Review{Status: ReviewNone, Detail: "No access review covers this group; create a recurring review of its members."}
	}
	return *best
}

// better prefers a current review, then the one that completed most recently.
func better(r Review, than *Review) bool {
	if than == nil {
		return true
	}
	if (r.Status == ReviewCurrent) != (than.Status == ReviewCurrent) {
		return r.Status == ReviewCurrent
	}
	switch {
	case r.LastCompleted == nil:
		return false
	case than.LastCompleted == nil:
		return true
	}
	return r.LastCompleted.After(*than.LastCompleted)
}

func quote(name, id string) string {
	if strings.TrimSpace(name) == "" {
		return id
	}
	return fmt.Sprintf("%q (%s)", name, id)
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(v string) bool { return strings.EqualFold(strings.TrimSpace(v), s) })
}
