package app

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/azfunc"
	"github.com/caguard/caguard/handler/azfunc/hosttest"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/reconcile"
)

// recorder is a Reconciler that remembers its requests.
type recorder struct {
	mu   sync.Mutex
	reqs []reconcile.Request
	err  error
}

func (r *recorder) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	if r.err != nil {
		return reconcile.Outcome{}, r.err
	}
	return reconcile.Outcome{
		Report:  capolicy.Report{Verdict: capolicy.VerdictNonCompliant, Summary: "no policy", Policies: nil},
		Actions: []reconcile.Action{{Kind: reconcile.ActionNone, Reason: "test"}},
	}, nil
}

const tenant = "0b1c2d3e-0000-4000-8000-00000000aaaa"

func setup(t *testing.T) (*hosttest.Host, *recorder) {
	t.Helper()
	rec := &recorder{}
	fns := Functions(Deps{
		Reconciler: rec,
		Filter:     func(context.Context) auditlog.Filter { return auditlog.Filter{TenantID: tenant} },
		TenantID:   tenant,
		Now:        func() time.Time { return time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC) },
	})
	srv := httptest.NewServer(azfunc.NewServer(zap.NewNop(), time.Minute, fns...))
	t.Cleanup(srv.Close)
	return &hosttest.Host{Base: srv.URL}, rec
}

func caRecord(id string) string {
	rec := map[string]any{
		"time": "2026-11-20T07:59:01.7088498Z", "category": "AuditLogs", "tenantId": tenant,
		"operationName": "Update conditional access policy",
		"properties": map[string]any{
			"id": id, "category": "Policy", "loggedByService": "Conditional Access", "result": "success",
			"activityDisplayName": "Update conditional access policy",
			"initiatedBy":         map[string]any{"user": map[string]any{"id": "44444444-4444-4444-4444-444444444444", "userPrincipalName": "a@contoso.example"}},
			"targetResources":     []any{map[string]any{"id": "aaaaaaaa-0000-0000-0000-000000000001", "type": "Policy", "displayName": "p"}},
		},
	}
	b, _ := json.Marshal(map[string]any{"records": []any{rec}})
	return string(b)
}

func TestAuditLogEventsReconcilesOncePerBatch(t *testing.T) {
	h, rec := setup(t)
	bodies := []string{caRecord("IPCGraph_1"), caRecord("IPCGraph_2"), `{"records":[]}`, `garbage`}
	a, err := h.Invoke(FuncAuditLogEvents, hosttest.EventHubData("events", bodies...), hosttest.EventHubMetadata(FuncAuditLogEvents, len(bodies)))
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != 200 || len(rec.reqs) != 1 {
		t.Fatalf("status %d, %d reconciles; want 200 and one reconcile for the whole batch", a.Status, len(rec.reqs))
	}
	if got := rec.reqs[0]; got.Trigger != reconcile.TriggerAuditEvent || !got.Act || len(got.Hints) != 2 {
		t.Errorf("request %+v, want an acting audit-event reconcile with two hints", got)
	}
	if !strings.Contains(a.LogText(), "events=4") || !strings.Contains(a.LogText(), "event-not-json=1") {
		t.Errorf("Logs %q do not state the counts", a.Logs)
	}
}

func TestAuditLogEventsWithoutRelevantRecordsDoesNothing(t *testing.T) {
	h, rec := setup(t)
	a, err := h.Invoke(FuncAuditLogEvents, hosttest.EventHubData("events", `{"records":[{"operationName":"Update user"}]}`), nil)
	if err != nil || a.Status != 200 || len(rec.reqs) != 0 {
		t.Fatalf("err %v status %d reconciles %d; want 200 and none", err, a.Status, len(rec.reqs))
	}
}

