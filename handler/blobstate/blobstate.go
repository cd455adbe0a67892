// Package blobstate keeps caguard's cross-instance state in the app's own storage account
// (AzureWebJobsStorage): one blob, container "caguard", blob "managed-policy.json", whose lease is the
// single-writer lock and whose content records the id of the managed policy.
//
// Flex Consumption runs the event, timer and HTTP functions on separate instances, and any plan
// overlaps two instances while it replaces one, so an in-process mutex cannot stop two runs that both
// found no managed policy from creating two. A blob lease can: the storage service grants it to one
// holder at a time, it expires by itself when its holder dies (15 s here, Azure's minimum), and while it
// is held every write to the blob must name it, so the ownership record can only be written by the
// current holder.
//
// Contract for callers (reconcile.WriterLock and reconcile.Ownership):
//   - Lock waits while another run holds the lease, until ctx ends; it then fails with an error whose
//     Retriable() is true, so the Functions host retries the invocation. Any storage failure is
//     retriable too: a role assignment that has not propagated yet, an outage, throttling.
//   - The context Lock returns carries the lease. It is renewed in the background and is cancelled,
//     with a retriable cause, as soon as a renewal fails, before the lease can expire: no write is
//     started without the lease.
//   - SetManagedPolicyID writes only with the lease, taken from its ctx (the held context).
package blobstate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/logctx"
)

// Defaults.
const (
	DefaultContainer = "caguard"
	DefaultBlob      = "managed-policy.json"
	// DefaultLeaseDuration is Azure's shortest fixed lease: a holder that dies blocks others at most
	// this long.
	DefaultLeaseDuration = 15 * time.Second
	// DefaultPollInterval is how often a waiting run asks for the lease again (with jitter).
	DefaultPollInterval = 500 * time.Millisecond
)

// Options configure a Store. ServiceURL and exactly one way to authenticate are required.
type Options struct {
	// ServiceURL is the blob endpoint, e.g. https://NAME.blob.core.windows.net/ or Azurite's
	// http://127.0.0.1:10000/devstoreaccount1/.
	ServiceURL string
	// Credential authenticates with Entra ID (caguard's managed identity; it needs Storage Blob Data
	// Contributor or Owner on the account or the container).
	Credential azcore.TokenCredential
	// AccountName and AccountKey authenticate with the account's shared key (a connection string).
	AccountName, AccountKey string
	// SAS is a shared access signature without the leading "?".
	SAS string

	Container     string        // default DefaultContainer
	Blob          string        // default DefaultBlob
	LeaseDuration time.Duration // 15 s to 60 s; default DefaultLeaseDuration
	PollInterval  time.Duration // default DefaultPollInterval
	// RenewInterval is how long after a successful renewal the next is sent; default a third of
	// LeaseDuration, which leaves a slow renewal time to succeed before the lease could expire.
	RenewInterval time.Duration

	// Transport replaces the HTTP client, for tests; nil means azcore's default.
	Transport policy.Transporter
	Now       func() time.Time
	Log       *zap.Logger
}

// Store is the lease and the record. It is safe for concurrent use.
type Store struct {
	container *container.Client
	blob      *blockblob.Client
	name      string // container/blob, for messages
	duration  time.Duration
	renewal   time.Duration
	poll      time.Duration
	now       func() time.Time
	log       *zap.Logger
}

