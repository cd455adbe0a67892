package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/app"
	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/azfunc"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/graphfake"
	"github.com/caguard/caguard/handler/reconcile"
)

// noReconcile fails the benchmark if noise ever asks for a reconcile.
type noReconcile struct{ tb testing.TB }

func (n noReconcile) Reconcile(context.Context, reconcile.Request) (reconcile.Outcome, error) {
	n.tb.Fatal("a batch of noise asked for a reconcile")
	return reconcile.Outcome{}, nil
}

// BenchmarkAuditLogEventsNoise runs the handler's AuditLogEvents path in process, from the request
// body to the answer, on the benchmark's traffic; profile it with
//
//	go test -run '^$' -bench AuditLogEventsNoise -cpuprofile cpu.out ./scripts/benche2e
func BenchmarkAuditLogEventsNoise(b *testing.B) {
	tr, err := newTraffic(benchTenant, 8, 100, 5000, 1)
	if err != nil {
		b.Fatal(err)
	}
	filter := auditlog.Filter{TenantID: benchTenant, SelfPrincipalIDs: []string{benchSelfSP}, BreakGlassGroupIDs: []string{benchBreakGlass}}
	fns := app.Functions(app.Deps{
		Reconciler: noReconcile{b},
		Filter:     func(context.Context) auditlog.Filter { return filter },
		TenantID:   benchTenant,
		Now:        time.Now,
	})
	srv := azfunc.NewServer(zap.NewNop(), time.Minute, fns...)
	b.SetBytes(tr.bodyBytes / int64(len(tr.bodies)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		body := tr.bodies[i%len(tr.bodies)]
		r := httptest.NewRequest(http.MethodPost, "/"+app.FuncAuditLogEvents, bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "relevant=0 reconcile=false") {
			b.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
		i++
	}
}

// countReconciles counts the reconciles asked for.
type countReconciles struct{ n int }

func (c *countReconciles) Reconcile(context.Context, reconcile.Request) (reconcile.Outcome, error) {
	c.n++
	return reconcile.Outcome{}, nil
}

// The batch the round trips are measured on is relevant: it asks for exactly one reconcile.
func TestCABatchAsksForOneReconcile(t *testing.T) {
	body, err := caBatch(benchTenant, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rec := &countReconciles{}
	filter := auditlog.Filter{TenantID: benchTenant, SelfPrincipalIDs: []string{benchSelfSP}, BreakGlassGroupIDs: []string{benchBreakGlass}}
	srv := azfunc.NewServer(zap.NewNop(), time.Minute, app.Functions(app.Deps{
		Reconciler: rec,
		Filter:     func(context.Context) auditlog.Filter { return filter },
		TenantID:   benchTenant,
		Now:        time.Now,
	})...)
	r := httptest.NewRequest(http.MethodPost, "/"+app.FuncAuditLogEvents, bytes.NewReader(body))
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "relevant=1 reconcile=true") || rec.n != 1 {
		t.Fatalf("status %d, %d reconciles: %s", w.Code, rec.n, w.Body.String())
	}
}

// The tenant the batch is measured against is compliant, so the reconcile has nothing to write and
// the figure is that of a run that writes nothing.
func TestBenchScenarioIsCompliant(t *testing.T) {
	sc := benchScenario()
	var ps []capolicy.Policy
	for _, raw := range sc.Policies {
		p, err := capolicy.ParsePolicy(raw)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	members := map[string][]string{}
	for id, g := range sc.Groups {
		for _, m := range g.Members {
			members[id] = append(members[id], m.ID)
		}
	}
	rep := capolicy.Evaluate(capolicy.Tenant{Policies: ps, GroupMembers: members},
		capolicy.Config{BreakGlassGroupIDs: []string{benchBreakGlass}, BreakGlassUserIDs: []string{benchBGUser1, benchBGUser2}})
	if !rep.Compliant {
		t.Fatalf("verdict %s: %s", rep.Verdict, rep.Summary)
	}
	fake, err := graphfake.New(graphfake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Seed(sc); err != nil {
		t.Fatal(err)
	}
}
