package capolicy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Identifiers used across the tests. The fixtures under testdata use the same break-glass ids.
const (
	bgUser1   = "b9c1a7d2-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
	bgUser2   = "c0d2b8e3-4f5a-4b6c-9d7e-8f9a0b1c2d3e"
	bgGroup   = "e1f3c9a4-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
	emptyBG   = "f2a4d0b5-6b7c-4d8e-9f0a-1b2c3d4e5f60" // allowlisted, supplied with no members
	unknownBG = "a5b6c7d8-9e0f-4a1b-8c2d-3e4f5a6b7c8d" // allowlisted, membership not supplied
	someUser  = "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"
	someGroup = "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f"
	nestedGrp = "3d4e5f6a-7b8c-4d9e-8f0a-2b3c4d5e6f70"
	otherApp  = "4e5f6a7b-8c9d-4e0f-9a1b-3c4d5e6f7a8b"
	lookAlike = "797f3427-79cd-4827-8132-47d473d450e4"
	govApp    = "6f7a8b9c-0d1e-4f2a-8b3c-5d6e7f8a9b0c" // stands in for a sovereign cloud's management app
	touID     = "7a8b9c0d-1e2f-4a3b-9c4d-6e7f8a9b0c1d"
	globalAdm = "62e90394-69f5-4237-9190-012177145e10"
	strMFA    = "00000000-0000-0000-0000-000000000002"
	strPhish  = "00000000-0000-0000-0000-000000000004"
	strWeak   = "8b9c0d1e-2f3a-4b4c-8d5e-7f8a9b0c1d2e"
)

func testConfig() Config {
	return Config{
		BreakGlassUserIDs:  []string{bgUser1, bgUser2},
		BreakGlassGroupIDs: []string{bgGroup, emptyBG, unknownBG},
	}
}

func testTenant(policies ...Policy) Tenant {
	return Tenant{
		Policies: policies,
		GroupMembers: map[string][]string{
			bgGroup: {bgUser1, strings.ToUpper(bgUser2)},
			emptyBG: {},
		},
		AuthenticationStrengths: []AuthenticationStrength{
			{ID: strMFA, DisplayName: "Multifactor authentication", PolicyType: "builtIn", RequirementsSatisfied: "mfa"},
			{ID: strPhish, DisplayName: "Phishing-resistant MFA", PolicyType: "builtIn", RequirementsSatisfied: "mfa"},
			{ID: strWeak, DisplayName: "Password and SMS", PolicyType: "custom", RequirementsSatisfied: "none"},
		},
	}
}

// good returns an enabled policy that meets every rule, for cases to weaken one field at a time.
func good(mods ...func(p *Policy)) Policy {
	p := Policy{
		ID:          "a0000000-0000-4000-8000-000000000001",
		DisplayName: "Require MFA for Azure management",
		State:       StateEnabled,
		Conditions: Conditions{
			Users:          &Users{IncludeUsers: []string{"All"}, ExcludeUsers: []string{bgUser1}},
			Applications:   &Applications{IncludeApplications: []string{AzureManagementAppID}},
			ClientAppTypes: []string{"all"},
		},
		GrantControls: &GrantControls{Operator: "OR", BuiltInControls: []string{"mfa"}},
	}
	for _, m := range mods {
		m(&p)
	}
	return p
}

func withID(id, name string) func(*Policy) {
	return func(p *Policy) { p.ID, p.DisplayName = id, name }
}
func withState(s State) func(*Policy) { return func(p *Policy) { p.State = s } }
func withUsers(u Users) func(*Policy) { return func(p *Policy) { p.Conditions.Users = &u } }
func withApps(include string, exclude ...string) func(*Policy) {
	return func(p *Policy) {
		p.Conditions.Applications = &Applications{IncludeApplications: []string{include}, ExcludeApplications: exclude}
	}
}
func withGrant(g *GrantControls) func(*Policy)           { return func(p *Policy) { p.GrantControls = g } }
func withConditions(f func(c *Conditions)) func(*Policy) { return func(p *Policy) { f(&p.Conditions) } }

type evalCase struct {
	name     string
	policies []Policy
	fixtures []string // files under testdata, parsed with ParsePolicy and appended to policies
	cfg      *Config
	tenant   func(t *Tenant) // adjusts the tenant after the defaults
	verdict  Verdict
	codes    []string // reason codes of the first policy, in order; nil means none
	passing  []string
	closest  string
	managed  bool // the first policy is Microsoft-managed
}

