package capolicy

import (
	"slices"
	"strconv"
	"strings"
)

// DefaultManagedPolicyName is the display name of the policy caguard owns when Config names none.
const DefaultManagedPolicyName = "caguard: require MFA for Azure management"

// Config is what the rules need besides the policies: the target app ids and the approved exclusions.
type Config struct {
	// TargetAppIDs are the Azure management apps the control is about. Empty means
	// AzureManagementAppID; sovereign clouds configure their own. A policy must cover every one.
	TargetAppIDs []string
	// BreakGlassUserIDs and BreakGlassGroupIDs are the only exclusions a compliant policy may have.
	BreakGlassUserIDs  []string
	BreakGlassGroupIDs []string
	// CustomControlsCountAsMFA lets a custom (third-party) control satisfy MFA. Off by default,
	// because Defender for Cloud and the CIS benchmark do not accept third-party MFA.
	CustomControlsCountAsMFA bool
	// ManagedPolicyName is the display name of the policy caguard owns; empty means
	// DefaultManagedPolicyName.
	ManagedPolicyName string
	// RequireExclusionReview makes R20 part of the control (EXCLUSION_REVIEW=require): every user or
	// group a passing policy excludes must be kept in check by a current access review.
	RequireExclusionReview bool
}

// Targets returns the configured target app ids, or AzureManagementAppID when none are configured.
func (c Config) Targets() []string {
	if len(c.TargetAppIDs) == 0 {
		return []string{AzureManagementAppID}
	}
	return c.TargetAppIDs
}

// ManagedName returns the display name of the policy caguard owns.
func (c Config) ManagedName() string {
	if strings.TrimSpace(c.ManagedPolicyName) == "" {
		return DefaultManagedPolicyName
	}
	return c.ManagedPolicyName
}

// Validate reports the first configured id that is not a GUID. A typo in the allowlist would make
// every policy fail, and a token such as "All" in it would approve everyone.
func (c Config) Validate() error {
	lists := []struct {
		name string
		ids  []string
	}{{"target app id", c.TargetAppIDs}, {"break-glass user id", c.BreakGlassUserIDs}, {"break-glass group id", c.BreakGlassGroupIDs}}
	for _, l := range lists {
		for _, id := range l.ids {
			if !isGUID(strings.TrimSpace(id)) {
				return &configError{what: l.name, value: id}
			}
		}
	}
	return nil
}

type configError struct{ what, value string }

func (e *configError) Error() string {
	return "invalid " + e.what + " " + strconv.Quote(e.value) + ": want a GUID"
}

// Tenant is what Evaluate reads from the directory.
type Tenant struct {
	Policies []Policy
	// GroupMembers maps a group object id to the object ids of its transitive members (users, the
	// users of nested groups, nested groups themselves, devices, service principals). A break-glass
	// group missing from the map has unknown membership, and a policy excluding it does not pass.
	GroupMembers map[string][]string
	// AuthenticationStrengths are the strength definitions; a grant whose strength carries only an id
	// is resolved against them.
	AuthenticationStrengths []AuthenticationStrength
	// ExclusionReviews maps an excluded user or group id to the access-review finding for it. Read
	// only with Config.RequireExclusionReview; an excluded id missing from the map counts as unknown.
	ExclusionReviews map[string]ExclusionReview
	// Licences are the tenant's subscriptions, read only when an enabled control needs a licence;
	// nil means not read (or refused), and a control's licence is then unknown.
	Licences *Licences
}

// Verdict is the tenant-level outcome.
type Verdict string

// The verdicts. Only VerdictCompliant means MFA is enforced today.
const (
	VerdictCompliant          Verdict = "compliant"
	VerdictPendingEnforcement Verdict = "pending-enforcement"
	VerdictNonCompliant       Verdict = "non-compliant"
)

// Reason is one way a policy falls short. Message is one sentence an admin reads in an alert.
// Unrecognised names, for a reason caused by values caguard does not know (STATE_UNKNOWN,
// UNRECOGNISED_PROPERTY, UNRECOGNISED_VALUE), each such value as Graph sent it.
type Reason struct {
	Code         string         `json:"code"`
	Message      string         `json:"message"`
	Unrecognised []UnknownValue `json:"unrecognised,omitempty"`
}

