package capolicy

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The catalogue's first control is the one caguard has always judged: for it, EvaluateControl must
// say exactly what Evaluate says, on every case of Evaluate's own table.
func TestEvaluateControlAgreesWithEvaluateForAzureManagement(t *testing.T) {
	c, ok := ControlByID(ControlAzureManagementMFA)
	if !ok {
		t.Fatal("no azure-management-mfa in the catalogue")
	}
	for _, tc := range append(evalCases(), reviewEvalCases()...) {
		t.Run(tc.name, func(t *testing.T) {
			tenant, cfg, want := tc.run(t)
			got := EvaluateControl(tenant, cfg, c)
			if got.Verdict != want.Verdict || got.Compliant != want.Compliant || got.Closest != want.Closest || !slices.Equal(got.Passing, want.Passing) {
				t.Fatalf("verdict %s compliant %v closest %q passing %v; Evaluate says %s %v %q %v",
					got.Verdict, got.Compliant, got.Closest, got.Passing, want.Verdict, want.Compliant, want.Closest, want.Passing)
			}
			for i := range want.Policies {
				if g, w := codesOf(got.Policies[i]), codesOf(want.Policies[i]); !slices.Equal(g, w) {
					t.Errorf("policy %d: codes %v, Evaluate says %v", i, g, w)
				}
				if got.Policies[i].MeetsAllButState != want.Policies[i].MeetsAllButState {
					t.Errorf("policy %d: meetsAllButState %v, Evaluate says %v", i, got.Policies[i].MeetsAllButState, want.Policies[i].MeetsAllButState)
				}
			}
		})
	}
}

// catalogue policies: each control's passing policy, as an admin following Microsoft's template or the
// benchmark's remediation would write it, excluding the break-glass accounts.
func catalogueBase(mods ...func(p *Policy)) Policy {
	p := Policy{ID: "c0000000-0000-4000-8000-000000000001", DisplayName: "CIS policy", State: StateEnabled,
		Conditions: Conditions{
			Users:          &Users{IncludeUsers: []string{"All"}, ExcludeUsers: []string{bgUser1}, ExcludeGroups: []string{bgGroup}},
			Applications:   &Applications{IncludeApplications: []string{"All"}},
			ClientAppTypes: []string{"all"},
		},
		GrantControls: &GrantControls{Operator: "OR", BuiltInControls: []string{"mfa"}},
	}
	for _, m := range mods {
		m(&p)
	}
	return p
}

func adminUsers(p *Policy) {
	p.Conditions.Users = &Users{IncludeRoles: slices.Clone(AdminRoleTemplateIDs), ExcludeUsers: []string{bgUser1}}
}
func grantOf(op string, controls ...string) func(*Policy) {
	return func(p *Policy) { p.GrantControls = &GrantControls{Operator: op, BuiltInControls: controls} }
}
func withClientApps(types ...string) func(*Policy) {
	return func(p *Policy) { p.Conditions.ClientAppTypes = types }
}

var passingPolicies = map[string]Policy{
	ControlAzureManagementMFA: catalogueBase(withApps(AzureManagementAppID)),
	ControlAdminMFA:           catalogueBase(adminUsers),
	ControlAllUsersMFA:        catalogueBase(),
	ControlBlockLegacyAuth:    catalogueBase(withClientApps("exchangeActiveSync", "other"), grantOf("OR", "block")),
	ControlAdminSignInFrequency: catalogueBase(adminUsers, func(p *Policy) {
		p.GrantControls = nil
		p.SessionControls = &SessionControls{
			SignInFrequency:   &SignInFrequency{IsEnabled: true, Value: 4, Type: "hours", AuthenticationType: "primaryAndSecondaryAuthentication", FrequencyInterval: "timeBased"},
			PersistentBrowser: &EnabledSetting{IsEnabled: true, Mode: "never"},
		}
	}),
	ControlAdminPhishingResistantMFA: catalogueBase(adminUsers, func(p *Policy) {
		p.GrantControls = &GrantControls{Operator: "OR", AuthenticationStrength: &AuthenticationStrength{ID: strPhish}}
	}),
	ControlUserRiskPolicy: catalogueBase(grantOf("AND", "mfa", "passwordChange"), func(p *Policy) {
		p.Conditions.UserRiskLevels = []string{"high"}
	}),
	ControlSignInRiskPolicy:    catalogueBase(func(p *Policy) { p.Conditions.SignInRiskLevels = []string{"high", "medium"} }),
	ControlManagedDeviceSignIn: catalogueBase(grantOf("OR", "compliantDevice", "domainJoinedDevice")),
	ControlManagedDeviceRegisterSecur: catalogueBase(grantOf("OR", "compliantDevice", "domainJoinedDevice"), func(p *Policy) {
		p.Conditions.Applications = &Applications{IncludeUserActions: []string{"urn:user:registersecurityinfo"}}
	}),
	ControlBlockDeviceCodeFlow: catalogueBase(grantOf("OR", "block"), func(p *Policy) {
		p.Conditions.AuthenticationFlows = &AuthenticationFlows{TransferMethods: []string{"deviceCodeFlow"}}
	}),
	ControlAdminPortalsMFA: catalogueBase(withApps("MicrosoftAdminPortals")),
}

