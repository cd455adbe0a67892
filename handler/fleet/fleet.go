// Package fleet wires one reconciler per tenant of the tenant registry: its own Graph client signed
// in as caguard's multi-tenant app in that tenant, its own break-glass accounts and mode, its own
// writer lease and ownership record. It is app.Fleet.
//
// Contract:
//   - Nothing is built until a tenant is first run: a registry of a thousand tenants costs a
//     thousand small structs at start, and each tenant's client, credential and storage handles come
//     into being on its first run. A tenant whose parts cannot be built (a credential refused at
//     construction, storage settings wrong) fails that tenant's runs with the cause, alone.
//   - Every tenant's Graph requests share one transport (one connection pool) and pass a gate of
//     MaxInFlight requests at a time per tenant, so one tenant's burst or retries neither exhaust the
//     pool for the others nor exceed what a single tenant may ask of Graph at once.
//   - Each run's result is kept as the tenant's last run (app.TenantRun), in this process's memory,
//     and, with Options.Runs, recorded in the app's storage, so that the fleet summary of any
//     instance sees the runs of all. Recording is best effort: a failed write is a warning and never
//     fails the run.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/app"
	"github.com/caguard/caguard/handler/blobstate"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/graph"
	"github.com/caguard/caguard/handler/reconcile"
	"github.com/caguard/caguard/handler/tenants"
)

// DefaultMaxInFlight is the number of Graph requests one tenant may have in flight at once. A run
// needs at most three round trips, mostly one after the other; four leaves room for the exclusion
// reads without letting a tenant's retries crowd the shared pool.
const DefaultMaxInFlight = 4

// Options configure a Fleet.
type Options struct {
	Registry tenants.Registry
	// Credential returns the credential of the app in a tenant (tenants.Credential).
	Credential func(tenantID string) (azcore.TokenCredential, error)
	// Graph is every tenant's Graph client before its own parts: BaseURL, RetryBudget, retry and
	// attempt settings, Logger. TenantID, Credential and HTTPClient are set per tenant.
	Graph graph.Options
	// Transport carries every tenant's Graph requests; nil means http.DefaultTransport.
	Transport http.RoundTripper
	// MaxInFlight bounds each tenant's Graph requests in flight; default DefaultMaxInFlight.
	MaxInFlight int
	// Settings are what every tenant's reconciler shares.
	Settings Settings
	// State returns a tenant's writer lock and ownership record (blob storage, one blob per
	// tenant); nil, or nil values, mean this process's memory.
	State func(tenantID string) (reconcile.WriterLock, reconcile.Ownership, error)
	// Runs records each tenant's last run in the app's storage (blobstate.Store); nil means this
	// process's memory alone.
	Runs RunRecords
}

// RunRecords keeps one last-run record per tenant (blobstate.Store).
type RunRecords interface {
	WriteLastRun(ctx context.Context, tenantID string, r blobstate.LastRun) error
	ReadLastRun(ctx context.Context, tenantID string) (blobstate.LastRun, bool, error)
}

var _ RunRecords = (*blobstate.Store)(nil)

// recordTimeout bounds the write of a run's record. It runs after the run, even when the
// invocation's deadline has passed, so that a run that ended in a timeout is recorded too.
const recordTimeout = 5 * time.Second

// Settings are the parts of a reconciler that every tenant shares (the global app settings); the
// break-glass accounts, the mode and the identity are the tenant's own.
type Settings struct {
	Sinks []reconcile.AlertSink
	// Policy holds the global rules (target apps, custom controls, managed policy name); its
	// break-glass lists are replaced by each tenant's.
	Policy         capolicy.Config
	Controls       []capolicy.Control
	ExclusionMode  exclusion.Mode
	ExclusionGrace time.Duration
	ReadBackDelays []time.Duration
	Now            func() time.Time
	Log            *zap.Logger
}

// Fleet is the registry's tenants, each with its reconciler. It is safe for concurrent use.
type Fleet struct {
	o       Options
	order   []tenants.Tenant
	members map[string]*member
}

var _ app.RecordedFleet = (*Fleet)(nil)

