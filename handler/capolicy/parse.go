package capolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ParsePolicy decodes one policy from either shape it arrives in and returns its normal form:
//
//   - Graph v1.0 JSON: @odata keys, nulls for empty sections, flags enums as comma-separated strings
//     ("internalGuest,b2bCollaborationGuest"), authenticationStrength expanded or by id;
//   - an audit-log oldValue/newValue: empty sections omitted, flags enums as numbers
//     (guestOrExternalUserTypes 63), control names in any case ("MFA").
//
// Lists may also arrive as a single string or hold numbers. A missing or unknown state is
// StateUnknown, not an error: the rules then refuse to count the policy as enforced. Enum values it
// does not know are kept as written, and properties of the conditions or grant controls it does not
// model are listed in Conditions.Unrecognised and GrantControls.Unrecognised; the rules read both as
// narrowing the policy, never as widening it. Anything that is not a JSON object, or whose values have
// the wrong JSON type, is an error.
func ParsePolicy(b []byte) (Policy, error) {
	if t := bytes.TrimLeft(b, jsonSpace); len(t) == 0 || t[0] != '{' {
		return Policy{}, errors.New("parse policy: not a JSON object")
	}
	var w wirePolicy
	if err := json.Unmarshal(b, &w); err != nil {
		return Policy{}, fmt.Errorf("parse policy: %w", err)
	}
	return Normalize(w.policy()), nil
}

// ParseAuthenticationStrength decodes one authentication strength policy as Graph lists it
// (/policies/authenticationStrengthPolicies), in its normal form. Values it does not know, in
// requirementsSatisfied or allowedCombinations, are kept as written, so the rules can refuse them;
// the SDK's model would drop them. Anything that is not a JSON object is an error.
func ParseAuthenticationStrength(b []byte) (AuthenticationStrength, error) {
	if t := bytes.TrimLeft(b, jsonSpace); len(t) == 0 || t[0] != '{' {
		return AuthenticationStrength{}, errors.New("parse authentication strength: not a JSON object")
	}
	var w wireStrength
	if err := json.Unmarshal(b, &w); err != nil {
		return AuthenticationStrength{}, fmt.Errorf("parse authentication strength: %w", err)
	}
	s := normStrength(w.model())
	if s == nil {
		return AuthenticationStrength{}, nil
	}
	return *s, nil
}

// UnmarshalJSON decodes p with ParsePolicy, so a Policy read with encoding/json is as lenient and as
// normalised as one read with ParsePolicy. JSON null leaves p unchanged.
func (p *Policy) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.Trim(b, jsonSpace), []byte("null")) {
		return nil
	}
	q, err := ParsePolicy(b)
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// jsonSpace is the whitespace JSON allows between tokens; bytes.TrimSpace would also accept \v and
// Unicode spaces, which JSON does not.
const jsonSpace = " \t\r\n"

// text is a scalar that may arrive as a string, a number or a boolean; null is "".
type text string

func (t *text) UnmarshalJSON(b []byte) error {
	switch b[0] {
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = text(s)
	case 'n':
		*t = ""
	case '{', '[':
		return errors.New("want a string, got an object or array")
	default: // number, true, false: keep the literal
		*t = text(b)
	}
	return nil
}

// list is a string collection that may arrive as an array (of strings or numbers), as one string
// (Graph's comma-separated flags enums), as a number (audit-log flags enums) or as null.
type list []string

func (l *list) UnmarshalJSON(b []byte) error {
	switch b[0] {
	case 'n':
		*l = nil
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = nil
		for part := range strings.SplitSeq(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				*l = append(*l, part)
			}
		}
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(b, &items); err != nil {
			return err
		}
		out := make([]string, 0, len(items))
		for _, it := range items {
			var t text
			if err := t.UnmarshalJSON(it); err != nil {
				return err
			}
			if t != "" {
				out = append(out, string(t))
			}
		}
		*l = out
	case '{', 't', 'f':
		return errors.New("want a list, got an object or boolean")
	default:
		*l = list{string(b)}
	}
	return nil
}

// boolean is a boolean that may arrive as a boolean, a string or null.
type boolean struct{ set, v bool }

func (f *boolean) UnmarshalJSON(b []byte) error {
	switch s := strings.Trim(string(b), `"`); {
	case s == "null" || s == "":
		*f = boolean{}
	default:
		v, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want a boolean, got %.20q", s)
		}
		*f = boolean{set: true, v: v}
	}
	return nil
}

