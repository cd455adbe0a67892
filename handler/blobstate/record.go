package blobstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
)

// record is the blob's content. An empty blob (as created for the lease) records nothing. A record
// written before the catalogue has no controls; it reads as before, and a reader that predates the
// catalogue ignores them.
type record struct {
	// ManagedPolicyID is the managed policy of azure-management-mfa.
	ManagedPolicyID string `json:"managedPolicyId"`
	// Controls holds the managed policy of each other catalogue control, by control id.
	Controls   map[string]string `json:"controls,omitempty"`
	RecordedAt time.Time         `json:"recordedAt"`
}

// maxRecord bounds what is read: the record is a few hundred bytes; anything larger is not ours.
const maxRecord = 64 << 10

// Conditional Access policy ids are GUIDs.
var policyIDRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Control ids are kebab-case.
var controlIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// ErrNotHeld is returned by SetManagedPolicyID when its context does not carry the writer lease.
var ErrNotHeld = errors.New("the writer lease is not held: the ownership record is written only under it")

// damaged is a record that is there but not caguard's to read: not retriable, a person must look.
type damaged struct{ error }

// read returns the record; an absent or empty blob is the zero record. It needs no lease.
func (s *Store) read(ctx context.Context) (record, error) {
	resp, err := s.blob.DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return record{}, nil
	}
	if err != nil {
		return record{}, newUnavailable("read ownership record "+s.name, err).say(wordsRecord)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRecord+1))
	if err != nil {
		return record{}, newUnavailable("read ownership record "+s.name, err).say(wordsRecord)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return record{}, nil
	}
	// A damaged record is not retriable: a person must look at it, and until then nothing is written.
	if len(b) > maxRecord {
		return record{}, damaged{fmt.Errorf("ownership record %s is larger than %d bytes; it is not caguard's", s.name, maxRecord)}
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, damaged{fmt.Errorf("ownership record %s is not valid JSON: %w", s.name, err)}
	}
	return r, nil
}

// ManagedPolicyID returns the recorded id of the managed policy, or "" when none is recorded. It needs
// no lease. A record that cannot be read is an error, never "": an unknown owner is not "no owner".
func (s *Store) ManagedPolicyID(ctx context.Context) (string, error) {
	r, err := s.read(ctx)
	if err != nil {
		return "", err
	}
	if r.ManagedPolicyID != "" && !policyIDRE.MatchString(r.ManagedPolicyID) {
		return "", fmt.Errorf("ownership record %s holds %q, which is not a policy id", s.name, r.ManagedPolicyID)
	}
	return strings.ToLower(r.ManagedPolicyID), nil
}

// ControlPolicyIDs returns the recorded managed policy of each control other than
// azure-management-mfa, by control id (empty when none is recorded). It needs no lease. An entry
// that is not a control id and a policy id makes the record damaged: an error, never "no owner".
func (s *Store) ControlPolicyIDs(ctx context.Context) (map[string]string, error) {
	r, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(r.Controls))
	for control, id := range r.Controls {
		if !controlIDRE.MatchString(control) || !policyIDRE.MatchString(id) {
			return nil, fmt.Errorf("ownership record %s holds %q for %q, which is not a control id and a policy id", s.name, id, control)
		}
		out[control] = strings.ToLower(id)
	}
	return out, nil
}

// SetManagedPolicyID records id. ctx must be the context Lock returned: the write names the lease, so
// the storage service refuses it unless this run still holds the lease. The controls' entries are
// kept; a damaged record is replaced, as it always was.
func (s *Store) SetManagedPolicyID(ctx context.Context, id string) error {
	if !policyIDRE.MatchString(id) {
		return fmt.Errorf("record managed policy: %q is not a policy id", id)
	}
	return s.update(ctx, id, func(r *record) { r.ManagedPolicyID = strings.ToLower(id) }, true)
}

// SetControlPolicyID records id as the managed policy of control, under the lease as
// SetManagedPolicyID, keeping every other entry. A damaged record is not overwritten: the error
// says so, and a person must look at it.
func (s *Store) SetControlPolicyID(ctx context.Context, control, id string) error {
	if !controlIDRE.MatchString(control) {
		return fmt.Errorf("record managed policy: %q is not a control id", control)
	}
	if !policyIDRE.MatchString(id) {
		return fmt.Errorf("record managed policy: %q is not a policy id", id)
	}
	return s.update(ctx, id, func(r *record) {
		if r.Controls == nil {
			r.Controls = map[string]string{}
		}
		r.Controls[control] = strings.ToLower(id)
	}, false)
}

// update reads the record, changes it and writes it back under the lease. The lease makes the read
// and the write one step: no other writer can come between them.
func (s *Store) update(ctx context.Context, id string, change func(*record), replaceDamaged bool) error {
	leaseID, ok := ctx.Value(leaseKey{}).(string)
	if !ok {
		return ErrNotHeld
	}
	if err := ctx.Err(); err != nil {
		return newUnavailable("record managed policy "+id, context.Cause(ctx)).say(wordsRecordW)
	}
	r, err := s.read(ctx)
	var bad damaged
	switch {
	case errors.As(err, &bad) && replaceDamaged:
		r = record{}
	case err != nil:
		return err
	}
	change(&r)
	r.RecordedAt = s.now().UTC()
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	ct := "application/json"
	_, err = s.blob.Upload(ctx, streaming.NopCloser(strings.NewReader(string(body))), &blockblob.UploadOptions{
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: &ct},
		AccessConditions: &blob.AccessConditions{LeaseAccessConditions: &blob.LeaseAccessConditions{LeaseID: &leaseID}},
	})
	if err != nil {
		return newUnavailable(fmt.Sprintf("record managed policy %s in %s", id, s.name), err).say(wordsRecordW)
	}
	return nil
}
