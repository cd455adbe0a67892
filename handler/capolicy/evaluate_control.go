package capolicy

import (
	"slices"
	"strconv"
	"strings"
)

// Reason codes that only controls other than azure-management-mfa can raise. The codes of Rules keep
// their meaning for every control; their sentences name the control's target.
const (
	CodeRolesNotCovered           = "ROLES_NOT_COVERED"
	CodeUserActionNotTargeted     = "USER_ACTION_NOT_TARGETED"
	CodeRequirementNotImplied     = "REQUIREMENT_NOT_IMPLIED"
	CodeSignInFrequencyNotMet     = "SIGN_IN_FREQUENCY_NOT_MET"
	CodePersistentBrowserNotNever = "PERSISTENT_BROWSER_NOT_NEVER"
)

const (
	msgRolesNotCovered           = "Includes neither All users nor every administrative role of the control (it includes {scope}); missing roles: {roles}."
	msgUserActionNotTargeted     = "Does not target the user action {action}: includeUserActions is {actions} (All resources does not include user actions)."
	msgAllResourcesNotTargeted   = "Does not target All resources: includeApplications is {apps}, and only All counts."
	msgAllResourcesExcluded      = "Excludes {apps}, which exempts sign-ins to them from the policy; the control needs All resources with no exclusion."
	msgClientAppTypesNotCovered  = "Applies only to client app types {types}; it must leave client app types unset, include all, or include {required}."
	msgRiskLevelsNotCovered      = "Applies only at some risk levels ({levels}), so sign-ins at the levels the control is about skip this policy."
	msgTransferMethodsNotCovered = "Applies only to the authentication flows {methods}; it must leave them unset or include {required}."
	msgRequirementNotImplied     = "Grant controls ({controls}, operator {operator}) do not imply {requirement}."
	msgRequirementAlternative    = "Accepts {alternatives} as an alternative (operator {operator}), which does not imply {requirement}."
	msgStrengthNotPhishingResist = "Requires authentication strength {strength}, which is not phishing-resistant (it is neither the built-in phishing-resistant strength nor one that allows only its methods)."
	msgSignInFrequencyNotMet     = "Sign-in frequency is {frequency}; the control needs it enabled for primary and secondary authentication, every time or at most {hours} hours."
	msgPersistentBrowserNotNever = "Persistent browser session is {persistent}; the control needs it enabled with mode never."
)

// ControlRules lists the codes only controls raise, like Rules, for the README.
func ControlRules() []Rule {
	return []Rule{
		{"C3", CodeRolesNotCovered, "for a role control: `includeUsers` contains `All`, or `includeRoles` holds every role of the control", msgRolesNotCovered},
		{"C8", CodeUserActionNotTargeted, "for a user-action control: `includeUserActions` holds the action", msgUserActionNotTargeted},
		{"C17", CodeRequirementNotImplied, "the grant controls imply the control's requirement: with `AND` one control meets each clause, with `OR` every alternative does", msgRequirementNotImplied},
		{"C19", CodeSignInFrequencyNotMet, "sign-in frequency enabled for primary and secondary authentication, every time or at most the control's hours", msgSignInFrequencyNotMet},
		{"C19", CodePersistentBrowserNotNever, "persistent browser session enabled with mode `never`", msgPersistentBrowserNotNever},
		{"L", CodeLicenceMissing, "for a control that needs a licence (the risk controls: Entra ID P2): a working subscription of the tenant provides its service plan", msgLicenceMissing},
	}
}

// ControlReport is the verdict on one control: which control, and the Report of Evaluate's shape.
type ControlReport struct {
	ID      string   `json:"id"`
	Title   string   `json:"title"`
	CIS     []CISRef `json:"cis"`
	Guarded bool     `json:"guarded"`
	// Licence is, for a control that needs one, the licence and whether the tenant has it.
	Licence *LicenceStatus `json:"licence,omitempty"`
	Report
}