// number is an integer that may arrive as a number, a string or null.
type number int

func (n *number) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		*n = 0
		return nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int(f)) {
			return fmt.Errorf("want an integer, got %.20q", s)
		}
		v = int(f)
	}
	*n = number(v)
	return nil
}

type wirePolicy struct {
	ID               text             `json:"id"`
	DisplayName      text             `json:"displayName"`
	State            text             `json:"state"`
	TemplateID       text             `json:"templateId"`
	CreatedDateTime  text             `json:"createdDateTime"`
	ModifiedDateTime text             `json:"modifiedDateTime"`
	Conditions       *wireConditions  `json:"conditions"`
	GrantControls    *wireGrant       `json:"grantControls"`
	SessionControls  *wireSessionCtrl `json:"sessionControls"`
}

type wireConditions struct {
	Users                      *wireUsers        `json:"users"`
	Applications               *wireApplications `json:"applications"`
	ClientApplications         *wireClientApps   `json:"clientApplications"`
	ClientAppTypes             list              `json:"clientAppTypes"`
	Platforms                  *wireInclExcl     `json:"platforms"`
	Locations                  *wireInclExcl     `json:"locations"`
	Devices                    *wireDevices      `json:"devices"`
	UserRiskLevels             list              `json:"userRiskLevels"`
	SignInRiskLevels           list              `json:"signInRiskLevels"`
	ServicePrincipalRiskLevels list              `json:"servicePrincipalRiskLevels"`
	InsiderRiskLevels          list              `json:"insiderRiskLevels"`
	AuthenticationFlows        *wireFlows        `json:"authenticationFlows"`
	extra                      []UnknownValue    // keys caguard does not model that carry a value; see unmodelled
}

type wireFlows struct {
	TransferMethods list `json:"transferMethods"`
	extra           []UnknownValue
}

type wireUsers struct {
	IncludeUsers                 list           `json:"includeUsers"`
	ExcludeUsers                 list           `json:"excludeUsers"`
	IncludeGroups                list           `json:"includeGroups"`
	ExcludeGroups                list           `json:"excludeGroups"`
	IncludeRoles                 list           `json:"includeRoles"`
	ExcludeRoles                 list           `json:"excludeRoles"`
	IncludeGuestsOrExternalUsers *wireGuests    `json:"includeGuestsOrExternalUsers"`
	ExcludeGuestsOrExternalUsers *wireGuests    `json:"excludeGuestsOrExternalUsers"`
	extra                        []UnknownValue // keys caguard does not model that carry a value; see unmodelled
}

type wireGuests struct {
	GuestOrExternalUserTypes list           `json:"guestOrExternalUserTypes"`
	ExternalTenants          *wireTenants   `json:"externalTenants"`
	extra                    []UnknownValue // keys caguard does not model that carry a value; see unmodelled
}

type wireTenants struct {
	ODataType      text `json:"@odata.type"`
	MembershipKind text `json:"membershipKind"`
	Members        list `json:"members"`
	extra          []UnknownValue
}

type wireFilter struct {
	Mode  text `json:"mode"`
	Rule  text `json:"rule"`
	extra []UnknownValue
}

type wireApplications struct {
	IncludeApplications                         list           `json:"includeApplications"`
	ExcludeApplications                         list           `json:"excludeApplications"`
	IncludeUserActions                          list           `json:"includeUserActions"`
	IncludeAuthenticationContextClassReferences list           `json:"includeAuthenticationContextClassReferences"`
	ApplicationFilter                           *wireFilter    `json:"applicationFilter"`
	extra                                       []UnknownValue // keys caguard does not model that carry a value; see unmodelled
}

type wireClientApps struct {
	IncludeServicePrincipals        list           `json:"includeServicePrincipals"`
	ExcludeServicePrincipals        list           `json:"excludeServicePrincipals"`
	ServicePrincipalFilter          *wireFilter    `json:"servicePrincipalFilter"`
	IncludeAgentIDServicePrincipals list           `json:"includeAgentIdServicePrincipals"`
	ExcludeAgentIDServicePrincipals list           `json:"excludeAgentIdServicePrincipals"`
	AgentIDServicePrincipalFilter   *wireFilter    `json:"agentIdServicePrincipalFilter"`
	extra                           []UnknownValue // keys caguard does not model that carry a value; see unmodelled
}

