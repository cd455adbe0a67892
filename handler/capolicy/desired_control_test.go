package capolicy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// Every catalogue control's managed policy meets the control in report-only mode (pending
// enforcement), meets it once enabled, survives a JSON round trip, and holds to Graph's documented
// constraints on the controls it writes.
func TestDesiredForEveryControl(t *testing.T) {
	names := map[string]string{}
	for _, c := range Catalogue() {
		for cfgName, cfg := range desiredConfigs() {
			t.Run(c.ID+"/"+cfgName, func(t *testing.T) {
				d := DesiredFor(cfg, c)
				if d.State != StateReportOnly {
					t.Errorf("state: got %s, want report-only", d.State)
				}
				if d.DisplayName != ManagedNameFor(cfg, c) || strings.TrimSpace(d.DisplayName) == "" {
					t.Errorf("displayName: got %q, want %q", d.DisplayName, ManagedNameFor(cfg, c))
				}
				rep := EvaluateControl(strengthTenant(cfg, d), cfg, c)
				if rep.Verdict != VerdictPendingEnforcement {
					t.Errorf("report-only: got %s, want %s (%s; %v)", rep.Verdict, VerdictPendingEnforcement, rep.Summary, rep.Policies[0].Reasons)
				}
				on := DesiredFor(cfg, c)
				on.State = StateEnabled
				if rep := EvaluateControl(strengthTenant(cfg, on), cfg, c); rep.Verdict != VerdictCompliant {
					t.Errorf("enabled: got %s, want %s (%s)", rep.Verdict, VerdictCompliant, rep.Summary)
				}
				b, err := json.Marshal(d)
				if err != nil {
					t.Fatal(err)
				}
				back, err := ParsePolicy(b)
				if err != nil {
					t.Fatalf("ParsePolicy(json.Marshal(DesiredFor)): %v", err)
				}
				if diffs := Diff(d, back); len(diffs) != 0 {
					t.Errorf("round trip: got %v, want no difference\njson: %s", diffs, b)
				}
				if users, groups := excludedBreakGlass(d, cfg); users+groups != len(cfg.BreakGlassUserIDs)+len(cfg.BreakGlassGroupIDs) {
					t.Errorf("break-glass exclusions: %d users and %d groups excluded, want every configured one", users, groups)
				}
				for _, problem := range graphConstraints(d) {
					t.Error(problem)
				}
			})
		}
		name := ManagedNameFor(Config{}, c)
		if other, dup := names[strings.ToLower(name)]; dup {
			t.Errorf("controls %s and %s share the managed name %q", other, c.ID, name)
		}
		names[strings.ToLower(name)] = c.ID
	}
}

// The default control keeps today's definition and name exactly.
func TestDesiredForDefaultIsDesired(t *testing.T) {
	c, _ := ControlByID(ControlAzureManagementMFA)
	for name, cfg := range desiredConfigs() {
		if diffs := Diff(Desired(cfg), DesiredFor(cfg, c)); len(diffs) != 0 {
			t.Errorf("%s: DesiredFor(azure-management-mfa) differs from Desired: %v", name, diffs)
		}
		if ManagedNameFor(cfg, c) != cfg.ManagedName() {
			t.Errorf("%s: name %q, want %q", name, ManagedNameFor(cfg, c), cfg.ManagedName())
		}
	}
}

// A block control's policy blocks exactly the sign-ins the control is about, no more.
func TestDesiredForBlockStaysNarrow(t *testing.T) {
	for _, c := range Catalogue() {
		if !c.Blocks() {
			continue
		}
		d := DesiredFor(Config{}, c)
		if len(c.Conditions.ClientAppTypes) > 0 && !slices.Equal(d.Conditions.ClientAppTypes, Normalize(Policy{Conditions: Conditions{ClientAppTypes: c.Conditions.ClientAppTypes}}).Conditions.ClientAppTypes) {
			t.Errorf("%s: client app types %v, want the control's %v", c.ID, d.Conditions.ClientAppTypes, c.Conditions.ClientAppTypes)
		}
		if len(c.Conditions.ClientAppTypes) == 0 && len(c.Conditions.TransferMethods) == 0 {
			t.Errorf("%s: a block control with neither client app types nor flows would block every sign-in", c.ID)
		}
	}
}

