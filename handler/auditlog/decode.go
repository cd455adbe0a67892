package auditlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// decoder holds one batch's filter, scratch buffers and result. It lives for one DecodeBatch call.
type decoder struct {
	tenant string
	self   []string
	groups []string // lower-case (ASCII)
	// tenants are Filter.TenantIDs, lower-case; nil with a single tenant.
	tenants map[string]struct{}
	// prefilter can be turned off so that tests can check it never changes a result.
	prefilter bool

	body  []byte // the current event body
	stack []byte // for scanEnvelope
	seen  map[string]struct{}
	res   Result
}

func newDecoder(f Filter) *decoder {
	d := &decoder{tenant: strings.TrimSpace(f.TenantID), prefilter: true}
	for _, id := range f.TenantIDs {
		if id = strings.TrimSpace(id); id != "" {
			if d.tenants == nil {
				d.tenants = make(map[string]struct{}, len(f.TenantIDs))
			}
			d.tenants[toLowerASCII(id)] = struct{}{}
		}
	}
	for _, id := range f.SelfPrincipalIDs {
		if id = strings.TrimSpace(id); id != "" {
			d.self = append(d.self, id)
		}
	}
	for _, id := range f.BreakGlassGroupIDs {
		if id = strings.TrimSpace(id); id != "" {
			d.groups = append(d.groups, toLowerASCII(id))
		}
	}
	return d
}

func (d *decoder) skip(reason string, n int) {
	if n == 0 {
		return
	}
	if d.res.Counts.Skipped == nil {
		d.res.Counts.Skipped = make(map[string]int)
	}
	d.res.Counts.Skipped[reason] += n
}

func (d *decoder) decodeBatch(r io.Reader) (Result, error) {
	br := newBatchReader(r)
	if err := br.open(); err != nil {
		return Result{}, fmt.Errorf("decode event batch: %w", err)
	}
	for {
		st, kind := br.next(d.body)
		d.body = br.body
		switch st {
		case stepEnd:
			return d.finish(), nil
		case stepTruncated:
			d.skip(SkipBatchTruncated, 1)
			return d.finish(), nil
		case stepMalformed:
			d.skip(SkipBatchMalformed, 1)
			return d.finish(), nil
		case stepReadError:
			return d.finish(), fmt.Errorf("read event batch: %w", br.readErr())
		}
		d.res.Counts.Events++
		switch {
		case br.oversized:
			d.skip(SkipOversizedEvent, 1)
		case kind == elemInvalid:
			d.skip(SkipEventNotJSON, 1)
		case kind == elemOther:
			d.skip(SkipEventNotObject, 1)
		default:
			d.event(br.body)
		}
	}
}

func (d *decoder) finish() Result {
	d.res.Reconcile = len(d.res.Hints) > 0
	return d.res
}

