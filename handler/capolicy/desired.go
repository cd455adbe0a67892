package capolicy

import (
	"strconv"
	"strings"
)

// Desired returns the policy caguard owns, in normal form: named cfg.ManagedName(), report-only,
// all users except the break-glass users and groups, the target apps, every client app type, and an
// OR grant of mfa alone. Nothing else is set, so the policy meets every rule but R1, and enabling it
// makes the tenant compliant. Remediation writes it in report-only; switching it on is a human call.
func Desired(cfg Config) Policy {
	p := Policy{
		DisplayName: cfg.ManagedName(),
		State:       StateReportOnly,
		Conditions: Conditions{
			Users: &Users{
				IncludeUsers:  []string{"All"},
				ExcludeUsers:  cfg.BreakGlassUserIDs,
				ExcludeGroups: cfg.BreakGlassGroupIDs,
			},
			Applications:   &Applications{IncludeApplications: cfg.Targets()},
			ClientAppTypes: []string{"all"},
		},
		GrantControls: &GrantControls{Operator: "OR", BuiltInControls: []string{"mfa"}},
	}
	return Normalize(p) // copies every list, so the result shares nothing with cfg
}

// Difference is one field where an actual policy departs from the desired one. Field is the dotted
// Graph path; Want and Got are compact renderings ("[]" for an empty list, "(not set)" for an absent
// value).
type Difference struct {
	Field string `json:"field"`
	Want  string `json:"want"`
	Got   string `json:"got"`
}

// field is one comparable leaf of a policy: its Graph path and how to render it.
type field struct {
	path   string
	render func(p *Policy) string
}

// Diff compares the normal forms of desired and actual, field by field, and returns the differences
// in a fixed order. It ignores id, templateId, createdDateTime and modifiedDateTime, which Graph
// owns; state and displayName count.
func Diff(desired, actual Policy) []Difference {
	d, a := Normalize(desired), Normalize(actual)
	var out []Difference
	for _, f := range fields() {
		want, got := f.render(&d), f.render(&a)
		if want != got {
			out = append(out, Difference{Field: f.path, Want: want, Got: got})
		}
	}
	return out
}

// TopLevelFields returns the distinct top-level Graph properties that diffs touch, in the order
// state, displayName, conditions, grantControls, sessionControls: what a minimal PATCH must send.
// Graph replaces a complex property as a whole, so a PATCH sends each named property complete.
func TopLevelFields(diffs []Difference) []string {
	var out []string
	for _, top := range [...]string{"state", "displayName", "conditions", "grantControls", "sessionControls"} {
		for _, d := range diffs {
			head, _, _ := strings.Cut(d.Field, ".")
			if head == top {
				out = append(out, top)
				break
			}
		}
	}
	return out
}

const notSet = "(not set)"

// renderList renders a list as "[a, b]", quoting an item that would otherwise read as two.
func renderList(list []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range list {
		if i > 0 {
			b.WriteString(", ")
		}
		if s == "" || strings.ContainsAny(s, ",[]\"") {
			s = strconv.Quote(s)
		}
		b.WriteString(s)
	}
	b.WriteByte(']')
	return b.String()
}

func renderFilter(f *Filter) string {
	if f == nil {
		return notSet
	}
	return f.Mode + ": " + f.Rule
}

func renderGuests(g *GuestsOrExternalUsers) string {
	if g == nil {
		return notSet
	}
	s := "types " + renderList(g.GuestOrExternalUserTypes)
	if t := g.ExternalTenants; t != nil {
		s += "; tenants " + t.MembershipKind
		if len(t.Members) > 0 {
			s += " " + renderList(t.Members)
		}
	}
	return s
}

func renderStrength(s *AuthenticationStrength) string {
	switch {
	case s == nil:
		return notSet
	case s.ID != "":
		return s.ID // a reference: the definition lives elsewhere
	}
	return "requirementsSatisfied " + s.RequirementsSatisfied + ", combinations " + renderList(s.AllowedCombinations)
}

func renderEnabled(e *EnabledSetting) string {
	if e == nil {
		return notSet
	}
	s := "enabled"
	if e.Mode != "" {
		s += ", mode " + e.Mode
	}
	if e.Type != "" {
		s += ", type " + e.Type
	}
	return s
}

