package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caguard/caguard/handler/azfunc/hosttest"
	"github.com/caguard/caguard/handler/graphfake"
)

// webhookInbox is a JSON webhook receiver (ALERT_WEBHOOK_FORMAT=json): it keeps every alert posted.
type webhookInbox struct {
	mu     sync.Mutex
	alerts []map[string]any
}

func newInbox(t *testing.T) (*webhookInbox, string) {
	t.Helper()
	in := &webhookInbox{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body struct {
			Alert map[string]any `json:"alert"`
		}
		if err := json.Unmarshal(b, &body); err != nil || body.Alert == nil {
			t.Errorf("webhook body is not {\"text\",\"alert\"}: %s", b)
		}
		in.mu.Lock()
		in.alerts = append(in.alerts, body.Alert)
		in.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return in, srv.URL + "/hook"
}

func (in *webhookInbox) take() []map[string]any {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := in.alerts
	in.alerts = nil
	return out
}

// TestEndToEndFailedRunsNameTheirCause drives the handler as the host does while Graph refuses or
// fails: every failed run answers what failed in words (the missing permission, the outage), with
// no Graph text, keeps the retriable/permanent status, and a run that may act sends the same words as
// an alert with a stable id; a report (GET) sends none.
func TestEndToEndFailedRunsNameTheirCause(t *testing.T) {
	inbox, hook := newInbox(t)
	h := start(t, "compliant.json", map[string]string{"ALERT_WEBHOOK_URL": hook, "ALERT_WEBHOOK_FORMAT": "json"})
	const graphText = "Insufficient privileges to complete the operation (emulator text 51d3)"
	sweep := func(t *testing.T) hosttest.Answer {
		t.Helper()
		a, err := h.host.Invoke("NightlySweep", hosttest.TimerData("timer", false), hosttest.SysMetadata("NightlySweep"))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	checkAlerts := func(t *testing.T, n int, words string) string {
		t.Helper()
		got := inbox.take()
		if len(got) != n {
			t.Fatalf("alerts: got %d, want %d: %v", len(got), n, got)
		}
		id := ""
		for _, a := range got {
			if f, _ := a["failure"].(string); f != words {
				t.Errorf("alert failure: got %q, want %q", f, words)
			}
			if s, _ := a["summary"].(string); !strings.Contains(s, words) {
				t.Errorf("alert summary %q: want it to name the cause", s)
			}
			if id == "" {
				id, _ = a["id"].(string)
			} else if a["id"] != id {
				t.Errorf("alert ids differ for one cause: %v and %s", a["id"], id)
			}
		}
		return id
	}

	const forbidden = "Graph answered 403 to list the Conditional Access policies: the app lacks Policy.Read.All (grant the application permission with admin consent)"
	var forbiddenID string
	t.Run("a missing permission", func(t *testing.T) {
		h.fake.ClearFaults()
		h.fake.Inject(graphfake.Fault{Match: "GET /v1.0/identity/conditionalAccess/policies", Status: 403,
			Code: "Authorization_RequestDenied", Message: graphText})
		status, body := h.evaluate(t, http.MethodGet)
		if msg, _ := body["error"].(string); status != http.StatusInternalServerError || msg != forbidden {
			t.Errorf("GET: %d %q, want 500 %q", status, msg, forbidden)
		}
		checkAlerts(t, 0, "") // a report never alerts
		for range 2 {
			a := sweep(t)
			if a.Status != http.StatusOK || !strings.Contains(a.LogText(), "failed: "+forbidden) {
				t.Errorf("sweep: host status %d, logs %q; want 200 (a retry cannot grant a permission) and the cause", a.Status, a.Logs)
			}
		}
		forbiddenID = checkAlerts(t, 2, forbidden)
		status, body = h.evaluate(t, http.MethodPost)
		if msg, _ := body["error"].(string); status != http.StatusInternalServerError || msg != forbidden {
			t.Errorf("POST: %d %q, want 500 %q", status, msg, forbidden)
		}
		if id := checkAlerts(t, 1, forbidden); id != forbiddenID {
			t.Errorf("POST alert id %s, want the sweep's %s", id, forbiddenID)
		}
	})

	t.Run("Graph unavailable", func(t *testing.T) {
		const unavailable = "Graph is unavailable (it answered 503 to list the Conditional Access policies); a retry later can succeed"
		h.fake.ClearFaults()
		h.fake.Inject(graphfake.Fault{Match: "GET /v1.0/identity/conditionalAccess/policies", Status: 503, RetryAfter: "1", Message: graphText})
		status, body := h.evaluate(t, http.MethodPost)
		if msg, _ := body["error"].(string); status != http.StatusServiceUnavailable || msg != unavailable {
			t.Errorf("POST: %d %q, want 503 %q", status, msg, unavailable)
		}
		a := sweep(t)
		if a.Status < 500 || !strings.Contains(a.LogText(), "failed: "+unavailable) {
			t.Errorf("sweep: host status %d, logs %q; want 5xx so the host retries, and the cause", a.Status, a.Logs)
		}
		if id := checkAlerts(t, 2, unavailable); id == forbiddenID {
			t.Errorf("alert id %s: want another id for another cause", id)
		}
	})

	t.Run("a healthy run raises no failure alert", func(t *testing.T) {
		h.fake.ClearFaults()
		if a := sweep(t); a.Status != http.StatusOK || strings.Contains(a.LogText(), "failed:") {
			t.Errorf("sweep: host status %d, logs %q", a.Status, a.Logs)
		}
		for _, a := range inbox.take() { // the sweep's own review alert may come; a failure alert must not
			if f, ok := a["failure"]; ok {
				t.Errorf("a healthy sweep sent a failure alert: %v", f)
			}
		}
	})

	for _, out := range []string{h.stdout.String(), h.stderr.String()} {
		if tok := h.fake.Token(); tok != "" && strings.Contains(out, tok) {
			t.Error("a Graph token appears in the logs")
		}
	}
}

// TestEndToEndUnknownStateIsAVerdict: a policy whose state caguard does not know gets a verdict of
// its own through the real Graph client, the other policies are still judged, and a managed policy in
// such a state is not written over.
func TestEndToEndUnknownStateIsAVerdict(t *testing.T) {
	inbox, hook := newInbox(t)
	h := start(t, "compliant.json", map[string]string{"ALERT_WEBHOOK_URL": hook, "ALERT_WEBHOOK_FORMAT": "json"})
	const odd = "cccccccc-0000-0000-0000-0000000000e1"
	if _, err := h.fake.PutPolicy(json.RawMessage(`{"id":"` + odd + `","displayName":"From the future","state":"enabledWithGuardrails",` +
		`"conditions":{"users":{"includeUsers":["All"]},"applications":{"includeApplications":["All"]},"clientAppTypes":["all"]},` +
		`"grantControls":{"operator":"OR","builtInControls":["mfa"]}}`)); err != nil {
		t.Fatal(err)
	}
	status, body := h.evaluate(t, http.MethodGet)
	if status != http.StatusOK || body["verdict"] != "compliant" {
		t.Fatalf("GET: %d %v (%v), want 200 and the verdict of the other policies", status, body["verdict"], body["error"])
	}
	reason := firstReason(t, body, odd)
	if reason["code"] != "STATE_UNKNOWN" || !strings.Contains(reason["message"].(string), `"enabledWithGuardrails" (not recognised)`) {
		t.Errorf("reason: got %v, want STATE_UNKNOWN naming the state", reason)
	}
	if u, _ := reason["unrecognised"].([]any); len(u) != 1 || u[0].(map[string]any)["value"] != "enabledWithGuardrails" {
		t.Errorf("reason.unrecognised: got %v", reason["unrecognised"])
	}

	// The managed policy itself in that state: nothing is written over it, and the alert says why.
	raw, _ := h.fake.Policy(managedID)
	var managed map[string]any
	if err := json.Unmarshal(raw, &managed); err != nil {
		t.Fatal(err)
	}
	managed["state"] = "enabledWithGuardrails"
	b, _ := json.Marshal(managed)
	if _, err := h.fake.PutPolicy(b); err != nil {
		t.Fatal(err)
	}
	status, body = h.evaluate(t, http.MethodPost)
	if status != http.StatusOK || body["verdict"] != "non-compliant" {
		t.Fatalf("POST: %d %v (%v)", status, body["verdict"], body["error"])
	}
	acts, _ := body["actions"].([]any)
	if len(acts) != 1 || acts[0].(map[string]any)["kind"] != "skipped" || !strings.Contains(acts[0].(map[string]any)["reason"].(string), "enabledWithGuardrails") {
		t.Errorf("actions: got %v, want a skip that names the state", acts)
	}
	if w := h.writes(); len(w) != 0 {
		t.Errorf("wrote over a state caguard does not know: %v", w)
	}
	alerts := inbox.take()
	if len(alerts) != 1 {
		t.Fatalf("alerts: got %d, want 1", len(alerts))
	}
	text, _ := json.Marshal(alerts[0])
	if !strings.Contains(string(text), "enabledWithGuardrails") {
		t.Errorf("alert does not name the state it did not recognise: %s", text)
	}
}

func firstReason(t *testing.T, body map[string]any, id string) map[string]any {
	t.Helper()
	ps, _ := body["policies"].([]any)
	for _, p := range ps {
		pm, _ := p.(map[string]any)
		if pm["id"] != id {
			continue
		}
		rs, _ := pm["reasons"].([]any)
		if len(rs) == 0 {
			t.Fatalf("policy %s has no reasons", id)
		}
		return rs[0].(map[string]any)
	}
	t.Fatalf("policy %s is not in the answer", id)
	return nil
}
