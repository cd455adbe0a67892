package blobstate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caguard/caguard/handler/blobstate/azuritetest"
)

// One emulator serves the package; each test uses its own container, so tests do not share a lease.
var (
	shared    *azuritetest.Azurite
	sharedErr error
)

func TestMain(m *testing.M) {
	bin, err := azuritetest.Find()
	if err == nil {
		dir, derr := os.MkdirTemp("", "caguard-azurite-")
		if derr != nil {
			fmt.Fprintln(os.Stderr, derr)
			os.Exit(1)
		}
		shared, err = azuritetest.Launch(bin, dir)
		code := 1
		if err == nil {
			code = m.Run()
			shared.Stop()
		} else {
			fmt.Fprintln(os.Stderr, err)
		}
		_ = os.RemoveAll(dir)
		os.Exit(code)
	}
	sharedErr = err
	os.Exit(m.Run())
}

// emulator returns the package's Azurite, or skips the test when there is none.
func emulator(t *testing.T) *azuritetest.Azurite {
	t.Helper()
	if shared == nil {
		azuritetest.Unavailable(t, sharedErr)
	}
	return shared
}

const policyID = "aaaaaaaa-0000-4000-8000-00000000000a"

// containers numbers the containers: with -count, each run of a test needs a fresh one.
var containers atomic.Int32

// containerName gives each test run its own container: lowercase letters, digits and dashes.
func containerName(t *testing.T) string {
	n := strings.ToLower(t.Name())
	n = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, n)
	if len(n) > 50 {
		n = n[:50]
	}
	return fmt.Sprintf("t%d-%s", containers.Add(1), strings.Trim(n, "-"))
}

// newStore is one caguard instance's view of the emulator.
func newStore(t *testing.T, a *azuritetest.Azurite, containerName string) *Store {
	t.Helper()
	s, err := New(Options{ServiceURL: a.BlobEndpoint(), AccountName: azuritetest.Account, AccountKey: azuritetest.Key,
		Container: containerName, PollInterval: 50 * time.Millisecond, RenewInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// raw is a client of the same blob that is not caguard: a dead holder, an operator, a damaged record.
func raw(t *testing.T, a *azuritetest.Azurite, containerName string) *blockblob.Client {
	t.Helper()
	cred, err := container.NewSharedKeyCredential(azuritetest.Account, azuritetest.Key)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(a.BlobEndpoint()+"/"+containerName, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cc.NewBlockBlobClient(DefaultBlob)
}

func retriable(err error) bool {
	var r interface{ Retriable() bool }
	return errors.As(err, &r) && r.Retriable()
}

func leaseState(t *testing.T, b *blockblob.Client) lease.StateType {
	t.Helper()
	props, err := b.GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return *props.LeaseState
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no service URL", Options{AccountName: "a", AccountKey: azuritetest.Key}, "service URL"},
		{"no way to authenticate", Options{ServiceURL: "https://a.blob.core.windows.net/"}, "credential"},
		{"a lease shorter than Azure accepts", Options{ServiceURL: "https://a.blob.core.windows.net/", SAS: "sig=x", LeaseDuration: 10 * time.Second}, "15 s to 60 s"},
		{"a lease longer than Azure accepts", Options{ServiceURL: "https://a.blob.core.windows.net/", SAS: "sig=x", LeaseDuration: 2 * time.Minute}, "15 s to 60 s"},
		{"an account key that is not base64", Options{ServiceURL: "https://a.blob.core.windows.net/", AccountName: "a", AccountKey: "not*base64"}, "base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error about %q", err, tt.want)
			}
		})
	}
}