func renderFrequency(f *SignInFrequency) string {
	if f == nil {
		return notSet
	}
	s := "enabled"
	if f.Value != 0 || f.Type != "" {
		s += ", every " + strconv.Itoa(f.Value) + " " + f.Type
	}
	if f.AuthenticationType != "" {
		s += ", " + f.AuthenticationType
	}
	if f.FrequencyInterval != "" {
		s += ", " + f.FrequencyInterval
	}
	return s
}

// Accessors that tolerate absent sections, so the field table stays one line per field.
func users(p *Policy) *Users {
	if p.Conditions.Users == nil {
		return &Users{}
	}
	return p.Conditions.Users
}

func apps(p *Policy) *Applications {
	if p.Conditions.Applications == nil {
		return &Applications{}
	}
	return p.Conditions.Applications
}

func clientApps(p *Policy) *ClientApplications {
	if p.Conditions.ClientApplications == nil {
		return &ClientApplications{}
	}
	return p.Conditions.ClientApplications
}

func platforms(p *Policy) *Platforms {
	if p.Conditions.Platforms == nil {
		return &Platforms{}
	}
	return p.Conditions.Platforms
}

func locations(p *Policy) *Locations {
	if p.Conditions.Locations == nil {
		return &Locations{}
	}
	return p.Conditions.Locations
}

func devices(p *Policy) *Devices {
	if p.Conditions.Devices == nil {
		return &Devices{}
	}
	return p.Conditions.Devices
}

func flows(p *Policy) *AuthenticationFlows {
	if p.Conditions.AuthenticationFlows == nil {
		return &AuthenticationFlows{}
	}
	return p.Conditions.AuthenticationFlows
}

func grants(p *Policy) *GrantControls {
	if p.GrantControls == nil {
		return &GrantControls{}
	}
	return p.GrantControls
}

func sessions(p *Policy) *SessionControls {
	if p.SessionControls == nil {
		return &SessionControls{}
	}
	return p.SessionControls
}

// unknownStrings renders unrecognised properties as path=value, so Diff sees a changed value too.
func unknownStrings(vs []UnknownValue) []string {
	if len(vs) == 0 {
		return nil
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Field + "=" + v.Value
	}
	return out
}

func orNotSet(s string) string {
	if s == "" {
		return notSet
	}
	return s
}

