// Package reconcile is the one loop every trigger ends in: re-read the tenant's Conditional Access
// policies, evaluate the control, then raise an alert or restore the policy caguard owns in report-only
// mode. It is level-triggered: audit events are hints for the alert's "who changed what", never the
// truth about the tenant, so duplicates, reordering and lost events are harmless.
//
// Which policy caguard owns: the one whose id it recorded (Reconciler.Owner) when it created or
// adopted it. A display name can be squatted, so a recorded id wins over any name, and other policies
// carrying the managed name are ignored (and named in a warning). A recorded id missing from the list
// is read by id before it counts as deleted, because Graph's list can lag a create. With nothing
// recorded, or when the recorded policy no longer exists, the single policy with the managed name that is not
// Microsoft-managed is adopted and its id recorded (by a run that may act, never by a report); two
// such policies are ambiguous and nothing is written. With no Owner, nothing is recorded and the name
// alone decides. MemoryOwnership forgets on restart, so without storage the name decides again after
// each restart. An Owner that cannot be read fails the run, so the trigger retries; one that cannot be
// written is a warning, and the name decides until it can.
//
// Safety rules, enforced here and tested:
//   - only the managed policy is ever written; no other policy is edited, disabled or deleted, and a
//     Microsoft-managed policy never is;
//   - a managed policy an admin has switched on keeps "enabled"; otherwise it is written in report-only
//     mode, so turning enforcement on stays a human decision;
//   - nothing is written when the tenant is compliant, when the managed policy already meets the
//     control, or when the definition itself would not meet it;
//   - while the tenant is not compliant, the managed policy is restored whenever it fails on anything
//     but its state, even if another policy meets the control in report-only mode; it is created (or a
//     disabled one put back in report-only mode) only when no policy meets the control in report-only
//     mode, and otherwise the alert says to switch that policy on;
//   - writes carry only the top-level properties that must change (the fewest of state, conditions and
//     grant controls), so what an admin added that is stricter survives; the store sends each in full,
//     because Graph merges a PATCH;
//   - every write is read back and evaluated: an action is performed only when the policy as Graph
//     now holds it meets the control (pending enforcement when report-only was written); otherwise
//     the alert says the restore did not hold and what still fails. Reads can lag, so there is no
//     retry loop: the next trigger looks again;
//   - break-glass groups and users that no longer exist are left out of the written definition with a
//     warning (Graph refuses a write naming them); without the optional User.Read.All permission users
//     are kept, with one warning.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/logctx"

	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/snapshot"
)

// PolicyStore is what the reconciler needs of Microsoft Graph.
type PolicyStore interface {
	ListPolicies(ctx context.Context) ([]capolicy.Policy, error)
	// GetPolicy reads one policy back, to check that a write held.
	GetPolicy(ctx context.Context, id string) (capolicy.Policy, error)
	CreatePolicy(ctx context.Context, p capolicy.Policy) (capolicy.Policy, error)
	// UpdatePolicy makes the listed top-level properties of policy id equal to p's, whatever they held
	// before: Graph merges a PATCH, so the store must send each listed property in full.
	UpdatePolicy(ctx context.Context, id string, p capolicy.Policy, fields []string) error
	GroupTransitiveMemberIDs(ctx context.Context, groupID string) ([]string, error)
	AuthenticationStrengths(ctx context.Context) ([]capolicy.AuthenticationStrength, error)
	// UserExists reports whether a user exists. An error with Forbidden() true means the optional
	// permission to read users is missing: existence cannot be told.
	UserExists(ctx context.Context, id string) (bool, error)
}

// AlertSink delivers an alert somewhere a human will see it.
type AlertSink interface {
	Name() string
	Send(ctx context.Context, a Alert) error
}

// Trigger says what started a reconcile.
type Trigger string

// Triggers.
const (
	TriggerAuditEvent Trigger = "audit-event"
	TriggerSweep      Trigger = "nightly-sweep"
	TriggerHTTP       Trigger = "http"
)

// Request asks for one reconcile. Act false asks for a report only: nothing is written and no alert
// is sent. Hints are the audit records that prompted it, if any.
type Request struct {
	Trigger Trigger
	Act     bool
	Hints   []auditlog.Hint
	// RetryPending says the trigger runs this request again if it fails in a way a retry can fix (a
	// queue message before its last delivery): such a failure is not alerted, since the last delivery
	// alerts when it fails too. A failure no retry can fix is alerted at once.
	RetryPending bool
}

// Action kinds.
const (
	ActionNone   = "none"
	ActionCreate = "create-managed-policy"
	ActionUpdate = "update-managed-policy"
	ActionSkip   = "skipped"
)

