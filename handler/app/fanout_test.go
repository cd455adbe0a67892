package app

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.uber.org/zap/zaptest"

	"github.com/caguard/caguard/handler/azfunc"
	"github.com/caguard/caguard/handler/azfunc/hosttest"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/graph"
	"github.com/caguard/caguard/handler/graphfake"
	"github.com/caguard/caguard/handler/reconcile"
	"github.com/caguard/caguard/handler/tenantqueue"
	"github.com/caguard/caguard/handler/tenantqueue/queuetest"
	"github.com/caguard/caguard/handler/tenants"
)

// fleet is a small Fleet for tests: the registry's tenants, each with its reconciler.
type fleet struct {
	mu   sync.Mutex
	list []tenants.Tenant
	recs map[string]Reconciler
}

func (f *fleet) add(t tenants.Tenant, r Reconciler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.recs == nil {
		f.recs = map[string]Reconciler{}
	}
	f.list = append(f.list, t)
	f.recs[strings.ToLower(t.ID)] = r
}

// remove takes a tenant out of the registry, as an operator editing tenants.json would.
func (f *fleet) remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.recs, strings.ToLower(id))
	for i, t := range f.list {
		if strings.EqualFold(t.ID, id) {
			f.list = append(f.list[:i], f.list[i+1:]...)
			break
		}
	}
}

// LastRun: the fan-out needs no record of runs.
func (f *fleet) LastRun(string) (TenantRun, bool) { return TenantRun{}, false }

func (f *fleet) Tenants() []tenants.Tenant {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]tenants.Tenant(nil), f.list...)
}

func (f *fleet) Reconciler(id string) (Reconciler, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.recs[strings.ToLower(id)]
	return r, ok
}

var sweepAt = time.Date(2026, 11, 20, 2, 30, 0, 0, time.UTC)

func fanoutHost(t *testing.T, d Deps) *hosttest.Host {
	t.Helper()
	if d.Now == nil {
		d.Now = func() time.Time { return sweepAt }
	}
	srv := httptest.NewServer(azfunc.NewServer(zaptest.NewLogger(t), time.Minute, Functions(d)...))
	t.Cleanup(srv.Close)
	return &hosttest.Host{Base: srv.URL}
}

func sweepMessage(t *testing.T, tenantID string) string {
	t.Helper()
	text, err := tenantqueue.New(tenantID, sweepAt, tenantqueue.ReasonNightlySweep).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return text
}

