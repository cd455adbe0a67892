package auditlog

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Ids used by the fixtures in testdata/records (all invented).
const (
	watchedTenant  = "7d3c1f0a-5b2e-4c8d-9a61-2f4e8b0c3d15"
	otherTenant    = "e1a9c4b2-0f3d-4e7a-8b56-91c2d7f0a348"
	caguardSP      = "3b8e2d47-91fa-4c06-b5e3-6d0a7c1f2e98"
	caguardApp     = "c4f1a6e2-7b39-4d85-a0c2-58e9f3b71d04"
	pipelineSP     = "8c41e2d7-b5a9-4f03-9e6c-1d7a2f0b5e84"
	breakGlass     = "6e0d9b4c-2a71-4c5f-8d3e-b17f0a92c6d8"
	otherGroup     = "2c7a5f90-d18e-4b63-9f24-a6e0c3b5d71f"
	managedPolicy  = "9f2c6e1a-4b7d-4f38-a2e5-0c8d1b6f3e27"
	adminUser      = "a52f7c1e-3d84-4b9a-9e06-7c1d2b8f4a63"
	contractorUser = "f3a7d9c1-2b5e-4806-a1c4-8e6b0d2f7a59"
)

// watched is the filter most tests run with.
func watched() Filter {
	return Filter{
		TenantID:           watchedTenant,
		SelfPrincipalIDs:   []string{caguardSP, caguardApp},
		BreakGlassGroupIDs: []string{breakGlass},
	}
}

// rec returns a fixture record from testdata/records, compacted as Entra writes it.
func rec(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "records", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatalf("compact %s: %v", name, err)
	}
	return out.String()
}

// noiseNames are the fixtures that no filter makes relevant.
var noiseNames = []string{"noise-update-user", "noise-security-info", "noise-change-password", "noise-update-sp", "noise-remove-owner"}

// relevantNames are the fixtures that produce a hint under watched().
var relevantNames = []string{
	"ca-update-mfa-removed", "ca-add", "ca-delete", "ca-update-2019-shape", "group-add-member",
	"group-remove-member", "named-location-update", "auth-strength-update", "security-defaults-update",
}

// envelope wraps records in the diagnostic-settings envelope.
func envelope(records ...string) string {
	return `{"records":[` + strings.Join(records, ",") + `]}`
}

// stringBatch is the batch text for dataType string: an array of strings, each an event body.
func stringBatch(events ...string) string {
	if events == nil {
		events = []string{}
	}
	b, err := json.Marshal(events)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// objectBatch is the batch text for the default dataType: an array of the parsed event bodies.
func objectBatch(events ...string) string {
	return "[" + strings.Join(events, ",") + "]"
}

func mustDecode(t testing.TB, batch string, f Filter) Result {
	t.Helper()
	res, err := DecodeBatch(strings.NewReader(batch), f)
	if err != nil {
		t.Fatalf("DecodeBatch: %v", err)
	}
	return res
}

// noiseEvent builds an event of noise records of at least size bytes, starting at fixture i.
func noiseEvent(t testing.TB, i, size int) string {
	var recs []string
	n := 0
	for k := i; n < size; k++ {
		r := rec(t, noiseNames[k%len(noiseNames)])
		recs = append(recs, r)
		n += len(r) + 1
	}
	return envelope(recs...)
}

// recordsIn counts the records of an envelope built by envelope.
func recordsIn(t testing.TB, event string) int {
	var env struct{ Records []json.RawMessage }
	if err := json.Unmarshal([]byte(event), &env); err != nil {
		t.Fatal(err)
	}
	return len(env.Records)
}