// fields lists every leaf Diff compares, in Graph's order.
func fields() []field {
	list := func(path string, get func(p *Policy) []string) field {
		return field{path, func(p *Policy) string { return renderList(get(p)) }}
	}
	return []field{
		{"state", func(p *Policy) string {
			// "unknown" is how a Policy marshals StateUnknown, so it reads back as the same state.
			if p.State == StateUnknown && p.UnrecognisedState != "" && !strings.EqualFold(p.UnrecognisedState, StateUnknown.String()) {
				return strconv.Quote(p.UnrecognisedState) + notRecognised
			}
			return p.State.String()
		}},
		{"displayName", func(p *Policy) string { return strconv.Quote(p.DisplayName) }},
		list("conditions.users.includeUsers", func(p *Policy) []string { return users(p).IncludeUsers }),
		list("conditions.users.excludeUsers", func(p *Policy) []string { return users(p).ExcludeUsers }),
		list("conditions.users.includeGroups", func(p *Policy) []string { return users(p).IncludeGroups }),
		list("conditions.users.excludeGroups", func(p *Policy) []string { return users(p).ExcludeGroups }),
		list("conditions.users.includeRoles", func(p *Policy) []string { return users(p).IncludeRoles }),
		list("conditions.users.excludeRoles", func(p *Policy) []string { return users(p).ExcludeRoles }),
		{"conditions.users.includeGuestsOrExternalUsers", func(p *Policy) string { return renderGuests(users(p).IncludeGuestsOrExternalUsers) }},
		{"conditions.users.excludeGuestsOrExternalUsers", func(p *Policy) string { return renderGuests(users(p).ExcludeGuestsOrExternalUsers) }},
		list("conditions.applications.includeApplications", func(p *Policy) []string { return apps(p).IncludeApplications }),
		list("conditions.applications.excludeApplications", func(p *Policy) []string { return apps(p).ExcludeApplications }),
		list("conditions.applications.includeUserActions", func(p *Policy) []string { return apps(p).IncludeUserActions }),
		list("conditions.applications.includeAuthenticationContextClassReferences", func(p *Policy) []string {
			return apps(p).IncludeAuthenticationContextClassReferences
		}),
		{"conditions.applications.applicationFilter", func(p *Policy) string { return renderFilter(apps(p).ApplicationFilter) }},
		list("conditions.clientApplications.includeServicePrincipals", func(p *Policy) []string { return clientApps(p).IncludeServicePrincipals }),
		list("conditions.clientApplications.excludeServicePrincipals", func(p *Policy) []string { return clientApps(p).ExcludeServicePrincipals }),
		{"conditions.clientApplications.servicePrincipalFilter", func(p *Policy) string { return renderFilter(clientApps(p).ServicePrincipalFilter) }},
		list("conditions.clientApplications.includeAgentIdServicePrincipals", func(p *Policy) []string {
			return clientApps(p).IncludeAgentIDServicePrincipals
		}),
		list("conditions.clientApplications.excludeAgentIdServicePrincipals", func(p *Policy) []string {
			return clientApps(p).ExcludeAgentIDServicePrincipals
		}),
		{"conditions.clientApplications.agentIdServicePrincipalFilter", func(p *Policy) string {
			return renderFilter(clientApps(p).AgentIDServicePrincipalFilter)
		}},
		list("conditions.clientAppTypes", func(p *Policy) []string { return p.Conditions.ClientAppTypes }),
		list("conditions.platforms.includePlatforms", func(p *Policy) []string { return platforms(p).IncludePlatforms }),
		list("conditions.platforms.excludePlatforms", func(p *Policy) []string { return platforms(p).ExcludePlatforms }),
		list("conditions.locations.includeLocations", func(p *Policy) []string { return locations(p).IncludeLocations }),
		list("conditions.locations.excludeLocations", func(p *Policy) []string { return locations(p).ExcludeLocations }),
		{"conditions.devices.deviceFilter", func(p *Policy) string { return renderFilter(devices(p).DeviceFilter) }},
		list("conditions.devices.includeDevices", func(p *Policy) []string { return devices(p).IncludeDevices }),
		list("conditions.devices.excludeDevices", func(p *Policy) []string { return devices(p).ExcludeDevices }),
		list("conditions.userRiskLevels", func(p *Policy) []string { return p.Conditions.UserRiskLevels }),
		list("conditions.signInRiskLevels", func(p *Policy) []string { return p.Conditions.SignInRiskLevels }),
		list("conditions.servicePrincipalRiskLevels", func(p *Policy) []string { return p.Conditions.ServicePrincipalRiskLevels }),
		list("conditions.insiderRiskLevels", func(p *Policy) []string { return p.Conditions.InsiderRiskLevels }),
		list("conditions.authenticationFlows.transferMethods", func(p *Policy) []string { return flows(p).TransferMethods }),
		// Properties the model does not know cannot be compared one by one; their presence is the
		// difference.
		list("conditions.unrecognised", func(p *Policy) []string { return unknownStrings(p.Conditions.Unrecognised) }),
		{"grantControls.operator", func(p *Policy) string { return orNotSet(grants(p).Operator) }},
		list("grantControls.builtInControls", func(p *Policy) []string { return grants(p).BuiltInControls }),
		list("grantControls.customAuthenticationFactors", func(p *Policy) []string { return grants(p).CustomAuthenticationFactors }),
		list("grantControls.termsOfUse", func(p *Policy) []string { return grants(p).TermsOfUse }),
		{"grantControls.authenticationStrength", func(p *Policy) string { return renderStrength(grants(p).AuthenticationStrength) }},
		list("grantControls.unrecognised", func(p *Policy) []string { return unknownStrings(grants(p).Unrecognised) }),
		{"sessionControls.disableResilienceDefaults", func(p *Policy) string {
			if sessions(p).DisableResilienceDefaults == nil {
				return notSet
			}
			return "true" // Normalize keeps only true
		}},
		{"sessionControls.applicationEnforcedRestrictions", func(p *Policy) string {
			return renderEnabled(sessions(p).ApplicationEnforcedRestrictions)
		}},
		{"sessionControls.cloudAppSecurity", func(p *Policy) string { return renderEnabled(sessions(p).CloudAppSecurity) }},
		{"sessionControls.persistentBrowser", func(p *Policy) string { return renderEnabled(sessions(p).PersistentBrowser) }},
		{"sessionControls.signInFrequency", func(p *Policy) string { return renderFrequency(sessions(p).SignInFrequency) }},
	}
}