// event handles one event body. Everything that can be learnt from its structure is counted the
// same way whether or not the pre-filter lets it through; only grammar errors need a decode to find.
func (d *decoder) event(body []byte) {
	body = bytes.TrimPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("\xef\xbb\xbf"))
	body = bytes.TrimLeft(body, " \t\r\n")
	if len(body) == 0 {
		d.skip(SkipEventNotJSON, 1)
		return
	}
	if body[0] != '{' {
		if json.Valid(body) {
			d.skip(SkipEventNotObject, 1)
		} else {
			d.skip(SkipEventNotJSON, 1)
		}
		return
	}
	var scan envelopeScan
	scan, d.stack = scanEnvelope(body, d.stack)
	switch {
	case scan.status == scanTruncated:
		d.skip(SkipEventTruncated, 1)
		return
	case scan.status == scanMalformed:
		d.skip(SkipEventNotJSON, 1)
		return
	case scan.records == recordsOther:
		d.skip(SkipRecordsNotArray, 1)
		return
	}
	if d.prefilter && !d.mayMatter(body) {
		if scan.records == recordsMissing {
			d.res.Counts.Records++
			return
		}
		d.res.Counts.Records += scan.count
		d.skip(SkipRecordNotObject, scan.nonObject)
		return
	}

	var env struct {
		Records json.RawMessage `json:"records"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		d.skip(SkipEventNotJSON, 1)
		return
	}
	if env.Records == nil {
		// A bare record, as Storage and some forwarders write them.
		d.res.Counts.Records++
		d.record(body)
		return
	}
	var records []json.RawMessage
	if env.Records[0] != '[' || json.Unmarshal(env.Records, &records) != nil {
		d.skip(SkipRecordsNotArray, 1)
		return
	}
	d.res.Counts.Records += len(records)
	for _, raw := range records {
		switch {
		case raw[0] != '{':
			d.skip(SkipRecordNotObject, 1)
		case d.prefilter && !d.mayMatter(raw):
			// Noise inside an event that held something else.
		default:
			d.record(raw)
		}
	}
}

// record is the part of an audit record that caguard reads. Level, durationMs, roles and the other
// fields whose types vary between record generations are left out, so they cannot fail a decode.
type record struct {
	Time            string     `json:"time"`
	ResourceID      string     `json:"resourceId"`
	OperationName   string     `json:"operationName"`
	Category        string     `json:"category"`
	TenantID        string     `json:"tenantId"`
	CorrelationID   string     `json:"correlationId"`
	CallerIPAddress string     `json:"callerIpAddress"`
	Properties      properties `json:"properties"`
}

type properties struct {
	ID                  string `json:"id"`
	TenantID            string `json:"tenantId"`
	CorrelationID       string `json:"correlationId"`
	Result              string `json:"result"`
	ActivityDisplayName string `json:"activityDisplayName"`
	ActivityDateTime    string `json:"activityDateTime"`
	LoggedByService     string `json:"loggedByService"`
	OperationType       string `json:"operationType"`
	InitiatedBy         struct {
		User *struct {
			ID                string `json:"id"`
			DisplayName       string `json:"displayName"`
			UserPrincipalName string `json:"userPrincipalName"`
			IPAddress         string `json:"ipAddress"`
		} `json:"user"`
		App *struct {
			AppID              string `json:"appId"`
			DisplayName        string `json:"displayName"`
			ServicePrincipalID string `json:"servicePrincipalId"`
		} `json:"app"`
	} `json:"initiatedBy"`
	TargetResources   []target `json:"targetResources"`
	AdditionalDetails []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"additionalDetails"`
}

type target struct {
	ID                 string             `json:"id"`
	DisplayName        string             `json:"displayName"`
	Type               string             `json:"type"`
	UserPrincipalName  string             `json:"userPrincipalName"`
	ModifiedProperties []modifiedProperty `json:"modifiedProperties"`
}

type modifiedProperty struct {
	DisplayName string          `json:"displayName"`
	OldValue    json.RawMessage `json:"oldValue"`
	NewValue    json.RawMessage `json:"newValue"`
}

// class is what a record is to caguard.
type class int

const (
	classNoise class = iota
	classRelevant
	classCompanion
	classMembership // relevant if it touches a break-glass group
)

// record classifies one record (raw is a JSON object) and turns a relevant one into a hint.
func (d *decoder) record(raw []byte) {
	var rec record
	// raw is a valid object (its event decoded). The only errors left are type mismatches, such as a
	// hand-edited number where a string belongs; encoding/json skips those fields and decodes the
	// rest, and a record missing a field it needs simply does not classify.
	_ = json.Unmarshal(raw, &rec)
	p := &rec.Properties

	if rec.Category != "" && !equalFoldASCII(rec.Category, "auditlogs") {
		return // another log category sharing the hub
	}
	activity := p.ActivityDisplayName
	kind, cl := classifyActivity(activity, p.OperationType)
	if cl == classNoise && rec.OperationName != "" {
		activity = rec.OperationName
		kind, cl = classifyActivity(activity, p.OperationType)
	}
	var group, member *target
	var groupID string
	switch cl {
	case classNoise:
		return
	case classCompanion:
		d.skip(SkipCompanionRecord, 1)
		return
	case classMembership:
		groupID, group, member = d.breakGlassTarget(p.TargetResources)
		if groupID == "" {
			return
		}
	}

	actor := actorOf(&rec)
	tenantID, routed := d.registryTenant(&rec)
	switch {
	case !routed || d.otherTenant(&rec):
		d.skip(SkipOtherTenant, 1)
		return
	case d.selfInitiated(actor):
		d.skip(SkipSelfInitiated, 1)
		return
	case failed(p.Result):
		d.skip(SkipFailedOperation, 1)
		return
	}
	if p.ID != "" {
		if _, dup := d.seen[p.ID]; dup {
			d.skip(SkipDuplicate, 1)
			return
		}
		if d.seen == nil {
			d.seen = make(map[string]struct{})
		}
		d.seen[p.ID] = struct{}{}
	}

	h := Hint{
		Kind:          kind,
		TenantID:      tenantID,
		Activity:      activity,
		AuditID:       p.ID,
		Actor:         actor,
		Time:          parseTime(rec.Time, p.ActivityDateTime),
		CorrelationID: firstNonEmpty(p.CorrelationID, rec.CorrelationID),
		Result:        p.Result,
	}
	if cl == classMembership {
		h.PolicyID = groupID
		h.PolicyName = groupName(group, member)
		if member != nil {
			h.MemberID = member.ID
			h.MemberName = firstNonEmpty(member.UserPrincipalName, member.DisplayName)
		}
	} else {
		if t := changedObject(p.TargetResources); t != nil {
			h.PolicyID, h.PolicyName = t.ID, t.DisplayName
		}
		h.OldValue, h.NewValue = d.policyValues(p.TargetResources, kind)
	}
	d.capNames(&h)
	d.res.Hints = append(d.res.Hints, h)
	d.res.Counts.Relevant++
}