// PolicyResult is the evaluation of one policy.
type PolicyResult struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	State       State  `json:"state"`
	// Compliant means the policy meets every rule, R1 (enabled) included.
	Compliant bool `json:"compliant"`
	// MeetsAllButState means every rule other than R1 holds: enabling the policy would make it compliant.
	MeetsAllButState bool     `json:"meetsAllButState"`
	MicrosoftManaged bool     `json:"microsoftManaged"`
	Reasons          []Reason `json:"reasons"`
}

// Report is the tenant verdict and the evaluation of every policy.
type Report struct {
	// Compliant is true only for VerdictCompliant.
	Compliant bool    `json:"compliant"`
	Verdict   Verdict `json:"verdict"`
	// Summary is one sentence naming the verdict and the policy behind it.
	Summary string `json:"summary"`
	// Policies holds every policy in input order.
	Policies []PolicyResult `json:"policies"`
	// Passing holds the ids of the compliant policies, in input order.
	Passing []string `json:"passing,omitempty"`
	// Closest is the id of the policy with the fewest failing reason codes when none is compliant.
	// Ties go to a report-only policy that meets every other rule, then to any policy that does,
	// then to the earliest policy in input order.
	Closest string `json:"closest,omitempty"`
}

// Evaluate applies rules R1..R19 to every policy of t and returns the tenant verdict: compliant when an
// enabled policy passes every rule, pending-enforcement when none does but a report-only policy passes
// every rule except R1, non-compliant otherwise. A policy is never weakened by others, because
// Conditional Access grant requirements add up; so one passing policy is enough.
func Evaluate(t Tenant, cfg Config) Report {
	e := newEvaluator(t, cfg)
	rep := Report{Policies: make([]PolicyResult, len(t.Policies))}
	compliant, pending := -1, -1
	for i := range t.Policies {
		r := e.policy(&t.Policies[i])
		rep.Policies[i] = r
		if r.Compliant {
			rep.Passing = append(rep.Passing, r.ID)
			if compliant < 0 {
				compliant = i
			}
		}
		if pending < 0 && r.MeetsAllButState && r.State == StateReportOnly {
			pending = i
		}
	}
	target := e.targetName()
	near := -1
	if compliant < 0 && len(rep.Policies) > 0 {
		near = closest(rep.Policies)
		rep.Closest = rep.Policies[near].ID
	}
	switch {
	case compliant >= 0:
		rep.Compliant, rep.Verdict = true, VerdictCompliant
		p := rep.Policies[compliant]
		rep.Summary = "Compliant: enabled policy " + policyName(p) + " requires MFA for " + target
		if n := len(rep.Passing) - 1; n > 0 {
			rep.Summary += ", and " + plural(n, "other policy does", "other policies do") + " too"
		}
		rep.Summary += "."
	case pending >= 0:
		rep.Verdict = VerdictPendingEnforcement
		rep.Summary = "Pending enforcement: report-only policy " + policyName(rep.Policies[pending]) +
			" meets every rule for " + target + " but enforces nothing until an admin switches it on."
	case len(rep.Policies) == 0:
		rep.Verdict = VerdictNonCompliant
		rep.Summary = "Non-compliant: the tenant has no Conditional Access policy, so nothing requires MFA for " + target + "."
	default:
		rep.Verdict = VerdictNonCompliant
		p := rep.Policies[near]
		codes := distinctCodes(p.Reasons)
		rep.Summary = "Non-compliant: no enabled policy requires MFA for " + target + "; the closest, " + policyName(p) +
			", fails " + plural(len(codes), "check", "checks") + " (" + strings.Join(codes, ", ") + ")."
	}
	return rep
}

// closest returns the index of the policy with the fewest distinct failing codes (see Report.Closest).
func closest(rs []PolicyResult) int {
	best, bestN, bestRank := 0, -1, 0
	for i, r := range rs {
		n := len(distinctCodes(r.Reasons))
		rank := 2
		if r.MeetsAllButState {
			rank = 1
			if r.State == StateReportOnly {
				rank = 0
			}
		}
		if bestN < 0 || n < bestN || n == bestN && rank < bestRank {
			best, bestN, bestRank = i, n, rank
		}
	}
	return best
}

