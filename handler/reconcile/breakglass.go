package reconcile

import (
	"fmt"
	"slices"
	"strings"

	"github.com/caguard/caguard/handler/capolicy"
)

// The break-glass invariant: caguard never writes a policy that excludes fewer of the configured
// break-glass users and groups than the definition it would write with all of them. They are the
// tenant's last way in, and Entra is eventually consistent: an object just created or replicated can
// answer 404 for a while (Microsoft's guidance on designing for eventual consistency in Entra), so a
// 404 is a rumour, not a deletion. A break-glass object that answers 404 is reported as missing and
// stays in every definition until a human removes it from the settings; Graph keeps the ids of deleted
// principals in a policy, so keeping one excludes nobody else.

// planTenant is the tenant as the planner sees it: a configured break-glass group that answered 404
// has no member that could be shown to be an outsider, so it counts as empty there. The report keeps
// its membership unknown (R5 fails, honestly); the plan must not, or a 404 would stop every restore,
// and a restore that drops the group to make the rules pass is exactly what the invariant forbids.
func planTenant(t capolicy.Tenant, missingGroups []string) capolicy.Tenant {
	if len(missingGroups) == 0 {
		return t
	}
	members := make(map[string][]string, len(t.GroupMembers)+len(missingGroups))
	for k, v := range t.GroupMembers {
		members[k] = v
	}
	for _, g := range missingGroups {
		if _, ok := members[g]; !ok {
			members[g] = []string{}
		}
	}
	t.GroupMembers = members
	return t
}

// lostBreakGlass lists the configured break-glass users and groups that p does not exclude.
func lostBreakGlass(p capolicy.Policy, cfg capolicy.Config) (users, groups []string) {
	var exUsers, exGroups []string
	if u := p.Conditions.Users; u != nil {
		exUsers, exGroups = u.ExcludeUsers, u.ExcludeGroups
	}
	for _, id := range cfg.BreakGlassUserIDs {
		if !containsFold(exUsers, id) {
			users = append(users, id)
		}
	}
	for _, id := range cfg.BreakGlassGroupIDs {
		if !containsFold(exGroups, id) {
			groups = append(groups, id)
		}
	}
	return users, groups
}

// uncoveredBreakGlass lists the configured break-glass users and groups that p no longer excludes,
// directly or as transitive members of a group it excludes (Conditional Access applies a group
// exclusion to its nested members). unsure says that an excluded group's members are unknown (it
// answered 404), so a user listed may be covered after all.
func uncoveredBreakGlass(p capolicy.Policy, cfg capolicy.Config, members map[string][]string) (users, groups []string, unsure bool) {
	users, groups = lostBreakGlass(p, cfg)
	if len(users)+len(groups) == 0 || p.Conditions.Users == nil {
		return users, groups, false
	}
	var via []string
	for _, g := range p.Conditions.Users.ExcludeGroups {
		m, ok := lookupFold(members, g)
		if !ok {
			unsure = true
			continue
		}
		via = append(via, m...)
	}
	covered := func(id string) bool { return containsFold(via, id) }
	return slices.DeleteFunc(users, covered), slices.DeleteFunc(groups, covered), unsure
}