// classifyActivity maps an activity name to a kind. Every name it accepts contains one of the
// pre-filter's markers (see markerAt); keep the two in step. Names are matched ignoring ASCII case:
// real records write "Update conditional access policy", the documentation "Update Conditional
// Access policy". The service, category and id prefix are not required on purpose: they would only
// add ways to miss a change, while a false hint costs one reconcile.
func classifyActivity(activity, operationType string) (Kind, class) {
	a := activity
	switch {
	case containsFoldASCII(a, "conditional access policy"):
		switch {
		case hasPrefixFoldASCII(a, "add"), equalFoldASCII(operationType, "add"):
			return KindPolicyAdded, classRelevant
		case hasPrefixFoldASCII(a, "delete"), hasPrefixFoldASCII(a, "hard delete"),
			equalFoldASCII(operationType, "delete"):
			return KindPolicyDeleted, classRelevant
		}
		// Update, restore and whatever Entra adds next: the policy changed.
		return KindPolicyUpdated, classRelevant
	case containsFoldASCII(a, "named location"):
		return KindNamedLocation, classRelevant
	case containsFoldASCII(a, "authentication strength"):
		return KindAuthenticationStrength, classRelevant
	case containsFoldASCII(a, "security defaults"):
		return KindSecurityDefaults, classRelevant
	case equalFoldASCII(a, "add policy"), equalFoldASCII(a, "update policy"), equalFoldASCII(a, "delete policy"):
		// The Core Directory record that accompanies every Conditional Access change (and changes
		// of other policy types, which do not matter here either).
		return "", classCompanion
	case containsFoldASCII(a, "member to group"), containsFoldASCII(a, "member from group"):
		// "Add member to group", "Remove member from group", and the PIM for Groups variants
		// ("Add eligible member to group ...").
		return KindBreakGlassMembership, classMembership
	}
	return "", classNoise
}

// breakGlassTarget finds a break-glass group among a membership record's targets: a target whose id
// is one, or a Group.ObjectID modified property naming one. It returns the group id, the group
// target if any, and the other target (the member). A break-glass group nested into another group
// also matches; that costs one reconcile, which finds nothing to do.
func (d *decoder) breakGlassTarget(targets []target) (string, *target, *target) {
	if len(d.groups) == 0 {
		return "", nil, nil
	}
	var id string
	var group *target
	for i := range targets {
		t := &targets[i]
		if d.isGroup(t.ID) {
			id, group = t.ID, t
			break
		}
		if id = d.groupObjectID(t); id != "" {
			break
		}
	}
	if id == "" {
		return "", nil, nil
	}
	var member *target
	for i := range targets {
		if t := &targets[i]; t != group && !d.isGroup(t.ID) {
			member = t
			break
		}
	}
	return id, group, member
}

// groupObjectID returns the break-glass group named by a target's Group.ObjectID property, if any.
func (d *decoder) groupObjectID(t *target) string {
	for _, mp := range t.ModifiedProperties {
		if !equalFoldASCII(mp.DisplayName, "group.objectid") {
			continue
		}
		for _, v := range [...]json.RawMessage{mp.NewValue, mp.OldValue} {
			if s := unquoteValue(v); d.isGroup(s) {
				return s
			}
		}
	}
	return ""
}

