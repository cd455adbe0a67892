package graph

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/microsoftgraph/msgraph-sdk-go/models"

	"github.com/caguard/caguard/handler/capolicy"
)

// Write bodies are built here as JSON, not through the SDK's models: kiota's JSON writer leaves out
// every nil property, and Graph merges a PATCH ("Existing properties that aren't included in the
// request body maintain their previous values", Update conditionalAccessPolicy, v1.0:
// https://learn.microsoft.com/graph/api/conditionalaccesspolicy-update?view=graph-rest-1.0), at every
// level. A left-out list or section keeps whatever an administrator put there, so every property
// caguard writes goes out in its full v1.0 shape: [] for an empty list, null for an absent section.
// Read-only properties (id, createdDateTime, modifiedDateTime, templateId) are never sent.
//
// Enum values go through the SDK's enum parsers, so a value Graph would refuse is an error before
// any request, and each is sent in Graph's spelling.

// jsonObject is a JSON object whose nil values are written as null.
type jsonObject = map[string]any

// policyBody is the JSON body of a write carrying exactly the given top-level properties, each in
// full. A listed grantControls or sessionControls that p leaves nil is sent as null, which clears it.
func policyBody(p capolicy.Policy, fields []string) ([]byte, error) {
	body := jsonObject{}
	for _, f := range fields {
		switch f {
		case FieldDisplayName:
			if strings.TrimSpace(p.DisplayName) == "" {
				return nil, errors.New("displayName is empty")
			}
			body[f] = p.DisplayName
		case FieldState:
			// Sent explicitly, always: left out, Graph keeps or defaults it.
			if p.State == capolicy.StateUnknown {
				return nil, errors.New("state is unknown; set it explicitly")
			}
			st, err := enumString(models.ParseConditionalAccessPolicyState, p.State.String(), "state")
			if err != nil {
				return nil, err
			}
			body[f] = st
		case FieldConditions:
			// Without users and applications the policy would be refused, or lose its assignments.
			if p.Conditions.Users == nil || p.Conditions.Applications == nil {
				return nil, errors.New("conditions need users and applications")
			}
			c, err := conditionsJSON(p.Conditions)
			if err != nil {
				return nil, fmt.Errorf("conditions: %w", err)
			}
			body[f] = c
		case FieldGrantControls:
			if p.GrantControls == nil {
				body[f] = nil
				continue
			}
			g, err := grantJSON(*p.GrantControls)
			if err != nil {
				return nil, fmt.Errorf("grantControls: %w", err)
			}
			body[f] = g
		case FieldSessionControls:
			if p.SessionControls == nil {
				body[f] = nil
				continue
			}
			s, err := sessionJSON(*p.SessionControls)
			if err != nil {
				return nil, fmt.Errorf("sessionControls: %w", err)
			}
			body[f] = s
		default:
			return nil, fmt.Errorf("property %q cannot be written (writable: displayName, state, conditions, grantControls, sessionControls)", f)
		}
	}
	return json.Marshal(body)
}

