package blobstate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/caguard/caguard/handler/blobstate/azuritetest"
)

const runTenant = "a0000000-0000-4000-8000-00000000000a"

// putRaw writes name in the container as someone who is not caguard would.
func putRaw(t *testing.T, a *azuritetest.Azurite, containerName, name, body string) {
	t.Helper()
	cred, err := container.NewSharedKeyCredential(azuritetest.Account, azuritetest.Key)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(a.BlobEndpoint()+"/"+containerName, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(context.Background(), nil); err != nil && !strings.Contains(err.Error(), "ContainerAlreadyExists") {
		t.Fatal(err)
	}
	if _, err := cc.NewBlockBlobClient(name).Upload(context.Background(), streaming.NopCloser(strings.NewReader(body)), &blockblob.UploadOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A record written by one instance reads back on another, with its texts cut to the bounds; the
// first write also makes the container, and no record is "not found", not an error.
func TestLastRunRecordRoundTrip(t *testing.T) {
	a := emulator(t)
	name := containerName(t)
	writer, reader := newStore(t, a, name), newStore(t, a, name)
	ctx := context.Background()
	if _, found, err := reader.ReadLastRun(ctx, runTenant); found || err != nil {
		t.Fatalf("before any write: found %v, %v; want not found, no error", found, err)
	}
	at := time.Date(2026, 12, 7, 3, 0, 0, 0, time.FixedZone("CET", 3600))
	many := make([]string, 40)
	for i := range many {
		many[i] = "reason " + strings.Repeat("r", i)
	}
	many[0] = strings.Repeat("é", 400) + "\nsecond line"
	many = append(many, "  ") // a blank reason is dropped
	want := LastRun{Time: at, Trigger: "nightly-sweep", Verdict: "non-compliant", Reasons: many}
	if err := writer.WriteLastRun(ctx, strings.ToUpper(runTenant), want); err != nil {
		t.Fatal(err)
	}
	got, found, err := reader.ReadLastRun(ctx, runTenant)
	if err != nil || !found {
		t.Fatalf("read back: found %v, %v", found, err)
	}
	if got.Version != LastRunVersion || !got.Time.Equal(at) || got.Time.Location() != time.UTC || got.Trigger != "nightly-sweep" || got.Verdict != "non-compliant" {
		t.Errorf("read back %+v", got)
	}
	if len(got.Reasons) != MaxRunReasons || got.Reasons[MaxRunReasons-1] != "… and 9 more" {
		t.Errorf("reasons: %d, last %q; want %d ending in a count of the rest", len(got.Reasons), got.Reasons[len(got.Reasons)-1], MaxRunReasons)
	}
	if r := got.Reasons[0]; len(r) > MaxRunReasonLen || !strings.HasSuffix(r, "…") || strings.ContainsRune(r, '\n') {
		t.Errorf("a long multi-line reason read back as %d bytes %q; want it cut to %d, on one line", len(r), r, MaxRunReasonLen)
	}

	// A failed run: a cause and no verdict, replacing the record before.
	failed := LastRun{Time: at.Add(time.Hour), Trigger: "audit-event", Cause: "Graph throttled the tenant", Reasons: nil}
	if err := writer.WriteLastRun(ctx, runTenant, failed); err != nil {
		t.Fatal(err)
	}
	if got, _, err := reader.ReadLastRun(ctx, runTenant); err != nil || got.Cause != failed.Cause || got.Verdict != "" || got.Reasons == nil {
		t.Errorf("failed run read back %+v, %v", got, err)
	}

	// What would not read back is refused unwritten.
	for _, bad := range []LastRun{
		{Time: at, Trigger: "nightly-sweep"},
		{Time: at, Trigger: "nightly-sweep", Verdict: "compliant", Cause: "both"},
		{Time: at, Trigger: "cron", Verdict: "compliant"},
		{Trigger: "http", Verdict: "compliant"},
	} {
		if err := writer.WriteLastRun(ctx, runTenant, bad); err == nil {
			t.Errorf("%+v was written", bad)
		}
	}
	if err := writer.WriteLastRun(ctx, "../managed-policy.json", want); err == nil {
		t.Error("a record was written under a name that is not a tenant id")
	}
}

// A damaged record is an error wrapping ErrLastRunDamaged, never a crash or a record; it is not
// retriable, since retrying the same bytes cannot mend them.
func TestDamagedLastRunRecord(t *testing.T) {
	a := emulator(t)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	tests := []struct{ name, body string }{
		{"empty", ``},
		{"not JSON", `{"version":1,`},
		{"JSON of another kind", `[1,2,3]`},
		{"another version", `{"version":2,"time":"2026-12-07T03:00:00Z","trigger":"http","verdict":"compliant","reasons":[]}`},
		{"an unknown field", `{"version":1,"time":"2026-12-07T03:00:00Z","trigger":"http","verdict":"compliant","reasons":[],"token":"x"}`},
		{"no time", `{"version":1,"trigger":"http","verdict":"compliant","reasons":[]}`},
		{"a time in the future", `{"version":1,"time":"` + future + `","trigger":"http","verdict":"compliant","reasons":[]}`},
		{"an unknown verdict", `{"version":1,"time":"2026-12-07T03:00:00Z","trigger":"http","verdict":"fine","reasons":[]}`},
		{"neither verdict nor cause", `{"version":1,"time":"2026-12-07T03:00:00Z","trigger":"http","reasons":[]}`},
		{"reasons not a list", `{"version":1,"time":"2026-12-07T03:00:00Z","trigger":"http","verdict":"compliant","reasons":"x"}`},
		{"a control character", `{"version":1,"time":"2026-12-07T03:00:00Z","trigger":"http","cause":"a\u0000b","reasons":[]}`},
		{"two records", `{"version":1,"time":"2026-12-07T03:00:00Z","trigger":"http","verdict":"compliant","reasons":[]}{}`},
		{"far too large", `{"version":1,"cause":"` + strings.Repeat("x", maxLastRun) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := containerName(t)
			putRaw(t, a, name, LastRunBlob(runTenant), tt.body)
			got, found, err := newStore(t, a, name).ReadLastRun(context.Background(), runTenant)
			if !errors.Is(err, ErrLastRunDamaged) || !found {
				t.Fatalf("got %+v, found %v, %v; want found and ErrLastRunDamaged", got, found, err)
			}
			if retriable(err) {
				t.Error("a damaged record is retriable")
			}
		})
	}
}

// Storage that does not answer fails a write and a read with a retriable error, quickly.
func TestLastRunWithStorageDown(t *testing.T) {
	t.Parallel()
	a := azuritetest.Start(t) // its own emulator: this test stops it
	s := newStore(t, a, containerName(t))
	a.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.WriteLastRun(ctx, runTenant, LastRun{Time: time.Now(), Trigger: "http", Verdict: "compliant"})
	if err == nil || !retriable(err) {
		t.Errorf("write with storage down: %v, want a retriable error", err)
	}
	if _, found, err := s.ReadLastRun(ctx, runTenant); err == nil || found || !retriable(err) || errors.Is(err, ErrLastRunDamaged) {
		t.Errorf("read with storage down: found %v, %v; want a retriable error, not damage", found, err)
	}
	if ctx.Err() != nil {
		t.Error("storage down made the calls wait for their deadline")
	}
}
