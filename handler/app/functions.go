// Package app defines caguard's functions (AuditLogEvents, NightlySweep, Evaluate, TenantSweep) on top of the
// custom-handler protocol: each decodes its trigger, asks the reconciler for one run, and states the
// outcome in the host's invocation log and, for Evaluate, in the HTTP answer.
package app

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/azfunc"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/reconcile"
	"github.com/caguard/caguard/handler/report"
)

// Function and binding names: operators, infra and the function.json files rely on them.
const (
	FuncAuditLogEvents = "AuditLogEvents"
	FuncNightlySweep   = "NightlySweep"
	FuncEvaluate       = "Evaluate"

	bindingEvents = "events"
	bindingTimer  = "timer"
	bindingReq    = "req"
	bindingRes    = "res"
)

// Reconciler runs one reconcile.
type Reconciler interface {
	Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Outcome, error)
}

// Deps are what the functions need.
type Deps struct {
	Reconciler Reconciler
	// Filter returns the audit-log filter for this invocation. It is a function because caguard's own
	// service principal id may only be known once a Graph token has been obtained.
	Filter   func(ctx context.Context) auditlog.Filter
	TenantID string
	Now      func() time.Time
	// Fleet, when set, is the tenant registry's tenants: each trigger is routed to the reconciler of
	// the tenant it concerns. Nil means Reconciler and TenantID alone, the single tenant.
	Fleet Fleet
	// Fanout configures the nightly fan-out over the tenant sweep queue (fanout.go).
	Fanout Fanout
}

// Functions returns the functions, ready for azfunc.NewServer. TenantSweep idles on an empty queue
// without a registry: nothing is enqueued then.
func Functions(d Deps) []azfunc.Function {
	return []azfunc.Function{
		{Name: FuncAuditLogEvents, Handle: d.auditLogEvents, ScanString: d.scanEvents},
		{Name: FuncNightlySweep, Handle: d.nightlySweep},
		{Name: FuncEvaluate, HTTPOutput: bindingRes, Handle: d.evaluate},
		{Name: FuncTenantSweep, Handle: d.tenantSweep},
	}
}

// scanEvents reads the events binding in place, before the envelope decoder unescapes it, and
// answers for a batch that it can prove is noise (auditlog.ScanNoise): most batches are, and for
// them this is most of the work saved. Any other batch is decoded in full.
func (d Deps) scanEvents(ctx context.Context, binding string, b []byte) (int, any) {
	if !strings.EqualFold(binding, bindingEvents) {
		return 0, nil
	}
	n, res, ok := auditlog.ScanNoise(b, d.Filter(ctx))
	if !ok {
		return 0, nil
	}
	return n, res
}

// auditLogEvents decodes a batch of audit-log events and reconciles once if any record is relevant.
// Malformed events are counted and skipped inside the batch; only an error a retry can fix (Graph
// unavailable) fails the invocation, because Event Hubs checkpoints the batch after the retries anyway.
func (d Deps) auditLogEvents(ctx context.Context, inv *azfunc.Invocation) (*azfunc.Result, error) {
	v, ok := inv.Binding(bindingEvents)
	if !ok || v.IsNull() {
		return nil, azfunc.Permanent("the invocation has no events binding", nil)
	}
	if res, ok := v.Verdict().(auditlog.Result); ok {
		// scanEvents proved the batch noise and counted it as DecodeBatch would.
		inv.Logf("audit batch: %s", res.LogLine())
		return &azfunc.Result{}, nil
	}
	res, err := auditlog.DecodeBatch(v.Reader(), d.Filter(ctx))
	if err != nil {
		inv.Log.Error("audit batch is not an array of events; it is skipped", zap.Error(err))
		return nil, azfunc.Permanent("the events binding is not an array of events", err)
	}
	inv.Logf("audit batch: %s", res.LogLine())
	if !res.Reconcile {
		return &azfunc.Result{}, nil
	}
	if d.Fleet != nil {
		return d.routeAudit(ctx, inv, res.Hints)
	}
	for _, h := range res.Hints {
		inv.Log.Info("relevant audit record", zap.String("kind", string(h.Kind)), zap.String("activity", h.Activity),
			zap.String("targetId", h.PolicyID), zap.String("targetName", h.PolicyName),
			zap.String("actorUpn", h.Actor.UserPrincipalName), zap.String("actorId", firstNonEmpty(h.Actor.UserID, h.Actor.ServicePrincipalID, h.Actor.AppID)),
			zap.String("correlationId", h.CorrelationID))
	}
	out, err := d.Reconciler.Reconcile(ctx, reconcile.Request{Trigger: reconcile.TriggerAuditEvent, Act: true, Hints: res.Hints})
	if err != nil {
		return nil, err
	}
	logOutcome(inv, out)
	return &azfunc.Result{}, nil
}

