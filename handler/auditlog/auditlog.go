// Package auditlog turns one Event Hub batch of Entra audit logs into hints about changes that can
// affect caguard's control, and into counts that say what happened to every event and record.
//
// # Input
//
// DecodeBatch reads the batch array text: Data.events of an eventHubTrigger with cardinality many,
// once unquoted by the caller. With dataType string (the recommended binding) every element is a JSON
// string whose contents are one event body; with the default dataType every element is the event body
// already parsed, so an object. Both forms, and a mix of them, are accepted. An event body is the
// diagnostic-settings envelope {"records":[...]} or, tolerated, a bare record object.
//
// # Output
//
// A Hint per relevant record: a Conditional Access policy added, updated or deleted; a member added to
// or removed from a break-glass group; a named location, authentication strength or security defaults
// change. Hints are hints, never the truth: the reconciler re-reads the tenant whatever they say, which
// is why Result.Reconcile coalesces any number of hints into one reconcile, and why the pre-filter and
// the classifier may err on the side of relevance but never the other way.
//
// # Failure
//
// Bad input never fails the batch, because retrying the same bytes cannot help: an event or record that
// is not JSON, truncated, of the wrong shape or absurdly large is skipped and counted in Counts.Skipped,
// and the events around it are still processed. DecodeBatch returns an error only when the input is not
// a JSON array at all, or when reading r fails (a retry may help then).
//
// # Counting
//
// Counts.Events counts array elements; Counts.Records counts the records of every event that was
// not skipped whole; Counts.Relevant counts records that produced a hint. Noise is counted in Records
// and nowhere else: Skipped holds problems and filters only, and every relevant-looking record that a
// filter dropped is counted under exactly one reason (see the Skip constants, in pipeline order).
// An event the pre-filter drops is never decoded, yet its records are counted exactly: a structural
// walk (strings and brackets only, no allocation) finds the records array and counts its elements,
// and also tells truncated or unbalanced bodies apart, so those counts do not depend on the
// pre-filter.
//
// # Memory
//
// The batch is streamed: one event body is held at a time, in a buffer reused from event to event,
// and an element larger than the largest event Event Hubs accepts is read past without being held.
//
// # Pre-filter
//
// Most audit traffic is noise (sign-ins of service principals, user updates, MFA registrations). An
// event whose bytes cannot hold a relevant record is counted without being decoded: every relevant
// activity name contains one of a few markers ("conditional access policy", "named location",
// "authentication strength", "security defaults", "add/update/delete policy", and, when break-glass
// groups are configured, "member to group"/"member from group" together with one of the group ids),
// and the classifier matches activity names with ASCII-only case folding on exactly those markers, so
// a relevant record always contains a marker in its raw bytes, in some ASCII casing, unless the
// producer escaped one of its characters as \u00XX. The pre-filter therefore also lets through any
// event holding a \u00XX escape of a letter, digit, space or hyphen. Tests decode every fixture, and
// the fuzz target arbitrary input, with and without the pre-filter and require the same hints.
//
// Residual risk: none for hints. The one thing the pre-filter cannot see is a grammar error inside a
// noise event (balanced brackets, say a missing colon): such an event is counted as noise rather than
// as "event-not-json". No hint is lost that way, because a record that does not decode produces no
// hint either. A relevant record whose activity name Entra spells in a way none of the markers
// matches (a new activity, a renamed one) is missed by the classifier as much as by the pre-filter;
// the nightly sweep is the backstop for that.
//
// # Noise scan
//
// ScanNoise goes one step further for the commonest case, a batch of nothing but noise: it reads
// the events binding as the Functions host sends it (a JSON string holding the array of event
// strings) without unescaping anything, and answers only when it can prove that no record of the
// batch can produce a hint or a companion count (no marker, no break-glass group id, no \u00XX
// escape that could hide one, at any level). Its counts are exactly those DecodeBatch gives the
// same batch: events, records and records that are not objects; on anything else (a malformed or
// truncated event, an event that is not an object, an oversized one, events sent as objects) it
// gives up and the batch is decoded in full. So the log line reads the same either way, and a
// grammar error inside a noise event is counted as DecodeBatch counts it with the pre-filter on
// (see Residual risk). FuzzScanNoise checks every answer against the full decode.
//
// The package holds no state between calls and is safe for concurrent use.
package auditlog

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Filter says which records matter to caguard.
type Filter struct {
	// TenantID is the watched tenant. Records of another tenant are skipped and counted. Empty turns
	// the tenant filter off.
	TenantID string
	// TenantIDs, when set, are the tenants of the registry (many tenants from one deployment); they
	// replace TenantID. A relevant record of one of them gives a hint that carries that tenant's id
	// (Hint.TenantID, lower case) so that it reaches that tenant's reconciler; a record of any other
	// tenant, or one that names no tenant at all (it could not be routed), is skipped and counted
	// under SkipOtherTenant.
	TenantIDs []string
	// SelfPrincipalIDs are caguard's own service principal object id(s), and its application (client)
	// id if known. Records initiated by one of them are skipped and counted, so that caguard's own
	// writes never trigger another reconcile.
	SelfPrincipalIDs []string
	// BreakGlassGroupIDs are the groups excluded from the policy on purpose; a member added to or
	// removed from one of them is relevant.
	BreakGlassGroupIDs []string
}