// Action is what the reconciler did, or would do in alert mode (Performed false). Performed is true
// only when Graph accepted the write and the policy read back afterwards meets the control (in
// report-only mode when that is the state written); Written alone says Graph accepted it, and
// Remaining what the read-back still fails.
type Action struct {
	Kind      string                `json:"kind"`
	PolicyID  string                `json:"policyId,omitempty"`
	State     string                `json:"state,omitempty"`
	Fields    []string              `json:"fields,omitempty"`
	Changes   []capolicy.Difference `json:"changes,omitempty"`
	Performed bool                  `json:"performed"`
	Written   bool                  `json:"written,omitempty"`
	Remaining []capolicy.Reason     `json:"remaining,omitempty"`
	// Adopted says that the managed policy was found by its display name in this run and its id is
	// now recorded as caguard's.
	Adopted bool   `json:"adopted,omitempty"`
	Reason  string `json:"reason"`

	desired capolicy.Policy // what apply writes, decided by Plan
	byName  bool            // PolicyID was found by display name, not by the recorded id
	// exclusionsOnly: the write only puts back lost break-glass exclusions; it holds when the policy
	// read back excludes them all and meets no less of the control than before.
	exclusionsOnly bool
}

// Outcome is the result of one reconcile.
type Outcome struct {
	Report   capolicy.Report
	Actions  []Action
	Alert    *Alert
	Warnings []string // conditions a human should fix that do not fail the run, e.g. a missing group
	// Exclusions lists what the passing policies and the managed policy exclude, with each
	// exclusion's access-review finding.
	Exclusions []exclusion.Item

	reviewOnly bool // the verdict fails on R20 alone (EXCLUSION_REVIEW=require)
	// unreadableOnly: the verdict fails only because break-glass groups answer 404.
	unreadableOnly bool
	// restoreBlocked: a restore was due but not attempted, because the writer lock's storage failed.
	restoreBlocked bool
	// Controls is the verdict on each enabled catalogue control (Reconciler.Controls), in catalogue
	// order; the guarded control's is Report itself.
	Controls []capolicy.ControlReport
	// Guarding is what the run did about each enabled control other than azure-management-mfa, in
	// catalogue order (see ActionsFor).
	Guarding []ControlOutcome
}

// Reconciler holds the dependencies of the loop. All fields are set by main.
type Reconciler struct {
	Store     PolicyStore
	Sinks     []AlertSink
	Policy    capolicy.Config
	TenantID  string
	Remediate bool // REMEDIATION_MODE=remediate
	// Controls are the catalogue controls each run judges (CONTROLS); empty means the guarded one,
	// azure-management-mfa, alone. Every control is judged from the same reads: enabling more costs
	// no Graph round trip.
	Controls []capolicy.Control
	Now      func() time.Time
	Log      *zap.Logger

	// TenantName is the tenant's display name in the registry, carried by its alerts; empty for the
	// single tenant of AZURE_TENANT_ID.
	TenantName string

	// Owner records the id of the managed policy; nil means the policy is found by its display name
	// alone (unique and not Microsoft-managed).
	Owner Ownership
	// Lock serialises writing reconciles across instances; nil means the in-process mutex alone.
	Lock WriterLock
	// Exclusions configures the exclusion inventory and the access-review check (EXCLUSION_REVIEW).
	Exclusions Exclusions

	// ReadBackDelays are the waits before each read of a policy just written, or recorded but left
	// out of the list; nil means DefaultReadBackDelays.
	ReadBackDelays []time.Duration

	// warnedUserPermission is set once the missing User.Read.All permission has been logged.
	warnedUserPermission atomic.Bool
	// warnedLicences is set once the tenant's subscriptions could not be read: logged once per process.
	warnedLicences atomic.Bool
	// noSignIns is set once Graph said the tenant has no licence for sign-in activity: this process
	// stops asking for it.
	noSignIns atomic.Bool
	// writers admits one run that may write at a time in this process, before Lock: Event Hub
	// partitions, the timer and HTTP callers invoke concurrently, and two runs that both found no
	// managed policy would both create one. Waiting here rather than at Lock keeps one instance's
	// runs from all polling storage. Report-only runs take neither lock.
	writers     chan struct{}
	writersOnce sync.Once
}

// busyError says that another run of this instance kept the writer lock past this run's deadline; a
// retry of the invocation can succeed.
type busyError struct{ err error }

func (e busyError) Error() string   { return "another run of this instance is writing: " + e.err.Error() }
func (e busyError) Unwrap() error   { return e.err }
func (e busyError) Retriable() bool { return true }
func (e busyError) Busy() bool      { return true }