// New checks the options and prepares one member per tenant; it builds no client.
func New(o Options) (*Fleet, error) {
	if len(o.Registry.Tenants) == 0 {
		return nil, errors.New("fleet: the registry has no tenant")
	}
	if o.Credential == nil {
		return nil, errors.New("fleet: no credential for the tenants")
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.Transport == nil {
		o.Transport = http.DefaultTransport
	}
	if o.Settings.Now == nil {
		o.Settings.Now = time.Now
	}
	if o.Settings.Log == nil {
		o.Settings.Log = zap.NewNop()
	}
	f := &Fleet{o: o, members: make(map[string]*member, len(o.Registry.Tenants))}
	for _, t := range o.Registry.Tenants {
		id := strings.ToLower(t.ID)
		if _, dup := f.members[id]; dup {
			return nil, fmt.Errorf("fleet: tenant %s listed twice", id)
		}
		f.order = append(f.order, t)
		f.members[id] = &member{f: f, t: t}
	}
	return f, nil
}

// Tenants lists the registry's tenants in its order.
func (f *Fleet) Tenants() []tenants.Tenant { return f.order }

// Reconciler returns tenant id's reconciler.
func (f *Fleet) Reconciler(id string) (app.Reconciler, bool) {
	m, ok := f.members[strings.ToLower(strings.TrimSpace(id))]
	if !ok {
		return nil, false
	}
	return m, true
}

// LastRun is tenant id's last run in this process.
func (f *Fleet) LastRun(id string) (app.TenantRun, bool) {
	m, ok := f.members[strings.ToLower(strings.TrimSpace(id))]
	if !ok {
		return app.TenantRun{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		return app.TenantRun{}, false
	}
	return *m.last, true
}

// Recorded reports whether runs are recorded in storage (Options.Runs).
func (f *Fleet) Recorded() bool { return f.o.Runs != nil }

// StoredRun reads tenant id's last run as recorded in storage, by whichever instance ran it. ok is
// false when none is recorded, or without storage. A damaged record is an error wrapping
// app.ErrRunUnreadable.
func (f *Fleet) StoredRun(ctx context.Context, id string) (app.TenantRun, bool, error) {
	id = strings.ToLower(strings.TrimSpace(id))
	if f.o.Runs == nil {
		return app.TenantRun{}, false, nil
	}
	if _, ok := f.members[id]; !ok {
		return app.TenantRun{}, false, nil
	}
	r, found, err := f.o.Runs.ReadLastRun(ctx, id)
	switch {
	case errors.Is(err, blobstate.ErrLastRunDamaged):
		return app.TenantRun{}, true, fmt.Errorf("%w: %w", app.ErrRunUnreadable, err)
	case err != nil:
		return app.TenantRun{}, false, err
	case !found:
		return app.TenantRun{}, false, nil
	}
	return app.TenantRun{Time: r.Time, Trigger: r.Trigger, Verdict: capolicy.Verdict(r.Verdict), Reasons: r.Reasons, Cause: r.Cause}, true, nil
}

// BreakGlassGroupIDs are every tenant's break-glass groups, for the audit filter: a membership
// change of any of them is relevant (object ids are unique across tenants).
func (f *Fleet) BreakGlassGroupIDs() []string {
	var out []string
	for _, t := range f.order {
		out = append(out, t.BreakGlassGroupIDs...)
	}
	return out
}

// SelfPrincipalIDs are caguard's service principal object ids in the tenants it has run
// successfully (each tenant has its own service principal of the one app), so that caguard's own
// writes trigger nothing. A tenant not yet run contributes nothing: its first own write can at most
// cause one reconcile that finds nothing to write.
func (f *Fleet) SelfPrincipalIDs() []string {
	var out []string
	for _, t := range f.order {
		m := f.members[t.ID]
		m.mu.Lock()
		if m.spID != "" {
			out = append(out, m.spID)
		}
		m.mu.Unlock()
	}
	return out
}

// member is one tenant: built on its first run.
type member struct {
	f *Fleet
	t tenants.Tenant

	once sync.Once
	rec  *reconcile.Reconciler
	gc   *graph.Client
	cred *tokenCause
	err  error
	mu   sync.Mutex
	last *app.TenantRun
	spID string
}

// Reconcile builds the tenant's parts if need be, runs its reconciler and keeps the result.
func (m *member) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Outcome, error) {
	m.once.Do(m.build)
	var out reconcile.Outcome
	err := m.err
	if err == nil {
		out, err = m.rec.Reconcile(ctx, req)
		err = withTokenCause(err, m.cred.last())
	}
	run := app.RunOf(req.Trigger, m.f.o.Settings.Now(), out, err)
	var sp string
	if err == nil && m.gc != nil {
		// The token is cached by now: this costs no request.
		sp, _ = m.gc.ServicePrincipalID(ctx)
	}
	m.mu.Lock()
	m.last = &run
	if sp != "" {
		m.spID = sp
	}
	m.mu.Unlock()
	m.record(ctx, run)
	return out, err
}

// record writes run as the tenant's last-run record, best effort. No lease is taken: the record is a
// report no run acts on, and of two runs finishing at once either is a true last run.
func (m *member) record(ctx context.Context, run app.TenantRun) {
	runs := m.f.o.Runs
	if runs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	r := blobstate.LastRun{Time: run.Time, Trigger: run.Trigger, Verdict: string(run.Verdict), Reasons: run.Reasons, Cause: run.Cause}
	switch {
	case r.Cause != "":
		// A record holds a verdict or a cause: a run that failed found no verdict.
		r.Verdict = ""
	case r.Verdict == "":
		r.Cause = "the run ended without a verdict"
	}
	if err := runs.WriteLastRun(ctx, m.t.ID, r); err != nil {
		m.f.o.Settings.Log.Warn("the tenant's last run was not recorded in storage; the fleet summary of other instances shows the run before",
			zap.String("tenantId", m.t.ID), zap.Error(err))
	}
}

// setupError is a tenant whose parts could not be built; retrying the same settings cannot help.
type setupError struct {
	tenant string
	err    error
}

func (e *setupError) Error() string   { return "tenant " + e.tenant + ": " + e.err.Error() }
func (e *setupError) Unwrap() error   { return e.err }
func (e *setupError) Retriable() bool { return false }
func (e *setupError) Describe() string {
	return "caguard could not set up tenant " + e.tenant + ": " + e.err.Error()
}

func (m *member) build() {
	o := m.f.o
	s := o.Settings
	log := s.Log.With(zap.String("tenantId", m.t.ID))
	cred, err := o.Credential(m.t.ID)
	if err != nil {
		m.err = &setupError{tenant: m.t.ID, err: fmt.Errorf("credential: %w", err)}
		return
	}
	m.cred = &tokenCause{TokenCredential: cred}
	gopts := o.Graph
	gopts.TenantID = m.t.ID
	gopts.Credential = m.cred
	gopts.HTTPClient = &http.Client{Transport: newGate(o.Transport, o.MaxInFlight)}
	if gopts.Logger != nil {
		gopts.Logger = gopts.Logger.With(zap.String("tenantId", m.t.ID))
	}
	gc, err := graph.New(gopts)
	if err != nil {
		m.err = &setupError{tenant: m.t.ID, err: fmt.Errorf("graph client: %w", err)}
		return
	}
	policy := s.Policy
	policy.BreakGlassUserIDs = m.t.BreakGlassUserIDs
	policy.BreakGlassGroupIDs = m.t.BreakGlassGroupIDs
	rec := &reconcile.Reconciler{
		Store:          gc,
		Sinks:          s.Sinks,
		Policy:         policy,
		TenantID:       m.t.ID,
		TenantName:     m.t.DisplayName,
		Remediate:      m.t.Mode == tenants.ModeRemediate,
		Controls:       s.Controls,
		Now:            s.Now,
		Log:            log,
		Owner:          &reconcile.MemoryOwnership{},
		Exclusions:     reconcile.Exclusions{Reader: gc, Mode: s.ExclusionMode, Grace: s.ExclusionGrace},
		ReadBackDelays: s.ReadBackDelays,
	}
	if o.State != nil {
		lock, owner, err := o.State(m.t.ID)
		if err != nil {
			m.err = &setupError{tenant: m.t.ID, err: fmt.Errorf("storage: %w", err)}
			return
		}
		if lock != nil {
			rec.Lock = lock
		}
		if owner != nil {
			rec.Owner = owner
		}
	}
	m.rec, m.gc = rec, gc
}

// gate is a RoundTripper that lets at most n requests of one tenant through at once; the rest wait
// for a slot or for their context.
type gate struct {
	next  http.RoundTripper
	slots chan struct{}
}

func newGate(next http.RoundTripper, n int) *gate {
	return &gate{next: next, slots: make(chan struct{}, n)}
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	select {
	case g.slots <- struct{}{}:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	res, err := g.next.RoundTrip(r)
	if err != nil || res.Body == nil {
		<-g.slots
		return res, err
	}
	// The slot is held until the answer has been read: a request is in flight until then.
	res.Body = &releaseBody{ReadCloser: res.Body, release: func() { <-g.slots }}
	return res, nil
}

// releaseBody frees the slot when the answer has been read to its end or closed, whichever comes
// first, so that a reader that forgets to close cannot wedge the gate.
type releaseBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releaseBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(b.release)
	}
	return n, err
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
