package capolicy

import "strings"

// Reason codes. Each names one way a policy falls short of requiring MFA for Azure management; Rules
// lists them with the rule they come from and the sentence an admin reads.
const (
	CodeStateReportOnly                = "STATE_REPORT_ONLY"
	CodeStateNotEnabled                = "STATE_NOT_ENABLED"
	CodeStateUnknown                   = "STATE_UNKNOWN"
	CodeWorkloadIdentityPolicy         = "WORKLOAD_IDENTITY_POLICY"
	CodeUsersNotAll                    = "USERS_NOT_ALL"
	CodeExcludedUserNotAllowlisted     = "EXCLUDED_USER_NOT_ALLOWLISTED"
	CodeExcludesGuests                 = "EXCLUDES_GUESTS"
	CodeExcludedGroupNotAllowlisted    = "EXCLUDED_GROUP_NOT_ALLOWLISTED"
	CodeExcludedGroupHasNonBreakGlass  = "EXCLUDED_GROUP_HAS_NON_BREAKGLASS_MEMBER"
	CodeExcludedGroupMembershipUnknown = "EXCLUDED_GROUP_MEMBERSHIP_UNKNOWN"
	CodeExcludesRoles                  = "EXCLUDES_ROLES"
	CodeAppNotTargeted                 = "APP_NOT_TARGETED"
	CodeAppExcluded                    = "APP_EXCLUDED"
	CodeAppFilterPresent               = "APP_FILTER_PRESENT"
	CodeClientAppTypesNarrowed         = "CLIENT_APP_TYPES_NARROWED"
	CodePlatformsNarrowed              = "PLATFORMS_NARROWED"
	CodeLocationsNarrowed              = "LOCATIONS_NARROWED"
	CodeDeviceFilterPresent            = "DEVICE_FILTER_PRESENT"
	CodeRiskConditionPresent           = "RISK_CONDITION_PRESENT"
	CodeAuthFlowConditionPresent       = "AUTH_FLOW_CONDITION_PRESENT"
	CodeNoGrantControls                = "NO_GRANT_CONTROLS"
	CodeGrantBlockNotMFA               = "GRANT_BLOCK_NOT_MFA"
	CodeNoMFAGrant                     = "NO_MFA_GRANT"
	CodeWeakAuthStrength               = "WEAK_AUTH_STRENGTH"
	CodeAuthStrengthUnresolved         = "AUTH_STRENGTH_UNRESOLVED"
	CodeGrantORWithNonMFAAlternative   = "GRANT_OR_WITH_NON_MFA_ALTERNATIVE"
	CodeUnrecognisedProperty           = "UNRECOGNISED_PROPERTY"
	CodeUnrecognisedValue              = "UNRECOGNISED_VALUE"
)

