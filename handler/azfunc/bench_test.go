package azfunc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"
)

// batchEnvelope builds an Event Hub envelope of n events of about size bytes each, as the host sends it.
func batchEnvelope(n, size int) []byte {
	pad := bytes.Repeat([]byte("x"), size-120)
	ev := fmt.Sprintf(`{"records":[{"category":"AuditLogs","operationName":"Update user","properties":{"pad":"%s"}}]}`, pad)
	arr := make([]string, n)
	for i := range arr {
		arr[i] = ev
	}
	inner, _ := json.Marshal(arr)
	env, _ := json.Marshal(map[string]any{"Data": map[string]any{"events": string(inner)}, "Metadata": map[string]any{"sys": map[string]any{"MethodName": "AuditLogEvents"}}})
	return env
}

func benchmarkInvoke(b *testing.B, env []byte) {
	s := NewServer(zap.NewNop(), time.Minute, Function{Name: "AuditLogEvents", Handle: func(ctx context.Context, inv *Invocation) (*Result, error) {
		v, _ := inv.Binding("events")
		_, err := io.Copy(io.Discard, v.Reader())
		return &Result{}, err
	}})
	b.SetBytes(int64(len(env)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/AuditLogEvents", bytes.NewReader(env))
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// BenchmarkInvokeTypicalBatch decodes the envelope of a typical batch: 100 events of 5 KB.
func BenchmarkInvokeTypicalBatch(b *testing.B) { benchmarkInvoke(b, batchEnvelope(100, 5<<10)) }

// BenchmarkInvokeLargeBatch decodes a 50 MB envelope; B/op over the envelope size shows how many
// copies of the batch the decoder makes.
func BenchmarkInvokeLargeBatch(b *testing.B) { benchmarkInvoke(b, batchEnvelope(50, 1<<20-100)) }
