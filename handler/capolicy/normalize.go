package capolicy

import (
	"slices"
	"strconv"
	"strings"
)

// vocab is the set of spellings Graph uses for one enum or token list. Values are matched ignoring case
// and rewritten to the canonical spelling; anything else is kept as written (after trimming), except
// that GUIDs are lower-cased because object and app ids compare without regard to case.
type vocab struct {
	names []string
	// flags lists the names of bit 0, 1, 2, ... of a Graph flags enum. Audit-log values send such
	// enums as a number (guestOrExternalUserTypes 63), Graph as "a,b"; both decode to names.
	flags []string
	// none is the flags enum's empty member: it means "nothing", so it is dropped rather than kept.
	none bool
	// closed marks an enum: every value Graph may send is in names or flags, so any other value (and
	// unknownFutureValue, Graph's name for a member this client does not know) is not recognised.
	closed bool
}

// The vocabularies of the lists a policy holds. They are read-only lookup tables, like stateNames.
var (
	vocabUsers             = vocab{names: []string{"All", "None", "GuestsOrExternalUsers"}}
	vocabApps              = vocab{names: []string{"All", "None", "Office365", "MicrosoftAdminPortals"}}
	vocabUserActions       = vocab{names: []string{"urn:user:registersecurityinfo", "urn:user:registerdevice"}}
	vocabServicePrincipals = vocab{names: []string{"All", "None", "ServicePrincipalsInMyTenant"}}
	vocabLocations         = vocab{names: []string{"All", "AllTrusted"}}
	vocabDevices           = vocab{names: []string{"All", "Compliant", "DomainJoined"}}
	vocabPlatforms         = vocab{names: []string{"all", "android", "iOS", "windows", "windowsPhone", "macOS", "linux", "unknownFutureValue"}, closed: true}
	vocabClientAppTypes    = vocab{names: []string{"all", "browser", "mobileAppsAndDesktopClients", "exchangeActiveSync", "easSupported", "other", "unknownFutureValue"}, closed: true}
	vocabRiskLevels        = vocab{names: []string{"low", "medium", "high", "hidden", "none", "unknownFutureValue"}, closed: true}
	vocabInsiderRisk       = vocab{flags: []string{"minor", "moderate", "elevated", "unknownFutureValue"}, closed: true}
	vocabTransferMethods   = vocab{flags: []string{"deviceCodeFlow", "authenticationTransfer", "unknownFutureValue"}, none: true, closed: true}
	vocabGuestTypes        = vocab{flags: []string{"internalGuest", "b2bCollaborationGuest", "b2bCollaborationMember",
		"b2bDirectConnectUser", "otherExternalUser", "serviceProvider", "unknownFutureValue"}, none: true, closed: true}
	vocabBuiltInControls = vocab{names: []string{"block", "mfa", "compliantDevice", "domainJoinedDevice", "approvedApplication",
		"compliantApplication", "passwordChange", "unknownFutureValue"}, closed: true}
	vocabIDs = vocab{}
)

// canon returns the canonical spelling of one trimmed, non-empty token.
func (v vocab) canon(s string) string {
	for _, n := range v.names {
		if strings.EqualFold(s, n) {
			return n
		}
	}
	for _, n := range v.flags {
		if strings.EqualFold(s, n) {
			return n
		}
	}
	if isGUID(s) {
		return strings.ToLower(s)
	}
	return s
}

// recognised reports whether t is a value the vocabulary knows. Only a closed vocabulary (an enum)
// can say no; lists of ids and tokens take any id.
func (v vocab) recognised(t string) bool {
	if !v.closed {
		return true
	}
	if strings.EqualFold(t, "unknownFutureValue") {
		return false
	}
	for _, n := range v.names {
		if strings.EqualFold(t, n) {
			return true
		}
	}
	for _, n := range v.flags {
		if strings.EqualFold(t, n) {
			return true
		}
	}
	return false
}

// isFlags reports whether v is a flags enum, whose list items may be comma-joined or numeric.
func (v vocab) isFlags() bool { return len(v.flags) > 0 }

// bits expands a numeric flags value into names. ok is false when s is not a decimal number that
// fits in 64 bits; such a token is kept as written. Bits beyond the known ones read as
// unknownFutureValue, which no rule treats as harmless.
func (v vocab) bits(s string, out []string) ([]string, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return out, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return out, false
	}
	for i, name := range v.flags {
		if n&(1<<uint(i)) != 0 {
			out = append(out, name)
		}
	}
	if len(v.flags) < 64 && n>>uint(len(v.flags)) != 0 {
		out = append(out, v.flags[len(v.flags)-1])
	}
	return out, true
}

