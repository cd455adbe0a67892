package capolicy

import "slices"

// ManagedNameFor returns the display name of the policy caguard owns for control c: cfg.ManagedName()
// for azure-management-mfa, as always, and "caguard: <title>" for every other control, so that each
// control's managed policy has a name of its own and an administrator can tell them apart.
func ManagedNameFor(cfg Config, c Control) string {
	if c.ID == ControlAzureManagementMFA {
		return cfg.ManagedName()
	}
	return "caguard: " + c.Title
}

// DesiredFor returns the policy caguard owns for control c, in normal form and report-only, derived
// from c's data alone: for azure-management-mfa it is Desired(cfg) exactly. Otherwise:
//   - users: All users, or the control's roles; the break-glass users and groups excluded;
//   - target: the control's apps (the configured Azure management apps, or its app ids or groups),
//     All resources, or its user action;
//   - conditions: the control's risk levels and authentication flows; client app types "all", except
//     for a control whose grant is block, which gets exactly its own client app types: requiring MFA
//     of more sign-ins than the control asks is stricter, blocking more of them is an outage;
//   - grant: each clause of AllOf. A clause with alternatives (compliant or hybrid-joined device)
//     is written as its alternatives under OR only when it is the sole clause; with more clauses the
//     operator is AND and a clause is written as its first atom, since AND of alternatives would
//     demand all of them. The phishing-resistant atom is the built-in strength
//     PhishingResistantStrengthID;
//   - session: sign-in frequency (time-based, in hours, for primary and secondary authentication) and
//     persistent browser "never", as the control requires.
//
// Graph's documented constraints hold for every catalogue control (the desired test checks them):
// passwordChange goes with mfa under AND, on All resources, with user risk levels and no other
// condition; block stands alone; a strength is never combined with the mfa control.
func DesiredFor(cfg Config, c Control) Policy {
	if c.ID == ControlAzureManagementMFA {
		return Desired(cfg)
	}
	users := &Users{ExcludeUsers: cfg.BreakGlassUserIDs, ExcludeGroups: cfg.BreakGlassGroupIDs}
	if c.Users.All || len(c.Users.Roles) == 0 {
		users.IncludeUsers = []string{"All"}
	} else {
		users.IncludeRoles = slices.Clone(c.Users.Roles)
	}
	apps := &Applications{}
	switch c.Target.Kind {
	case TargetApps:
		if c.Target.ConfiguredAzureManagement {
			apps.IncludeApplications = cfg.Targets()
		} else {
			apps.IncludeApplications = slices.Clone(c.Target.Apps)
		}
	case TargetUserAction:
		apps.IncludeUserActions = []string{c.Target.UserAction}
	default:
		apps.IncludeApplications = []string{"All"}
	}
	p := Policy{
		DisplayName: ManagedNameFor(cfg, c),
		State:       StateReportOnly,
		Conditions: Conditions{
			Users:            users,
			Applications:     apps,
			ClientAppTypes:   []string{"all"},
			UserRiskLevels:   slices.Clone(c.Conditions.UserRiskLevels),
			SignInRiskLevels: slices.Clone(c.Conditions.SignInRiskLevels),
		},
	}
	if c.Blocks() && len(c.Conditions.ClientAppTypes) > 0 {
		p.Conditions.ClientAppTypes = slices.Clone(c.Conditions.ClientAppTypes)
	}
	if len(c.Conditions.TransferMethods) > 0 {
		p.Conditions.AuthenticationFlows = &AuthenticationFlows{TransferMethods: slices.Clone(c.Conditions.TransferMethods)}
	}
	if c.Grant != nil && len(c.Grant.AllOf) > 0 {
		p.GrantControls = desiredGrant(c.Grant)
	}
	if s := c.Session; s != nil {
		sc := &SessionControls{}
		if s.SignInFrequencyMaxHours > 0 {
			sc.SignInFrequency = &SignInFrequency{IsEnabled: true, Value: s.SignInFrequencyMaxHours, Type: "hours",
				AuthenticationType: "primaryAndSecondaryAuthentication", FrequencyInterval: "timeBased"}
		}
		if s.PersistentBrowserNever {
			sc.PersistentBrowser = &EnabledSetting{IsEnabled: true, Mode: "never"}
		}
		p.SessionControls = sc
	}
	return Normalize(p)
}

// desiredGrant writes a requirement as grant controls (see DesiredFor).
func desiredGrant(req *GrantRequirement) *GrantControls {
	g := &GrantControls{Operator: "OR"}
	write := func(atom string) {
		if atom == AtomPhishingResistant {
			g.AuthenticationStrength = &AuthenticationStrength{ID: PhishingResistantStrengthID}
			return
		}
		if !slices.Contains(g.BuiltInControls, atom) {
			g.BuiltInControls = append(g.BuiltInControls, atom)
		}
	}
	if len(req.AllOf) == 1 {
		for _, atom := range req.AllOf[0] {
			write(atom)
		}
		return g
	}
	g.Operator = "AND"
	for _, clause := range req.AllOf {
		if len(clause) > 0 {
			write(clause[0])
		}
	}
	return g
}

// Blocks reports whether the control's grant is block: caguard never writes such a policy enforced.
func (c Control) Blocks() bool {
	return c.Grant != nil && slices.ContainsFunc(c.Grant.AllOf, func(cl []string) bool { return slices.Contains(cl, AtomBlock) })
}