// strengthTenant is desiredTenant with the built-in phishing-resistant strength's definition, as
// Graph lists it (Entra docs, "Built-in authentication strengths"), which a read supplies whenever a
// policy references a strength.
func strengthTenant(cfg Config, p Policy) Tenant {
	t := desiredTenant(cfg, p)
	t.AuthenticationStrengths = []AuthenticationStrength{{ID: PhishingResistantStrengthID, DisplayName: "Phishing-resistant MFA",
		PolicyType: "builtIn", RequirementsSatisfied: "mfa", AllowedCombinations: []string{"windowsHelloForBusiness", "fido2", "x509CertificateMultiFactor"}}}
	return t
}

func excludedBreakGlass(p Policy, cfg Config) (users, groups int) {
	u := p.Conditions.Users
	for _, id := range cfg.BreakGlassUserIDs {
		if u != nil && slices.ContainsFunc(u.ExcludeUsers, func(s string) bool { return strings.EqualFold(s, id) }) {
			users++
		}
	}
	for _, id := range cfg.BreakGlassGroupIDs {
		if u != nil && slices.ContainsFunc(u.ExcludeGroups, func(s string) bool { return strings.EqualFold(s, id) }) {
			groups++
		}
	}
	return users, groups
}

// graphConstraints lists how p breaks a constraint Graph documents for the controls it writes.
func graphConstraints(p Policy) []string {
	var out []string
	g := p.GrantControls
	a := p.Conditions.Applications
	if g == nil && p.SessionControls == nil {
		out = append(out, "neither grant nor session controls: Graph requires one of them")
	}
	if a == nil || (len(a.IncludeApplications) == 0) == (len(a.IncludeUserActions) == 0) {
		out = append(out, "a policy targets either applications or user actions, exactly one of them")
	}
	if g == nil {
		return out
	}
	has := func(c string) bool { return slices.Contains(g.BuiltInControls, c) }
	// "conditionalAccessGrantControls resource type" (Graph v1.0), special considerations for
	// passwordChange: it must be accompanied by mfa using an AND operator, used in a policy
	// containing userRiskLevels, target all applications excluding none, and the policy cannot
	// contain any other condition except users, applications and userRiskLevels.
	if has("passwordChange") {
		if !has("mfa") || g.Operator != "AND" {
			out = append(out, "passwordChange needs mfa under AND")
		}
		if len(p.Conditions.UserRiskLevels) == 0 {
			out = append(out, "passwordChange needs userRiskLevels")
		}
		if a == nil || !slices.Equal(a.IncludeApplications, []string{"All"}) || len(a.ExcludeApplications) > 0 {
			out = append(out, "passwordChange needs All resources with no exclusion")
		}
		c := p.Conditions
		if len(c.SignInRiskLevels)+len(c.ServicePrincipalRiskLevels)+len(c.InsiderRiskLevels) > 0 || c.Platforms != nil ||
			c.Locations != nil || c.Devices != nil || c.AuthenticationFlows != nil || c.ClientApplications != nil ||
			!slices.Equal(c.ClientAppTypes, []string{"all"}) {
			out = append(out, "passwordChange allows no condition but users, applications and userRiskLevels")
		}
	}
	// Block denies access whatever else is required: it is the only control of its grant (Entra docs,
	// "Conditional Access: Grant": "Block access" or "Grant access" with controls).
	if has("block") && (len(g.BuiltInControls) > 1 || g.AuthenticationStrength != nil) {
		out = append(out, "block is combined with other controls")
	}
	// Entra docs, "Conditional Access authentication strength": require MFA and require
	// authentication strength cannot be selected together.
	if has("mfa") && g.AuthenticationStrength != nil {
		out = append(out, "mfa is combined with an authentication strength")
	}
	if g.Operator != "AND" && g.Operator != "OR" {
		out = append(out, "operator is neither AND nor OR")
	}
	// Persistent browser session "only works correctly when All resources are selected" (Entra docs,
	// "Configure adaptive session lifetime policies").
	if s := p.SessionControls; s != nil && s.PersistentBrowser != nil && (a == nil || !slices.Equal(a.IncludeApplications, []string{"All"})) {
		out = append(out, "persistent browser needs All resources")
	}
	return out
}