// New builds a Store. It does not contact the service: an unreachable account must not stop the
// handler from starting, since reports need no lease.
func New(o Options) (*Store, error) {
	if o.ServiceURL == "" {
		return nil, errors.New("blob service URL is required")
	}
	if o.Container == "" {
		o.Container = DefaultContainer
	}
	if o.Blob == "" {
		o.Blob = DefaultBlob
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = DefaultLeaseDuration
	}
	if o.LeaseDuration < 15*time.Second || o.LeaseDuration > 60*time.Second {
		return nil, fmt.Errorf("lease duration %s is outside the 15 s to 60 s that Azure Storage accepts", o.LeaseDuration)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.RenewInterval <= 0 || o.RenewInterval > o.LeaseDuration/2 {
		o.RenewInterval = o.LeaseDuration / 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	copts := &container.ClientOptions{}
	// Fail fast and let the Functions host retry the invocation: a lease is short, and a run that
	// spends its time retrying storage only holds others up.
	copts.Retry = policy.RetryOptions{MaxRetries: 2, TryTimeout: 10 * time.Second, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: 2 * time.Second}
	if o.Transport != nil {
		copts.Transport = o.Transport
	}
	containerURL := strings.TrimRight(o.ServiceURL, "/") + "/" + o.Container

	var (
		cc  *container.Client
		err error
	)
	switch {
	case o.AccountKey != "":
		var cred *container.SharedKeyCredential
		if cred, err = container.NewSharedKeyCredential(o.AccountName, o.AccountKey); err != nil {
			// The SDK's message does not hold the key, but say nothing of it anyway.
			return nil, errors.New("storage account key is not valid base64")
		}
		cc, err = container.NewClientWithSharedKeyCredential(containerURL, cred, copts)
	case o.SAS != "":
		cc, err = container.NewClientWithNoCredential(containerURL+"?"+strings.TrimPrefix(o.SAS, "?"), copts)
	case o.Credential != nil:
		cc, err = container.NewClient(containerURL, o.Credential, copts)
	default:
		return nil, errors.New("storage needs a credential, an account key or a shared access signature")
	}
	if err != nil {
		return nil, fmt.Errorf("blob container client: %w", err)
	}
	return &Store{
		container: cc,
		blob:      cc.NewBlockBlobClient(o.Blob),
		name:      o.Container + "/" + o.Blob,
		duration:  o.LeaseDuration,
		renewal:   o.RenewInterval,
		poll:      o.PollInterval,
		now:       o.Now,
		log:       o.Log,
	}, nil
}

// Name is container/blob, for logs.
func (s *Store) Name() string { return s.name }

// unavailable marks a storage failure as one a retry of the invocation can fix.
type unavailable struct {
	msg   string
	err   error
	busy  bool   // another run holds the lease: storage works
	words string // what failed, for a person (Describe); set with say
}

// Words for people, by what a run could not do: an HTTP caller and an alert read them.
const (
	wordsLease   = "storage is unreachable (the writer lease could not be taken); a retry later can succeed"
	wordsBusy    = "another caguard run held the writer lease until this run's deadline; a retry runs after it"
	wordsLost    = "storage stopped answering during the run, so the writer lease was lost and the run stopped before writing; a retry later can succeed"
	wordsRecord  = "storage is unreachable (the recorded id of the managed policy could not be read); a retry later can succeed"
	wordsRecordW = "storage is unreachable (the id of the managed policy could not be recorded)"
)

// say sets the words Describe returns.
func (e *unavailable) say(words string) *unavailable {
	e.words = words
	return e
}

// Describe says what failed in words safe to show any caller: no account key, SAS or URL.
func (e *unavailable) Describe() string {
	if e.words == "" {
		return "storage is unreachable; a retry later can succeed"
	}
	return e.words
}

// newUnavailable wraps err, first dropping the query from a transport error's URL: with SAS
// authentication it holds the signature, and this error is logged.
func newUnavailable(msg string, err error) *unavailable {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.RawQuery != "" {
			u.RawQuery = ""
			ue.URL = u.String()
		} else if perr != nil {
			ue.URL = "(unparsable URL)"
		}
	}
	return &unavailable{msg: msg, err: err}
}

func (e *unavailable) Error() string {
	if e.err == nil {
		return e.msg
	}
	return e.msg + ": " + e.err.Error()
}
func (e *unavailable) Unwrap() error { return e.err }

// Retriable is true: every storage failure here is transient or an infrastructure delay (an outage,
// throttling, a role assignment still propagating, another run holding the lease).
func (e *unavailable) Retriable() bool { return true }

// Busy reports that the lease is held by another run, as opposed to storage failing.
func (e *unavailable) Busy() bool { return e.busy }

// Brief says what failed in words safe to show outside the process: the operation and the storage
// error code or HTTP status, never a URL, key or signature.
func (e *unavailable) Brief() string {
	var re *azcore.ResponseError
	switch {
	case e.busy:
		return e.msg
	case errors.As(e.err, &re) && re.ErrorCode != "":
		return fmt.Sprintf("storage: %s: %d %s", e.msg, re.StatusCode, re.ErrorCode)
	case errors.As(e.err, &re):
		return fmt.Sprintf("storage: %s: HTTP %d", e.msg, re.StatusCode)
	case errors.Is(e.err, context.DeadlineExceeded) || errors.Is(e.err, context.Canceled):
		return "storage: " + e.msg + ": the run ran out of time"
	case e.err != nil:
		return "storage: " + e.msg + ": no answer from the account (network or credential failure)"
	}
	return "storage: " + e.msg
}

// ErrLeaseLost is the cause of a held context's cancellation when a renewal failed.
var ErrLeaseLost = errors.New("writer lease lost")

// errUnlocked is the cause of a held context's cancellation by unlock.
var errUnlocked = errors.New("writer lease released")

type leaseKey struct{}

// Lock acquires the writer lease, waiting while another run holds it, until ctx ends. See the package
// comment for the contract.
func (s *Store) Lock(ctx context.Context) (context.Context, func(), error) {
	id := uuid.NewString()
	lc, err := lease.NewBlobClient(s.blob, &lease.BlobClientOptions{LeaseID: &id})
	if err != nil {
		return nil, nil, fmt.Errorf("lease client: %w", err)
	}
	acquired, err := s.acquire(ctx, lc)
	if err != nil {
		return nil, nil, err
	}

	held, cancel := context.WithCancelCause(ctx)
	held = context.WithValue(held, leaseKey{}, id)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go s.renew(held, lc, acquired, cancel, stop, stopped)
	var once sync.Once
	unlock := func() {
		once.Do(func() {
			close(stop)
			<-stopped
			// Release even when the invocation's context has ended, so the next run need not wait
			// for the lease to expire.
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer rcancel()
			if _, err := lc.ReleaseLease(rctx, nil); err != nil && held.Err() == nil {
				logctx.From(ctx, s.log).Warn("writer lease not released; it expires by itself",
					zap.String("blob", s.name), zap.Duration("within", s.duration), zap.Error(err))
			}
			cancel(errUnlocked)
		})
	}
	return held, unlock, nil
}

// acquire takes the lease, creating the container and the blob on first use. It returns the local
// time just before the successful request was sent: the lease lasts at least until then plus the
// duration.
func (s *Store) acquire(ctx context.Context, lc *lease.BlobClient) (time.Time, error) {
	start := s.now()
	waiting, creates := false, 0
	for {
		sent := time.Now()
		_, err := lc.AcquireLease(ctx, int32(s.duration/time.Second), nil)
		switch {
		case err == nil:
			if waiting {
				logctx.From(ctx, s.log).Info("writer lease acquired after waiting", zap.String("blob", s.name), zap.Duration("waited", s.now().Sub(start)))
			} else {
				logctx.From(ctx, s.log).Debug("writer lease acquired", zap.String("blob", s.name))
			}
			return sent, nil
		case bloberror.HasCode(err, bloberror.LeaseAlreadyPresent):
			if !waiting {
				waiting = true
				logctx.From(ctx, s.log).Info("waiting for the writer lease, held by another run", zap.String("blob", s.name))
			}
			if !s.pause(ctx) {
				return time.Time{}, s.gaveUp(ctx, start)
			}
		case bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound):
			if creates++; creates > 3 {
				return time.Time{}, newUnavailable("acquire writer lease "+s.name+": the blob is still missing after it was created", err).say(wordsLease)
			}
			if err := s.create(ctx); err != nil {
				return time.Time{}, err
			}
		case ctx.Err() != nil && waiting:
			// The deadline ran out during a request rather than between two.
			return time.Time{}, s.gaveUp(ctx, start)
		case ctx.Err() != nil:
			return time.Time{}, newUnavailable("acquire writer lease "+s.name, context.Cause(ctx)).say(wordsLease)
		default:
			return time.Time{}, newUnavailable("acquire writer lease "+s.name, err).say(wordsLease)
		}
	}
}