// reconcile runs the loop once; Reconcile (failure.go) wraps it. Errors from Graph are returned
// wrapped, so a caller can tell a retriable outage from a permanent refusal; alert delivery failures
// are logged, not returned, except when no sink at all took the alert.
//
// Only a run that may write to Graph (Act, in remediate mode) takes the writer lock, from before the
// read until after the write and the alert, so no two such runs, on any instance, decide on the same
// state; one that cannot get it before ctx ends fails as retriable. A report, and every run in alert
// mode, writes nothing to Graph and needs nothing but a sink: it never waits for the lock and does
// not depend on storage. When storage itself fails (not a lock held by another run), the run still
// judges and alerts, says that the restore was not attempted and why, and then fails as retriable
// when a restore was due, so the trigger tries again.
func (r *Reconciler) reconcile(ctx context.Context, req Request) (Outcome, error) {
	if !req.Act || !r.Remediate {
		return r.run(ctx, req, runMode{})
	}
	held, unlock, err := r.lockWriter(ctx)
	if err != nil {
		if isBusy(err) || ctx.Err() != nil {
			return Outcome{}, err
		}
		logctx.From(ctx, r.Log).Error("writer lease unavailable: judging and alerting without restoring", zap.Error(err))
		out, runErr := r.run(ctx, req, runMode{blocked: "the writer lease in the app's storage could not be taken (" + brief(err) + ")"})
		if runErr != nil {
			return out, runErr
		}
		if out.restoreBlocked {
			return out, fmt.Errorf("restore not attempted: %w", err)
		}
		return out, nil
	}
	defer unlock()
	out, err := r.run(held, req, runMode{mayWrite: true})
	if err != nil && held.Err() != nil && ctx.Err() == nil {
		// The lock was lost mid-run (a renewal failed) and the run stopped: report the lock's cause,
		// which says why and whether a retry helps, rather than the call it interrupted.
		return out, fmt.Errorf("%w (the run stopped: %v)", context.Cause(held), err)
	}
	return out, err
}

// runMode says what a run may do beyond judging: mayWrite when it holds the writer lock in remediate
// mode; blocked, when set, is why a remediate run that should have held it does not.
type runMode struct {
	mayWrite bool
	blocked  string
}

// isBusy reports a lock error that says another run holds the lock, as opposed to storage failing.
func isBusy(err error) bool {
	var b interface{ Busy() bool }
	return errors.As(err, &b) && b.Busy()
}

// lockWriter takes this process's writer slot, then the cross-instance lock when there is one. The
// returned context is the one to read and write under; unlock releases both.
func (r *Reconciler) lockWriter(ctx context.Context) (context.Context, func(), error) {
	r.writersOnce.Do(func() { r.writers = make(chan struct{}, 1) })
	select {
	case r.writers <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, busyError{err: context.Cause(ctx)}
	}
	release := func() { <-r.writers }
	if r.Lock == nil {
		return ctx, release, nil
	}
	held, unlock, err := r.Lock.Lock(ctx)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("writer lock: %w", err)
	}
	return held, func() { unlock(); release() }, nil
}