// nightlySweep reconciles unconditionally. A timer payload that cannot be read does not stop the sweep:
// the sweep is the backstop for everything else. With a tenant registry it enqueues one sweep per
// tenant for TenantSweep instead (fanout.go).
func (d Deps) nightlySweep(ctx context.Context, inv *azfunc.Invocation) (*azfunc.Result, error) {
	if t, err := inv.Timer(bindingTimer); err != nil {
		inv.Log.Warn("timer payload unreadable; sweeping anyway", zap.Error(err))
	} else if t.IsPastDue {
		inv.Logf("timer is past due; sweeping now")
	}
	if d.Fleet != nil {
		return d.fanOut(inv)
	}
	out, err := d.Reconciler.Reconcile(ctx, reconcile.Request{Trigger: reconcile.TriggerSweep, Act: true})
	if err != nil {
		return nil, err
	}
	logOutcome(inv, out)
	return &azfunc.Result{}, nil
}

// EvaluateAnswer is the body of Evaluate's HTTP answer (DESIGN.md's contract).
type EvaluateAnswer struct {
	Compliant bool             `json:"compliant"`
	Verdict   capolicy.Verdict `json:"verdict"`
	Summary   string           `json:"summary"`
	TenantID  string           `json:"tenantId"`
	// TenantName is the tenant's display name in the registry; absent with a single tenant.
	TenantName  string                  `json:"tenantName,omitempty"`
	EvaluatedAt time.Time               `json:"evaluatedAt"`
	Mode        string                  `json:"mode"` // "report" for GET, "run" for POST
	Policies    []capolicy.PolicyResult `json:"policies"`
	Passing     []string                `json:"passing"`
	Closest     string                  `json:"closest,omitempty"`
	Actions     []reconcile.Action      `json:"actions"`
	AlertID     string                  `json:"alertId,omitempty"`
	// Exclusions are the users and groups the passing and managed policies exclude, each with its
	// access-review finding; always an array.
	Exclusions []exclusion.Item `json:"exclusions"`
	// Controls is one item per enabled catalogue control (CONTROLS), or the one ?control= names;
	// the fields above keep describing azure-management-mfa. Always an array.
	Controls []ControlAnswer `json:"controls"`
}

// ControlAnswer is the verdict on one catalogue control.
type ControlAnswer struct {
	ID        string                  `json:"id"`
	Title     string                  `json:"title"`
	CIS       []capolicy.CISRef       `json:"cis"`
	Guarded   bool                    `json:"guarded"`
	Compliant bool                    `json:"compliant"`
	Verdict   capolicy.Verdict        `json:"verdict"`
	Summary   string                  `json:"summary"`
	Policies  []capolicy.PolicyResult `json:"policies"`
	Passing   []string                `json:"passing"`
	Closest   string                  `json:"closest,omitempty"`
	// Licence is, for a control that needs one, {required, servicePlan, servicePlanId, present};
	// present is null when the tenant's subscriptions could not be read.
	Licence *capolicy.LicenceStatus `json:"licence,omitempty"`
	// Actions are what the run did, or would do, about this control's managed policy (for
	// azure-management-mfa, the top-level actions); always an array.
	Actions []reconcile.Action `json:"actions"`
	// AlertID is the id of the alert the run sent about this control, if any.
	AlertID string `json:"alertId,omitempty"`
}

