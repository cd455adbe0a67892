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