// run is one pass of the loop, under the writer lock when mode.mayWrite.
func (r *Reconciler) run(ctx context.Context, req Request, mode runMode) (Outcome, error) {
	tenant, missing, pre, err := r.read(ctx)
	if err != nil {
		return Outcome{}, err
	}
	log := logctx.From(ctx, r.Log)
	recorded := ""
	var ownerWarning string
	if r.Owner != nil {
		if recorded, err = r.Owner.ManagedPolicyID(ctx); err != nil {
			if mode.mayWrite {
				return Outcome{}, fmt.Errorf("read the recorded id of the managed policy: %w", err)
			}
			// A run that writes nothing to Graph must not depend on storage: the name decides for it.
			log.Warn("recorded id of the managed policy unreadable; this run finds it by name", zap.Error(err))
			ownerWarning = "the recorded id of the managed policy could not be read; this run found the policy by its name"
			recorded = ""
		}
	}
	if recorded != "" && !slices.ContainsFunc(tenant.Policies, func(p capolicy.Policy) bool { return strings.EqualFold(p.ID, recorded) }) {
		// Graph's list can lag a create, and a read by id can answer 404 for a while after one: ask for
		// the recorded policy itself, on the read-back schedule, before taking it for deleted, or the
		// next write would create a second one.
		p, err := r.readUntil(ctx, recorded, func(capolicy.Policy) bool { return true })
		switch {
		case err == nil:
			tenant.Policies = append(tenant.Policies, p)
		case !isNotFound(err):
			return Outcome{}, fmt.Errorf("read the recorded managed policy %s: %w", recorded, err)
		}
	}
	controlIDs, err := r.controlRecords(ctx, mode, &tenant)
	if err != nil {
		return Outcome{}, err
	}
	planT := planTenant(tenant, missing)
	report, base, planReport, exclusions := r.evaluate(ctx, tenant, planT, pre)
	out := Outcome{Report: report, Exclusions: exclusions,
		reviewOnly:     report.Verdict != base.Verdict && base.Verdict == planReport.Verdict,
		unreadableOnly: base.Verdict != planReport.Verdict}
	out.Controls = r.judgeControls(tenant, report)
	// A licence finding is news for whoever reads the alert, whichever control it is about.
	for _, c := range out.Controls {
		if c.Licence.Missing() {
			out.Warnings = append(out.Warnings, c.Summary)
		}
	}
	if ownerWarning != "" {
		out.Warnings = append(out.Warnings, ownerWarning)
	}
	// A configured break-glass object that answers 404 may be deleted, or may not have replicated yet:
	// it stays in the definition (see breakglass.go), and the alert says so.
	for _, g := range missing {
		out.Warnings = append(out.Warnings, fmt.Sprintf("break-glass group %s in BREAK_GLASS_GROUP_IDS answers 404 (deleted, or not yet replicated); caguard keeps excluding it: if it was deleted, remove it from the setting", g))
	}
	planCfg := r.Policy
	action := Plan(planReport, planT, planCfg, recorded)
	own, _, _ := owned(planT.Policies, recorded, planCfg.ManagedName())
	action, bgWarnings := keepBreakGlass(defaultGuard(planCfg), action, own, tenant, planT)
	out.Warnings = append(out.Warnings, bgWarnings...)
	var gone []string
	if writesConditions(action) && len(planCfg.BreakGlassUserIDs) > 0 {
		// Users are looked up only when the definition is about to be written; one that is gone is
		// reported and kept.
		var warnings []string
		if pre != nil {
			gone, warnings = r.usersGone(ctx, pre.read, planCfg.BreakGlassUserIDs)
		} else if gone, warnings, err = r.missingUsers(ctx, planCfg.BreakGlassUserIDs); err != nil {
			return Outcome{}, err
		}
		out.Warnings = append(out.Warnings, warnings...)
	}
	out.Warnings = append(out.Warnings, squatters(tenant.Policies, action, planCfg.ManagedName())...)
	if mode.mayWrite && action.byName && r.Owner != nil {
		if err := r.Owner.SetManagedPolicyID(ctx, action.PolicyID); err != nil {
			log.Error("managed policy id not recorded", zap.String("policyId", action.PolicyID), zap.Error(err))
			out.Warnings = append(out.Warnings, fmt.Sprintf("could not record policy %s as the managed policy; it is found by its name until recorded", action.PolicyID))
		} else {
			action.Adopted = true
		}
	}
	switch {
	case out.reviewOnly:
		action.Reason = "only the access reviews of exclusions (R20) fail the control, and no write can fix them; " + action.Reason
	case out.unreadableOnly:
		action.Reason = "only the break-glass groups that answer 404 fail the control (their members cannot be read), and no write can fix that; " + action.Reason
	}
	if action.Kind == ActionCreate || action.Kind == ActionUpdate {
		switch {
		case !req.Act:
			action.Reason += " (report only: nothing written)"
		case !r.Remediate:
			action.Reason += " (alert mode: nothing written; set REMEDIATION_MODE=remediate to restore)"
		case !mode.mayWrite:
			action.Reason += "; the restore was not attempted: " + mode.blocked + "; the trigger retries"
			out.restoreBlocked = true
		default:
			warnings, err := r.apply(ctx, defaultGuard(planCfg), &action, planT, own, missing, gone)
			if err != nil {
				return Outcome{}, err
			}
			out.Warnings = append(out.Warnings, warnings...)
		}
	}
	out.Actions = []Action{action}
	log.Info("reconciled",
		zap.String("trigger", string(req.Trigger)), zap.String("verdict", string(out.Report.Verdict)),
		zap.Int("policies", len(tenant.Policies)), zap.String("action", action.Kind), zap.Bool("written", action.Written), zap.Bool("performed", action.Performed))
	r.logExclusions(ctx, out.Exclusions)

	defaultBlocked := out.restoreBlocked
	if req.Act && (out.Report.Verdict != capolicy.VerdictCompliant || action.Performed || action.Written || defaultBlocked || len(bgWarnings) > 0 || r.reviewAlert(req, out)) {
		a := r.newAlert(req, out)
		out.Alert = &a
		if err := r.send(ctx, a); err != nil {
			return out, err
		}
	}
	users := &usersLookup{r: r, pre: pre}
	if err := r.guardControls(ctx, req, mode, &out, guardRun{tenant: tenant, planT: planT, missing: missing, recorded: controlIDs, users: users}); err != nil {
		return out, err
	}
	return out, nil
}

// read gathers everything Evaluate needs: the policies, the definitions of the authentication strengths
// they reference, and the transitive members of the approved break-glass groups. Groups that do not
// answer 404 are returned apart; their membership stays unknown to Evaluate.
func (r *Reconciler) read(ctx context.Context) (t capolicy.Tenant, missing []string, pre *prefetch, err error) {
	if tr, ok := r.Store.(TenantReader); ok {
		return r.readBatched(ctx, tr)
	}
	t, missing, err = r.readByCall(ctx)
	return t, missing, nil, err
}

