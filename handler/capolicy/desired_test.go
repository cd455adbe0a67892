package capolicy

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

func desiredConfigs() map[string]Config {
	return map[string]Config{
		"default config":           {},
		"break-glass users only":   {BreakGlassUserIDs: []string{bgUser2, bgUser1}},
		"break-glass users/groups": testConfig(),
		"sovereign cloud":          {TargetAppIDs: []string{govApp}, BreakGlassGroupIDs: []string{bgGroup}, ManagedPolicyName: "Gov MFA"},
		"two target apps":          {TargetAppIDs: []string{govApp, AzureManagementAppID}, BreakGlassUserIDs: []string{bgUser1}},
	}
}

// desiredTenant supplies the membership of every break-glass group: its break-glass users only.
func desiredTenant(cfg Config, p Policy) Tenant {
	t := Tenant{Policies: []Policy{p}, GroupMembers: map[string][]string{}}
	for _, g := range cfg.BreakGlassGroupIDs {
		t.GroupMembers[g] = cfg.BreakGlassUserIDs
	}
	return t
}

func TestDesired(t *testing.T) {
	for name, cfg := range desiredConfigs() {
		t.Run(name, func(t *testing.T) {
			d := Desired(cfg)
			if d.State != StateReportOnly {
				t.Errorf("state: got %s, want report-only", d.State)
			}
			if d.DisplayName != cfg.ManagedName() {
				t.Errorf("displayName: got %q, want %q", d.DisplayName, cfg.ManagedName())
			}
			if rep := Evaluate(desiredTenant(cfg, d), cfg); rep.Verdict != VerdictPendingEnforcement {
				t.Errorf("Desired as returned: got %s, want %s (%s)", rep.Verdict, VerdictPendingEnforcement, rep.Summary)
			}
			on := Desired(cfg)
			on.State = StateEnabled
			if rep := Evaluate(desiredTenant(cfg, on), cfg); rep.Verdict != VerdictCompliant {
				t.Errorf("Desired enabled: got %s, want %s (%s)", rep.Verdict, VerdictCompliant, rep.Summary)
			}
			if diffs := Diff(d, Desired(cfg)); len(diffs) != 0 {
				t.Errorf("Diff(Desired, Desired): got %v, want none", diffs)
			}
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParsePolicy(b)
			if err != nil {
				t.Fatalf("ParsePolicy(json.Marshal(Desired)): %v", err)
			}
			if diffs := Diff(d, back); len(diffs) != 0 {
				t.Errorf("Diff(Desired, ParsePolicy(json.Marshal(Desired))): got %v, want none\njson: %s", diffs, b)
			}
			if !reflect.DeepEqual(d, back) {
				t.Errorf("round trip: got %+v, want %+v", back, d)
			}
		})
	}
}

func TestDesiredHasNothingElse(t *testing.T) {
	d := Desired(testConfig())
	want := Policy{
		DisplayName: DefaultManagedPolicyName,
		State:       StateReportOnly,
		Conditions: Conditions{
			Users: &Users{
				IncludeUsers:  []string{"All"},
				ExcludeUsers:  []string{bgUser1, bgUser2},
				ExcludeGroups: []string{unknownBG, bgGroup, emptyBG},
			},
			Applications:   &Applications{IncludeApplications: []string{AzureManagementAppID}},
			ClientAppTypes: []string{"all"},
		},
		GrantControls: &GrantControls{Operator: "OR", BuiltInControls: []string{"mfa"}},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Desired: got %+v, want %+v", d, want)
	}
}

func TestDesiredSharesNothingWithConfig(t *testing.T) {
	cfg := Config{BreakGlassUserIDs: []string{bgUser2, bgUser1}}
	d := Desired(cfg)
	d.Conditions.Users.ExcludeUsers[0] = "changed"
	if cfg.BreakGlassUserIDs[0] != bgUser2 || cfg.BreakGlassUserIDs[1] != bgUser1 {
		t.Errorf("Desired sorted or changed the config's slice: got %v", cfg.BreakGlassUserIDs)
	}
}