func deliver(t *testing.T, h *hosttest.Host, text string, dequeueCount int) hosttest.Answer {
	t.Helper()
	m := hosttest.QueueMessage{Text: text, ID: "3c2f6a1e-5d4b-4c3a-9e8f-7a6b5c4d3e2f", PopReceipt: "AgAAAAMAAAAAAAAA", DequeueCount: dequeueCount,
		InsertionTime: sweepAt, ExpirationTime: sweepAt.Add(7 * 24 * time.Hour), NextVisibleTime: sweepAt.Add(time.Minute)}
	a, err := h.Invoke(FuncTenantSweep, hosttest.QueueData(bindingSweep, m), hosttest.QueueMetadata(FuncTenantSweep, m))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func poisonRecord(t *testing.T, a hosttest.Answer) (tenantqueue.Poison, bool) {
	t.Helper()
	raw, ok := a.Outputs[bindingPoison]
	if !ok {
		return tenantqueue.Poison{}, false
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		t.Fatalf("poison output %s is not the message's text: %v", raw, err)
	}
	var p tenantqueue.Poison
	if err := json.Unmarshal([]byte(text), &p); err != nil {
		t.Fatalf("poison message %q: %v", text, err)
	}
	return p, true
}

// Without a registry, NightlySweep sweeps inline and writes nothing to the sweep queue.
func TestNightlySweepWithoutARegistryWritesNoQueueMessage(t *testing.T) {
	h, rec := setup(t)
	a, err := h.Invoke(FuncNightlySweep, hosttest.TimerData(bindingTimer, false), hosttest.SysMetadata(FuncNightlySweep))
	if err != nil || a.Status != 200 {
		t.Fatalf("err %v status %d", err, a.Status)
	}
	if len(rec.reqs) != 1 || rec.reqs[0].Trigger != reconcile.TriggerSweep {
		t.Errorf("requests %+v, want one inline sweep", rec.reqs)
	}
	if _, ok := a.Outputs[bindingSweeps]; ok {
		t.Errorf("outputs %s: want nothing on the sweep queue without a registry", a.Raw)
	}
}

const (
	tenantA = "aaaaaaaa-0000-4000-8000-00000000000a"
	tenantB = "bbbbbbbb-0000-4000-8000-00000000000b"
	tenantC = "cccccccc-0000-4000-8000-00000000000c"
	tenantD = "dddddddd-0000-4000-8000-00000000000d"
)

// With a registry, NightlySweep reconciles nothing itself and enqueues one message per tenant.
func TestNightlySweepWithARegistryEnqueuesOneMessagePerTenant(t *testing.T) {
	f := &fleet{}
	recs := map[string]*recorder{}
	for _, id := range []string{tenantA, tenantB, tenantC} {
		recs[id] = &recorder{}
		f.add(tenants.Tenant{ID: id, DisplayName: id[:8]}, recs[id])
	}
	single := &recorder{}
	h := fanoutHost(t, Deps{Reconciler: single, TenantID: tenant, Fleet: f})
	a, err := h.Invoke(FuncNightlySweep, hosttest.TimerData(bindingTimer, false), hosttest.SysMetadata(FuncNightlySweep))
	if err != nil || a.Status != 200 {
		t.Fatalf("err %v status %d", err, a.Status)
	}
	var texts []string
	if err := json.Unmarshal(a.Outputs[bindingSweeps], &texts); err != nil {
		t.Fatalf("sweeps output %s: %v", a.Outputs[bindingSweeps], err)
	}
	want := []string{sweepMessage(t, tenantA), sweepMessage(t, tenantB), sweepMessage(t, tenantC)}
	if strings.Join(texts, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q, want %q", texts, want)
	}
	if n := len(single.reqs) + len(recs[tenantA].reqs) + len(recs[tenantB].reqs) + len(recs[tenantC].reqs); n != 0 {
		t.Errorf("%d reconciles; the fan-out leaves them to TenantSweep", n)
	}
	if !strings.Contains(a.LogText(), "3 of 3 tenant(s) enqueued") {
		t.Errorf("Logs %q do not say what was enqueued", a.Logs)
	}
}

type permanent struct{}

func (permanent) Error() string   { return "graph answered 403" }
func (permanent) Retriable() bool { return false }

func TestTenantSweepDeliveries(t *testing.T) {
	tests := []struct {
		name         string
		text         string
		dequeueCount int
		err          error // what the tenant's reconciler answers
		wantStatus   int
		wantRuns     int
		wantPoison   string // the poison record's reason, "" for none
		wantLog      string
	}{
		{"a tenant of the registry is swept", sweepMessage(t, tenantA), 1, nil, 200, 1, "", "verdict non-compliant"},
		{"a tenant removed from the registry is dropped with a log line", sweepMessage(t, tenantD), 1, nil, 200, 0, "", "tenant " + tenantD + " is not in the registry: sweep message"},
		{"a retriable failure before the last delivery fails the invocation", sweepMessage(t, tenantA), 4, unavailable{}, 500, 1, "", "retriable: true"},
		{"a retriable failure on the last delivery goes to the poison queue", sweepMessage(t, tenantA), 5, unavailable{}, 200, 1, tenantqueue.PoisonRetriesExhausted, "moved to the poison queue"},
		{"a delivery past the last is the last too", sweepMessage(t, tenantA), 9, unavailable{}, 200, 1, tenantqueue.PoisonRetriesExhausted, "moved to the poison queue"},
		{"a permanent failure goes to the poison queue at once", sweepMessage(t, tenantA), 1, permanent{}, 200, 1, tenantqueue.PoisonPermanent, "moved to the poison queue"},
		{"a malformed message goes to the poison queue", `{"tenant":"` + tenantA + `"}`, 1, nil, 200, 0, tenantqueue.PoisonMalformed, "unknown field"},
		{"a message that is not JSON goes to the poison queue", `sweep everything`, 1, nil, 200, 0, tenantqueue.PoisonMalformed, "not a document"},
		{"an unknown DequeueCount never counts as the last", sweepMessage(t, tenantA), 0, unavailable{}, 500, 1, "", "retriable: true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{err: tt.err}
			f := &fleet{}
			f.add(tenants.Tenant{ID: tenantA, DisplayName: "A", Mode: tenants.ModeRemediate}, rec)
			h := fanoutHost(t, Deps{Reconciler: &recorder{}, TenantID: tenant, Fleet: f})
			a := deliver(t, h, tt.text, tt.dequeueCount)
			if a.Status != tt.wantStatus || len(rec.reqs) != tt.wantRuns {
				t.Fatalf("status %d, %d runs; want %d and %d (%s)", a.Status, len(rec.reqs), tt.wantStatus, tt.wantRuns, a.Raw)
			}
			if tt.wantRuns > 0 && (rec.reqs[0].Trigger != reconcile.TriggerSweep || !rec.reqs[0].Act) {
				t.Errorf("request %+v, want an acting sweep", rec.reqs[0])
			}
			p, poisoned := poisonRecord(t, a)
			if poisoned != (tt.wantPoison != "") || p.Reason != tt.wantPoison {
				t.Fatalf("poison %+v (%t), want reason %q", p, poisoned, tt.wantPoison)
			}
			if poisoned && (p.Message != tt.text || p.Detail == "" || p.DequeueCount != tt.dequeueCount || p.MessageID == "" || p.InsertionTime == nil) {
				t.Errorf("poison record %+v: want the original message, the reason in words and where it came from", p)
			}
			if !strings.Contains(a.LogText()+a.Error, tt.wantLog) {
				t.Errorf("Logs %q, want a line with %q", a.Logs, tt.wantLog)
			}
		})
	}
}