// readByCall is read for a store that cannot batch.
func (r *Reconciler) readByCall(ctx context.Context) (t capolicy.Tenant, missing []string, err error) {
	policies, err := r.Store.ListPolicies(ctx)
	if err != nil {
		return t, nil, fmt.Errorf("list conditional access policies: %w", err)
	}
	t = capolicy.Tenant{Policies: policies, GroupMembers: map[string][]string{}}
	if referencesStrength(policies) {
		if t.AuthenticationStrengths, err = r.Store.AuthenticationStrengths(ctx); err != nil {
			return t, nil, fmt.Errorf("list authentication strengths: %w", err)
		}
	}
	for _, g := range r.Policy.BreakGlassGroupIDs {
		ids, err := r.Store.GroupTransitiveMemberIDs(ctx, g)
		if isNotFound(err) {
			r.logGoneGroup(ctx, g)
			missing = append(missing, g)
			continue
		}
		if err != nil {
			return t, nil, fmt.Errorf("list members of break-glass group %s: %w", g, err)
		}
		t.GroupMembers[g] = ids
	}
	return t, missing, nil
}

// notFound is implemented by store errors that say the object does not exist.
type notFound interface{ NotFound() bool }

func referencesStrength(ps []capolicy.Policy) bool {
	for _, p := range ps {
		if p.GrantControls != nil && p.GrantControls.AuthenticationStrength != nil {
			return true
		}
	}
	return false
}

// Plan decides what to do about the managed policy, without doing it. It is pure, so every safety rule
// can be tested on values. recordedID is the id caguard recorded for its policy ("" when none).
//
// While the tenant is not compliant, the managed policy is restored whenever it fails on anything but
// its state, even when another policy meets the control in report-only mode: a pending look-alike
// must not stop caguard from repairing its own policy. A managed policy that fails on its state alone
// is put back in report-only mode, and a missing one is created, only when no policy meets the
// control in report-only mode; otherwise that policy is the one to switch on.
func Plan(rep capolicy.Report, t capolicy.Tenant, cfg capolicy.Config, recordedID string) Action {
	return planGuard(defaultGuard(cfg), rep, t, recordedID)
}

// planGuard is Plan for any control: rep is the verdict on g's control, recordedID the id recorded
// for its managed policy. A managed policy an administrator switched on keeps enabled, except for a
// control whose grant is block: caguard never writes an enforced blocking policy, so when such a
// policy is enabled and fails, nothing is written and the reason says why.
func planGuard(g guard, rep capolicy.Report, t capolicy.Tenant, recordedID string) Action {
	desired := g.desired()
	own, byName, skip := owned(t.Policies, recordedID, desired.DisplayName)
	action := func(a Action) Action {
		if own != nil {
			a.PolicyID, a.byName = own.ID, byName
		}
		return a
	}
	switch {
	case rep.Verdict == capolicy.VerdictCompliant:
		return action(Action{Kind: ActionNone, Reason: "the tenant meets the control; nothing to restore"})
	case skip != "":
		return Action{Kind: ActionSkip, Reason: skip}
	}

	kind := ActionCreate
	if own != nil {
		kind = ActionUpdate
		self := g.judgeOne(*own, t).Policies[0]
		if self.MeetsAllButState && rep.Verdict == capolicy.VerdictPendingEnforcement {
			if own.State == capolicy.StateReportOnly {
				return action(Action{Kind: ActionNone, Reason: "the managed policy meets the control in report-only mode; an administrator must switch it on"})
			}
			return action(Action{Kind: ActionNone, Reason: pendingName(rep) + " meets the control in report-only mode; an administrator must switch it on"})
		}
		if own.State == capolicy.StateEnabled {
			if g.control.Blocks() {
				return action(Action{Kind: ActionSkip, Reason: fmt.Sprintf("the managed policy %s is enabled and its control blocks sign-ins; "+
					"caguard never writes an enforced blocking policy, so it writes nothing: fix the policy by hand, or set it to report-only and caguard restores it", own.ID)})
			}
			// An administrator switched enforcement on: restoring the definition must not lower it.
			desired.State = capolicy.StateEnabled
		}
		if skip := unknownStateSkip(own); skip != "" {
			return action(Action{Kind: ActionSkip, Reason: skip})
		}
	} else if rep.Verdict == capolicy.VerdictPendingEnforcement {
		return Action{Kind: ActionNone, Reason: pendingName(rep) + " meets the control in report-only mode; switch it on rather than adding a second report-only copy"}
	}

	// Never write a definition that would not meet the control: evaluate the policy as it would be.
	check := g.judgeOne(desired, t)
	if check.Verdict == capolicy.VerdictNonCompliant {
		return action(Action{Kind: ActionSkip, Reason: "restoring would not fix the tenant: " + firstReasons(check)})
	}

	if kind == ActionCreate {
		reason := fmt.Sprintf("no policy named %q exists; create it in %s state", desired.DisplayName, desired.State)
		if recordedID != "" {
			reason = fmt.Sprintf("the managed policy %s no longer exists and no other policy is named %q; create it in %s state", recordedID, desired.DisplayName, desired.State)
		}
		return Action{Kind: ActionCreate, State: desired.State.String(), Changes: capolicy.Diff(desired, capolicy.Policy{}),
			Reason: reason, desired: desired}
	}
	diffs := capolicy.Diff(desired, *own)
	fields := restoreFields(g, *own, desired, capolicy.TopLevelFields(diffs), t)
	if len(fields) == 0 {
		return action(Action{Kind: ActionNone, Reason: "the managed policy already meets its definition where it matters"})
	}
	var changes []capolicy.Difference
	for _, d := range diffs {
		if slices.Contains(fields, capolicy.TopLevelFields([]capolicy.Difference{d})[0]) {
			changes = append(changes, d)
		}
	}
	return action(Action{Kind: ActionUpdate, State: desired.State.String(), Changes: changes, Fields: fields,
		Reason:  fmt.Sprintf("restore %s of the managed policy (%d field(s) differ from its definition)", strings.Join(fields, " and "), len(changes)),
		desired: desired})
}