// Kind says what kind of change a hint reports.
type Kind string

// The kinds of relevant change.
const (
	KindPolicyAdded            Kind = "policy-added"
	KindPolicyUpdated          Kind = "policy-updated"
	KindPolicyDeleted          Kind = "policy-deleted"
	KindBreakGlassMembership   Kind = "break-glass-membership"
	KindNamedLocation          Kind = "named-location"
	KindAuthenticationStrength Kind = "authentication-strength"
	KindSecurityDefaults       Kind = "security-defaults"
)

// Skip reasons, the keys of Counts.Skipped, in the order a batch meets them. Each skipped record or
// event is counted under one reason only; SkipOversizedField counts dropped values of records that
// still produced a hint.
const (
	// SkipBatchMalformed: the array broke off in a way that leaves no next element to find (a missing
	// comma, mismatched brackets, nesting deeper than 10000). Counted once; the elements before it
	// were processed.
	SkipBatchMalformed = "batch-malformed"
	// SkipBatchTruncated: the input ended before the array was closed. Counted once.
	SkipBatchTruncated = "batch-truncated"
	// SkipOversizedEvent: an event body larger than the largest event Event Hubs accepts (1 MiB) plus
	// a margin. It is read past without being held.
	SkipOversizedEvent = "oversized-event"
	// SkipEventNotJSON: an event body (or array element) that is not JSON.
	SkipEventNotJSON = "event-not-json"
	// SkipEventTruncated: an event body that ends inside a string or an open object or array.
	SkipEventTruncated = "event-truncated"
	// SkipEventNotObject: an event body that is JSON but not an object (a number, string, array, null).
	SkipEventNotObject = "event-not-object"
	// SkipRecordsNotArray: an envelope whose records member is not an array.
	SkipRecordsNotArray = "records-not-array"
	// SkipRecordNotObject: an element of records that is not an object.
	SkipRecordNotObject = "record-not-object"
	// SkipCompanionRecord: the Core Directory "Add/Update/Delete policy" record that accompanies every
	// Conditional Access change; the Conditional Access service's own record is the one that counts.
	SkipCompanionRecord = "companion-record"
	// SkipOtherTenant: a relevant record of a tenant other than Filter.TenantID, or of none of
	// Filter.TenantIDs.
	SkipOtherTenant = "other-tenant"
	// SkipSelfInitiated: a relevant record initiated by one of Filter.SelfPrincipalIDs.
	SkipSelfInitiated = "self-initiated"
	// SkipFailedOperation: a relevant record whose result is "failure" or "timeout".
	SkipFailedOperation = "failed-operation"
	// SkipDuplicate: a relevant record whose audit id (properties.id) was already seen in this batch;
	// Event Hubs delivers at least once.
	SkipDuplicate = "duplicate"
	// SkipOversizedField: a value in a hint larger than the field cap; it is dropped and the hint kept.
	SkipOversizedField = "oversized-field"
)

// skipOrder is the order LogLine prints skip reasons in.
func skipOrder() []string {
	return []string{
		SkipBatchMalformed, SkipBatchTruncated, SkipOversizedEvent, SkipEventNotJSON,
		SkipEventTruncated, SkipEventNotObject, SkipRecordsNotArray, SkipRecordNotObject,
		SkipCompanionRecord, SkipOtherTenant, SkipSelfInitiated, SkipFailedOperation,
		SkipDuplicate, SkipOversizedField,
	}
}

// Size caps. Event Hubs Standard and Premium accept events of at most 1 MB, and Azure Monitor packs
// records under that limit; the margin admits a body re-serialised by the Functions host.
const (
	maxEventBytes = 1<<20 + 64<<10
	// maxPolicyBytes caps an old or new policy document. A policy with hundreds of ids in its
	// include and exclude lists stays well below it.
	maxPolicyBytes = 256 << 10
	// maxNameBytes caps every other string copied into a hint (ids, names, activity); Entra caps
	// display names at 256 characters.
	maxNameBytes = 4 << 10
)

