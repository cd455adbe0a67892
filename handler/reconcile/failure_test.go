package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caguard/caguard/handler/capolicy"
)

// wordsErr is a store error that describes itself, as Graph's and storage's errors do.
type wordsErr struct {
	words     string
	retriable bool
}

func (e wordsErr) Error() string    { return "detail for the log only: raw answer text" }
func (e wordsErr) Describe() string { return e.words }
func (e wordsErr) Retriable() bool  { return e.retriable }

func TestFailureWords(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		words     string
		retriable bool
	}{
		{"a store error's own words, through wrapping", fmt.Errorf("list conditional access policies: %w", wordsErr{words: "Graph answered 403"}), "Graph answered 403", false},
		{"a retriable store error stays retriable", fmt.Errorf("writer lock: %w", wordsErr{words: "storage is unreachable", retriable: true}), "storage is unreachable", true},
		{"a deadline", fmt.Errorf("list: %w", context.DeadlineExceeded), "the run ran out of time (INVOCATION_TIMEOUT) before it finished; a retry later can succeed", true},
		{"a retriable error without words", retryErr{}, "a dependency is unavailable or throttling; a retry later can succeed", true},
		{"anything else", errors.New("boom"), "internal error; the function's log has the details", false},
		{"the in-process writer slot", busyError{err: context.DeadlineExceeded}, "another run of this instance held the writer lock until this run's deadline; a retry runs after it", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFailure(tt.err)
			if f.Describe() != tt.words {
				t.Errorf("words: got %q, want %q", f.Describe(), tt.words)
			}
			var rt interface{ Retriable() bool }
			got := errors.As(f, &rt) && rt.Retriable() || errors.Is(f, context.DeadlineExceeded)
			if got != tt.retriable {
				t.Errorf("retriable: got %v, want %v", got, tt.retriable)
			}
			if !errors.Is(f, tt.err) {
				t.Errorf("the failure does not wrap its cause")
			}
			if again := newFailure(fmt.Errorf("x: %w", f)); again != f {
				t.Errorf("a failure wrapped again got new words %q", again.Words)
			}
		})
	}
}

// TestFailedRunsAlertOncePerCause: a run that may act and fails sends the failure's words as an alert
// whose id depends on the cause alone; a report sends nothing.
func TestFailedRunsAlertOncePerCause(t *testing.T) {
	const forbidden = "Graph answered 403 to list the Conditional Access policies: the app lacks Policy.Read.All"
	s := &sink{name: "test"}
	store := &memStore{listErr: wordsErr{words: forbidden}}
	r := newReconciler(store, true, s)
	clock := time.Date(2026, 11, 20, 2, 30, 0, 0, time.UTC)
	r.Now = func() time.Time { clock = clock.Add(time.Hour); return clock }

	if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerHTTP}); err == nil || !strings.HasPrefix(err.Error(), forbidden) {
		t.Fatalf("report: got %v, want the failure", err)
	}
	if len(s.alerts) != 0 {
		t.Fatalf("a report sent %d alert(s)", len(s.alerts))
	}
	for range 2 {
		_, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true})
		var f *Failure
		if !errors.As(err, &f) || f.Words != forbidden {
			t.Fatalf("sweep: got %v, want a *Failure with the store's words", err)
		}
	}
	if len(s.alerts) != 2 {
		t.Fatalf("alerts: got %d, want 2", len(s.alerts))
	}
	a, b := s.alerts[0], s.alerts[1]
	if a.ID != b.ID || a.Time.Equal(b.Time) {
		t.Errorf("ids %s and %s at %s and %s: want one id for one cause at any time", a.ID, b.ID, a.Time, b.Time)
	}
	if a.Failure != forbidden || a.Verdict != "" || !strings.Contains(a.Summary, forbidden) || a.Trigger != TriggerSweep || a.NextStep == "" {
		t.Errorf("alert: %+v", a)
	}
	store.listErr = wordsErr{words: "Graph is unavailable", retriable: true}
	if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true}); err == nil {
		t.Fatal("got no error")
	}
	if c := s.alerts[2]; c.ID == a.ID || c.Failure != "Graph is unavailable" {
		t.Errorf("another cause: id %s (first %s), failure %q", c.ID, a.ID, c.Failure)
	}

	// A retriable failure of a run its trigger repeats (a queue message before its last delivery)
	// waits for the last attempt to alert; a permanent one alerts at once, retry or not.
	n := len(s.alerts)
	if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true, RetryPending: true}); err == nil {
		t.Fatal("got no error")
	}
	if len(s.alerts) != n {
		t.Errorf("a retriable failure with a retry pending sent %d alert(s)", len(s.alerts)-n)
	}
	store.listErr = wordsErr{words: forbidden}
	if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true, RetryPending: true}); err == nil {
		t.Fatal("got no error")
	}
	if len(s.alerts) != n+1 || s.alerts[n].Failure != forbidden {
		t.Errorf("a permanent failure with a retry pending: alerts %+v, want its own at once", s.alerts[n:])
	}

	// A run whose own alert no sink took raises no second one.
	store.listErr = nil
	store.policies = []capolicy.Policy{weakened(adminPolicy("p1", capolicy.StateEnabled))}
	s.err, s.alerts = errors.New("webhook down"), nil
	_, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true})
	if err == nil || !strings.HasPrefix(err.Error(), "no alert sink took the alert (test)") {
		t.Errorf("undelivered: got %v", err)
	}
	if len(s.alerts) != 1 || s.alerts[0].Failure != "" {
		t.Errorf("alerts: got %+v, want only the run's own", s.alerts)
	}
}

