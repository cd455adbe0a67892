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

// record is the blob's content. An empty blob (as created for the lease) records nothing.
type record struct {
	ManagedPolicyID string    `json:"managedPolicyId"`
	RecordedAt      time.Time `json:"recordedAt"`
}

// maxRecord bounds what is read: the record is a few dozen bytes; anything larger is not ours.
const maxRecord = 64 << 10

// Conditional Access policy ids are GUIDs.
var policyIDRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// ErrNotHeld is returned by SetManagedPolicyID when its context does not carry the writer lease.
var ErrNotHeld = errors.New("the writer lease is not held: the ownership record is written only under it")

// ManagedPolicyID returns the recorded id of the managed policy, or "" when none is recorded. It needs
// no lease. A record that cannot be read is an error, never "": an unknown owner is not "no owner".
func (s *Store) ManagedPolicyID(ctx context.Context) (string, error) {
	resp, err := s.blob.DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return "", nil
	}
	if err != nil {
		return "", newUnavailable("read ownership record "+s.name, err).say(wordsRecord)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRecord+1))
	if err != nil {
		return "", newUnavailable("read ownership record "+s.name, err).say(wordsRecord)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return "", nil
	}
	// A damaged record is not retriable: a person must look at it, and until then nothing is written.
	if len(b) > maxRecord {
		return "", fmt.Errorf("ownership record %s is larger than %d bytes; it is not caguard's", s.name, maxRecord)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return "", fmt.Errorf("ownership record %s is not valid JSON: %w", s.name, err)
	}
	if r.ManagedPolicyID != "" && !policyIDRE.MatchString(r.ManagedPolicyID) {
		return "", fmt.Errorf("ownership record %s holds %q, which is not a policy id", s.name, r.ManagedPolicyID)
	}
	return strings.ToLower(r.ManagedPolicyID), nil
}

// SetManagedPolicyID records id. ctx must be the context Lock returned: the write names the lease, so
// the storage service refuses it unless this run still holds the lease.
func (s *Store) SetManagedPolicyID(ctx context.Context, id string) error {
	if !policyIDRE.MatchString(id) {
		return fmt.Errorf("record managed policy: %q is not a policy id", id)
	}
	leaseID, ok := ctx.Value(leaseKey{}).(string)
	if !ok {
		return ErrNotHeld
	}
	if err := ctx.Err(); err != nil {
		return newUnavailable("record managed policy "+id, context.Cause(ctx)).say(wordsRecordW)
	}
	body, err := json.Marshal(record{ManagedPolicyID: strings.ToLower(id), RecordedAt: s.now().UTC()})
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