// weakenings are realistic edits that must each make a control's policy fail: an exclusion, a
// narrowed scope, an OR alternative, a weaker strength or session.
var weakenings = map[string][]struct {
	name string
	mod  func(*Policy)
}{
	ControlAzureManagementMFA: {
		{"excludes an ordinary user", func(p *Policy) { p.Conditions.Users.ExcludeUsers = append(p.Conditions.Users.ExcludeUsers, otherUser) }},
		{"targets another app", withApps(otherApp)},
		{"accepts a compliant device instead", grantOf("OR", "mfa", "compliantDevice")},
	},
	ControlAdminMFA: {
		{"drops the Global Administrator role", func(p *Policy) {
			p.Conditions.Users.IncludeRoles = slices.DeleteFunc(slices.Clone(p.Conditions.Users.IncludeRoles), func(r string) bool { return r == globalAdm })
		}},
		{"excludes an ordinary user", func(p *Policy) { p.Conditions.Users.ExcludeUsers = append(p.Conditions.Users.ExcludeUsers, otherUser) }},
		{"accepts a compliant device instead", grantOf("OR", "mfa", "compliantDevice")},
		{"targets one app only", withApps(AzureManagementAppID)},
	},
	ControlAllUsersMFA: {
		{"excludes the admin portals", withApps("All", "MicrosoftAdminPortals")},
		{"includes only admins", adminUsers},
		{"accepts a compliant device instead", grantOf("OR", "mfa", "compliantDevice")},
		{"browser only", withClientApps("browser")},
	},
	ControlBlockLegacyAuth: {
		{"only Exchange ActiveSync", withClientApps("exchangeActiveSync")},
		{"requires MFA instead of blocking", grantOf("OR", "mfa")},
		{"excludes an ordinary user", func(p *Policy) { p.Conditions.Users.ExcludeUsers = append(p.Conditions.Users.ExcludeUsers, otherUser) }},
	},
	ControlAdminSignInFrequency: {
		{"frequency 24 hours", func(p *Policy) { p.SessionControls.SignInFrequency.Value = 24 }},
		{"persistent browser always", func(p *Policy) { p.SessionControls.PersistentBrowser.Mode = "always" }},
		{"no session controls", func(p *Policy) { p.SessionControls = nil }},
		{"drops the Global Administrator role", func(p *Policy) {
			p.Conditions.Users.IncludeRoles = slices.DeleteFunc(slices.Clone(p.Conditions.Users.IncludeRoles), func(r string) bool { return r == globalAdm })
		}},
	},
	ControlAdminPhishingResistantMFA: {
		{"the MFA strength, not phishing-resistant", func(p *Policy) { p.GrantControls.AuthenticationStrength = &AuthenticationStrength{ID: strMFA} }},
		{"plain MFA", grantOf("OR", "mfa")},
		{"phishing-resistant or a compliant device", func(p *Policy) { p.GrantControls.BuiltInControls = []string{"compliantDevice"} }},
	},
	ControlUserRiskPolicy: {
		{"MFA or a password change (OR)", grantOf("OR", "mfa", "passwordChange")},
		{"no risk condition at medium only", func(p *Policy) { p.Conditions.UserRiskLevels = []string{"medium"} }},
		{"excludes an ordinary user", func(p *Policy) { p.Conditions.Users.ExcludeUsers = append(p.Conditions.Users.ExcludeUsers, otherUser) }},
	},
	ControlSignInRiskPolicy: {
		{"high only", func(p *Policy) { p.Conditions.SignInRiskLevels = []string{"high"} }},
		{"accepts a compliant device instead", grantOf("OR", "mfa", "compliantDevice")},
		{"targets one app only", withApps(AzureManagementAppID)},
	},
	ControlManagedDeviceSignIn: {
		{"or MFA", grantOf("OR", "compliantDevice", "mfa")},
		{"excludes an ordinary user", func(p *Policy) { p.Conditions.Users.ExcludeUsers = append(p.Conditions.Users.ExcludeUsers, otherUser) }},
		{"targets one app only", withApps(AzureManagementAppID)},
	},
	ControlManagedDeviceRegisterSecur: {
		{"targets All resources instead of the user action", withApps("All")},
		{"or MFA", grantOf("OR", "compliantDevice", "mfa")},
		{"excludes an ordinary user", func(p *Policy) { p.Conditions.Users.ExcludeUsers = append(p.Conditions.Users.ExcludeUsers, otherUser) }},
	},
	ControlBlockDeviceCodeFlow: {
		{"requires MFA instead of blocking", grantOf("OR", "mfa")},
		{"includes only admins", adminUsers},
		{"excludes an app", withApps("All", AzureManagementAppID)},
	},
	ControlAdminPortalsMFA: {
		{"targets Azure management only", withApps(AzureManagementAppID)},
		{"accepts a compliant device instead", grantOf("OR", "mfa", "compliantDevice")},
		{"excludes an ordinary user", func(p *Policy) { p.Conditions.Users.ExcludeUsers = append(p.Conditions.Users.ExcludeUsers, otherUser) }},
	},
}