func distinctCodes(rs []Reason) []string {
	var codes []string
	for _, r := range rs {
		seen := false
		for _, c := range codes {
			if c == r.Code {
				seen = true
				break
			}
		}
		if !seen {
			codes = append(codes, r.Code)
		}
	}
	return codes
}

func policyName(p PolicyResult) string {
	if p.ID == "" {
		return strconv.Quote(p.DisplayName)
	}
	return strconv.Quote(p.DisplayName) + " (" + p.ID + ")"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// groupCheck is the membership verdict of one break-glass group, computed once per evaluation.
type groupCheck struct {
	known    bool
	outsider []string // members that are not break-glass users
}

// evaluator holds what one Evaluate call derives from the configuration and the tenant, so each
// policy costs lookups rather than scans. Keys are lower case: directory ids compare without case.
type evaluator struct {
	cfg       Config
	targets   []string
	bgUsers   map[string]struct{}
	bgGroups  map[string]struct{}
	members   map[string][]string
	groups    map[string]*groupCheck
	strengths map[string]*AuthenticationStrength
	reviews   map[string]ExclusionReview
}

func idKey(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func newEvaluator(t Tenant, cfg Config) *evaluator {
	e := &evaluator{
		cfg:      cfg,
		targets:  cfg.Targets(),
		bgUsers:  make(map[string]struct{}, len(cfg.BreakGlassUserIDs)),
		bgGroups: make(map[string]struct{}, len(cfg.BreakGlassGroupIDs)),
		members:  t.GroupMembers,
		reviews:  t.ExclusionReviews,
	}
	for _, id := range cfg.BreakGlassUserIDs {
		if k := idKey(id); k != "" {
			e.bgUsers[k] = struct{}{}
		}
	}
	for _, id := range cfg.BreakGlassGroupIDs {
		if k := idKey(id); k != "" {
			e.bgGroups[k] = struct{}{}
		}
	}
	if len(t.AuthenticationStrengths) > 0 {
		e.strengths = make(map[string]*AuthenticationStrength, len(t.AuthenticationStrengths))
		for i := range t.AuthenticationStrengths {
			s := &t.AuthenticationStrengths[i]
			if k := idKey(s.ID); k != "" {
				e.strengths[k] = s
			}
		}
	}
	return e
}

// group returns the membership verdict of an allowlisted group, computing it on first use.
func (e *evaluator) group(key string) *groupCheck {
	if g, ok := e.groups[key]; ok {
		return g
	}
	g := &groupCheck{}
	list, ok := e.members[key]
	if !ok {
		for id, m := range e.members {
			if idKey(id) == key {
				list, ok = m, true
				break
			}
		}
	}
	if ok {
		g.known = true
		for _, m := range list {
			k := idKey(m)
			if k == "" {
				continue
			}
			if _, bg := e.bgUsers[k]; !bg {
				g.outsider = append(g.outsider, strings.TrimSpace(m))
			}
		}
	}
	if e.groups == nil {
		e.groups = make(map[string]*groupCheck, len(e.bgGroups))
	}
	e.groups[key] = g
	return g
}

// targetName describes the target apps for a sentence.
func (e *evaluator) targetName() string {
	if len(e.targets) == 1 {
		return appName(e.targets[0])
	}
	names := make([]string, len(e.targets))
	for i, t := range e.targets {
		names[i] = strings.TrimSpace(t)
	}
	return "the Azure management apps " + joinList(names)
}

// appName names a well-known application token or id for a sentence.
func appName(id string) string {
	id = strings.TrimSpace(id)
	switch {
	case strings.EqualFold(id, AzureManagementAppID):
		return "the Windows Azure Service Management API (" + AzureManagementAppID + ")"
	case strings.EqualFold(id, AzurePortalAppID):
		return "the Azure portal (" + AzurePortalAppID + ")"
	case strings.EqualFold(id, "MicrosoftAdminPortals"):
		return "MicrosoftAdminPortals"
	case strings.EqualFold(id, "All"):
		return "All applications"
	}
	return "app " + id
}

// maxListed caps how many items a sentence lists, so an alert stays readable.
const maxListed = 8

// joinList renders items as "a, b and c", listing at most maxListed.
func joinList(items []string) string { return listText(items, " and ") }

// listText joins at most maxListed items with ", " and last before the final one, and says how many
// it left out.
func listText(items []string, last string) string {
	if len(items) == 0 {
		return "none"
	}
	shown := items
	if len(shown) > maxListed {
		shown = shown[:maxListed]
	}
	var b strings.Builder
	for i, s := range shown {
		if i > 0 {
			if i == len(items)-1 {
				b.WriteString(last)
			} else {
				b.WriteString(", ")
			}
		}
		b.WriteString(s)
	}
	if more := len(items) - len(shown); more > 0 {
		b.WriteString(" and ")
		b.WriteString(strconv.Itoa(more))
		b.WriteString(" more")
	}
	return b.String()
}

// bracketList renders the tokens of list as "[a, b]" ("[]" when empty), listing at most maxListed.
func bracketList(v vocab, list []string) string {
	var items []string
	v.eachToken(list, func(t string) bool {
		items = append(items, v.mark(t))
		return true
	})
	if len(items) == 0 {
		return "[]"
	}
	return "[" + listText(items, ", ") + "]"
}

// notRecognised follows a value that a rule reads as narrowing because it does not know it.
const notRecognised = " (not recognised)"

// mark returns t, flagged when the vocabulary does not recognise it, so the admin reading a reason
// knows the value was counted against the policy for being unknown.
func (v vocab) mark(t string) string {
	if v.recognised(t) {
		return t
	}
	return t + notRecognised
}

// truncate shortens free text (a filter rule) for a sentence.
func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		cut--
	}
	return s[:cut] + "…"
}