func (s *Store) gaveUp(ctx context.Context, start time.Time) error {
	u := newUnavailable(fmt.Sprintf("writer lease %s is held by another run; gave up after %s", s.name, s.now().Sub(start).Round(time.Millisecond)), context.Cause(ctx)).say(wordsBusy)
	u.busy = true
	return u
}

// create makes the container and an empty blob to lease. Both may already exist (another instance
// raced us): that is success.
func (s *Store) create(ctx context.Context) error {
	_, err := s.container.Create(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return newUnavailable("create container for "+s.name, err).say(wordsLease)
	}
	etagAny := azcore.ETagAny
	_, err = s.blob.Upload(ctx, streaming.NopCloser(strings.NewReader("")), &blockblob.UploadOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: &etagAny}},
	})
	// A leased or existing blob answers 409 or 412: someone created it first.
	if err != nil && !bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet, bloberror.LeaseIDMissing) {
		return newUnavailable("create "+s.name, err).say(wordsLease)
	}
	return nil
}

// pause waits one poll interval with jitter, so that waiting instances do not ask in step. It reports
// false when ctx ended first.
func (s *Store) pause(ctx context.Context) bool {
	d := s.poll/2 + rand.N(s.poll)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// renew keeps the lease until stop is closed. Each renewal is sent a renewal interval after the last
// successful one and must succeed before the lease could have expired, less a margin; otherwise
// held is cancelled with ErrLeaseLost, so the run stops before writing without the lease.
func (s *Store) renew(held context.Context, lc *lease.BlobClient, last time.Time, cancel context.CancelCauseFunc, stop <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	margin := s.duration / 5
	for {
		t := time.NewTimer(time.Until(last.Add(s.renewal)))
		select {
		case <-stop:
			t.Stop()
			return
		case <-held.Done():
			t.Stop()
			return
		case <-t.C:
		}
		sent := time.Now()
		// The renewal outlives a cancelled invocation context only until unlock, which stops this loop.
		rctx, rcancel := context.WithDeadline(context.WithoutCancel(held), last.Add(s.duration-margin))
		_, err := lc.RenewLease(rctx, nil)
		rcancel()
		if err != nil {
			select {
			case <-stop:
				return
			default:
			}
			logctx.From(held, s.log).Error("writer lease lost; the run stops before writing", zap.String("blob", s.name), zap.Error(err))
			cancel(newUnavailable("renew writer lease "+s.name, errors.Join(ErrLeaseLost, err)).say(wordsLost))
			return
		}
		last = sent
	}
}

// ReadBlob reads another blob of the same container (the tenant registry, caguard/tenants.json), at
// most max bytes. found is false when the blob does not exist; a larger blob is an error.
func (s *Store) ReadBlob(ctx context.Context, name string, max int64) (data []byte, found bool, err error) {
	resp, err := s.container.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			return nil, false, nil
		}
		return nil, false, newUnavailable("read blob "+name, err)
	}
	defer resp.Body.Close()
	data, err = io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, false, newUnavailable("read blob "+name, err)
	}
	if int64(len(data)) > max {
		return nil, true, fmt.Errorf("blob %s is larger than %d bytes", name, max)
	}
	return data, true, nil
}