func (d *decoder) isGroup(id string) bool {
	for _, g := range d.groups {
		if equalFoldASCII(id, g) {
			return true
		}
	}
	return false
}

// groupName takes the group target's display name, else the member target's Group.DisplayName
// modified property, which is where Core Directory writes it.
func groupName(group, member *target) string {
	if group != nil && group.DisplayName != "" {
		return group.DisplayName
	}
	if member != nil {
		for _, mp := range member.ModifiedProperties {
			if equalFoldASCII(mp.DisplayName, "group.displayname") {
				return firstNonEmpty(unquoteValue(mp.NewValue), unquoteValue(mp.OldValue))
			}
		}
	}
	return ""
}

// unquoteValue decodes a modified-property value that holds a JSON-encoded string ("\"abc\"").
func unquoteValue(v json.RawMessage) string {
	var outer string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &outer) != nil {
		return ""
	}
	var inner string
	if json.Unmarshal([]byte(outer), &inner) != nil {
		return outer
	}
	return inner
}

// changedObject picks the target that names the changed object: the first of type Policy, else the
// first with an id, else the first.
func changedObject(targets []target) *target {
	for i := range targets {
		if equalFoldASCII(targets[i].Type, "policy") {
			return &targets[i]
		}
	}
	for i := range targets {
		if targets[i].ID != "" {
			return &targets[i]
		}
	}
	if len(targets) > 0 {
		return &targets[0]
	}
	return nil
}

// policyValues decodes the policy document before and after the change from the modified property
// "ConditionalAccessPolicy". For the kinds whose property label no real record confirms (named
// locations, authentication strengths, security defaults) it falls back to the first property
// holding a JSON object.
func (d *decoder) policyValues(targets []target, kind Kind) (old, new json.RawMessage) {
	for i := range targets {
		for _, mp := range targets[i].ModifiedProperties {
			if equalFoldASCII(mp.DisplayName, "conditionalaccesspolicy") {
				return d.policyJSON(mp.OldValue), d.policyJSON(mp.NewValue)
			}
		}
	}
	switch kind {
	case KindPolicyAdded, KindPolicyUpdated, KindPolicyDeleted:
		return nil, nil
	}
	for i := range targets {
		for _, mp := range targets[i].ModifiedProperties {
			if old, new = d.policyJSON(mp.OldValue), d.policyJSON(mp.NewValue); old != nil || new != nil {
				return old, new
			}
		}
	}
	return nil, nil
}

// policyJSON decodes an old or new value: a JSON-encoded string holding the policy document (Entra's
// form), or the document itself (tolerated). It returns nil for null, empty, anything that is not a
// JSON object, and for a value larger than maxPolicyBytes (counted).
func (d *decoder) policyJSON(v json.RawMessage) json.RawMessage {
	if len(v) == 0 {
		return nil
	}
	if len(v) > maxPolicyBytes {
		d.skip(SkipOversizedField, 1)
		return nil
	}
	var doc []byte
	switch v[0] {
	case '{':
		doc = v
	case '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil
		}
		doc = []byte(s)
	default:
		return nil
	}
	doc = bytes.TrimSpace(doc)
	if len(doc) == 0 || doc[0] != '{' || !json.Valid(doc) {
		return nil
	}
	return json.RawMessage(bytes.Clone(doc))
}

// capNames drops any name-like string of absurd size from a hint, counting each.
func (d *decoder) capNames(h *Hint) {
	for _, s := range []*string{
		&h.Activity, &h.AuditID, &h.PolicyID, &h.PolicyName, &h.MemberID, &h.MemberName,
		&h.CorrelationID, &h.Result, &h.Actor.UserID, &h.Actor.UserPrincipalName, &h.Actor.AppID,
		&h.Actor.ServicePrincipalID, &h.Actor.DisplayName, &h.Actor.IPAddress,
	} {
		if len(*s) > maxNameBytes {
			*s = ""
			d.skip(SkipOversizedField, 1)
		}
	}
}

