package capolicy

import (
	"fmt"
	"slices"
	"strings"
)

// The ids of the catalogue's controls.
const (
	ControlAzureManagementMFA         = "azure-management-mfa"
	ControlAdminMFA                   = "admin-mfa"
	ControlAllUsersMFA                = "all-users-mfa"
	ControlBlockLegacyAuth            = "block-legacy-authentication"
	ControlAdminSignInFrequency       = "admin-sign-in-frequency"
	ControlAdminPhishingResistantMFA  = "admin-phishing-resistant-mfa"
	ControlUserRiskPolicy             = "user-risk-policy"
	ControlSignInRiskPolicy           = "sign-in-risk-policy"
	ControlManagedDeviceSignIn        = "managed-device-sign-in"
	ControlManagedDeviceRegisterSecur = "managed-device-register-security-info"
	ControlBlockDeviceCodeFlow        = "block-device-code-flow"
	ControlAdminPortalsMFA            = "admin-portals-mfa"
)

// DefaultControls is what CONTROLS means when unset: the one control caguard has always judged.
const DefaultControls = ControlAzureManagementMFA

// AdminRoleTemplateIDs are the directory roles of Microsoft's "Require MFA for administrators"
// Conditional Access template (Entra docs, "Require MFA for administrators", the fourteen roles the
// template and the how-to list), which Maester's admin-MFA test uses too. They are role template ids,
// which is what includeRoles holds (not display names).
var AdminRoleTemplateIDs = []string{
	"62e90394-69f5-4237-9190-012177145e10", // Global Administrator
	"9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", // Application Administrator
	"c4e39bd9-1100-46d3-8c65-fb160da0071f", // Authentication Administrator
	"b0f54661-2d74-4c50-afa3-1ec803f12efe", // Billing Administrator
	"158c047a-c907-4556-b7ef-446551a6b5f7", // Cloud Application Administrator
	"b1be1c3e-b65d-4f19-8427-f6fa0d97feb9", // Conditional Access Administrator
	"29232cdf-9323-42fd-ade2-1d097af3e4de", // Exchange Administrator
	"729827e3-9c14-49f7-bb1b-9608f156bbb8", // Helpdesk Administrator
	"966707d0-3269-4727-9be2-8c3a10f19b9d", // Password Administrator
	"7be44c8a-adaf-4e2a-84d6-ab2649e08a13", // Privileged Authentication Administrator
	"e8611ab8-c189-46e8-94e1-60213ab1f814", // Privileged Role Administrator
	"194ae4cb-b126-40b2-bd5b-6091b380977d", // Security Administrator
	"f28a1f50-f6e7-4571-818b-6a12f2af6b6c", // SharePoint Administrator
	"fe930be7-5e62-47db-91af-98c3a49a38b1", // User Administrator
}

// modernClients is the client-app scope of the controls that require something of a user at sign-in:
// browsers and modern desktop and mobile clients. Legacy clients cannot do MFA at all; the legacy
// authentication control blocks them. It is R11: a policy must cover both (or all, or leave the
// condition unset).
var modernClients = []string{"browser", "mobileAppsAndDesktopClients"}

// The CIS titles below are the benchmarks' own control titles as the public mappings (Prowler's
// compliance files, Maester's CIS tests) quote them for CIS Microsoft 365 Foundations v7.0.0, section
// 5.2.2, and CIS Microsoft Azure Foundations v5.0.0, section 5.2. Assumption: the v7.0.0 and v5.0.0
// wording matches the earlier editions those mappings were first written for; the numbering is from
// the same sources.
func m365(control, title string) CISRef {
	return CISRef{Benchmark: BenchmarkM365, Version: "7.0.0", Control: control, Title: title}
}

func azure(control, title string) CISRef {
	return CISRef{Benchmark: BenchmarkAzure, Version: "5.0.0", Control: control, Title: title}
}

func allUsers() UserScope { return UserScope{All: true} }
func admins() UserScope   { return UserScope{Roles: slices.Clone(AdminRoleTemplateIDs)} }
func allResources() Target {
	return Target{Kind: TargetAllResources, Noun: "all resources"}
}

func grant(clauses ...[]string) *GrantRequirement { return &GrantRequirement{AllOf: clauses} }
func anyOf(atoms ...string) []string              { return atoms }

