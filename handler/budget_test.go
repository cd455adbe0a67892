package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/graph"
	"github.com/caguard/caguard/handler/graphfake"
	"github.com/caguard/caguard/handler/reconcile"
)

// budgetTenant is a tenant with one enabled policy that meets the control and excludes every
// break-glass user and group, each group reviewed quarterly, and the users signed in recently.
func budgetTenant(t *testing.T, users, groups int) (*graphfake.Server, capolicy.Config) {
	t.Helper()
	sc := graphfake.Scenario{TenantID: "00000000-0000-0000-0000-0000000000aa", Groups: map[string]graphfake.Group{}, Users: map[string]json.RawMessage{}}
	var cfg capolicy.Config
	for i := range users {
		id := fmt.Sprintf("11111111-0000-4000-8000-%012d", i+1)
		cfg.BreakGlassUserIDs = append(cfg.BreakGlassUserIDs, id)
		sc.Users[id] = json.RawMessage(fmt.Sprintf(`{"displayName":"Break-glass %d","accountEnabled":true,
			"signInActivity":{"lastSuccessfulSignInDateTime":"now-3d","lastSignInDateTime":"now-3d"}}`, i+1))
	}
	for g := range groups {
		id := fmt.Sprintf("bbbbbbbb-0000-4000-8000-%012d", g+1)
		cfg.BreakGlassGroupIDs = append(cfg.BreakGlassGroupIDs, id)
		grp := graphfake.Group{DisplayName: fmt.Sprintf("Break-glass %d", g+1), IsAssignableToRole: true}
		for i, u := range cfg.BreakGlassUserIDs {
			if i%groups == g {
				grp.Members = append(grp.Members, graphfake.Member{ID: u, ODataType: "#microsoft.graph.user", DisplayName: fmt.Sprintf("Break-glass %d", i+1)})
			}
		}
		sc.Groups[id] = grp
		sc.AccessReviews = append(sc.AccessReviews, graphfake.AccessReview{
			Definition: json.RawMessage(fmt.Sprintf(`{"id":"dddddddd-0000-4000-8000-%012d","displayName":"Review %d","status":"InProgress",
				"scope":{"@odata.type":"#microsoft.graph.accessReviewQueryScope","query":"/groups/%s/transitiveMembers","queryType":"MicrosoftGraph"},
				"settings":{"recurrence":{"pattern":{"type":"absoluteMonthly","interval":3},"range":{"type":"noEnd","startDate":"2025-01-06"}}}}`, g+1, g+1, id)),
			Instances: []json.RawMessage{json.RawMessage(`{"id":"i1","status":"Completed","startDateTime":"now-20d","endDateTime":"now-6d"}`)},
		})
	}
	policy := map[string]any{
		"displayName": "CA001: MFA for Azure management", "state": "enabled",
		"conditions": map[string]any{
			"users":          map[string]any{"includeUsers": []string{"All"}, "excludeUsers": cfg.BreakGlassUserIDs, "excludeGroups": cfg.BreakGlassGroupIDs},
			"applications":   map[string]any{"includeApplications": []string{capolicy.AzureManagementAppID}},
			"clientAppTypes": []string{"all"},
		},
		"grantControls": map[string]any{"operator": "OR", "builtInControls": []string{"mfa"}},
	}
	raw, err := json.Marshal(policy)
	if err != nil {
		t.Fatal(err)
	}
	sc.Policies = []json.RawMessage{raw}
	fake, err := graphfake.New(graphfake.Options{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Seed(sc); err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	return fake, cfg
}

// A CA batch or a sweep that needs no write costs at most three Graph round trips (a $batch counts
// once), whatever the number of break-glass accounts; a write adds the write and one read-back.
func TestGraphRoundTripBudget(t *testing.T) {
	caEvent := []auditlog.Hint{{Kind: auditlog.KindPolicyUpdated, Activity: "Update conditional access policy", Time: time.Now()}}
	for _, users := range []int{1, 5, 20} {
		for _, groups := range []int{1, 5} {
			t.Run(fmt.Sprintf("%d users, %d groups", users, groups), func(t *testing.T) {
				fake, cfg := budgetTenant(t, users, groups)
				c, err := graph.New(graph.Options{BaseURL: fake.GraphURL(), Credential: emulatorToken{fake}, Logger: zaptest.NewLogger(t)})
				if err != nil {
					t.Fatal(err)
				}
				r := &reconcile.Reconciler{Store: c, Policy: cfg, TenantID: fake.TenantID(), Remediate: true, Now: time.Now,
					Log: zaptest.NewLogger(t), Owner: &reconcile.MemoryOwnership{},
					Exclusions: reconcile.Exclusions{Reader: c, Mode: exclusion.ModeReport, Grace: exclusion.DefaultGrace}}
				for _, req := range []reconcile.Request{
					{Trigger: reconcile.TriggerAuditEvent, Act: true, Hints: caEvent},
					{Trigger: reconcile.TriggerSweep, Act: true},
				} {
					fake.Reset()
					out, err := r.Reconcile(context.Background(), req)
					if err != nil {
						t.Fatal(err)
					}
					if out.Report.Verdict != capolicy.VerdictCompliant || out.Actions[0].Written {
						t.Fatalf("%s: verdict %s, action %+v; want compliant and nothing written", req.Trigger, out.Report.Verdict, out.Actions[0])
					}
					n := fake.RoundTrips()
					t.Logf("%s: %d Graph round trips", req.Trigger, n)
					if n > 3 {
						t.Errorf("%s: %d Graph round trips, want at most 3: %v", req.Trigger, n, paths(fake.Calls()))
					}
					for _, it := range out.Exclusions {
						if it.Review.Status != exclusion.ReviewCurrent && it.Kind == exclusion.KindGroup {
							t.Errorf("%s: group %s review %s (%s), want current", req.Trigger, it.ID, it.Review.Status, it.Review.Detail)
						}
						if it.Kind == exclusion.KindUser && (it.DisplayName == "" || it.LastSignIn == nil) {
							t.Errorf("%s: user %+v, want its name and last sign-in", req.Trigger, it)
						}
					}
				}

				// A write adds the write and its read-back.
				fake.Reset()
				id := fake.Policies()[0]
				var p map[string]any
				if err := json.Unmarshal(id, &p); err != nil {
					t.Fatal(err)
				}
				cfg.ManagedPolicyName = p["displayName"].(string)
				r.Policy = cfg
				p["grantControls"] = map[string]any{"operator": "OR", "builtInControls": []string{"compliantDevice"}}
				b, _ := json.Marshal(p)
				if _, err := fake.PutPolicy(b); err != nil {
					t.Fatal(err)
				}
				fake.Reset()
				out, err := r.Reconcile(context.Background(), reconcile.Request{Trigger: reconcile.TriggerAuditEvent, Act: true, Hints: caEvent})
				if err != nil {
					t.Fatal(err)
				}
				if !out.Actions[0].Performed {
					t.Fatalf("action %+v, want a performed restore", out.Actions[0])
				}
				n := fake.RoundTrips()
				t.Logf("restore: %d Graph round trips", n)
				if n > 5 {
					t.Errorf("restore: %d Graph round trips, want at most 3 + write + read-back: %v", n, paths(fake.Calls()))
				}
			})
		}
	}
}

func paths(calls []graphfake.Call) string {
	var out []string
	for _, c := range calls {
		if c.Batch == "" {
			out = append(out, c.Method+" "+c.Path)
		}
	}
	return strings.Join(out, ", ")
}
