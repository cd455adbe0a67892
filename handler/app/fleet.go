package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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

// RecordedFleet is a Fleet that also records each tenant's last run in the app's storage, so that
// the fleet summary of any instance sees the runs every instance made (handler/fleet).
type RecordedFleet interface {
	Fleet
	// Recorded reports whether runs are recorded at all (storage is configured).
	Recorded() bool
	// StoredRun reads tenant id's last run as recorded in storage. ok is false when none is
	// recorded. An error wrapping ErrRunUnreadable is a record that is there but damaged (ok is
	// true); any other error is storage failing.
	StoredRun(ctx context.Context, id string) (run TenantRun, ok bool, err error)
}

// ErrRunUnreadable marks a tenant's last-run record that is there but cannot be read as one.
var ErrRunUnreadable = errors.New("the tenant's last-run record is unreadable")

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
	// LastRun is absent for a tenant with no run known (Cause says why).
	LastRun time.Time `json:"lastRun,omitzero"`
	Trigger string    `json:"trigger,omitempty"`
	Reasons []string  `json:"reasons"`
	Cause   string    `json:"cause,omitempty"`
}

// VerdictUnknown is a fleet row's verdict for a tenant whose last run could not finish.
const VerdictUnknown capolicy.Verdict = "unknown"

// Reading the fleet's last-run records, and the tenants a summary may judge when runs are
// recorded.
const (
	// recordReaders bounds the records read at once: 1,000 tenants read in about 32 rounds of one
	// blob read each.
	recordReaders = 32
	// judgeBudget bounds the tenants one summary judges now when runs are recorded in storage. A
	// tenant with no record has not run on any instance since it joined the registry (or storage
	// could not be read); beyond the budget such a tenant shows "never run" instead, so that a
	// summary of a fresh 1,000-tenant registry costs two rounds of fleetParallel tenants, not
	// 2,000 Graph round trips. The tenants judged are recorded, so the next summary judges the
	// next ones, and the nightly sweep records them all.
	judgeBudget = 2 * fleetParallel
)

// Words of rows that show no run.
const (
	causeUnreadable = "the last run is unknown: its record in storage is unreadable; the tenant's next run replaces it"
	causeNeverRun   = "never run: no run of this tenant is recorded yet, and this summary judged as many tenants as it may; the nightly sweep or GET ?tenant=ID judges it"
	causeNoStorage  = "the last run is unknown: storage could not be read, and this summary judged as many tenants as it may; a summary later can succeed"
)

// fleetSummary answers one row per registry tenant, from the tenant's last run. Without storage
// that is the run in this process's memory, and a tenant this process has not run yet is judged
// now, read-only (at most fleetParallel at a time). With runs recorded in storage (RecordedFleet),
// each tenant's record is read (recordReaders at a time), and the newer of it and this process's
// run is the row; a tenant with neither is judged now within judgeBudget. A damaged record is an
// unknown row, never a crash; storage that fails is read no further, and its tenants are judged
// within the budget.
func (d Deps) fleetSummary(ctx context.Context, inv *azfunc.Invocation) FleetAnswer {
	ts := d.Fleet.Tenants()
	rows := make([]FleetRow, len(ts))
	done := make([]bool, len(ts))
	fallback := make([]string, len(ts))
	budget := len(ts)
	var read, damaged, unreachable int
	var storageErr error
	if rf, ok := d.Fleet.(RecordedFleet); ok && rf.Recorded() {
		budget = judgeBudget
		stored := d.storedRuns(ctx, rf, ts)
		for i, t := range ts {
			mem, okMem := d.Fleet.LastRun(t.ID)
			s := stored[i]
			switch {
			case s.ok && s.err == nil:
				read++
				if okMem && !mem.Time.Before(s.run.Time) {
					rows[i] = fleetRow(t, mem)
				} else {
					rows[i] = fleetRow(t, s.run)
				}
				done[i] = true
				continue
			case errors.Is(s.err, ErrRunUnreadable):
				damaged++
				inv.Log.Warn("a tenant's last-run record is unreadable", zap.String("tenantId", t.ID), zap.Error(s.err))
				if !okMem {
					mem = TenantRun{Cause: causeUnreadable}
				}
				rows[i], done[i] = fleetRow(t, mem), true
				continue
			case s.err != nil:
				unreachable++
				if storageErr == nil || errors.Is(storageErr, errStorageSkipped) {
					storageErr = s.err
				}
				fallback[i] = causeNoStorage
			default:
				fallback[i] = causeNeverRun
			}
			if okMem {
				rows[i], done[i] = fleetRow(t, mem), true
			}
		}
		if storageErr != nil {
			inv.Log.Warn("the fleet's last-run records could not be read from storage", zap.Int("tenants", unreachable), zap.Error(storageErr))
		}
	} else {
		for i, t := range ts {
			if run, ok := d.Fleet.LastRun(t.ID); ok {
				rows[i], done[i] = fleetRow(t, run), true
			}
		}
	}
	sem := make(chan struct{}, fleetParallel)
	var wg sync.WaitGroup
	judged, skipped := 0, 0
	for i, t := range ts {
		if done[i] {
			continue
		}
		rec, ok := d.Fleet.Reconciler(t.ID)
		if !ok {
			rows[i] = fleetRow(t, TenantRun{Time: d.Now().UTC(), Trigger: string(reconcile.TriggerHTTP), Cause: "the tenant has no reconciler in this process"})
			continue
		}
		if judged == budget {
			rows[i] = fleetRow(t, TenantRun{Cause: fallback[i]})
			skipped++
			continue
		}
		judged++
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
	if budget == len(ts) {
		inv.Logf("fleet summary of %d tenants: %v", len(rows), ans.Counts)
	} else {
		inv.Logf("fleet summary of %d tenants: %v (%d records read, %d unreadable, %d not read from storage; %d judged now, %d shown as never run)",
			len(rows), ans.Counts, read, damaged, unreachable, judged, skipped)
	}
	return ans
}

// storedRun is one tenant's record as read from storage.
type storedRun struct {
	run TenantRun
	ok  bool
	err error
}

// errStorageSkipped stands for the records not read once storage failed.
var errStorageSkipped = errors.New("not read: storage failed for another tenant's record")

// storedRuns reads every tenant's last-run record, recordReaders at a time. Once storage fails
// (not a damaged record: the service itself), the records not yet read are not asked for: a
// summary with storage down costs one round of failing reads, not one per tenant.
func (d Deps) storedRuns(ctx context.Context, rf RecordedFleet, ts []tenants.Tenant) []storedRun {
	out := make([]storedRun, len(ts))
	sem := make(chan struct{}, recordReaders)
	var failed atomic.Bool
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if failed.Load() {
				out[i] = storedRun{err: errStorageSkipped}
				return
			}
			run, ok, err := rf.StoredRun(ctx, t.ID)
			if err != nil && !errors.Is(err, ErrRunUnreadable) {
				failed.Store(true)
			}
			out[i] = storedRun{run: run, ok: ok, err: err}
		}()
	}
	wg.Wait()
	return out
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
