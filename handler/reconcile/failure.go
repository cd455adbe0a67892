package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/logctx"
)

// Reconcile runs the loop once (see reconcile). A run that fails returns a *Failure: what failed, in
// words a person can act on and safe to show any caller, around the error for the log, so the
// retriable/permanent distinction of the cause is kept. A run that may act (Act) and fails also
// sends those words as an alert, unless it alerted before failing, so a failing nightly sweep is not
// silent; a report (Act false) never alerts.
func (r *Reconciler) Reconcile(ctx context.Context, req Request) (Outcome, error) {
	out, err := r.reconcile(ctx, req)
	if err == nil {
		return out, nil
	}
	f := newFailure(err)
	// A run that alerted before failing (storage down: judged, alerted, restore not attempted) has
	// said it already; a second alert of the same run would only be noise.
	// A retriable failure of a run the trigger repeats (RetryPending) is alerted by the last attempt.
	if req.Act && !(req.RetryPending && retriable(f)) && out.Alert == nil &&
		!slices.ContainsFunc(out.Guarding, func(c ControlOutcome) bool { return c.Alert != nil }) {
		r.alertFailure(ctx, req, f)
	}
	return out, f
}

// Failure is a run that could not finish. Words say what failed (Graph answered 403 and which
// permission is missing, storage is unreachable, which listed item is not a policy at all) without a
// token, a raw Graph answer or a SAS; Err is the cause, for the log and for errors.As (Retriable,
// NotFound).
type Failure struct {
	Words string
	Err   error
}

func (f *Failure) Error() string { return f.Words + ": " + f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// Describe returns Words (azfunc shows them to an HTTP caller and in the invocation log).
func (f *Failure) Describe() string { return f.Words }

// describer is implemented by the errors of the stores (Graph, storage) and of this package that can
// say what failed in words safe to show any caller.
type describer interface{ Describe() string }

// newFailure finds the words of err: those of the outermost error in its chain that describes itself,
// else a sentence by its kind.
func newFailure(err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	var d describer
	if errors.As(err, &d) {
		if w := strings.TrimSpace(d.Describe()); w != "" {
			return &Failure{Words: w, Err: err}
		}
	}
	var rt interface{ Retriable() bool }
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Failure{Words: "the run ran out of time (INVOCATION_TIMEOUT) before it finished; a retry later can succeed", Err: err}
	case errors.Is(err, context.Canceled):
		return &Failure{Words: "the run was cancelled before it finished", Err: err}
	case errors.As(err, &rt) && rt.Retriable():
		return &Failure{Words: "a dependency is unavailable or throttling; a retry later can succeed", Err: err}
	}
	return &Failure{Words: "internal error; the function's log has the details", Err: err}
}

// Describe says that this instance's writer slot stayed taken until the deadline.
func (e busyError) Describe() string {
	return "another run of this instance held the writer lock until this run's deadline; a retry runs after it"
}

// undelivered is a run whose alert no sink took. Its cause is the last sink's error.
type undelivered struct {
	sinks []string
	err   error
}

func (e *undelivered) Error() string {
	return fmt.Sprintf("no alert sink took the alert (%s): %v", strings.Join(e.sinks, ", "), e.err)
}
func (e *undelivered) Unwrap() error { return e.err }

// Describe names the sinks, which are configured names (a webhook's host, an event hub), never a URL.
func (e *undelivered) Describe() string {
	return "no alert sink took the alert (" + strings.Join(e.sinks, ", ") + "); the function's log has each sink's error"
}

// failureAlertTimeout bounds the delivery of a failure alert, which goes out even when the run's own
// deadline is what failed it.
const failureAlertTimeout = 15 * time.Second

// alertFailure sends f as an alert to every sink. Nothing is sent when the run was cancelled (the
// process is stopping or the caller left; the host retries) or when delivering the run's own alert is
// what failed (the same sinks would refuse this one). Delivery failures are logged only: the run has
// failed already, with its own cause.
func (r *Reconciler) alertFailure(ctx context.Context, req Request, f *Failure) {
	var u *undelivered
	if len(r.Sinks) == 0 || errors.Is(f.Err, context.Canceled) || errors.As(f.Err, &u) {
		return
	}
	a := r.failureAlert(req, f)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), failureAlertTimeout)
	defer cancel()
	log := logctx.From(ctx, r.Log)
	for _, s := range r.Sinks {
		if err := s.Send(sctx, a); err != nil {
			log.Error("failure alert not delivered", zap.String("sink", s.Name()), zap.String("alertId", a.ID), zap.Error(err))
		}
	}
}

// failureAlert is the alert of a run that could not finish. Its id depends on the tenant and the words
// alone, which carry no time, attempt count or request id: every run failing for the same cause
// raises the same id, so a sink that deduplicates on it sees one alert per cause.
func (r *Reconciler) failureAlert(req Request, f *Failure) Alert {
	a := Alert{
		Time:     r.Now().UTC(),
		TenantID: r.TenantID,
		Trigger:  req.Trigger,
		Failure:  f.Words,
		Summary:  "caguard could not finish the " + string(req.Trigger) + " run: " + strings.TrimSuffix(f.Words, ".") + ".",
		Actions:  []Action{},
	}
	a.TenantName = r.TenantName
	for i, h := range req.Hints {
		if i == maxChanges {
			break
		}
		a.Changes = append(a.Changes, changeOf(h))
	}
	var rt interface{ Retriable() bool }
	if errors.As(f.Err, &rt) && rt.Retriable() || errors.Is(f.Err, context.DeadlineExceeded) {
		a.NextStep = "The Functions host retries this run and the nightly sweep runs again; if this alert repeats, fix the cause above."
	} else {
		a.NextStep = "Fix the cause above, then POST /api/Evaluate to check the tenant: until a run finishes, caguard neither checks the control nor restores its policy."
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s|run-failed|%s", a.TenantID, f.Words)
	a.ID = hex.EncodeToString(h.Sum(nil))[:16]
	return a
}

// unknownStateSkip is why the managed policy is not written when its state is one caguard does not
// know: that state may enforce more than report-only, and writing a known state over it could lower
// it. "" when the state is known.
func unknownStateSkip(own *capolicy.Policy) string {
	if own.State != capolicy.StateUnknown {
		return ""
	}
	state := "no state"
	if own.UnrecognisedState != "" {
		state = "state " + strconv.Quote(own.UnrecognisedState) + ", which caguard does not recognise"
	}
	return fmt.Sprintf("the managed policy %s has %s; caguard writes nothing rather than risk lowering it (set its state by hand)", own.ID, state)
}