// planP2 is the licence of the risk-based controls. No other control needs more than Conditional
// Access itself (Entra ID P1): authentication strengths, sign-in frequency, persistent browser
// sessions, authentication flows and the device grants are Conditional Access features of P1 (Entra
// docs, "Microsoft Entra licensing", Conditional Access). A compliant device also needs Intune to
// mark devices compliant, but the managed-device controls accept a hybrid-joined device too, which
// needs no Intune, so a tenant without Intune can still meet them.
func planP2() *ServicePlan {
	p := PlanEntraIDP2
	return &p
}

// Catalogue returns every control caguard judges, the first being the one it has always guarded. The
// slice and its controls are new on every call; the README's control table is generated from it.
func Catalogue() []Control {
	return []Control{
		{
			ID:    ControlAzureManagementMFA,
			Title: "MFA required for the Windows Azure Service Management API",
			CIS:   []CISRef{azure("5.2.6", "Ensure Multifactor Authentication is Required for Windows Azure Service Management API")},
			Rationale: "The Azure portal, CLI, PowerShell and infrastructure-as-code tools reach Azure Resource Manager through this API; " +
				"a password alone must not be enough to manage subscriptions.",
			Users:      allUsers(),
			Target:     Target{Kind: TargetApps, ConfiguredAzureManagement: true, Noun: "Azure management"},
			Conditions: ControlConditions{ClientAppTypes: modernClients},
			Grant:      grant(anyOf(AtomMFA)),
			Exclusions: ExclusionsBreakGlass,
			Guarded:    true,
		},
		{
			ID:    ControlAdminMFA,
			Title: "MFA required for administrative roles",
			CIS:   []CISRef{m365("5.2.2.1", "Ensure multifactor authentication is enabled for all users in administrative roles")},
			Rationale: "Administrators hold the keys to the tenant; their accounts are the most attacked and must never sign in " +
				"with a password alone.",
			Users:      admins(),
			Target:     allResources(),
			Conditions: ControlConditions{ClientAppTypes: modernClients},
			Grant:      grant(anyOf(AtomMFA)),
			Exclusions: ExclusionsBreakGlass,
			Guarded:    true,
		},
		{
			ID:    ControlAllUsersMFA,
			Title: "MFA required for all users",
			CIS: []CISRef{m365("5.2.2.2", "Ensure multifactor authentication is enabled for all users"),
				azure("5.2.4", "Ensure that A Multi-factor Authentication Policy Exists for All Users")},
			Rationale:  "MFA stops most password-spray and phishing attacks; every user and every resource needs it.",
			Users:      allUsers(),
			Target:     allResources(),
			Conditions: ControlConditions{ClientAppTypes: modernClients},
			Grant:      grant(anyOf(AtomMFA)),
			Exclusions: ExclusionsBreakGlass,
			Guarded:    true,
		},
		{
			ID:    ControlBlockLegacyAuth,
			Title: "Legacy authentication blocked",
			CIS:   []CISRef{m365("5.2.2.3", "Enable Conditional Access policies to block legacy authentication")},
			Rationale: "Legacy protocols (Exchange ActiveSync, IMAP, POP, SMTP AUTH and other basic authentication) cannot do MFA, " +
				"so they are how password attacks get around it.",
			Users:      allUsers(),
			Target:     Target{Kind: TargetAllResources, Noun: "legacy-authentication sign-ins"},
			Conditions: ControlConditions{ClientAppTypes: []string{"exchangeActiveSync", "other"}},
			Grant:      grant(anyOf(AtomBlock)),
			Exclusions: ExclusionsBreakGlass,
			Guarded:    true,
		},
		{
			ID:    ControlAdminSignInFrequency,
			Title: "Sign-in frequency of at most 4 hours and no persistent browser session for administrators",
			CIS: []CISRef{m365("5.2.2.4",
				"Ensure Sign-in frequency is enabled and browser sessions are not persistent for Administrative users")},
			Rationale: "A stolen administrator session should not stay useful for long, and an administrator's browser should " +
				"not keep them signed in.",
			Users:      admins(),
			Target:     allResources(),
			Conditions: ControlConditions{ClientAppTypes: modernClients},
			Session:    &SessionRequirement{SignInFrequencyMaxHours: 4, PersistentBrowserNever: true},
			Exclusions: ExclusionsBreakGlass,
			Guarded:    true,
		},
		{
			ID:    ControlAdminPhishingResistantMFA,
			Title: "Phishing-resistant MFA strength required for administrators",
			CIS:   []CISRef{m365("5.2.2.5", "Ensure 'Phishing-resistant MFA strength' is required for Administrators")},
			Rationale: "Push, SMS and one-time codes can be relayed by an adversary-in-the-middle; FIDO2, Windows Hello for Business " +
				"and certificate-based MFA cannot.",
			Users:      admins(),
			Target:     allResources(),
			Conditions: ControlConditions{ClientAppTypes: modernClients},
			Grant:      grant(anyOf(AtomPhishingResistant)),
			Exclusions: ExclusionsBreakGlass,
			Guarded:    true,
		},
		{
			ID:    ControlUserRiskPolicy,
			Title: "High user risk requires MFA and a password change",
			CIS:   []CISRef{m365("5.2.2.6", "Enable Identity Protection user risk policies")},
			Rationale: "A user Identity Protection rates high-risk probably has a leaked password: Microsoft's template makes them " +
				"prove themselves with MFA and change it.",
			Users:      allUsers(),
			Target:     allResources(),
			Conditions: ControlConditions{ClientAppTypes: modernClients, UserRiskLevels: []string{"high"}},
			Grant:      grant(anyOf(AtomMFA), anyOf(AtomPasswordChange)),
			Exclusions: ExclusionsBreakGlass,
			Licence:    planP2(),
			Guarded:    true,
		},
		{
			ID:    ControlSignInRiskPolicy,
			Title: "Medium and high sign-in risk requires MFA",
			CIS: []CISRef{m365("5.2.2.7", "Enable Identity Protection sign-in risk policies"),
				azure("5.2.5", "Ensure Multifactor Authentication is Required for Risky Sign-ins")},
			Rationale:  "A sign-in Identity Protection rates medium or high risk may not be the user's; MFA stops it if it is not.",
			Users:      allUsers(),
			Target:     allResources(),
			Conditions: ControlConditions{ClientAppTypes: modernClients, SignInRiskLevels: []string{"medium", "high"}},
			Grant:      grant(anyOf(AtomMFA)),
			Exclusions: ExclusionsBreakGlass,
			Licence:    planP2(),
			Guarded:    true,
		},
		{
			ID:    ControlManagedDeviceSignIn,
			Title: "Managed device required to sign in",
			CIS:   []CISRef{m365("5.2.2.9", "Ensure a managed device is required for authentication")},
			Rationale: "A compliant or hybrid-joined device is one the organisation controls; a stolen password alone then does " +
				"not let an attacker in from their own machine.",
			Users:      allUsers(),
			Target:     allResources(),
			Conditions: ControlConditions{ClientAppTypes: modernClients},
			Grant:      grant(anyOf(AtomCompliantDevice, AtomDomainJoinedDevice)),
			Exclusions: ExclusionsBreakGlass,
			Guarded:    true,
		},
		{
			ID:    ControlManagedDeviceRegisterSecur,
			Title: "Managed device required to register security information",
			CIS:   []CISRef{m365("5.2.2.10", "Ensure a managed device is required to register security information")},
			Rationale: "Whoever registers an MFA method owns the account from then on; registration should only happen on a " +
				"device the organisation manages.",
			Users:      allUsers(),
			Target:     Target{Kind: TargetUserAction, UserAction: "urn:user:registersecurityinfo", Noun: "registering security information"},
			Conditions: ControlConditions{ClientAppTypes: modernClients},
			Grant:      grant(anyOf(AtomCompliantDevice, AtomDomainJoinedDevice)),
			Exclusions: ExclusionsBreakGlass,
			Guarded:    true,
		},
		{
			ID:    ControlBlockDeviceCodeFlow,
			Title: "Device code flow blocked",
			CIS: []CISRef{m365("5.2.2.12", "Ensure the device code sign-in flow is blocked"),
				azure("5.2.3", "Ensure that an exclusionary device code flow policy is considered")},
			Rationale: "Device code phishing gets a user to type an attacker's code and hands the attacker their tokens; few " +
				"organisations need the flow at all.",
			Users:      allUsers(),
			Target:     Target{Kind: TargetAllResources, Noun: "device-code sign-ins"},
			Conditions: ControlConditions{TransferMethods: []string{"deviceCodeFlow"}},
			Grant:      grant(anyOf(AtomBlock)),
			Exclusions: ExclusionsBreakGlass,
			Guarded:    true,
		},
		{
			ID:    ControlAdminPortalsMFA,
			Title: "MFA required for Microsoft admin portals",
			CIS:   []CISRef{azure("5.2.7", "Ensure Multifactor Authentication is Required to access Microsoft Admin Portals")},
			Rationale: "The Microsoft admin portals (Entra, Azure, Microsoft 365, Exchange, Intune, ...) change the tenant itself; " +
				"nobody should reach them with a password alone.",
			Users:      allUsers(),
			Target:     Target{Kind: TargetApps, Apps: []string{"MicrosoftAdminPortals"}, Noun: "the Microsoft admin portals"},
			Conditions: ControlConditions{ClientAppTypes: modernClients},
			Grant:      grant(anyOf(AtomMFA)),
			Exclusions: ExclusionsBreakGlass,
			Guarded:    true,
		},
	}
}

