package main

import (
	"context"
	"encoding/json"
	"github.com/caguard/caguard/handler/graphfake"
	"net/http"
	"strings"
	"testing"

	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/reconcile"
)

// These tests guard every catalogue control through the real Graph client against the emulator,
// which merges a PATCH as Graph does: each control's managed policy is created when missing, put back
// when weakened, read back and judged, and a blocking policy is never written enforced.

// controlEnv is a tenant with no policy at all, guarding azure-management-mfa and control c.
func controlEnv(t *testing.T, c capolicy.Control) *tenantEnv {
	t.Helper()
	e := newTenant(t, "empty.json", nil)
	withEntraP2(t, e.fake)
	def, _ := capolicy.ControlByID(capolicy.ControlAzureManagementMFA)
	e.rec.Controls = []capolicy.Control{def}
	if c.ID != def.ID {
		e.rec.Controls = append(e.rec.Controls, c)
	}
	return e
}

// withEntraP2 gives the tenant an Entra ID P2 subscription, so that the risk controls can be guarded
// (licence_test.go covers a tenant without one).
func withEntraP2(t *testing.T, fake *graphfake.Server) {
	t.Helper()
	if err := fake.SetSubscribedSkus(graphfake.SKU("AAD_PREMIUM_P2", "84a661c4-e949-4bd2-a560-ed7766fcaf2b", "Enabled", graphfake.ServicePlanEntraIDP2+":Success")); err != nil {
		t.Fatal(err)
	}
}

// guarded returns the run's action about c, and its alert.
func guarded(t *testing.T, out reconcile.Outcome, c capolicy.Control) (reconcile.Action, *reconcile.Alert) {
	t.Helper()
	actions, al := out.ActionsFor(c.ID)
	if len(actions) != 1 {
		t.Fatalf("%s: actions %+v, want one", c.ID, actions)
	}
	return actions[0], al
}

// verdictOf is the run's verdict on c.
func verdictOf(t *testing.T, out reconcile.Outcome, c capolicy.Control) capolicy.ControlReport {
	t.Helper()
	for _, cr := range out.Controls {
		if cr.ID == c.ID {
			return cr
		}
	}
	t.Fatalf("no verdict on %s in %d controls", c.ID, len(out.Controls))
	return capolicy.ControlReport{}
}