func filterText(f *Filter) string {
	mode := strings.TrimSpace(f.Mode)
	if mode == "" {
		mode = "mode unset"
	}
	return mode + ": " + truncate(f.Rule, 120)
}

// policy evaluates one policy. Rules read lists through vocab, the same reader Normalize uses, so a
// policy and its normal form always get the same verdict.
func (e *evaluator) policy(p *Policy) PolicyResult {
	r := PolicyResult{
		ID:               p.ID,
		DisplayName:      p.DisplayName,
		State:            p.State,
		MicrosoftManaged: p.MicrosoftManaged(),
	}
	var rs []Reason
	add := func(code, msg string) { rs = append(rs, Reason{Code: code, Message: msg}) }
	addUnknown := func(code, msg string, vals []UnknownValue) {
		rs = append(rs, Reason{Code: code, Message: msg, Unrecognised: vals})
	}

	// R1. Checked first so a report-only policy's first reason says so, but it does not stop the rest.
	stateOK := stateReason(p, add, addUnknown)
	stateReasons := len(rs)

	c := &p.Conditions
	e.workload(c.ClientApplications, add)
	e.users(c.Users, add)
	e.applications(c.Applications, add)
	e.narrowing(c, add)
	unrecognised(c.Unrecognised, addUnknown)
	e.grant(p.GrantControls, add, addUnknown)
	e.unknownReason(p, addUnknown)
	if e.cfg.RequireExclusionReview && len(rs) == stateReasons {
		e.exclusionReviews(c.Users, add)
	}
	return finishResult(r, rs, stateReasons, stateOK)
}

// stateReason is R1: a policy that is not enabled gets a reason, and a state caguard does not know
// fails this policy alone, naming the state as Graph wrote it. It reports whether the state is enabled.
func stateReason(p *Policy, add func(code, msg string), addUnknown func(code, msg string, vals []UnknownValue)) bool {
	switch p.State {
	case StateEnabled:
		return true
	case StateReportOnly:
		add(CodeStateReportOnly, msgStateReportOnly)
	case StateDisabled:
		add(CodeStateNotEnabled, msgStateNotEnabled)
	default:
		state, vals := "missing", []UnknownValue(nil)
		if v := strings.TrimSpace(p.UnrecognisedState); v != "" {
			state, vals = strconv.Quote(v)+notRecognised, []UnknownValue{{Field: "state", Value: v}}
		}
		addUnknown(CodeStateUnknown, render(msgStateUnknown, state), vals)
	}
	return false
}

