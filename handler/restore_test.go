package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.uber.org/zap/zaptest"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/graph"
	"github.com/caguard/caguard/handler/graphfake"
	"github.com/caguard/caguard/handler/reconcile"
)

// These tests run the reconciler with the real Graph client against the emulator, which merges a
// PATCH the way Graph does: a restore holds only if the write carries the full shape of what it
// writes.

const (
	weakStrength = "aaaaaaaa-0000-0000-0000-00000000a5a5"
	portalAppID  = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c"
	globalAdmin  = "62e90394-69f5-4237-9190-012177145e10"
)

type emulatorToken struct{ srv *graphfake.Server }

func (e emulatorToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: e.srv.Token(), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

type alerts struct {
	mu  sync.Mutex
	got []reconcile.Alert
}

func (a *alerts) Name() string { return "test" }
func (a *alerts) Send(_ context.Context, al reconcile.Alert) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, al)
	return nil
}

func (a *alerts) last(t *testing.T) reconcile.Alert {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.got) == 0 {
		t.Fatal("no alert")
	}
	return a.got[len(a.got)-1]
}

type tenantEnv struct {
	fake   *graphfake.Server
	client *graph.Client
	rec    *reconcile.Reconciler
	alerts *alerts
}

// newTenant seeds the emulator with a scenario file plus a custom authentication strength that does
// not satisfy MFA, and wires a reconciler in remediate mode to it.
func newTenant(t *testing.T, scenarioFile string, roles []string) *tenantEnv {
	t.Helper()
	sc, err := graphfake.ReadScenario(scenario(scenarioFile))
	if err != nil {
		t.Fatal(err)
	}
	sc.AuthenticationStrengths = append(sc.AuthenticationStrengths, json.RawMessage(`{"id":"`+weakStrength+`",
		"displayName":"Password only","policyType":"custom","requirementsSatisfied":"none","allowedCombinations":["password"]}`))
	fake, err := graphfake.New(graphfake.Options{PageSize: 5, Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Seed(sc); err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	c, err := graph.New(graph.Options{BaseURL: fake.GraphURL(), Credential: emulatorToken{fake}, RetryBudget: 3 * time.Second, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	al := &alerts{}
	return &tenantEnv{fake: fake, client: c, alerts: al, rec: &reconcile.Reconciler{
		Store: c,
		Sinks: []reconcile.AlertSink{al},
		Policy: capolicy.Config{
			BreakGlassUserIDs:  strings.Split(breakGlassUsers, ","),
			BreakGlassGroupIDs: []string{breakGlassGroup},
		},
		TenantID:  fake.TenantID(),
		Remediate: true,
		Now:       time.Now,
		Log:       zaptest.NewLogger(t),
		Owner:     &reconcile.MemoryOwnership{},
		// Reads after a write are repeated while they lag; short waits keep the tests quick.
		ReadBackDelays: []time.Duration{0, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond},
	}}
}

// edit changes a stored policy the way an administrator would, bypassing caguard.
func (e *tenantEnv) edit(t *testing.T, id string, change func(p map[string]any)) {
	t.Helper()
	raw, ok := e.fake.Policy(id)
	if !ok {
		t.Fatalf("no policy %s", id)
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	change(p)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fake.PutPolicy(b); err != nil {
		t.Fatal(err)
	}
}

func (e *tenantEnv) reconcile(t *testing.T) reconcile.Outcome {
	t.Helper()
	out, err := e.rec.Reconcile(context.Background(), reconcile.Request{Trigger: reconcile.TriggerSweep, Act: true})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *tenantEnv) writes() []graphfake.Call {
	var out []graphfake.Call
	for _, c := range e.fake.Calls() {
		if (c.Method == http.MethodPatch || c.Method == http.MethodPost || c.Method == http.MethodDelete) && !graphfake.IsBatch(c) {
			out = append(out, c)
		}
	}
	return out
}

// set puts v at a dotted path, creating objects on the way.
func set(m map[string]any, path string, v any) {
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
}

func obj(s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		panic(err)
	}
	return v
}

// Each way an administrator can narrow the enabled managed policy is put back by one write that
// holds against a merging Graph; the policy stays enabled and the next trigger writes nothing.
func TestRestoreHoldsAgainstAMergingGraph(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(p map[string]any)
		check func(t *testing.T, got capolicy.Policy)
	}{
		{"excluded directory roles", func(p map[string]any) { set(p, "conditions.users.excludeRoles", []string{globalAdmin}) }, nil},
		{"an excluded application", func(p map[string]any) { set(p, "conditions.applications.excludeApplications", []string{portalAppID}) }, nil},
		{"excluded guests", func(p map[string]any) {
			set(p, "conditions.users.excludeGuestsOrExternalUsers", obj(`{"guestOrExternalUserTypes":"b2bCollaborationGuest,serviceProvider",
				"externalTenants":{"@odata.type":"#microsoft.graph.conditionalAccessAllExternalTenants","membershipKind":"all"}}`))
		}, nil},
		{"excluded locations", func(p map[string]any) {
			set(p, "conditions.locations", obj(`{"includeLocations":["All"],"excludeLocations":["AllTrusted"]}`))
		}, nil},
		{"excluded platforms", func(p map[string]any) {
			set(p, "conditions.platforms", obj(`{"includePlatforms":["all"],"excludePlatforms":["linux","macOS"]}`))
		}, nil},
		{"a device filter", func(p map[string]any) {
			set(p, "conditions.devices", obj(`{"deviceFilter":{"mode":"exclude","rule":"device.trustType -eq \"ServerAD\""}}`))
		}, nil},
		{"risk levels", func(p map[string]any) {
			set(p, "conditions.signInRiskLevels", []string{"high"})
			set(p, "conditions.userRiskLevels", []string{"medium", "high"})
		}, nil},
		{"authentication flows", func(p map[string]any) {
			set(p, "conditions.authenticationFlows", obj(`{"transferMethods":"deviceCodeFlow"}`))
		}, nil},
		{"a non-MFA alternative in an OR grant", func(p map[string]any) {
			set(p, "grantControls.builtInControls", []string{"mfa", "compliantDevice"})
		}, nil},
		{"an authentication strength that is not MFA in place of mfa", func(p map[string]any) {
			set(p, "grantControls.builtInControls", []string{})
			set(p, "grantControls.authenticationStrength", obj(`{"id":"`+weakStrength+`"}`))
		}, nil},
		{"an excluded role next to stricter additions, which survive", func(p map[string]any) {
			set(p, "conditions.users.excludeRoles", []string{globalAdmin})
			set(p, "grantControls.operator", "AND")
			set(p, "grantControls.builtInControls", []string{"mfa", "compliantDevice"})
			set(p, "sessionControls", obj(`{"signInFrequency":{"isEnabled":true,"value":4,"type":"hours"}}`))
		}, func(t *testing.T, got capolicy.Policy) {
			if g := got.GrantControls; g == nil || g.Operator != "AND" || len(g.BuiltInControls) != 2 {
				t.Errorf("grant %+v, want the stricter AND kept", g)
			}
			if s := got.SessionControls; s == nil || s.SignInFrequency == nil || s.SignInFrequency.Value != 4 {
				t.Errorf("session controls %+v, want them kept", s)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTenant(t, "compliant.json", nil)
			e.edit(t, managedID, tt.edit)

			out := e.reconcile(t)
			if out.Report.Verdict != capolicy.VerdictNonCompliant {
				t.Fatalf("verdict before the restore: %s (%s)", out.Report.Verdict, out.Report.Summary)
			}
			a := out.Actions[0]
			if a.Kind != reconcile.ActionUpdate || !a.Written || !a.Performed {
				t.Fatalf("action %+v, want a performed update", a)
			}
			if w := e.writes(); len(w) != 1 || w[0].Method != http.MethodPatch || w[0].Status != http.StatusNoContent {
				t.Fatalf("writes %+v, want one accepted PATCH", w)
			}
			got, err := e.client.GetPolicy(context.Background(), managedID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != capolicy.StateEnabled {
				t.Errorf("state %v, want enabled kept", got.State)
			}
			rep := capolicy.Evaluate(capolicy.Tenant{Policies: []capolicy.Policy{got}, GroupMembers: map[string][]string{
				breakGlassGroup: strings.Split(breakGlassUsers, ","),
			}}, e.rec.Policy)
			if rep.Verdict != capolicy.VerdictCompliant {
				t.Errorf("read back: %s: %+v", rep.Verdict, rep.Policies[0].Reasons)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
			if again := e.reconcile(t); again.Actions[0].Kind != reconcile.ActionNone || len(e.writes()) != 1 {
				t.Errorf("next trigger: %+v and %d writes, want nothing written", again.Actions[0], len(e.writes()))
			}
		})
	}
}

func TestPendingLookAlikeAgainstGraph(t *testing.T) {
	lookAlike := `{"displayName":"CA007: MFA for admins (pilot)","state":"enabledForReportingButNotEnforced",
		"conditions":{"users":{"includeUsers":["All"],"excludeGroups":["` + breakGlassGroup + `"]},
			"applications":{"includeApplications":["797f4846-ba00-4fd7-ba43-dac1f8f63013"]},"clientAppTypes":["all"]},
		"grantControls":{"operator":"OR","builtInControls":["mfa"]}}`
	t.Run("the weakened managed policy is restored in the same invocation", func(t *testing.T) {
		e := newTenant(t, "compliant.json", nil)
		if _, err := e.fake.PutPolicy(json.RawMessage(lookAlike)); err != nil {
			t.Fatal(err)
		}
		e.edit(t, managedID, func(p map[string]any) { set(p, "conditions.users.excludeRoles", []string{globalAdmin}) })
		out := e.reconcile(t)
		if out.Report.Verdict != capolicy.VerdictPendingEnforcement {
			t.Fatalf("verdict %s, want pending-enforcement", out.Report.Verdict)
		}
		if a := out.Actions[0]; !a.Performed || a.PolicyID != managedID || len(e.writes()) != 1 {
			t.Fatalf("action %+v, %d writes; want the managed policy restored", a, len(e.writes()))
		}
	})
	t.Run("with no managed policy nothing is written and the alert says switch it on", func(t *testing.T) {
		e := newTenant(t, "compliant.json", nil)
		id, err := e.fake.PutPolicy(json.RawMessage(lookAlike))
		if err != nil {
			t.Fatal(err)
		}
		e.edit(t, managedID, func(p map[string]any) { p["displayName"] = "someone renamed it"; p["state"] = "disabled" })
		out := e.reconcile(t)
		if w := e.writes(); len(w) != 0 || out.Actions[0].Kind != reconcile.ActionNone {
			t.Fatalf("action %+v, writes %+v; want nothing written", out.Actions[0], w)
		}
		if next := e.alerts.last(t).NextStep; !strings.Contains(next, "switch it on") || !strings.Contains(next, id) {
			t.Errorf("next step %q, want switch it on, naming %s", next, id)
		}
	})
}

func TestRestoreThatDidNotHold(t *testing.T) {
	e := newTenant(t, "compliant.json", nil)
	e.edit(t, managedID, func(p map[string]any) { set(p, "conditions.users.excludeRoles", []string{globalAdmin}) })
	e.fake.Inject(graphfake.Fault{Match: "PATCH /v1.0/identity/conditionalAccess/policies/*", IgnoreFields: []string{"conditions.users.excludeRoles"}})
	out := e.reconcile(t)
	a := out.Actions[0]
	if a.Performed || !a.Written || len(a.Remaining) == 0 || a.Remaining[0].Code != capolicy.CodeExcludesRoles {
		t.Fatalf("action %+v, want written, not performed, still excluding roles", a)
	}
	if next := e.alerts.last(t).NextStep; !strings.Contains(next, "did not hold") || !strings.Contains(next, capolicy.CodeExcludesRoles) {
		t.Errorf("next step %q, want it to say the restore did not hold and why", next)
	}
}

func TestSquattingPolicyWithTheManagedName(t *testing.T) {
	e := newTenant(t, "compliant.json", nil)
	// The first sweep of a compliant tenant adopts the managed policy by its unique name.
	if a := e.reconcile(t).Actions[0]; !a.Adopted || a.PolicyID != managedID {
		t.Fatalf("action %+v, want %s adopted", a, managedID)
	}
	squat := `{"displayName":"caguard: require MFA for Azure management","state":"disabled",
		"conditions":{"users":{"includeUsers":["None"]},"applications":{"includeApplications":["None"]}}}`
	squatID, err := e.fake.PutPolicy(json.RawMessage(squat))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := e.fake.Policy(squatID)
	e.edit(t, managedID, func(p map[string]any) { set(p, "grantControls.builtInControls", []string{"compliantDevice"}) })

	out := e.reconcile(t)
	w := e.writes()
	if a := out.Actions[0]; !a.Performed || len(w) != 1 || w[0].Path != "/v1.0/identity/conditionalAccess/policies/"+managedID {
		t.Fatalf("action %+v, writes %+v; want only the recorded policy restored", a, w)
	}
	if after, _ := e.fake.Policy(squatID); string(after) != string(before) {
		t.Errorf("the squatting policy was changed: %s", after)
	}
	named := false
	for _, warning := range out.Warnings {
		named = named || strings.Contains(warning, squatID)
	}
	if !named {
		t.Errorf("warnings %v do not name the squatting policy", out.Warnings)
	}
}

func TestDeletedBreakGlassUser(t *testing.T) {
	const gone = "22222222-2222-2222-2222-222222222222"
	t.Run("it stays in the created policy; Graph refuses the write, and the alert says why", func(t *testing.T) {
		// A 404 may be replication lag as well as a deletion: caguard never drops a break-glass account
		// on one. Graph refuses a policy naming a user it does not have, and the alert names the user.
		e := newTenant(t, "empty.json", nil)
		e.fake.DeleteUser(gone)
		out := e.reconcile(t)
		a := out.Actions[0]
		if a.Kind != reconcile.ActionCreate || a.Written || !strings.Contains(a.Reason, "Graph refused the write") || !strings.Contains(a.Reason, gone) {
			t.Fatalf("action %+v, want a refused create that names %s", a, gone)
		}
		var body struct {
			Conditions struct {
				Users struct{ ExcludeUsers []string }
			}
		}
		if err := json.Unmarshal(e.writes()[0].Body, &body); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(body.Conditions.Users.ExcludeUsers, ","); got != breakGlassUsers {
			t.Errorf("excluded users %s, want every break-glass user, %s", got, breakGlassUsers)
		}
		warned := false
		for _, w := range e.alerts.last(t).Warnings {
			warned = warned || strings.Contains(w, gone)
		}
		if !warned {
			t.Errorf("alert warnings %v do not name %s", e.alerts.last(t).Warnings, gone)
		}
	})
	t.Run("without User.Read.All it is kept, and Graph refuses the write", func(t *testing.T) {
		e := newTenant(t, "empty.json", []string{graphfake.PermPolicyReadAll, graphfake.PermPolicyReadWriteCA, graphfake.PermGroupMemberReadAll})
		e.fake.DeleteUser(gone)
		out := e.reconcile(t)
		if a := out.Actions[0]; a.Written || !strings.Contains(a.Reason, "Graph refused the write") || !strings.Contains(a.Reason, "400") {
			t.Fatalf("action %+v, want Graph's 400 in words", a)
		}
	})
	t.Run("without User.Read.All an existing user is kept and the run warns once", func(t *testing.T) {
		e := newTenant(t, "empty.json", []string{graphfake.PermPolicyReadAll, graphfake.PermPolicyReadWriteCA, graphfake.PermGroupMemberReadAll})
		out := e.reconcile(t)
		n := 0
		for _, w := range out.Warnings {
			if strings.Contains(w, "User.Read.All") {
				n++
			}
		}
		if a := out.Actions[0]; !a.Performed || n != 1 {
			t.Fatalf("action %+v, warnings %v; want a performed create and one warning about User.Read.All", a, out.Warnings)
		}
	})
}
