// Package capolicy is caguard's domain: its own model of a Conditional Access policy, the rules (R1..R19)
// that decide whether a tenant requires MFA for the Windows Azure Service Management API, the definition
// of the policy caguard owns, and a semantic diff. It does no I/O and imports nothing from outside the
// standard library, so every trigger, the tests and the benchmarks share one truth.
//
// The contract:
//   - ParsePolicy reads a policy from Graph v1.0 JSON or from an audit-log old/new value and returns its
//     normal form; malformed input is an error, never a panic, and a missing state is StateUnknown.
//   - What the model does not know never widens a policy: unknown enum values are kept as written and
//     read as narrowing, and unknown properties of the conditions or grant controls are listed
//     (Unrecognised) and fail the policy.
//   - Normalize gives the canonical form (case, order, nil versus empty); Evaluate and Diff agree with it.
//   - Evaluate returns a Report: compliant only when an enabled policy meets every rule, pending-enforcement
//     when a report-only policy meets every rule but R1, non-compliant otherwise; every failing rule of
//     every policy is a Reason with a code from Rules and one sentence for an admin.
//   - Desired is the policy caguard owns; Diff and TopLevelFields say what a PATCH must change.
package capolicy

import "strings"

// State is a policy's state. Its zero value is StateUnknown, never "enabled": msgraph-sdk-go's enum
// makes a missing state read as enabled, and a tool that guards MFA must not make that mistake.
type State int

// The states a policy can be in. The Graph spellings are in stateNames.
const (
	StateUnknown State = iota
	StateEnabled
	StateDisabled
	StateReportOnly
)

var stateNames = [...]string{
	StateUnknown:    "unknown",
	StateEnabled:    "enabled",
	StateDisabled:   "disabled",
	StateReportOnly: "enabledForReportingButNotEnforced",
}

// Well-known identifiers.
const (
	// AzureManagementAppID is the Windows Azure Service Management API in the public cloud.
	AzureManagementAppID = "797f4846-ba00-4fd7-ba43-dac1f8f63013"
	// AzurePortalAppID is the Azure portal client; excluding it also exempts portal sign-ins.
	AzurePortalAppID = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c"
)

// Policy is one Conditional Access policy in caguard's own terms. JSON field names follow Graph v1.0
// (camelCase), so a Graph answer or an audit-log old/new value decodes through ParsePolicy.
type Policy struct {
	ID               string `json:"id,omitempty"`
	DisplayName      string `json:"displayName,omitempty"`
	State            State  `json:"state"`
	TemplateID       string `json:"templateId,omitempty"`
	CreatedDateTime  string `json:"createdDateTime,omitempty"`
	ModifiedDateTime string `json:"modifiedDateTime,omitempty"`
	// UnrecognisedState is the state as written when it is not one caguard knows (State is then
	// StateUnknown), so a reason can name it; empty when the state is known or absent. Never written.
	UnrecognisedState string           `json:"-"`
	Conditions        Conditions       `json:"conditions"`
	GrantControls     *GrantControls   `json:"grantControls,omitempty"`
	SessionControls   *SessionControls `json:"sessionControls,omitempty"`
	// Unreadable names the value that kept a listed policy from being decoded at all (see
	// UnreadablePolicy); the rest of such a policy is empty, and the rules fail it. Never written.
	Unreadable []UnknownValue `json:"-"`
}

// MicrosoftManagedPrefix starts the display name of every Microsoft-managed policy.
const MicrosoftManagedPrefix = "Microsoft-managed"

// MicrosoftManaged reports whether Microsoft created and manages the policy. caguard never writes such
// a policy. Graph has no property that says so (v1.0 and beta list none); templateId does not: a
// policy an administrator creates from a template carries it too, and is the administrator's. What
// Microsoft documents is the name: "Microsoft-managed policy names start with Microsoft-managed"
// (Entra docs, "Microsoft-managed Conditional Access policies", Monitor and review), and
// administrators "can't rename or delete" them. So a policy so named is treated as Microsoft's; an
// administrator's policy that copies the prefix is left alone too, which errs on the side of not
// writing.
func (p Policy) MicrosoftManaged() bool {
	name := strings.TrimSpace(p.DisplayName)
	return len(name) >= len(MicrosoftManagedPrefix) && strings.EqualFold(name[:len(MicrosoftManagedPrefix)], MicrosoftManagedPrefix)
}