// owned finds the policy caguard owns: the one with the recorded id when it still exists, else the
// single policy that carries the managed name and is not Microsoft-managed (byName true: it is to be
// adopted). A display name can be squatted, so a recorded id wins over any name; without one, two
// policies with the name are ambiguous and nothing is written (skip says why).
func owned(ps []capolicy.Policy, recordedID, name string) (own *capolicy.Policy, byName bool, skip string) {
	if recordedID != "" {
		for i := range ps {
			if strings.EqualFold(ps[i].ID, recordedID) {
				if ps[i].MicrosoftManaged() {
					return nil, false, fmt.Sprintf("the recorded managed policy %s is Microsoft-managed; caguard never writes it", ps[i].ID)
				}
				return &ps[i], false, ""
			}
		}
	}
	var named []*capolicy.Policy
	msManaged := ""
	for i := range ps {
		if !strings.EqualFold(strings.TrimSpace(ps[i].DisplayName), name) {
			continue
		}
		if ps[i].MicrosoftManaged() {
			msManaged = ps[i].ID
			continue
		}
		named = append(named, &ps[i])
	}
	switch {
	case len(named) > 1:
		return nil, false, fmt.Sprintf("%d policies are named %q and none is recorded as caguard's; caguard writes only a policy it can identify", len(named), name)
	case len(named) == 1:
		return named[0], true, ""
	case msManaged != "":
		return nil, false, fmt.Sprintf("the policy with the managed name (%s) is Microsoft-managed; caguard never writes it", msManaged)
	}
	return nil, false, ""
}

// squatters warns about policies that carry the managed name but are not the managed policy.
func squatters(ps []capolicy.Policy, a Action, name string) []string {
	if a.PolicyID == "" {
		return nil
	}
	var out []string
	for _, p := range ps {
		if p.ID != a.PolicyID && strings.EqualFold(strings.TrimSpace(p.DisplayName), name) {
			out = append(out, fmt.Sprintf("policy %s is also named %q but is not the managed policy %s; caguard ignores it", p.ID, name, a.PolicyID))
		}
	}
	return out
}

// pendingName names the first policy that meets the control in report-only mode.
func pendingName(rep capolicy.Report) string {
	for _, p := range rep.Policies {
		if p.MeetsAllButState && p.State == capolicy.StateReportOnly {
			return fmt.Sprintf("policy %q (%s)", p.DisplayName, p.ID)
		}
	}
	return "a policy"
}

// writesConditions reports whether the action would write the definition's user assignments.
func writesConditions(a Action) bool {
	return a.Kind == ActionCreate || (a.Kind == ActionUpdate && slices.Contains(a.Fields, "conditions"))
}

// missingUsers looks up the break-glass users and returns those that answer 404, which stay in the
// definition all the same (see breakglass.go). Without the permission to read users it cannot tell:
// one warning says so.
func (r *Reconciler) missingUsers(ctx context.Context, ids []string) (gone, warnings []string, err error) {
	for _, id := range ids {
		ok, err := r.Store.UserExists(ctx, id)
		if forbidden(err) {
			return nil, []string{r.noUserPermission(ctx, err)}, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("look up break-glass user %s: %w", id, err)
		}
		if !ok {
			gone, warnings = append(gone, id), append(warnings, r.goneUser(ctx, id))
		}
	}
	return gone, warnings, nil
}

// usersGone is missingUsers for a batched read, which looked the users up already.
func (r *Reconciler) usersGone(ctx context.Context, rd snapshot.Read, ids []string) (gone, warnings []string) {
	if err := rd.UsersErr; err != nil {
		if forbidden(err) {
			return nil, []string{r.noUserPermission(ctx, err)}
		}
		logctx.From(ctx, r.Log).Warn("break-glass users not looked up; all of them stay in the definition", zap.Error(err))
		return nil, []string{"could not tell whether the break-glass users exist (" + brief(err) + "); all of them stay in the definition"}
	}
	for _, id := range ids {
		if u, ok := rd.Users[id]; ok && !u.Found {
			gone, warnings = append(gone, id), append(warnings, r.goneUser(ctx, id))
		}
	}
	return gone, warnings
}