func lookupFold(m map[string][]string, key string) ([]string, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// withBreakGlass returns c with users and groups added to its exclusions, and nothing else changed.
func withBreakGlass(c capolicy.Conditions, users, groups []string) capolicy.Conditions {
	u := capolicy.Users{}
	if c.Users != nil {
		u = *c.Users
	}
	u.ExcludeUsers = slices.Clone(u.ExcludeUsers)
	u.ExcludeGroups = slices.Clone(u.ExcludeGroups)
	for _, id := range users {
		if !containsFold(u.ExcludeUsers, id) {
			u.ExcludeUsers = append(u.ExcludeUsers, id)
		}
	}
	for _, id := range groups {
		if !containsFold(u.ExcludeGroups, id) {
			u.ExcludeGroups = append(u.ExcludeGroups, id)
		}
	}
	c.Users = &u
	return c
}

// keepBreakGlass makes sure a planned action leaves the managed policy excluding every configured
// break-glass object. An action that writes the definition's conditions already does; otherwise, when
// the managed policy has lost some of them, their exclusions are put back in the conditions it has,
// keeping everything else an administrator set there and the policy's state, unless that would make
// the policy fail a rule it meets now (an allowlisted group that holds other accounts), in which case
// nothing is added and the warning says why. Users that an unreadable excluded group may cover are
// put back only when the action writes anyway. t is the tenant as read (a group that answered 404 has
// unknown members there); planT is the planner's view of it.
func keepBreakGlass(g guard, a Action, own *capolicy.Policy, t, planT capolicy.Tenant) (Action, []string) {
	cfg := g.cfg
	if own == nil || (a.Kind != ActionNone && a.Kind != ActionUpdate) || slices.Contains(a.Fields, "conditions") {
		return a, nil
	}
	users, groups, unsure := uncoveredBreakGlass(*own, cfg, t.GroupMembers)
	if len(groups) == 0 && (len(users) == 0 || unsure) && a.Kind == ActionNone {
		// Nothing is lost, or only users that an excluded group which answered 404 may cover: no
		// write on a rumour.
		return a, nil
	}
	if len(users)+len(groups) == 0 {
		return a, nil
	}
	// A write that happens carries every configured object directly, covered by a group or not, so
	// what it writes is never less than the definition caguard would write with all of them.
	users, groups = lostBreakGlass(*own, cfg)
	lost := describeIDs(users, groups)
	base := *own
	if a.Kind == ActionUpdate {
		base = a.desired
	}
	next := base
	next.Conditions = withBreakGlass(own.Conditions, users, groups)
	if worse(g, *own, next, planT) {
		return a, []string{fmt.Sprintf("the managed policy %s no longer excludes %s, but putting the exclusion back would make it fail the control; fix the break-glass settings", own.ID, lost)}
	}
	var cond []capolicy.Difference
	for _, d := range capolicy.Diff(next, *own) {
		if strings.HasPrefix(d.Field, "conditions.") {
			cond = append(cond, d)
		}
	}
	reason := fmt.Sprintf("put back the exclusion of %s, which the managed policy lost", lost)
	a.exclusionsOnly = a.Kind == ActionNone
	if a.Kind == ActionUpdate {
		reason = a.Reason + "; and " + reason
	}
	a.Kind, a.PolicyID, a.desired = ActionUpdate, own.ID, next
	a.State = next.State.String()
	a.Fields = append(slices.Clone(a.Fields), "conditions")
	a.Changes = append(slices.Clone(a.Changes), cond...)
	a.Reason = reason
	return a, []string{fmt.Sprintf("the managed policy %s no longer excluded %s; caguard puts the exclusion back", own.ID, lost)}
}

// worse reports whether next meets less of the control than cur: it fails where cur passes, or fails
// on a rule other than its state where cur fails on its state alone.
func worse(g guard, cur, next capolicy.Policy, t capolicy.Tenant) bool {
	judge := func(p capolicy.Policy) capolicy.PolicyResult { return g.judgeOne(p, t).Policies[0] }
	c, n := judge(cur), judge(next)
	return (c.Compliant && !n.Compliant) || (c.MeetsAllButState && !n.MeetsAllButState)
}

// checkBreakGlass is the last guard before a write: the conditions about to be written must exclude
// every configured break-glass object. Plan never builds such a write; this stops one if it ever did.
func checkBreakGlass(a Action, cfg capolicy.Config) error {
	if a.Kind != ActionCreate && !slices.Contains(a.Fields, "conditions") {
		return nil
	}
	if users, groups := lostBreakGlass(a.desired, cfg); len(users)+len(groups) > 0 {
		return fmt.Errorf("refused to write policy %s: it would no longer exclude %s", a.PolicyID, describeIDs(users, groups))
	}
	return nil
}

func describeIDs(users, groups []string) string {
	var parts []string
	if len(users) > 0 {
		parts = append(parts, "break-glass user(s) "+strings.Join(users, ", "))
	}
	if len(groups) > 0 {
		parts = append(parts, "break-glass group(s) "+strings.Join(groups, ", "))
	}
	return strings.Join(parts, " and ")
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(v string) bool { return strings.EqualFold(strings.TrimSpace(v), strings.TrimSpace(s)) })
}
