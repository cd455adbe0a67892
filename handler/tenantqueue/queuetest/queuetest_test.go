package queuetest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The client against Azurite: a message put is received with its text and a DequeueCount that grows
// with each delivery, released messages come back, deleted ones do not, and a wrong key is refused
// (so the signature is really checked).
func TestClientAgainstAzurite(t *testing.T) {
	a := Start(t)
	c := a.Client()
	ctx := context.Background()
	if err := c.CreateQueue(ctx, "sweeps"); err != nil {
		t.Fatal(err)
	}
	text := `{"version":1,"note":"<&> ünïcode"}`
	if err := c.Put(ctx, "sweeps", text); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 2; want++ {
		m, err := c.Receive(ctx, "sweeps", 30*time.Second)
		if err != nil || m == nil {
			t.Fatalf("delivery %d: %v, %v", want, m, err)
		}
		if m.Text != text || m.DequeueCount != want || m.ID == "" || m.PopReceipt == "" || m.InsertionTime.IsZero() {
			t.Fatalf("delivery %d: got %+v", want, m)
		}
		if want == 1 {
			if again, err := c.Receive(ctx, "sweeps", 30*time.Second); err != nil || again != nil {
				t.Fatalf("a hidden message was delivered again: %+v, %v", again, err)
			}
			if err := c.Release(ctx, "sweeps", m, 0); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := c.Delete(ctx, "sweeps", m); err != nil {
			t.Fatal(err)
		}
	}
	if ms, err := c.Peek(ctx, "sweeps"); err != nil || len(ms) != 0 {
		t.Fatalf("after delete: %+v, %v", ms, err)
	}
	bad := *c
	bad.Key = "AAAA" + c.Key[4:]
	if err := bad.Put(ctx, "sweeps", "x"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("a wrong key: %v, want 403", err)
	}
}
