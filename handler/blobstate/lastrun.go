package blobstate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
)

// A tenant's last-run record: blob tenants/<id>/last-run.json of the container, beside the tenant's
// lease blob. It says what the tenant's last finished or failed run found, for the fleet summary
// of whichever instance answers it. It is a report, never state caguard acts on: no run reads it
// before deciding anything, so it needs no lease, and when two runs of a tenant finish at once the
// last writer wins: both records are true of a moment, and the next run replaces either.

// LastRunVersion is the version of the record's format this code writes and reads.
const LastRunVersion = 1

// Bounds of a record. A reason is one rule's message, a cause one sentence: a few hundred bytes.
// Longer texts are cut on write, and a record over the bounds is not caguard's on read.
const (
	MaxRunReasons   = 32
	MaxRunReasonLen = 512
	MaxRunCauseLen  = 1024
	maxLastRun      = 32 << 10
)

// LastRun is a tenant's last-run record. Exactly one of Verdict and Cause is set: a run either found
// a verdict or could not finish, and Cause says why in words safe to show any caller (no token, no
// raw Graph answer: the words of reconcile's failures).
type LastRun struct {
	Version int       `json:"version"`
	Time    time.Time `json:"time"`
	Trigger string    `json:"trigger"`
	Verdict string    `json:"verdict,omitempty"`
	Reasons []string  `json:"reasons"`
	Cause   string    `json:"cause,omitempty"`
}

// ErrLastRunDamaged is the error of a last-run record that is there but cannot be read as one (not
// JSON, another version, fields out of bounds). Retrying cannot help; the tenant's next run
// replaces it.
var ErrLastRunDamaged = errors.New("last-run record damaged")

// Known values of a record's fields. They mirror reconcile's triggers and capolicy's verdicts, which
// this package does not import: a record naming anything else was not written by caguard.
var (
	runTriggers = map[string]bool{"audit-event": true, "nightly-sweep": true, "http": true}
	runVerdicts = map[string]bool{"compliant": true, "pending-enforcement": true, "non-compliant": true}
)

// LastRunBlob is the name of tenant id's last-run record in the container.
func LastRunBlob(tenantID string) string {
	return "tenants/" + strings.ToLower(tenantID) + "/last-run.json"
}

// WriteLastRun writes tenant id's last-run record, replacing the one before. Texts over the bounds
// are cut; a record that still would not read back (a field out of bounds) is refused unwritten.
func (s *Store) WriteLastRun(ctx context.Context, tenantID string, r LastRun) error {
	// Tenant ids are GUIDs, as policy ids are: nothing else names a blob.
	if !policyIDRE.MatchString(tenantID) {
		return fmt.Errorf("last-run record: %q is not a tenant id", tenantID)
	}
	r.Version = LastRunVersion
	r.Time = r.Time.UTC()
	// A copy without blanks: the caller's reasons are not cut in place.
	var given []string
	for _, reason := range r.Reasons {
		if strings.TrimSpace(reason) != "" {
			given = append(given, reason)
		}
	}
	reasons := make([]string, 0, min(len(given), MaxRunReasons))
	if len(given) > MaxRunReasons {
		reasons = append(append(reasons, given[:MaxRunReasons-1]...), fmt.Sprintf("… and %d more", len(given)-MaxRunReasons+1))
	} else {
		reasons = append(reasons, given...)
	}
	r.Reasons = reasons
	for i := range r.Reasons {
		r.Reasons[i] = cut(r.Reasons[i], MaxRunReasonLen)
	}
	r.Cause = cut(r.Cause, MaxRunCauseLen)
	if err := r.validate(); err != nil {
		return fmt.Errorf("last-run record of tenant %s not written: %w", tenantID, err)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	name := LastRunBlob(tenantID)
	ct := "application/json"
	_, err = s.container.NewBlockBlobClient(name).Upload(ctx, streaming.NopCloser(bytes.NewReader(body)), &blockblob.UploadOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: &ct},
	})
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		// The container is made by the first lease; a fleet read before any write has none yet.
		if _, cerr := s.container.Create(ctx, nil); cerr != nil && !bloberror.HasCode(cerr, bloberror.ContainerAlreadyExists) {
			return newUnavailable("write "+name, cerr)
		}
		_, err = s.container.NewBlockBlobClient(name).Upload(ctx, streaming.NopCloser(bytes.NewReader(body)), &blockblob.UploadOptions{
			HTTPHeaders: &blob.HTTPHeaders{BlobContentType: &ct},
		})
	}
	if err != nil {
		return newUnavailable("write "+name, err)
	}
	return nil
}

