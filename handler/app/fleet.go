package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/azfunc"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/reconcile"
	"github.com/caguard/caguard/handler/report"
	"github.com/caguard/caguard/handler/tenants"
)

// Fleet is the set of tenants one deployment guards, read from the tenant registry, with one
// reconciler per tenant. Deps.Fleet nil means the single tenant of Deps.Reconciler, exactly as
// before the registry existed.
type Fleet interface {
	// Tenants lists the registry's tenants, in the registry's order.
	Tenants() []tenants.Tenant
	// Reconciler returns the reconciler of tenant id (case-insensitive); ok is false when the tenant
	// is not in the registry.
	Reconciler(id string) (r Reconciler, ok bool)
	// LastRun is the last run of tenant id that this process saw finish or fail, ok false before
	// the first.
	LastRun(id string) (run TenantRun, ok bool)
}

// TenantRun is what one run of one tenant found: a verdict, or, when the tenant could not be judged
// (not consented, throttled past the retry budget, Graph down), the cause in words.
type TenantRun struct {
	Time    time.Time        `json:"time"`
	Trigger string           `json:"trigger"`
	Verdict capolicy.Verdict `json:"verdict,omitempty"`
	// Reasons are why the tenant fails the control: the closest policy's reasons, else the summary.
	Reasons []string `json:"reasons"`
	// Cause says why the run could not finish; empty when it did.
	Cause string `json:"cause,omitempty"`
	// Retriable is true when a retry can help the failed run.
	Retriable bool `json:"-"`
}

// fleetParallel bounds the tenants one invocation runs at once: an audit batch naming many tenants,
// or a fleet summary judging those this process has not run yet. Each tenant's own Graph requests
// are bounded again by its client (handler/fleet).
const fleetParallel = 16

// RunOf is the TenantRun of one finished or failed run; handler/fleet records it as the tenant's
// last run.
func RunOf(trigger reconcile.Trigger, at time.Time, out reconcile.Outcome, err error) TenantRun {
	run := TenantRun{Time: at.UTC(), Trigger: string(trigger), Reasons: []string{}}
	if err != nil {
		run.Cause, run.Retriable = causeOf(err), azfunc.IsRetriable(err)
		return run
	}
	run.Verdict = out.Report.Verdict
	if out.Report.Verdict == capolicy.VerdictCompliant {
		return run
	}
	for _, p := range out.Report.Policies {
		if p.ID != out.Report.Closest {
			continue
		}
		for _, r := range p.Reasons {
			run.Reasons = append(run.Reasons, r.Message)
		}
	}
	if len(run.Reasons) == 0 && out.Report.Summary != "" {
		run.Reasons = append(run.Reasons, out.Report.Summary)
	}
	return run
}

// causeOf says in words why a run failed: the words of a reconcile.Failure (or any error that
// describes itself), which name what failed without a token or a raw Graph answer.
func causeOf(err error) string {
	var d interface{ Describe() string }
	if errors.As(err, &d) {
		if w := strings.TrimSpace(d.Describe()); w != "" {
			return w
		}
	}
	return azfunc.PublicMessage(err)
}

// tenantRetryError fails an audit invocation in which some tenants failed in a way a retry can fix.
// The host then retries the whole batch; the tenants that succeeded run again and, being
// level-triggered, write nothing the second time.
type tenantRetryError struct {
	tenants []string
	err     error
}

func (e *tenantRetryError) Error() string {
	return fmt.Sprintf("%d tenant(s) failed retriably (%s): %v", len(e.tenants), strings.Join(e.tenants, ", "), e.err)
}
func (e *tenantRetryError) Unwrap() error   { return e.err }
func (e *tenantRetryError) Retriable() bool { return true }

// routeAudit splits the relevant records of a batch by tenant and runs each tenant's reconciler
// once, at most fleetParallel at a time. A tenant that fails never stops the others: its cause is
// logged as that tenant's finding (and, the run being one that may act, alerted by its reconciler).
// Only when a tenant failed retriably does the invocation fail, so that the host's retry policy
// gives it another chance; a permanent failure (not consented, a permission missing) is left to
// the finding, since retrying the same batch cannot fix it.
func (d Deps) routeAudit(ctx context.Context, inv *azfunc.Invocation, hints []auditlog.Hint) (*azfunc.Result, error) {
	byTenant := map[string][]auditlog.Hint{}
	var order []string
	for _, h := range hints {
		if _, seen := byTenant[h.TenantID]; !seen {
			order = append(order, h.TenantID)
		}
		byTenant[h.TenantID] = append(byTenant[h.TenantID], h)
	}
	type result struct {
		tenant tenants.Tenant
		out    reconcile.Outcome
		err    error
		ran    bool
	}
	results := make([]result, len(order))
	sem := make(chan struct{}, fleetParallel)
	var wg sync.WaitGroup
	for i, id := range order {
		t, ok := findTenant(d.Fleet.Tenants(), id)
		rec, okRec := d.Fleet.Reconciler(id)
		if !ok || !okRec {
			// The filter only lets registry tenants through; a registry read anew could differ.
			inv.Log.Warn("audit records of a tenant not in the registry are skipped", zap.String("tenantId", id), zap.Int("records", len(byTenant[id])))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out, err := rec.Reconcile(ctx, reconcile.Request{Trigger: reconcile.TriggerAuditEvent, Act: true, Hints: byTenant[id]})
			results[i] = result{tenant: t, out: out, err: err, ran: true}
		}()
	}
	wg.Wait()
	var retry []string
	var firstRetriable error
	for _, r := range results {
		if !r.ran {
			continue
		}
		if r.err != nil {
			retriable := azfunc.IsRetriable(r.err)
			inv.Log.Warn("tenant could not be judged", zap.String("tenantId", r.tenant.ID), zap.String("tenantName", r.tenant.DisplayName),
				zap.String("cause", causeOf(r.err)), zap.Bool("retriable", retriable), zap.Error(r.err))
			if retriable {
				retry = append(retry, r.tenant.ID)
				if firstRetriable == nil {
					firstRetriable = r.err
				}
			}
			continue
		}
		inv.Logf("tenant %s (%s):", r.tenant.ID, r.tenant.DisplayName)
		logOutcome(inv, r.out)
	}
	if len(retry) > 0 {
		return nil, &tenantRetryError{tenants: retry, err: firstRetriable}
	}
	return &azfunc.Result{}, nil
}

