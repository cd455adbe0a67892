package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caguard/caguard/handler/app"
	"github.com/caguard/caguard/handler/azfunc"
	"github.com/caguard/caguard/handler/azfunc/hosttest"
	"github.com/caguard/caguard/handler/blobstate"
	"github.com/caguard/caguard/handler/blobstate/azuritetest"
	"github.com/caguard/caguard/handler/graph"
	"github.com/caguard/caguard/handler/graphfake"
	"github.com/caguard/caguard/handler/reconcile"
	"github.com/caguard/caguard/handler/tenants"
)

// The last-run records: every test here runs Fleets ("instances") against the same emulated Graph
// and, through blobstate, the same Azurite storage, as Flex Consumption runs instances against one
// storage account.

const third = "30000000-0000-4000-8000-000000000003"

// emulatedGraph serves ids from one emulated Graph and authority.
func emulatedGraph(t *testing.T, ids ...string) (*graphfake.Fleet, tenants.Registry) {
	t.Helper()
	gf, err := graphfake.NewFleet(graphfake.FleetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gf.Close)
	var reg tenants.Registry
	for _, id := range ids {
		if _, err := gf.Add(id, graphfake.Scenario{}, graphfake.Options{}); err != nil {
			t.Fatal(err)
		}
		reg.Tenants = append(reg.Tenants, tenants.Tenant{ID: id, DisplayName: "T " + id[:2], Mode: tenants.ModeAlert})
	}
	return gf, reg
}