// Without a registry a queued sweep (say, enqueued before the registry was removed) still sweeps the
// single tenant when it names it, and is dropped otherwise.
func TestTenantSweepWithoutARegistry(t *testing.T) {
	h, rec := setup(t)
	if a := deliver(t, h, sweepMessage(t, tenant), 1); a.Status != 200 || len(rec.reqs) != 1 {
		t.Fatalf("status %d, %d runs: want the single tenant swept", a.Status, len(rec.reqs))
	}
	a := deliver(t, h, sweepMessage(t, tenantA), 1)
	if a.Status != 200 || len(rec.reqs) != 1 || !strings.Contains(a.LogText(), "not in the registry") {
		t.Fatalf("status %d, %d runs, Logs %q: want another tenant's message dropped with a log line", a.Status, len(rec.reqs), a.Logs)
	}
	if _, poisoned := poisonRecord(t, a); poisoned {
		t.Error("a dropped message went to the poison queue")
	}
}

func TestTenantSweepWithoutItsMessageGoesToThePoisonQueue(t *testing.T) {
	h, rec := setup(t)
	a, err := h.Invoke(FuncTenantSweep, map[string]any{}, hosttest.SysMetadata(FuncTenantSweep))
	if err != nil || a.Status != 200 || len(rec.reqs) != 0 {
		t.Fatalf("err %v status %d runs %d", err, a.Status, len(rec.reqs))
	}
	if p, ok := poisonRecord(t, a); !ok || p.Reason != tenantqueue.PoisonMalformed {
		t.Errorf("poison %+v (%t), want malformed-message", p, ok)
	}
}

// emulatorToken signs in to the Graph emulator.
type emulatorToken struct{ srv *graphfake.Server }

