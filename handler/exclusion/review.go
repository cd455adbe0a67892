package exclusion

import (
	"fmt"
	"net/url"
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

// GroupInfo is what coverage needs to know of a group: reviews of "all Microsoft 365 groups" leave
// out other groups, dynamic groups and role-assignable groups.
type GroupInfo struct {
	ID             string
	GroupTypes     []string
	RoleAssignable bool
}

func (g GroupInfo) unified() bool {
	return containsFold(g.GroupTypes, "Unified") && !containsFold(g.GroupTypes, "DynamicMembership") && !g.RoleAssignable
}

// Covers reports whether a definition reviews the members of group g, and how, in a few words. A
// review counts only when it reviews every member it may hold: a $filter (guests only) or an
// inactive-users scope reviews a subset, which is not the review the control asks for. A review of
// other resources (roles, access packages, apps) does not count. The scope shapes are those of Graph's
// "Configure the scope of your access review" (learn.microsoft.com/graph/accessreviews-scope-concept):
// a review of all Microsoft 365 groups leaves out dynamic and role-assignable groups.
func Covers(d Definition, g GroupInfo) (bool, string) {
	if d.Scope == nil {
		return false, ""
	}
	if e := d.InstanceEnumerationScope; e != nil && strings.TrimSpace(e.Query) != "" {
		// A review of many groups: one instance per enumerated group, each reviewing "./members".
		if !graphQuery(*e) || !relativeMembers(*d.Scope) {
			return false, ""
		}
		path, filter := splitQuery(e.Query)
		switch {
		case path == "/groups" && filter == "":
			return true, "reviews the members of every group"
		case path == "/groups" && isUnifiedFilter(filter) && g.unified():
			return true, "reviews the members of every Microsoft 365 group"
		case strings.EqualFold(path, "/groups/"+g.ID) && filter == "":
			return true, "reviews the group's members"
		}
		return false, ""
	}
	switch scopeKind(*d.Scope) {
	case "accessreviewqueryscope", "":
		if id, how, ok := groupMembersQuery(*d.Scope); ok && strings.EqualFold(id, g.ID) {
			return true, how
		}
	case "principalresourcemembershipsscope":
		if len(d.Scope.PrincipalScopes) == 0 || len(d.Scope.ResourceScopes) == 0 {
			return false, ""
		}
		for _, p := range d.Scope.PrincipalScopes {
			path, filter := splitQuery(p.Query)
			if scopeKind(p) == "accessreviewinactiveusersqueryscope" || !graphQuery(p) || path != "/users" || filter != "" {
				return false, ""
			}
		}
		for _, r := range d.Scope.ResourceScopes {
			if scopeKind(r) == "accessreviewinactiveusersqueryscope" || !graphQuery(r) {
				continue
			}
			path, filter := splitQuery(r.Query)
			if filter != "" {
				continue
			}
			if path == "/groups" {
				return true, "reviews every user's membership of every group"
			}
			if strings.EqualFold(path, "/groups/"+g.ID) {
				return true, "reviews every user's membership of the group"
			}
			if id, how, ok := groupMembersQuery(r); ok && strings.EqualFold(id, g.ID) {
				return true, how
			}
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

func graphQuery(s Scope) bool {
	t := strings.TrimSpace(s.QueryType)
	return t == "" || strings.EqualFold(t, "MicrosoftGraph")
}

// splitQuery separates a scope query's path from its $filter, normalising the path: lower case
// segments for the fixed words, no version prefix, no trailing "/" (Graph's examples write
// ".../microsoft.graph.user/?$filter=...").
func splitQuery(q string) (path, filter string) {
	q = strings.TrimSpace(q)
	for _, prefix := range []string{"https://graph.microsoft.com", "/v1.0", "/beta"} {
		if len(q) >= len(prefix) && strings.EqualFold(q[:len(prefix)], prefix) {
			q = q[len(prefix):]
		}
	}
	path, rawQuery, _ := strings.Cut(q, "?")
	path = strings.TrimRight(path, "/")
	if rawQuery != "" {
		if v, err := url.ParseQuery(rawQuery); err == nil {
			filter = strings.TrimSpace(v.Get("$filter"))
		} else {
			filter = rawQuery // unreadable: treat as narrowing
		}
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if !looksLikeID(s) {
			segs[i] = strings.ToLower(s)
		}
	}
	return strings.Join(segs, "/"), filter
}

func looksLikeID(s string) bool { return len(s) == 36 && strings.Count(s, "-") == 4 }

// groupMembersQuery matches "/groups/{id}/members" or "/groups/{id}/transitiveMembers", optionally
// cast to microsoft.graph.user, without a filter.
func groupMembersQuery(s Scope) (id, how string, ok bool) {
	if scopeKind(s) == "accessreviewinactiveusersqueryscope" || !graphQuery(s) {
		return "", "", false
	}
	path, filter := splitQuery(s.Query)
	if filter != "" {
		return "", "", false
	}
	path = strings.TrimSuffix(path, "/microsoft.graph.user")
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
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
// "./transitiveMembers", optionally cast to users, without a filter.
func relativeMembers(s Scope) bool {
	if scopeKind(s) == "accessreviewinactiveusersqueryscope" || !graphQuery(s) {
		return false
	}
	path, filter := splitQuery(s.Query)
	path = strings.TrimSuffix(path, "/microsoft.graph.user")
	return filter == "" && (path == "./members" || path == "./transitivemembers")
}

func isUnifiedFilter(f string) bool {
	f = strings.ToLower(strings.Join(strings.Fields(f), ""))
	return f == "grouptypes/any(c:ceq'unified')" || f == "(grouptypes/any(c:ceq'unified'))"
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
	path, _ := splitQuery(in.Scope.Query)
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
	if strings.EqualFold(r.RangeType, "endDate") && r.EndDate != "" {
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