// unknownReason fails the policy, in one reason, on every value caguard does not know: values that
// could not be decoded, enum members it does not recognise, and those of its authentication strength.
func (e *evaluator) unknownReason(p *Policy, addUnknown func(code, msg string, vals []UnknownValue)) {
	vals := append(slices.Clone(p.Unreadable), unknownValues(p)...)
	if g := p.GrantControls; g != nil {
		_, _, _, u := e.strength(g.AuthenticationStrength)
		vals = append(vals, u...)
	}
	if len(vals) > 0 {
		addUnknown(CodeUnrecognisedValue, render(msgUnrecognisedValue, unknownText(vals)), vals)
	}
}

// workload is R2.
func (e *evaluator) workload(ca *ClientApplications, add func(code, msg string)) {
	if ca == nil {
		return
	}
	var parts []string
	if !spEmpty(ca.IncludeServicePrincipals) {
		parts = append(parts, "service principals "+bracketList(vocabServicePrincipals, ca.IncludeServicePrincipals))
	}
	if !spEmpty(ca.IncludeAgentIDServicePrincipals) {
		parts = append(parts, "agent identities "+bracketList(vocabServicePrincipals, ca.IncludeAgentIDServicePrincipals))
	}
	if filterSet(ca.ServicePrincipalFilter) {
		parts = append(parts, "a service-principal filter")
	}
	if filterSet(ca.AgentIDServicePrincipalFilter) {
		parts = append(parts, "an agent-identity filter")
	}
	if len(parts) > 0 {
		add(CodeWorkloadIdentityPolicy, render(msgWorkloadIdentityPolicy, joinList(parts)))
	}
}

// spEmpty reports whether a service-principal list selects nobody ("None" selects nobody).
func spEmpty(list []string) bool {
	return vocabServicePrincipals.eachToken(list, func(t string) bool { return strings.EqualFold(t, "None") })
}

// users is R3 to R7.
func (e *evaluator) users(u *Users, add func(code, msg string)) {
	if u == nil {
		add(CodeUsersNotAll, render(msgUsersNotAll, "no one"))
		return
	}
	// R3
	if !vocabUsers.has(u.IncludeUsers, "All") {
		var parts []string
		if !vocabUsers.empty(u.IncludeUsers) {
			parts = append(parts, "users "+bracketList(vocabUsers, u.IncludeUsers))
		}
		if !vocabIDs.empty(u.IncludeGroups) {
			parts = append(parts, "groups "+bracketList(vocabIDs, u.IncludeGroups))
		}
		if !vocabIDs.empty(u.IncludeRoles) {
			parts = append(parts, "roles "+bracketList(vocabIDs, u.IncludeRoles))
		}
		if g := u.IncludeGuestsOrExternalUsers; g != nil && !vocabGuestTypes.empty(g.GuestOrExternalUserTypes) {
			parts = append(parts, "guest types "+bracketList(vocabGuestTypes, g.GuestOrExternalUserTypes))
		}
		scope := "no one"
		if len(parts) > 0 {
			scope = joinList(parts)
		}
		add(CodeUsersNotAll, render(msgUsersNotAll, scope))
	}
	// R4
	var bad []string
	guestsToken := false
	vocabUsers.eachToken(u.ExcludeUsers, func(t string) bool {
		switch {
		case strings.EqualFold(t, "GuestsOrExternalUsers"):
			guestsToken = true
		case strings.EqualFold(t, "None"):
		default:
			if _, ok := e.bgUsers[idKey(t)]; !ok {
				bad = append(bad, t)
			}
		}
		return true
	})
	if len(bad) > 0 {
		add(CodeExcludedUserNotAllowlisted, render(msgExcludedUserNotAllowlisted, joinList(bad)))
	}
	if guestsToken {
		add(CodeExcludesGuests, render(msgExcludesGuests, "excludeUsers holds GuestsOrExternalUsers"))
	}
	// R5
	bad = bad[:0]
	vocabIDs.eachToken(u.ExcludeGroups, func(t string) bool {
		k := idKey(t)
		if _, ok := e.bgGroups[k]; !ok {
			bad = append(bad, t)
			return true
		}
		g := e.group(k)
		switch {
		case !g.known:
			add(CodeExcludedGroupMembershipUnknown, render(msgExcludedGroupMembershipUnknown, t))
		case len(g.outsider) > 0:
			add(CodeExcludedGroupHasNonBreakGlass, render(msgExcludedGroupHasNonBreakGlassMember, t, joinList(g.outsider)))
		}
		return true
	})
	if len(bad) > 0 {
		add(CodeExcludedGroupNotAllowlisted, render(msgExcludedGroupNotAllowlisted, joinList(bad)))
	}
	// R6
	if !vocabIDs.empty(u.ExcludeRoles) {
		var roles []string
		vocabIDs.eachToken(u.ExcludeRoles, func(t string) bool { roles = append(roles, t); return true })
		add(CodeExcludesRoles, render(msgExcludesRoles, joinList(roles)))
	}
	// R7
	if g := u.ExcludeGuestsOrExternalUsers; g != nil && !vocabGuestTypes.empty(g.GuestOrExternalUserTypes) {
		add(CodeExcludesGuests, render(msgExcludesGuests, "guest types "+bracketList(vocabGuestTypes, g.GuestOrExternalUserTypes)))
	}
}