// noUserPermission logs, once per process, that users cannot be looked up, and returns the warning.
func (r *Reconciler) noUserPermission(ctx context.Context, err error) string {
	if !r.warnedUserPermission.Swap(true) {
		logctx.From(ctx, r.Log).Warn("cannot tell whether the break-glass users exist: the optional User.Read.All permission is missing", zap.Error(err))
	}
	return "cannot tell whether the break-glass users exist (the optional User.Read.All permission is missing); all of them stay in the definition, and a deleted one makes Graph refuse the write"
}

func (r *Reconciler) logGoneGroup(ctx context.Context, id string) {
	logctx.From(ctx, r.Log).Warn("break-glass group answers 404: deleted, or not yet replicated; it stays excluded", zap.String("groupId", id))
}

// goneUser logs and words a break-glass user that answered 404.
func (r *Reconciler) goneUser(ctx context.Context, id string) string {
	logctx.From(ctx, r.Log).Warn("break-glass user answers 404: deleted, or not yet replicated; it stays excluded", zap.String("userId", id))
	return fmt.Sprintf("break-glass user %s in BREAK_GLASS_USER_IDS answers 404 (deleted, or not yet replicated); caguard keeps excluding it: if it was deleted, remove it from the setting", id)
}

// restoreFields picks the fewest top-level properties of the managed policy to put back for it to
// meet the control, so that what an administrator added on top (a stricter AND control, session
// controls) survives a restore. Only state, conditions and grant controls can decide the verdict; when
// no subset of them is enough, all of them are restored.
func restoreFields(g guard, actual, desired capolicy.Policy, differing []string, t capolicy.Tenant) []string {
	var relevant []string
	for _, f := range differing {
		if containsField(g.verdictFields(), f) {
			relevant = append(relevant, f)
		}
	}
	var best []string
	for mask := 1; mask < 1<<len(relevant); mask++ {
		var subset []string
		merged := actual
		for i, f := range relevant {
			if mask&(1<<i) == 0 {
				continue
			}
			subset = append(subset, f)
			switch f {
			case "state":
				merged.State = desired.State
			case "conditions":
				merged.Conditions = desired.Conditions
			case "grantControls":
				merged.GrantControls = desired.GrantControls
			case "sessionControls":
				merged.SessionControls = desired.SessionControls
			}
		}
		if best != nil && len(subset) >= len(best) {
			continue
		}
		if rep := g.judgeOne(merged, t); rep.Verdict != capolicy.VerdictNonCompliant {
			best = subset
		}
	}
	if best == nil {
		return relevant
	}
	return best
}

func firstReasons(rep capolicy.Report) string {
	var msgs []string
	for _, p := range rep.Policies {
		for _, r := range p.Reasons {
			msgs = append(msgs, r.Message)
		}
	}
	if len(msgs) == 0 {
		return rep.Summary
	}
	return strings.Join(msgs, " ")
}