// wireInclExcl holds platforms and locations, whose include/exclude keys differ only in the noun.
type wireInclExcl struct {
	IncludePlatforms list           `json:"includePlatforms"`
	ExcludePlatforms list           `json:"excludePlatforms"`
	IncludeLocations list           `json:"includeLocations"`
	ExcludeLocations list           `json:"excludeLocations"`
	extra            []UnknownValue // keys caguard does not model that carry a value; see unmodelled
}

type wireDevices struct {
	DeviceFilter   *wireFilter    `json:"deviceFilter"`
	IncludeDevices list           `json:"includeDevices"`
	ExcludeDevices list           `json:"excludeDevices"`
	extra          []UnknownValue // keys caguard does not model that carry a value; see unmodelled
}

type wireGrant struct {
	Operator                    text           `json:"operator"`
	BuiltInControls             list           `json:"builtInControls"`
	CustomAuthenticationFactors list           `json:"customAuthenticationFactors"`
	TermsOfUse                  list           `json:"termsOfUse"`
	AuthenticationStrength      *wireStrength  `json:"authenticationStrength"`
	extra                       []UnknownValue // keys caguard does not model that carry a value; see unmodelled
}

type wireStrength struct {
	ID                    text `json:"id"`
	DisplayName           text `json:"displayName"`
	PolicyType            text `json:"policyType"`
	RequirementsSatisfied text `json:"requirementsSatisfied"`
	AllowedCombinations   list `json:"allowedCombinations"`
}

type wireEnabled struct {
	IsEnabled            boolean `json:"isEnabled"`
	Mode                 text    `json:"mode"`
	CloudAppSecurityType text    `json:"cloudAppSecurityType"`
}

type wireSessionCtrl struct {
	DisableResilienceDefaults       boolean      `json:"disableResilienceDefaults"`
	ApplicationEnforcedRestrictions *wireEnabled `json:"applicationEnforcedRestrictions"`
	CloudAppSecurity                *wireEnabled `json:"cloudAppSecurity"`
	PersistentBrowser               *wireEnabled `json:"persistentBrowser"`
	SignInFrequency                 *struct {
		IsEnabled          boolean `json:"isEnabled"`
		Value              number  `json:"value"`
		Type               text    `json:"type"`
		AuthenticationType text    `json:"authenticationType"`
		FrequencyInterval  text    `json:"frequencyInterval"`
	} `json:"signInFrequency"`
}