// Noise is answered by the scan of the raw events string, whatever the batch holds around it; the
// log line must read exactly as the full decode's would.
func TestAuditLogEventsNoiseLogsWhatTheFullDecodeCounts(t *testing.T) {
	noise := `{"records":[{"category":"AuditLogs","operationName":"Update user","properties":{"activityDisplayName":"Update user","targetResources":[{"modifiedProperties":[{"displayName":"x","newValue":"[\"Zo\u00eb \\/ \\\"q\\\"\"]"}]}]}},7]}`
	tests := []struct {
		name   string
		bodies []string
	}{
		{"a batch of noise", []string{noise, noise, `{"records":[]}`}},
		{"noise with a bare record", []string{noise, `{"category":"AuditLogs","operationName":"Add device"}`}},
		{"noise and an event that is not JSON", []string{noise, `garbage`}},
		{"noise with escaped slashes", []string{strings.ReplaceAll(noise, "/", `\/`)}},
		{"a membership change of a group that is not break-glass", []string{`{"records":[{"operationName":"Add member to group","properties":{"targetResources":[{"id":"0b1c2d3e-0000-4000-8000-00000000bbbb"}]}}]}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, rec := setup(t)
			data := hosttest.EventHubData("events", tt.bodies...)
			want, err := auditlog.DecodeBatch(strings.NewReader(data["events"].(string)), auditlog.Filter{TenantID: tenant})
			if err != nil {
				t.Fatal(err)
			}
			a, err := h.Invoke(FuncAuditLogEvents, data, hosttest.EventHubMetadata(FuncAuditLogEvents, len(tt.bodies)))
			if err != nil || a.Status != 200 || len(rec.reqs) != 0 {
				t.Fatalf("err %v status %d reconciles %d; want 200 and none", err, a.Status, len(rec.reqs))
			}
			if got, want := a.LogText(), "audit batch: "+want.LogLine(); got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestAuditLogEventsBadBindingIsAcknowledged(t *testing.T) {
	h, rec := setup(t)
	for name, data := range map[string]map[string]any{
		"missing binding":      {},
		"binding not an array": {"events": `{"records":[]}`},
	} {
		a, err := h.Invoke(FuncAuditLogEvents, data, nil)
		if err != nil || a.Status != 200 || a.Error == "" {
			t.Errorf("%s: err %v status %d error %q; want an acknowledged failure", name, err, a.Status, a.Error)
		}
	}
	if len(rec.reqs) != 0 {
		t.Errorf("%d reconciles, want none", len(rec.reqs))
	}
}

type unavailable struct{}

func (unavailable) Error() string   { return "graph answered 503" }
func (unavailable) Retriable() bool { return true }

func TestGraphOutageFailsEventInvocationForRetry(t *testing.T) {
	h, rec := setup(t)
	rec.err = unavailable{}
	a, err := h.Invoke(FuncAuditLogEvents, hosttest.EventHubData("events", caRecord("IPCGraph_1")), nil)
	if err != nil || a.Status != 500 {
		t.Fatalf("err %v status %d, want 500 so that the host retries", err, a.Status)
	}
	a, err = h.Invoke(FuncNightlySweep, hosttest.TimerData("timer", false), nil)
	if err != nil || a.Status != 500 {
		t.Fatalf("sweep: err %v status %d, want 500", err, a.Status)
	}
}

func TestNightlySweepRunsEvenWithAnUnreadableTimer(t *testing.T) {
	h, rec := setup(t)
	a, err := h.Invoke(FuncNightlySweep, map[string]any{"timer": 42}, nil)
	if err != nil || a.Status != 200 || len(rec.reqs) != 1 || rec.reqs[0].Trigger != reconcile.TriggerSweep || !rec.reqs[0].Act {
		t.Fatalf("err %v status %d reqs %+v", err, a.Status, rec.reqs)
	}
}

func TestEvaluateMethods(t *testing.T) {
	tests := []struct {
		method   string
		wantCode int
		wantAct  bool
		wantRuns int
	}{
		{"GET", 200, false, 1},
		{"POST", 200, true, 1},
		{"DELETE", 405, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			h, rec := setup(t)
			a, err := h.Invoke(FuncEvaluate, hosttest.HTTPData("req", tt.method, ""), nil)
			if err != nil || a.Status != 200 {
				t.Fatalf("err %v host status %d", err, a.Status)
			}
			res, err := a.HTTP("res")
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.wantCode || len(rec.reqs) != tt.wantRuns {
				t.Fatalf("HTTP %d after %d runs, want %d after %d", res.StatusCode, len(rec.reqs), tt.wantCode, tt.wantRuns)
			}
			if tt.wantRuns == 0 {
				return
			}
			if rec.reqs[0].Act != tt.wantAct {
				t.Errorf("Act = %t, want %t", rec.reqs[0].Act, tt.wantAct)
			}
			var ans map[string]any
			if err := json.Unmarshal([]byte(res.Body), &ans); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"compliant", "verdict", "policies", "actions"} {
				if _, ok := ans[k]; !ok {
					t.Errorf("answer lacks %q: %s", k, res.Body)
				}
			}
			if ps, ok := ans["policies"].([]any); !ok || ps == nil {
				t.Errorf("policies must be an array, never null: %s", res.Body)
			}
		})
	}
}