func actorOf(rec *record) Actor {
	var a Actor
	p := &rec.Properties
	if u := p.InitiatedBy.User; u != nil {
		a.UserID, a.UserPrincipalName, a.DisplayName, a.IPAddress = u.ID, u.UserPrincipalName, u.DisplayName, u.IPAddress
	}
	if app := p.InitiatedBy.App; app != nil {
		a.AppID, a.ServicePrincipalID = app.AppID, app.ServicePrincipalID
		a.DisplayName = firstNonEmpty(a.DisplayName, app.DisplayName)
	}
	if a.AppID == "" {
		for _, kv := range p.AdditionalDetails {
			if equalFoldASCII(kv.Key, "appid") {
				a.AppID = kv.Value
				break
			}
		}
	}
	a.IPAddress = firstNonEmpty(a.IPAddress, rec.CallerIPAddress)
	return a
}

// otherTenant reports whether the record names a tenant and none of the names it gives is the
// watched one. A record that names no tenant is kept: the reconcile reads the watched tenant
// anyway. The tenant id can be written in three places and, in scrubbed samples, they disagree, so
// any one of them matching is enough.
func (d *decoder) otherTenant(rec *record) bool {
	if d.tenant == "" {
		return false
	}
	named := false
	for _, t := range []string{rec.TenantID, rec.Properties.TenantID, tenantFromResourceID(rec.ResourceID)} {
		if t == "" {
			continue
		}
		if strings.EqualFold(t, d.tenant) {
			return false
		}
		named = true
	}
	return named
}

// registryTenant finds the registry tenant (Filter.TenantIDs) a record belongs to: the first of the
// places a tenant id can be written that names one. ok is false when the filter routes by registry
// and none does; with a single tenant it is always true and id empty.
func (d *decoder) registryTenant(rec *record) (id string, ok bool) {
	if d.tenants == nil {
		return "", true
	}
	for _, t := range []string{rec.TenantID, rec.Properties.TenantID, tenantFromResourceID(rec.ResourceID)} {
		if t == "" {
			continue
		}
		t = toLowerASCII(strings.TrimSpace(t))
		if _, in := d.tenants[t]; in {
			return t, true
		}
	}
	return "", false
}

// tenantFromResourceID reads <id> from "/tenants/<id>/providers/Microsoft.aadiam".
func tenantFromResourceID(id string) string {
	const prefix = "/tenants/"
	if len(id) < len(prefix) || !strings.EqualFold(id[:len(prefix)], prefix) {
		return ""
	}
	rest := id[len(prefix):]
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// selfInitiated compares the initiator's service principal id and app id with caguard's own;
// display names are never compared, they are not unique.
func (d *decoder) selfInitiated(a Actor) bool {
	for _, id := range d.self {
		if (a.ServicePrincipalID != "" && strings.EqualFold(a.ServicePrincipalID, id)) ||
			(a.AppID != "" && strings.EqualFold(a.AppID, id)) {
			return true
		}
	}
	return false
}

// failed reports an explicit failure. A missing result, "success" and "unknownFutureValue" pass: an
// operation not known to have failed may have changed something.
func failed(result string) bool {
	return strings.EqualFold(result, "failure") || strings.EqualFold(result, "timeout")
}

// parseTime parses the first of the given times that parses, in UTC. Entra writes
// "2024-11-27T03:31:26.7088498Z" and "2024-11-27T03:31:26.7088498+00:00"; forwarders and older
// exports write the others.
func parseTime(values ...string) time.Time {
	layouts := [...]string{
		time.RFC3339Nano,
		"2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999",
		"1/2/2006 3:04:05 PM Z07:00",
		"1/2/2006 3:04:05 PM",
		"1/2/2006 15:04:05",
	}
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		for _, layout := range layouts {
			if t, err := time.Parse(layout, v); err == nil {
				return t.UTC()
			}
		}
	}
	return time.Time{}
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

func toLowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = lowerASCII(c)
	}
	return string(b)
}

func containsFoldASCII[T string | []byte](s T, lower string) bool {
	for i := 0; i+len(lower) <= len(s); i++ {
		if equalFoldASCII(s[i:i+len(lower)], lower) {
			return true
		}
	}
	return false
}

func hasPrefixFoldASCII[T string | []byte](s T, lower string) bool {
	return len(s) >= len(lower) && equalFoldASCII(s[:len(lower)], lower)
}
