package reconcile

import (
	"context"
	"time"

	"github.com/caguard/caguard/handler/capolicy"
)

// Reads after writes. Entra replicates a Conditional Access write for a while after Graph accepted
// it: a read can still show the policy as it was, or answer 404 right after a create.
// terraform-provider-azuread waits for consistent reads after an update and waits out 404s after a
// create; caguard does the same within the run's deadline, on a short schedule of backoffs, instead
// of reporting "the restore did not hold" (or creating a second policy) on the first stale read.

// DefaultReadBackDelays are the waits before each read of a policy that was just written, or that a
// recorded id names but the list left out: about eight seconds in all.
var DefaultReadBackDelays = []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}

// readBackMargin is kept free before the run's deadline for what follows the reads: the alert.
const readBackMargin = 2 * time.Second

func (r *Reconciler) readBackDelays() []time.Duration {
	if r.ReadBackDelays != nil {
		return r.ReadBackDelays
	}
	return DefaultReadBackDelays
}

// wait sleeps d unless that would end within readBackMargin of ctx's deadline or ctx ends first; it
// reports whether the caller may read again.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d+readBackMargin {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// readUntil reads policy id on the read-back schedule until settled says the answer is final, and
// returns the last answer. A read that fails other than with 404 is final.
func (r *Reconciler) readUntil(ctx context.Context, id string, settled func(capolicy.Policy) bool) (capolicy.Policy, error) {
	var (
		got capolicy.Policy
		err error
	)
	for i, d := range r.readBackDelays() {
		if i > 0 && !wait(ctx, d) {
			break
		}
		got, err = r.Store.GetPolicy(ctx, id)
		if err == nil && settled(got) {
			return got, nil
		}
		if err != nil && !isNotFound(err) {
			return got, err
		}
	}
	return got, err
}

// sameWhere reports whether a and b agree on every listed top-level property: a read that still
// matches the policy as it was before the write, where the write changed it, is a stale read.
func sameWhere(a, b capolicy.Policy, fields []string) bool {
	for _, f := range capolicy.TopLevelFields(capolicy.Diff(a, b)) {
		for _, w := range fields {
			if f == w {
				return false
			}
		}
	}
	return true
}
