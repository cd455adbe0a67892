package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/azfunc/hosttest"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/graph"
	"github.com/caguard/caguard/handler/graphfake"
	"github.com/caguard/caguard/handler/reconcile"
)

// controlsByID indexes an Evaluate answer's controls.
func controlsByID(t *testing.T, body map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	items, _ := body["controls"].([]any)
	for _, it := range items {
		c := it.(map[string]any)
		out[c["id"].(string)] = c
	}
	return out
}

func isRisk(id string) bool {
	return id == capolicy.ControlUserRiskPolicy || id == capolicy.ControlSignInRiskPolicy
}

// evaluateHTML is GET /api/Evaluate?format=html through the host.
func (h *harness) evaluateHTML(t *testing.T) string {
	t.Helper()
	data := hosttest.HTTPData("req", http.MethodGet, "")
	data["req"].(map[string]any)["Query"].(map[string]string)["format"] = "html"
	a, err := h.host.Invoke("Evaluate", data, hosttest.SysMetadata("Evaluate"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.HTTP("res")
	if err != nil {
		t.Fatal(err)
	}
	return res.Body
}

// With CONTROLS=all a tenant without Entra ID P2 gets LICENCE_MISSING on the two risk controls, in
// the answer, the HTML report and the alert, and the run succeeds; buying P2 clears it. The
// subscriptions are read in the policies' batch: no round trip more than the default run.
func TestLicenceMissingEndToEnd(t *testing.T) {
	h := start(t, "drifted.json", map[string]string{"CONTROLS": "all"})
	before := h.fake.RoundTrips()
	status, body := h.evaluate(t, http.MethodGet)
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, body)
	}
	trips := h.fake.RoundTrips() - before
	skuCalls := h.fake.CallsTo("GET /v1.0/subscribedSkus")
	if len(skuCalls) != 1 || skuCalls[0].Batch == "" {
		t.Errorf("subscribedSkus requests %+v, want one inside the batch", skuCalls)
	}
	controls := controlsByID(t, body)
	for id, c := range controls {
		lic, has := c["licence"].(map[string]any)
		if !isRisk(id) {
			if has {
				t.Errorf("%s: licence %v, want none", id, lic)
			}
			continue
		}
		if !has || lic["required"] != "Microsoft Entra ID P2" || lic["servicePlan"] != "AAD_PREMIUM_P2" || lic["present"] != false {
			t.Errorf("%s: licence %v, want Microsoft Entra ID P2 not present", id, c["licence"])
		}
		if c["verdict"] != string(capolicy.VerdictNonCompliant) || !strings.HasPrefix(c["summary"].(string), "Licence missing: ") ||
			!strings.HasSuffix(c["summary"].(string), " needs Microsoft Entra ID P2, which the tenant does not have.") {
			t.Errorf("%s: verdict %v summary %q", id, c["verdict"], c["summary"])
		}
		for _, p := range c["policies"].([]any) {
			reasons, _ := p.(map[string]any)["reasons"].([]any)
			found := false
			for _, r := range reasons {
				found = found || r.(map[string]any)["code"] == capolicy.CodeLicenceMissing
			}
			if !found {
				t.Errorf("%s: policy %v lacks %s", id, p.(map[string]any)["id"], capolicy.CodeLicenceMissing)
			}
		}
	}

	plain := start(t, "drifted.json", nil)
	plainBefore := plain.fake.RoundTrips()
	_, plainBody := plain.evaluate(t, http.MethodGet)
	if want := plain.fake.RoundTrips() - plainBefore; trips != want {
		t.Errorf("%d Graph round trips with CONTROLS=all, %d with the default: reading licences must cost none", trips, want)
	}
	if n := len(plain.fake.CallsTo("GET /v1.0/subscribedSkus")); n != 0 {
		t.Errorf("the default run asked for subscriptions %d times, want never", n)
	}
	if _, ok := controlsByID(t, plainBody)[capolicy.ControlAzureManagementMFA]["licence"]; ok {
		t.Error("the default control answers a licence")
	}
	if body["verdict"] != plainBody["verdict"] || body["summary"] != plainBody["summary"] {
		t.Errorf("top-level verdict %v %q differs from the default run's %v %q", body["verdict"], body["summary"], plainBody["verdict"], plainBody["summary"])
	}

	if page := h.evaluateHTML(t); !strings.Contains(page, "licence missing") || !strings.Contains(page, "needs Microsoft Entra ID P2, which the tenant does not have.") {
		t.Error("the HTML report does not name the licence finding")
	}
	// A run (POST) still succeeds.
	if status, body := h.evaluate(t, http.MethodPost); status != http.StatusOK || body["alertId"] == nil {
		t.Fatalf("POST: status %d, alert %v", status, body["alertId"])
	}

	if err := h.fake.SetSubscribedSkus(graphfake.SKU("SPE_E5", "06ebc4ee-1bb5-47dd-8120-11324bc54e06", "Enabled",
		graphfake.ServicePlanEntraIDP1+":Success", graphfake.ServicePlanEntraIDP2+":Success")); err != nil {
		t.Fatal(err)
	}
	_, body = h.evaluate(t, http.MethodGet)
	for id, c := range controlsByID(t, body) {
		if !isRisk(id) {
			continue
		}
		if lic := c["licence"].(map[string]any); lic["present"] != true || strings.HasPrefix(c["summary"].(string), "Licence missing") {
			t.Errorf("%s with E5: licence %v summary %q", id, lic, c["summary"])
		}
	}
}

