// Package reconcile is the one loop every trigger ends in: re-read the tenant's Conditional Access
// policies, evaluate the control, then raise an alert or restore the policy caguard owns in report-only
// mode. It is level-triggered: audit events are hints for the alert's "who changed what", never the
// truth about the tenant, so duplicates, reordering and lost events are harmless.
//
// Safety rules, enforced here and tested:
//   - only the managed policy (found by its display name, not Microsoft-managed, and unique) is ever
//     written; no other policy is edited, disabled or deleted;
//   - a managed policy an admin has switched on keeps "enabled"; otherwise it is written in report-only
//     mode, so turning enforcement on stays a human decision;
//   - nothing is written when the tenant is compliant or pending enforcement, when the managed policy
//     already matches its definition, or when the definition itself would not meet the control;
//   - writes carry only the changed top-level properties.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/logctx"

	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/capolicy"
)

// PolicyStore is what the reconciler needs of Microsoft Graph.
type PolicyStore interface {
	ListPolicies(ctx context.Context) ([]capolicy.Policy, error)
	CreatePolicy(ctx context.Context, p capolicy.Policy) (capolicy.Policy, error)
	UpdatePolicy(ctx context.Context, id string, p capolicy.Policy, fields []string) error
	GroupTransitiveMemberIDs(ctx context.Context, groupID string) ([]string, error)
	AuthenticationStrengths(ctx context.Context) ([]capolicy.AuthenticationStrength, error)
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
}

// Action kinds.
const (
	ActionNone   = "none"
	ActionCreate = "create-managed-policy"
	ActionUpdate = "update-managed-policy"
	ActionSkip   = "skipped"
)

// Action is what the reconciler did, or would do in alert mode (Performed false).
type Action struct {
	Kind      string                `json:"kind"`
	PolicyID  string                `json:"policyId,omitempty"`
	State     string                `json:"state,omitempty"`
	Fields    []string              `json:"fields,omitempty"`
	Changes   []capolicy.Difference `json:"changes,omitempty"`
	Performed bool                  `json:"performed"`
	Reason    string                `json:"reason"`

	desired capolicy.Policy // what apply writes, decided by Plan
}

// Outcome is the result of one reconcile.
type Outcome struct {
	Report   capolicy.Report
	Actions  []Action
	Alert    *Alert
	Warnings []string // conditions a human should fix that do not fail the run, e.g. a missing group
}