// judgeStored judges the policy the emulator holds under id against c, as Graph answers it.
func (e *tenantEnv) judgeStored(t *testing.T, c capolicy.Control, id string) (capolicy.Policy, capolicy.PolicyResult) {
	t.Helper()
	p, err := e.client.GetPolicy(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	strengths, err := e.client.AuthenticationStrengths(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	members := map[string][]string{breakGlassGroup: strings.Split(breakGlassUsers, ",")}
	rep := capolicy.EvaluateControl(capolicy.Tenant{Policies: []capolicy.Policy{p}, GroupMembers: members, AuthenticationStrengths: strengths}, e.rec.Policy, c)
	return p, rep.Policies[0]
}

// weakening is an administrator's edit that makes a managed policy fail its control.
type weakening struct {
	name string
	edit func(p map[string]any)
}

// weakeningsOf are realistic ways to weaken c's managed policy: an excluded role, and the
// requirement itself dropped (a weaker grant, or the session control relaxed).
func weakeningsOf(c capolicy.Control) []weakening {
	ws := []weakening{{"an excluded directory role", func(p map[string]any) { set(p, "conditions.users.excludeRoles", []string{globalAdmin}) }}}
	switch {
	case c.Blocks():
		ws = append(ws, weakening{"block replaced by MFA", func(p map[string]any) {
			p["grantControls"] = obj(`{"operator":"OR","builtInControls":["mfa"]}`)
		}})
	case c.Grant != nil:
		ws = append(ws, weakening{"a weaker grant", func(p map[string]any) {
			p["grantControls"] = obj(`{"operator":"OR","builtInControls":["mfa","compliantApplication"]}`)
		}})
	default:
		ws = append(ws, weakening{"persistent browser always", func(p map[string]any) {
			set(p, "sessionControls.persistentBrowser", obj(`{"isEnabled":true,"mode":"always"}`))
		}})
	}
	return ws
}

// Every catalogue control's managed policy is created when missing, in report-only mode, and holds
// once read back; a second run writes nothing.
func TestGuardCreatesEveryControlsPolicy(t *testing.T) {
	for _, c := range capolicy.Catalogue() {
		t.Run(c.ID, func(t *testing.T) {
			e := controlEnv(t, c)
			out := e.reconcile(t)
			a, al := guarded(t, out, c)
			if a.Kind != reconcile.ActionCreate || !a.Written || !a.Performed || a.State != capolicy.StateReportOnly.String() {
				t.Fatalf("action %+v, want a performed create in report-only mode", a)
			}
			if al == nil || al.Control != c.ID || al.Kind() != reconcile.AlertRestored {
				t.Errorf("alert %+v, want a restored alert naming %s", al, c.ID)
			} else if c.ID != capolicy.ControlAzureManagementMFA && !strings.Contains(al.Heading().String(), c.Title) {
				t.Errorf("alert heading %q does not name the control %q", al.Heading(), c.Title)
			}
			p, res := e.judgeStored(t, c, a.PolicyID)
			if p.DisplayName != capolicy.ManagedNameFor(e.rec.Policy, c) || p.State != capolicy.StateReportOnly || !res.MeetsAllButState {
				t.Errorf("stored %q in %s: meets all but state %v (%v)", p.DisplayName, p.State, res.MeetsAllButState, res.Reasons)
			}
			writes := len(e.writes())
			again := e.reconcile(t)
			if a, _ := guarded(t, again, c); a.Kind != reconcile.ActionNone || a.Written {
				t.Errorf("second run: action %+v, want none", a)
			}
			if n := len(e.writes()); n != writes {
				t.Errorf("second run wrote %d times", n-writes)
			}
			if v := verdictOf(t, again, c).Verdict; v != capolicy.VerdictPendingEnforcement {
				t.Errorf("second run: verdict %s, want pending enforcement", v)
			}
		})
	}
}

// A weakened managed policy is put back by one write that holds against the merging emulator: the
// report-only one stays report-only, an enabled one stays enabled, except that a blocking policy an
// administrator switched on is never written: the alert says why.
func TestGuardRestoresEveryControlsWeakenedPolicy(t *testing.T) {
	for _, c := range capolicy.Catalogue() {
		for _, w := range weakeningsOf(c) {
			for _, enabled := range []bool{false, true} {
				name := c.ID + "/" + w.name
				if enabled {
					name += "/enabled"
				}
				t.Run(name, func(t *testing.T) {
					e := controlEnv(t, c)
					a, _ := guarded(t, e.reconcile(t), c)
					id := a.PolicyID
					e.edit(t, id, func(p map[string]any) {
						w.edit(p)
						if enabled {
							p["state"] = "enabled"
						}
					})
					if _, res := e.judgeStored(t, c, id); res.MeetsAllButState {
						t.Fatalf("the weakening left the policy meeting the control")
					}
					writes := len(e.writes())
					out := e.reconcile(t)
					a, al := guarded(t, out, c)
					if enabled && c.Blocks() {
						if a.Kind != reconcile.ActionSkip || a.Written || len(e.writes()) != writes {
							t.Fatalf("action %+v (%d writes), want nothing written to an enforced blocking policy", a, len(e.writes())-writes)
						}
						if al == nil || !strings.Contains(al.NextStep, "never writes an enforced blocking policy") {
							t.Errorf("alert %+v, want one saying why nothing was written", al)
						}
						return
					}
					if a.Kind != reconcile.ActionUpdate || !a.Performed || a.PolicyID != id {
						t.Fatalf("action %+v, want a performed update of %s", a, id)
					}
					p, res := e.judgeStored(t, c, id)
					if !res.MeetsAllButState {
						t.Errorf("read back: still fails %v", res.Reasons)
					}
					want := capolicy.StateReportOnly
					if enabled {
						want = capolicy.StateEnabled
					}
					if p.State != want {
						t.Errorf("state %s after the restore, want %s", p.State, want)
					}
					if a, _ := guarded(t, e.reconcile(t), c); a.Written {
						t.Errorf("the run after the restore wrote again: %+v", a)
					}
				})
			}
		}
	}
}

// No write caguard makes, for any control, leaves a policy enabled with a block grant.
func TestGuardNeverWritesAnEnforcedBlock(t *testing.T) {
	e := newTenant(t, "empty.json", nil)
	withEntraP2(t, e.fake)
	e.rec.Controls = capolicy.Catalogue()
	e.reconcile(t)
	for _, w := range e.writes() {
		var body struct {
			State         string `json:"state"`
			GrantControls *struct {
				BuiltInControls []string `json:"builtInControls"`
			} `json:"grantControls"`
		}
		if err := json.Unmarshal(w.Body, &body); err != nil {
			t.Fatalf("%s %s: %v", w.Method, w.Path, err)
		}
		if body.State == "enabled" && body.GrantControls != nil && strings.Contains(strings.Join(body.GrantControls.BuiltInControls, ","), "block") {
			t.Errorf("%s %s wrote an enforced blocking policy: %s", w.Method, w.Path, w.Body)
		}
		if w.Method == http.MethodPost && body.State != capolicy.StateReportOnly.String() {
			t.Errorf("created a policy in state %q, want report-only", body.State)
		}
	}
	if len(e.writes()) < len(capolicy.Catalogue()) {
		t.Errorf("%d writes, want a create per control", len(e.writes()))
	}
}

// An audit-event run acts only for the controls its hints touch: an edit of one control's managed
// policy restores that one alone, and the next sweep restores the rest.
func TestGuardRoutesAuditEvents(t *testing.T) {
	e := newTenant(t, "empty.json", nil)
	e.rec.Controls = capolicy.Catalogue()
	first := e.reconcile(t)
	ids := map[string]string{}
	for _, c := range capolicy.Catalogue() {
		a, _ := guarded(t, first, c)
		ids[c.ID] = a.PolicyID
	}
	weaken := func(id string) (old, new json.RawMessage) {
		raw, _ := e.fake.Policy(id)
		old = append(json.RawMessage{}, raw...)
		e.edit(t, id, func(p map[string]any) { set(p, "conditions.users.excludeRoles", []string{globalAdmin}) })
		raw, _ = e.fake.Policy(id)
		return old, append(json.RawMessage{}, raw...)
	}
	target := capolicy.ControlAdminMFA
	other := capolicy.ControlBlockLegacyAuth
	oldV, newV := weaken(ids[target])
	weaken(ids[other])
	hint := auditlog.Hint{Kind: auditlog.KindPolicyUpdated, Activity: "Update conditional access policy", PolicyID: ids[target], OldValue: oldV, NewValue: newV}
	out, err := e.rec.Reconcile(context.Background(), reconcile.Request{Trigger: reconcile.TriggerAuditEvent, Act: true, Hints: []auditlog.Hint{hint}})
	if err != nil {
		t.Fatal(err)
	}
	for _, co := range out.Guarding {
		a := co.Actions[0]
		switch co.ID {
		case target:
			if !co.Routed || !a.Performed {
				t.Errorf("%s: routed %v, action %+v; want the touched control restored", co.ID, co.Routed, a)
			}
		case other:
			if co.Routed || a.Written || a.Kind != reconcile.ActionUpdate || co.Alert != nil {
				t.Errorf("%s: routed %v, action %+v, alert %v; want an untouched control left for the sweep", co.ID, co.Routed, a, co.Alert)
			}
		}
	}
	// Every control is still judged.
	if len(out.Controls) != len(capolicy.Catalogue()) {
		t.Errorf("%d controls judged, want %d", len(out.Controls), len(capolicy.Catalogue()))
	}
	// A hint with no values touches every control (fail safe).
	out, err = e.rec.Reconcile(context.Background(), reconcile.Request{Trigger: reconcile.TriggerAuditEvent, Act: true,
		Hints: []auditlog.Hint{{Kind: auditlog.KindPolicyUpdated, Activity: "Update conditional access policy"}}})
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := out.ActionsFor(other); len(a) != 1 || !a[0].Performed {
		t.Errorf("%s after a hint without values: %+v, want restored", other, a)
	}
}