// EvaluateControl judges every policy of t against c and returns the tenant verdict with the same
// semantics as Evaluate: compliant when an enabled policy covers the control's scope (less the
// break-glass exclusions) and its controls imply the requirement, pending-enforcement when only a
// report-only policy does, non-compliant otherwise. One policy must meet the whole control: grant
// requirements of separate policies add up in Entra, but proving that two policies together cover a
// scope is not done here, so a control split across policies reads as non-compliant (fail closed).
//
// For ControlAzureManagementMFA the verdict, the passing and closest policies and every policy's
// reason codes equal Evaluate's (the differential test holds them to it).
func EvaluateControl(t Tenant, cfg Config, c Control) ControlReport {
	e := newEvaluator(t, cfg)
	if c.Target.Kind == TargetApps && !c.Target.ConfiguredAzureManagement {
		e.targets = c.Target.Apps
	}
	lic := licenceStatus(t, c)
	rep := Report{Policies: make([]PolicyResult, len(t.Policies))}
	for i := range t.Policies {
		r := e.controlPolicy(&c, &t.Policies[i])
		if lic.Missing() {
			// Without the licence Entra does not apply the feature the control rests on (risk
			// conditions without P2), so no policy meets it, however it reads.
			r.Reasons = append(r.Reasons, Reason{Code: CodeLicenceMissing, Message: render(msgLicenceMissing, c.Licence.Product, c.Licence.Name)})
			r.Compliant, r.MeetsAllButState = false, false
		}
		rep.Policies[i] = r
	}
	verdictFor(&rep, c)
	if lic.Missing() {
		rep.Summary = licenceMissingSummary(c)
	}
	return ControlReport{ID: c.ID, Title: c.Title, CIS: slices.Clone(c.CIS), Guarded: c.Guarded, Licence: lic, Report: rep}
}