// applications is R8 to R10.
func (e *evaluator) applications(a *Applications, add func(code, msg string)) {
	var include, exclude []string
	if a != nil {
		include, exclude = a.IncludeApplications, a.ExcludeApplications
	}
	// R8: the target must be named, or All. MicrosoftAdminPortals does not cover ARM tokens.
	if !vocabApps.has(include, "All") {
		var missing []string
		for _, t := range e.targets {
			if !vocabApps.has(include, strings.TrimSpace(t)) {
				missing = append(missing, appName(t))
			}
		}
		if len(missing) > 0 {
			add(CodeAppNotTargeted, render(msgAppNotTargeted, joinList(missing), bracketList(vocabApps, include)))
		}
	}
	// R9
	var excluded []string
	vocabApps.eachToken(exclude, func(t string) bool {
		hit := strings.EqualFold(t, "All") || strings.EqualFold(t, "MicrosoftAdminPortals") || strings.EqualFold(t, AzurePortalAppID)
		for _, target := range e.targets {
			hit = hit || strings.EqualFold(t, strings.TrimSpace(target))
		}
		switch {
		case hit:
			excluded = append(excluded, appName(t))
		case !isGUID(t) && !slices.ContainsFunc(vocabApps.names, func(n string) bool { return strings.EqualFold(n, t) }):
			// A token that is neither an app id nor a known group of apps may name a bundle that
			// holds Azure management: count it as excluding the target.
			excluded = append(excluded, t+notRecognised)
		}
		return true
	})
	if len(excluded) > 0 {
		add(CodeAppExcluded, render(msgAppExcluded, joinList(excluded)))
	}
	// R10
	if a != nil && filterSet(a.ApplicationFilter) {
		add(CodeAppFilterPresent, render(msgAppFilterPresent, filterText(a.ApplicationFilter)))
	}
}

