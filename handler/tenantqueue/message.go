// Package tenantqueue is the message of caguard's nightly fan-out: with a tenant registry,
// NightlySweep puts one message per tenant on a Storage queue, and TenantSweep, triggered by that
// queue, judges (and, where the tenant's mode says so, restores) the one tenant each message names.
// The platform's queueing, retries and scale-out do the rest.
//
// A message is a small versioned JSON document:
//
//	{"version":1,"tenantId":"<tenant GUID>","sweepAt":"2026-11-20T02:30:00Z","reason":"nightly-sweep"}
//
// Parsing is strict (unknown fields, a missing field, another version, trailing data are errors),
// because a message that is half understood could sweep the wrong tenant. A message that cannot be
// used goes to the poison queue as a Poison record that says why.
package tenantqueue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Version is the version of the message format this package writes and reads.
const Version = 1

// Queue names and the delivery limit. DefaultQueue is TENANT_SWEEP_QUEUE's default; the platform
// moves what it gives up on to the queue of the same name with PoisonSuffix ("<queue>-poison").
const (
	DefaultQueue = "caguard-tenant-sweep"
	PoisonSuffix = "-poison"
	// DefaultMaxDequeueCount equals host.json's extensions.queues.maxDequeueCount (a test holds them
	// equal): the delivery whose DequeueCount reaches it is the last one.
	DefaultMaxDequeueCount = 5
)

// Reasons a sweep is asked for.
const (
	ReasonNightlySweep = "nightly-sweep"
)

var reasons = map[string]bool{ReasonNightlySweep: true}

// MaxMessageBytes bounds a message's text: a queue message is at most 64 KiB once encoded, and the
// Functions queue extension base64-encodes what it writes (messageEncoding base64), which costs a third.
const MaxMessageBytes = 48 << 10

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Message asks for one tenant's sweep. Its field names must not be the queue trigger's metadata
// names (Id, DequeueCount, InsertionTime, ...): the Functions host copies the top-level properties of
// a JSON message into the invocation's metadata, where a same-named property would overwrite them.
type Message struct {
	Version  int       `json:"version"`
	TenantID string    `json:"tenantId"`
	SweepAt  time.Time `json:"sweepAt"`
	Reason   string    `json:"reason"`
}

// New is the message asking for tenantID's sweep at the time at, for reason.
func New(tenantID string, at time.Time, reason string) Message {
	return Message{Version: Version, TenantID: strings.ToLower(strings.TrimSpace(tenantID)), SweepAt: at.UTC(), Reason: reason}
}

// Validate reports what makes m unusable.
func (m Message) Validate() error {
	switch {
	case m.Version != Version:
		return fmt.Errorf("version %d is not supported (want %d)", m.Version, Version)
	case !guidRE.MatchString(m.TenantID):
		return fmt.Errorf("tenantId %q is not a GUID", clip(m.TenantID, 64))
	case m.SweepAt.IsZero():
		return errors.New("sweepAt is missing")
	case !reasons[m.Reason]:
		return fmt.Errorf("reason %q is not known", clip(m.Reason, 64))
	}
	return nil
}

// Encode returns the message's text, as it goes on the queue.
func (m Message) Encode() (string, error) {
	if err := m.Validate(); err != nil {
		return "", fmt.Errorf("tenant sweep message: %w", err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("tenant sweep message: %w", err)
	}
	return string(b), nil
}

// Parse reads a message's text strictly: every field present, no other field, this version, a
// tenant GUID, a time, a known reason, nothing after the document.
func Parse(text []byte) (Message, error) {
	if len(text) > MaxMessageBytes {
		return Message{}, fmt.Errorf("tenant sweep message: %d bytes, more than %d", len(text), MaxMessageBytes)
	}
	var w struct {
		Version  *int       `json:"version"`
		TenantID *string    `json:"tenantId"`
		SweepAt  *time.Time `json:"sweepAt"`
		Reason   *string    `json:"reason"`
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Message{}, fmt.Errorf("tenant sweep message: not a document {\"version\",\"tenantId\",\"sweepAt\",\"reason\"}: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Message{}, errors.New("tenant sweep message: data after the document")
	}
	var missing []string
	for name, absent := range map[string]bool{"version": w.Version == nil, "tenantId": w.TenantID == nil, "sweepAt": w.SweepAt == nil, "reason": w.Reason == nil} {
		if absent {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return Message{}, fmt.Errorf("tenant sweep message: missing %s", strings.Join(missing, ", "))
	}
	m := Message{Version: *w.Version, TenantID: strings.ToLower(*w.TenantID), SweepAt: w.SweepAt.UTC(), Reason: *w.Reason}
	if err := m.Validate(); err != nil {
		return Message{}, fmt.Errorf("tenant sweep message: %w", err)
	}
	return m, nil
}

// Poison reasons: why a message left the sweep queue for the poison queue.
const (
	// PoisonMalformed: the message is not a tenant sweep message of this version.
	PoisonMalformed = "malformed-message"
	// PoisonRetriesExhausted: the sweep failed on every delivery, up to the last.
	PoisonRetriesExhausted = "retries-exhausted"
	// PoisonPermanent: the sweep failed in a way a retry cannot fix.
	PoisonPermanent = "permanent-failure"
)

// Poison is what TenantSweep writes to the poison queue in place of a message it gives up on: the
// reason, in words, beside the original message and where it came from. The platform's own move to
// the poison queue carries the bare message alone.
type Poison struct {
	Version int    `json:"version"`
	Reason  string `json:"reason"`
	Detail  string `json:"detail"`
	// TenantID is the tenant the message named, when it could be read.
	TenantID      string     `json:"tenantId,omitempty"`
	Message       string     `json:"message"`
	Truncated     bool       `json:"truncated,omitempty"`
	MessageID     string     `json:"messageId,omitempty"`
	DequeueCount  int        `json:"dequeueCount"`
	InsertionTime *time.Time `json:"insertionTime,omitempty"`
	PoisonedAt    time.Time  `json:"poisonedAt"`
}

// maxPoisonCopy is how much of the original message a Poison record keeps at first; Encode shortens
// it further if the record would not fit in a queue message.
const maxPoisonCopy = 16 << 10

// Encode returns the record's text, within MaxMessageBytes: the copy of the original message is
// shortened (and Truncated set) as far as needed.
func (p Poison) Encode() (string, error) {
	p.Version = Version
	orig := p.Message
	if !utf8.ValidString(orig) {
		orig = strings.ToValidUTF8(orig, "\uFFFD")
	}
	p.Detail = clip(p.Detail, 1024)
	limit := maxPoisonCopy
	for {
		p.Message, p.Truncated = orig, false
		if len(orig) > limit {
			p.Message, p.Truncated = clip(orig, limit), true
		}
		b, err := json.Marshal(p)
		if err != nil {
			return "", fmt.Errorf("poison record: %w", err)
		}
		if len(b) <= MaxMessageBytes {
			return string(b), nil
		}
		limit /= 2
	}
}

// clip bounds s to at most n bytes, on a rune boundary, marking a cut with an ellipsis.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