// verdictFor fills the tenant verdict of rep from its policies, as Evaluate does.
func verdictFor(rep *Report, c Control) {
	compliant, pending := -1, -1
	for i, r := range rep.Policies {
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
	near := -1
	if compliant < 0 && len(rep.Policies) > 0 {
		near = closest(rep.Policies)
		rep.Closest = rep.Policies[near].ID
	}
	what := strconv.Quote(c.Title)
	switch {
	case compliant >= 0:
		rep.Compliant, rep.Verdict = true, VerdictCompliant
		rep.Summary = "Compliant: enabled policy " + policyName(rep.Policies[compliant]) + " meets " + what
		if n := len(rep.Passing) - 1; n > 0 {
			rep.Summary += ", and " + plural(n, "other policy does", "other policies do") + " too"
		}
		rep.Summary += "."
	case pending >= 0:
		rep.Verdict = VerdictPendingEnforcement
		rep.Summary = "Pending enforcement: report-only policy " + policyName(rep.Policies[pending]) +
			" meets " + what + " but enforces nothing until an admin switches it on."
	case len(rep.Policies) == 0:
		rep.Verdict = VerdictNonCompliant
		rep.Summary = "Non-compliant: the tenant has no Conditional Access policy, so nothing meets " + what + "."
	default:
		rep.Verdict = VerdictNonCompliant
		p := rep.Policies[near]
		codes := distinctCodes(p.Reasons)
		rep.Summary = "Non-compliant: no enabled policy meets " + what + "; the closest, " + policyName(p) +
			", fails " + plural(len(codes), "check", "checks") + " (" + strings.Join(codes, ", ") + ")."
	}
}

// controlPolicy judges one policy against c. The order of the checks, and for azure-management-mfa
// each check itself, is that of Evaluate's policy: state, workload identities, users, target,
// conditions, unmodelled properties, grant, then session and exclusion reviews.
func (e *evaluator) controlPolicy(c *Control, p *Policy) PolicyResult {
	r := PolicyResult{ID: p.ID, DisplayName: p.DisplayName, State: p.State, MicrosoftManaged: p.MicrosoftManaged()}
	var rs []Reason
	noun := c.Target.Noun
	add := func(code, msg string) {
		// The shared sentences speak of Azure management; for another control they name its target.
		if noun != "" && noun != "Azure management" {
			msg = strings.ReplaceAll(msg, "Azure management", noun)
		}
		rs = append(rs, Reason{Code: code, Message: msg})
	}
	addUnknown := func(code, msg string, vals []UnknownValue) {
		rs = append(rs, Reason{Code: code, Message: msg, Unrecognised: vals})
	}

	// As Evaluate's policy: the state first, and a state caguard does not know fails this policy alone.
	stateOK := stateReason(p, add, addUnknown)
	stateReasons := len(rs)

	cond := &p.Conditions
	e.workload(cond.ClientApplications, add)
	e.controlUsers(c, cond.Users, add)
	e.controlTarget(c, cond.Applications, add)
	e.controlConditions(c, cond, add)
	unrecognised(cond.Unrecognised, addUnknown)
	switch {
	case c.Grant.isMFA():
		e.grant(p.GrantControls, add, addUnknown)
	case c.Grant != nil:
		e.implies(c.Grant, p.GrantControls, add, addUnknown)
	}
	if c.Session != nil {
		controlSession(c.Session, p.SessionControls, add)
	}
	// Every value caguard does not know fails the policy, for every control (fail closed).
	e.unknownReason(p, addUnknown)
	if e.cfg.RequireExclusionReview && len(rs) == stateReasons {
		e.exclusionReviews(cond.Users, add)
	}
	return finishResult(r, rs, stateReasons, stateOK)
}

// controlUsers is R3 to R7 for a control about All users, and for a control about roles R3 becomes:
// All users, or every role of the control. The exclusion rules (R4 to R7) are the same for both: any
// exclusion but break-glass accounts lets someone in scope skip the policy, and an excluded role may
// be held by an administrator of an included one.
func (e *evaluator) controlUsers(c *Control, u *Users, add func(code, msg string)) {
	if c.Users.All || len(c.Users.Roles) == 0 {
		e.users(u, add)
		return
	}
	if u == nil || !vocabUsers.has(u.IncludeUsers, "All") {
		var missing []string
		for _, role := range c.Users.Roles {
			if u == nil || !vocabIDs.has(u.IncludeRoles, role) {
				missing = append(missing, role)
			}
		}
		if len(missing) > 0 {
			scope := "no one"
			if u != nil {
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
				if len(parts) > 0 {
					scope = joinList(parts)
				}
			}
			add(CodeRolesNotCovered, render(msgRolesNotCovered, scope, joinList(missing)))
		}
	}
	if u == nil {
		return
	}
	// R4 to R7 with R3 answered above.
	e.users(u, func(code, msg string) {
		if code != CodeUsersNotAll {
			add(code, msg)
		}
	})
}

// controlTarget is R8 to R10 for the control's target.
func (e *evaluator) controlTarget(c *Control, a *Applications, add func(code, msg string)) {
	switch c.Target.Kind {
	case TargetApps:
		e.applications(a, add)
		return
	case TargetUserAction:
		var actions []string
		if a != nil {
			actions = a.IncludeUserActions
		}
		if !vocabUserActions.has(actions, c.Target.UserAction) {
			add(CodeUserActionNotTargeted, render(msgUserActionNotTargeted, c.Target.UserAction, bracketList(vocabUserActions, actions)))
		}
		// A user-action policy has no applications to exclude; an application filter still narrows it.
		if a != nil && filterSet(a.ApplicationFilter) {
			add(CodeAppFilterPresent, render(msgAppFilterPresent, filterText(a.ApplicationFilter)))
		}
		return
	}
	// All resources: include All, exclude nothing (every excluded app is a sign-in that skips).
	var include, exclude []string
	if a != nil {
		include, exclude = a.IncludeApplications, a.ExcludeApplications
	}
	if !vocabApps.has(include, "All") {
		add(CodeAppNotTargeted, render(msgAllResourcesNotTargeted, bracketList(vocabApps, include)))
	}
	var excluded []string
	vocabApps.eachToken(exclude, func(t string) bool {
		if !strings.EqualFold(t, "None") {
			excluded = append(excluded, appName(t))
		}
		return true
	})
	if len(excluded) > 0 {
		add(CodeAppExcluded, render(msgAllResourcesExcluded, joinList(excluded)))
	}
	if a != nil && filterSet(a.ApplicationFilter) {
		add(CodeAppFilterPresent, render(msgAppFilterPresent, filterText(a.ApplicationFilter)))
	}
}

// covers reports whether a policy's condition list applies to every value of want: the list is unset
// (every value), holds the all token (when the condition has one), or holds every wanted value.
// Unrecognised values never count. With want empty the policy must not narrow the condition at all.
func covers(v vocab, list []string, want []string, all string) bool {
	if v.empty(list) || (all != "" && v.has(list, all)) {
		return true
	}
	if len(want) == 0 {
		return false
	}
	for _, w := range want {
		if !v.has(list, w) {
			return false
		}
	}
	return true
}

// controlConditions is R11 to R16 for the control's conditions.
func (e *evaluator) controlConditions(c *Control, cond *Conditions, add func(code, msg string)) {
	cc := &c.Conditions
	// R11
	if !covers(vocabClientAppTypes, cond.ClientAppTypes, cc.ClientAppTypes, "all") {
		required := "all"
		if len(cc.ClientAppTypes) > 0 {
			required = strings.Join(cc.ClientAppTypes, " and ")
		}
		add(CodeClientAppTypesNarrowed, render(msgClientAppTypesNotCovered, bracketList(vocabClientAppTypes, cond.ClientAppTypes), required))
	}
	// R12 to R14 as Evaluate reads them: no control is about some platforms, locations or devices.
	if pl := cond.Platforms; pl != nil && narrowed(vocabPlatforms, pl.IncludePlatforms, pl.ExcludePlatforms, "all") {
		add(CodePlatformsNarrowed, render(msgPlatformsNarrowed,
			bracketList(vocabPlatforms, pl.IncludePlatforms), bracketList(vocabPlatforms, pl.ExcludePlatforms)))
	}
	if l := cond.Locations; l != nil && narrowed(vocabLocations, l.IncludeLocations, l.ExcludeLocations, "All") {
		add(CodeLocationsNarrowed, render(msgLocationsNarrowed,
			bracketList(vocabLocations, l.IncludeLocations), bracketList(vocabLocations, l.ExcludeLocations)))
	}
	if d := cond.Devices; d != nil {
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
	// R15: a level list the control is not about must be empty; one it is about must cover its levels.
	var levels []string
	anyWanted := false
	for _, l := range [...]struct {
		name string
		v    vocab
		list []string
		want []string
	}{
		{"userRiskLevels", vocabRiskLevels, cond.UserRiskLevels, cc.UserRiskLevels},
		{"signInRiskLevels", vocabRiskLevels, cond.SignInRiskLevels, cc.SignInRiskLevels},
		{"servicePrincipalRiskLevels", vocabRiskLevels, cond.ServicePrincipalRiskLevels, nil},
		{"insiderRiskLevels", vocabInsiderRisk, cond.InsiderRiskLevels, nil},
	} {
		if !covers(l.v, l.list, l.want, "") {
			s := l.name + " " + bracketList(l.v, l.list)
			if len(l.want) > 0 {
				anyWanted = true
				s += " (must include " + strings.Join(l.want, " and ") + ")"
			}
			levels = append(levels, s)
		}
	}
	if len(levels) > 0 {
		msg := msgRiskConditionPresent
		if anyWanted {
			msg = msgRiskLevelsNotCovered
		}
		add(CodeRiskConditionPresent, render(msg, joinList(levels)))
	}
	// R16
	var methods []string
	if f := cond.AuthenticationFlows; f != nil {
		methods = f.TransferMethods
	}
	if !covers(vocabTransferMethods, methods, cc.TransferMethods, "") {
		if len(cc.TransferMethods) == 0 {
			add(CodeAuthFlowConditionPresent, render(msgAuthFlowConditionPresent, bracketList(vocabTransferMethods, methods)))
		} else {
			add(CodeAuthFlowConditionPresent, render(msgTransferMethodsNotCovered, bracketList(vocabTransferMethods, methods),
				strings.Join(cc.TransferMethods, " and ")))
		}
	}
}

// grantItem is one control of a grant and the atoms it proves.
type grantItem struct {
	name  string
	atoms []string
}

// implies is R17 and R18 for a requirement other than MFA: the grant must meet every clause, with AND
// through any one control, with OR (or no operator, read as the weaker OR) through every alternative.
func (e *evaluator) implies(req *GrantRequirement, g *GrantControls, add func(code, msg string), addUnknown func(code, msg string, vals []UnknownValue)) {
	if g != nil {
		unrecognised(g.Unrecognised, addUnknown)
	}
	if g == nil || (vocabBuiltInControls.empty(g.BuiltInControls) && vocabIDs.empty(g.CustomAuthenticationFactors) &&
		vocabIDs.empty(g.TermsOfUse) && !strengthSet(g.AuthenticationStrength)) {
		add(CodeNoGrantControls, msgNoGrantControls)
		return
	}
	var items []grantItem
	vocabBuiltInControls.eachToken(g.BuiltInControls, func(t string) bool {
		it := grantItem{name: vocabBuiltInControls.mark(vocabBuiltInControls.canon(t))}
		if vocabBuiltInControls.recognised(t) && !strings.EqualFold(t, "unknownFutureValue") {
			switch canon := vocabBuiltInControls.canon(t); canon {
			case "mfa", "block", "compliantDevice", "domainJoinedDevice", "passwordChange":
				it.atoms = []string{canon}
			}
		}
		items = append(items, it)
		return true
	})
	vocabIDs.eachToken(g.TermsOfUse, func(t string) bool {
		items = append(items, grantItem{name: "terms of use " + t})
		return true
	})
	vocabIDs.eachToken(g.CustomAuthenticationFactors, func(t string) bool {
		it := grantItem{name: "custom control " + t}
		if e.cfg.CustomControlsCountAsMFA {
			it.atoms = []string{AtomMFA}
		}
		items = append(items, it)
		return true
	})
	wantsPhish := slices.ContainsFunc(req.AllOf, func(cl []string) bool { return slices.Contains(cl, AtomPhishingResistant) })
	// notes say why a strength proves less than it might; they are given only when a clause fails.
	var notes []Reason
	note := func(code, msg string) { notes = append(notes, Reason{Code: code, Message: msg}) }
	if strengthSet(g.AuthenticationStrength) {
		outcome, sname, requirement, _ := e.strength(g.AuthenticationStrength)
		it := grantItem{name: "authentication strength " + sname}
		switch outcome {
		case strengthUnresolved:
			note(CodeAuthStrengthUnresolved, render(msgAuthStrengthUnresolved, sname))
		case strengthMFA:
			it.atoms = []string{AtomMFA}
			if e.phishingResistant(g.AuthenticationStrength) {
				it.atoms = append(it.atoms, AtomPhishingResistant)
			} else if wantsPhish {
				note(CodeWeakAuthStrength, render(msgStrengthNotPhishingResist, sname))
			}
		default:
			note(CodeWeakAuthStrength, render(msgWeakAuthStrength, sname, requirement))
		}
		items = append(items, it)
	}
	and := strings.EqualFold(strings.TrimSpace(g.Operator), "AND")
	op := strings.ToUpper(strings.TrimSpace(g.Operator))
	if op == "" {
		op = "missing"
	}
	var failed []Reason
	fail := func(code, msg string) { failed = append(failed, Reason{Code: code, Message: msg}) }
	for _, clause := range req.AllOf {
		meets := func(it grantItem) bool {
			return slices.ContainsFunc(it.atoms, func(a string) bool { return slices.Contains(clause, a) })
		}
		if and || len(items) == 1 {
			if !slices.ContainsFunc(items, meets) {
				names := make([]string, len(items))
				for i, it := range items {
					names[i] = it.name
				}
				fail(CodeRequirementNotImplied, render(msgRequirementNotImplied, joinList(names), op, clauseText(clause)))
			}
			continue
		}
		var alts []string
		for _, it := range items {
			if !meets(it) {
				alts = append(alts, it.name)
			}
		}
		if len(alts) > 0 {
			fail(CodeRequirementNotImplied, render(msgRequirementAlternative, joinList(alts), op, clauseText(clause)))
		}
	}
	if len(failed) > 0 {
		for _, r := range append(notes, failed...) {
			add(r.Code, r.Message)
		}
	}
}

// phishingResistant reports whether a strength that satisfies MFA is phishing-resistant: the built-in
// one, or one whose allowed combinations (its own, or the tenant's definition's) are all among the
// built-in one's.
func (e *evaluator) phishingResistant(s *AuthenticationStrength) bool {
	if idKey(s.ID) == PhishingResistantStrengthID {
		return true
	}
	combos := s.AllowedCombinations
	if vocabIDs.empty(combos) {
		if def, ok := e.strengths[idKey(s.ID)]; ok {
			combos = def.AllowedCombinations
		}
	}
	if vocabIDs.empty(combos) {
		return false
	}
	return vocabIDs.eachToken(combos, func(t string) bool {
		return slices.ContainsFunc(phishingResistantCombinations, func(c string) bool { return strings.EqualFold(c, t) })
	})
}

var atomNames = map[string]string{
	AtomMFA:                "MFA",
	AtomPhishingResistant:  "phishing-resistant MFA",
	AtomBlock:              "block",
	AtomCompliantDevice:    "a compliant device",
	AtomDomainJoinedDevice: "a hybrid-joined device",
	AtomPasswordChange:     "a password change",
}

func clauseText(clause []string) string {
	names := make([]string, len(clause))
	for i, a := range clause {
		names[i] = atomNames[a]
	}
	return strings.Join(names, " or ")
}

// controlSession is the session requirement (R19 does not apply: these controls are about sessions).
func controlSession(req *SessionRequirement, s *SessionControls, add func(code, msg string)) {
	if req.SignInFrequencyMaxHours > 0 {
		var f *SignInFrequency
		if s != nil {
			f = s.SignInFrequency
		}
		if ok, text := frequencyMet(f, req.SignInFrequencyMaxHours); !ok {
			add(CodeSignInFrequencyNotMet, render(msgSignInFrequencyNotMet, text, strconv.Itoa(req.SignInFrequencyMaxHours)))
		}
	}
	if req.PersistentBrowserNever {
		var pb *EnabledSetting
		if s != nil {
			pb = s.PersistentBrowser
		}
		if pb == nil || !pb.IsEnabled || canonWord(pb.Mode, "always", "never") != "never" {
			text := "not configured"
			if pb != nil {
				text = "enabled " + strconv.FormatBool(pb.IsEnabled) + ", mode " + quoteOrUnset(pb.Mode)
			}
			add(CodePersistentBrowserNotNever, render(msgPersistentBrowserNotNever, text))
		}
	}
}

// frequencyMet reads a sign-in frequency: every time, or time-based in hours or days within max.
// Anything it does not recognise (a type, an interval, an authentication type) does not meet it.
func frequencyMet(f *SignInFrequency, max int) (bool, string) {
	if f == nil || !f.IsEnabled {
		return false, "not enabled"
	}
	auth := canonWord(f.AuthenticationType, "primaryAndSecondaryAuthentication", "secondaryAuthentication")
	interval := canonWord(f.FrequencyInterval, "timeBased", "everyTime")
	unit := canonWord(f.Type, "days", "hours")
	text := "interval " + quoteOrUnset(f.FrequencyInterval) + ", " + strconv.Itoa(f.Value) + " " + quoteOrUnset(f.Type) +
		", authentication type " + quoteOrUnset(f.AuthenticationType)
	// An unset authentication type is Graph's default, primaryAndSecondaryAuthentication.
	if auth != "" && auth != "primaryAndSecondaryAuthentication" {
		return false, text
	}
	switch interval {
	case "everyTime":
		return true, text
	case "timeBased", "":
	default:
		return false, text
	}
	hours := 0
	switch unit {
	case "hours":
		hours = f.Value
	case "days":
		hours = f.Value * 24
	default:
		return false, text
	}
	return hours > 0 && hours <= max, text
}

func quoteOrUnset(s string) string {
	if strings.TrimSpace(s) == "" {
		return "unset"
	}
	return strconv.Quote(strings.TrimSpace(s))
}