func TestDiff(t *testing.T) {
	cfg := testConfig()
	tests := []struct {
		name   string
		change func(p *Policy)
		want   []Difference
	}{
		{"identical policies have no difference", func(p *Policy) {}, nil},
		{"Graph-owned fields are ignored", func(p *Policy) {
			p.ID, p.TemplateID, p.CreatedDateTime, p.ModifiedDateTime = "x", "y", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"
		}, nil},
		{"nil and empty slices make no difference", func(p *Policy) {
			p.Conditions.UserRiskLevels = []string{}
			p.Conditions.Users.IncludeGroups = []string{}
			p.Conditions.Platforms = &Platforms{IncludePlatforms: []string{}, ExcludePlatforms: nil}
			p.GrantControls.TermsOfUse = []string{}
			p.SessionControls = &SessionControls{}
		}, nil},
		{"case and order of sets make no difference", func(p *Policy) {
			p.Conditions.Users.ExcludeUsers = []string{bgUser2, "B9C1A7D2-3E4F-4A5B-8C6D-7E8F9A0B1C2D"}
			p.Conditions.Users.IncludeUsers = []string{"all"}
			p.GrantControls = &GrantControls{Operator: "or", BuiltInControls: []string{"MFA"}}
			p.Conditions.ClientAppTypes = []string{"ALL"}
		}, nil},
		{"switched-off session controls make no difference", func(p *Policy) {
			f := false
			p.SessionControls = &SessionControls{DisableResilienceDefaults: &f, PersistentBrowser: &EnabledSetting{Mode: "always"}}
		}, nil},
		{"a removed mfa grant is detected", func(p *Policy) { p.GrantControls = nil }, []Difference{
			{"grantControls.operator", "OR", "(not set)"},
			{"grantControls.builtInControls", "[mfa]", "[]"},
		}},
		{"an added excluded user is detected", func(p *Policy) {
			p.Conditions.Users.ExcludeUsers = append(p.Conditions.Users.ExcludeUsers, someUser)
		}, []Difference{{"conditions.users.excludeUsers", "[" + bgUser1 + ", " + bgUser2 + "]", "[" + someUser + ", " + bgUser1 + ", " + bgUser2 + "]"}}},
		{"a changed state is detected", func(p *Policy) { p.State = StateDisabled }, []Difference{{"state", "enabledForReportingButNotEnforced", "disabled"}}},
		{"a renamed policy is detected", func(p *Policy) { p.DisplayName = "mine now" }, []Difference{{"displayName", `"` + DefaultManagedPolicyName + `"`, `"mine now"`}}},
		{"an added condition is detected", func(p *Policy) {
			p.Conditions.Locations = &Locations{IncludeLocations: []string{"All"}, ExcludeLocations: []string{"AllTrusted"}}
		}, []Difference{
			{"conditions.locations.includeLocations", "[]", "[All]"},
			{"conditions.locations.excludeLocations", "[]", "[AllTrusted]"},
		}},
		{"an added session control is detected", func(p *Policy) {
			p.SessionControls = &SessionControls{SignInFrequency: &SignInFrequency{IsEnabled: true, Value: 4, Type: "hours"}}
		}, []Difference{{"sessionControls.signInFrequency", "(not set)", "enabled, every 4 hours"}}},
		{"an authentication strength replacing mfa is detected", func(p *Policy) {
			p.GrantControls = &GrantControls{Operator: "OR", AuthenticationStrength: &AuthenticationStrength{ID: strPhish, RequirementsSatisfied: "mfa"}}
		}, []Difference{
			{"grantControls.builtInControls", "[mfa]", "[]"},
			{"grantControls.authenticationStrength", "(not set)", strPhish},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			actual := Desired(cfg)
			tc.change(&actual)
			got := Diff(Desired(cfg), actual)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Diff: got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestTopLevelFields(t *testing.T) {
	tests := []struct {
		name  string
		diffs []Difference
		want  []string
	}{
		{"no differences touch nothing", nil, nil},
		{"fields are named once in Graph order", []Difference{
			{Field: "grantControls.builtInControls"}, {Field: "conditions.users.excludeUsers"}, {Field: "state"},
			{Field: "conditions.clientAppTypes"}, {Field: "grantControls.operator"},
		}, []string{"state", "conditions", "grantControls"}},
		{"displayName and sessionControls are top-level fields", []Difference{{Field: "sessionControls.signInFrequency"}, {Field: "displayName"}},
			[]string{"displayName", "sessionControls"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := TopLevelFields(tc.diffs); !slices.Equal(got, tc.want) {
				t.Errorf("TopLevelFields: got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	for _, tc := range evalCases() {
		tenant, _, _ := tc.run(t)
		for i, p := range tenant.Policies {
			before, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			n := Normalize(p)
			if again := Normalize(n); !reflect.DeepEqual(again, n) {
				t.Errorf("%s: policy %d: Normalize is not idempotent:\n got %+v\nwant %+v", tc.name, i, again, n)
			}
			after, _ := json.Marshal(p)
			if string(before) != string(after) {
				t.Errorf("%s: policy %d: Normalize modified its input", tc.name, i)
			}
		}
	}
}