func (e emulatorToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: e.srv.Token(), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// alertLog keeps the alerts a tenant's reconciler sends.
type alertLog struct {
	mu  sync.Mutex
	got []reconcile.Alert
}

func (a *alertLog) Name() string { return "test" }
func (a *alertLog) Send(_ context.Context, al reconcile.Alert) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, al)
	return nil
}

func (a *alertLog) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.got)
}

type guarded struct {
	tenant tenants.Tenant
	fake   *graphfake.Server
	rec    *reconcile.Reconciler
	alerts *alertLog
}

// guardedTenant is a tenant of the registry with no Conditional Access policy yet, its own Graph
// emulator, and a real reconciler in its mode with its own break-glass account.
func guardedTenant(t *testing.T, id, name, mode, breakGlass string) guarded {
	t.Helper()
	fake, err := graphfake.New(graphfake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sc := graphfake.Scenario{TenantID: id, Users: map[string]json.RawMessage{breakGlass: json.RawMessage(`{"displayName":"Break-glass ` + name + `","accountEnabled":true}`)}}
	if err := fake.Seed(sc); err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	c, err := graph.New(graph.Options{BaseURL: fake.GraphURL(), Credential: emulatorToken{fake}, RetryBudget: time.Second, MaxRetries: -1, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	al := &alertLog{}
	tn := tenants.Tenant{ID: id, DisplayName: name, BreakGlassUserIDs: []string{breakGlass}, Mode: mode}
	return guarded{tenant: tn, fake: fake, alerts: al, rec: &reconcile.Reconciler{
		Store: c, Sinks: []reconcile.AlertSink{al}, TenantID: id, Remediate: mode == tenants.ModeRemediate,
		Policy: capolicy.Config{BreakGlassUserIDs: tn.BreakGlassUserIDs}, Now: time.Now, Log: zaptest.NewLogger(t),
		Owner: &reconcile.MemoryOwnership{}, ReadBackDelays: []time.Duration{0, 10 * time.Millisecond, 40 * time.Millisecond},
	}}
}

// delivery is one invocation of TenantSweep that the test, as the host, made.
type delivery struct {
	msg    queuetest.Message
	answer hosttest.Answer
}

// playHost does what the Functions host and its queue extension do with the sweep queue, until it
// is empty: receive a message, invoke TenantSweep with it in the host's envelope and the real
// DequeueCount; on success write what the poison output holds to the poison queue, then delete the
// message; on failure make it visible again (visibilityTimeout, here at once) or, on the last
// delivery, move it bare to the poison queue, as the extension does.
func playHost(t *testing.T, ctx context.Context, q *queuetest.Client, h *hosttest.Host, queue string, maxDequeue int) []delivery {
	t.Helper()
	var out []delivery
	for range 100 {
		m, err := q.Receive(ctx, queue, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			return out
		}
		qm := hosttest.QueueMessage{Text: m.Text, ID: m.ID, PopReceipt: m.PopReceipt, DequeueCount: m.DequeueCount,
			InsertionTime: m.InsertionTime, ExpirationTime: m.ExpirationTime, NextVisibleTime: m.NextVisibleTime}
		a, err := h.Invoke(FuncTenantSweep, hosttest.QueueData(bindingSweep, qm), hosttest.QueueMetadata(FuncTenantSweep, qm))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, delivery{msg: *m, answer: a})
		switch {
		case a.Status/100 == 2:
			if raw, ok := a.Outputs[bindingPoison]; ok {
				var text string
				if err := json.Unmarshal(raw, &text); err != nil {
					t.Fatalf("poison output %s: %v", raw, err)
				}
				if err := q.Put(ctx, queue+tenantqueue.PoisonSuffix, text); err != nil {
					t.Fatal(err)
				}
			}
			if err := q.Delete(ctx, queue, m); err != nil {
				t.Fatal(err)
			}
		case m.DequeueCount >= maxDequeue:
			if err := q.Put(ctx, queue+tenantqueue.PoisonSuffix, m.Text); err != nil {
				t.Fatal(err)
			}
			if err := q.Delete(ctx, queue, m); err != nil {
				t.Fatal(err)
			}
		default:
			if err := q.Release(ctx, queue, m, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Fatal("the sweep queue did not drain in 100 deliveries")
	return nil
}

// The nightly fan-out end to end, on Azurite's queue service: NightlySweep's outputs go on the queue,
// each message is delivered to TenantSweep as the host would, and each of three tenants with its own
// break-glass account and mode gets what its mode says; a tenant whose Graph keeps failing is retried
// up to the last delivery and lands on the poison queue with the reason, without holding up the
// others; a tenant removed from the registry after the enqueue is dropped with a log line; a
// malformed message lands on the poison queue with the reason.
func TestFanOutOverAzuriteQueues(t *testing.T) {
	az := queuetest.Start(t)
	q := az.Client()
	ctx := context.Background()
	queue := tenantqueue.DefaultQueue
	for _, name := range []string{queue, queue + tenantqueue.PoisonSuffix} {
		if err := q.CreateQueue(ctx, name); err != nil {
			t.Fatal(err)
		}
	}

	a := guardedTenant(t, tenantA, "Contoso", tenants.ModeRemediate, "11111111-0000-4000-8000-00000000000a")
	b := guardedTenant(t, tenantB, "Fabrikam", tenants.ModeAlert, "11111111-0000-4000-8000-00000000000b")
	c := guardedTenant(t, tenantC, "Northwind", tenants.ModeRemediate, "11111111-0000-4000-8000-00000000000c")
	d := guardedTenant(t, tenantD, "Tailspin", tenants.ModeRemediate, "11111111-0000-4000-8000-00000000000d")
	c.fake.Inject(graphfake.Fault{Match: "* /v1.0/*", Status: 503, RetryAfter: "1"})
	f := &fleet{}
	for _, g := range []guarded{a, b, c, d} {
		f.add(g.tenant, g.rec)
	}
	h := fanoutHost(t, Deps{Reconciler: &recorder{}, TenantID: tenant, Fleet: f})

	ans, err := h.Invoke(FuncNightlySweep, hosttest.TimerData(bindingTimer, false), hosttest.SysMetadata(FuncNightlySweep))
	if err != nil || ans.Status != 200 {
		t.Fatalf("NightlySweep: err %v status %d", err, ans.Status)
	}
	var texts []string
	if err := json.Unmarshal(ans.Outputs[bindingSweeps], &texts); err != nil || len(texts) != 4 {
		t.Fatalf("NightlySweep outputs %s (%v): want four messages", ans.Raw, err)
	}
	for _, text := range texts {
		if err := q.Put(ctx, queue, text); err != nil {
			t.Fatal(err)
		}
	}
	malformed := `{"version":1,"tenantId":"` + tenantA + `"}`
	if err := q.Put(ctx, queue, malformed); err != nil {
		t.Fatal(err)
	}
	f.remove(tenantD) // an operator takes Tailspin out of the registry before its message is delivered

	deliveries := playHost(t, ctx, q, h, queue, tenantqueue.DefaultMaxDequeueCount)

	perTenant := map[string][]delivery{}
	for _, dl := range deliveries {
		m, err := tenantqueue.Parse([]byte(dl.msg.Text))
		id := "malformed"
		if err == nil {
			id = m.TenantID
		}
		perTenant[id] = append(perTenant[id], dl)
	}
	// Contoso (remediate): one delivery, and the managed policy is created, excluding its own
	// break-glass account, in report-only mode.
	if n := len(perTenant[tenantA]); n != 1 || perTenant[tenantA][0].answer.Status != 200 {
		t.Errorf("Contoso: %d deliveries, want one that succeeds", n)
	}
	pols := a.fake.Policies()
	if len(pols) != 1 || !strings.Contains(string(pols[0]), "11111111-0000-4000-8000-00000000000a") || !strings.Contains(string(pols[0]), "enabledForReportingButNotEnforced") {
		t.Errorf("Contoso's policies %s: want the managed policy, report-only, excluding Contoso's break-glass account", pols)
	}
	// Fabrikam (alert): one delivery, nothing written, an alert.
	if n := len(perTenant[tenantB]); n != 1 || perTenant[tenantB][0].answer.Status != 200 {
		t.Errorf("Fabrikam: %d deliveries, want one that succeeds", n)
	}
	if pols := b.fake.Policies(); len(pols) != 0 || b.alerts.count() != 1 {
		t.Errorf("Fabrikam: %d policies written, %d alerts; want none and one (alert mode)", len(pols), b.alerts.count())
	}
	// Northwind (Graph unavailable): every delivery up to the last, DequeueCount 1 to 5, then the
	// poison queue with the reason.
	nw := perTenant[tenantC]
	if len(nw) != tenantqueue.DefaultMaxDequeueCount {
		t.Fatalf("Northwind: %d deliveries, want %d", len(nw), tenantqueue.DefaultMaxDequeueCount)
	}
	for i, dl := range nw {
		last := i == len(nw)-1
		if dl.msg.DequeueCount != i+1 || (dl.answer.Status == 200) != last {
			t.Errorf("Northwind delivery %d: DequeueCount %d, status %d; want %d and a failure until the last", i+1, dl.msg.DequeueCount, dl.answer.Status, i+1)
		}
	}
	if pols := c.fake.Policies(); len(pols) != 0 {
		t.Errorf("Northwind: %d policies written while Graph failed", len(pols))
	}
	// Only the last delivery alerts the failure: the earlier ones are retried.
	if n := c.alerts.count(); n != 1 {
		t.Errorf("Northwind: %d failure alerts over %d deliveries, want one, from the last", n, len(nw))
	}
	// Tailspin (removed): one delivery, dropped with a log line, nothing read or written.
	if n := len(perTenant[tenantD]); n != 1 || perTenant[tenantD][0].answer.Status != 200 ||
		!strings.Contains(perTenant[tenantD][0].answer.LogText(), "tenant "+tenantD+" is not in the registry: sweep message "+perTenant[tenantD][0].msg.ID+" dropped") {
		t.Errorf("Tailspin: %+v, want one delivery dropped with a log line", perTenant[tenantD])
	}
	if calls := d.fake.Calls(); len(calls) != 0 {
		t.Errorf("Tailspin's Graph was called %d times after it left the registry", len(calls))
	}

	// The poison queue: Northwind's message and the malformed one, each with its reason; nothing is
	// left on the sweep queue.
	poison, err := q.Peek(ctx, queue+tenantqueue.PoisonSuffix)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]tenantqueue.Poison{}
	for _, m := range poison {
		var p tenantqueue.Poison
		if err := json.Unmarshal([]byte(m.Text), &p); err != nil {
			t.Fatalf("poison message %q is not a poison record: %v", m.Text, err)
		}
		reasons[p.Reason] = p
	}
	if len(poison) != 2 {
		t.Fatalf("poison queue %+v, want two records", poison)
	}
	if p := reasons[tenantqueue.PoisonRetriesExhausted]; p.TenantID != tenantC || p.DequeueCount != tenantqueue.DefaultMaxDequeueCount || p.Detail == "" || !strings.Contains(p.Message, tenantC) {
		t.Errorf("Northwind's poison record %+v: want its tenant, the last DequeueCount, the reason in words and the message", p)
	}
	if p := reasons[tenantqueue.PoisonMalformed]; p.Message != malformed || !strings.Contains(p.Detail, "missing") {
		t.Errorf("the malformed message's poison record %+v: want the message and what is missing", p)
	}
	if left, err := q.Peek(ctx, queue); err != nil || len(left) != 0 {
		t.Errorf("sweep queue still holds %+v (%v)", left, err)
	}
}
