package reconcile

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caguard/caguard/handler/capolicy"
)

// sharedLock is a WriterLock with one holder at a time, shared by several Reconcilers as the blob
// lease is shared by several instances. lose cancels the current holder's context, as a failed
// renewal does.
type sharedLock struct {
	slot chan struct{}
	mu   sync.Mutex
	lose context.CancelCauseFunc
}

func newSharedLock() *sharedLock { return &sharedLock{slot: make(chan struct{}, 1)} }

func (l *sharedLock) Lock(ctx context.Context) (context.Context, func(), error) {
	select {
	case l.slot <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, busyError{err: ctx.Err()}
	}
	held, cancel := context.WithCancelCause(ctx)
	l.mu.Lock()
	l.lose = cancel
	l.mu.Unlock()
	var once sync.Once
	return held, func() { once.Do(func() { cancel(errors.New("unlocked")); <-l.slot }) }, nil
}

func (l *sharedLock) loseNow(cause error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lose(cause)
}

// failingLock never grants the lock.
type failingLock struct{ err error }

func (l failingLock) Lock(context.Context) (context.Context, func(), error) { return nil, nil, l.err }

// hookStore runs onList inside the first ListPolicies (later calls do not wait for it), and counts
// the lists.
type hookStore struct {
	*memStore
	fired  atomic.Bool
	onList func(ctx context.Context) error
	lists  atomic.Int32
}

func (h *hookStore) ListPolicies(ctx context.Context) ([]capolicy.Policy, error) {
	h.lists.Add(1)
	if h.onList != nil && h.fired.CompareAndSwap(false, true) {
		if err := h.onList(ctx); err != nil {
			return nil, err
		}
	}
	return h.memStore.ListPolicies(ctx)
}

func isRetriable(err error) bool {
	var r interface{ Retriable() bool }
	return errors.As(err, &r) && r.Retriable()
}

// Two instances (two Reconcilers) that share the writer lock create the managed policy once, however
// their runs interleave.
func TestInstancesSharingTheWriterLockCreateOnePolicy(t *testing.T) {
	store := &memStore{}
	lock := newSharedLock()
	a, b := newReconciler(store, true), newReconciler(store, true)
	a.Lock, b.Lock = lock, lock
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r := a
			if i%2 == 1 {
				r = b
			}
			if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerAuditEvent, Act: true}); err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := len(store.created); got != 1 {
		t.Fatalf("created %d policies, want 1", got)
	}
}

// While another instance holds the writer lock, a report still answers, and a run that would write
// fails as retriable at its deadline, having read and written nothing.
func TestReportsNeverWaitForTheWriterLock(t *testing.T) {
	store := &hookStore{memStore: &memStore{}}
	lock := newSharedLock()
	r := newReconciler(store.memStore, true)
	r.Store, r.Lock = store, lock
	lock.slot <- struct{}{} // another instance holds it, and keeps it for the whole test

	out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerHTTP, Act: false})
	if err != nil {
		t.Fatalf("report while the lock is held: %v", err)
	}
	if out.Report.Verdict != capolicy.VerdictNonCompliant {
		t.Errorf("report verdict %s, want non-compliant", out.Report.Verdict)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	lists := store.lists.Load()
	_, err = r.Reconcile(ctx, Request{Trigger: TriggerHTTP, Act: true})
	if !isRetriable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("write run while the lock is held: got %v, want a retriable deadline error", err)
	}
	if store.lists.Load() != lists || len(store.created) != 0 {
		t.Errorf("a run without the lock read (%d lists) or wrote (%d creates)", store.lists.Load()-lists, len(store.created))
	}
}

// A lock that cannot be had fails the run with the lock's error, before anything is read.
func TestWriterLockFailureStopsTheRunBeforeItReads(t *testing.T) {
	store := &hookStore{memStore: &memStore{}}
	r := newReconciler(store.memStore, true)
	r.Store, r.Lock = store, failingLock{err: busyError{err: errors.New("storage unavailable")}}
	_, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true})
	if !isRetriable(err) {
		t.Errorf("got %v, want the lock's retriable error", err)
	}
	if n := store.lists.Load(); n != 0 {
		t.Errorf("read %d times without the lock, want 0", n)
	}
}

// A lock lost mid-run (its renewal failed) cancels the run before it writes, and the run fails with
// the lock's retriable cause rather than a bare "context canceled".
func TestLostWriterLockStopsTheRunRetriably(t *testing.T) {
	lost := busyError{err: errors.New("writer lease lost")}
	lock := newSharedLock()
	store := &hookStore{memStore: &memStore{}, onList: func(ctx context.Context) error {
		lock.loseNow(lost)
		<-ctx.Done()
		return ctx.Err()
	}}
	r := newReconciler(store.memStore, true)
	r.Store, r.Lock = store, lock
	_, err := r.Reconcile(context.Background(), Request{Trigger: TriggerAuditEvent, Act: true})
	if !errors.Is(err, lost) || !isRetriable(err) {
		t.Errorf("got %v, want the lost lock's retriable cause", err)
	}
	if len(store.created) != 0 || len(store.updates) != 0 {
		t.Errorf("wrote after losing the lock: %d creates, %d updates", len(store.created), len(store.updates))
	}
}

// Without a cross-instance lock, runs of one process still take turns; a run that waits past its
// deadline fails as retriable, and a report does not wait at all.
func TestInProcessWriterSlot(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	store := &hookStore{memStore: &memStore{}, onList: func(context.Context) error {
		close(entered)
		<-release
		return nil
	}}
	r := newReconciler(store.memStore, true)
	r.Store = store
	first := make(chan error, 1)
	go func() {
		_, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true})
		first <- err
	}()
	<-entered // the first run holds the slot, inside its read

	if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerHTTP, Act: false}); err != nil {
		t.Errorf("report while a run writes: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := r.Reconcile(ctx, Request{Trigger: TriggerHTTP, Act: true}); !isRetriable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second writer: got %v, want a retriable deadline error", err)
	}

	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerHTTP, Act: true}); err != nil {
		t.Errorf("the slot is not free after the first run: %v", err)
	}
	if got := len(store.created); got != 1 {
		t.Errorf("created %d policies, want 1", got)
	}
}