// apply writes the planned definition, then reads the policy back: Graph merges writes and may apply
// them partly, so an action counts as performed only when the policy as Graph now holds it meets the
// control (pending enforcement is enough when report-only is the state written). Reads lag writes, so
// the read-back is repeated on the read-back schedule while it answers 404 or still shows the policy
// as it was (own) where the write changed it; a read that shows something else is final.
//
// A write Graph refuses for good (a 4xx other than throttling) does not fail the run: the action says
// so and the alert goes out, naming the break-glass objects that answered 404 (goneGroups,
// goneUsers), the likeliest cause. A refusal a retry can fix fails the run, so the trigger retries.
func (r *Reconciler) apply(ctx context.Context, g guard, a *Action, t capolicy.Tenant, own *capolicy.Policy, goneGroups, goneUsers []string) (warnings []string, err error) {
	log := logctx.From(ctx, r.Log)
	if !g.isDefault() {
		log = log.With(zap.String("control", g.control.ID))
	}
	if err := checkBreakGlass(*a, g.cfg); err != nil {
		return nil, err
	}
	if enforcedBlock(*a, own) {
		// Plan never builds such a write; this stops one if it ever did.
		return nil, fmt.Errorf("refused to write policy %s: it would block sign-ins in enforced mode", a.PolicyID)
	}
	// refused returns err when a retry can help; otherwise it puts the refusal in the action's reason.
	refused := func(err error) error {
		if retriable(err) {
			return err
		}
		log.Error("Graph refused the write of the managed policy", zap.String("kind", a.Kind), zap.String("policyId", a.PolicyID), zap.Error(err))
		a.Reason += "; Graph refused the write (" + brief(err) + ")"
		if len(goneGroups)+len(goneUsers) > 0 {
			a.Reason += ", probably because " + describeIDs(goneUsers, goneGroups) + " answer 404: caguard keeps them in the definition, so if they were deleted, remove them from the break-glass settings"
		}
		return nil
	}
	switch a.Kind {
	case ActionCreate:
		created, err := r.Store.CreatePolicy(ctx, a.desired)
		if err != nil {
			return nil, refused(fmt.Errorf("create managed policy: %w", err))
		}
		a.PolicyID = created.ID
		if _, err := r.record(ctx, g, created.ID); err != nil {
			log.Error("managed policy id not recorded", zap.String("policyId", created.ID), zap.Error(err))
			warnings = append(warnings, fmt.Sprintf("could not record the created policy %s as the managed policy; it is found by its name until recorded", created.ID))
		}
	case ActionUpdate:
		if err := r.Store.UpdatePolicy(ctx, a.PolicyID, a.desired, a.Fields); err != nil {
			return nil, refused(fmt.Errorf("update managed policy %s: %w", a.PolicyID, err))
		}
	}
	a.Written = true
	log.Warn("wrote the managed policy", zap.String("kind", a.Kind), zap.String("policyId", a.PolicyID),
		zap.String("state", a.State), zap.Strings("fields", a.Fields))

	judge := func(p capolicy.Policy) capolicy.Report { return g.judgeOne(p, t) }
	holds := func(p capolicy.Policy) bool {
		if a.exclusionsOnly && own != nil {
			return !worse(g, *own, p, t)
		}
		rep := judge(p)
		return rep.Verdict == capolicy.VerdictCompliant ||
			(a.State == capolicy.StateReportOnly.String() && rep.Verdict == capolicy.VerdictPendingEnforcement)
	}
	got, err := r.readUntil(ctx, a.PolicyID, func(p capolicy.Policy) bool {
		// Final when the write shows, or when the read differs from the policy as it was where the
		// write changed it: Graph applied something else, which waiting does not change.
		return holds(p) && lostNone(p, g.cfg, a) || (own != nil && !sameWhere(p, *own, a.Fields))
	})
	if err != nil {
		log.Warn("the write could not be read back", zap.String("policyId", a.PolicyID), zap.Error(err))
		a.Reason += "; Graph accepted the write but the policy could not be read back to confirm it held (the next run checks again)"
		return warnings, nil
	}
	if !holds(got) || !lostNone(got, g.cfg, a) {
		rep := judge(got)
		if !a.exclusionsOnly {
			a.Remaining = rep.Policies[0].Reasons
		}
		still := firstReasons(rep)
		if len(a.Remaining) == 0 {
			still = "it does not exclude every configured break-glass account"
		}
		log.Error("the restore did not hold", zap.String("policyId", a.PolicyID), zap.String("stillFails", still))
		a.Reason += "; the restore did not hold: Graph accepted the write, but the policy read back still fails: " + still
		return warnings, nil
	}
	a.Performed = true
	return warnings, nil
}

// lostNone reports whether p excludes every configured break-glass object, when the write was meant
// to make it so (it wrote the conditions).
func lostNone(p capolicy.Policy, cfg capolicy.Config, a *Action) bool {
	if a.Kind != ActionCreate && !slices.Contains(a.Fields, "conditions") {
		return true
	}
	users, groups := lostBreakGlass(p, cfg)
	return len(users)+len(groups) == 0
}

// retriable reports a store error that a retry of the invocation can fix.
func retriable(err error) bool {
	var r interface{ Retriable() bool }
	return errors.As(err, &r) && r.Retriable()
}

func (r *Reconciler) send(ctx context.Context, a Alert) error {
	if len(r.Sinks) == 0 {
		return nil
	}
	var failed []string
	var last error
	for _, s := range r.Sinks {
		if err := s.Send(ctx, a); err != nil {
			failed = append(failed, s.Name())
			last = err
			logctx.From(ctx, r.Log).Error("alert not delivered", zap.String("sink", s.Name()), zap.Error(err))
		}
	}
	if len(failed) == len(r.Sinks) {
		return &undelivered{sinks: failed, err: last}
	}
	return nil
}

// judgeControls returns the verdict on each enabled control. The guarded control's verdict is the
// run's own report (with R20 under EXCLUSION_REVIEW=require and every exclusion check); the others
// are judged by the same engine on the same tenant, without R20, whose review findings are collected
// for the guarded control's policies only.
func (r *Reconciler) judgeControls(t capolicy.Tenant, report capolicy.Report) []capolicy.ControlReport {
	controls := r.Controls
	if len(controls) == 0 {
		c, _ := capolicy.ControlByID(capolicy.DefaultControls)
		controls = []capolicy.Control{c}
	}
	cfg := r.Policy
	cfg.RequireExclusionReview = false
	out := make([]capolicy.ControlReport, 0, len(controls))
	for _, c := range controls {
		if c.ID == capolicy.ControlAzureManagementMFA {
			out = append(out, capolicy.ControlReport{ID: c.ID, Title: c.Title, CIS: c.CIS, Guarded: c.Guarded, Report: report})
			continue
		}
		out = append(out, capolicy.EvaluateControl(t, cfg, c))
	}
	return out
}
