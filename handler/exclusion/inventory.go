package exclusion

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/caguard/caguard/handler/capolicy"
)

// DefaultMaxMembers caps the members an item lists: a group that should hold two break-glass
// accounts but holds thousands must not turn an alert into a directory dump.
const DefaultMaxMembers = 10

// InactiveAfter is how long without a sign-in makes a member stand out as inactive. Break-glass
// accounts are meant to sign in rarely, but they are meant to be tested, and an account nobody has
// used for this long is one whose necessity the review should question.
const InactiveAfter = 90 * 24 * time.Hour

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Collect lists the users and groups that the chosen policies exclude, each once, in the order the
// policies name them, with the ids of the policies that exclude it and whether the configuration
// allowlists it. Tokens such as "GuestsOrExternalUsers" or "None" are not exclusions of a person
// or group and are left out (R4 and R7 judge them). Review is left empty for the caller to fill.
func Collect(policies []capolicy.Policy, include func(capolicy.Policy) bool, cfg capolicy.Config) []Item {
	var items []Item
	index := map[string]int{}
	add := func(kind Kind, id, policyID string, allow []string) {
		id = strings.TrimSpace(id)
		if !guidRE.MatchString(id) {
			return
		}
		key := string(kind) + "/" + strings.ToLower(id)
		i, ok := index[key]
		if !ok {
			i = len(items)
			index[key] = i
			items = append(items, Item{Kind: kind, ID: strings.ToLower(id), Allowlisted: containsFold(allow, id)})
		}
		if policyID != "" && !slices.Contains(items[i].PolicyIDs, policyID) {
			items[i].PolicyIDs = append(items[i].PolicyIDs, policyID)
		}
	}
	for _, p := range policies {
		if include != nil && !include(p) {
			continue
		}
		u := p.Conditions.Users
		if u == nil {
			continue
		}
		for _, id := range splitIDs(u.ExcludeUsers) {
			add(KindUser, id, p.ID, cfg.BreakGlassUserIDs)
		}
		for _, id := range splitIDs(u.ExcludeGroups) {
			add(KindGroup, id, p.ID, cfg.BreakGlassGroupIDs)
		}
	}
	return items
}

// splitIDs reads an id list the way Graph may send it: items, or one comma-separated item.
func splitIDs(list []string) []string {
	var out []string
	for _, v := range list {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// Statuses returns the review status of every item, keyed by lower-case id, as capolicy's R20
// reads it.
func Statuses(items []Item) map[string]capolicy.ExclusionReview {
	out := make(map[string]capolicy.ExclusionReview, len(items))
	for _, it := range items {
		out[strings.ToLower(it.ID)] = capolicy.ExclusionReview{Status: string(it.Review.Status), Detail: it.Review.Detail}
	}
	return out
}

// NotReviewable is the finding for a directly excluded user.
func NotReviewable() Review {
	return Review{Status: ReviewNotReviewable,
		Detail: "Access reviews cover groups, not single users; move the account into a break-glass group that a recurring access review covers, and exclude that group instead."}
}

// NeedsReview reports whether an item's review is one the nightly sweep alerts on in report mode:
// overdue, or missing altogether.
func (it Item) NeedsReview() bool {
	return it.Review.Status == ReviewOverdue || it.Review.Status == ReviewNone
}

// MemberNotes are the facts about an item's accounts that a reviewer should look at: disabled
// accounts, accounts that have not signed in for InactiveAfter, and groups too large to list.
func (it Item) MemberNotes(now time.Time) []string {
	var notes []string
	check := func(who string, enabled *bool, last *time.Time) {
		if enabled != nil && !*enabled {
			notes = append(notes, who+" is disabled")
		}
		if last != nil && now.Sub(*last) > InactiveAfter {
			notes = append(notes, fmt.Sprintf("%s has not signed in since %s", who, last.UTC().Format("2006-01-02")))
		}
	}
	if it.Kind == KindUser {
		check("the account", it.AccountEnabled, it.LastSignIn)
	}
	for _, m := range it.Members {
		who := "member " + m.ID
		if m.DisplayName != "" {
			who = fmt.Sprintf("member %q (%s)", m.DisplayName, m.ID)
		}
		check(who, m.AccountEnabled, m.LastSignIn)
	}
	if it.MembersTruncated && it.MemberCount != nil {
		notes = append(notes, fmt.Sprintf("the group has %d members; only the first %d are listed", *it.MemberCount, len(it.Members)))
	}
	return notes
}

// GroupDetail is what Graph tells of an excluded group: its name and type, its transitive member
// count and the first members.
type GroupDetail struct {
	GroupInfo
	DisplayName string
	MemberCount int
	Members     []Member
	Truncated   bool
}
