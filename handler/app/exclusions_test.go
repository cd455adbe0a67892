package app

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/azfunc"
	"github.com/caguard/caguard/handler/azfunc/hosttest"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/reconcile"
)

// fixedOutcome is a Reconciler that answers one outcome.
type fixedOutcome reconcile.Outcome

func (f fixedOutcome) Reconcile(context.Context, reconcile.Request) (reconcile.Outcome, error) {
	return reconcile.Outcome(f), nil
}

func TestEvaluateAnswersTheExclusions(t *testing.T) {
	members := 2
	with := fixedOutcome{
		Report: capolicy.Report{Compliant: true, Verdict: capolicy.VerdictCompliant, Summary: "ok"},
		Exclusions: []exclusion.Item{
			{Kind: exclusion.KindGroup, ID: "bbbbbbbb-0000-0000-0000-000000000001", DisplayName: "Break glass", Allowlisted: true, MemberCount: &members,
				Review: exclusion.Review{Status: exclusion.ReviewOverdue, Detail: "Access review d1 last completed on 2026-01-01."}},
			{Kind: exclusion.KindUser, ID: "11111111-1111-1111-1111-111111111111", Allowlisted: true, Review: exclusion.NotReviewable()},
		},
	}
	tests := []struct {
		name     string
		outcome  fixedOutcome
		want     []map[string]string
		wantLogs []string
	}{
		{name: "a tenant without exclusions answers an empty array", outcome: fixedOutcome{Report: capolicy.Report{Verdict: capolicy.VerdictCompliant}}},
		{name: "each exclusion answers kind, id, allowlisted and review status", outcome: with,
			want: []map[string]string{
				{"kind": "group", "id": "bbbbbbbb-0000-0000-0000-000000000001", "status": "overdue"},
				{"kind": "user", "id": "11111111-1111-1111-1111-111111111111", "status": "not-reviewable"},
			},
			wantLogs: []string{
				`exclusion group bbbbbbbb-0000-0000-0000-000000000001 "Break glass", allowlisted, 2 member(s), review overdue: Access review d1 last completed on 2026-01-01`,
				"exclusion user 11111111-1111-1111-1111-111111111111, allowlisted, review not-reviewable",
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fns := Functions(Deps{
				Reconciler: tc.outcome,
				Filter:     func(context.Context) auditlog.Filter { return auditlog.Filter{TenantID: tenant} },
				TenantID:   tenant,
				Now:        func() time.Time { return time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC) },
			})
			srv := httptest.NewServer(azfunc.NewServer(zap.NewNop(), time.Minute, fns...))
			defer srv.Close()
			a, err := (&hosttest.Host{Base: srv.URL}).Invoke(FuncEvaluate, hosttest.HTTPData("req", "GET", ""), nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := a.HTTP("res")
			if err != nil {
				t.Fatal(err)
			}
			var ans struct {
				Exclusions []struct {
					Kind        string `json:"kind"`
					ID          string `json:"id"`
					Allowlisted *bool  `json:"allowlisted"`
					Review      *struct {
						Status string `json:"status"`
					} `json:"review"`
				} `json:"exclusions"`
			}
			if err := json.Unmarshal([]byte(res.Body), &ans); err != nil {
				t.Fatal(err)
			}
			if ans.Exclusions == nil {
				t.Fatalf("exclusions: got null or nothing, want an array: %s", res.Body)
			}
			if len(ans.Exclusions) != len(tc.want) {
				t.Fatalf("exclusions: got %d, want %d: %s", len(ans.Exclusions), len(tc.want), res.Body)
			}
			for i, w := range tc.want {
				g := ans.Exclusions[i]
				if g.Kind != w["kind"] || g.ID != w["id"] || g.Allowlisted == nil || !*g.Allowlisted || g.Review == nil || g.Review.Status != w["status"] {
					t.Errorf("exclusion %d: got %+v, want %v", i, g, w)
				}
			}
			logs := strings.Join(a.Logs, "\n")
			for _, l := range tc.wantLogs {
				if !strings.Contains(logs, l) {
					t.Errorf("log lacks %q:\n%s", l, logs)
				}
			}
		})
	}
}