// Without LicenseAssignment.Read.All the licence is unknown: the risk controls are judged as if
// licensed (never "missing"), the run goes on, and the log warns once per process, naming the
// permission.
func TestLicenceUnknownWithoutThePermission(t *testing.T) {
	fake, err := graphfake.New(graphfake.Options{Roles: []string{graphfake.PermPolicyReadAll, graphfake.PermGroupMemberReadAll, graphfake.PermAccessReviewReadAll}})
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.LoadScenario(scenario("drifted.json")); err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	c, err := graph.New(graph.Options{BaseURL: fake.GraphURL(), Credential: emulatorToken{fake}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	r := &reconcile.Reconciler{Store: c, TenantID: fake.TenantID(), Now: time.Now, Log: zap.New(core), Owner: &reconcile.MemoryOwnership{},
		Policy:     capolicy.Config{BreakGlassUserIDs: strings.Split(breakGlassUsers, ","), BreakGlassGroupIDs: []string{breakGlassGroup}},
		Exclusions: reconcile.Exclusions{Reader: c, Mode: exclusion.ModeReport, Grace: exclusion.DefaultGrace},
		Controls:   capolicy.Catalogue()}
	for range 2 {
		out, err := r.Reconcile(context.Background(), reconcile.Request{Trigger: reconcile.TriggerHTTP})
		if err != nil {
			t.Fatalf("the run failed: %v", err)
		}
		for _, cr := range out.Controls {
			if !isRisk(cr.ID) {
				continue
			}
			if cr.Licence == nil || cr.Licence.Present != nil {
				t.Errorf("%s: licence %+v, want unknown", cr.ID, cr.Licence)
			}
			if strings.HasPrefix(cr.Summary, "Licence missing") {
				t.Errorf("%s: %q with the licence unknown", cr.ID, cr.Summary)
			}
			for _, p := range cr.Policies {
				for _, reason := range p.Reasons {
					if reason.Code == capolicy.CodeLicenceMissing {
						t.Errorf("%s: policy %s reads %s with the licence unknown", cr.ID, p.ID, reason.Code)
					}
				}
			}
		}
	}
	warned := logs.FilterMessageSnippet("tenant subscriptions").All()
	if len(warned) != 1 {
		t.Fatalf("%d warnings about the subscriptions over two runs, want 1: %v", len(warned), warned)
	}
	if p := warned[0].ContextMap()["permission"]; p != graph.PermReadLicences || !strings.Contains(warned[0].Message, graph.PermReadLicences) {
		t.Errorf("warning %q names permission %v, want %s", warned[0].Message, p, graph.PermReadLicences)
	}
}

// The Graph budget with every control: a run that needs no write costs what the default run costs
// (the subscriptions ride in phase one's batch), within the three round trips of the contract.
func TestGraphRoundTripBudgetWithEveryControl(t *testing.T) {
	caEvent := []auditlog.Hint{{Kind: auditlog.KindPolicyUpdated, Activity: "Update conditional access policy", Time: time.Now()}}
	trips := map[bool]int{}
	for _, all := range []bool{false, true} {
		fake, cfg := budgetTenant(t, 5, 2)
		if err := fake.SetSubscribedSkus(graphfake.SKU("AAD_PREMIUM_P2", "84a661c4-e949-4bd2-a560-ed7766fcaf2b", "Enabled", graphfake.ServicePlanEntraIDP2+":Success")); err != nil {
			t.Fatal(err)
		}
		c, err := graph.New(graph.Options{BaseURL: fake.GraphURL(), Credential: emulatorToken{fake}, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		// Alert mode: every catalogue control is guarded in remediate mode, and this tenant meets only
		// the default one, so remediate would write; the budget is about a run that needs no write.
		r := &reconcile.Reconciler{Store: c, Policy: cfg, TenantID: fake.TenantID(), Remediate: false, Now: time.Now,
			Log: zap.NewNop(), Owner: &reconcile.MemoryOwnership{},
			Exclusions: reconcile.Exclusions{Reader: c, Mode: exclusion.ModeReport, Grace: exclusion.DefaultGrace}}
		if all {
			r.Controls = capolicy.Catalogue()
		}
		fake.Reset()
		out, err := r.Reconcile(context.Background(), reconcile.Request{Trigger: reconcile.TriggerAuditEvent, Act: true, Hints: caEvent})
		if err != nil {
			t.Fatal(err)
		}
		if out.Report.Verdict != capolicy.VerdictCompliant || out.Actions[0].Written {
			t.Fatalf("verdict %s, action %+v; want compliant and nothing written", out.Report.Verdict, out.Actions[0])
		}
		trips[all] = fake.RoundTrips()
		if n := len(fake.CallsTo("GET /v1.0/subscribedSkus")); n != map[bool]int{false: 0, true: 1}[all] {
			t.Errorf("CONTROLS all=%v: %d subscribedSkus requests", all, n)
		}
		if all {
			for _, cr := range out.Controls {
				if isRisk(cr.ID) && (cr.Licence == nil || cr.Licence.Present == nil || !*cr.Licence.Present) {
					t.Errorf("%s: licence %+v, want present", cr.ID, cr.Licence)
				}
			}
		}
	}
	t.Logf("Graph round trips: %d with the default control, %d with every control", trips[false], trips[true])
	if trips[true] != trips[false] || trips[true] > 3 {
		t.Errorf("%d round trips with every control, %d with the default: want equal, at most 3", trips[true], trips[false])
	}
}

// The alert of a run names each control that lacks its licence, in words.
func TestLicenceMissingAlertNamesIt(t *testing.T) {
	fake := startFresh(t, scenario("drifted.json"))
	c, err := graph.New(graph.Options{BaseURL: fake.GraphURL(), Credential: emulatorToken{fake}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	sink := &alerts{}
	r := &reconcile.Reconciler{Store: c, TenantID: fake.TenantID(), Now: time.Now, Log: zap.NewNop(), Owner: &reconcile.MemoryOwnership{},
		Policy:   capolicy.Config{BreakGlassUserIDs: strings.Split(breakGlassUsers, ","), BreakGlassGroupIDs: []string{breakGlassGroup}},
		Controls: capolicy.Catalogue(), Sinks: []reconcile.AlertSink{sink}}
	if _, err := r.Reconcile(context.Background(), reconcile.Request{Trigger: reconcile.TriggerSweep, Act: true}); err != nil {
		t.Fatalf("the run failed: %v", err)
	}
	// Every non-compliant control sends its own alert; the first control's alert carries every licence
	// finding, and each risk control's own alert says that nothing was written for want of it.
	var first *reconcile.Alert
	byControl := map[string]reconcile.Alert{}
	for i, a := range sink.got {
		if a.Control == "" || a.Control == capolicy.ControlAzureManagementMFA {
			if first != nil {
				t.Fatalf("two alerts about %s", capolicy.ControlAzureManagementMFA)
			}
			first = &sink.got[i]
			continue
		}
		byControl[a.Control] = a
	}
	if first == nil {
		t.Fatalf("no alert about %s among %d", capolicy.ControlAzureManagementMFA, len(sink.got))
	}
	for _, id := range []string{capolicy.ControlUserRiskPolicy, capolicy.ControlSignInRiskPolicy} {
		ctl, _ := capolicy.ControlByID(id)
		want := `Licence missing: "` + ctl.Title + `" needs Microsoft Entra ID P2, which the tenant does not have.`
		found := false
		for _, w := range first.Warnings {
			found = found || w == want
		}
		if !found {
			t.Errorf("alert warnings %q lack %q", first.Warnings, want)
		}
		own, ok := byControl[id]
		if !ok {
			t.Errorf("no alert about %s", id)
			continue
		}
		if len(own.Actions) == 0 || own.Actions[0].Kind != reconcile.ActionSkip || !strings.Contains(own.Actions[0].Reason, capolicy.CodeLicenceMissing) {
			t.Errorf("%s alert actions %+v, want a skip for %s", id, own.Actions, capolicy.CodeLicenceMissing)
		}
	}
}

// A tenant with no policy at all and no Entra ID P2: the risk controls' reports carry no policy
// reason to hold the licence code, yet nothing is written for them, because no policy caguard could
// write would take effect. The other controls are still created.
func TestLicenceMissingWritesNothingOnAnEmptyTenant(t *testing.T) {
	e := newTenant(t, "empty.json", nil)
	e.rec.Controls = capolicy.Catalogue()
	out := e.reconcile(t)
	for _, id := range []string{capolicy.ControlUserRiskPolicy, capolicy.ControlSignInRiskPolicy} {
		actions, _ := out.ActionsFor(id)
		if len(actions) != 1 || actions[0].Kind != reconcile.ActionSkip || actions[0].Written {
			t.Errorf("%s: actions %+v, want one skip, nothing written", id, actions)
		}
	}
	created := 0
	for _, w := range e.writes() {
		if w.Method == http.MethodPost {
			created++
			var body struct {
				Conditions struct {
					UserRiskLevels   []string `json:"userRiskLevels"`
					SignInRiskLevels []string `json:"signInRiskLevels"`
				} `json:"conditions"`
			}
			if err := json.Unmarshal(w.Body, &body); err != nil {
				t.Fatal(err)
			}
			if len(body.Conditions.UserRiskLevels)+len(body.Conditions.SignInRiskLevels) > 0 {
				t.Errorf("created a risk policy in a tenant without Entra ID P2: %s", w.Body)
			}
		}
	}
	if want := len(capolicy.Catalogue()) - 2; created != want {
		t.Errorf("%d policies created, want %d (every control but the two risk ones)", created, want)
	}
}
