package capolicy

// A Control is one Conditional Access control of a benchmark, as data: who it is about, what it
// targets, under which conditions, what a policy must require, and which exclusions it allows.
// EvaluateControl judges any Control with the same rules; no control has an evaluator of its own.
//
// Scope is read as a set of sign-ins. A policy covers a control when the sign-ins it applies to include
// every sign-in of the control's scope (less the allowed exclusions); a policy that covers more (All
// resources instead of one app, All users instead of some roles) covers it too. Anything the model
// does not know (an unrecognised value in a list, an unmodelled property) never counts as covering.
type Control struct {
	// ID is the control's kebab-case id, as CONTROLS names it.
	ID string `json:"id"`
	// Title says, in a few words, what a tenant must have.
	Title string `json:"title"`
	// CIS lists the benchmark controls this control checks.
	CIS []CISRef `json:"cis"`
	// Rationale is one or two sentences for an admin: why the control matters.
	Rationale string `json:"rationale"`

	Users      UserScope         `json:"users"`
	Target     Target            `json:"target"`
	Conditions ControlConditions `json:"conditions"`
	// Grant is what the policy's grant controls must imply; nil means the control sets no grant
	// requirement (a session-only control).
	Grant *GrantRequirement `json:"grant,omitempty"`
	// Session is what the policy's session controls must hold; nil means none.
	Session *SessionRequirement `json:"session,omitempty"`
	// Exclusions are the exclusions a covering policy may have. Every control allows exactly the
	// configured break-glass users and groups (Config.BreakGlassUserIDs, BreakGlassGroupIDs).
	Exclusions string `json:"exclusions"`
	// Licence is the service plan the tenant must have for a policy to meet the control; nil when
	// Conditional Access itself (Entra ID P1) is enough. caguard reads the tenant's subscriptions only
	// when an enabled control names one, and a control whose plan the tenant lacks is non-compliant
	// with LICENCE_MISSING.
	Licence *ServicePlan `json:"licence,omitempty"`
	// Guarded says whether caguard restores this control's policy (its DesiredFor definition, in
	// report-only mode) when the control is enabled and REMEDIATION_MODE=remediate.
	Guarded bool `json:"guarded"`
}

// ExclusionsBreakGlass is the one exclusion allowance: the configured break-glass users and groups.
const ExclusionsBreakGlass = "break-glass"

// CISRef is one benchmark control: the benchmark, its version, the control's number and the
// benchmark's own title for it.
type CISRef struct {
	Benchmark string `json:"benchmark"`
	Version   string `json:"version"`
	Control   string `json:"control"`
	Title     string `json:"title"`
}

// The benchmarks the catalogue cites.
const (
	BenchmarkM365  = "CIS Microsoft 365 Foundations"
	BenchmarkAzure = "CIS Microsoft Azure Foundations"
)

// UserScope is who a control is about: All users, or the holders of some directory roles.
type UserScope struct {
	All bool `json:"all,omitempty"`
	// Roles are directory role template ids. A policy covers them when it includes All users or
	// every one of these roles.
	Roles []string `json:"roles,omitempty"`
}

// TargetKind says what a control targets.
type TargetKind string

// The kinds of target.
const (
	// TargetApps: the policy must include every app of Target.Apps (an app id or a group of apps such
	// as MicrosoftAdminPortals), or All resources, and exclude none of them.
	TargetApps TargetKind = "apps"
	// TargetAllResources: the policy must include All resources and exclude nothing.
	TargetAllResources TargetKind = "allResources"
	// TargetUserAction: the policy must include the user action Target.UserAction.
	TargetUserAction TargetKind = "userAction"
)

// Target is what a control's policy must apply to.
type Target struct {
	Kind TargetKind `json:"kind"`
	// Apps are the app ids or app groups of TargetApps. ConfiguredAzureManagement replaces them with
	// Config.Targets(), the Azure management apps of the cloud caguard runs in.
	Apps                      []string `json:"apps,omitempty"`
	ConfiguredAzureManagement bool     `json:"configuredAzureManagement,omitempty"`
	// UserAction is the user action of TargetUserAction (urn:user:registersecurityinfo).
	UserAction string `json:"userAction,omitempty"`
	// Noun names the target in sentences ("Azure management", "all resources").
	Noun string `json:"-"`
}

// ControlConditions are the conditions of a control's scope. For each list, nil means the control is
// about every value, so a covering policy must not narrow that condition; a non-empty list means the
// control is about those values only, so a covering policy must apply to at least all of them (or
// leave the condition unset, which applies to every value).
//
// Platforms, locations and device filters have no slot: no catalogue control is about some of them,
// so a policy that narrows them never covers a control.
type ControlConditions struct {
	ClientAppTypes   []string `json:"clientAppTypes,omitempty"`
	UserRiskLevels   []string `json:"userRiskLevels,omitempty"`
	SignInRiskLevels []string `json:"signInRiskLevels,omitempty"`
	// TransferMethods are authentication flows (deviceCodeFlow, authenticationTransfer).
	TransferMethods []string `json:"transferMethods,omitempty"`
}

// Grant atoms: what one grant control can prove. A requirement is a conjunction of clauses, each a set
// of atoms any one of which satisfies the clause.
const (
	AtomMFA                = "mfa"                // mfa, an authentication strength that satisfies MFA, or (when configured) a custom control
	AtomPhishingResistant  = "phishingResistant"  // the built-in phishing-resistant strength, or a strength allowing only its methods
	AtomBlock              = "block"              // block access
	AtomCompliantDevice    = "compliantDevice"    // device marked as compliant
	AtomDomainJoinedDevice = "domainJoinedDevice" // Microsoft Entra hybrid joined device
	AtomPasswordChange     = "passwordChange"     // password change
)

// PhishingResistantStrengthID is the built-in "Phishing-resistant MFA" authentication strength.
const PhishingResistantStrengthID = "00000000-0000-0000-0000-000000000004"

// phishingResistantCombinations are the allowed combinations of the built-in phishing-resistant
// strength (Entra docs, "Built-in authentication strengths"). A custom strength that allows nothing
// else implies it; one that allows anything else does not.
var phishingResistantCombinations = []string{"windowsHelloForBusiness", "fido2", "x509CertificateMultiFactor"}

// GrantRequirement is what a policy's grant controls must imply: every clause (AllOf) must be met,
// and a clause is met by any of its atoms. With operator AND one control meeting the clause is
// enough; with OR (or no operator) every alternative must meet it, or a user could choose the one
// that does not.
type GrantRequirement struct {
	AllOf [][]string `json:"allOf"`
}

// isMFA reports whether the requirement is exactly MFA, today's R17 and R18.
func (g *GrantRequirement) isMFA() bool {
	return g != nil && len(g.AllOf) == 1 && len(g.AllOf[0]) == 1 && g.AllOf[0][0] == AtomMFA
}

// SessionRequirement is what a policy's session controls must hold.
type SessionRequirement struct {
	// SignInFrequencyMaxHours, when positive, requires sign-in frequency enabled for primary and
	// secondary authentication, every time or at most this many hours.
	SignInFrequencyMaxHours int `json:"signInFrequencyMaxHours,omitempty"`
	// PersistentBrowserNever requires the persistent browser session control enabled with mode never.
	PersistentBrowserNever bool `json:"persistentBrowserNever,omitempty"`
}