// Message templates, one per code. Rules publishes them; render fills them.
const (
	msgStateReportOnly                     = "State is enabledForReportingButNotEnforced (report-only), so the policy logs what it would do but does not enforce MFA."
	msgStateNotEnabled                     = "State is disabled, so the policy enforces nothing."
	msgStateUnknown                        = "State is {state}, so the policy cannot count as enforced."
	msgWorkloadIdentityPolicy              = "Targets workload identities ({identities}) rather than users, so it cannot require MFA from people."
	msgUsersNotAll                         = "Does not include All users (it includes {scope}), so everyone else reaches Azure management without this policy."
	msgExcludedUserNotAllowlisted          = "Excludes users that are not approved break-glass accounts: {ids}."
	msgExcludesGuests                      = "Excludes guest or external users ({which}), so they reach Azure management without MFA."
	msgExcludedGroupNotAllowlisted         = "Excludes groups that are not approved break-glass groups: {ids}."
	msgExcludedGroupHasNonBreakGlassMember = "Excludes break-glass group {group}, which has members that are not approved break-glass accounts: {ids}."
	msgExcludedGroupMembershipUnknown      = "Excludes break-glass group {group}, whose membership was not supplied, so its members cannot be shown to be break-glass accounts."
	msgExcludesRoles                       = "Excludes directory roles, whose holders then skip this policy: {ids}."
	msgAppNotTargeted                      = "Does not target {app}: includeApplications is {apps}, and only All or that app id counts."
	msgAppExcluded                         = "Excludes {apps}, which exempts Azure management sign-ins from the policy."
	msgAppFilterPresent                    = "Has an application filter ({filter}), whose matches depend on custom security attributes that cannot be evaluated here."
	msgClientAppTypesNarrowed              = "Applies only to client app types {types}; it must cover all, or at least browser and mobileAppsAndDesktopClients (the portal, Azure CLI and PowerShell)."
	msgPlatformsNarrowed                   = "Narrows device platforms (include {include}, exclude {exclude}); it must include all platforms and exclude none."
	msgLocationsNarrowed                   = "Narrows locations (include {include}, exclude {exclude}); it must include All locations and exclude none."
	msgDeviceFilterPresent                 = "Narrows devices ({devices}), so sign-ins from other devices skip this policy."
	msgRiskConditionPresent                = "Applies only at some risk levels ({levels}), so sign-ins at other levels skip this policy."
	msgAuthFlowConditionPresent            = "Applies only to the authentication flows {methods}, so ordinary sign-ins skip this policy."
	msgNoGrantControls                     = "Has no grant controls, so it requires nothing at sign-in (session controls alone never require MFA)."
	msgGrantBlockNotMFA                    = "Blocks access rather than requiring MFA; the control needs a policy that lets users in with MFA."
	msgNoMFAGrant                          = "Requires {controls} but not MFA."
	msgWeakAuthStrength                    = "Requires authentication strength {strength}, which does not satisfy MFA (requirementsSatisfied is {requirement})."
	msgAuthStrengthUnresolved              = "Requires authentication strength {id}, whose definition was not supplied, so it cannot be shown to satisfy MFA."
	msgGrantORWithNonMFAAlternative        = "Accepts {alternatives} as an alternative to MFA (operator {operator}), so MFA is not required."
	msgUnrecognisedProperty                = "Holds properties caguard does not recognise ({properties}); any of them may narrow the policy or offer an alternative to MFA, so it cannot count as requiring MFA."
	msgUnrecognisedValue                   = "Holds values caguard does not recognise ({values}); any of them may narrow the policy or offer an alternative to MFA, so it cannot count as requiring MFA."
)

// Rule describes one reason code: the rule it enforces, what a compliant policy has, and the
// template of the sentence an admin reads. Placeholders in braces are filled from the policy.
type Rule struct {
	Rule        string `json:"rule"`
	Code        string `json:"code"`
	Requirement string `json:"requirement"`
	Message     string `json:"message"`
}