// Actor is who initiated a change: a user, or an application (service principal).
type Actor struct {
	UserID            string `json:"userId,omitempty"`
	UserPrincipalName string `json:"userPrincipalName,omitempty"`
	// AppID is initiatedBy.app.appId, or else the AppId entry of additionalDetails (for a user, the
	// client application the user worked through). Entra leaves initiatedBy.app.appId null in most
	// records.
	AppID              string `json:"appId,omitempty"`
	ServicePrincipalID string `json:"servicePrincipalId,omitempty"`
	DisplayName        string `json:"displayName,omitempty"`
	// IPAddress is the initiating user's address, or else the record's callerIpAddress.
	IPAddress string `json:"ipAddress,omitempty"`
}

// Hint is one relevant change as an audit record reports it.
type Hint struct {
	Kind Kind `json:"kind"`
	// TenantID is the registry tenant the record belongs to, lower case; set only when the filter
	// routes by Filter.TenantIDs (with a single tenant every hint is that tenant's).
	TenantID string `json:"tenantId,omitempty"`
	// Activity is the activity name as the record spells it (casing varies).
	Activity string `json:"activity"`
	// AuditID is the record's unique id (properties.id), the key to deduplicate on.
	AuditID string `json:"auditId,omitempty"`
	// PolicyID and PolicyName name the changed object: the Conditional Access policy, named location
	// or authentication strength policy; for KindBreakGlassMembership, the break-glass group.
	PolicyID   string `json:"policyId,omitempty"`
	PolicyName string `json:"policyName,omitempty"`
	// MemberID and MemberName (user principal name, else display name) name the object added to or
	// removed from the group; set for KindBreakGlassMembership only.
	MemberID   string `json:"memberId,omitempty"`
	MemberName string `json:"memberName,omitempty"`
	Actor      Actor  `json:"actor"`
	// Time is when the change happened (the record's time, else activityDateTime), in UTC; zero when
	// neither parses.
	Time          time.Time `json:"time,omitzero"`
	CorrelationID string    `json:"correlationId,omitempty"`
	// Result is the record's result as written ("success", or empty when absent).
	Result string `json:"result,omitempty"`
	// OldValue and NewValue are the policy document before and after the change: the JSON object
	// held, JSON-encoded, in the modified property "ConditionalAccessPolicy" (for the other kinds,
	// the first modified property holding an object). Nil when absent, null, not a JSON object, or
	// larger than the cap.
	OldValue json.RawMessage `json:"oldValue,omitempty"`
	NewValue json.RawMessage `json:"newValue,omitempty"`
}

// Counts says what happened to a batch.
type Counts struct {
	Events   int            `json:"events"`
	Records  int            `json:"records"`
	Relevant int            `json:"relevant"`
	Skipped  map[string]int `json:"skipped,omitempty"`
}

// Result is the outcome of decoding one batch.
type Result struct {
	Counts Counts
	Hints  []Hint
	// Reconcile is true when at least one hint survived the filters: one reconcile per invocation,
	// however many records asked for it.
	Reconcile bool
}

// LogLine states the counts on one line, skip reasons in a stable order, e.g.
//
//	events=100 records=300 relevant=2 reconcile=true skipped=[companion-record=2 self-initiated=1]
func (r Result) LogLine() string {
	var b strings.Builder
	fmt.Fprintf(&b, "events=%d records=%d relevant=%d reconcile=%t skipped=[",
		r.Counts.Events, r.Counts.Records, r.Counts.Relevant, r.Reconcile)
	known := skipOrder()
	first := true
	put := func(reason string, n int) {
		if !first {
			b.WriteByte(' ')
		}
		first = false
		fmt.Fprintf(&b, "%s=%d", reason, n)
	}
	for _, reason := range known {
		if n := r.Counts.Skipped[reason]; n != 0 {
			put(reason, n)
		}
	}
	// Reasons this package does not produce (a caller may merge counts) follow, sorted.
	var other []string
	for reason, n := range r.Counts.Skipped {
		if n != 0 && !slices.Contains(known, reason) {
			other = append(other, reason)
		}
	}
	slices.Sort(other)
	for _, reason := range other {
		put(reason, r.Counts.Skipped[reason])
	}
	b.WriteByte(']')
	return b.String()
}

// DecodeBatch reads one batch (the array text of Data.events, see the package documentation), keeps
// one event in memory at a time, and returns the hints and counts. It returns an error only when the
// input is not a JSON array, or when reading r fails; in the latter case the result holds what was
// decoded before the failure.
func DecodeBatch(r io.Reader, f Filter) (Result, error) {
	d := newDecoder(f)
	return d.decodeBatch(r)
}