// unknownValues put a value caguard does not know into the policy: it must fail, naming the value.
var unknownMods = []struct {
	name, value string
	mod         func(*Policy)
}{
	{"state", "onAndOff", func(p *Policy) { p.State, p.UnrecognisedState = StateUnknown, "onAndOff" }},
	{"client app type", "quantumClients", func(p *Policy) {
		p.Conditions.ClientAppTypes = append(slices.Clone(p.Conditions.ClientAppTypes), "quantumClients")
	}},
	{"unmodelled condition", "conditions.futureCondition", func(p *Policy) {
		p.Conditions.Unrecognised = []UnknownValue{{Field: "conditions.futureCondition", Value: `{"x":1}`}}
	}},
}

const otherUser = "0ddba11e-0000-4000-8000-0000000000ff"

func TestCatalogueJudgesEveryControl(t *testing.T) {
	cat := Catalogue()
	if len(cat) != len(passingPolicies) {
		t.Fatalf("catalogue has %d controls, the table %d: give each control its cases", len(cat), len(passingPolicies))
	}
	for _, c := range cat {
		t.Run(c.ID, func(t *testing.T) {
			pass, ok := passingPolicies[c.ID]
			if !ok {
				t.Fatalf("no passing policy for %s", c.ID)
			}
			if len(weakenings[c.ID]) < 3 {
				t.Fatalf("%d weakenings for %s, want at least 3", len(weakenings[c.ID]), c.ID)
			}
			rep := EvaluateControl(testTenant(pass), testConfig(), c)
			if rep.Verdict != VerdictCompliant {
				t.Fatalf("passing policy: %s, reasons %+v", rep.Summary, rep.Policies[0].Reasons)
			}
			if rep.ID != c.ID || rep.Title == "" || len(rep.CIS) == 0 {
				t.Errorf("report names %q %q %v", rep.ID, rep.Title, rep.CIS)
			}
			if r := EvaluateControl(testTenant(clonePolicy(pass)), testConfig(), c); r.Verdict != VerdictCompliant {
				t.Fatalf("the copy of the passing policy is %s, not compliant: the weakenings below would prove nothing", r.Verdict)
			}
			ro := pass
			ro.State = StateReportOnly
			if got := EvaluateControl(testTenant(ro), testConfig(), c).Verdict; got != VerdictPendingEnforcement {
				t.Errorf("report-only passing policy: %s, want pending-enforcement", got)
			}
			for _, w := range weakenings[c.ID] {
				p := clonePolicy(pass)
				w.mod(&p)
				r := EvaluateControl(testTenant(p), testConfig(), c)
				if r.Verdict != VerdictNonCompliant || len(r.Policies[0].Reasons) == 0 {
					t.Errorf("%s: verdict %s, want non-compliant with a reason", w.name, r.Verdict)
				}
			}
			for _, u := range unknownMods {
				p := clonePolicy(pass)
				u.mod(&p)
				r := EvaluateControl(testTenant(p), testConfig(), c)
				if r.Verdict == VerdictCompliant {
					t.Errorf("unknown %s: compliant, want it to fail closed", u.name)
					continue
				}
				named := false
				for _, reason := range r.Policies[0].Reasons {
					for _, v := range reason.Unrecognised {
						named = named || strings.Contains(v.Value, u.value) || strings.Contains(v.Field, u.value)
					}
				}
				if !named {
					t.Errorf("unknown %s: reasons %+v do not name %q", u.name, r.Policies[0].Reasons, u.value)
				}
			}
		})
	}
}