// Conditions are the policy's assignments and conditions.
type Conditions struct {
	Users                      *Users               `json:"users,omitempty"`
	Applications               *Applications        `json:"applications,omitempty"`
	ClientApplications         *ClientApplications  `json:"clientApplications,omitempty"`
	ClientAppTypes             []string             `json:"clientAppTypes,omitempty"`
	Platforms                  *Platforms           `json:"platforms,omitempty"`
	Locations                  *Locations           `json:"locations,omitempty"`
	Devices                    *Devices             `json:"devices,omitempty"`
	UserRiskLevels             []string             `json:"userRiskLevels,omitempty"`
	SignInRiskLevels           []string             `json:"signInRiskLevels,omitempty"`
	ServicePrincipalRiskLevels []string             `json:"servicePrincipalRiskLevels,omitempty"`
	InsiderRiskLevels          []string             `json:"insiderRiskLevels,omitempty"`
	AuthenticationFlows        *AuthenticationFlows `json:"authenticationFlows,omitempty"`
	// Unrecognised lists, by dotted Graph path (conditions.users.excludeSomething) with the value as
	// Graph sent it, the properties of the conditions and of the sections in them that this model does
	// not know and that hold a value. Such a property may narrow the policy, so no policy with one
	// counts as compliant. It is never written back to Graph.
	Unrecognised []UnknownValue `json:"-"`
}

// UnknownValue is a value caguard does not recognise: an unmodelled property (Field is its path,
// Value its JSON, shortened), or a member of an enum the rules read that caguard does not know
// (Field is the enum's path, Value the member as written). A reason that fails a policy for one names
// it, so the admin reading the alert sees what Graph sent.
type UnknownValue struct {
	Field string `json:"field"`
	Value string `json:"value"`
}

// Users are the user assignments. Include/exclude lists hold object ids or the tokens All, None and
// GuestsOrExternalUsers; roles hold directory role template ids.
type Users struct {
	IncludeUsers                 []string               `json:"includeUsers,omitempty"`
	ExcludeUsers                 []string               `json:"excludeUsers,omitempty"`
	IncludeGroups                []string               `json:"includeGroups,omitempty"`
	ExcludeGroups                []string               `json:"excludeGroups,omitempty"`
	IncludeRoles                 []string               `json:"includeRoles,omitempty"`
	ExcludeRoles                 []string               `json:"excludeRoles,omitempty"`
	IncludeGuestsOrExternalUsers *GuestsOrExternalUsers `json:"includeGuestsOrExternalUsers,omitempty"`
	ExcludeGuestsOrExternalUsers *GuestsOrExternalUsers `json:"excludeGuestsOrExternalUsers,omitempty"`
}

// GuestsOrExternalUsers selects guest and external user kinds. Graph sends the types as one
// comma-separated string; audit-log values may send a number (a bit set). Both normalise to names.
type GuestsOrExternalUsers struct {
	GuestOrExternalUserTypes []string         `json:"guestOrExternalUserTypes,omitempty"`
	ExternalTenants          *ExternalTenants `json:"externalTenants,omitempty"`
}

// ExternalTenants narrows GuestsOrExternalUsers to some tenants (membershipKind all or enumerated).
type ExternalTenants struct {
	MembershipKind string   `json:"membershipKind,omitempty"`
	Members        []string `json:"members,omitempty"`
}

// Applications are the target resources: app ids or All, None, Office365, MicrosoftAdminPortals.
type Applications struct {
	IncludeApplications                         []string `json:"includeApplications,omitempty"`
	ExcludeApplications                         []string `json:"excludeApplications,omitempty"`
	IncludeUserActions                          []string `json:"includeUserActions,omitempty"`
	IncludeAuthenticationContextClassReferences []string `json:"includeAuthenticationContextClassReferences,omitempty"`
	ApplicationFilter                           *Filter  `json:"applicationFilter,omitempty"`
}

// Filter is a rule-based filter (application, device or service principal filter).
type Filter struct {
	Mode string `json:"mode,omitempty"`
	Rule string `json:"rule,omitempty"`
}