func findTenant(ts []tenants.Tenant, id string) (tenants.Tenant, bool) {
	id = strings.ToLower(strings.TrimSpace(id))
	for _, t := range ts {
		if t.ID == id {
			return t, true
		}
	}
	return tenants.Tenant{}, false
}

// FleetAnswer is Evaluate's answer without ?tenant= when a registry is in use: one row per tenant.
type FleetAnswer struct {
	EvaluatedAt time.Time `json:"evaluatedAt"`
	// Counts is the number of tenants per verdict, "unknown" for those that could not be judged.
	Counts  map[string]int `json:"counts"`
	Tenants []FleetRow     `json:"tenants"`
}

// FleetRow is one tenant of the fleet summary.
type FleetRow struct {
	TenantID    string `json:"tenantId"`
	DisplayName string `json:"displayName"`
	Mode        string `json:"mode"`
	// Verdict is the last run's verdict, "unknown" when it could not be judged (Cause says why).
	Verdict   capolicy.Verdict `json:"verdict"`
	Compliant bool             `json:"compliant"`
	LastRun   time.Time        `json:"lastRun"`
	Trigger   string           `json:"trigger"`
	Reasons   []string         `json:"reasons"`
	Cause     string           `json:"cause,omitempty"`
}

// VerdictUnknown is a fleet row's verdict for a tenant whose last run could not finish.
const VerdictUnknown capolicy.Verdict = "unknown"

// fleetSummary answers one row per registry tenant, from the tenant's last run in this process; a
// tenant this process has not run yet is judged now, read-only (at most fleetParallel at a time).
// The last runs live in the memory of the instance that answers: another instance may have run a
// tenant more recently.
func (d Deps) fleetSummary(ctx context.Context, inv *azfunc.Invocation) FleetAnswer {
	ts := d.Fleet.Tenants()
	rows := make([]FleetRow, len(ts))
	sem := make(chan struct{}, fleetParallel)
	var wg sync.WaitGroup
	for i, t := range ts {
		run, ok := d.Fleet.LastRun(t.ID)
		if ok {
			rows[i] = fleetRow(t, run)
			continue
		}
		rec, ok := d.Fleet.Reconciler(t.ID)
		if !ok {
			rows[i] = fleetRow(t, TenantRun{Time: d.Now().UTC(), Trigger: string(reconcile.TriggerHTTP), Cause: "the tenant has no reconciler in this process"})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out, err := rec.Reconcile(ctx, reconcile.Request{Trigger: reconcile.TriggerHTTP})
			run, ok := d.Fleet.LastRun(t.ID)
			if !ok {
				run = RunOf(reconcile.TriggerHTTP, d.Now(), out, err)
			}
			rows[i] = fleetRow(t, run)
		}()
	}
	wg.Wait()
	ans := FleetAnswer{EvaluatedAt: d.Now().UTC(), Counts: map[string]int{}, Tenants: rows}
	for _, r := range rows {
		ans.Counts[string(r.Verdict)]++
	}
	inv.Logf("fleet summary of %d tenants: %v", len(rows), ans.Counts)
	return ans
}

func fleetRow(t tenants.Tenant, run TenantRun) FleetRow {
	r := FleetRow{TenantID: t.ID, DisplayName: t.DisplayName, Mode: t.Mode, Verdict: run.Verdict,
		Compliant: run.Verdict == capolicy.VerdictCompliant, LastRun: run.Time, Trigger: run.Trigger, Reasons: run.Reasons, Cause: run.Cause}
	if run.Cause != "" || r.Verdict == "" {
		r.Verdict = VerdictUnknown
	}
	if r.Reasons == nil {
		r.Reasons = []string{}
	}
	return r
}

// fleetReport is the fleet summary as the HTML report's input.
func fleetReport(a FleetAnswer) report.FleetInput {
	in := report.FleetInput{EvaluatedAt: a.EvaluatedAt}
	for _, r := range a.Tenants {
		in.Tenants = append(in.Tenants, report.FleetTenant{ID: r.TenantID, Name: r.DisplayName, Mode: r.Mode,
			Verdict: r.Verdict, LastRun: r.LastRun, Reasons: r.Reasons, Cause: r.Cause})
	}
	return in
}