// eachToken calls fn with every trimmed, non-empty token of list, splitting comma-joined items of a
// flags enum and expanding numeric ones, and skipping the enum's "none". It stops when fn returns
// false. Evaluate and Normalize both read lists through it, so they agree on what a list holds.
func (v vocab) eachToken(list []string, fn func(tok string) bool) bool {
	var buf [8]string
	for _, item := range list {
		if !v.isFlags() {
			if t := strings.TrimSpace(item); t != "" && !fn(t) {
				return false
			}
			continue
		}
		for part := range strings.SplitSeq(item, ",") {
			t := strings.TrimSpace(part)
			if t == "" || (v.none && strings.EqualFold(t, "none")) {
				continue
			}
			if names, ok := v.bits(t, buf[:0]); ok {
				for _, n := range names {
					if !fn(n) {
						return false
					}
				}
				continue
			}
			if !fn(t) {
				return false
			}
		}
	}
	return true
}

// empty reports whether list holds no token.
func (v vocab) empty(list []string) bool {
	return v.eachToken(list, func(string) bool { return false })
}

// has reports whether list holds token, ignoring case.
func (v vocab) has(list []string, token string) bool {
	return !v.eachToken(list, func(t string) bool { return !strings.EqualFold(t, token) })
}

// norm returns the canonical form of list: canonical spellings, sorted, without duplicates, and nil
// when empty. It never shares memory with list.
func (v vocab) norm(list []string) []string {
	var out []string
	v.eachToken(list, func(t string) bool {
		out = append(out, v.canon(t))
		return true
	})
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// isGUID reports whether s has the 8-4-4-4-12 hex shape of an object or app id.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// canonWord returns the canonical spelling of a single enum value, or the trimmed value itself.
func canonWord(s string, names ...string) string {
	s = strings.TrimSpace(s)
	for _, n := range names {
		if strings.EqualFold(s, n) {
			return n
		}
	}
	return s
}

// filterSet reports whether f filters anything. A filter without a rule cannot match or exclude.
func filterSet(f *Filter) bool { return f != nil && strings.TrimSpace(f.Rule) != "" }

// strengthSet reports whether s references or describes an authentication strength at all.
func strengthSet(s *AuthenticationStrength) bool {
	return s != nil && (strings.TrimSpace(s.ID) != "" || strings.TrimSpace(s.RequirementsSatisfied) != "" ||
		strings.TrimSpace(s.DisplayName) != "" || !vocabIDs.empty(s.AllowedCombinations))
}

// Normalize returns the canonical form of p, which Diff compares and Evaluate agrees with: nil and
// empty lists unified, enum values in Graph's spelling whatever their case (so "MFA" is "mfa"), GUIDs
// lower-cased, flags enums split into names, sets sorted and deduplicated, and sections that say
// nothing (empty lists, filters without a rule, switched-off session controls) set to nil. Display
// name, dates and filter rules are kept as written. Normalize never modifies p.
func Normalize(p Policy) Policy {
	out := Policy{
		ID:               vocabIDs.canonOne(p.ID),
		DisplayName:      p.DisplayName,
		State:            p.State,
		TemplateID:       vocabIDs.canonOne(p.TemplateID),
		CreatedDateTime:  p.CreatedDateTime,
		ModifiedDateTime: p.ModifiedDateTime,
		Conditions:       normConditions(p.Conditions),
		GrantControls:    normGrant(p.GrantControls),
		SessionControls:  normSession(p.SessionControls),
	}
	if out.State < StateUnknown || out.State > StateReportOnly {
		out.State = StateUnknown
	}
	if out.State == StateUnknown {
		out.UnrecognisedState = strings.TrimSpace(p.UnrecognisedState)
	}
	return out
}

// canonOne canonicalises a single trimmed value, keeping the empty string empty.
func (v vocab) canonOne(s string) string {
	if s = strings.TrimSpace(s); s == "" {
		return ""
	}
	return v.canon(s)
}

func normConditions(c Conditions) Conditions {
	return Conditions{
		Users:                      normUsers(c.Users),
		Applications:               normApplications(c.Applications),
		ClientApplications:         normClientApplications(c.ClientApplications),
		ClientAppTypes:             vocabClientAppTypes.norm(c.ClientAppTypes),
		Platforms:                  normPlatforms(c.Platforms),
		Locations:                  normLocations(c.Locations),
		Devices:                    normDevices(c.Devices),
		UserRiskLevels:             vocabRiskLevels.norm(c.UserRiskLevels),
		SignInRiskLevels:           vocabRiskLevels.norm(c.SignInRiskLevels),
		ServicePrincipalRiskLevels: vocabRiskLevels.norm(c.ServicePrincipalRiskLevels),
		InsiderRiskLevels:          vocabInsiderRisk.norm(c.InsiderRiskLevels),
		AuthenticationFlows:        normFlows(c.AuthenticationFlows),
		Unrecognised:               normPaths(c.Unrecognised),
	}
}

// normPaths sorts and deduplicates the unrecognised properties, nil when there are none.
func normPaths(paths []UnknownValue) []UnknownValue {
	if len(paths) == 0 {
		return nil
	}
	out := slices.Clone(paths)
	slices.SortFunc(out, func(a, b UnknownValue) int {
		if c := strings.Compare(a.Field, b.Field); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	return slices.Compact(out)
}

func normUsers(u *Users) *Users {
	if u == nil {
		return nil
	}
	users, ids := vocabUsers, vocabIDs
	out := Users{
		IncludeUsers:                 users.norm(u.IncludeUsers),
		ExcludeUsers:                 users.norm(u.ExcludeUsers),
		IncludeGroups:                ids.norm(u.IncludeGroups),
		ExcludeGroups:                ids.norm(u.ExcludeGroups),
		IncludeRoles:                 ids.norm(u.IncludeRoles),
		ExcludeRoles:                 ids.norm(u.ExcludeRoles),
		IncludeGuestsOrExternalUsers: normGuests(u.IncludeGuestsOrExternalUsers),
		ExcludeGuestsOrExternalUsers: normGuests(u.ExcludeGuestsOrExternalUsers),
	}
	if out.IncludeUsers == nil && out.ExcludeUsers == nil && out.IncludeGroups == nil && out.ExcludeGroups == nil &&
		out.IncludeRoles == nil && out.ExcludeRoles == nil && out.IncludeGuestsOrExternalUsers == nil &&
		out.ExcludeGuestsOrExternalUsers == nil {
		return nil
	}
	return &out
}

// normGuests drops a guest selection without types: Graph requires types, and without them the
// selection names nobody.
func normGuests(g *GuestsOrExternalUsers) *GuestsOrExternalUsers {
	if g == nil {
		return nil
	}
	types := vocabGuestTypes.norm(g.GuestOrExternalUserTypes)
	if types == nil {
		return nil
	}
	out := &GuestsOrExternalUsers{GuestOrExternalUserTypes: types}
	if t := g.ExternalTenants; t != nil {
		kind := canonWord(t.MembershipKind, "all", "enumerated", "unknownFutureValue")
		members := vocabIDs.norm(t.Members)
		if kind != "" || members != nil {
			out.ExternalTenants = &ExternalTenants{MembershipKind: kind, Members: members}
		}
	}
	return out
}

func normFilter(f *Filter) *Filter {
	if !filterSet(f) {
		return nil
	}
	return &Filter{Mode: canonWord(f.Mode, "include", "exclude"), Rule: strings.TrimSpace(f.Rule)}
}

func normApplications(a *Applications) *Applications {
	if a == nil {
		return nil
	}
	out := Applications{
		IncludeApplications:                         vocabApps.norm(a.IncludeApplications),
		ExcludeApplications:                         vocabApps.norm(a.ExcludeApplications),
		IncludeUserActions:                          vocabUserActions.norm(a.IncludeUserActions),
		IncludeAuthenticationContextClassReferences: vocabIDs.norm(a.IncludeAuthenticationContextClassReferences),
		ApplicationFilter:                           normFilter(a.ApplicationFilter),
	}
	if out.IncludeApplications == nil && out.ExcludeApplications == nil && out.IncludeUserActions == nil &&
		out.IncludeAuthenticationContextClassReferences == nil && out.ApplicationFilter == nil {
		return nil
	}
	return &out
}

func normClientApplications(c *ClientApplications) *ClientApplications {
	if c == nil {
		return nil
	}
	sp := vocabServicePrincipals
	out := ClientApplications{
		IncludeServicePrincipals:        sp.norm(c.IncludeServicePrincipals),
		ExcludeServicePrincipals:        sp.norm(c.ExcludeServicePrincipals),
		ServicePrincipalFilter:          normFilter(c.ServicePrincipalFilter),
		IncludeAgentIDServicePrincipals: sp.norm(c.IncludeAgentIDServicePrincipals),
		ExcludeAgentIDServicePrincipals: sp.norm(c.ExcludeAgentIDServicePrincipals),
		AgentIDServicePrincipalFilter:   normFilter(c.AgentIDServicePrincipalFilter),
	}
	if out.IncludeServicePrincipals == nil && out.ExcludeServicePrincipals == nil && out.ServicePrincipalFilter == nil &&
		out.IncludeAgentIDServicePrincipals == nil && out.ExcludeAgentIDServicePrincipals == nil &&
		out.AgentIDServicePrincipalFilter == nil {
		return nil
	}
	return &out
}

func normPlatforms(p *Platforms) *Platforms {
	if p == nil {
		return nil
	}
	v := vocabPlatforms
	out := Platforms{IncludePlatforms: v.norm(p.IncludePlatforms), ExcludePlatforms: v.norm(p.ExcludePlatforms)}
	if out.IncludePlatforms == nil && out.ExcludePlatforms == nil {
		return nil
	}
	return &out
}

func normLocations(l *Locations) *Locations {
	if l == nil {
		return nil
	}
	v := vocabLocations
	out := Locations{IncludeLocations: v.norm(l.IncludeLocations), ExcludeLocations: v.norm(l.ExcludeLocations)}
	if out.IncludeLocations == nil && out.ExcludeLocations == nil {
		return nil
	}
	return &out
}

func normDevices(d *Devices) *Devices {
	if d == nil {
		return nil
	}
	v := vocabDevices
	out := Devices{DeviceFilter: normFilter(d.DeviceFilter), IncludeDevices: v.norm(d.IncludeDevices), ExcludeDevices: v.norm(d.ExcludeDevices)}
	if out.DeviceFilter == nil && out.IncludeDevices == nil && out.ExcludeDevices == nil {
		return nil
	}
	return &out
}

func normFlows(f *AuthenticationFlows) *AuthenticationFlows {
	if f == nil {
		return nil
	}
	methods := vocabTransferMethods.norm(f.TransferMethods)
	if methods == nil {
		return nil
	}
	return &AuthenticationFlows{TransferMethods: methods}
}

func normStrength(s *AuthenticationStrength) *AuthenticationStrength {
	if !strengthSet(s) {
		return nil
	}
	combos := vocabIDs.norm(s.AllowedCombinations)
	return &AuthenticationStrength{
		ID:                    vocabIDs.canonOne(s.ID),
		DisplayName:           strings.TrimSpace(s.DisplayName),
		PolicyType:            canonWord(s.PolicyType, "builtIn", "custom", "unknownFutureValue"),
		RequirementsSatisfied: canonWord(s.RequirementsSatisfied, "none", "mfa", "unknownFutureValue"),
		AllowedCombinations:   combos,
	}
}

// normGrant drops a grant that requires nothing: an operator without controls is not a grant. A grant
// with unrecognised properties is kept: what it requires is not known.
func normGrant(g *GrantControls) *GrantControls {
	if g == nil {
		return nil
	}
	out := GrantControls{
		Operator:                    strings.ToUpper(strings.TrimSpace(g.Operator)),
		BuiltInControls:             vocabBuiltInControls.norm(g.BuiltInControls),
		CustomAuthenticationFactors: vocabIDs.norm(g.CustomAuthenticationFactors),
		TermsOfUse:                  vocabIDs.norm(g.TermsOfUse),
		AuthenticationStrength:      normStrength(g.AuthenticationStrength),
		Unrecognised:                normPaths(g.Unrecognised),
	}
	if out.BuiltInControls == nil && out.CustomAuthenticationFactors == nil && out.TermsOfUse == nil &&
		out.AuthenticationStrength == nil && out.Unrecognised == nil {
		return nil
	}
	return &out
}

// normSession drops session controls that change nothing: a switched-off setting, and
// disableResilienceDefaults false (the default), so Graph's "null" and "off" compare equal.
func normSession(s *SessionControls) *SessionControls {
	if s == nil {
		return nil
	}
	var out SessionControls
	if s.DisableResilienceDefaults != nil && *s.DisableResilienceDefaults {
		t := true
		out.DisableResilienceDefaults = &t
	}
	out.ApplicationEnforcedRestrictions = normEnabled(s.ApplicationEnforcedRestrictions, nil)
	out.CloudAppSecurity = normEnabled(s.CloudAppSecurity, []string{"mcasConfigured", "monitorOnly", "blockDownloads", "unknownFutureValue"})
	out.PersistentBrowser = normEnabled(s.PersistentBrowser, []string{"always", "never"})
	if f := s.SignInFrequency; f != nil && f.IsEnabled {
		out.SignInFrequency = &SignInFrequency{
			IsEnabled:          true,
			Value:              f.Value,
			Type:               canonWord(f.Type, "days", "hours"),
			AuthenticationType: canonWord(f.AuthenticationType, "primaryAndSecondaryAuthentication", "secondaryAuthentication", "unknownFutureValue"),
			FrequencyInterval:  canonWord(f.FrequencyInterval, "timeBased", "everyTime", "unknownFutureValue"),
		}
	}
	if out == (SessionControls{}) {
		return nil
	}
	return &out
}

func normEnabled(e *EnabledSetting, modes []string) *EnabledSetting {
	if e == nil || !e.IsEnabled {
		return nil
	}
	return &EnabledSetting{IsEnabled: true, Mode: canonWord(e.Mode, modes...), Type: canonWord(e.Type, modes...)}
}
