package graph

import (
	"errors"
	"fmt"
	"strings"
	"time"

	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	"github.com/microsoftgraph/msgraph-sdk-go/models"

	"github.com/caguard/caguard/handler/capolicy"
)

// Mapping between msgraph-sdk-go models and capolicy. SDK enums never leave this file: they are
// turned into Graph's spellings, and flag enums (sent by Graph as one comma-separated string) into
// one string per member.
//
// Graph v1.0 answers a member of an evolvable enum that the client does not know as
// "unknownFutureValue" unless the request opts in with "Prefer: include-unknown-enum-members", which
// this package never sends. That covers only members added after the enum's sentinel; a value the
// SDK does not know still becomes the enum's zero value or drops the property. So policies are read
// as raw JSON (policyFromJSON); only the answer to a create goes through the SDK's model.

// Policy properties UpdatePolicy can write.
const (
	FieldDisplayName     = "displayName"
	FieldState           = "state"
	FieldConditions      = "conditions"
	FieldGrantControls   = "grantControls"
	FieldSessionControls = "sessionControls"
)

func writableField(f string) bool {
	switch f {
	case FieldDisplayName, FieldState, FieldConditions, FieldGrantControls, FieldSessionControls:
		return true
	}
	return false
}

// policyFromJSON parses a policy as Graph answered it. A missing or unknown state is an error, as
// it is for policyFromSDK: the policy must not be evaluated, and must never read as enabled.
func policyFromJSON(raw []byte) (capolicy.Policy, error) {
	p, err := capolicy.ParsePolicy(raw)
	if err != nil {
		return capolicy.Policy{}, err
	}
	if p.State == capolicy.StateUnknown {
		return p, fmt.Errorf("policy %s has no state (absent or not a known value)", p.ID)
	}
	return p, nil
}

// policyFromSDK converts a policy the SDK decoded (the answer to a create). A missing state is an error: the SDK's enum
// would read it as "enabled".
func policyFromSDK(m models.ConditionalAccessPolicyable) (capolicy.Policy, error) {
	var p capolicy.Policy
	if m == nil {
		return p, errors.New("graph answered no policy")
	}
	p.ID = deref(m.GetId())
	p.DisplayName = deref(m.GetDisplayName())
	st := m.GetState()
	if st == nil {
		return p, fmt.Errorf("policy %s has no state (absent or not a known value)", p.ID)
	}
	state, err := capolicy.ParseState(st.String())
	if err != nil {
		return p, fmt.Errorf("policy %s: %w", p.ID, err)
	}
	p.State = state
	p.TemplateID = deref(m.GetTemplateId())
	p.CreatedDateTime = timeString(m.GetCreatedDateTime())
	p.ModifiedDateTime = timeString(m.GetModifiedDateTime())
	p.Conditions = conditionsFromSDK(m.GetConditions())
	p.GrantControls = grantFromSDK(m.GetGrantControls())
	p.SessionControls = sessionFromSDK(m.GetSessionControls())
	return p, nil
}