// Rules returns every reason code in rule order. The slice is new on every call, so callers may keep
// or change it; the README's rule table is generated from it.
func Rules() []Rule {
	rules := []Rule{
		{"R1", CodeStateReportOnly, "`state` is `enabled`; report-only is reported apart so a restored policy shows as pending enforcement", msgStateReportOnly},
		{"R1", CodeStateNotEnabled, "`state` is `enabled`", msgStateNotEnabled},
		{"R1", CodeStateUnknown, "`state` is present and one of the Graph states (`enabled`, `disabled`, `enabledForReportingButNotEnforced`); the reason names a state caguard does not know", msgStateUnknown},
		{"R2", CodeWorkloadIdentityPolicy, "a user policy: no service principals or agent identities included, no service-principal filter", msgWorkloadIdentityPolicy},
		{"R3", CodeUsersNotAll, "`includeUsers` contains `All`", msgUsersNotAll},
		{"R4", CodeExcludedUserNotAllowlisted, "every id in `excludeUsers` is a configured break-glass user", msgExcludedUserNotAllowlisted},
		{"R4, R7", CodeExcludesGuests, "no `GuestsOrExternalUsers` token in `excludeUsers`; `excludeGuestsOrExternalUsers` absent or `none`", msgExcludesGuests},
		{"R5", CodeExcludedGroupNotAllowlisted, "every id in `excludeGroups` is a configured break-glass group", msgExcludedGroupNotAllowlisted},
		{"R5", CodeExcludedGroupHasNonBreakGlass, "every transitive member of an excluded break-glass group is a break-glass user (a nested group's own id counts as a member)", msgExcludedGroupHasNonBreakGlassMember},
		{"R5", CodeExcludedGroupMembershipUnknown, "the membership of every excluded break-glass group was supplied", msgExcludedGroupMembershipUnknown},
		{"R6", CodeExcludesRoles, "`excludeRoles` is empty", msgExcludesRoles},
		{"R8", CodeAppNotTargeted, "`includeApplications` contains every target app id or `All` (`MicrosoftAdminPortals`, `Office365`, user actions and authentication contexts do not count)", msgAppNotTargeted},
		{"R9", CodeAppExcluded, "`excludeApplications` holds no target app id, `MicrosoftAdminPortals`, the Azure portal or `All`", msgAppExcluded},
		{"R10", CodeAppFilterPresent, "no `applicationFilter`", msgAppFilterPresent},
		{"R11", CodeClientAppTypesNarrowed, "`clientAppTypes` is empty, contains `all`, or contains both `browser` and `mobileAppsAndDesktopClients`", msgClientAppTypesNarrowed},
		{"R12", CodePlatformsNarrowed, "no platform condition, or `includePlatforms` contains `all` and `excludePlatforms` is empty", msgPlatformsNarrowed},
		{"R13", CodeLocationsNarrowed, "no location condition, or `includeLocations` contains `All` and `excludeLocations` is empty", msgLocationsNarrowed},
		{"R14", CodeDeviceFilterPresent, "no `devices.deviceFilter` (nor the deprecated device-state condition)", msgDeviceFilterPresent},
		{"R15", CodeRiskConditionPresent, "user, sign-in, service-principal and insider risk levels all empty", msgRiskConditionPresent},
		{"R16", CodeAuthFlowConditionPresent, "`authenticationFlows.transferMethods` empty", msgAuthFlowConditionPresent},
		{"R17, R19", CodeNoGrantControls, "`grantControls` present (session controls alone do not count)", msgNoGrantControls},
		{"R17", CodeGrantBlockNotMFA, "the grant is not `block`", msgGrantBlockNotMFA},
		{"R17", CodeNoMFAGrant, "`mfa` in `builtInControls`, an MFA authentication strength, or (only when configured) a custom control", msgNoMFAGrant},
		{"R17", CodeWeakAuthStrength, "an authentication strength, when it is the only MFA candidate, has `requirementsSatisfied` `mfa`", msgWeakAuthStrength},
		{"R17", CodeAuthStrengthUnresolved, "every authentication strength that matters can be resolved to a definition", msgAuthStrengthUnresolved},
		{"R18", CodeGrantORWithNonMFAAlternative, "with `OR` (or no operator), every alternative is MFA: no other built-in control, terms of use, non-MFA strength or uncounted custom control", msgGrantORWithNonMFAAlternative},
		{"R2-R18", CodeUnrecognisedProperty, "no property in the conditions or grant controls that caguard does not model, unless it is empty (`null`, `[]`, `{}`, `\"\"`)", msgUnrecognisedProperty},
		{"R2-R18", CodeUnrecognisedValue, "every value the rules read is one caguard knows (`unknownFutureValue` is not): client app types, platforms, risk levels, guest and external user types and tenant kinds, transfer methods, the grant operator (`AND`, `OR` or none), built-in controls, and an authentication strength's `requirementsSatisfied` and the methods of its allowed combinations", msgUnrecognisedValue},
	}
	return append(rules, reviewRules()...)
}

// render fills the {placeholders} of a message template, in order, from args. Templates are the
// constants above, so a missing argument is a programming error caught by the tests. Arguments come
// from policy data, so control characters in them become spaces: an alert stays one line.
func render(tmpl string, args ...string) string {
	n := len(tmpl)
	for _, a := range args {
		n += len(a)
	}
	var b strings.Builder
	b.Grow(n)
	i := 0
	for {
		open := strings.IndexByte(tmpl, '{')
		if open < 0 {
			break
		}
		end := strings.IndexByte(tmpl[open:], '}')
		if end < 0 {
			break
		}
		b.WriteString(tmpl[:open])
		if i < len(args) {
			for j := 0; j < len(args[i]); j++ {
				c := args[i][j]
				if c < 0x20 || c == 0x7f {
					c = ' '
				}
				b.WriteByte(c)
			}
		}
		i++
		tmpl = tmpl[open+end+1:]
	}
	b.WriteString(tmpl)
	return b.String()
}
