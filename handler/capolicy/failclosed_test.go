package capolicy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// graphPolicy returns the Graph v1.0 answer of a compliant policy as a JSON tree, for a case to put
// one value into.
func graphPolicy(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "graph", "compliant-enabled.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// setPath sets the dotted path in a JSON tree, creating objects on the way; a nil value with del
// removes the key.
func setPath(m map[string]any, path string, v any, del bool) {
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	if del {
		delete(m, keys[len(keys)-1])
		return
	}
	m[keys[len(keys)-1]] = v
}

// TestUnknownValuesFailClosedPerPolicy puts one value caguard does not know into each field the
// rules read, in a policy as Graph answers it, and checks that ParsePolicy and Evaluate fail that
// policy alone: with the expected code, naming the raw value in the reason's message and in its
// Unrecognised field, while a compliant policy beside it still makes the tenant compliant.
func TestUnknownValuesFailClosedPerPolicy(t *testing.T) {
	type edit struct {
		path string
		v    any
		del  bool
	}
	strengthWithUnknownMethod := "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"
	tests := []struct {
		name  string
		edits []edit
		code  string
		field string // of the Unrecognised entry; "" means the reason has none
		value string
	}{
		{"an unknown state is not enforced and is named", []edit{{"state", "enabledWithGuardrails", false}},
			CodeStateUnknown, "state", "enabledWithGuardrails"},
		{"a missing state is not enforced", []edit{{"state", nil, true}}, CodeStateUnknown, "", ""},
		{"a null state is not enforced", []edit{{"state", nil, false}}, CodeStateUnknown, "", ""},
		{"an unknown grant operator", []edit{{"grantControls.operator", "XOR", false}},
			CodeUnrecognisedValue, "grantControls.operator", "XOR"},
		{"an unknown built-in control beside mfa under AND", []edit{{"grantControls.operator", "AND", false},
			{"grantControls.builtInControls", []any{"mfa", "riskRemediation"}, false}},
			CodeUnrecognisedValue, "grantControls.builtInControls", "riskRemediation"},
		{"Graph's unknownFutureValue as a built-in control", []edit{{"grantControls.operator", "AND", false},
			{"grantControls.builtInControls", []any{"mfa", "unknownFutureValue"}, false}},
			CodeUnrecognisedValue, "grantControls.builtInControls", "unknownFutureValue"},
		{"an unknown client app type beside all", []edit{{"conditions.clientAppTypes", []any{"all", "futureClient"}, false}},
			CodeUnrecognisedValue, "conditions.clientAppTypes", "futureClient"},
		{"an unknown user risk level", []edit{{"conditions.userRiskLevels", []any{"extreme"}, false}},
			CodeUnrecognisedValue, "conditions.userRiskLevels", "extreme"},
		{"an unknown sign-in risk level", []edit{{"conditions.signInRiskLevels", []any{"severe"}, false}},
			CodeUnrecognisedValue, "conditions.signInRiskLevels", "severe"},
		{"an unknown service principal risk level", []edit{{"conditions.servicePrincipalRiskLevels", []any{"unknownFutureValue"}, false}},
			CodeUnrecognisedValue, "conditions.servicePrincipalRiskLevels", "unknownFutureValue"},
		{"an unknown insider risk level", []edit{{"conditions.insiderRiskLevels", "minor,severe", false}},
			CodeUnrecognisedValue, "conditions.insiderRiskLevels", "severe"},
		{"an unknown included platform beside all", []edit{{"conditions.platforms", map[string]any{"includePlatforms": []any{"all", "visionOS"}, "excludePlatforms": []any{}}, false}},
			CodeUnrecognisedValue, "conditions.platforms.includePlatforms", "visionOS"},
		{"an unknown excluded platform", []edit{{"conditions.platforms", map[string]any{"includePlatforms": []any{"all"}, "excludePlatforms": []any{"visionOS"}}, false}},
			CodeUnrecognisedValue, "conditions.platforms.excludePlatforms", "visionOS"},
		{"an unknown included guest type", []edit{{"conditions.users.includeGuestsOrExternalUsers",
			map[string]any{"guestOrExternalUserTypes": "internalGuest,futureGuest", "externalTenants": nil}, false}},
			CodeUnrecognisedValue, "conditions.users.includeGuestsOrExternalUsers.guestOrExternalUserTypes", "futureGuest"},
		{"an unknown excluded guest type", []edit{{"conditions.users.excludeGuestsOrExternalUsers",
			map[string]any{"guestOrExternalUserTypes": "futureGuest"}, false}},
			CodeUnrecognisedValue, "conditions.users.excludeGuestsOrExternalUsers.guestOrExternalUserTypes", "futureGuest"},
		{"an unknown kind of external tenants", []edit{{"conditions.users.includeGuestsOrExternalUsers",
			map[string]any{"guestOrExternalUserTypes": "internalGuest", "externalTenants": map[string]any{"membershipKind": "futureKind"}}, false}},
			CodeUnrecognisedValue, "conditions.users.includeGuestsOrExternalUsers.externalTenants.membershipKind", "futureKind"},
		{"an unknown transfer method", []edit{{"conditions.authenticationFlows", map[string]any{"transferMethods": "deviceCodeFlow,futureFlow"}, false}},
			CodeUnrecognisedValue, "conditions.authenticationFlows.transferMethods", "futureFlow"},
		{"an unknown requirement of an expanded strength", []edit{{"grantControls.builtInControls", []any{}, false},
			{"grantControls.authenticationStrength", map[string]any{"id": strMFA, "displayName": "Multifactor authentication",
				"requirementsSatisfied": "mfa,futureRequirement", "allowedCombinations": []any{"fido2"}}, false}},
			CodeUnrecognisedValue, "grantControls.authenticationStrength.requirementsSatisfied", "futureRequirement"},
		{"a requirement that is only unknownFutureValue", []edit{{"grantControls.builtInControls", []any{}, false},
			{"grantControls.authenticationStrength", map[string]any{"id": strMFA, "requirementsSatisfied": "unknownFutureValue"}, false}},
			CodeUnrecognisedValue, "grantControls.authenticationStrength.requirementsSatisfied", "unknownFutureValue"},
		{"an unknown method in an expanded strength's combination", []edit{{"grantControls.builtInControls", []any{}, false},
			{"grantControls.authenticationStrength", map[string]any{"id": strMFA, "requirementsSatisfied": "mfa",
				"allowedCombinations": []any{"fido2", "password,futureMethod"}}, false}},
			CodeUnrecognisedValue, "grantControls.authenticationStrength.allowedCombinations", "futureMethod"},
		{"an unknown method in a strength resolved by id", []edit{{"grantControls.builtInControls", []any{}, false},
			{"grantControls.authenticationStrength", map[string]any{"id": strengthWithUnknownMethod}, false}},
			CodeUnrecognisedValue, "grantControls.authenticationStrength.allowedCombinations", "unknownFutureValue"},
		{"an unknown condition holding a value", []edit{{"conditions.futureCondition", map[string]any{"includeThings": []any{"x"}}, false}},
			CodeUnrecognisedProperty, "conditions.futureCondition", `{"includeThings":["x"]}`},
		{"an unknown user property holding a value", []edit{{"conditions.users.excludeFutureIdentities", []any{"All"}, false}},
			CodeUnrecognisedProperty, "conditions.users.excludeFutureIdentities", `["All"]`},
		{"an unknown property of an application filter", []edit{{"conditions.applications.applicationFilter",
			map[string]any{"mode": "include", "rule": "", "futureScope": "tagged"}, false}},
			CodeUnrecognisedProperty, "conditions.applications.applicationFilter.futureScope", `"tagged"`},
		{"an unknown grant property holding a value", []edit{{"grantControls.futureAlternative", map[string]any{"id": "y"}, false}},
			CodeUnrecognisedProperty, "grantControls.futureAlternative", `{"id":"y"}`},
	}
	// The tenant's definition of the strength referenced by id: read from Graph's JSON, so an unknown
	// method survives as it would from a real listing.
	def, err := ParseAuthenticationStrength([]byte(`{"id":"` + strengthWithUnknownMethod + `","displayName":"Passkeys and QR codes",` +
		`"policyType":"custom","requirementsSatisfied":"mfa","allowedCombinations":["fido2","unknownFutureValue"]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := graphPolicy(t)
			for _, e := range tc.edits {
				setPath(m, e.path, e.v, e.del)
			}
			raw, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParsePolicy(raw)
			if err != nil {
				t.Fatalf("ParsePolicy: %v, want a policy: an unknown value is not an error", err)
			}
			other := good(withID("a0000000-0000-4000-8000-0000000000ff", "Another MFA policy"))
			tenant := testTenant(p, other)
			tenant.AuthenticationStrengths = append(tenant.AuthenticationStrengths, def)
			rep := Evaluate(tenant, testConfig())
			if got := rep.Policies[0]; got.Compliant || got.MeetsAllButState && got.State == StateReportOnly {
				t.Errorf("policy with the unknown value: compliant %v, reasons %v; want it to fail", got.Compliant, codesOf(got))
			}
			if rep.Verdict != VerdictCompliant || !rep.Policies[1].Compliant {
				t.Errorf("the other policy: verdict %s, compliant %v; want it still judged compliant", rep.Verdict, rep.Policies[1].Compliant)
			}
			var reason *Reason
			for i, r := range rep.Policies[0].Reasons {
				if r.Code == tc.code {
					reason = &rep.Policies[0].Reasons[i]
				}
			}
			if reason == nil {
				t.Fatalf("reasons: got %v, want %s\n%+v", codesOf(rep.Policies[0]), tc.code, rep.Policies[0].Reasons)
			}
			if tc.field == "" {
				if len(reason.Unrecognised) != 0 {
					t.Errorf("unrecognised: got %+v, want none", reason.Unrecognised)
				}
				if !strings.Contains(reason.Message, "missing") {
					t.Errorf("message %q: want it to say the state is missing", reason.Message)
				}
				return
			}
			found := false
			for _, u := range reason.Unrecognised {
				found = found || u == UnknownValue{Field: tc.field, Value: tc.value}
			}
			if !found {
				t.Errorf("unrecognised: got %+v, want {%s %s}", reason.Unrecognised, tc.field, tc.value)
			}
			if !strings.Contains(reason.Message, tc.field) && tc.field != "state" {
				t.Errorf("message %q: want it to name %s", reason.Message, tc.field)
			}
			if tc.code != CodeUnrecognisedProperty && !strings.Contains(reason.Message, tc.value) {
				t.Errorf("message %q: want it to name the value %q", reason.Message, tc.value)
			}
			// The reason survives JSON, as the Evaluate answer and the alert carry it.
			b, err := json.Marshal(reason)
			if err != nil {
				t.Fatal(err)
			}
			if want := `"unrecognised":[`; !strings.Contains(string(b), want) {
				t.Errorf("json: got %s, want it to contain %s", b, want)
			}
		})
	}
}

// TestEmptyUnknownPropertiesKeepPassing checks that a property caguard does not model passes while it
// says nothing, so a new Graph property does not fail every tenant.
func TestEmptyUnknownPropertiesKeepPassing(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		v          any
	}{
		{"a null condition", "conditions.futureCondition", nil},
		{"an empty list condition", "conditions.futureCondition", []any{}},
		{"an empty object condition", "conditions.futureCondition", map[string]any{}},
		{"an object condition holding only empty values", "conditions.futureCondition", map[string]any{"a": nil, "b": []any{}, "c": map[string]any{}}},
		{"an empty string condition", "conditions.futureCondition", ""},
		{"a null user property", "conditions.users.excludeFutureIdentities", nil},
		{"an empty grant property", "grantControls.futureAlternative", map[string]any{}},
		{"a null grant property", "grantControls.futureAlternative", nil},
		{"an empty list in a filter", "conditions.applications.applicationFilter.futureScope", []any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := graphPolicy(t)
			setPath(m, tc.path, tc.v, false)
			raw, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParsePolicy(raw)
			if err != nil {
				t.Fatalf("ParsePolicy: %v", err)
			}
			rep := Evaluate(testTenant(p), testConfig())
			if !rep.Compliant {
				t.Errorf("verdict %s, reasons %+v; want compliant", rep.Verdict, rep.Policies[0].Reasons)
			}
		})
	}
}

func TestParseAuthenticationStrength(t *testing.T) {
	s, err := ParseAuthenticationStrength([]byte(`{"id":"00000000-0000-0000-0000-000000000002","createdDateTime":"2021-12-01T00:00:00Z",` +
		`"displayName":"Multifactor authentication","description":"x","policyType":"builtIn","requirementsSatisfied":"mfa",` +
		`"allowedCombinations":["windowsHelloForBusiness","password,microsoftAuthenticatorPush","futureMethod"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != strMFA || s.RequirementsSatisfied != "mfa" || s.PolicyType != "builtIn" {
		t.Errorf("got %+v", s)
	}
	equal(t, "allowedCombinations", s.AllowedCombinations, []string{"futureMethod", "password,microsoftAuthenticatorPush", "windowsHelloForBusiness"})
	for _, bad := range []string{``, `[]`, `{"allowedCombinations":{}}`} {
		if _, err := ParseAuthenticationStrength([]byte(bad)); err == nil {
			t.Errorf("ParseAuthenticationStrength(%q): got no error, want one", bad)
		}
	}
}

// TestUnreadablePoliciesFailClosedPerPolicy puts a value of a JSON type the model does not expect
// into a policy as Graph answers it: ParsePolicy refuses it, UnreadablePolicy keeps the policy's id,
// name and state and names the value, and Evaluate fails that policy alone with UNRECOGNISED_VALUE
// carrying the raw value, while a compliant policy beside it still makes the tenant compliant.
func TestUnreadablePoliciesFailClosedPerPolicy(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		v          any
		field      string
		value      string
	}{
		{"conditions as a string", "conditions", "not an object", "conditions", `"not an object"`},
		{"users as a number", "conditions.users", 5, "conditions.users", "5"},
		{"a client app type that is an object", "conditions.clientAppTypes", []any{map[string]any{}}, "conditions.clientAppTypes", "[{}]"},
		{"a built-in control that is a list", "grantControls.builtInControls", []any{[]any{"mfa"}}, "grantControls.builtInControls", `[["mfa"]]`},
		{"grant controls as a list", "grantControls", []any{"mfa"}, "grantControls", `["mfa"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := graphPolicy(t)
			setPath(m, tc.path, tc.v, false)
			raw, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			_, perr := ParsePolicy(raw)
			if perr == nil {
				t.Fatalf("ParsePolicy accepted %s", raw)
			}
			p, ok := UnreadablePolicy(raw, perr)
			if !ok {
				t.Fatalf("UnreadablePolicy refused an object: %v", perr)
			}
			if p.ID != m["id"] || p.DisplayName != m["displayName"] || p.State != StateEnabled {
				t.Errorf("head: got %q %q %v, want the policy's id, name and state", p.ID, p.DisplayName, p.State)
			}
			other := good(withID("a0000000-0000-4000-8000-0000000000ff", "Another MFA policy"))
			rep := Evaluate(testTenant(p, other), testConfig())
			if rep.Policies[0].Compliant {
				t.Errorf("the unreadable policy passed")
			}
			if rep.Verdict != VerdictCompliant || !rep.Policies[1].Compliant {
				t.Errorf("the other policy: verdict %s, compliant %v; want it still judged compliant", rep.Verdict, rep.Policies[1].Compliant)
			}
			var reason *Reason
			for i, r := range rep.Policies[0].Reasons {
				if r.Code == CodeUnrecognisedValue {
					reason = &rep.Policies[0].Reasons[i]
				}
			}
			if reason == nil {
				t.Fatalf("reasons: got %v, want %s", codesOf(rep.Policies[0]), CodeUnrecognisedValue)
			}
			want := UnknownValue{Field: tc.field, Value: tc.value}
			if len(reason.Unrecognised) == 0 || reason.Unrecognised[0] != want {
				t.Errorf("unrecognised: got %+v, want %+v first", reason.Unrecognised, want)
			}
			if !strings.Contains(reason.Message, tc.field+" "+strconv.Quote(tc.value)) {
				t.Errorf("message %q: want it to name %s and %s", reason.Message, tc.field, tc.value)
			}
		})
	}
	t.Run("a body that is not an object is not a policy", func(t *testing.T) {
		for _, raw := range []string{`42`, `null`, `["x"]`} {
			_, perr := ParsePolicy([]byte(raw))
			if _, ok := UnreadablePolicy([]byte(raw), perr); ok {
				t.Errorf("%s: read as a policy", raw)
			}
		}
	})
}
