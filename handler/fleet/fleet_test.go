package fleet

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"go.uber.org/zap/zaptest"

	"github.com/caguard/caguard/handler/app"
	"github.com/caguard/caguard/handler/graph"
	"github.com/caguard/caguard/handler/graphfake"
	"github.com/caguard/caguard/handler/reconcile"
	"github.com/caguard/caguard/handler/tenants"
)

const (
	calm      = "10000000-0000-4000-8000-000000000001"
	throttled = "20000000-0000-4000-8000-000000000002"
)

// newTestFleet serves the tenants from one emulated Graph and authority, each tenant signing in
// with the app's secret through azidentity, as locally.
func newTestFleet(t *testing.T, fo graphfake.FleetOptions, budget time.Duration, ids ...string) (*Fleet, *graphfake.Fleet, *int32) {
	t.Helper()
	gf, err := graphfake.NewFleet(fo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gf.Close)
	reg := tenants.Registry{}
	for _, id := range ids {
		if _, err := gf.Add(id, graphfake.Scenario{}, graphfake.Options{}); err != nil {
			t.Fatal(err)
		}
		reg.Tenants = append(reg.Tenants, tenants.Tenant{ID: id, DisplayName: "T " + id[:2], Mode: tenants.ModeAlert})
	}
	var built int32
	f, err := New(Options{
		Registry: reg,
		Credential: func(id string) (azcore.TokenCredential, error) {
			atomic.AddInt32(&built, 1)
			return tenants.Credential(id, tenants.CredentialOptions{ClientID: gf.ClientID(), ClientSecret: gf.ClientSecret(),
				AuthorityHost: gf.AuthorityURL(), Transport: gf.Client()})
		},
		Graph:    graph.Options{BaseURL: gf.GraphURL(), RetryBudget: budget, RetryBaseDelay: 50 * time.Millisecond, Logger: zaptest.NewLogger(t)},
		Settings: Settings{Log: zaptest.NewLogger(t)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, gf, &built
}

// A throttled tenant spends its retry budget alone: the calm tenant, run at the same time, finishes
// long before, and the throttled one fails with the cause in words, retriable.
func TestAThrottledTenantDoesNotDelayTheOthers(t *testing.T) {
	f, gf, built := newTestFleet(t, graphfake.FleetOptions{}, 2*time.Second, calm, throttled)
	if n := atomic.LoadInt32(built); n != 0 {
		t.Fatalf("%d tenants were built before their first run, want none", n)
	}
	srv, _ := gf.Tenant(throttled)
	srv.Inject(graphfake.Fault{Match: "* /v1.0/*", Status: http.StatusTooManyRequests, RetryAfter: "1"})

	var wg sync.WaitGroup
	var calmTook time.Duration
	var throttledErr error
	start := time.Now()
	for _, id := range []string{throttled, calm} {
		rec, ok := f.Reconciler(id)
		if !ok {
			t.Fatalf("no reconciler for %s", id)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := rec.Reconcile(context.Background(), reconcile.Request{Trigger: reconcile.TriggerHTTP})
			if id == calm {
				calmTook = time.Since(start)
				if err != nil {
					t.Errorf("calm tenant: %v", err)
				}
			} else {
				throttledErr = err
			}
		}()
	}
	wg.Wait()
	if calmTook > time.Second {
		t.Errorf("the calm tenant took %v next to a throttled one, want well under its 1 s Retry-After", calmTook)
	}
	if throttledErr == nil {
		t.Fatal("the throttled tenant's run succeeded")
	}
	run, ok := f.LastRun(throttled)
	if !ok || !run.Retriable || !strings.Contains(run.Cause, "throttling") {
		t.Errorf("throttled tenant's last run: %+v, want a retriable cause naming the throttling", run)
	}
	if run, ok := f.LastRun(calm); !ok || run.Cause != "" || run.Verdict == "" {
		t.Errorf("calm tenant's last run: %+v", run)
	}
	if _, ok := f.Reconciler("30000000-0000-4000-8000-000000000003"); ok {
		t.Error("a tenant outside the registry has a reconciler")
	}
	var _ app.Fleet = f
}

// The gate lets no more than its slots through at once, and frees a slot when the answer is read.
func TestGateBoundsRequestsInFlight(t *testing.T) {
	var now, peak int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := atomic.AddInt32(&now, 1)
		for {
			p := atomic.LoadInt32(&peak)
			if n <= p || atomic.CompareAndSwapInt32(&peak, p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		atomic.AddInt32(&now, -1)
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	c := &http.Client{Transport: newGate(http.DefaultTransport, 3)}
	var wg sync.WaitGroup
	for range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Get(srv.URL)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
		}()
	}
	wg.Wait()
	if p := atomic.LoadInt32(&peak); p != 3 {
		t.Errorf("peak in flight: %d, want 3", p)
	}
	// A request whose context ends while it waits for a slot gives up.
	g := newGate(http.DefaultTransport, 1)
	g.slots <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if _, err := g.RoundTrip(req); err == nil {
		t.Error("a request waiting for a slot outlived its context")
	}
}