// ClientApplications makes a policy a workload-identity policy when it includes service principals
// or agent identities. The agent-identity fields exist only in Graph beta; v1.0 omits them.
type ClientApplications struct {
	IncludeServicePrincipals        []string `json:"includeServicePrincipals,omitempty"`
	ExcludeServicePrincipals        []string `json:"excludeServicePrincipals,omitempty"`
	ServicePrincipalFilter          *Filter  `json:"servicePrincipalFilter,omitempty"`
	IncludeAgentIDServicePrincipals []string `json:"includeAgentIdServicePrincipals,omitempty"`
	ExcludeAgentIDServicePrincipals []string `json:"excludeAgentIdServicePrincipals,omitempty"`
	AgentIDServicePrincipalFilter   *Filter  `json:"agentIdServicePrincipalFilter,omitempty"`
}

// Platforms narrows a policy to device platforms.
type Platforms struct {
	IncludePlatforms []string `json:"includePlatforms,omitempty"`
	ExcludePlatforms []string `json:"excludePlatforms,omitempty"`
}

// Locations narrows a policy to named locations (ids, All, AllTrusted).
type Locations struct {
	IncludeLocations []string `json:"includeLocations,omitempty"`
	ExcludeLocations []string `json:"excludeLocations,omitempty"`
}

// Devices narrows a policy with a device filter. IncludeDevices and ExcludeDevices are the deprecated
// device-state condition, which Graph beta and older audit values still carry; v1.0 has only the filter.
type Devices struct {
	DeviceFilter   *Filter  `json:"deviceFilter,omitempty"`
	IncludeDevices []string `json:"includeDevices,omitempty"`
	ExcludeDevices []string `json:"excludeDevices,omitempty"`
}

// AuthenticationFlows narrows a policy to device-code or authentication-transfer flows. Graph sends
// transferMethods as one comma-separated string.
type AuthenticationFlows struct {
	TransferMethods []string `json:"transferMethods,omitempty"`
}

// GrantControls are what a user must satisfy. Operator is AND or OR.
type GrantControls struct {
	Operator                    string                  `json:"operator,omitempty"`
	BuiltInControls             []string                `json:"builtInControls,omitempty"`
	CustomAuthenticationFactors []string                `json:"customAuthenticationFactors,omitempty"`
	TermsOfUse                  []string                `json:"termsOfUse,omitempty"`
	AuthenticationStrength      *AuthenticationStrength `json:"authenticationStrength,omitempty"`
	// Unrecognised lists the grant properties this model does not know and that hold a value
	// (grantControls.something): one may be an alternative to MFA, so such a grant never counts.
	Unrecognised []UnknownValue `json:"-"`
}

// AuthenticationStrength is an authentication strength policy, referenced by a grant or listed by
// Graph. RequirementsSatisfied is "mfa" for every strength that satisfies MFA.
type AuthenticationStrength struct {
	ID                    string   `json:"id,omitempty"`
	DisplayName           string   `json:"displayName,omitempty"`
	PolicyType            string   `json:"policyType,omitempty"`
	RequirementsSatisfied string   `json:"requirementsSatisfied,omitempty"`
	AllowedCombinations   []string `json:"allowedCombinations,omitempty"`
}

// SessionControls do not affect the verdict (R19) but are part of a policy's definition.
type SessionControls struct {
	DisableResilienceDefaults       *bool            `json:"disableResilienceDefaults,omitempty"`
	ApplicationEnforcedRestrictions *EnabledSetting  `json:"applicationEnforcedRestrictions,omitempty"`
	CloudAppSecurity                *EnabledSetting  `json:"cloudAppSecurity,omitempty"`
	PersistentBrowser               *EnabledSetting  `json:"persistentBrowser,omitempty"`
	SignInFrequency                 *SignInFrequency `json:"signInFrequency,omitempty"`
}

// EnabledSetting is a session control that is switched on or off, with an optional mode or type.
type EnabledSetting struct {
	IsEnabled bool   `json:"isEnabled"`
	Mode      string `json:"mode,omitempty"`
	Type      string `json:"cloudAppSecurityType,omitempty"`
}

// SignInFrequency is the sign-in frequency session control.
type SignInFrequency struct {
	IsEnabled          bool   `json:"isEnabled"`
	Value              int    `json:"value,omitempty"`
	Type               string `json:"type,omitempty"`
	AuthenticationType string `json:"authenticationType,omitempty"`
	FrequencyInterval  string `json:"frequencyInterval,omitempty"`
}
