package azfunc

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/azfunc/hosttest"
)

// queueServer answers QueueIn by recording what QueueTrigger read.
func queueServer(t *testing.T) (*hosttest.Host, *QueueMessage, *error) {
	t.Helper()
	var got QueueMessage
	var gotErr error
	fn := Function{Name: "QueueIn", Handle: func(_ context.Context, inv *Invocation) (*Result, error) {
		m, err := inv.QueueTrigger("msg")
		gotErr = err
		if m != nil {
			got = *m
		}
		return &Result{}, nil
	}}
	srv := httptest.NewServer(NewServer(zap.NewNop(), time.Minute, fn))
	t.Cleanup(srv.Close)
	return &hosttest.Host{Base: srv.URL}, &got, &gotErr
}

func TestQueueTriggerReadsTheMessageAndItsMetadata(t *testing.T) {
	h, got, gotErr := queueServer(t)
	ins := time.Date(2026, 11, 20, 2, 30, 1, 0, time.UTC)
	m := hosttest.QueueMessage{Text: `{"version":1,"tenantId":"t"}`, ID: "5f1c0c52-7f0a-4b8e-9d3a-0a6f0f2d1e11", PopReceipt: "AgAAAAMAAAAAAAAA",
		DequeueCount: 3, InsertionTime: ins, ExpirationTime: ins.Add(7 * 24 * time.Hour), NextVisibleTime: ins.Add(time.Minute)}
	if _, err := h.Invoke("QueueIn", hosttest.QueueData("msg", m), hosttest.QueueMetadata("QueueIn", m)); err != nil {
		t.Fatal(err)
	}
	if *gotErr != nil {
		t.Fatal(*gotErr)
	}
	if got.Text != m.Text || got.ID != m.ID || got.DequeueCount != 3 || !got.InsertionTime.Equal(ins) ||
		!got.ExpirationTime.Equal(m.ExpirationTime) || !got.NextVisibleTime.Equal(m.NextVisibleTime) {
		t.Errorf("got %+v, want %+v", *got, m)
	}
}

func TestQueueTriggerToleratesPlainAndMissingMetadata(t *testing.T) {
	tests := []struct {
		name     string
		metadata map[string]any
		want     QueueMessage
	}{
		{"plain values, as the docs show them", map[string]any{"DequeueCount": 2, "Id": "abc", "InsertionTime": "2026-11-20T02:30:01+00:00"},
			QueueMessage{Text: "hello", ID: "abc", DequeueCount: 2, InsertionTime: time.Date(2026, 11, 20, 2, 30, 1, 0, time.UTC)}},
		{"keys in another case, a time without a zone", map[string]any{"dequeuecount": "4", "insertionTime": "2026-11-20T02:30:01"},
			QueueMessage{Text: "hello", DequeueCount: 4, InsertionTime: time.Date(2026, 11, 20, 2, 30, 1, 0, time.UTC)}},
		{"no metadata at all", nil, QueueMessage{Text: "hello"}},
		{"metadata that is not what it should be", map[string]any{"DequeueCount": "many", "Id": map[string]any{"x": 1}, "InsertionTime": "yesterday"},
			QueueMessage{Text: "hello"}},
		{"a negative count", map[string]any{"DequeueCount": "-1"}, QueueMessage{Text: "hello"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, got, gotErr := queueServer(t)
			if _, err := h.Invoke("QueueIn", map[string]any{"msg": "hello"}, tt.metadata); err != nil {
				t.Fatal(err)
			}
			if *gotErr != nil || *got != tt.want {
				t.Errorf("got %+v (%v), want %+v", *got, *gotErr, tt.want)
			}
		})
	}
}

func TestQueueTriggerWithoutItsBindingIsAnError(t *testing.T) {
	h, _, gotErr := queueServer(t)
	if _, err := h.Invoke("QueueIn", map[string]any{}, nil); err != nil {
		t.Fatal(err)
	}
	if *gotErr == nil {
		t.Error("a missing binding was read as a message")
	}
}