// ReadLastRun reads tenant id's last-run record. found is false when there is none. A record that
// is there and does not validate is an error wrapping ErrLastRunDamaged; a storage failure is a
// retriable error.
func (s *Store) ReadLastRun(ctx context.Context, tenantID string) (r LastRun, found bool, err error) {
	if !policyIDRE.MatchString(tenantID) {
		return LastRun{}, false, fmt.Errorf("last-run record: %q is not a tenant id", tenantID)
	}
	name := LastRunBlob(tenantID)
	data, found, err := s.ReadBlob(ctx, name, maxLastRun)
	switch {
	case err != nil && found:
		// Only a blob over the bound is an error with found true.
		return LastRun{}, true, fmt.Errorf("%s: %w: larger than %d bytes", name, ErrLastRunDamaged, maxLastRun)
	case err != nil || !found:
		return LastRun{}, false, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return LastRun{}, true, fmt.Errorf("%s: %w: not a record: %v", name, ErrLastRunDamaged, err)
	}
	if dec.More() {
		return LastRun{}, true, fmt.Errorf("%s: %w: data after the record", name, ErrLastRunDamaged)
	}
	if err := r.validate(); err != nil {
		return LastRun{}, true, fmt.Errorf("%s: %w: %v", name, ErrLastRunDamaged, err)
	}
	if r.Time.After(s.now().Add(maxClockSkew)) {
		// A record from the future would hide every newer run; it is not a true one.
		return LastRun{}, true, fmt.Errorf("%s: %w: its time %s is in the future", name, ErrLastRunDamaged, r.Time.Format(time.RFC3339))
	}
	r.Time = r.Time.UTC()
	return r, true, nil
}

// maxClockSkew is how far ahead of this instance's clock another instance's may be.
const maxClockSkew = 10 * time.Minute

func (r LastRun) validate() error {
	switch {
	case r.Version != LastRunVersion:
		return fmt.Errorf("version %d, want %d", r.Version, LastRunVersion)
	case r.Time.IsZero():
		return errors.New("no time")
	case !runTriggers[r.Trigger]:
		return fmt.Errorf("trigger %q is not one of caguard's", r.Trigger)
	case (r.Verdict == "") == (r.Cause == ""):
		return errors.New("a record holds a verdict or a cause, exactly one")
	case r.Verdict != "" && !runVerdicts[r.Verdict]:
		return fmt.Errorf("verdict %q is not one of caguard's", r.Verdict)
	case r.Reasons == nil:
		return errors.New("no reasons list")
	case len(r.Reasons) > MaxRunReasons:
		return fmt.Errorf("%d reasons, at most %d", len(r.Reasons), MaxRunReasons)
	case !text(r.Cause, MaxRunCauseLen):
		return errors.New("cause is not text within bounds")
	}
	for _, reason := range r.Reasons {
		if reason == "" || !text(reason, MaxRunReasonLen) {
			return errors.New("a reason is not text within bounds")
		}
	}
	return nil
}

// text reports whether s is valid UTF-8 of at most max bytes without control characters.
func text(s string, max int) bool {
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// cut shortens s to at most max bytes on a rune boundary, marking the cut, and replaces control
// characters (a multi-line message) with spaces.
func cut(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return ' '
		}
		return c
	}, s)
	if len(s) <= max {
		return s
	}
	const mark = "…"
	n := max - len(mark)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + mark
}
