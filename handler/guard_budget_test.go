package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/blobstate"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/graph"
	"github.com/caguard/caguard/handler/graphfake"
	"github.com/caguard/caguard/handler/reconcile"
)

var _ reconcile.ControlOwnership = (*blobstate.Store)(nil)

// Guarding every control costs no Graph round trip more than guarding one: once the managed
// policies exist, a CA batch or a sweep that needs no write costs what it costs with CONTROLS unset,
// and at most three.
func TestGuardAllControlsKeepsTheBudget(t *testing.T) {
	fake, err := graphfake.New(graphfake.Options{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.LoadScenario(scenario("empty.json")); err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	withEntraP2(t, fake)
	c, err := graph.New(graph.Options{BaseURL: fake.GraphURL(), Credential: emulatorToken{fake}, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := capolicy.Config{BreakGlassUserIDs: strings.Split(breakGlassUsers, ","), BreakGlassGroupIDs: []string{breakGlassGroup}}
	owner := &reconcile.MemoryOwnership{}
	newRec := func(controls []capolicy.Control) *reconcile.Reconciler {
		return &reconcile.Reconciler{Store: c, Policy: cfg, TenantID: fake.TenantID(), Remediate: true, Now: time.Now,
			Log: zaptest.NewLogger(t), Owner: owner, Controls: controls}
	}
	all, one := newRec(capolicy.Catalogue()), newRec(nil)
	if _, err := all.Reconcile(context.Background(), reconcile.Request{Trigger: reconcile.TriggerSweep, Act: true}); err != nil {
		t.Fatal(err)
	}
	caEvent := []auditlog.Hint{{Kind: auditlog.KindPolicyUpdated, Activity: "Update conditional access policy", Time: time.Now()}}
	for _, req := range []reconcile.Request{
		{Trigger: reconcile.TriggerAuditEvent, Act: true, Hints: caEvent},
		{Trigger: reconcile.TriggerSweep, Act: true},
	} {
		count := func(r *reconcile.Reconciler) (int, reconcile.Outcome) {
			fake.Reset()
			out, err := r.Reconcile(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			for _, call := range fake.Calls() {
				if call.Method == http.MethodPost && !graphfake.IsBatch(call) || call.Method == http.MethodPatch {
					t.Errorf("%s: wrote %s %s; want nothing written", req.Trigger, call.Method, call.Path)
				}
			}
			return fake.RoundTrips(), out
		}
		nAll, out := count(all)
		nOne, _ := count(one)
		t.Logf("%s: %d Graph round trips for every control, %d for the default alone", req.Trigger, nAll, nOne)
		if nAll != nOne || nAll > 3 {
			t.Errorf("%s: %d round trips with every control, %d with one; want the same, at most 3: %v", req.Trigger, nAll, nOne, paths(fake.Calls()))
		}
		if len(out.Guarding) != len(capolicy.Catalogue())-1 {
			t.Errorf("%s: %d controls guarded, want %d", req.Trigger, len(out.Guarding), len(capolicy.Catalogue())-1)
		}
	}
	if ids, _ := owner.ControlPolicyIDs(context.Background()); len(ids) != len(capolicy.Catalogue())-1 {
		t.Errorf("recorded %d controls' policies, want every control's: %v", len(ids), ids)
	}
}

// POST /api/Evaluate with CONTROLS=all answers, for each control, what the run did about it; the
// top-level actions stay those of azure-management-mfa.
func TestEvaluateAnswersEachControlsActions(t *testing.T) {
	h := start(t, "empty.json", map[string]string{"CONTROLS": "all"})
	withEntraP2(t, h.fake)
	status, body := h.evaluate(t, http.MethodPost)
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, body)
	}
	controls, _ := body["controls"].([]any)
	if len(controls) != len(capolicy.Catalogue()) {
		t.Fatalf("controls: got %d, want %d", len(controls), len(capolicy.Catalogue()))
	}
	alerts := map[string]bool{}
	for _, item := range controls {
		c := item.(map[string]any)
		actions, _ := c["actions"].([]any)
		if len(actions) != 1 {
			t.Errorf("%v: actions %v, want one", c["id"], c["actions"])
			continue
		}
		a := actions[0].(map[string]any)
		if a["kind"] != reconcile.ActionCreate || a["performed"] != true || a["state"] != capolicy.StateReportOnly.String() {
			t.Errorf("%v: action %v, want a performed report-only create", c["id"], a)
		}
		id, _ := c["alertId"].(string)
		if id == "" || alerts[id] {
			t.Errorf("%v: alert id %q, want one of its own", c["id"], id)
		}
		alerts[id] = true
		if c["id"] == capolicy.ControlAzureManagementMFA {
			top, _ := body["actions"].([]any)
			if len(top) != 1 || top[0].(map[string]any)["policyId"] != a["policyId"] || body["alertId"] != id {
				t.Errorf("top-level actions %v, alert %v; want azure-management-mfa's %v, %v", top, body["alertId"], a, id)
			}
		}
	}
}