// Three instances, each with four concurrent runs, take turns: never two holders at once, and the
// first run creates the container and the blob whoever gets there first.
func TestLockAdmitsOneHolderAcrossInstances(t *testing.T) {
	a := emulator(t)
	name := containerName(t)
	stores := []*Store{newStore(t, a, name), newStore(t, a, name), newStore(t, a, name)}

	var inside, maxInside, runs atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			defer cancel()
			held, unlock, err := stores[i%3].Lock(ctx)
			if err != nil {
				errs <- fmt.Errorf("run %d: %w", i, err)
				return
			}
			defer unlock()
			n := inside.Add(1)
			for {
				m := maxInside.Load()
				if n <= m || maxInside.CompareAndSwap(m, n) {
					break
				}
			}
			// A read and a write under the lease, like a reconcile's.
			if _, err := stores[i%3].ManagedPolicyID(held); err != nil {
				errs <- fmt.Errorf("run %d: %w", i, err)
			}
			if err := stores[i%3].SetManagedPolicyID(held, policyID); err != nil {
				errs <- fmt.Errorf("run %d: %w", i, err)
			}
			runs.Add(1)
			inside.Add(-1)
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := maxInside.Load(); got != 1 {
		t.Errorf("got %d holders at once, want 1", got)
	}
	if got := runs.Load(); got != 12 {
		t.Errorf("got %d runs through the lock, want 12", got)
	}
	if got := leaseState(t, raw(t, a, name)); got != lease.StateTypeAvailable {
		t.Errorf("lease state after every unlock: got %s, want available", got)
	}
}

// A run that cannot get the lease before its context ends fails as retriable, saying the lease is
// held, and the lease is free for the next run once its holder unlocks.
func TestLockWaitsUntilItsContextEndsThenFailsRetriably(t *testing.T) {
	a := emulator(t)
	name := containerName(t)
	holder := newStore(t, a, name)
	_, unlock, err := holder.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	// The waiter's context ends once it has said it waits: no timing decides the outcome.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	core, _ := observer.New(zapcore.DebugLevel)
	waiter := newStore(t, a, name)
	waiter.log = zap.New(core, zap.Hooks(func(e zapcore.Entry) error {
		if strings.HasPrefix(e.Message, "waiting for the writer lease") {
			cancel()
		}
		return nil
	}))
	_, _, err = waiter.Lock(ctx)
	if err == nil {
		t.Fatal("got the lease while another instance held it")
	}
	if !retriable(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("got %v (retriable %t), want a retriable error wrapping the context's end", err, retriable(err))
	}
	if !strings.Contains(err.Error(), "held by another run") {
		t.Errorf("error %q does not say the lease is held", err)
	}

	unlock()
	unlock() // safe twice
	held, unlock2, err := waiter.Lock(context.Background())
	if err != nil {
		t.Fatalf("lease not free after unlock: %v", err)
	}
	unlock2()
	if held.Err() == nil {
		t.Error("the held context is still live after unlock")
	}
}

