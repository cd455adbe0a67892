package main

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/caguard/caguard/handler/azfunc/hosttest"
	"github.com/caguard/caguard/handler/capolicy"
)

// evaluateQuery is a GET of Evaluate with query parameters, as the host passes them.
func (h *harness) evaluateQuery(t *testing.T, query map[string]string) (int, map[string]any) {
	t.Helper()
	data := hosttest.HTTPData("req", http.MethodGet, "")
	req := data["req"].(map[string]any)
	q := req["Query"].(map[string]string)
	for k, v := range query {
		q[k] = v
	}
	a, err := h.host.Invoke("Evaluate", data, hosttest.SysMetadata("Evaluate"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.HTTP("res")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(res.Body), &body); err != nil {
		t.Fatalf("res.body is not JSON: %q", res.Body)
	}
	return res.StatusCode, body
}

// With CONTROLS unset, Evaluate answers the one control caguard guards, and its top-level fields are
// that control's verdict.
func TestEvaluateControlsDefault(t *testing.T) {
	h := start(t, "drifted.json", nil)
	status, body := h.evaluate(t, http.MethodGet)
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, body)
	}
	controls, _ := body["controls"].([]any)
	if len(controls) != 1 {
		t.Fatalf("controls: %v, want azure-management-mfa alone", body["controls"])
	}
	c := controls[0].(map[string]any)
	if c["id"] != capolicy.ControlAzureManagementMFA || c["verdict"] != body["verdict"] || c["compliant"] != body["compliant"] || c["summary"] != body["summary"] {
		t.Errorf("control %v does not repeat the top-level verdict %v", c, body["verdict"])
	}
	if cis, _ := c["cis"].([]any); len(cis) == 0 {
		t.Errorf("control %v has no CIS reference", c["id"])
	}
}

// CONTROLS=all judges every catalogue control from the same Graph reads, and ?control= answers one.
func TestEvaluateControlsAll(t *testing.T) {
	h := start(t, "drifted.json", map[string]string{"CONTROLS": "all"})
	before := h.fake.RoundTrips()
	status, body := h.evaluate(t, http.MethodGet)
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, body)
	}
	controls, _ := body["controls"].([]any)
	if len(controls) != len(capolicy.Catalogue()) {
		t.Fatalf("controls: got %d, want %d", len(controls), len(capolicy.Catalogue()))
	}
	for i, item := range controls {
		c := item.(map[string]any)
		if c["id"] != capolicy.Catalogue()[i].ID || c["title"] == "" || c["verdict"] == "" {
			t.Errorf("control %d: %v", i, c)
		}
		if ps, _ := c["policies"].([]any); ps == nil {
			t.Errorf("control %v: policies is not an array", c["id"])
		}
	}
	graphCalls := h.fake.RoundTrips() - before
	// The same report with the guarded control alone costs as many: one policy list serves every control.
	plain := start(t, "drifted.json", nil)
	plainBefore := plain.fake.RoundTrips()
	plain.evaluate(t, http.MethodGet)
	if want := plain.fake.RoundTrips() - plainBefore; graphCalls != want {
		t.Errorf("%d Graph round trips for a report of every control, %d for the guarded control alone: enabling controls must cost none", graphCalls, want)
	}

	status, body = h.evaluateQuery(t, map[string]string{"control": "Admin-MFA"})
	if status != http.StatusOK {
		t.Fatalf("?control=Admin-MFA: status %d: %v", status, body)
	}
	if one, _ := body["controls"].([]any); len(one) != 1 || one[0].(map[string]any)["id"] != capolicy.ControlAdminMFA {
		t.Errorf("?control=Admin-MFA: controls %v", body["controls"])
	}
	if status, body = h.evaluateQuery(t, map[string]string{"control": "no-such-control"}); status != http.StatusBadRequest {
		t.Errorf("?control=no-such-control: status %d, want 400: %v", status, body)
	}
}

// A control the catalogue has but CONTROLS left out answers 404, saying how to enable it.
func TestEvaluateControlNotEnabled(t *testing.T) {
	h := start(t, "drifted.json", nil)
	status, body := h.evaluateQuery(t, map[string]string{"control": capolicy.ControlBlockLegacyAuth})
	if status != http.StatusNotFound {
		t.Errorf("status %d, want 404: %v", status, body)
	}
}