// Reconciler holds the dependencies of the loop. All fields are set by main.
type Reconciler struct {
	Store     PolicyStore
	Sinks     []AlertSink
	Policy    capolicy.Config
	TenantID  string
	Remediate bool // REMEDIATION_MODE=remediate
	Now       func() time.Time
	Log       *zap.Logger

	// Owner records the id of the managed policy; nil means the policy is found by its display name
	// alone (unique and not Microsoft-managed).
	Owner Ownership
	// Lock serialises writing reconciles across instances; nil means the in-process mutex alone.
	Lock WriterLock

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

// Reconcile runs the loop once. Errors from Graph are returned wrapped, so a caller can tell a
// retriable outage from a permanent refusal; alert delivery failures are logged, not returned, except
// when no sink at all took the alert.
//
// A run that may write (Act) holds the writer lock from before the read until after the write and the
// alert, so no two runs, on any instance, decide on the same state; one that cannot get it before ctx
// ends fails as retriable. A report (Act false) writes nothing and never waits for the lock.
func (r *Reconciler) Reconcile(ctx context.Context, req Request) (Outcome, error) {
	if !req.Act {
		return r.run(ctx, req)
	}
	held, unlock, err := r.lockWriter(ctx)
	if err != nil {
		return Outcome{}, err
	}
	defer unlock()
	out, err := r.run(held, req)
	if err != nil && held.Err() != nil && ctx.Err() == nil {
		// The lock was lost mid-run (a renewal failed) and the run stopped: report the lock's cause,
		// which says why and whether a retry helps, rather than the call it interrupted.
		return out, fmt.Errorf("%w (the run stopped: %v)", context.Cause(held), err)
	}
	return out, err
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

// run is one pass of the loop, under the writer lock when req.Act.
func (r *Reconciler) run(ctx context.Context, req Request) (Outcome, error) {
	tenant, missing, err := r.read(ctx)
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{Report: capolicy.Evaluate(tenant, r.Policy)}
	// A configured break-glass group that does not exist cannot be excluded by a restored policy
	// (Graph refuses unknown ids), so the definition leaves it out and the alert says so.
	planCfg := r.Policy
	if len(missing) > 0 {
		planCfg.BreakGlassGroupIDs = slices.DeleteFunc(slices.Clone(planCfg.BreakGlassGroupIDs), func(g string) bool { return slices.Contains(missing, g) })
		for _, g := range missing {
			out.Warnings = append(out.Warnings, fmt.Sprintf("break-glass group %s in BREAK_GLASS_GROUP_IDS does not exist", g))
		}
	}
	action := Plan(out.Report, tenant, planCfg)
	if action.Kind == ActionCreate || action.Kind == ActionUpdate {
		switch {
		case !req.Act:
			action.Reason += " (report only: nothing written)"
		case !r.Remediate:
			action.Reason += " (alert mode: nothing written; set REMEDIATION_MODE=remediate to restore)"
		default:
			if err := r.apply(ctx, &action); err != nil {
				return Outcome{}, err
			}
		}
	}
	out.Actions = []Action{action}
	logctx.From(ctx, r.Log).Info("reconciled",
		zap.String("trigger", string(req.Trigger)), zap.String("verdict", string(out.Report.Verdict)),
		zap.Int("policies", len(tenant.Policies)), zap.String("action", action.Kind), zap.Bool("performed", action.Performed))

	if req.Act && (out.Report.Verdict != capolicy.VerdictCompliant || action.Performed) {
		a := r.newAlert(req, out)
		out.Alert = &a
		if err := r.send(ctx, a); err != nil {
			return out, err
		}
	}
	return out, nil
}

// read gathers everything Evaluate needs: the policies, the definitions of the authentication strengths
// they reference, and the transitive members of the approved break-glass groups. Groups that do not
// exist are returned apart; their membership stays unknown to Evaluate.
func (r *Reconciler) read(ctx context.Context) (t capolicy.Tenant, missing []string, err error) {
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
		var nf notFound
		if errors.As(err, &nf) && nf.NotFound() {
			logctx.From(ctx, r.Log).Warn("break-glass group does not exist", zap.String("groupId", g))
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
// can be tested on values.
func Plan(rep capolicy.Report, t capolicy.Tenant, cfg capolicy.Config) Action {
	switch rep.Verdict {
	case capolicy.VerdictCompliant:
		return Action{Kind: ActionNone, Reason: "the tenant meets the control; nothing to restore"}
	case capolicy.VerdictPendingEnforcement:
		return Action{Kind: ActionNone, Reason: "a policy meets the control in report-only mode; an administrator must switch it on"}
	}
	desired := capolicy.Desired(cfg)
	var owned []capolicy.Policy
	for _, p := range t.Policies {
		if strings.EqualFold(strings.TrimSpace(p.DisplayName), desired.DisplayName) {
			owned = append(owned, p)
		}
	}
	switch {
	case len(owned) > 1:
		return Action{Kind: ActionSkip, Reason: fmt.Sprintf("%d policies are named %q; caguard writes only a policy it can identify uniquely", len(owned), desired.DisplayName)}
	case len(owned) == 1 && owned[0].MicrosoftManaged():
		return Action{Kind: ActionSkip, PolicyID: owned[0].ID, Reason: "the policy with the managed name is Microsoft-managed; caguard never writes it"}
	}

	kind, id := ActionCreate, ""
	if len(owned) == 1 {
		kind, id = ActionUpdate, owned[0].ID
		if owned[0].State == capolicy.StateEnabled {
			// An administrator switched enforcement on: restoring the definition must not lower it.
			desired.State = capolicy.StateEnabled
		}
	}

	// Never write a definition that would not meet the control: evaluate the policy as it would be.
	check := capolicy.Evaluate(capolicy.Tenant{
		Policies:                []capolicy.Policy{desired},
		GroupMembers:            t.GroupMembers,
		AuthenticationStrengths: t.AuthenticationStrengths,
	}, cfg)
	if check.Verdict == capolicy.VerdictNonCompliant {
		return Action{Kind: ActionSkip, PolicyID: id, Reason: "restoring would not fix the tenant: " + firstReasons(check)}
	}

	if kind == ActionCreate {
		return Action{Kind: ActionCreate, State: desired.State.String(), Changes: capolicy.Diff(desired, capolicy.Policy{}),
			Reason:  fmt.Sprintf("no policy named %q exists; create it in %s state", desired.DisplayName, desired.State),
			desired: desired}
	}
	diffs := capolicy.Diff(desired, owned[0])
	fields := restoreFields(owned[0], desired, capolicy.TopLevelFields(diffs), t, cfg)
	if len(fields) == 0 {
		return Action{Kind: ActionNone, PolicyID: id, Reason: "the managed policy already meets its definition where it matters"}
	}
	var changes []capolicy.Difference
	for _, d := range diffs {
		if slices.Contains(fields, capolicy.TopLevelFields([]capolicy.Difference{d})[0]) {
			changes = append(changes, d)
		}
	}
	return Action{Kind: ActionUpdate, PolicyID: id, State: desired.State.String(), Changes: changes, Fields: fields,
		Reason:  fmt.Sprintf("restore %s of the managed policy (%d field(s) differ from its definition)", strings.Join(fields, " and "), len(changes)),
		desired: desired}
}

// restoreFields picks the fewest top-level properties of the managed policy to put back for it to
// meet the control, so that what an administrator added on top (a stricter AND control, session
// controls) survives a restore. Only state, conditions and grant controls can decide the verdict; when
// no subset of them is enough, all of them are restored.
func restoreFields(actual, desired capolicy.Policy, differing []string, t capolicy.Tenant, cfg capolicy.Config) []string {
	var relevant []string
	for _, f := range differing {
		if f == "state" || f == "conditions" || f == "grantControls" {
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
			}
		}
		if best != nil && len(subset) >= len(best) {
			continue
		}
		rep := capolicy.Evaluate(capolicy.Tenant{
			Policies:                []capolicy.Policy{merged},
			GroupMembers:            t.GroupMembers,
			AuthenticationStrengths: t.AuthenticationStrengths,
		}, cfg)
		if rep.Verdict != capolicy.VerdictNonCompliant {
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

func (r *Reconciler) apply(ctx context.Context, a *Action) error {
	switch a.Kind {
	case ActionCreate:
		created, err := r.Store.CreatePolicy(ctx, a.desired)
		if err != nil {
			return fmt.Errorf("create managed policy: %w", err)
		}
		a.PolicyID = created.ID
	case ActionUpdate:
		if err := r.Store.UpdatePolicy(ctx, a.PolicyID, a.desired, a.Fields); err != nil {
			return fmt.Errorf("update managed policy %s: %w", a.PolicyID, err)
		}
	}
	a.Performed = true
	logctx.From(ctx, r.Log).Warn("wrote the managed policy", zap.String("kind", a.Kind), zap.String("policyId", a.PolicyID),
		zap.String("state", a.State), zap.Strings("fields", a.Fields))
	return nil
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
		return fmt.Errorf("no alert sink took the alert (%s): %w", strings.Join(failed, ", "), last)
	}
	return nil
}
