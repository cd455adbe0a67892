package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/caguard/caguard/handler/azfunc/hosttest"
	"github.com/caguard/caguard/handler/graphfake"
)

const (
	mainBreakGlassGroup      = "bbbbbbbb-0000-0000-0000-000000000001"
	secondaryBreakGlassGroup = "bbbbbbbb-0000-0000-0000-000000000003"
	ordinaryAdmin            = "33333333-3333-3333-3333-333333333333"
)

// exclusionsOf returns the Evaluate answer's exclusions keyed by id, failing unless it is an array of
// items with kind, id, allowlisted and review.status.
func exclusionsOf(t *testing.T, body map[string]any) map[string]map[string]any {
	t.Helper()
	raw, ok := body["exclusions"].([]any)
	if !ok {
		t.Fatalf("exclusions: got %T %v, want an array", body["exclusions"], body["exclusions"])
	}
	out := map[string]map[string]any{}
	for _, x := range raw {
		item, _ := x.(map[string]any)
		id, _ := item["id"].(string)
		kind, _ := item["kind"].(string)
		_, hasAllow := item["allowlisted"].(bool)
		review, _ := item["review"].(map[string]any)
		if id == "" || (kind != "user" && kind != "group") || !hasAllow || review["status"] == nil {
			t.Errorf("exclusion lacks kind, id, allowlisted or review.status: %v", item)
		}
		out[id] = item
	}
	return out
}

func reviewStatus(item map[string]any) string {
	review, _ := item["review"].(map[string]any)
	s, _ := review["status"].(string)
	return s
}

func TestEndToEndExclusionReviews(t *testing.T) {
	h := start(t, "drifted.json", map[string]string{"BREAK_GLASS_GROUP_IDS": mainBreakGlassGroup + "," + secondaryBreakGlassGroup})

	// Before remediation: the drifted managed policy excludes the reviewed break-glass group and an
	// ordinary admin directly.
	_, body := h.evaluate(t, http.MethodGet)
	got := exclusionsOf(t, body)
	if len(got) != 2 {
		t.Fatalf("exclusions: got %d (%v), want the managed policy's two", len(got), body["exclusions"])
	}
	if g := got[mainBreakGlassGroup]; reviewStatus(g) != "current" || g["allowlisted"] != true || g["memberCount"] != float64(2) || g["displayName"] != "Break-glass accounts" {
		t.Errorf("break-glass group: got %v, want allowlisted, 2 members, review current", g)
	}
	if u := got[ordinaryAdmin]; reviewStatus(u) != "not-reviewable" || u["allowlisted"] != false || u["displayName"] != "Ordinary admin" || u["lastSignIn"] == nil {
		t.Errorf("ordinary admin: got %v, want not allowlisted, not reviewable, with its last sign-in", u)
	}

	// The nightly sweep restores the managed policy, which then excludes both configured groups: the
	// next sweep lists the secondary one, whose review is overdue and whose member has not signed in
	// for 200 days.
	var logs string
	for range 2 {
		a, err := h.host.Invoke("NightlySweep", hosttest.TimerData("timer", false), hosttest.SysMetadata("NightlySweep"))
		if err != nil || a.Status != http.StatusOK {
			t.Fatalf("NightlySweep: %v, host status %d", err, a.Status)
		}
		logs = strings.Join(a.Logs, "\n")
	}
	for _, want := range []string{
		"exclusion group " + mainBreakGlassGroup + ` "Break-glass accounts", allowlisted, 2 member(s), review current`,
		"exclusion group " + secondaryBreakGlassGroup + ` "Break-glass accounts (secondary)", allowlisted, 1 member(s), review overdue`,
		"alert ",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("second sweep's log lacks %q:\n%s", want, logs)
		}
	}
	_, body = h.evaluate(t, http.MethodGet)
	got = exclusionsOf(t, body)
	if s := reviewStatus(got[secondaryBreakGlassGroup]); s != "overdue" {
		t.Errorf("secondary group review: got %q, want overdue", s)
	}
	notes, _ := got[secondaryBreakGlassGroup]["notes"].([]any)
	if len(notes) == 0 || !strings.Contains(notes[0].(string), "has not signed in since") {
		t.Errorf("secondary group notes: got %v, want its inactive member", notes)
	}
	if body["verdict"] == "non-compliant" {
		t.Errorf("verdict: got non-compliant; report mode leaves the verdict alone")
	}
}

func TestEndToEndRequireModeAndMissingPermission(t *testing.T) {
	h := start(t, "compliant.json", map[string]string{"EXCLUSION_REVIEW": "require"})
	h.fake.Inject(graphfake.Fault{Match: "GET /v1.0/identityGovernance/accessReviews/definitions", Status: http.StatusForbidden, Code: "Forbidden",
		Message: "secret detail from Graph"})
	status, body := h.evaluate(t, http.MethodGet)
	if status != http.StatusOK {
		t.Fatalf("Evaluate without AccessReview.Read.All: %d, want 200: the run goes on", status)
	}
	got := exclusionsOf(t, body)
	var sawGroup bool
	for id, x := range got {
		review, _ := x["review"].(map[string]any)
		detail, _ := review["detail"].(string)
		switch x["kind"] {
		case "group":
			sawGroup = true
			if reviewStatus(x) != "unknown" || !strings.Contains(detail, "AccessReview.Read.All") || strings.Contains(detail, "secret detail") {
				t.Errorf("group %s: got %s %q, want unknown naming the permission, without Graph's text", id, reviewStatus(x), detail)
			}
		case "user":
			if reviewStatus(x) != "not-reviewable" {
				t.Errorf("user %s: got %s, want not-reviewable", id, reviewStatus(x))
			}
		}
	}
	if !sawGroup {
		t.Fatalf("exclusions: got %v, want the compliant scenario's break-glass group", body["exclusions"])
	}
	if body["verdict"] != "non-compliant" {
		t.Errorf("verdict in require mode with unknown reviews: got %v, want non-compliant", body["verdict"])
	}
}