// ControlByID returns the catalogue's control with id (case-insensitive).
func ControlByID(id string) (Control, bool) {
	for _, c := range Catalogue() {
		if strings.EqualFold(c.ID, strings.TrimSpace(id)) {
			return c, true
		}
	}
	return Control{}, false
}

// ParseControls reads a CONTROLS value: comma-separated control ids, or "all". Empty means
// DefaultControls. Ids are returned in catalogue order, without duplicates; an unknown id is an error
// that names it and the ids there are.
func ParseControls(spec string) ([]string, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		spec = DefaultControls
	}
	cat := Catalogue()
	want := map[string]bool{}
	var unknown []string
	for part := range strings.SplitSeq(spec, ",") {
		id := strings.ToLower(strings.TrimSpace(part))
		switch {
		case id == "":
		case id == "all":
			for _, c := range cat {
				want[c.ID] = true
			}
		case slices.ContainsFunc(cat, func(c Control) bool { return c.ID == id }):
			want[id] = true
		default:
			unknown = append(unknown, strings.TrimSpace(part))
		}
	}
	if len(unknown) > 0 {
		ids := make([]string, len(cat))
		for i, c := range cat {
			ids[i] = c.ID
		}
		return nil, fmt.Errorf("unknown control %s: want all or a comma-separated list of %s",
			strings.Join(quoteAll(unknown), ", "), strings.Join(ids, ", "))
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("no control named: want all or a comma-separated list of control ids")
	}
	var out []string
	for _, c := range cat {
		if want[c.ID] {
			out = append(out, c.ID)
		}
	}
	return out, nil
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