// controlAnswers are the controls of out, only the one named by only when set; ok is false when
// only names no enabled control.
func controlAnswers(out reconcile.Outcome, only string) (answers []ControlAnswer, ok bool) {
	answers = []ControlAnswer{}
	for _, c := range out.Controls {
		if only != "" && !strings.EqualFold(c.ID, only) {
			continue
		}
		a := ControlAnswer{ID: c.ID, Title: c.Title, CIS: c.CIS, Guarded: c.Guarded, Compliant: c.Compliant, Verdict: c.Verdict,
			Summary: c.Summary, Policies: c.Policies, Passing: c.Passing, Closest: c.Closest, Licence: c.Licence}
		if a.CIS == nil {
			a.CIS = []capolicy.CISRef{}
		}
		if a.Policies == nil {
			a.Policies = []capolicy.PolicyResult{}
		}
		if a.Passing == nil {
			a.Passing = []string{}
		}
		actions, al := out.ActionsFor(c.ID)
		a.Actions = actions
		if a.Actions == nil {
			a.Actions = []reconcile.Action{}
		}
		if al != nil {
			a.AlertID = al.ID
		}
		answers = append(answers, a)
	}
	return answers, only == "" || len(answers) > 0
}

// evaluate answers GET with a report (nothing written, no alert) and POST with a full run; either as
// JSON or, for a browser or ?format=html, as the HTML report page.
func (d Deps) evaluate(ctx context.Context, inv *azfunc.Invocation) (*azfunc.Result, error) {
	req, err := inv.HTTPRequest(bindingReq)
	if err != nil {
		return nil, azfunc.Permanent("the request could not be read", err)
	}
	format, err := negotiate(req)
	if err != nil {
		return nil, err
	}
	var act bool
	switch req.Method {
	case http.MethodGet:
	case http.MethodPost:
		act = true
	default:
		return nil, &azfunc.PublicError{Status: http.StatusMethodNotAllowed, Message: "use GET for a report or POST to run the reconcile"}
	}
	only, tenantQ := "", ""
	for k, v := range req.Query { // the host passes the query as a map; its keys are matched in any case
		switch {
		case strings.EqualFold(k, "control"):
			only = strings.TrimSpace(v)
		case strings.EqualFold(k, "tenant"):
			tenantQ = strings.TrimSpace(v)
		}
	}
	if only != "" {
		if _, known := capolicy.ControlByID(only); !known {
			return nil, &azfunc.PublicError{Status: http.StatusBadRequest, Message: "unknown control " + strconv.Quote(clipQuery(only)) + ": see the README's table of controls"}
		}
	}
	rec, tenantID, tenantName := d.Reconciler, d.TenantID, ""
	switch {
	case d.Fleet != nil && tenantQ == "":
		if act {
			return nil, &azfunc.PublicError{Status: http.StatusBadRequest, Message: "name the tenant to run: POST /api/Evaluate?tenant=ID (GET without tenant answers the fleet summary)"}
		}
		ans := d.fleetSummary(ctx, inv)
		if format == answerHTML {
			page, err := report.FleetHTML(fleetReport(ans))
			if err != nil {
				return nil, fmt.Errorf("evaluate: %w", err)
			}
			return &azfunc.Result{Outputs: map[string]any{bindingRes: htmlResponse(http.StatusOK, page)}}, nil
		}
		res := azfunc.JSONResponse(http.StatusOK, ans)
		res.Headers["Vary"] = "Accept"
		return &azfunc.Result{Outputs: map[string]any{bindingRes: res}}, nil
	case d.Fleet != nil:
		t, ok := findTenant(d.Fleet.Tenants(), tenantQ)
		r, okRec := d.Fleet.Reconciler(tenantQ)
		if !ok || !okRec {
			return nil, &azfunc.PublicError{Status: http.StatusNotFound, Message: "tenant " + strconv.Quote(clipQuery(tenantQ)) + " is not in the tenant registry"}
		}
		rec, tenantID, tenantName = r, t.ID, t.DisplayName
	case tenantQ != "" && !strings.EqualFold(tenantQ, d.TenantID):
		return nil, &azfunc.PublicError{Status: http.StatusNotFound, Message: "tenant " + strconv.Quote(clipQuery(tenantQ)) + " is not the tenant this deployment guards"}
	}
	out, err := rec.Reconcile(ctx, reconcile.Request{Trigger: reconcile.TriggerHTTP, Act: act})
	if err != nil {
		return nil, err
	}
	logOutcome(inv, out)
	controls, enabled := controlAnswers(out, only)
	if !enabled {
		return nil, &azfunc.PublicError{Status: http.StatusNotFound, Message: "control " + strconv.Quote(only) + " is not enabled: add it to CONTROLS"}
	}
	ans := EvaluateAnswer{
		Controls:    controls,
		Compliant:   out.Report.Compliant,
		Verdict:     out.Report.Verdict,
		Summary:     out.Report.Summary,
		TenantID:    tenantID,
		TenantName:  tenantName,
		EvaluatedAt: d.Now().UTC(),
		Mode:        "report",
		Policies:    out.Report.Policies,
		Passing:     out.Report.Passing,
		Closest:     out.Report.Closest,
		Actions:     out.Actions,
		Exclusions:  out.Exclusions,
	}
	if ans.Exclusions == nil {
		ans.Exclusions = []exclusion.Item{}
	}
	if act {
		ans.Mode = "run"
	}
	if ans.Policies == nil {
		ans.Policies = []capolicy.PolicyResult{}
	}
	if ans.Passing == nil {
		ans.Passing = []string{}
	}
	if out.Alert != nil {
		ans.AlertID = out.Alert.ID
	}
	if format == answerHTML {
		page, err := report.HTML(reportInput(ans, out))
		if err != nil {
			return nil, fmt.Errorf("evaluate: %w", err)
		}
		return &azfunc.Result{Outputs: map[string]any{bindingRes: htmlResponse(http.StatusOK, page)}}, nil
	}
	res := azfunc.JSONResponse(http.StatusOK, ans)
	res.Headers["Vary"] = "Accept" // the same URL answers HTML to a browser
	return &azfunc.Result{Outputs: map[string]any{bindingRes: res}}, nil
}