// A policy for one control does not count for another it does not cover, and never modifies input.
func TestControlsDoNotCoverEachOther(t *testing.T) {
	legacy, _ := ControlByID(ControlBlockLegacyAuth)
	allMFA := passingPolicies[ControlAllUsersMFA]
	if r := EvaluateControl(testTenant(allMFA), testConfig(), legacy); r.Verdict == VerdictCompliant {
		t.Error("an MFA policy met the legacy-authentication block")
	}
	phish, _ := ControlByID(ControlAdminPhishingResistantMFA)
	before := clonePolicy(allMFA)
	if r := EvaluateControl(testTenant(allMFA), testConfig(), phish); r.Verdict == VerdictCompliant {
		t.Error("plain MFA met the phishing-resistant control")
	}
	if !reflect.DeepEqual(before, allMFA) {
		t.Error("EvaluateControl modified its input")
	}
	// All users and All resources cover a role control and an app control: a broader policy counts.
	admin, _ := ControlByID(ControlAdminMFA)
	portals, _ := ControlByID(ControlAdminPortalsMFA)
	for _, c := range []Control{admin, portals} {
		if r := EvaluateControl(testTenant(allMFA), testConfig(), c); r.Verdict != VerdictCompliant {
			t.Errorf("%s: All users and All resources with MFA gave %s (%s)", c.ID, r.Verdict, r.Summary)
		}
	}
}

func TestParseControls(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"", []string{ControlAzureManagementMFA}, ""},
		{" Admin-MFA , azure-management-mfa,admin-mfa", []string{ControlAzureManagementMFA, ControlAdminMFA}, ""},
		{"all", nil, ""},
		{"azure-management-mfa,nope", nil, `unknown control "nope"`},
		{",", nil, "no control named"},
	} {
		got, err := ParseControls(tt.in)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err %v, want %q", tt.in, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%q: %v", tt.in, err)
		case tt.in == "all":
			if len(got) != len(Catalogue()) {
				t.Errorf("all: %d controls, want %d", len(got), len(Catalogue()))
			}
		case !slices.Equal(got, tt.want):
			t.Errorf("%q: got %v, want %v", tt.in, got, tt.want)
		}
	}
}

// clonePolicy deep-copies p through JSON's shape of it (the model's fields are plain data), so a
// weakening of the copy never touches the table's passing policy.
func clonePolicy(p Policy) Policy {
	b, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	var out Policy
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	// Fields JSON does not carry.
	out.UnrecognisedState = p.UnrecognisedState
	out.Conditions.Unrecognised = slices.Clone(p.Conditions.Unrecognised)
	return out
}

// The README's table of controls is the catalogue's: run `go run ./scripts/controlstable` after
// changing a control.
func TestReadmeTableOfControlsIsTheCatalogue(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	const begin, end = "<!-- controls:begin -->\n", "<!-- controls:end -->"
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatal("README.md has no controls markers")
	}
	if got := s[i+len(begin) : j]; got != CatalogueMarkdown() {
		t.Errorf("README.md's table of controls is not the catalogue's; run: go run ./scripts/controlstable\ngot:\n%s\nwant:\n%s", got, CatalogueMarkdown())
	}
}