// narrowing is R11 to R16: conditions that let some sign-ins to Azure management skip the policy.
func (e *evaluator) narrowing(c *Conditions, add func(code, msg string)) {
	// R11
	ct := vocabClientAppTypes
	if !ct.empty(c.ClientAppTypes) && !ct.has(c.ClientAppTypes, "all") &&
		!(ct.has(c.ClientAppTypes, "browser") && ct.has(c.ClientAppTypes, "mobileAppsAndDesktopClients")) {
		add(CodeClientAppTypesNarrowed, render(msgClientAppTypesNarrowed, bracketList(ct, c.ClientAppTypes)))
	}
	// R12
	if pl := c.Platforms; pl != nil && narrowed(vocabPlatforms, pl.IncludePlatforms, pl.ExcludePlatforms, "all") {
		add(CodePlatformsNarrowed, render(msgPlatformsNarrowed,
			bracketList(vocabPlatforms, pl.IncludePlatforms), bracketList(vocabPlatforms, pl.ExcludePlatforms)))
	}
	// R13
	if l := c.Locations; l != nil && narrowed(vocabLocations, l.IncludeLocations, l.ExcludeLocations, "All") {
		add(CodeLocationsNarrowed, render(msgLocationsNarrowed,
			bracketList(vocabLocations, l.IncludeLocations), bracketList(vocabLocations, l.ExcludeLocations)))
	}
	// R14, including the deprecated device-state condition, which narrows just as a filter does.
	if d := c.Devices; d != nil {
		var parts []string
		if filterSet(d.DeviceFilter) {
			parts = append(parts, "deviceFilter "+filterText(d.DeviceFilter))
		}
		if narrowed(vocabDevices, d.IncludeDevices, d.ExcludeDevices, "All") {
			parts = append(parts, "includeDevices "+bracketList(vocabDevices, d.IncludeDevices)+
				", excludeDevices "+bracketList(vocabDevices, d.ExcludeDevices))
		}
		if len(parts) > 0 {
			add(CodeDeviceFilterPresent, render(msgDeviceFilterPresent, joinList(parts)))
		}
	}
	// R15
	var levels []string
	for _, l := range [...]struct {
		name string
		v    vocab
		list []string
	}{
		{"userRiskLevels", vocabRiskLevels, c.UserRiskLevels},
		{"signInRiskLevels", vocabRiskLevels, c.SignInRiskLevels},
		{"servicePrincipalRiskLevels", vocabRiskLevels, c.ServicePrincipalRiskLevels},
		{"insiderRiskLevels", vocabInsiderRisk, c.InsiderRiskLevels},
	} {
		if !l.v.empty(l.list) {
			levels = append(levels, l.name+" "+bracketList(l.v, l.list))
		}
	}
	if len(levels) > 0 {
		add(CodeRiskConditionPresent, render(msgRiskConditionPresent, joinList(levels)))
	}
	// R16
	if f := c.AuthenticationFlows; f != nil && !vocabTransferMethods.empty(f.TransferMethods) {
		add(CodeAuthFlowConditionPresent, render(msgAuthFlowConditionPresent, bracketList(vocabTransferMethods, f.TransferMethods)))
	}
}

// narrowed reports whether an include/exclude pair selects less than everything: anything excluded,
// or something included without the all token. Both empty means the condition is not configured.
func narrowed(v vocab, include, exclude []string, all string) bool {
	if !v.empty(exclude) {
		return true
	}
	return !v.empty(include) && !v.has(include, all)
}

// strength outcomes.
const (
	strengthNone = iota
	strengthMFA
	strengthWeak
	strengthUnresolved
	strengthUnknown // requirementsSatisfied holds a value caguard does not recognise
)

// strength resolves a grant's authentication strength: its own requirementsSatisfied when Graph sent
// the whole object, else the tenant's definition with that id. unknown lists what of the resolved
// strength caguard does not recognise (see strengthUnknowns).
func (e *evaluator) strength(s *AuthenticationStrength) (outcome int, name, requirement string, unknown []UnknownValue) {
	if !strengthSet(s) {
		return strengthNone, "", "", nil
	}
	name = strings.TrimSpace(s.DisplayName)
	id := strings.TrimSpace(s.ID)
	requirement = strings.TrimSpace(s.RequirementsSatisfied)
	combos := s.AllowedCombinations
	if requirement == "" && id != "" {
		if def, ok := e.strengths[idKey(id)]; ok {
			requirement = strings.TrimSpace(def.RequirementsSatisfied)
			if len(combos) == 0 {
				combos = def.AllowedCombinations
			}
			if name == "" {
				name = strings.TrimSpace(def.DisplayName)
			}
		}
	}
	unknown = strengthUnknowns(requirement, combos)
	switch {
	case name != "" && id != "":
		name = strconv.Quote(name) + " (" + id + ")"
	case name != "":
		name = strconv.Quote(name)
	case id != "":
		name = id
	default:
		name = "(unnamed)"
	}
	switch {
	case requirement == "":
		return strengthUnresolved, name, "", unknown
	case slices.ContainsFunc(unknown, func(u UnknownValue) bool { return strings.HasSuffix(u.Field, ".requirementsSatisfied") }):
		return strengthUnknown, name, requirement, unknown
	case strings.EqualFold(requirement, "mfa"):
		return strengthMFA, name, requirement, unknown
	}
	return strengthWeak, name, requirement, unknown
}

// unrecognised fails a section that holds properties the model does not know: any of them may
// narrow the policy or offer an alternative to MFA.
func unrecognised(props []UnknownValue, add func(code, msg string, vals []UnknownValue)) {
	if len(props) > 0 {
		add(CodeUnrecognisedProperty, render(msgUnrecognisedProperty, propertyText(props)), props)
	}
}

