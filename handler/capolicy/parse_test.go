package capolicy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParsePolicyRejectsMalformedJSON(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty input is an error", ``},
		{"truncated object is an error", `{"id":"x","conditions":{`},
		{"missing value is an error", `{"id":}`},
		{"JSON null is not a policy", `null`},
		{"an array is not a policy", `[{"id":"x"}]`},
		{"a number is not a policy", `42`},
		{"a string is not a policy", `"policy"`},
		{"conditions as an array is an error", `{"conditions":[]}`},
		{"a control list as an object is an error", `{"grantControls":{"builtInControls":{}}}`},
		{"state as an object is an error", `{"state":{"value":"enabled"}}`},
		{"a user list holding a boolean is an error", `{"conditions":{"users":{"includeUsers":true}}}`},
		{"a list item that is an object is an error", `{"conditions":{"users":{"includeUsers":[{"id":"x"}]}}}`},
		{"a non-numeric sign-in frequency is an error", `{"sessionControls":{"signInFrequency":{"value":"often"}}}`},
		{"a non-boolean isEnabled is an error", `{"sessionControls":{"persistentBrowser":{"isEnabled":"maybe"}}}`},
		{"trailing garbage is an error", `{"id":"x"} {`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tc.in))
			if err == nil {
				t.Fatalf("ParsePolicy(%q): got %+v and no error, want an error", tc.in, p)
			}
			if !strings.HasPrefix(err.Error(), "parse policy: ") {
				t.Errorf("error %q: want it to start with %q", err, "parse policy: ")
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(t *testing.T, p Policy)
	}{
		{"numeric guest types 63 decode to the six names", `{"conditions":{"users":{"includeGuestsOrExternalUsers":{"guestOrExternalUserTypes":63,"externalTenants":{}}}}}`,
			func(t *testing.T, p Policy) {
				g := p.Conditions.Users.IncludeGuestsOrExternalUsers
				want := []string{"b2bCollaborationGuest", "b2bCollaborationMember", "b2bDirectConnectUser", "internalGuest", "otherExternalUser", "serviceProvider"}
				equal(t, "guestOrExternalUserTypes", g.GuestOrExternalUserTypes, want)
				if g.ExternalTenants != nil {
					t.Errorf("externalTenants: got %+v, want nil for {}", g.ExternalTenants)
				}
			}},
		{"numeric guest type 0 means none", `{"conditions":{"users":{"includeUsers":["All"],"excludeGuestsOrExternalUsers":{"guestOrExternalUserTypes":0}}}}`,
			func(t *testing.T, p Policy) {
				if g := p.Conditions.Users.ExcludeGuestsOrExternalUsers; g != nil {
					t.Errorf("excludeGuestsOrExternalUsers: got %+v, want nil", g)
				}
			}},
		{"unknown guest type bits read as unknownFutureValue", `{"conditions":{"users":{"excludeGuestsOrExternalUsers":{"guestOrExternalUserTypes":129}}}}`,
			func(t *testing.T, p Policy) {
				equal(t, "types", p.Conditions.Users.ExcludeGuestsOrExternalUsers.GuestOrExternalUserTypes, []string{"internalGuest", "unknownFutureValue"})
			}},
		{"Graph comma-separated guest types decode to names", `{"conditions":{"users":{"excludeGuestsOrExternalUsers":{"guestOrExternalUserTypes":"internalGuest, B2bCollaborationGuest","externalTenants":{"@odata.type":"#microsoft.graph.conditionalAccessEnumeratedExternalTenants","members":["0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D"]}}}}}`,
			func(t *testing.T, p Policy) {
				g := p.Conditions.Users.ExcludeGuestsOrExternalUsers
				equal(t, "types", g.GuestOrExternalUserTypes, []string{"b2bCollaborationGuest", "internalGuest"})
				if g.ExternalTenants == nil || g.ExternalTenants.MembershipKind != "enumerated" {
					t.Fatalf("externalTenants: got %+v, want membershipKind enumerated from @odata.type", g.ExternalTenants)
				}
				equal(t, "members", g.ExternalTenants.Members, []string{"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"})
			}},
		{"properties the model does not know are listed when they hold a value",
			`{"conditions":{"times":null,"futureCondition":{"includeThings":["x"]},"emptyCondition":{"a":[],"b":null},"userRiskLevels@odata.type":"#Collection(microsoft.graph.riskLevel)",` +
				`"users":{"includeUsers":["All"],"excludeFutureIdentities":["All"],"excludeGuestsOrExternalUsers":{"guestOrExternalUserTypes":"internalGuest","futureFlag":true,"externalTenants":{"membershipKind":"all","futureTenants":"x"}}},` +
				`"applications":{"includeApplications":["All"],"globalSecureAccess":null,"networkAccess":{"isEnabled":false}},"platforms":{"includePlatforms":["all"],"futurePlatformRule":"x"}},` +
				`"grantControls":{"operator":"OR","builtInControls":["mfa"],"authenticationStrength@odata.context":"x","futureAlternative":{"id":"y"}}}`,
			func(t *testing.T, p Policy) {
				equal(t, "conditions", fieldsOf(p.Conditions.Unrecognised), []string{
					"conditions.applications.networkAccess",
					"conditions.futureCondition",
					"conditions.platforms.futurePlatformRule",
					"conditions.users.excludeFutureIdentities",
					"conditions.users.excludeGuestsOrExternalUsers.externalTenants.futureTenants",
					"conditions.users.excludeGuestsOrExternalUsers.futureFlag",
				})
				equal(t, "grantControls", fieldsOf(p.GrantControls.Unrecognised), []string{"grantControls.futureAlternative"})
				equal(t, "grantControls values", valuesOf(p.GrantControls.Unrecognised), []string{`{"id":"y"}`})
			}},
		{"a grant holding only an unknown property is kept", `{"grantControls":{"operator":"OR","builtInControls":[],"futureAlternative":"x"}}`,
			func(t *testing.T, p Policy) {
				if p.GrantControls == nil {
					t.Fatal("grantControls: got nil, want the grant kept for its unknown property")
				}
				equal(t, "grantControls", fieldsOf(p.GrantControls.Unrecognised), []string{"grantControls.futureAlternative"})
			}},
		{"enum values the model does not know are kept as written", `{"conditions":{"clientAppTypes":["futureType"],"users":{"excludeGuestsOrExternalUsers":{"guestOrExternalUserTypes":"internalGuest,futureGuest"}}},"grantControls":{"builtInControls":["futureControl"]}}`,
			func(t *testing.T, p Policy) {
				equal(t, "clientAppTypes", p.Conditions.ClientAppTypes, []string{"futureType"})
				equal(t, "guest types", p.Conditions.Users.ExcludeGuestsOrExternalUsers.GuestOrExternalUserTypes, []string{"futureGuest", "internalGuest"})
				equal(t, "builtInControls", p.GrantControls.BuiltInControls, []string{"futureControl"})
			}},
		{"numeric transfer methods decode to names", `{"conditions":{"authenticationFlows":{"transferMethods":3}}}`,
			func(t *testing.T, p Policy) {
				equal(t, "transferMethods", p.Conditions.AuthenticationFlows.TransferMethods, []string{"authenticationTransfer", "deviceCodeFlow"})
			}},
		{"Graph comma-separated insider risk levels decode to names", `{"conditions":{"insiderRiskLevels":"minor,Elevated"}}`,
			func(t *testing.T, p Policy) {
				equal(t, "insiderRiskLevels", p.Conditions.InsiderRiskLevels, []string{"elevated", "minor"})
			}},
		{"upper-case MFA normalises to mfa", `{"grantControls":{"operator":"or","builtInControls":["MFA","CompliantDevice"]}}`,
			func(t *testing.T, p Policy) {
				equal(t, "builtInControls", p.GrantControls.BuiltInControls, []string{"compliantDevice", "mfa"})
				if p.GrantControls.Operator != "OR" {
					t.Errorf("operator: got %q, want OR", p.GrantControls.Operator)
				}
			}},
		{"enum and token spellings are canonical", `{"conditions":{"clientAppTypes":["MOBILEAPPSANDDESKTOPCLIENTS","browser"],"users":{"includeUsers":["all"]},"applications":{"includeApplications":["ALL"],"excludeApplications":["office365"]},"platforms":{"includePlatforms":["IOS"]},"locations":{"includeLocations":["alltrusted"]}}}`,
			func(t *testing.T, p Policy) {
				c := p.Conditions
				equal(t, "clientAppTypes", c.ClientAppTypes, []string{"browser", "mobileAppsAndDesktopClients"})
				equal(t, "includeUsers", c.Users.IncludeUsers, []string{"All"})
				equal(t, "includeApplications", c.Applications.IncludeApplications, []string{"All"})
				equal(t, "excludeApplications", c.Applications.ExcludeApplications, []string{"Office365"})
				equal(t, "includePlatforms", c.Platforms.IncludePlatforms, []string{"iOS"})
				equal(t, "includeLocations", c.Locations.IncludeLocations, []string{"AllTrusted"})
			}},
		{"ids are lower-cased and sorted", `{"id":"ABCDEF01-2345-4678-9ABC-DEF012345678","conditions":{"users":{"excludeUsers":["C0D2B8E3-4F5A-4B6C-9D7E-8F9A0B1C2D3E","b9c1a7d2-3e4f-4a5b-8c6d-7e8f9a0b1c2d"]}}}`,
			func(t *testing.T, p Policy) {
				if p.ID != "abcdef01-2345-4678-9abc-def012345678" {
					t.Errorf("id: got %q, want it lower-cased", p.ID)
				}
				equal(t, "excludeUsers", p.Conditions.Users.ExcludeUsers, []string{bgUser1, bgUser2})
			}},
		{"absent state is unknown", `{"id":"x"}`, func(t *testing.T, p Policy) { state(t, p, StateUnknown) }},
		{"unknown state is unknown", `{"state":"on"}`, func(t *testing.T, p Policy) { state(t, p, StateUnknown) }},
		{"numeric state is unknown", `{"state":0}`, func(t *testing.T, p Policy) { state(t, p, StateUnknown) }},
		{"state compares without case", `{"state":"EnabledForReportingButNotEnforced"}`, func(t *testing.T, p Policy) { state(t, p, StateReportOnly) }},
		{"a single string is a one-item list", `{"conditions":{"users":{"includeUsers":"All"}}}`,
			func(t *testing.T, p Policy) {
				equal(t, "includeUsers", p.Conditions.Users.IncludeUsers, []string{"All"})
			}},
		{"Graph nulls and empty sections become nil", `{"@odata.context":"x","templateId":null,"sessionControls":{"disableResilienceDefaults":false,"signInFrequency":null,"persistentBrowser":{"isEnabled":false,"mode":"always"}},"conditions":{"platforms":null,"users":{"includeUsers":[],"excludeUsers":null},"applications":{"applicationFilter":{"mode":"include","rule":""}},"devices":{"deviceFilter":null}},"grantControls":{"operator":"OR","builtInControls":[],"authenticationStrength":null}}`,
			func(t *testing.T, p Policy) {
				if !reflect.DeepEqual(p, Policy{}) {
					t.Errorf("got %+v, want the zero Policy", p)
				}
			}},
		{"expanded authentication strength keeps its requirement", `{"grantControls":{"operator":"OR","authenticationStrength@odata.context":"x","authenticationStrength":{"id":"00000000-0000-0000-0000-000000000004","displayName":"Phishing-resistant MFA","policyType":"BuiltIn","requirementsSatisfied":"MFA","allowedCombinations":["fido2","windowsHelloForBusiness"]}}}`,
			func(t *testing.T, p Policy) {
				s := p.GrantControls.AuthenticationStrength
				if s == nil || s.ID != strPhish || s.RequirementsSatisfied != "mfa" || s.PolicyType != "builtIn" {
					t.Errorf("authenticationStrength: got %+v", s)
				}
			}},
		{"session controls accept strings for booleans and numbers", `{"sessionControls":{"signInFrequency":{"value":"12","type":"Hours","isEnabled":"true"},"cloudAppSecurity":{"isEnabled":true,"cloudAppSecurityType":"monitorOnly"}}}`,
			func(t *testing.T, p Policy) {
				f := p.SessionControls.SignInFrequency
				if f == nil || !f.IsEnabled || f.Value != 12 || f.Type != "hours" {
					t.Errorf("signInFrequency: got %+v", f)
				}
				if c := p.SessionControls.CloudAppSecurity; c == nil || c.Type != "monitorOnly" {
					t.Errorf("cloudAppSecurity: got %+v", c)
				}
			}},
		{"keys compare without case", `{"DisplayName":"x","Conditions":{"Users":{"IncludeUsers":["All"]}}}`,
			func(t *testing.T, p Policy) {
				if p.DisplayName != "x" || p.Conditions.Users == nil {
					t.Errorf("got %+v, want displayName and users decoded", p)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tc.in))
			if err != nil {
				t.Fatalf("ParsePolicy: %v", err)
			}
			tc.check(t, p)
		})
	}
}

