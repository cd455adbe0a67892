package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestLogSink(t *testing.T) {
	t.Run("writes one JSON line with the id and verdict", func(t *testing.T) {
		var buf bytes.Buffer
		core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zapcore.DebugLevel)
		s := &LogSink{Log: zap.New(core)}
		if err := s.Send(context.Background(), sampleAlert()); err != nil {
			t.Fatalf("Send: got %v, want nil", err)
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(lines) != 1 {
			t.Fatalf("got %d lines, want 1:\n%s", len(lines), buf.String())
		}
		var entry map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &entry); err != nil {
			t.Fatalf("line is not JSON: %v\n%s", err, lines[0])
		}
		for k, want := range map[string]any{
			"level": "warn", "msg": "caguard alert", "alertId": "3f2a9c1be07d4a55", "verdict": "non-compliant",
			"tenantId": "11111111-2222-3333-4444-555555555555", "closestPolicyId": "aaaaaaaa-0000-0000-0000-000000000001",
		} {
			if entry[k] != want {
				t.Errorf("%s: got %v, want %v", k, entry[k], want)
			}
		}
	})

	t.Run("logs reason codes, changes and actions as structured fields", func(t *testing.T) {
		core, logs := observer.New(zapcore.DebugLevel)
		s := &LogSink{Log: zap.New(core)}
		_ = s.Send(context.Background(), sampleAlert())
		if logs.Len() != 1 {
			t.Fatalf("got %d entries, want 1", logs.Len())
		}
		e := logs.All()[0]
		if e.Level != zapcore.WarnLevel {
			t.Errorf("level: got %v, want warn", e.Level)
		}
		f := e.ContextMap()
		if got, want := f["reasonCodes"], []any{"STATE_NOT_ENABLED", "USERS_NOT_ALL"}; !equalJSON(got, want) {
			t.Errorf("reasonCodes: got %v, want %v", got, want)
		}
		wantChanges := []any{map[string]any{
			"actor": "mallory@contoso.example", "actorId": "bbbbbbbb-0000-0000-0000-000000000002",
			"activity": "Update conditional access policy", "kind": "policy-updated",
			"targetId": "aaaaaaaa-0000-0000-0000-000000000001", "targetName": "Require MFA for Azure management",
			"fields": []any{"state", "conditions.users.includeUsers"},
		}}
		if got := f["changes"]; !equalJSON(got, wantChanges) {
			t.Errorf("changes: got %v, want %v", got, wantChanges)
		}
		actions, _ := f["actions"].([]any)
		if len(actions) != 1 || actions[0].(map[string]any)["kind"] != "update-managed-policy" || actions[0].(map[string]any)["performed"] != false {
			t.Errorf("actions: got %v, want one unperformed update-managed-policy", f["actions"])
		}
	})

	t.Run("never fails, even without a logger", func(t *testing.T) {
		for _, s := range []*LogSink{nil, {}} {
			if err := s.Send(context.Background(), sampleAlert()); err != nil {
				t.Errorf("Send: got %v, want nil", err)
			}
		}
	})
}

// equalJSON compares two values by their JSON encoding, so slices of strings and of any compare equal.
func equalJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