// policy maps the wire shape onto the model. Normalize then canonicalises it.
func (w *wirePolicy) policy() Policy {
	raw := strings.TrimSpace(string(w.State))
	state, err := ParseState(raw) // unknown stays StateUnknown
	if err != nil {
		raw = truncate(raw, maxUnknownValue) // kept for the reason that names it
	} else {
		raw = ""
	}
	p := Policy{
		UnrecognisedState: raw,
		ID:                string(w.ID),
		DisplayName:       string(w.DisplayName),
		State:             state,
		TemplateID:        string(w.TemplateID),
		CreatedDateTime:   string(w.CreatedDateTime),
		ModifiedDateTime:  string(w.ModifiedDateTime),
	}
	if c := w.Conditions; c != nil {
		p.Conditions = Conditions{
			ClientAppTypes:             c.ClientAppTypes,
			UserRiskLevels:             c.UserRiskLevels,
			SignInRiskLevels:           c.SignInRiskLevels,
			ServicePrincipalRiskLevels: c.ServicePrincipalRiskLevels,
			InsiderRiskLevels:          c.InsiderRiskLevels,
			Unrecognised:               c.unrecognised(),
		}
		if u := c.Users; u != nil {
			p.Conditions.Users = &Users{
				IncludeUsers:                 u.IncludeUsers,
				ExcludeUsers:                 u.ExcludeUsers,
				IncludeGroups:                u.IncludeGroups,
				ExcludeGroups:                u.ExcludeGroups,
				IncludeRoles:                 u.IncludeRoles,
				ExcludeRoles:                 u.ExcludeRoles,
				IncludeGuestsOrExternalUsers: u.IncludeGuestsOrExternalUsers.model(),
				ExcludeGuestsOrExternalUsers: u.ExcludeGuestsOrExternalUsers.model(),
			}
		}
		if a := c.Applications; a != nil {
			p.Conditions.Applications = &Applications{
				IncludeApplications:                         a.IncludeApplications,
				ExcludeApplications:                         a.ExcludeApplications,
				IncludeUserActions:                          a.IncludeUserActions,
				IncludeAuthenticationContextClassReferences: a.IncludeAuthenticationContextClassReferences,
				ApplicationFilter:                           a.ApplicationFilter.model(),
			}
		}
		if ca := c.ClientApplications; ca != nil {
			p.Conditions.ClientApplications = &ClientApplications{
				IncludeServicePrincipals:        ca.IncludeServicePrincipals,
				ExcludeServicePrincipals:        ca.ExcludeServicePrincipals,
				ServicePrincipalFilter:          ca.ServicePrincipalFilter.model(),
				IncludeAgentIDServicePrincipals: ca.IncludeAgentIDServicePrincipals,
				ExcludeAgentIDServicePrincipals: ca.ExcludeAgentIDServicePrincipals,
				AgentIDServicePrincipalFilter:   ca.AgentIDServicePrincipalFilter.model(),
			}
		}
		if pl := c.Platforms; pl != nil {
			p.Conditions.Platforms = &Platforms{IncludePlatforms: pl.IncludePlatforms, ExcludePlatforms: pl.ExcludePlatforms}
		}
		if l := c.Locations; l != nil {
			p.Conditions.Locations = &Locations{IncludeLocations: l.IncludeLocations, ExcludeLocations: l.ExcludeLocations}
		}
		if d := c.Devices; d != nil {
			p.Conditions.Devices = &Devices{DeviceFilter: d.DeviceFilter.model(), IncludeDevices: d.IncludeDevices, ExcludeDevices: d.ExcludeDevices}
		}
		if f := c.AuthenticationFlows; f != nil {
			p.Conditions.AuthenticationFlows = &AuthenticationFlows{TransferMethods: f.TransferMethods}
		}
	}
	if g := w.GrantControls; g != nil {
		p.GrantControls = &GrantControls{
			Operator:                    string(g.Operator),
			BuiltInControls:             g.BuiltInControls,
			CustomAuthenticationFactors: g.CustomAuthenticationFactors,
			TermsOfUse:                  g.TermsOfUse,
		}
		for _, k := range g.extra {
			p.GrantControls.Unrecognised = append(p.GrantControls.Unrecognised, UnknownValue{Field: "grantControls." + k.Field, Value: k.Value})
		}
		p.GrantControls.AuthenticationStrength = g.AuthenticationStrength.model()
	}
	if s := w.SessionControls; s != nil {
		p.SessionControls = &SessionControls{
			ApplicationEnforcedRestrictions: s.ApplicationEnforcedRestrictions.model(),
			CloudAppSecurity:                s.CloudAppSecurity.model(),
			PersistentBrowser:               s.PersistentBrowser.model(),
		}
		if s.DisableResilienceDefaults.set {
			v := s.DisableResilienceDefaults.v
			p.SessionControls.DisableResilienceDefaults = &v
		}
		if f := s.SignInFrequency; f != nil {
			p.SessionControls.SignInFrequency = &SignInFrequency{
				IsEnabled:          f.IsEnabled.v,
				Value:              int(f.Value),
				Type:               string(f.Type),
				AuthenticationType: string(f.AuthenticationType),
				FrequencyInterval:  string(f.FrequencyInterval),
			}
		}
	}
	return p
}

func (g *wireGuests) model() *GuestsOrExternalUsers {
	if g == nil {
		return nil
	}
	out := &GuestsOrExternalUsers{GuestOrExternalUserTypes: g.GuestOrExternalUserTypes}
	if t := g.ExternalTenants; t != nil {
		kind := string(t.MembershipKind)
		if kind == "" {
			// Graph names the kind in the derived type, e.g. conditionalAccessAllExternalTenants.
			switch odata := strings.ToLower(string(t.ODataType)); {
			case strings.HasSuffix(odata, "allexternaltenants"):
				kind = "all"
			case strings.HasSuffix(odata, "enumeratedexternaltenants"):
				kind = "enumerated"
			}
		}
		out.ExternalTenants = &ExternalTenants{MembershipKind: kind, Members: t.Members}
	}
	return out
}

