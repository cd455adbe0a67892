package auditlog

import (
	"strings"
	"testing"
)

// benchEvents is 100 events of about 5 KB of noise records each; the events at the indexes in ca
// carry a Conditional Access update, its companion and noise instead.
func benchEvents(b testing.TB, ca ...int) []string {
	events := make([]string, 100)
	for i := range events {
		events[i] = noiseEvent(b, i, 5000)
	}
	for _, i := range ca {
		events[i] = envelope(rec(b, "ca-update-mfa-removed"), rec(b, "ca-update-companion"), rec(b, "noise-update-user"))
	}
	return events
}

func benchDecode(b *testing.B, batch string, relevant int) {
	b.Helper()
	res := mustDecode(b, batch, watched())
	if res.Counts.Events != 100 || res.Counts.Relevant != relevant {
		b.Fatalf("got %s, want 100 events and %d relevant", res.LogLine(), relevant)
	}
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBatch(strings.NewReader(batch), watched()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeBatchNoise is the common case: a batch of strings (dataType string) of noise only.
func BenchmarkDecodeBatchNoise(b *testing.B) {
	benchDecode(b, stringBatch(benchEvents(b)...), 0)
}

// BenchmarkDecodeBatchMixed is the same batch with three Conditional Access changes in it. The
// second and third are the same record, so one hint survives deduplication.
func BenchmarkDecodeBatchMixed(b *testing.B) {
	benchDecode(b, stringBatch(benchEvents(b, 10, 50, 90)...), 1)
}

// BenchmarkDecodeBatchNoiseObjects is the noise batch as the default dataType delivers it.
func BenchmarkDecodeBatchNoiseObjects(b *testing.B) {
	benchDecode(b, objectBatch(benchEvents(b)...), 0)
}