func fieldsOf(vs []UnknownValue) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Field)
	}
	return out
}

func valuesOf(vs []UnknownValue) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Value)
	}
	return out
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %q, want %q", what, got, want)
	}
}

func state(t *testing.T, p Policy, want State) {
	t.Helper()
	if p.State != want {
		t.Errorf("state: got %s, want %s", p.State, want)
	}
}

func TestParsePolicyFixturesAreNormalForms(t *testing.T) {
	for _, name := range fixtureNames(t) {
		t.Run(name, func(t *testing.T) {
			p := loadFixture(t, name)
			if !reflect.DeepEqual(p, Normalize(p)) {
				t.Errorf("ParsePolicy did not return the normal form")
			}
			if p.ID == "" || p.DisplayName == "" {
				t.Errorf("id %q, displayName %q: want both", p.ID, p.DisplayName)
			}
		})
	}
}

func TestPolicyMarshalsGraphShapes(t *testing.T) {
	p := Policy{Conditions: Conditions{
		Users: &Users{IncludeUsers: []string{"All"}, ExcludeGuestsOrExternalUsers: &GuestsOrExternalUsers{
			GuestOrExternalUserTypes: []string{"internalGuest", "serviceProvider"},
			ExternalTenants:          &ExternalTenants{MembershipKind: "all"},
		}},
		InsiderRiskLevels:   []string{"minor", "elevated"},
		AuthenticationFlows: &AuthenticationFlows{TransferMethods: []string{"deviceCodeFlow"}},
	}}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"guestOrExternalUserTypes":"internalGuest,serviceProvider"`,
		`"@odata.type":"#microsoft.graph.conditionalAccessAllExternalTenants"`,
		`"insiderRiskLevels":"minor,elevated"`,
		`"transferMethods":"deviceCodeFlow"`,
		`"state":"unknown"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("json.Marshal: got %s, want it to contain %s", b, want)
		}
	}
	var back Policy
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("json.Unmarshal: %v", err)
	}
	if d := Diff(p, back); len(d) != 0 {
		t.Errorf("round trip through encoding/json: got differences %v", d)
	}
}

func TestPolicyUnmarshalJSONNullLeavesPolicy(t *testing.T) {
	p := good()
	if err := json.Unmarshal([]byte("null"), &p); err != nil {
		t.Fatal(err)
	}
	if p.ID != good().ID {
		t.Errorf("null changed the policy: got id %q", p.ID)
	}
	var holder struct{ Policy *Policy }
	if err := json.Unmarshal([]byte(`{"Policy":[1]}`), &holder); err == nil {
		t.Errorf("an array as a policy: got no error, want one")
	}
}