// CatalogueMarkdown is the README's table of controls, generated from Catalogue (scripts/controlstable
// writes it between the README's controls markers; a test holds the README to it).
func CatalogueMarkdown() string {
	var b strings.Builder
	b.WriteString("| id | control | CIS | users | target | requires | licence | guarded |\n|---|---|---|---|---|---|---|---|\n")
	for _, c := range Catalogue() {
		var cis []string
		for _, r := range c.CIS {
			short := "M365"
			if r.Benchmark == BenchmarkAzure {
				short = "Azure"
			}
			cis = append(cis, fmt.Sprintf("%s %s %s", short, r.Version, r.Control))
		}
		users := "All users"
		if !c.Users.All && len(c.Users.Roles) > 0 {
			users = fmt.Sprintf("%d administrative roles", len(c.Users.Roles))
		}
		target := c.Target.Noun
		if target == "" {
			target = string(c.Target.Kind)
		}
		var needs []string
		if c.Grant != nil {
			for _, clause := range c.Grant.AllOf {
				needs = append(needs, strings.Join(clause, " or "))
			}
		}
		if s := c.Session; s != nil {
			if s.SignInFrequencyMaxHours > 0 {
				needs = append(needs, fmt.Sprintf("sign-in frequency ≤ %d h", s.SignInFrequencyMaxHours))
			}
			if s.PersistentBrowserNever {
				needs = append(needs, "persistent browser never")
			}
		}
		licence := "Entra ID P1"
		if c.Licence != nil {
			licence = fmt.Sprintf("%s (`%s`)", c.Licence.Product, c.Licence.Name)
		}
		guarded := "judged"
		if c.Guarded {
			guarded = "judged, alerted, restored"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s | %s |\n", c.ID, c.Title, strings.Join(cis, "; "), users, target,
			strings.Join(needs, " and "), licence, guarded)
	}
	return b.String()
}
