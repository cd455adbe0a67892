package graph

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

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

// policyFromJSON parses a policy as Graph answered it. A missing or unknown state is not an error:
// the policy keeps StateUnknown (never enabled) and the state as Graph wrote it, and the rules fail
// that policy alone (STATE_UNKNOWN), so one state caguard does not know cannot stop every run. An
// object whose values cannot be decoded (conditions as a string, say) is not an error either: it
// becomes capolicy.UnreadablePolicy, which the rules fail alone (UNRECOGNISED_VALUE, naming the
// value as Graph sent it). Only a body that is not a JSON object is an error; it names the policy
// when the body says which.
func policyFromJSON(raw []byte) (capolicy.Policy, error) {
	p, err := capolicy.ParsePolicy(raw)
	if err != nil {
		if u, ok := capolicy.UnreadablePolicy(raw, err); ok {
			return u, nil
		}
		return capolicy.Policy{}, fmt.Errorf("%s could not be parsed: %w", policyName(raw), err)
	}
	return p, nil
}

// policyName names a policy whose body could not be parsed, from its id and display name when those
// at least can be read: `policy "MFA" (id)`, or "a policy" when neither can.
func policyName(raw []byte) string {
	var head struct {
		ID          any `json:"id"`
		DisplayName any `json:"displayName"`
	}
	_ = json.Unmarshal(raw, &head)
	id, _ := head.ID.(string)
	name, _ := head.DisplayName.(string)
	id, name = clip(oneLine(id), 64), clip(oneLine(name), 120)
	switch {
	case id != "" && name != "":
		return fmt.Sprintf("policy %q (%s)", name, id)
	case id != "":
		return "policy " + id
	case name != "":
		return fmt.Sprintf("policy %q", name)
	}
	return "a policy"
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

// clip shortens s to at most n runes.
func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
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
