package azfunc

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// QueueMessage is a queueTrigger's message with the metadata the Storage queue extension sends
// beside it (Metadata.Id, DequeueCount, InsertionTime, ExpirationTime, NextVisibleTime).
type QueueMessage struct {
	// Text is the message's content, once the extension has undone its messageEncoding.
	Text string
	ID   string
	// DequeueCount is how many times the message has been delivered, this delivery included; 0 when
	// the host did not say.
	DequeueCount    int
	InsertionTime   time.Time
	ExpirationTime  time.Time
	NextVisibleTime time.Time
}

// QueueTrigger decodes the named queueTrigger binding and its metadata. The message text arrives as
// a JSON string (the host serialises a string trigger value once more); metadata primitives arrive
// double-encoded too: DequeueCount 2 as "2" and Id as "\"<id>\"", while the times, DateTimeOffset
// values, go through the host's date path and arrive as one ISO-8601 string (functions-custom-handler
// reference, section 1). Both forms, and plain values, are read. Metadata that cannot be read is left
// zero: only the message text is required.
func (inv *Invocation) QueueTrigger(name string) (*QueueMessage, error) {
	v, ok := inv.Binding(name)
	if !ok || v.IsNull() {
		return nil, fmt.Errorf("binding %q is missing", name)
	}
	m := &QueueMessage{Text: v.Text()}
	m.ID = inv.metaString("Id")
	if n, err := strconv.Atoi(inv.metaString("DequeueCount")); err == nil && n > 0 {
		m.DequeueCount = n
	}
	m.InsertionTime = metaTime(inv.metaString("InsertionTime"))
	m.ExpirationTime = metaTime(inv.metaString("ExpirationTime"))
	m.NextVisibleTime = metaTime(inv.metaString("NextVisibleTime"))
	return m, nil
}

// metaString returns a scalar metadata value as text, undoing the host's extra encoding of strings;
// the key is matched exactly, then ignoring case. Absent or structured values give "".
func (inv *Invocation) metaString(key string) string {
	v, ok := inv.Metadata[key]
	if !ok {
		for k, mv := range inv.Metadata {
			if strings.EqualFold(k, key) {
				v, ok = mv, true
				break
			}
		}
	}
	if !ok || v.IsNull() {
		return ""
	}
	s := strings.TrimSpace(v.Text())
	if strings.HasPrefix(s, `"`) {
		var inner string
		if json.Unmarshal([]byte(s), &inner) == nil {
			s = inner
		}
	}
	if strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[") {
		return ""
	}
	return s
}

// metaTime reads a metadata time: RFC 3339, or the same without a zone, which the host's date path
// can produce; without a zone it is taken as UTC (the host's local time on Azure).
func metaTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t.UTC()
	}
	return time.Time{}
}