// list is a list as Graph must receive it: [] rather than null or nothing.
func list(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// conditionsJSON is a v1.0 conditionalAccessConditionSet with every property present.
func conditionsJSON(c capolicy.Conditions) (jsonObject, error) {
	users, err := usersJSON(*c.Users)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	apps, err := applicationsJSON(*c.Applications)
	if err != nil {
		return nil, fmt.Errorf("applications: %w", err)
	}
	out := jsonObject{
		"users":               users,
		"applications":        apps,
		"clientApplications":  nil,
		"platforms":           nil,
		"locations":           nil,
		"devices":             nil,
		"insiderRiskLevels":   nil,
		"authenticationFlows": nil,
	}
	if out["clientAppTypes"], err = enumList(models.ParseConditionalAccessClientApp, c.ClientAppTypes, "client app type"); err != nil {
		return nil, err
	}
	for key, levels := range map[string][]string{
		"userRiskLevels":             c.UserRiskLevels,
		"signInRiskLevels":           c.SignInRiskLevels,
		"servicePrincipalRiskLevels": c.ServicePrincipalRiskLevels,
	} {
		if out[key], err = enumList(models.ParseRiskLevel, levels, "risk level"); err != nil {
			return nil, err
		}
	}
	if len(c.InsiderRiskLevels) > 0 {
		if out["insiderRiskLevels"], err = enumString(models.ParseConditionalAccessInsiderRiskLevels, strings.Join(c.InsiderRiskLevels, ","), "insider risk level"); err != nil {
			return nil, err
		}
	}
	if ca := c.ClientApplications; ca != nil {
		// The agent-identity properties exist only in Graph beta; v1.0 would refuse them.
		f, err := filterJSON(ca.ServicePrincipalFilter)
		if err != nil {
			return nil, fmt.Errorf("servicePrincipalFilter: %w", err)
		}
		out["clientApplications"] = jsonObject{
			"includeServicePrincipals": list(ca.IncludeServicePrincipals),
			"excludeServicePrincipals": list(ca.ExcludeServicePrincipals),
			"servicePrincipalFilter":   f,
		}
	}
	if p := c.Platforms; p != nil {
		in, err := enumList(models.ParseConditionalAccessDevicePlatform, p.IncludePlatforms, "platform")
		if err != nil {
			return nil, err
		}
		ex, err := enumList(models.ParseConditionalAccessDevicePlatform, p.ExcludePlatforms, "platform")
		if err != nil {
			return nil, err
		}
		out["platforms"] = jsonObject{"includePlatforms": in, "excludePlatforms": ex}
	}
	if l := c.Locations; l != nil {
		out["locations"] = jsonObject{"includeLocations": list(l.IncludeLocations), "excludeLocations": list(l.ExcludeLocations)}
	}
	if d := c.Devices; d != nil {
		// v1.0 has the device filter only; the deprecated device-state lists are beta.
		f, err := filterJSON(d.DeviceFilter)
		if err != nil {
			return nil, fmt.Errorf("deviceFilter: %w", err)
		}
		out["devices"] = jsonObject{"deviceFilter": f}
	}
	if af := c.AuthenticationFlows; af != nil {
		var tm any
		if len(af.TransferMethods) > 0 {
			if tm, err = enumString(models.ParseConditionalAccessTransferMethods, strings.Join(af.TransferMethods, ","), "transfer method"); err != nil {
				return nil, err
			}
		}
		out["authenticationFlows"] = jsonObject{"transferMethods": tm}
	}
	return out, nil
}

func usersJSON(u capolicy.Users) (jsonObject, error) {
	in, err := guestsJSON(u.IncludeGuestsOrExternalUsers)
	if err != nil {
		return nil, fmt.Errorf("includeGuestsOrExternalUsers: %w", err)
	}
	ex, err := guestsJSON(u.ExcludeGuestsOrExternalUsers)
	if err != nil {
		return nil, fmt.Errorf("excludeGuestsOrExternalUsers: %w", err)
	}
	return jsonObject{
		"includeUsers":                 list(u.IncludeUsers),
		"excludeUsers":                 list(u.ExcludeUsers),
		"includeGroups":                list(u.IncludeGroups),
		"excludeGroups":                list(u.ExcludeGroups),
		"includeRoles":                 list(u.IncludeRoles),
		"excludeRoles":                 list(u.ExcludeRoles),
		"includeGuestsOrExternalUsers": in,
		"excludeGuestsOrExternalUsers": ex,
	}, nil
}

func applicationsJSON(a capolicy.Applications) (jsonObject, error) {
	f, err := filterJSON(a.ApplicationFilter)
	if err != nil {
		return nil, fmt.Errorf("applicationFilter: %w", err)
	}
	return jsonObject{
		"includeApplications":                         list(a.IncludeApplications),
		"excludeApplications":                         list(a.ExcludeApplications),
		"includeUserActions":                          list(a.IncludeUserActions),
		"includeAuthenticationContextClassReferences": list(a.IncludeAuthenticationContextClassReferences),
		"applicationFilter":                           f,
	}, nil
}

// guestsJSON returns nil (null) for an absent guest selection.
func guestsJSON(g *capolicy.GuestsOrExternalUsers) (any, error) {
	if g == nil {
		return nil, nil
	}
	out := jsonObject{"guestOrExternalUserTypes": nil, "externalTenants": nil}
	if len(g.GuestOrExternalUserTypes) > 0 {
		v, err := enumString(models.ParseConditionalAccessGuestOrExternalUserTypes, strings.Join(g.GuestOrExternalUserTypes, ","), "guest or external user type")
		if err != nil {
			return nil, err
		}
		out["guestOrExternalUserTypes"] = v
	}
	if et := g.ExternalTenants; et != nil {
		t := jsonObject{}
		kind := et.MembershipKind
		switch {
		case kind == "enumerated" || len(et.Members) > 0:
			t["@odata.type"] = "#microsoft.graph.conditionalAccessEnumeratedExternalTenants"
			t["members"] = list(et.Members)
			if kind == "" {
				kind = "enumerated"
			}
		case kind == "all":
			t["@odata.type"] = "#microsoft.graph.conditionalAccessAllExternalTenants"
		default:
			t["@odata.type"] = "#microsoft.graph.conditionalAccessExternalTenants"
		}
		if kind != "" {
			k, err := enumString(models.ParseConditionalAccessExternalTenantsMembershipKind, kind, "membership kind")
			if err != nil {
				return nil, err
			}
			t["membershipKind"] = k
		}
		out["externalTenants"] = t
	}
	return out, nil
}

// filterJSON returns nil (null) for an absent filter.
func filterJSON(f *capolicy.Filter) (any, error) {
	if f == nil {
		return nil, nil
	}
	out := jsonObject{"mode": nil, "rule": f.Rule}
	if f.Mode != "" {
		m, err := enumString(models.ParseFilterMode, f.Mode, "filter mode")
		if err != nil {
			return nil, err
		}
		out["mode"] = m
	}
	return out, nil
}

// grantJSON is a v1.0 conditionalAccessGrantControls with every property present.
func grantJSON(g capolicy.GrantControls) (jsonObject, error) {
	controls, err := enumList(models.ParseConditionalAccessGrantControl, g.BuiltInControls, "built-in control")
	if err != nil {
		return nil, err
	}
	out := jsonObject{
		"operator":                    nil,
		"builtInControls":             controls,
		"customAuthenticationFactors": list(g.CustomAuthenticationFactors),
		"termsOfUse":                  list(g.TermsOfUse),
		"authenticationStrength":      nil,
	}
	if g.Operator != "" {
		out["operator"] = g.Operator
	}
	if s := g.AuthenticationStrength; s != nil {
		if s.ID == "" {
			return nil, errors.New("authenticationStrength has no id")
		}
		// Graph takes the strength by reference: only its id is written.
		out["authenticationStrength"] = jsonObject{"id": s.ID}
	}
	return out, nil
}

// sessionJSON is a v1.0 conditionalAccessSessionControls with every property present. The domain has
// no secureSignInSession, so writing session controls clears it.
func sessionJSON(s capolicy.SessionControls) (jsonObject, error) {
	out := jsonObject{
		"disableResilienceDefaults":       nil,
		"applicationEnforcedRestrictions": nil,
		"cloudAppSecurity":                nil,
		"persistentBrowser":               nil,
		"signInFrequency":                 nil,
		"secureSignInSession":             nil,
	}
	if s.DisableResilienceDefaults != nil {
		out["disableResilienceDefaults"] = *s.DisableResilienceDefaults
	}
	if a := s.ApplicationEnforcedRestrictions; a != nil {
		out["applicationEnforcedRestrictions"] = jsonObject{"isEnabled": a.IsEnabled}
	}
	if c := s.CloudAppSecurity; c != nil {
		m := jsonObject{"isEnabled": c.IsEnabled, "cloudAppSecurityType": nil}
		if c.Type != "" {
			t, err := enumString(models.ParseCloudAppSecuritySessionControlType, c.Type, "cloud app security type")
			if err != nil {
				return nil, err
			}
			m["cloudAppSecurityType"] = t
		}
		out["cloudAppSecurity"] = m
	}
	if p := s.PersistentBrowser; p != nil {
		m := jsonObject{"isEnabled": p.IsEnabled, "mode": nil}
		if p.Mode != "" {
			v, err := enumString(models.ParsePersistentBrowserSessionMode, p.Mode, "persistent browser mode")
			if err != nil {
				return nil, err
			}
			m["mode"] = v
		}
		out["persistentBrowser"] = m
	}
	if f := s.SignInFrequency; f != nil {
		m := jsonObject{"isEnabled": f.IsEnabled, "value": nil, "type": nil, "authenticationType": nil, "frequencyInterval": nil}
		if f.Value != 0 {
			m["value"] = f.Value
		}
		for key, e := range map[string]struct {
			v     string
			parse func(string) (any, error)
		}{
			"type":               {f.Type, models.ParseSigninFrequencyType},
			"authenticationType": {f.AuthenticationType, models.ParseSignInFrequencyAuthenticationType},
			"frequencyInterval":  {f.FrequencyInterval, models.ParseSignInFrequencyInterval},
		} {
			if e.v == "" {
				continue
			}
			v, err := enumString(e.parse, e.v, "sign-in frequency "+key)
			if err != nil {
				return nil, err
			}
			m[key] = v
		}
		out["signInFrequency"] = m
	}
	return out, nil
}

// enumString reads one Graph spelling (a flags value comma-joined) through the SDK's parser and
// returns Graph's canonical spelling; the parsers answer (nil, nil) for a value they do not know,
// which must not pass silently.
func enumString(parse func(string) (any, error), v, what string) (string, error) {
	x, err := parse(v)
	if err != nil || x == nil {
		return "", fmt.Errorf("unknown %s %q", what, v)
	}
	s, ok := x.(fmt.Stringer)
	if !ok {
		return "", fmt.Errorf("unknown %s %q", what, v)
	}
	return s.String(), nil
}

// enumList is enumString for each item of a list, [] for none.
func enumList(parse func(string) (any, error), vs []string, what string) ([]string, error) {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		s, err := enumString(parse, v, what)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