func timeString(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func conditionsFromSDK(c models.ConditionalAccessConditionSetable) capolicy.Conditions {
	var out capolicy.Conditions
	if c == nil {
		return out
	}
	if u := c.GetUsers(); u != nil {
		out.Users = &capolicy.Users{
			IncludeUsers:                 u.GetIncludeUsers(),
			ExcludeUsers:                 u.GetExcludeUsers(),
			IncludeGroups:                u.GetIncludeGroups(),
			ExcludeGroups:                u.GetExcludeGroups(),
			IncludeRoles:                 u.GetIncludeRoles(),
			ExcludeRoles:                 u.GetExcludeRoles(),
			IncludeGuestsOrExternalUsers: guestsFromSDK(u.GetIncludeGuestsOrExternalUsers()),
			ExcludeGuestsOrExternalUsers: guestsFromSDK(u.GetExcludeGuestsOrExternalUsers()),
		}
	}
	if a := c.GetApplications(); a != nil {
		out.Applications = &capolicy.Applications{
			IncludeApplications:                         a.GetIncludeApplications(),
			ExcludeApplications:                         a.GetExcludeApplications(),
			IncludeUserActions:                          a.GetIncludeUserActions(),
			IncludeAuthenticationContextClassReferences: a.GetIncludeAuthenticationContextClassReferences(),
			ApplicationFilter:                           filterFromSDK(a.GetApplicationFilter()),
		}
	}
	if ca := c.GetClientApplications(); ca != nil {
		out.ClientApplications = &capolicy.ClientApplications{
			IncludeServicePrincipals: ca.GetIncludeServicePrincipals(),
			ExcludeServicePrincipals: ca.GetExcludeServicePrincipals(),
			ServicePrincipalFilter:   filterFromSDK(ca.GetServicePrincipalFilter()),
		}
	}
	out.ClientAppTypes = enumStrings(c.GetClientAppTypes())
	if pl := c.GetPlatforms(); pl != nil {
		out.Platforms = &capolicy.Platforms{
			IncludePlatforms: enumStrings(pl.GetIncludePlatforms()),
			ExcludePlatforms: enumStrings(pl.GetExcludePlatforms()),
		}
	}
	if l := c.GetLocations(); l != nil {
		out.Locations = &capolicy.Locations{
			IncludeLocations: l.GetIncludeLocations(),
			ExcludeLocations: l.GetExcludeLocations(),
		}
	}
	if d := c.GetDevices(); d != nil {
		out.Devices = &capolicy.Devices{DeviceFilter: filterFromSDK(d.GetDeviceFilter())}
	}
	out.UserRiskLevels = enumStrings(c.GetUserRiskLevels())
	out.SignInRiskLevels = enumStrings(c.GetSignInRiskLevels())
	out.ServicePrincipalRiskLevels = enumStrings(c.GetServicePrincipalRiskLevels())
	out.InsiderRiskLevels = flagStrings(c.GetInsiderRiskLevels())
	if af := c.GetAuthenticationFlows(); af != nil {
		out.AuthenticationFlows = &capolicy.AuthenticationFlows{TransferMethods: flagStrings(af.GetTransferMethods())}
	}
	return out
}

func guestsFromSDK(g models.ConditionalAccessGuestsOrExternalUsersable) *capolicy.GuestsOrExternalUsers {
	if g == nil {
		return nil
	}
	out := &capolicy.GuestsOrExternalUsers{GuestOrExternalUserTypes: flagStrings(g.GetGuestOrExternalUserTypes())}
	if et := g.GetExternalTenants(); et != nil {
		t := &capolicy.ExternalTenants{}
		if k := et.GetMembershipKind(); k != nil {
			t.MembershipKind = k.String()
		}
		if en, ok := et.(models.ConditionalAccessEnumeratedExternalTenantsable); ok {
			t.Members = en.GetMembers()
		}
		out.ExternalTenants = t
	}
	return out
}

func filterFromSDK(f models.ConditionalAccessFilterable) *capolicy.Filter {
	if f == nil {
		return nil
	}
	out := &capolicy.Filter{Rule: deref(f.GetRule())}
	if m := f.GetMode(); m != nil {
		out.Mode = m.String()
	}
	return out
}

func grantFromSDK(g models.ConditionalAccessGrantControlsable) *capolicy.GrantControls {
	if g == nil {
		return nil
	}
	return &capolicy.GrantControls{
		Operator:                    deref(g.GetOperator()),
		BuiltInControls:             enumStrings(g.GetBuiltInControls()),
		CustomAuthenticationFactors: g.GetCustomAuthenticationFactors(),
		TermsOfUse:                  g.GetTermsOfUse(),
		AuthenticationStrength:      strengthFromSDK(g.GetAuthenticationStrength()),
	}
}

func strengthFromSDK(s models.AuthenticationStrengthPolicyable) *capolicy.AuthenticationStrength {
	if s == nil {
		return nil
	}
	out := &capolicy.AuthenticationStrength{
		ID:                    deref(s.GetId()),
		DisplayName:           deref(s.GetDisplayName()),
		RequirementsSatisfied: strings.Join(flagStrings(s.GetRequirementsSatisfied()), ","),
	}
	if t := s.GetPolicyType(); t != nil {
		out.PolicyType = t.String()
	}
	for _, c := range s.GetAllowedCombinations() {
		out.AllowedCombinations = append(out.AllowedCombinations, c.String())
	}
	return out
}

func sessionFromSDK(s models.ConditionalAccessSessionControlsable) *capolicy.SessionControls {
	if s == nil {
		return nil
	}
	out := &capolicy.SessionControls{DisableResilienceDefaults: s.GetDisableResilienceDefaults()}
	if a := s.GetApplicationEnforcedRestrictions(); a != nil {
		out.ApplicationEnforcedRestrictions = &capolicy.EnabledSetting{IsEnabled: derefBool(a.GetIsEnabled())}
	}
	if c := s.GetCloudAppSecurity(); c != nil {
		out.CloudAppSecurity = &capolicy.EnabledSetting{IsEnabled: derefBool(c.GetIsEnabled())}
		if t := c.GetCloudAppSecurityType(); t != nil {
			out.CloudAppSecurity.Type = t.String()
		}
	}
	if p := s.GetPersistentBrowser(); p != nil {
		out.PersistentBrowser = &capolicy.EnabledSetting{IsEnabled: derefBool(p.GetIsEnabled())}
		if m := p.GetMode(); m != nil {
			out.PersistentBrowser.Mode = m.String()
		}
	}
	if f := s.GetSignInFrequency(); f != nil {
		sf := &capolicy.SignInFrequency{IsEnabled: derefBool(f.GetIsEnabled())}
		if v := f.GetValue(); v != nil {
			sf.Value = int(*v)
		}
		if t := f.GetTypeEscaped(); t != nil {
			sf.Type = t.String()
		}
		if t := f.GetAuthenticationType(); t != nil {
			sf.AuthenticationType = t.String()
		}
		if t := f.GetFrequencyInterval(); t != nil {
			sf.FrequencyInterval = t.String()
		}
		out.SignInFrequency = sf
	}
	return out
}

func derefBool(b *bool) bool { return b != nil && *b }

// enumStrings spells SDK enum values the way Graph does.
func enumStrings[T fmt.Stringer](in []T) []string {
	if in == nil {
		return nil
	}
	out := make([]string, 0, len(in))
	for _, v := range in {
		out = append(out, v.String())
	}
	return out
}

// flagStrings splits a flag enum (Graph's comma-separated string) into its members.
func flagStrings[T fmt.Stringer](v *T) []string {
	if v == nil {
		return nil
	}
	s := (*v).String()
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// policyToSDK builds a fresh model carrying exactly the given top-level properties. A listed
// grantControls or sessionControls that p leaves nil is sent as null, which clears it.
func policyToSDK(p capolicy.Policy, fields []string) (*models.ConditionalAccessPolicy, error) {
	m := models.NewConditionalAccessPolicy()
	nulls := map[string]any{}
	for _, f := range fields {
		switch f {
		case FieldDisplayName:
			if p.DisplayName == "" {
				return nil, errors.New("displayName is empty")
			}
			name := p.DisplayName
			m.SetDisplayName(&name)
		case FieldState:
			// Sent explicitly, always: left out, Graph keeps or defaults it, and the SDK's zero
			// value would read as "enabled".
			if p.State == capolicy.StateUnknown {
				return nil, errors.New("state is unknown; set it explicitly")
			}
			st, err := parseEnum[models.ConditionalAccessPolicyState](models.ParseConditionalAccessPolicyState, p.State.String(), "state")
			if err != nil {
				return nil, err
			}
			m.SetState(st)
		case FieldConditions:
			// Graph replaces conditions whole: without users and applications the policy would be
			// rejected, or worse, lose its assignments.
			if p.Conditions.Users == nil || p.Conditions.Applications == nil {
				return nil, errors.New("conditions need users and applications")
			}
			c, err := conditionsToSDK(p.Conditions)
			if err != nil {
				return nil, fmt.Errorf("conditions: %w", err)
			}
			m.SetConditions(c)
		case FieldGrantControls:
			if p.GrantControls == nil {
				nulls[f] = absser.NewUntypedNull()
				continue
			}
			g, err := grantToSDK(*p.GrantControls)
			if err != nil {
				return nil, fmt.Errorf("grantControls: %w", err)
			}
			m.SetGrantControls(g)
		case FieldSessionControls:
			if p.SessionControls == nil {
				nulls[f] = absser.NewUntypedNull()
				continue
			}
			s, err := sessionToSDK(*p.SessionControls)
			if err != nil {
				return nil, fmt.Errorf("sessionControls: %w", err)
			}
			m.SetSessionControls(s)
		default:
			return nil, fmt.Errorf("property %q cannot be written (writable: displayName, state, conditions, grantControls, sessionControls)", f)
		}
	}
	if len(nulls) > 0 {
		// The SDK writes nothing for a nil property; an explicit null goes through additional data.
		m.SetAdditionalData(nulls)
	}
	return m, nil
}

func conditionsToSDK(c capolicy.Conditions) (*models.ConditionalAccessConditionSet, error) {
	out := models.NewConditionalAccessConditionSet()
	if u := c.Users; u != nil {
		mu := models.NewConditionalAccessUsers()
		mu.SetIncludeUsers(u.IncludeUsers)
		mu.SetExcludeUsers(u.ExcludeUsers)
		mu.SetIncludeGroups(u.IncludeGroups)
		mu.SetExcludeGroups(u.ExcludeGroups)
		mu.SetIncludeRoles(u.IncludeRoles)
		mu.SetExcludeRoles(u.ExcludeRoles)
		in, err := guestsToSDK(u.IncludeGuestsOrExternalUsers)
		if err != nil {
			return nil, fmt.Errorf("includeGuestsOrExternalUsers: %w", err)
		}
		if in != nil {
			mu.SetIncludeGuestsOrExternalUsers(in)
		}
		ex, err := guestsToSDK(u.ExcludeGuestsOrExternalUsers)
		if err != nil {
			return nil, fmt.Errorf("excludeGuestsOrExternalUsers: %w", err)
		}
		if ex != nil {
			mu.SetExcludeGuestsOrExternalUsers(ex)
		}
		out.SetUsers(mu)
	}
	if a := c.Applications; a != nil {
		ma := models.NewConditionalAccessApplications()
		ma.SetIncludeApplications(a.IncludeApplications)
		ma.SetExcludeApplications(a.ExcludeApplications)
		ma.SetIncludeUserActions(a.IncludeUserActions)
		ma.SetIncludeAuthenticationContextClassReferences(a.IncludeAuthenticationContextClassReferences)
		f, err := filterToSDK(a.ApplicationFilter)
		if err != nil {
			return nil, fmt.Errorf("applicationFilter: %w", err)
		}
		if f != nil {
			ma.SetApplicationFilter(f)
		}
		out.SetApplications(ma)
	}
	if ca := c.ClientApplications; ca != nil {
		mc := models.NewConditionalAccessClientApplications()
		mc.SetIncludeServicePrincipals(ca.IncludeServicePrincipals)
		mc.SetExcludeServicePrincipals(ca.ExcludeServicePrincipals)
		f, err := filterToSDK(ca.ServicePrincipalFilter)
		if err != nil {
			return nil, fmt.Errorf("servicePrincipalFilter: %w", err)
		}
		if f != nil {
			mc.SetServicePrincipalFilter(f)
		}
		out.SetClientApplications(mc)
	}
	if len(c.ClientAppTypes) > 0 {
		v, err := parseEnums[models.ConditionalAccessClientApp](models.ParseConditionalAccessClientApp, c.ClientAppTypes, "client app type")
		if err != nil {
			return nil, err
		}
		out.SetClientAppTypes(v)
	}
	if p := c.Platforms; p != nil {
		mp := models.NewConditionalAccessPlatforms()
		in, err := parseEnums[models.ConditionalAccessDevicePlatform](models.ParseConditionalAccessDevicePlatform, p.IncludePlatforms, "platform")
		if err != nil {
			return nil, err
		}
		ex, err := parseEnums[models.ConditionalAccessDevicePlatform](models.ParseConditionalAccessDevicePlatform, p.ExcludePlatforms, "platform")
		if err != nil {
			return nil, err
		}
		mp.SetIncludePlatforms(in)
		mp.SetExcludePlatforms(ex)
		out.SetPlatforms(mp)
	}
	if l := c.Locations; l != nil {
		ml := models.NewConditionalAccessLocations()
		ml.SetIncludeLocations(l.IncludeLocations)
		ml.SetExcludeLocations(l.ExcludeLocations)
		out.SetLocations(ml)
	}
	if d := c.Devices; d != nil {
		md := models.NewConditionalAccessDevices()
		f, err := filterToSDK(d.DeviceFilter)
		if err != nil {
			return nil, fmt.Errorf("deviceFilter: %w", err)
		}
		if f != nil {
			md.SetDeviceFilter(f)
		}
		out.SetDevices(md)
	}
	for _, rl := range []struct {
		vals []string
		set  func([]models.RiskLevel)
	}{
		{c.UserRiskLevels, out.SetUserRiskLevels},
		{c.SignInRiskLevels, out.SetSignInRiskLevels},
		{c.ServicePrincipalRiskLevels, out.SetServicePrincipalRiskLevels},
	} {
		if len(rl.vals) == 0 {
			continue
		}
		v, err := parseEnums[models.RiskLevel](models.ParseRiskLevel, rl.vals, "risk level")
		if err != nil {
			return nil, err
		}
		rl.set(v)
	}
	if len(c.InsiderRiskLevels) > 0 {
		v, err := parseEnum[models.ConditionalAccessInsiderRiskLevels](models.ParseConditionalAccessInsiderRiskLevels, strings.Join(c.InsiderRiskLevels, ","), "insider risk level")
		if err != nil {
			return nil, err
		}
		out.SetInsiderRiskLevels(v)
	}
	if af := c.AuthenticationFlows; af != nil {
		mf := models.NewConditionalAccessAuthenticationFlows()
		if len(af.TransferMethods) > 0 {
			v, err := parseEnum[models.ConditionalAccessTransferMethods](models.ParseConditionalAccessTransferMethods, strings.Join(af.TransferMethods, ","), "transfer method")
			if err != nil {
				return nil, err
			}
			mf.SetTransferMethods(v)
		}
		out.SetAuthenticationFlows(mf)
	}
	return out, nil
}

func guestsToSDK(g *capolicy.GuestsOrExternalUsers) (*models.ConditionalAccessGuestsOrExternalUsers, error) {
	if g == nil {
		return nil, nil
	}
	out := models.NewConditionalAccessGuestsOrExternalUsers()
	if len(g.GuestOrExternalUserTypes) > 0 {
		v, err := parseEnum[models.ConditionalAccessGuestOrExternalUserTypes](models.ParseConditionalAccessGuestOrExternalUserTypes, strings.Join(g.GuestOrExternalUserTypes, ","), "guest or external user type")
		if err != nil {
			return nil, err
		}
		out.SetGuestOrExternalUserTypes(v)
	}
	if et := g.ExternalTenants; et != nil {
		var mt models.ConditionalAccessExternalTenantsable
		switch {
		case et.MembershipKind == "enumerated" || len(et.Members) > 0:
			en := models.NewConditionalAccessEnumeratedExternalTenants()
			en.SetMembers(et.Members)
			mt = en
		case et.MembershipKind == "all":
			mt = models.NewConditionalAccessAllExternalTenants()
		default:
			mt = models.NewConditionalAccessExternalTenants()
		}
		if et.MembershipKind != "" {
			k, err := parseEnum[models.ConditionalAccessExternalTenantsMembershipKind](models.ParseConditionalAccessExternalTenantsMembershipKind, et.MembershipKind, "membership kind")
			if err != nil {
				return nil, err
			}
			mt.SetMembershipKind(k)
		}
		out.SetExternalTenants(mt)
	}
	return out, nil
}

func filterToSDK(f *capolicy.Filter) (*models.ConditionalAccessFilter, error) {
	if f == nil {
		return nil, nil
	}
	out := models.NewConditionalAccessFilter()
	if f.Mode != "" {
		m, err := parseEnum[models.FilterMode](models.ParseFilterMode, f.Mode, "filter mode")
		if err != nil {
			return nil, err
		}
		out.SetMode(m)
	}
	rule := f.Rule
	out.SetRule(&rule)
	return out, nil
}

func grantToSDK(g capolicy.GrantControls) (*models.ConditionalAccessGrantControls, error) {
	out := models.NewConditionalAccessGrantControls()
	if g.Operator != "" {
		op := g.Operator
		out.SetOperator(&op)
	}
	if len(g.BuiltInControls) > 0 {
		v, err := parseEnums[models.ConditionalAccessGrantControl](models.ParseConditionalAccessGrantControl, g.BuiltInControls, "built-in control")
		if err != nil {
			return nil, err
		}
		out.SetBuiltInControls(v)
	}
	out.SetCustomAuthenticationFactors(g.CustomAuthenticationFactors)
	out.SetTermsOfUse(g.TermsOfUse)
	if s := g.AuthenticationStrength; s != nil {
		if s.ID == "" {
			return nil, errors.New("authenticationStrength has no id")
		}
		// Graph takes the strength by reference: only its id is written.
		ms := models.NewAuthenticationStrengthPolicy()
		id := s.ID
		ms.SetId(&id)
		out.SetAuthenticationStrength(ms)
	}
	return out, nil
}

func sessionToSDK(s capolicy.SessionControls) (*models.ConditionalAccessSessionControls, error) {
	out := models.NewConditionalAccessSessionControls()
	if s.DisableResilienceDefaults != nil {
		v := *s.DisableResilienceDefaults
		out.SetDisableResilienceDefaults(&v)
	}
	if a := s.ApplicationEnforcedRestrictions; a != nil {
		m := models.NewApplicationEnforcedRestrictionsSessionControl()
		on := a.IsEnabled
		m.SetIsEnabled(&on)
		out.SetApplicationEnforcedRestrictions(m)
	}
	if c := s.CloudAppSecurity; c != nil {
		m := models.NewCloudAppSecuritySessionControl()
		on := c.IsEnabled
		m.SetIsEnabled(&on)
		if c.Type != "" {
			t, err := parseEnum[models.CloudAppSecuritySessionControlType](models.ParseCloudAppSecuritySessionControlType, c.Type, "cloud app security type")
			if err != nil {
				return nil, err
			}
			m.SetCloudAppSecurityType(t)
		}
		out.SetCloudAppSecurity(m)
	}
	if p := s.PersistentBrowser; p != nil {
		m := models.NewPersistentBrowserSessionControl()
		on := p.IsEnabled
		m.SetIsEnabled(&on)
		if p.Mode != "" {
			v, err := parseEnum[models.PersistentBrowserSessionMode](models.ParsePersistentBrowserSessionMode, p.Mode, "persistent browser mode")
			if err != nil {
				return nil, err
			}
			m.SetMode(v)
		}
		out.SetPersistentBrowser(m)
	}
	if f := s.SignInFrequency; f != nil {
		m := models.NewSignInFrequencySessionControl()
		on := f.IsEnabled
		m.SetIsEnabled(&on)
		if f.Value != 0 {
			v := int32(f.Value)
			m.SetValue(&v)
		}
		if f.Type != "" {
			v, err := parseEnum[models.SigninFrequencyType](models.ParseSigninFrequencyType, f.Type, "sign-in frequency type")
			if err != nil {
				return nil, err
			}
			m.SetTypeEscaped(v)
		}
		if f.AuthenticationType != "" {
			v, err := parseEnum[models.SignInFrequencyAuthenticationType](models.ParseSignInFrequencyAuthenticationType, f.AuthenticationType, "sign-in frequency authentication type")
			if err != nil {
				return nil, err
			}
			m.SetAuthenticationType(v)
		}
		if f.FrequencyInterval != "" {
			v, err := parseEnum[models.SignInFrequencyInterval](models.ParseSignInFrequencyInterval, f.FrequencyInterval, "sign-in frequency interval")
			if err != nil {
				return nil, err
			}
			m.SetFrequencyInterval(v)
		}
		out.SetSignInFrequency(m)
	}
	return out, nil
}

// parseEnum reads one Graph spelling into an SDK enum; the SDK's parsers answer (nil, nil) for a
// value they do not know, which must not pass silently.
func parseEnum[T any](parse func(string) (any, error), v, what string) (*T, error) {
	x, err := parse(v)
	if err != nil || x == nil {
		return nil, fmt.Errorf("unknown %s %q", what, v)
	}
	p, ok := x.(*T)
	if !ok {
		return nil, fmt.Errorf("unknown %s %q", what, v)
	}
	return p, nil
}

func parseEnums[T any](parse func(string) (any, error), vs []string, what string) ([]T, error) {
	if vs == nil {
		return nil, nil
	}
	out := make([]T, 0, len(vs))
	for _, v := range vs {
		p, err := parseEnum[T](parse, v, what)
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, nil
}