// grant is R17 and R18 (R19: session controls play no part). Values it does not recognise fail the
// policy apart (UNRECOGNISED_VALUE); here an unknown operator reads as the weaker OR, and a strength
// whose requirement is unknown as an alternative that is not MFA.
func (e *evaluator) grant(g *GrantControls, add func(code, msg string), addUnknown func(code, msg string, vals []UnknownValue)) {
	if g != nil {
		unrecognised(g.Unrecognised, addUnknown)
	}
	if g == nil || (vocabBuiltInControls.empty(g.BuiltInControls) && vocabIDs.empty(g.CustomAuthenticationFactors) &&
		vocabIDs.empty(g.TermsOfUse) && !strengthSet(g.AuthenticationStrength)) {
		add(CodeNoGrantControls, msgNoGrantControls)
		return
	}
	if vocabBuiltInControls.has(g.BuiltInControls, "block") {
		add(CodeGrantBlockNotMFA, msgGrantBlockNotMFA)
		return
	}
	outcome, sname, requirement, _ := e.strength(g.AuthenticationStrength)
	customMFA := e.cfg.CustomControlsCountAsMFA && !vocabIDs.empty(g.CustomAuthenticationFactors)
	hasMFA := vocabBuiltInControls.has(g.BuiltInControls, "mfa") || outcome == strengthMFA || customMFA
	and := strings.EqualFold(strings.TrimSpace(g.Operator), "AND")

	// nonMFA lists the controls that are not MFA, for the sentences below.
	nonMFA := func() []string {
		var out []string
		vocabBuiltInControls.eachToken(g.BuiltInControls, func(t string) bool {
			if !strings.EqualFold(t, "mfa") {
				out = append(out, vocabBuiltInControls.mark(vocabBuiltInControls.canon(t)))
			}
			return true
		})
		vocabIDs.eachToken(g.TermsOfUse, func(t string) bool { out = append(out, "terms of use "+t); return true })
		if !e.cfg.CustomControlsCountAsMFA {
			vocabIDs.eachToken(g.CustomAuthenticationFactors, func(t string) bool {
				out = append(out, "custom control "+t+" (not counted as MFA)")
				return true
			})
		}
		switch outcome {
		case strengthWeak:
			out = append(out, "the non-MFA authentication strength "+sname)
		case strengthUnknown:
			out = append(out, "the authentication strength "+sname+" (requirementsSatisfied "+strconv.Quote(requirement)+notRecognised+")")
		}
		return out
	}

	if !hasMFA {
		switch outcome {
		case strengthWeak:
			add(CodeWeakAuthStrength, render(msgWeakAuthStrength, sname, requirement))
		case strengthUnresolved:
			add(CodeAuthStrengthUnresolved, render(msgAuthStrengthUnresolved, sname))
		case strengthUnknown:
			// UNRECOGNISED_VALUE names the requirement; nothing here shows the strength is MFA.
		default:
			sep := " or "
			if and {
				sep = " and "
			}
			add(CodeNoMFAGrant, render(msgNoMFAGrant, strings.Join(nonMFA(), sep)))
		}
		return
	}
	if and {
		return // MFA is required; other AND controls only add requirements.
	}
	// R18: with OR (or no operator, read as the weaker OR) every alternative must be MFA.
	if alts := nonMFA(); len(alts) > 0 {
		op := strings.ToUpper(strings.TrimSpace(g.Operator))
		if op == "" {
			op = "missing"
		}
		add(CodeGrantORWithNonMFAAlternative, render(msgGrantORWithNonMFAAlternative, joinList(alts), op))
	}
	if outcome == strengthUnresolved {
		add(CodeAuthStrengthUnresolved, render(msgAuthStrengthUnresolved, sname))
	}
}

// finishResult completes r from its reasons rs: it meets all but its state when no reason beyond the
// stateReasons state reasons was added, and is compliant when its state is also fine.
func finishResult(r PolicyResult, rs []Reason, stateReasons int, stateOK bool) PolicyResult {
	r.MeetsAllButState = len(rs) == stateReasons
	r.Compliant = stateOK && r.MeetsAllButState
	if rs == nil {
		rs = []Reason{}
	}
	r.Reasons = rs
	return r
}
