package tenantqueue

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const tenant = "0b1c2d3e-0000-4000-8000-00000000aaaa"

var at = time.Date(2026, 11, 20, 2, 30, 0, 0, time.UTC)

func TestMessageRoundTrips(t *testing.T) {
	text, err := New(strings.ToUpper(tenant), at, ReasonNightlySweep).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"version":1,"tenantId":"` + tenant + `","sweepAt":"2026-11-20T02:30:00Z","reason":"nightly-sweep"}`; text != want {
		t.Fatalf("got %s, want %s", text, want)
	}
	m, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if m != New(tenant, at, ReasonNightlySweep) {
		t.Errorf("got %+v", m)
	}
}

func TestParseIsStrict(t *testing.T) {
	ok := `{"version":1,"tenantId":"` + tenant + `","sweepAt":"2026-11-20T02:30:00Z","reason":"nightly-sweep"}`
	tests := []struct{ name, text, want string }{
		{"not JSON", `sweep please`, "not a document"},
		{"an array", `[1]`, "not a document"},
		{"an unknown field", strings.Replace(ok, `"reason"`, `"tenant":"x","reason"`, 1), "unknown field"},
		{"a missing tenant", `{"version":1,"sweepAt":"2026-11-20T02:30:00Z","reason":"nightly-sweep"}`, "missing tenantId"},
		{"nothing at all", `{}`, "missing reason, sweepAt, tenantId, version"},
		{"another version", strings.Replace(ok, `"version":1`, `"version":2`, 1), "version 2 is not supported"},
		{"a tenant that is not a GUID", strings.Replace(ok, tenant, "contoso.onmicrosoft.com", 1), "is not a GUID"},
		{"a time that is not a time", strings.Replace(ok, "2026-11-20T02:30:00Z", "tonight", 1), "not a document"},
		{"a zero time", strings.Replace(ok, "2026-11-20T02:30:00Z", "0001-01-01T00:00:00Z", 1), "sweepAt is missing"},
		{"an unknown reason", strings.Replace(ok, "nightly-sweep", "because", 1), `reason "because" is not known`},
		{"a second document", ok + ok, "data after the document"},
		{"a null tenant", strings.Replace(ok, `"`+tenant+`"`, "null", 1), "missing tenantId"},
		{"too large", `{"version":1,"pad":"` + strings.Repeat("x", MaxMessageBytes) + `"}`, "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.text))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestEncodeRefusesAnInvalidMessage(t *testing.T) {
	if _, err := New("not-a-tenant", at, ReasonNightlySweep).Encode(); err == nil {
		t.Error("a message for a tenant that is not a GUID was encoded")
	}
	if _, err := New(tenant, time.Time{}, ReasonNightlySweep).Encode(); err == nil {
		t.Error("a message without a time was encoded")
	}
}

func TestPoisonRecordFitsInAQueueMessage(t *testing.T) {
	tests := []struct {
		name, message string
		truncated     bool
	}{
		{"a short message is kept whole", `{"tenantId":"x"}`, false},
		{"a long message is shortened", strings.Repeat("a", 40<<10), true},
		{"a message of quotes, which escaping doubles", strings.Repeat(`"`, 40<<10), true},
		{"control characters, which escaping multiplies by six", strings.Repeat("\x01", 40<<10), true},
		{"invalid UTF-8", "\xff\xfe{", false},
	}
	ins := at.Add(-time.Minute)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, err := Poison{Reason: PoisonMalformed, Detail: "why", Message: tt.message, MessageID: "m1", DequeueCount: 1, InsertionTime: &ins, PoisonedAt: at}.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if len(text) > MaxMessageBytes {
				t.Fatalf("record of %d bytes, more than %d", len(text), MaxMessageBytes)
			}
			var p Poison
			if err := json.Unmarshal([]byte(text), &p); err != nil {
				t.Fatal(err)
			}
			if p.Version != Version || p.Reason != PoisonMalformed || p.Detail != "why" || p.MessageID != "m1" || p.Truncated != tt.truncated {
				t.Errorf("got %+v", p)
			}
			if !tt.truncated && tt.message == "\xff\xfe{" && p.Message != "\uFFFD{" {
				t.Errorf("message %q, want invalid bytes replaced", p.Message)
			}
			if !tt.truncated && tt.message != "\xff\xfe{" && p.Message != tt.message {
				t.Errorf("message %q, want %q", p.Message, tt.message)
			}
		})
	}
}