func (s *wireStrength) model() *AuthenticationStrength {
	if s == nil {
		return nil
	}
	return &AuthenticationStrength{
		ID:                    string(s.ID),
		DisplayName:           string(s.DisplayName),
		PolicyType:            string(s.PolicyType),
		RequirementsSatisfied: string(s.RequirementsSatisfied),
		AllowedCombinations:   s.AllowedCombinations,
	}
}

func (f *wireFilter) model() *Filter {
	if f == nil {
		return nil
	}
	return &Filter{Mode: string(f.Mode), Rule: string(f.Rule)}
}

func (e *wireEnabled) model() *EnabledSetting {
	if e == nil {
		return nil
	}
	return &EnabledSetting{IsEnabled: e.IsEnabled.v, Mode: string(e.Mode), Type: string(e.CloudAppSecurityType)}
}

// UnreadablePolicy stands for a policy Graph listed whose body is a JSON object that ParsePolicy
// could not decode (a value of a JSON type the model does not expect, say conditions as a string).
// One such policy must not stop every run, and must not pass: the result keeps the id, the display
// name and the state when those can be read, and Unreadable names the value that could not be read,
// as Graph sent it, so the rules fail that policy alone (UNRECOGNISED_VALUE) and every other policy
// is still judged. ok is false when raw is not a JSON object at all: that is not a policy.
func UnreadablePolicy(raw []byte, err error) (p Policy, ok bool) {
	var head map[string]json.RawMessage
	if json.Unmarshal(raw, &head) != nil || head == nil {
		return Policy{}, false
	}
	text := func(key string) string {
		var s string
		if v, found := lookupKey(head, key); found && json.Unmarshal(v, &s) == nil {
			return s
		}
		return ""
	}
	p.ID, p.DisplayName = text("id"), text("displayName")
	if s := strings.TrimSpace(text("state")); s != "" {
		if st, perr := ParseState(s); perr == nil {
			p.State = st
		} else {
			p.UnrecognisedState = truncate(s, maxUnknownValue)
		}
	}
	field, value := "policy", shortJSON(raw)
	if te := (*json.UnmarshalTypeError)(nil); errors.As(err, &te) && te.Field != "" {
		field, value = te.Field, te.Value
		if v, found := valueAt(head, strings.Split(te.Field, ".")); found {
			value = shortJSON(v)
		}
	} else if path, v, found := failingPath(nil, head); found {
		// A list decoder's own error names no path: find the property by decoding each alone.
		field, value = strings.Join(path, "."), shortJSON(v)
	}
	p.Unreadable = []UnknownValue{{Field: field, Value: value}}
	return p, true
}

// failingPath finds, under the object o at path, the deepest property that ParsePolicy refuses when
// it is the only property of a policy, with its value. Keys are tried in sorted order.
func failingPath(path []string, o map[string]json.RawMessage) ([]string, json.RawMessage, bool) {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		at := append(slices.Clone(path), k)
		if _, err := ParsePolicy(only(at, o[k])); err == nil {
			continue
		}
		var inner map[string]json.RawMessage
		if json.Unmarshal(o[k], &inner) == nil && inner != nil {
			if deeper, v, ok := failingPath(at, inner); ok {
				return deeper, v, true
			}
		}
		return at, o[k], true
	}
	return nil, nil, false
}

// only is a policy holding just v at path.
func only(path []string, v json.RawMessage) []byte {
	out := v
	for i := len(path) - 1; i >= 0; i-- {
		b, _ := json.Marshal(map[string]json.RawMessage{path[i]: out})
		out = b
	}
	return out
}

// lookupKey finds key in o as encoding/json does: exactly, else regardless of case.
func lookupKey(o map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	if v, ok := o[key]; ok {
		return v, true
	}
	for k, v := range o {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// valueAt returns the raw JSON at a dotted path of object keys under o.
func valueAt(o map[string]json.RawMessage, path []string) (json.RawMessage, bool) {
	v, ok := lookupKey(o, path[0])
	if !ok || len(path) == 1 {
		return v, ok
	}
	var next map[string]json.RawMessage
	if json.Unmarshal(v, &next) != nil || next == nil {
		return nil, false
	}
	return valueAt(next, path[1:])
}