func evalCases() []evalCase {
	report, disabled := withState(StateReportOnly), withState(StateDisabled)
	sovereign := Config{TargetAppIDs: []string{govApp}, BreakGlassUserIDs: []string{bgUser1}}
	customOK := testConfig()
	customOK.CustomControlsCountAsMFA = true
	two := testConfig()
	two.TargetAppIDs = []string{AzureManagementAppID, govApp}
	return []evalCase{
		// R1
		{name: "enabled policy meeting every rule is compliant", policies: []Policy{good()}, verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "report-only policy is pending enforcement", policies: []Policy{good(report)}, verdict: VerdictPendingEnforcement,
			codes: []string{CodeStateReportOnly}, closest: good().ID},
		{name: "disabled policy that passes everything else is non-compliant", policies: []Policy{good(disabled)}, verdict: VerdictNonCompliant,
			codes: []string{CodeStateNotEnabled}, closest: good().ID},
		{name: "policy without a state never counts as enforced", policies: []Policy{good(withState(StateUnknown))}, verdict: VerdictNonCompliant,
			codes: []string{CodeStateUnknown}, closest: good().ID},
		// R2
		{name: "workload identity policy fails", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.ClientApplications = &ClientApplications{IncludeServicePrincipals: []string{"ServicePrincipalsInMyTenant"}}
		}))}, verdict: VerdictNonCompliant, codes: []string{CodeWorkloadIdentityPolicy}},
		{name: "agent identity policy fails", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.ClientApplications = &ClientApplications{IncludeAgentIDServicePrincipals: []string{"All"}}
		}))}, verdict: VerdictNonCompliant, codes: []string{CodeWorkloadIdentityPolicy}},
		{name: "excluding service principals only is still a user policy", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.ClientApplications = &ClientApplications{ExcludeServicePrincipals: []string{otherApp}}
		}))}, verdict: VerdictCompliant, passing: []string{good().ID}},
		// R3
		{name: "policy for selected users only fails", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{someUser}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeUsersNotAll}},
		{name: "policy for admin roles only fails even with every admin role", policies: []Policy{good(withUsers(Users{IncludeRoles: []string{globalAdm}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeUsersNotAll}},
		{name: "policy without a users section fails", policies: []Policy{good(withConditions(func(c *Conditions) { c.Users = nil }))},
			verdict: VerdictNonCompliant, codes: []string{CodeUsersNotAll}},
		{name: "lower-case all users token still means all users", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{" all "}}))},
			verdict: VerdictCompliant, passing: []string{good().ID}},
		// R4
		{name: "excluding an approved break-glass user passes", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{"All"}, ExcludeUsers: []string{bgUser1, bgUser2}}))},
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "break-glass ids compare without case", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{"All"}, ExcludeUsers: []string{strings.ToUpper(bgUser2)}}))},
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "excluding a user who is not on the allowlist fails (C15)", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{"All"}, ExcludeUsers: []string{bgUser1, someUser}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeExcludedUserNotAllowlisted}},
		{name: "excluding the GuestsOrExternalUsers token fails (C20)", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{"All"}, ExcludeUsers: []string{"GuestsOrExternalUsers"}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeExcludesGuests}},
		// R5
		{name: "excluding an approved group of break-glass users passes", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{"All"}, ExcludeGroups: []string{bgGroup, emptyBG}}))},
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "excluding a group that is not on the allowlist fails (C17)", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{"All"}, ExcludeGroups: []string{someGroup}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeExcludedGroupNotAllowlisted}},
		{name: "allowlisted group that gained a normal member fails (C18)", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{"All"}, ExcludeGroups: []string{bgGroup}}))},
			tenant:  func(t *Tenant) { t.GroupMembers[bgGroup] = append(t.GroupMembers[bgGroup], someUser) },
			verdict: VerdictNonCompliant, codes: []string{CodeExcludedGroupHasNonBreakGlass}},
		{name: "allowlisted group holding a nested group fails", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{"All"}, ExcludeGroups: []string{bgGroup}}))},
			tenant:  func(t *Tenant) { t.GroupMembers[bgGroup] = []string{bgUser1, nestedGrp} },
			verdict: VerdictNonCompliant, codes: []string{CodeExcludedGroupHasNonBreakGlass}},
		{name: "allowlisted group whose membership was not supplied fails", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{"All"}, ExcludeGroups: []string{unknownBG}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeExcludedGroupMembershipUnknown}},
		{name: "group membership keys compare without case", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{"All"}, ExcludeGroups: []string{bgGroup}}))},
			tenant: func(t *Tenant) {
				t.GroupMembers = map[string][]string{strings.ToUpper(bgGroup): {bgUser1}}
			}, verdict: VerdictCompliant, passing: []string{good().ID}},
		// R6
		{name: "excluding a directory role fails (C19)", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{"All"}, ExcludeRoles: []string{globalAdm}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeExcludesRoles}},
		// R7
		{name: "excluding guest types fails (C21)", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{"All"},
			ExcludeGuestsOrExternalUsers: &GuestsOrExternalUsers{GuestOrExternalUserTypes: []string{"internalGuest,b2bCollaborationGuest"}}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeExcludesGuests}},
		{name: "excluding guest type none excludes nobody", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{"All"},
			ExcludeGuestsOrExternalUsers: &GuestsOrExternalUsers{GuestOrExternalUserTypes: []string{"none"}}}))},
			verdict: VerdictCompliant, passing: []string{good().ID}},
		// R8
		{name: "All apps passes (C11)", policies: []Policy{good(withApps("All"))}, verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "target app id in upper case passes", policies: []Policy{good(withApps(strings.ToUpper(AzureManagementAppID)))},
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "MicrosoftAdminPortals alone fails (C14)", policies: []Policy{good(withApps("MicrosoftAdminPortals"))},
			verdict: VerdictNonCompliant, codes: []string{CodeAppNotTargeted}},
		{name: "Office365 alone fails", policies: []Policy{good(withApps("Office365"))}, verdict: VerdictNonCompliant, codes: []string{CodeAppNotTargeted}},
		{name: "the look-alike id 797f3427 is not the target (C34)", policies: []Policy{good(withApps(lookAlike))},
			verdict: VerdictNonCompliant, codes: []string{CodeAppNotTargeted}},
		{name: "a user-action policy does not target the app", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.Applications = &Applications{IncludeUserActions: []string{"urn:user:registersecurityinfo"}}
		}))}, verdict: VerdictNonCompliant, codes: []string{CodeAppNotTargeted}},
		{name: "with two target apps both must be covered", policies: []Policy{good()}, cfg: &two,
			verdict: VerdictNonCompliant, codes: []string{CodeAppNotTargeted}},
		// R9
		{name: "All minus ARM fails (C12)", policies: []Policy{good(withApps("All", AzureManagementAppID))},
			verdict: VerdictNonCompliant, codes: []string{CodeAppExcluded}},
		{name: "All minus Office365 passes (C13)", policies: []Policy{good(withApps("All", "Office365", otherApp))},
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "All minus MicrosoftAdminPortals fails", policies: []Policy{good(withApps("All", "microsoftadminportals"))},
			verdict: VerdictNonCompliant, codes: []string{CodeAppExcluded}},
		{name: "All minus the Azure portal fails", policies: []Policy{good(withApps("All", AzurePortalAppID))},
			verdict: VerdictNonCompliant, codes: []string{CodeAppExcluded}},
		// R10
		{name: "application filter fails", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.Applications.ApplicationFilter = &Filter{Mode: "exclude", Rule: `CustomSecurityAttribute.Eng_Tier -eq "low"`}
		}))}, verdict: VerdictNonCompliant, codes: []string{CodeAppFilterPresent}},
		{name: "application filter without a rule filters nothing", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.Applications.ApplicationFilter = &Filter{Mode: "include"}
		}))}, verdict: VerdictCompliant, passing: []string{good().ID}},
		// R11
		{name: "browser-only client app types fail (C27)", policies: []Policy{good(withConditions(func(c *Conditions) { c.ClientAppTypes = []string{"browser"} }))},
			verdict: VerdictNonCompliant, codes: []string{CodeClientAppTypesNarrowed}},
		{name: "legacy-only client app types fail", policies: []Policy{good(withConditions(func(c *Conditions) { c.ClientAppTypes = []string{"exchangeActiveSync", "other"} }))},
			verdict: VerdictNonCompliant, codes: []string{CodeClientAppTypesNarrowed}},
		{name: "browser plus mobile and desktop clients pass", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.ClientAppTypes = []string{"Browser", "MobileAppsAndDesktopClients"}
		}))}, verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "empty client app types mean all", policies: []Policy{good(withConditions(func(c *Conditions) { c.ClientAppTypes = []string{} }))},
			verdict: VerdictCompliant, passing: []string{good().ID}},
		// R12
		{name: "platform condition fails (C29)", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.Platforms = &Platforms{IncludePlatforms: []string{"android", "iOS"}}
		}))}, verdict: VerdictNonCompliant, codes: []string{CodePlatformsNarrowed}},
		{name: "all platforms minus one fails", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.Platforms = &Platforms{IncludePlatforms: []string{"all"}, ExcludePlatforms: []string{"linux"}}
		}))}, verdict: VerdictNonCompliant, codes: []string{CodePlatformsNarrowed}},
		{name: "all platforms with no exclusion passes", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.Platforms = &Platforms{IncludePlatforms: []string{"All"}}
		}))}, verdict: VerdictCompliant, passing: []string{good().ID}},
		// R13
		{name: "location condition fails (C30)", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.Locations = &Locations{IncludeLocations: []string{"All"}, ExcludeLocations: []string{"AllTrusted"}}
		}))}, verdict: VerdictNonCompliant, codes: []string{CodeLocationsNarrowed}},
		{name: "all locations with no exclusion passes", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.Locations = &Locations{IncludeLocations: []string{"All"}, ExcludeLocations: []string{}}
		}))}, verdict: VerdictCompliant, passing: []string{good().ID}},
		// R14
		{name: "device filter fails (C31)", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.Devices = &Devices{DeviceFilter: &Filter{Mode: "exclude", Rule: "device.isCompliant -eq True"}}
		}))}, verdict: VerdictNonCompliant, codes: []string{CodeDeviceFilterPresent}},
		{name: "deprecated device-state exclusion fails", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.Devices = &Devices{IncludeDevices: []string{"All"}, ExcludeDevices: []string{"Compliant"}}
		}))}, verdict: VerdictNonCompliant, codes: []string{CodeDeviceFilterPresent}},
		// R15
		{name: "sign-in risk condition fails (C28)", policies: []Policy{good(withConditions(func(c *Conditions) { c.SignInRiskLevels = []string{"high"} }))},
			verdict: VerdictNonCompliant, codes: []string{CodeRiskConditionPresent}},
		{name: "insider risk condition fails", policies: []Policy{good(withConditions(func(c *Conditions) { c.InsiderRiskLevels = []string{"elevated"} }))},
			verdict: VerdictNonCompliant, codes: []string{CodeRiskConditionPresent}},
		// R16
		{name: "authentication flows condition fails (C32)", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.AuthenticationFlows = &AuthenticationFlows{TransferMethods: []string{"deviceCodeFlow"}}
		}))}, verdict: VerdictNonCompliant, codes: []string{CodeAuthFlowConditionPresent}},
		{name: "transfer method none is no condition", policies: []Policy{good(withConditions(func(c *Conditions) {
			c.AuthenticationFlows = &AuthenticationFlows{TransferMethods: []string{"none"}}
		}))}, verdict: VerdictCompliant, passing: []string{good().ID}},
		// R17
		{name: "session-only policy has no grant controls", policies: []Policy{good(withGrant(nil), func(p *Policy) {
			p.SessionControls = &SessionControls{SignInFrequency: &SignInFrequency{IsEnabled: true, Value: 1, Type: "hours"}}
		})}, verdict: VerdictNonCompliant, codes: []string{CodeNoGrantControls}},
		{name: "operator without controls is no grant", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR", BuiltInControls: []string{}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeNoGrantControls}},
		{name: "block grant is not MFA", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR", BuiltInControls: []string{"block"}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeGrantBlockNotMFA}},
		{name: "compliant device alone is no MFA grant", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR", BuiltInControls: []string{"compliantDevice"}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeNoMFAGrant}},
		{name: "upper-case MFA control counts", policies: []Policy{good(withGrant(&GrantControls{Operator: "or", BuiltInControls: []string{"MFA"}}))},
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "MFA authentication strength passes (C22)", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR",
			AuthenticationStrength: &AuthenticationStrength{ID: strMFA, DisplayName: "Multifactor authentication", RequirementsSatisfied: "mfa"}}))},
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "phishing-resistant authentication strength passes (C23)", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR",
			AuthenticationStrength: &AuthenticationStrength{ID: strPhish, RequirementsSatisfied: "MFA"}}))},
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "strength given only by id is resolved from the definitions", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR",
			AuthenticationStrength: &AuthenticationStrength{ID: strings.ToUpper(strPhish)}}))},
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "strength without a definition is unresolved", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR",
			AuthenticationStrength: &AuthenticationStrength{ID: otherApp}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeAuthStrengthUnresolved}},
		{name: "strength that does not satisfy MFA is weak", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR",
			AuthenticationStrength: &AuthenticationStrength{ID: strWeak}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeWeakAuthStrength}},
		{name: "custom control alone is not MFA by default", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR", CustomAuthenticationFactors: []string{"DuoMfa"}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeNoMFAGrant}},
		{name: "custom control counts as MFA when configured", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR", CustomAuthenticationFactors: []string{"DuoMfa"}}))},
			cfg: &customOK, verdict: VerdictCompliant, passing: []string{good().ID}},
		// R18
		{name: "OR of mfa and compliant device fails (C25)", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR", BuiltInControls: []string{"mfa", "compliantDevice"}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeGrantORWithNonMFAAlternative}},
		{name: "AND of mfa and compliant device passes", policies: []Policy{good(withGrant(&GrantControls{Operator: "AND", BuiltInControls: []string{"mfa", "compliantDevice"}}))},
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "OR of mfa with terms of use fails (C40)", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR", BuiltInControls: []string{"mfa"}, TermsOfUse: []string{touID}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeGrantORWithNonMFAAlternative}},
		{name: "AND of mfa with terms of use passes", policies: []Policy{good(withGrant(&GrantControls{Operator: "AND", BuiltInControls: []string{"mfa"}, TermsOfUse: []string{touID}}))},
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "OR of mfa and a weak strength fails", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR", BuiltInControls: []string{"mfa"},
			AuthenticationStrength: &AuthenticationStrength{ID: strWeak}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeGrantORWithNonMFAAlternative}},
		{name: "OR of mfa and an unresolved strength fails", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR", BuiltInControls: []string{"mfa"},
			AuthenticationStrength: &AuthenticationStrength{ID: otherApp}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeAuthStrengthUnresolved}},
		{name: "AND of mfa and an unresolved strength passes", policies: []Policy{good(withGrant(&GrantControls{Operator: "AND", BuiltInControls: []string{"mfa"},
			AuthenticationStrength: &AuthenticationStrength{ID: otherApp}}))},
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "OR of mfa and a custom control fails by default", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR", BuiltInControls: []string{"mfa"}, CustomAuthenticationFactors: []string{"DuoMfa"}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeGrantORWithNonMFAAlternative}},
		{name: "OR of mfa and a custom control passes when custom controls count", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR", BuiltInControls: []string{"mfa"}, CustomAuthenticationFactors: []string{"DuoMfa"}}))},
			cfg: &customOK, verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "a missing operator with two controls reads as OR", policies: []Policy{good(withGrant(&GrantControls{BuiltInControls: []string{"mfa", "approvedApplication"}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeGrantORWithNonMFAAlternative}},
		// R19
		{name: "session controls do not change the verdict", policies: []Policy{good(func(p *Policy) {
			f := false
			p.SessionControls = &SessionControls{DisableResilienceDefaults: &f, SignInFrequency: &SignInFrequency{IsEnabled: true, Value: 4, Type: "hours"},
				PersistentBrowser: &EnabledSetting{IsEnabled: true, Mode: "never"}}
		})}, verdict: VerdictCompliant, passing: []string{good().ID}},
		// Several failures are all reported, in rule order.
		{name: "every failing rule is reported in rule order", policies: []Policy{good(report, withUsers(Users{IncludeUsers: []string{someUser}, ExcludeRoles: []string{globalAdm}}),
			withApps("All", AzureManagementAppID), withGrant(nil))},
			verdict: VerdictNonCompliant, codes: []string{CodeStateReportOnly, CodeUsersNotAll, CodeExcludesRoles, CodeAppExcluded, CodeNoGrantControls}},
		// Microsoft-managed policies.
		{name: "Microsoft-managed policy can be the compliant one", policies: []Policy{good(func(p *Policy) {
			p.DisplayName = "Microsoft-managed: Multifactor authentication for Azure management"
		})}, verdict: VerdictCompliant, passing: []string{good().ID}, managed: true},
		{name: "a policy an admin created from a template is not Microsoft-managed", fixtures: []string{"graph/template-created-admin.json"},
			verdict: VerdictCompliant, passing: []string{"9e5a3b4c-6d7e-4f8a-9b0c-1d2e3f4a5b6c"}},
		// Values and properties the model does not know never widen a policy.
		{name: "an unknown client app type counts as narrowing", fixtures: []string{"graph/unknown-client-app-type.json"},
			verdict: VerdictNonCompliant, codes: []string{CodeClientAppTypesNarrowed, CodeUnrecognisedValue}, closest: "0f6b4c5d-7e8f-4a9b-8c0d-2e3f4a5b6c7d"},
		{name: "an unknown excluded guest type counts as excluding guests", fixtures: []string{"graph/unknown-guest-type.json"},
			verdict: VerdictNonCompliant, codes: []string{CodeExcludesGuests, CodeUnrecognisedValue}, closest: "1a7c5d6e-8f9a-4b0c-9d1e-3f4a5b6c7d8e"},
		{name: "an unknown built-in control in an OR is an alternative to MFA", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR", BuiltInControls: []string{"mfa", "futureControl"}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeGrantORWithNonMFAAlternative, CodeUnrecognisedValue}},
		{name: "an unknown built-in control alone is not MFA", policies: []Policy{good(withGrant(&GrantControls{Operator: "OR", BuiltInControls: []string{"unknownFutureValue"}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeNoMFAGrant, CodeUnrecognisedValue}},
		// What an unknown control demands is not known, even beside mfa: the policy fails closed.
		{name: "an unknown built-in control ANDed with mfa fails closed", policies: []Policy{good(withGrant(&GrantControls{Operator: "AND", BuiltInControls: []string{"mfa", "futureControl"}}))},
			verdict: VerdictNonCompliant, codes: []string{CodeUnrecognisedValue}},
		{name: "an unknown token in excludeApplications counts as excluding Azure management", policies: []Policy{good(withApps("All", "MicrosoftFutureBundle"))},
			verdict: VerdictNonCompliant, codes: []string{CodeAppExcluded}},
		{name: "an unknown property of the conditions fails", fixtures: []string{"graph/unknown-properties.json"},
			verdict: VerdictNonCompliant, codes: []string{CodeUnrecognisedProperty, CodeUnrecognisedProperty}, closest: "2b8d6e7f-9a0b-4c1d-8e2f-4a5b6c7d8e9f"},
		{name: "Microsoft-managed report-only policy from Graph is pending enforcement", fixtures: []string{"graph/microsoft-managed-report-only.json"},
			verdict: VerdictPendingEnforcement, codes: []string{CodeStateReportOnly}, managed: true, closest: "7e0c3d4f-5a6b-4c8d-8e3f-4a5b6c7d8e9f"},
		// Sovereign clouds.
		{name: "sovereign cloud: the public app id alone fails", policies: []Policy{good()}, cfg: &sovereign,
			verdict: VerdictNonCompliant, codes: []string{CodeAppNotTargeted}},
		{name: "sovereign cloud: the configured app id passes", policies: []Policy{good(withApps(govApp))}, cfg: &sovereign,
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "sovereign cloud: All apps passes", policies: []Policy{good(withApps("All"))}, cfg: &sovereign,
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "sovereign cloud: excluding the configured app fails", policies: []Policy{good(withApps("All", govApp))}, cfg: &sovereign,
			verdict: VerdictNonCompliant, codes: []string{CodeAppExcluded}},
		// Tenants with several policies.
		{name: "empty tenant is non-compliant", verdict: VerdictNonCompliant},
		{name: "one passing policy among many failing makes the tenant compliant", policies: []Policy{
			good(withID("p1", "Office MFA"), withApps("Office365")),
			good(withID("p2", "Block legacy"), withGrant(&GrantControls{Operator: "OR", BuiltInControls: []string{"block"}})),
			good(withID("p3", "Azure MFA")),
			good(withID("p4", "Risky"), withConditions(func(c *Conditions) { c.UserRiskLevels = []string{"high"} })),
		}, verdict: VerdictCompliant, codes: []string{CodeAppNotTargeted}, passing: []string{"p3"}},
		{name: "every passing policy is listed", policies: []Policy{good(withID("p1", "A")), good(withID("p2", "B"), withState(StateDisabled)), good(withID("p3", "C"))},
			verdict: VerdictCompliant, passing: []string{"p1", "p3"}},
		{name: "enabled passing policy wins over a report-only one", policies: []Policy{good(withID("p1", "Restored"), report), good(withID("p2", "Admin's"))},
			verdict: VerdictCompliant, codes: []string{CodeStateReportOnly}, passing: []string{"p2"}},
		{name: "closest is the policy with the fewest failing checks", policies: []Policy{
			good(withID("p1", "Two faults"), withApps("Office365"), withConditions(func(c *Conditions) { c.ClientAppTypes = []string{"browser"} })),
			good(withID("p2", "One fault"), withUsers(Users{IncludeUsers: []string{"All"}, ExcludeUsers: []string{someUser}})),
			good(withID("p3", "Three faults"), disabled, withApps("Office365"), withGrant(nil)),
		}, verdict: VerdictNonCompliant, codes: []string{CodeAppNotTargeted, CodeClientAppTypesNarrowed}, closest: "p2"},
		{name: "closest ties go to the report-only policy that meets every other rule", policies: []Policy{
			good(withID("p1", "Guests excluded"), withUsers(Users{IncludeUsers: []string{"All"}, ExcludeUsers: []string{"GuestsOrExternalUsers"}})),
			good(withID("p2", "Disabled"), disabled),
			good(withID("p3", "Report-only"), report),
		}, verdict: VerdictPendingEnforcement, codes: []string{CodeExcludesGuests}, closest: "p3"},
		{name: "closest ties otherwise go to the first policy", policies: []Policy{
			good(withID("p1", "Roles"), withUsers(Users{IncludeUsers: []string{"All"}, ExcludeRoles: []string{globalAdm}})),
			good(withID("p2", "Apps"), withApps("Office365")),
		}, verdict: VerdictNonCompliant, codes: []string{CodeExcludesRoles}, closest: "p1"},
		// Fixtures in Graph v1.0 and audit-log shapes.
		{name: "Graph policy with nulls and odata keys is compliant", fixtures: []string{"graph/compliant-enabled.json"},
			verdict: VerdictCompliant, passing: []string{"3a6e9f0b-1c2d-4e3f-8a9b-0c1d2e3f4a5b"}},
		{name: "Graph policy with a phishing-resistant strength on All minus Office365 is compliant", fixtures: []string{"graph/auth-strength-phishing-resistant.json"},
			verdict: VerdictCompliant, passing: []string{"4b7f0a1c-2d3e-4f5a-9b0c-1d2e3f4a5b6c"}},
		{name: "Graph policy excluding guest types fails", fixtures: []string{"graph/excludes-guests.json"},
			verdict: VerdictNonCompliant, codes: []string{CodeExcludesGuests}, closest: "5c8a1b2d-3e4f-4a6b-8c1d-2e3f4a5b6c7d"},
		{name: "Graph policy with every narrowing condition fails each rule", fixtures: []string{"graph/narrowed-conditions.json"},
			verdict: VerdictNonCompliant, codes: []string{CodeClientAppTypesNarrowed, CodePlatformsNarrowed, CodeLocationsNarrowed,
				CodeDeviceFilterPresent, CodeRiskConditionPresent, CodeAuthFlowConditionPresent}, closest: "6d9b2c3e-4f5a-4b7c-9d2e-3f4a5b6c7d8e"},
		{name: "Graph workload identity block policy fails", fixtures: []string{"graph/workload-identity-block.json"},
			verdict: VerdictNonCompliant, codes: []string{CodeWorkloadIdentityPolicy, CodeUsersNotAll, CodeRiskConditionPresent, CodeGrantBlockNotMFA},
			closest: "8f1d4e5a-6b7c-4d9e-9f4a-5b6c7d8e9f0a"},
		{name: "audit-log old value with upper-case MFA is compliant", fixtures: []string{"auditlog/update-old-mfa.json"},
			verdict: VerdictCompliant, passing: []string{"9a2e5f6b-7c8d-4e0f-8a5b-6c7d8e9f0a1b"}},
		{name: "audit-log new value without grantControls has no grant", fixtures: []string{"auditlog/update-new-mfa-removed.json"},
			verdict: VerdictNonCompliant, codes: []string{CodeNoGrantControls}, closest: "9a2e5f6b-7c8d-4e0f-8a5b-6c7d8e9f0a1b"},
		{name: "audit-log value with numeric guest types 63 fails", fixtures: []string{"auditlog/excludes-guests-63.json"},
			verdict: VerdictNonCompliant, codes: []string{CodeExcludesGuests}, closest: "0b3f6a7c-8d9e-4f1a-9b6c-7d8e9f0a1b2c"},
		{name: "audit-log report-only value with a strength id is pending enforcement", fixtures: []string{"auditlog/report-only-strength-by-id.json"},
			verdict: VerdictPendingEnforcement, codes: []string{CodeStateReportOnly}, closest: "1c4a7b8d-9e0f-4a2b-8c7d-8e9f0a1b2c3d"},
		{name: "a tenant mixing Graph and audit-log policies is judged by its best policy", fixtures: []string{
			"graph/narrowed-conditions.json", "auditlog/update-new-mfa-removed.json", "graph/microsoft-managed-report-only.json", "graph/excludes-guests.json"},
			verdict: VerdictPendingEnforcement, codes: []string{CodeClientAppTypesNarrowed, CodePlatformsNarrowed, CodeLocationsNarrowed,
				CodeDeviceFilterPresent, CodeRiskConditionPresent, CodeAuthFlowConditionPresent}, closest: "7e0c3d4f-5a6b-4c8d-8e3f-4a5b6c7d8e9f"},
	}
}

func loadFixture(t testing.TB, name string) Policy {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePolicy(b)
	if err != nil {
		t.Fatalf("ParsePolicy(%s): %v", name, err)
	}
	return p
}

// run evaluates a case the way every test and the coverage check do.
func (tc evalCase) run(t testing.TB) (Tenant, Config, Report) {
	t.Helper()
	policies := slices.Clone(tc.policies)
	for _, f := range tc.fixtures {
		policies = append(policies, loadFixture(t, f))
	}
	tenant := testTenant(policies...)
	if tc.tenant != nil {
		tc.tenant(&tenant)
	}
	cfg := testConfig()
	if tc.cfg != nil {
		cfg = *tc.cfg
	}
	return tenant, cfg, Evaluate(tenant, cfg)
}

func codesOf(r PolicyResult) []string {
	var out []string
	for _, reason := range r.Reasons {
		out = append(out, reason.Code)
	}
	return out
}

func TestEvaluate(t *testing.T) {
	for _, tc := range append(evalCases(), reviewEvalCases()...) {
		t.Run(tc.name, func(t *testing.T) {
			tenant, _, rep := tc.run(t)
			if rep.Verdict != tc.verdict {
				t.Errorf("verdict: got %s, want %s (summary %q)", rep.Verdict, tc.verdict, rep.Summary)
			}
			if rep.Compliant != (tc.verdict == VerdictCompliant) {
				t.Errorf("compliant: got %v, want %v", rep.Compliant, tc.verdict == VerdictCompliant)
			}
			if len(rep.Policies) != len(tenant.Policies) {
				t.Fatalf("policies: got %d results, want %d", len(rep.Policies), len(tenant.Policies))
			}
			for i, r := range rep.Policies {
				if r.ID != tenant.Policies[i].ID {
					t.Errorf("policy %d: got id %q, want %q (input order)", i, r.ID, tenant.Policies[i].ID)
				}
				if r.Reasons == nil {
					t.Errorf("policy %d: Reasons is nil, want an empty slice", i)
				}
				if r.Compliant != (len(r.Reasons) == 0 && r.State == StateEnabled) {
					t.Errorf("policy %d: compliant %v with state %s and reasons %v", i, r.Compliant, r.State, codesOf(r))
				}
			}
			if len(rep.Policies) > 0 {
				first := rep.Policies[0]
				if got := codesOf(first); !slices.Equal(got, tc.codes) {
					t.Errorf("codes of %q: got %v, want %v\nreasons: %+v", first.DisplayName, got, tc.codes, first.Reasons)
				}
				if first.MicrosoftManaged != tc.managed {
					t.Errorf("microsoftManaged: got %v, want %v", first.MicrosoftManaged, tc.managed)
				}
			}
			if !slices.Equal(rep.Passing, tc.passing) {
				t.Errorf("passing: got %v, want %v", rep.Passing, tc.passing)
			}
			wantClosest := tc.closest
			if wantClosest == "" && tc.verdict != VerdictCompliant && len(tenant.Policies) > 0 {
				wantClosest = tenant.Policies[0].ID
			}
			if rep.Closest != wantClosest {
				t.Errorf("closest: got %q, want %q", rep.Closest, wantClosest)
			}
			if rep.Summary == "" || !strings.HasSuffix(rep.Summary, ".") {
				t.Errorf("summary: got %q, want one sentence", rep.Summary)
			}
		})
	}
}

// TestEvaluateAgreesWithNormalize checks that a policy and its normal form get the same reason codes,
// so Evaluate may skip normalising on its hot path.
func TestEvaluateAgreesWithNormalize(t *testing.T) {
	for _, tc := range evalCases() {
		tenant, cfg, rep := tc.run(t)
		for i := range tenant.Policies {
			tenant.Policies[i] = Normalize(tenant.Policies[i])
		}
		norm := Evaluate(tenant, cfg)
		for i := range rep.Policies {
			if got, want := codesOf(norm.Policies[i]), codesOf(rep.Policies[i]); !slices.Equal(got, want) {
				t.Errorf("%s: policy %d: normalised codes %v, want %v", tc.name, i, got, want)
			}
		}
		if norm.Verdict != rep.Verdict {
			t.Errorf("%s: normalised verdict %s, want %s", tc.name, norm.Verdict, rep.Verdict)
		}
	}
}

func TestSummaryNamesVerdictAndPolicy(t *testing.T) {
	tests := []struct {
		name     string
		policies []Policy
		want     []string
	}{
		{"compliant summary names the enabled policy", []Policy{good(withID("p1", "Azure MFA"))}, []string{"Compliant:", `"Azure MFA" (p1)`}},
		{"compliant summary counts the other passing policies", []Policy{good(withID("p1", "A")), good(withID("p2", "B"))}, []string{"Compliant:", `"A" (p1)`, "1 other policy does too"}},
		{"pending summary names the report-only policy", []Policy{good(withID("p1", "Restored"), withState(StateReportOnly))},
			[]string{"Pending enforcement:", `"Restored" (p1)`, "switches it on"}},
		{"non-compliant summary names the closest policy and its codes", []Policy{good(withID("p1", "Office"), withApps("Office365"))},
			[]string{"Non-compliant:", `"Office" (p1)`, "fails 1 check (APP_NOT_TARGETED)"}},
		{"empty tenant summary says there is no policy", nil, []string{"Non-compliant:", "no Conditional Access policy"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Evaluate(testTenant(tc.policies...), testConfig()).Summary
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("summary: got %q, want it to contain %q", got, w)
				}
			}
		})
	}
}

func TestEvaluateDoesNotModifyItsInput(t *testing.T) {
	p := good(withUsers(Users{IncludeUsers: []string{"All"}, ExcludeUsers: []string{someUser, bgUser1}}))
	before := Normalize(p)
	tenant := testTenant(p)
	Evaluate(tenant, testConfig())
	if d := Diff(before, tenant.Policies[0]); len(d) != 0 {
		t.Errorf("Evaluate changed its input: %v", d)
	}
	if got := tenant.Policies[0].Conditions.Users.ExcludeUsers; got[0] != someUser {
		t.Errorf("Evaluate reordered excludeUsers: got %v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"empty config is valid", Config{}, ""},
		{"GUIDs are valid", testConfig(), ""},
		{"a token in the allowlist is an error", Config{BreakGlassUserIDs: []string{"All"}}, `invalid break-glass user id "All"`},
		{"a typo in a group id is an error", Config{BreakGlassGroupIDs: []string{bgGroup + "x"}}, "invalid break-glass group id"},
		{"a name as target app is an error", Config{TargetAppIDs: []string{"Azure"}}, "invalid target app id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("got error %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestUnknownValuesSayTheyAreNotRecognised checks that a reason caused by a value caguard does not
// know tells the admin so, rather than reading as if the value were understood.
func TestUnknownValuesSayTheyAreNotRecognised(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		code   string
		want   string // a substring of the reason's message
	}{
		{"an unknown client app type", good(withConditions(func(c *Conditions) { c.ClientAppTypes = []string{"futureType"} })),
			CodeClientAppTypesNarrowed, "[futureType (not recognised)]"},
		{"Graph's unknownFutureValue client app type", good(withConditions(func(c *Conditions) { c.ClientAppTypes = []string{"browser", "unknownFutureValue"} })),
			CodeClientAppTypesNarrowed, "unknownFutureValue (not recognised)"},
		{"an unknown excluded guest type", good(withUsers(Users{IncludeUsers: []string{"All"},
			ExcludeGuestsOrExternalUsers: &GuestsOrExternalUsers{GuestOrExternalUserTypes: []string{"futureGuest"}}})),
			CodeExcludesGuests, "futureGuest (not recognised)"},
		{"an unknown platform", good(withConditions(func(c *Conditions) {
			c.Platforms = &Platforms{IncludePlatforms: []string{"all"}, ExcludePlatforms: []string{"visionOS"}}
		})),
			CodePlatformsNarrowed, "visionOS (not recognised)"},
		{"an unknown built-in control offered as an alternative", good(withGrant(&GrantControls{Operator: "OR", BuiltInControls: []string{"mfa", "futureControl"}})),
			CodeGrantORWithNonMFAAlternative, "futureControl (not recognised)"},
		{"an unknown built-in control alone", good(withGrant(&GrantControls{Operator: "OR", BuiltInControls: []string{"futureControl"}})),
			CodeNoMFAGrant, "futureControl (not recognised)"},
		{"an unknown excluded application token", good(withApps("All", "MicrosoftFutureBundle")),
			CodeAppExcluded, "MicrosoftFutureBundle (not recognised)"},
		{"an unknown property", good(withConditions(func(c *Conditions) {
			c.Unrecognised = []UnknownValue{{Field: "conditions.futureCondition", Value: `{"x":1}`}}
		})),
			CodeUnrecognisedProperty, "(conditions.futureCondition)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Evaluate(testTenant(tt.policy), testConfig())
			for _, r := range rep.Policies[0].Reasons {
				if r.Code == tt.code {
					if !strings.Contains(r.Message, tt.want) {
						t.Errorf("%s: got %q, want it to contain %q", tt.code, r.Message, tt.want)
					}
					return
				}
			}
			t.Errorf("reasons: got %v, want %s", codesOf(rep.Policies[0]), tt.code)
		})
	}
}

// TestMicrosoftManaged tells Microsoft's policies from administrators' by the documented name
// prefix: templateId alone marks a policy created from a template, which an administrator owns.
func TestMicrosoftManaged(t *testing.T) {
	tests := []struct {
		name     string
		fixture  string
		policy   Policy
		want     bool
		template bool
	}{
		{name: "a Microsoft-managed policy from Graph", fixture: "graph/microsoft-managed-report-only.json", want: true, template: true},
		{name: "an admin's policy created from a template", fixture: "graph/template-created-admin.json", want: false, template: true},
		{name: "an admin's policy written from scratch", fixture: "graph/compliant-enabled.json", want: false},
		{name: "the prefix in any case", policy: Policy{DisplayName: " microsoft-MANAGED: Block legacy authentication"}, want: true},
		{name: "the words elsewhere in the name do not count", policy: Policy{DisplayName: "Copy of Microsoft-managed: Block legacy authentication"}, want: false},
		{name: "a short name", policy: Policy{DisplayName: "MFA"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.policy
			if tt.fixture != "" {
				p = loadFixture(t, tt.fixture)
			}
			if got := p.MicrosoftManaged(); got != tt.want {
				t.Errorf("MicrosoftManaged of %q: got %v, want %v", p.DisplayName, got, tt.want)
			}
			if got := p.TemplateID != ""; got != tt.template {
				t.Errorf("templateId %q: set %v, want %v", p.TemplateID, got, tt.template)
			}
		})
	}
}