// instance is one caguard instance's Fleet, recording runs in runs (nil: memory only).
func instance(t *testing.T, gf *graphfake.Fleet, reg tenants.Registry, runs RunRecords, log *zap.Logger) *Fleet {
	t.Helper()
	o := Options{
		Registry: reg,
		Credential: func(id string) (azcore.TokenCredential, error) {
			return tenants.Credential(id, tenants.CredentialOptions{ClientID: gf.ClientID(), ClientSecret: gf.ClientSecret(),
				AuthorityHost: gf.AuthorityURL(), Transport: gf.Client()})
		},
		Graph:    graph.Options{BaseURL: gf.GraphURL(), RetryBudget: 2 * time.Second, RetryBaseDelay: 50 * time.Millisecond, Logger: zaptest.NewLogger(t)},
		Settings: Settings{Log: log},
		Runs:     runs,
	}
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// storage is one instance's view of the container, as handler/main wires it.
func storage(t *testing.T, a *azuritetest.Azurite, containerName string) *blobstate.Store {
	t.Helper()
	s, err := blobstate.New(blobstate.Options{ServiceURL: a.BlobEndpoint(), AccountName: azuritetest.Account, AccountKey: azuritetest.Key, Container: containerName})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// row is a fleet summary row as an HTTP caller reads it.
type row struct {
	TenantID, Verdict, Trigger, Cause string
	LastRun                           *time.Time
	Reasons                           []string
}

// summary asks f's Evaluate for the fleet summary, through the custom-handler protocol.
func summary(t *testing.T, f *Fleet) map[string]row {
	t.Helper()
	srv := httptest.NewServer(azfunc.NewServer(zaptest.NewLogger(t), time.Minute, app.Functions(app.Deps{Fleet: f, Now: time.Now})...))
	defer srv.Close()
	a, err := (&hosttest.Host{Base: srv.URL}).Invoke("Evaluate", hosttest.HTTPData("req", http.MethodGet, ""), hosttest.SysMetadata("Evaluate"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.HTTP("res")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("fleet summary: %d %s", res.StatusCode, res.Body)
	}
	var ans struct{ Tenants []row }
	if err := json.Unmarshal([]byte(res.Body), &ans); err != nil {
		t.Fatalf("%v: %s", err, res.Body)
	}
	out := map[string]row{}
	for _, r := range ans.Tenants {
		out[r.TenantID] = r
	}
	if len(out) != len(f.Tenants()) {
		t.Fatalf("fleet summary: %d rows, want %d: %s", len(out), len(f.Tenants()), res.Body)
	}
	return out
}

func run(t *testing.T, f *Fleet, id string, trigger reconcile.Trigger) error {
	t.Helper()
	rec, ok := f.Reconciler(id)
	if !ok {
		t.Fatalf("no reconciler for %s", id)
	}
	_, err := rec.Reconcile(context.Background(), reconcile.Request{Trigger: trigger})
	return err
}

func graphCalls(t *testing.T, gf *graphfake.Fleet, id string) int {
	t.Helper()
	s, ok := gf.Tenant(id)
	if !ok {
		t.Fatalf("no emulated tenant %s", id)
	}
	return len(s.Calls())
}

// A tenant run on one instance, finished or failed, is what another instance's fleet summary shows,
// without judging it again; a tenant no instance has run is judged now and recorded; the newer of
// an instance's own run and the record is the row.
func TestARunOnOneInstanceIsSeenByTheFleetSummaryOfAnother(t *testing.T) {
	az := azuritetest.Start(t)
	gf, reg := emulatedGraph(t, calm, throttled, third)
	srv, _ := gf.Tenant(throttled)
	srv.Inject(graphfake.Fault{Match: "* /v1.0/*", Status: http.StatusTooManyRequests, RetryAfter: "1"})
	a := instance(t, gf, reg, storage(t, az, "caguard"), zaptest.NewLogger(t))
	b := instance(t, gf, reg, storage(t, az, "caguard"), zaptest.NewLogger(t))

	if err := run(t, a, calm, reconcile.TriggerSweep); err != nil {
		t.Fatal(err)
	}
	if err := run(t, a, throttled, reconcile.TriggerSweep); err == nil {
		t.Fatal("the throttled tenant's run succeeded")
	}
	runA, _ := a.LastRun(calm)
	before := map[string]int{calm: graphCalls(t, gf, calm), throttled: graphCalls(t, gf, throttled), third: graphCalls(t, gf, third)}

	rows := summary(t, b)
	if r := rows[calm]; r.Verdict != string(runA.Verdict) || r.Trigger != "nightly-sweep" || r.LastRun == nil || !r.LastRun.Equal(runA.Time) {
		t.Errorf("calm tenant on instance B: %+v, want instance A's sweep (%s at %s)", r, runA.Verdict, runA.Time)
	}
	if r := rows[throttled]; r.Verdict != "unknown" || !strings.Contains(r.Cause, "throttling") || r.Trigger != "nightly-sweep" {
		t.Errorf("throttled tenant on instance B: %+v, want instance A's failed sweep with its cause", r)
	}
	if r := rows[third]; r.Trigger != "http" || r.Verdict == "unknown" || r.Cause != "" {
		t.Errorf("tenant no instance had run: %+v, want it judged now", r)
	}
	for _, id := range []string{calm, throttled} {
		if n := graphCalls(t, gf, id) - before[id]; n != 0 {
			t.Errorf("instance B's summary sent %d Graph requests for %s, whose run is recorded; want none", n, id)
		}
	}
	if graphCalls(t, gf, third) == before[third] {
		t.Errorf("the unrun tenant was not judged")
	}
	// B recorded what it judged: A now shows it without judging it.
	runB, _ := b.LastRun(third)
	n := graphCalls(t, gf, third)
	if r := summary(t, a)[third]; r.Trigger != "http" || r.LastRun == nil || !r.LastRun.Equal(runB.Time) || graphCalls(t, gf, third) != n {
		t.Errorf("instance A's row for the tenant B judged: %+v, want B's run, without a Graph request", r)
	}

	// An older record does not hide an instance's own newer run; for the other instance the record
	// is the last run it knows.
	old := blobstate.LastRun{Time: runB.Time.Add(-time.Hour), Trigger: "nightly-sweep", Verdict: "compliant"}
	if err := storage(t, az, "caguard").WriteLastRun(context.Background(), third, old); err != nil {
		t.Fatal(err)
	}
	if r := summary(t, b)[third]; r.Trigger != "http" || !r.LastRun.Equal(runB.Time) {
		t.Errorf("instance B's row: %+v, want its own newer run", r)
	}
	if r := summary(t, a)[third]; r.Trigger != "nightly-sweep" || r.Verdict != "compliant" || !r.LastRun.Equal(old.Time) {
		t.Errorf("instance A's row: %+v, want the record", r)
	}
}

// A damaged record reads as an unknown row saying so, and costs no Graph request; the summary
// answers every other tenant as usual, and the tenant's next run replaces the record.
func TestADamagedRecordIsAnUnknownRow(t *testing.T) {
	az := azuritetest.Start(t)
	gf, reg := emulatedGraph(t, calm, third)
	store := storage(t, az, "caguard")
	cred, err := container.NewSharedKeyCredential(azuritetest.Account, azuritetest.Key)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(az.BlobEndpoint()+"/caguard", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.NewBlockBlobClient(blobstate.LastRunBlob(calm)).Upload(context.Background(),
		streaming.NopCloser(strings.NewReader(`{"version":1,"time":"2026-12-07T03:00:00Z","trigger":"http","verdict":"compliant","reasons":[]`)), &blockblob.UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	f := instance(t, gf, reg, store, zaptest.NewLogger(t))
	rows := summary(t, f)
	if r := rows[calm]; r.Verdict != "unknown" || !strings.Contains(r.Cause, "unreadable") || r.LastRun != nil {
		t.Errorf("tenant with a damaged record: %+v, want unknown, its record unreadable, no last run", r)
	}
	if graphCalls(t, gf, calm) != 0 {
		t.Error("the summary judged the tenant whose record is damaged")
	}
	if r := rows[third]; r.Verdict == "unknown" {
		t.Errorf("the other tenant: %+v, want it judged", r)
	}
	if err := run(t, f, calm, reconcile.TriggerSweep); err != nil {
		t.Fatal(err)
	}
	if r, found, err := store.ReadLastRun(context.Background(), calm); err != nil || !found || r.Trigger != "nightly-sweep" {
		t.Errorf("after a run: %+v, %v, %v; want the run's record in place of the damaged one", r, found, err)
	}
}

// Storage that does not answer never fails a run: the record's write is a warning, the run's result
// stands and is kept in memory. The summary then reads no record and judges the tenants now.
func TestStorageDownWhileRecordingDoesNotFailTheRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/" + azuritetest.Account
	ln.Close() // nothing listens there now
	store, err := blobstate.New(blobstate.Options{ServiceURL: down, AccountName: azuritetest.Account, AccountKey: azuritetest.Key})
	if err != nil {
		t.Fatal(err)
	}
	gf, reg := emulatedGraph(t, calm, third)
	core, logs := observer.New(zapcore.WarnLevel)
	f := instance(t, gf, reg, store, zap.New(core))
	start := time.Now()
	if err := run(t, f, calm, reconcile.TriggerSweep); err != nil {
		t.Fatalf("the run failed with storage down: %v", err)
	}
	if took := time.Since(start); took > recordTimeout+2*time.Second {
		t.Errorf("the run took %v with storage down, want the record's write bounded by %v", took, recordTimeout)
	}
	if r, ok := f.LastRun(calm); !ok || r.Verdict == "" {
		t.Errorf("last run in memory: %+v, %v", r, ok)
	}
	if n := logs.FilterMessageSnippet("not recorded").Len(); n != 1 {
		t.Errorf("%d warnings of the lost record, want 1: %v", n, logs.All())
	}
	rows := summary(t, f)
	if r := rows[calm]; r.Trigger != "nightly-sweep" || r.Verdict == "unknown" {
		t.Errorf("the run on this instance: %+v, want its sweep from memory", r)
	}
	if r := rows[third]; r.Trigger != "http" || r.Verdict == "unknown" {
		t.Errorf("the tenant not run: %+v, want it judged now (storage down, within the budget)", r)
	}
}

// Without records, a summary judges at most its budget of tenants and shows the others as never
// run; what it judged is recorded, so the next summary judges the rest.
func TestTheSummaryJudgesTenantsWithoutARecordWithinABudget(t *testing.T) {
	az := azuritetest.Start(t)
	const n = 40
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i+1, i+1)
	}
	gf, reg := emulatedGraph(t, ids...)
	f := instance(t, gf, reg, storage(t, az, "caguard"), zaptest.NewLogger(t))
	count := func(rows map[string]row) (judged, never int) {
		for _, r := range rows {
			switch {
			case strings.HasPrefix(r.Cause, "never run") && r.LastRun == nil && r.Verdict == "unknown":
				never++
			case r.Trigger == "http" && r.Cause == "":
				judged++
			default:
				t.Errorf("row %+v is neither judged nor never run", r)
			}
		}
		return judged, never
	}
	if judged, never := count(summary(t, f)); judged != 32 || never != n-32 {
		t.Errorf("first summary: %d judged, %d never run; want 32 and %d", judged, never, n-32)
	}
	if judged, never := count(summary(t, f)); judged != n || never != 0 {
		t.Errorf("second summary: %d judged, %d never run; want all %d judged", judged, never, n)
	}
	var calls int
	for _, id := range ids {
		calls += graphCalls(t, gf, id)
	}
	third := summary(t, f)
	var after int
	for _, id := range ids {
		after += graphCalls(t, gf, id)
	}
	if judged, _ := count(third); judged != n || after != calls {
		t.Errorf("third summary: %d rows from runs, %d Graph requests; want %d and none", judged, after-calls, n)
	}
}

// BenchmarkFleetSummaryFromRecords is the fleet summary of 1,000 tenants whose last runs are all
// recorded in Azurite by another instance: one blob read per tenant, recordReaders at a time, and
// no Graph request (go test -run ^$ -bench FleetSummaryFromRecords ./handler/fleet/).
func BenchmarkFleetSummaryFromRecords(b *testing.B) {
	az := azuritetest.Start(b)
	gf, err := graphfake.NewFleet(graphfake.FleetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer gf.Close()
	var reg tenants.Registry
	for i := range 1000 {
		reg.Tenants = append(reg.Tenants, tenants.Tenant{ID: fmt.Sprintf("%08x-0000-4000-8000-%012x", i+1, i+1), DisplayName: "T", Mode: tenants.ModeAlert})
	}
	writer, err := blobstate.New(blobstate.Options{ServiceURL: az.BlobEndpoint(), AccountName: azuritetest.Account, AccountKey: azuritetest.Key})
	if err != nil {
		b.Fatal(err)
	}
	at := time.Now().Add(-time.Hour)
	sem := make(chan struct{}, 32)
	errs := make(chan error, len(reg.Tenants))
	for _, tn := range reg.Tenants {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- writer.WriteLastRun(context.Background(), tn.ID, blobstate.LastRun{Time: at, Trigger: "nightly-sweep", Verdict: "non-compliant",
				Reasons: []string{"the policy is report-only", "a break-glass account is not excluded"}})
		}()
	}
	for range reg.Tenants {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	f, err := New(Options{Registry: reg, Credential: func(string) (azcore.TokenCredential, error) { return nil, fmt.Errorf("no Graph in this benchmark") },
		Runs: writer, Settings: Settings{Log: zap.NewNop()}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(azfunc.NewServer(zap.NewNop(), time.Minute, app.Functions(app.Deps{Fleet: f, Now: time.Now})...))
	defer srv.Close()
	host := &hosttest.Host{Base: srv.URL}
	for b.Loop() {
		a, err := host.Invoke("Evaluate", hosttest.HTTPData("req", http.MethodGet, ""), hosttest.SysMetadata("Evaluate"))
		if err != nil {
			b.Fatal(err)
		}
		res, err := a.HTTP("res")
		if err != nil || res.StatusCode != http.StatusOK || !strings.Contains(res.Body, `"non-compliant":1000`) {
			b.Fatalf("fleet summary: %v %d %.300s", err, res.StatusCode, res.Body)
		}
	}
}

// A failed run's record holds the cause in caguard's words: not the Graph answer that failed it,
// whatever that answer carries.
func TestAFailedRunsRecordHoldsNoGraphAnswer(t *testing.T) {
	az := azuritetest.Start(t)
	gf, reg := emulatedGraph(t, calm)
	const marker = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.leaked"
	for _, status := range []int{http.StatusForbidden, http.StatusBadRequest} {
		srv, _ := gf.Tenant(calm)
		srv.Inject(graphfake.Fault{Match: "* /v1.0/*", Status: status,
			Body: `{"error":{"code":"Authorization_RequestDenied","message":"` + marker + `","innerError":{"token":"` + marker + `"}}}`})
		store := storage(t, az, "caguard")
		f := instance(t, gf, reg, store, zaptest.NewLogger(t))
		if err := run(t, f, calm, reconcile.TriggerSweep); err == nil {
			t.Fatalf("HTTP %d: the run succeeded", status)
		}
		srv.Reset()
		data, found, err := store.ReadBlob(context.Background(), blobstate.LastRunBlob(calm), 1<<20)
		if err != nil || !found {
			t.Fatalf("HTTP %d: no record: %v", status, err)
		}
		if strings.Contains(string(data), marker) || strings.Contains(string(data), "innerError") {
			t.Errorf("HTTP %d: the record holds Graph's answer: %s", status, data)
		}
		if r, _, err := store.ReadLastRun(context.Background(), calm); err != nil || r.Cause == "" {
			t.Errorf("HTTP %d: record %+v, %v; want the cause in words", status, r, err)
		}
	}
}
