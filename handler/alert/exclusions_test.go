package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/reconcile"
)

func TestMessageListsExclusionReviews(t *testing.T) {
	n := 3
	a := reconcile.Alert{ID: "abc", Time: time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC), TenantID: "t", Verdict: capolicy.VerdictCompliant,
		Exclusions: []exclusion.Item{
			{Kind: exclusion.KindGroup, ID: "g1", DisplayName: "<!channel> break glass", Allowlisted: true, MemberCount: &n,
				Review: exclusion.Review{Status: exclusion.ReviewNone, Detail: "No access review covers this group."},
				Notes:  []string{`member "Old" (u2) is disabled`}},
			{Kind: exclusion.KindUser, ID: "u9", Review: exclusion.NotReviewable()},
		}}
	got := messageText(a)
	for _, want := range []string{
		"Exclusions and their access reviews:",
		`- group "&lt;!channel&gt; break glass" (g1), 3 member(s): review none — No access review covers this group; member "Old" (u2) is disabled`,
		"- user u9, not an approved break-glass exclusion: review not-reviewable — Access reviews cover groups",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("message lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "<!channel>") {
		t.Errorf("message carries Slack markup from a group name:\n%s", got)
	}
}

func TestLogSinkListsExclusions(t *testing.T) {
	var buf bytes.Buffer
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zapcore.DebugLevel)
	a := reconcile.Alert{ID: "abc", Verdict: capolicy.VerdictCompliant, Exclusions: []exclusion.Item{
		{Kind: exclusion.KindGroup, ID: "g1", DisplayName: "Break glass", Allowlisted: true, Review: exclusion.Review{Status: exclusion.ReviewOverdue}}}}
	if err := (&LogSink{Log: zap.New(core)}).Send(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	var entry struct {
		Exclusions []map[string]any `json:"exclusions"`
	}
	if err := json.Unmarshal(buf.Bytes(), &entry); err != nil {
		t.Fatalf("line is not JSON: %v\n%s", err, buf.String())
	}
	want := map[string]any{"kind": "group", "id": "g1", "displayName": "Break glass", "allowlisted": true, "review": "overdue"}
	if len(entry.Exclusions) != 1 || fmt.Sprint(entry.Exclusions[0]) != fmt.Sprint(want) {
		t.Errorf("exclusions: got %v, want [%v]", entry.Exclusions, want)
	}
}