// A holder that dies never renews or releases: its lease expires (15 s, Azure's minimum) and the next
// run proceeds; the dead holder's lease id no longer opens the blob.
func TestDeadHoldersLeaseExpiresAndTheNextRunProceeds(t *testing.T) {
	t.Parallel()
	a := emulator(t)
	name := containerName(t)
	s := newStore(t, a, name)
	if _, unlock, err := s.Lock(context.Background()); err != nil { // creates container and blob
		t.Fatal(err)
	} else {
		unlock()
	}

	dead, err := lease.NewBlobClient(raw(t, a, name), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dead.AcquireLease(context.Background(), 15, nil); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	held, unlock, err := s.Lock(ctx)
	if err != nil {
		t.Fatalf("the next run did not get the lease after the dead holder's expired: %v", err)
	}
	defer unlock()
	if err := s.SetManagedPolicyID(held, policyID); err != nil {
		t.Fatalf("write under the new lease: %v", err)
	}
	if _, err := dead.RenewLease(context.Background(), nil); err == nil {
		t.Error("the dead holder could still renew a lease that another run now holds")
	}
}

// A renewal that fails cancels the held context, with a retriable cause, so the run writes nothing
// more; and the storage service itself refuses a record written under a lease that is gone.
func TestLostLeaseCancelsTheRunAndRefusesItsWrites(t *testing.T) {
	t.Parallel()
	a := emulator(t)
	name := containerName(t)
	s := newStore(t, a, name)
	held, unlock, err := s.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	leaseID, _ := held.Value(leaseKey{}).(string)

	// An operator breaks the lease at once: the next renewal (within a third of 15 s) fails.
	breakNow := int32(0)
	if _, err := mustLease(t, raw(t, a, name)).BreakLease(context.Background(), &lease.BlobBreakOptions{BreakPeriod: &breakNow}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("held context not cancelled after the lease was broken")
	}
	cause := context.Cause(held)
	if !errors.Is(cause, ErrLeaseLost) || !retriable(cause) {
		t.Errorf("cause %v: want ErrLeaseLost, retriable", cause)
	}
	if err := s.SetManagedPolicyID(held, policyID); err == nil {
		t.Error("recorded the managed policy after the lease was lost")
	}

	// Another instance takes the lease; a write naming the old lease is refused by the service.
	other := newStore(t, a, name)
	_, unlockOther, err := other.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer unlockOther()
	stale := context.WithValue(context.Background(), leaseKey{}, leaseID)
	if err := s.SetManagedPolicyID(stale, policyID); err == nil || !retriable(err) {
		t.Errorf("write under a stale lease: got %v, want a retriable refusal", err)
	}
	if got, err := other.ManagedPolicyID(context.Background()); err != nil || got != "" {
		t.Errorf("record after refused writes: got %q, %v; want none", got, err)
	}
}

func mustLease(t *testing.T, b *blockblob.Client) *lease.BlobClient {
	t.Helper()
	lc, err := lease.NewBlobClient(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return lc
}

func TestOwnershipRecord(t *testing.T) {
	a := emulator(t)
	name := containerName(t)
	s, reader := newStore(t, a, name), newStore(t, a, name)
	ctx := context.Background()

	if got, err := s.ManagedPolicyID(ctx); err != nil || got != "" {
		t.Fatalf("before anything exists: got %q, %v; want none", got, err)
	}
	if err := s.SetManagedPolicyID(ctx, policyID); !errors.Is(err, ErrNotHeld) {
		t.Errorf("write without the lease: got %v, want ErrNotHeld", err)
	}

	held, unlock, err := s.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.ManagedPolicyID(held); err != nil || got != "" {
		t.Fatalf("fresh blob: got %q, %v; want none", got, err)
	}
	if err := s.SetManagedPolicyID(held, "caguard-policy"); err == nil {
		t.Error("recorded an id that is not a policy id")
	}
	if err := s.SetManagedPolicyID(held, strings.ToUpper(policyID)); err != nil {
		t.Fatal(err)
	}
	unlock()
	if got, err := reader.ManagedPolicyID(ctx); err != nil || got != policyID {
		t.Errorf("another instance reads %q, %v; want %q", got, err, policyID)
	}
}

// A record someone else damaged is an error, never "no record": an unknown owner must stop writes.
func TestDamagedRecordIsAnErrorNotAnEmptyRecord(t *testing.T) {
	a := emulator(t)
	tests := []struct {
		name, body, want string
	}{
		{"not JSON", `{"managedPolicyId":`, "not valid JSON"},
		{"not a policy id", `{"managedPolicyId":"../../etc"}`, "not a policy id"},
		{"far too large", `{"pad":"` + strings.Repeat("x", maxRecord) + `"}`, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := containerName(t)
			s := newStore(t, a, name)
			if _, unlock, err := s.Lock(context.Background()); err != nil {
				t.Fatal(err)
			} else {
				unlock()
			}
			if _, err := raw(t, a, name).Upload(context.Background(), streaming.NopCloser(strings.NewReader(tt.body)), &blockblob.UploadOptions{HTTPHeaders: &blob.HTTPHeaders{}}); err != nil {
				t.Fatal(err)
			}
			got, err := s.ManagedPolicyID(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %q, %v; want an error saying %q", got, err, tt.want)
			}
			if retriable(err) {
				t.Errorf("a damaged record is retriable; a retry cannot mend it")
			}
		})
	}
}

// Storage that stops answering: a held lease is given up (the run is cancelled) and new runs fail
// fast as retriable instead of writing without the lease.
func TestUnavailableStorageFailsRetriably(t *testing.T) {
	t.Parallel()
	a := azuritetest.Start(t) // its own emulator: this test stops it
	name := containerName(t)
	s := newStore(t, a, name)
	held, unlock, err := s.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	a.Stop()
	select {
	case <-held.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("held context not cancelled after storage went away")
	}
	if cause := context.Cause(held); !errors.Is(cause, ErrLeaseLost) || !retriable(cause) {
		t.Errorf("cause %v: want ErrLeaseLost, retriable", cause)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := newStore(t, a, name).Lock(ctx); err == nil || !retriable(err) {
		t.Errorf("Lock with storage down: got %v, want a retriable error", err)
	} else if ctx.Err() != nil {
		t.Errorf("Lock with storage down waited for its deadline instead of failing: %v", err)
	}
	if _, err := s.ManagedPolicyID(ctx); err == nil || !retriable(err) {
		t.Errorf("ManagedPolicyID with storage down: got %v, want a retriable error", err)
	}
}

// With SAS authentication the signature travels in every request's query; a transport error, which
// is logged, must not carry it.
func TestErrorsDoNotCarryTheSignature(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/" + azuritetest.Account
	ln.Close() // nothing listens there now: every request fails in transport
	const secret = "c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtbGVhaw"
	s, err := New(Options{ServiceURL: closed, SAS: "sv=2022-11-02&ss=b&srt=sco&sp=rwdlac&sig=" + secret})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, lockErr := s.Lock(ctx)
	_, readErr := s.ManagedPolicyID(ctx)
	for _, err := range []error{lockErr, readErr} {
		if err == nil || !retriable(err) {
			t.Errorf("got %v, want a retriable error", err)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows the signature: %v", err)
		}
	}
}

// ReadBlob reads another blob of the container, such as the tenant registry, from real storage: absent
// is not an error, too large is.
func TestReadBlobFromAzurite(t *testing.T) {
	a := azuritetest.Start(t)
	s := newStore(t, a, "readblob")
	ctx := context.Background()
	if _, found, err := s.ReadBlob(ctx, "tenants.json", 1024); err != nil || found {
		t.Fatalf("no container yet: found %v, %v", found, err)
	}
	cred, err := container.NewSharedKeyCredential(azuritetest.Account, azuritetest.Key)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(a.BlobEndpoint()+"/readblob", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.ReadBlob(ctx, "tenants.json", 1024); err != nil || found {
		t.Fatalf("no blob: found %v, %v", found, err)
	}
	doc := []byte(`{"tenants": []}`)
	if _, err := cc.NewBlockBlobClient("tenants.json").UploadBuffer(ctx, doc, nil); err != nil {
		t.Fatal(err)
	}
	got, found, err := s.ReadBlob(ctx, "tenants.json", 1024)
	if err != nil || !found || string(got) != string(doc) {
		t.Fatalf("read: %q %v %v", got, found, err)
	}
	if _, _, err := s.ReadBlob(ctx, "tenants.json", 4); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a blob over the bound: %v", err)
	}
}

// Each control's managed policy has its own entry in the one record, written under the same lease:
// setting one keeps the others and the default control's id, and a record written before the
// catalogue reads as before.
func TestOwnershipRecordPerControl(t *testing.T) {
	a := emulator(t)
	name := containerName(t)
	s, reader := newStore(t, a, name), newStore(t, a, name)
	ctx := context.Background()
	const other = "bbbbbbbb-0000-4000-8000-00000000000b"

	if err := s.SetControlPolicyID(ctx, "admin-mfa", policyID); !errors.Is(err, ErrNotHeld) {
		t.Errorf("write without the lease: got %v, want ErrNotHeld", err)
	}
	held, unlock, err := s.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.ControlPolicyIDs(held); err != nil || len(got) != 0 {
		t.Fatalf("fresh blob: got %v, %v; want none", got, err)
	}
	if err := s.SetControlPolicyID(held, "Admin MFA", policyID); err == nil {
		t.Error("recorded under a key that is not a control id")
	}
	if err := s.SetControlPolicyID(held, "admin-mfa", "caguard-policy"); err == nil {
		t.Error("recorded an id that is not a policy id")
	}
	if err := s.SetManagedPolicyID(held, policyID); err != nil {
		t.Fatal(err)
	}
	if err := s.SetControlPolicyID(held, "admin-mfa", strings.ToUpper(other)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetControlPolicyID(held, "block-device-code-flow", policyID); err != nil {
		t.Fatal(err)
	}
	// Setting the default control's id again keeps the controls' entries.
	if err := s.SetManagedPolicyID(held, policyID); err != nil {
		t.Fatal(err)
	}
	unlock()
	got, err := reader.ControlPolicyIDs(ctx)
	if err != nil || len(got) != 2 || got["admin-mfa"] != other || got["block-device-code-flow"] != policyID {
		t.Errorf("another instance reads %v, %v; want both controls", got, err)
	}
	if id, err := reader.ManagedPolicyID(ctx); err != nil || id != policyID {
		t.Errorf("default control: %q, %v; want %q", id, err, policyID)
	}

	// A record from before the catalogue.
	if _, err := raw(t, a, name).Upload(ctx, streaming.NopCloser(strings.NewReader(`{"managedPolicyId":"`+policyID+`","recordedAt":"2026-01-02T03:04:05Z"}`)),
		&blockblob.UploadOptions{HTTPHeaders: &blob.HTTPHeaders{}}); err != nil {
		t.Fatal(err)
	}
	if id, err := reader.ManagedPolicyID(ctx); err != nil || id != policyID {
		t.Errorf("old record: %q, %v; want %q", id, err, policyID)
	}
	if got, err := reader.ControlPolicyIDs(ctx); err != nil || len(got) != 0 {
		t.Errorf("old record: controls %v, %v; want none", got, err)
	}

	// A damaged entry is an error, and is not overwritten by a control's write.
	if _, err := raw(t, a, name).Upload(ctx, streaming.NopCloser(strings.NewReader(`{"controls":`)), &blockblob.UploadOptions{HTTPHeaders: &blob.HTTPHeaders{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.ControlPolicyIDs(ctx); err == nil || retriable(err) {
		t.Errorf("damaged record: %v, want a permanent error", err)
	}
	held, unlock, err = s.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := s.SetControlPolicyID(held, "admin-mfa", other); err == nil {
		t.Error("a control's write replaced a damaged record")
	}
	if _, err := raw(t, a, name).Upload(ctx, streaming.NopCloser(strings.NewReader(`{"controls":{"admin-mfa":"../x"}}`)), &blockblob.UploadOptions{
		HTTPHeaders: &blob.HTTPHeaders{}, AccessConditions: leaseOf(held)}); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.ControlPolicyIDs(ctx); err == nil || !strings.Contains(err.Error(), "not a control id and a policy id") {
		t.Errorf("entry that is not a policy id: %v, want an error saying so", err)
	}
	if id, err := reader.ManagedPolicyID(ctx); err != nil || id != "" {
		t.Errorf("default control beside a damaged control entry: %q, %v; want none, readable", id, err)
	}
}

// leaseOf names the lease held carries, for a raw write to the leased blob.
func leaseOf(held context.Context) *blob.AccessConditions {
	id, _ := held.Value(leaseKey{}).(string)
	return &blob.AccessConditions{LeaseAccessConditions: &blob.LeaseAccessConditions{LeaseID: &id}}
}