// TestManagedPolicyInAnUnknownStateIsNotWritten: a state caguard does not know may enforce more than
// report-only, so the managed policy in one is left alone and the action says why.
func TestManagedPolicyInAnUnknownStateIsNotWritten(t *testing.T) {
	own := weakened(managed(capolicy.StateUnknown))
	own.UnrecognisedState = "enabledWithGuardrails"
	tenant := capolicy.Tenant{Policies: []capolicy.Policy{own}, GroupMembers: map[string][]string{bgGroup: {bgUser}}}
	rep := capolicy.Evaluate(tenant, cfg())
	a := Plan(rep, tenant, cfg(), own.ID)
	if a.Kind != ActionSkip || !strings.Contains(a.Reason, `"enabledWithGuardrails"`) || a.desired.DisplayName != "" {
		t.Errorf("plan: got %s %q, want a skip naming the state", a.Kind, a.Reason)
	}
}

// TestAlertNamesUnknownValuesOfOtherPolicies: the closest policy's reasons are in the alert anyway;
// the values another policy was failed for are named in its warnings, and count in its id.
func TestAlertNamesUnknownValuesOfOtherPolicies(t *testing.T) {
	odd := adminPolicy("p2", capolicy.StateEnabled)
	odd.GrantControls.Operator = "XOR"
	odd.Conditions.ClientAppTypes = []string{"all", "futureClient"}
	tenant := capolicy.Tenant{Policies: []capolicy.Policy{adminPolicy("p1", capolicy.StateReportOnly), odd},
		GroupMembers: map[string][]string{bgGroup: {bgUser}}}
	r := newReconciler(&memStore{}, false)
	out := Outcome{Report: capolicy.Evaluate(tenant, cfg())}
	a := r.newAlert(Request{Trigger: TriggerSweep, Act: true}, out)
	if a.Closest == nil || a.Closest.ID != "p1" {
		t.Fatalf("closest: %+v, want p1", a.Closest)
	}
	joined := strings.Join(a.Warnings, "\n")
	for _, want := range []string{`"CA001: MFA for Azure management" (p2)`, `conditions.clientAppTypes "futureClient"`, `grantControls.operator "XOR"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings %q: want %s", a.Warnings, want)
		}
	}
	tenant.Policies = tenant.Policies[:1]
	if plain := r.newAlert(Request{Trigger: TriggerSweep, Act: true}, Outcome{Report: capolicy.Evaluate(tenant, cfg())}); plain.ID == a.ID || len(plain.Warnings) != 0 {
		t.Errorf("without the odd policy: id %s (with it %s), warnings %q", plain.ID, a.ID, plain.Warnings)
	}
}