// reportInput is what the HTML report shows: the values of the JSON answer, plus the run's warnings.
func reportInput(ans EvaluateAnswer, out reconcile.Outcome) report.Input {
	return report.Input{
		TenantID:    ans.TenantID,
		TenantName:  ans.TenantName,
		EvaluatedAt: ans.EvaluatedAt,
		Mode:        ans.Mode,
		Verdict:     ans.Verdict,
		Summary:     ans.Summary,
		Policies:    ans.Policies,
		Passing:     ans.Passing,
		Closest:     ans.Closest,
		Actions:     ans.Actions,
		Exclusions:  ans.Exclusions,
		Warnings:    out.Warnings,
		AlertID:     ans.AlertID,
		Controls:    reportControls(ans.Controls),
	}
}

func reportControls(cs []ControlAnswer) []report.Control {
	out := make([]report.Control, 0, len(cs))
	for _, c := range cs {
		var refs []string
		for _, r := range c.CIS {
			refs = append(refs, r.Benchmark+" "+r.Version+" "+r.Control)
		}
		rc := report.Control{ID: c.ID, Title: c.Title, CIS: strings.Join(refs, "; "), Summary: c.Summary, Verdict: c.Verdict, Guarded: c.Guarded}
		if l := c.Licence; l != nil {
			rc.Licence, rc.LicenceKnown, rc.LicenceMissing = l.Required, l.Present != nil, l.Missing()
		}
		out = append(out, rc)
	}
	return out
}

func logOutcome(inv *azfunc.Invocation, out reconcile.Outcome) {
	inv.Logf("verdict %s: %s", out.Report.Verdict, out.Report.Summary)
	for _, a := range out.Actions {
		inv.Logf("action %s (performed: %t): %s", a.Kind, a.Performed, a.Reason)
	}
	for _, x := range out.Exclusions {
		inv.Logf("%s", exclusionLine(x))
	}
	if out.Alert != nil {
		inv.Logf("alert %s raised", out.Alert.ID)
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// clipQuery bounds a query value echoed in an answer.
func clipQuery(s string) string {
	if r := []rune(s); len(r) > 64 {
		return string(r[:64]) + "…"
	}
	return s
}
