package reconcile

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/logctx"
)

// Guarding the catalogue. Every enabled control other than azure-management-mfa (Reconciler.Controls)
// has a managed policy of its own (capolicy.DesiredFor, named capolicy.ManagedNameFor), found and
// recorded like the default control's (ControlOwnership), and restored by the same engine under the
// same writer lock, after the default control has been dealt with. What a run did about each such
// control is in Outcome.Guarding, and a control that needs an alert gets its own, naming it; the
// top-level Outcome.Actions and Alert keep describing azure-management-mfa alone.
//
// Routing: an audit-event run acts (writes, alerts) only for the controls its hints touch (see
// touches); a sweep or an HTTP run acts for every enabled control. Every run judges every control.
// azure-management-mfa acts on every run, as it always has.

// ControlOutcome is what one run did about one enabled control other than azure-management-mfa.
type ControlOutcome struct {
	ID string `json:"id"`
	// Routed says whether this run acted for the control: false for an audit-event run whose hints
	// do not touch it (its action then says what the next sweep would do).
	Routed   bool     `json:"routed"`
	Actions  []Action `json:"actions"`
	Warnings []string `json:"warnings,omitempty"`
	Alert    *Alert   `json:"alert,omitempty"`
}

// ActionsFor returns what the run did about control id: the top-level actions and alert for
// azure-management-mfa, the control's own for any other.
func (o Outcome) ActionsFor(id string) ([]Action, *Alert) {
	if strings.EqualFold(id, capolicy.ControlAzureManagementMFA) {
		return o.Actions, o.Alert
	}
	for _, c := range o.Guarding {
		if strings.EqualFold(c.ID, id) {
			return c.Actions, c.Alert
		}
	}
	return nil, nil
}

// guardRun is what the run read, shared by every control.
type guardRun struct {
	tenant, planT capolicy.Tenant
	missing       []string
	recorded      map[string]string // control id -> recorded managed policy id
	users         *usersLookup
}

// usersLookup looks the break-glass users up once per run, for whichever control first writes its
// conditions.
type usersLookup struct {
	r        *Reconciler
	pre      *prefetch
	done     bool
	gone     []string
	warnings []string
}

func (u *usersLookup) get(ctx context.Context, ids []string) (gone, warnings []string, err error) {
	if u.done {
		return u.gone, u.warnings, nil
	}
	if u.pre != nil {
		u.gone, u.warnings = u.r.usersGone(ctx, u.pre.read, ids)
	} else if u.gone, u.warnings, err = u.r.missingUsers(ctx, ids); err != nil {
		return nil, nil, err
	}
	u.done = true
	return u.gone, u.warnings, nil
}

// others are the enabled controls other than azure-management-mfa.
func (r *Reconciler) others() []capolicy.Control {
	var out []capolicy.Control
	for _, c := range r.Controls {
		if c.ID != capolicy.ControlAzureManagementMFA {
			out = append(out, c)
		}
	}
	return out
}

// controlRecords reads the recorded managed policy of every other enabled control, and reads by id
// each one the list left out (Graph's list can lag a create) into t, as run does for the default
// control. Without a ControlOwnership the names decide. A record that cannot be read fails a run
// that may write; any other run finds the policies by name.
func (r *Reconciler) controlRecords(ctx context.Context, mode runMode, t *capolicy.Tenant) (map[string]string, error) {
	owner, ok := r.Owner.(ControlOwnership)
	others := r.others()
	if !ok || len(others) == 0 {
		return nil, nil
	}
	ids, err := owner.ControlPolicyIDs(ctx)
	if err != nil {
		if mode.mayWrite {
			return nil, fmt.Errorf("read the recorded ids of the controls' managed policies: %w", err)
		}
		logctx.From(ctx, r.Log).Warn("recorded ids of the controls' managed policies unreadable; this run finds them by name", zap.Error(err))
		return nil, nil
	}
	for _, c := range others {
		id := ids[c.ID]
		if id == "" || slices.ContainsFunc(t.Policies, func(p capolicy.Policy) bool { return strings.EqualFold(p.ID, id) }) {
			continue
		}
		p, err := r.readUntil(ctx, id, func(capolicy.Policy) bool { return true })
		switch {
		case err == nil:
			t.Policies = append(t.Policies, p)
		case !isNotFound(err):
			return nil, fmt.Errorf("read the recorded managed policy %s of control %s: %w", id, c.ID, err)
		}
	}
	return ids, nil
}

// record records id as g's managed policy; recorded is false when there is nowhere to record it.
func (r *Reconciler) record(ctx context.Context, g guard, id string) (recorded bool, err error) {
	if g.isDefault() {
		if r.Owner == nil {
			return false, nil
		}
		return true, r.Owner.SetManagedPolicyID(ctx, id)
	}
	owner, ok := r.Owner.(ControlOwnership)
	if !ok {
		return false, nil
	}
	return true, owner.SetControlPolicyID(ctx, g.control.ID, id)
}

// guardControls plans, and where the run may act applies, the restore of every other enabled control,
// in catalogue order, then sends each control's alert.
func (r *Reconciler) guardControls(ctx context.Context, req Request, mode runMode, out *Outcome, gr guardRun) error {
	log := logctx.From(ctx, r.Log)
	for _, c := range r.others() {
		i := slices.IndexFunc(out.Controls, func(cr capolicy.ControlReport) bool { return cr.ID == c.ID })
		if i < 0 {
			continue
		}
		rep := out.Controls[i].Report
		g := guardFor(r.Policy, c)
		planRep := rep
		if len(gr.missing) > 0 {
			planRep = g.judge(gr.planT)
		}
		recorded := gr.recorded[c.ID]
		own, _, _ := owned(gr.planT.Policies, recorded, g.name())
		co := ControlOutcome{ID: c.ID, Routed: r.touches(req, g, rep, gr.tenant, own)}
		var action Action
		bgAlert := false
		// A tenant with no policy at all has no reason to carry the code: the control's licence status
		// says it too.
		if out.Controls[i].Licence.Missing() || lacksLicence(planRep) {
			action = Action{Kind: ActionSkip, Reason: "the tenant's licence does not cover what the control needs (" + capolicy.CodeLicenceMissing +
				"); no policy caguard could write would take effect, so it writes nothing"}
			if own != nil {
				action.PolicyID = own.ID
			}
		} else {
			action = planGuard(g, planRep, gr.planT, recorded)
			var bg []string
			action, bg = keepBreakGlass(g, action, own, gr.tenant, gr.planT)
			co.Warnings = append(co.Warnings, bg...)
			bgAlert = len(bg) > 0
			if enforcedBlock(action, own) {
				action = Action{Kind: ActionSkip, PolicyID: action.PolicyID, Reason: fmt.Sprintf("the managed policy %s is enabled and blocks sign-ins; "+
					"caguard never writes an enforced blocking policy, so it writes nothing: fix the policy by hand, or set it to report-only and caguard restores it", action.PolicyID)}
			}
		}
		var gone []string
		if writesConditions(action) && len(g.cfg.BreakGlassUserIDs) > 0 {
			var warnings []string
			var err error
			if gone, warnings, err = gr.users.get(ctx, g.cfg.BreakGlassUserIDs); err != nil {
				return err
			}
			co.Warnings = append(co.Warnings, warnings...)
		}
		co.Warnings = append(co.Warnings, squatters(gr.tenant.Policies, action, g.name())...)
		if mode.mayWrite && co.Routed && action.byName {
			switch recordedNow, err := r.record(ctx, g, action.PolicyID); {
			case err != nil:
				log.Error("managed policy id not recorded", zap.String("control", c.ID), zap.String("policyId", action.PolicyID), zap.Error(err))
				co.Warnings = append(co.Warnings, fmt.Sprintf("could not record policy %s as the managed policy of %s; it is found by its name until recorded", action.PolicyID, c.ID))
			case recordedNow:
				action.Adopted = true
			}
		}
		if rep.Verdict != planRep.Verdict {
			action.Reason = "only the break-glass groups that answer 404 fail the control (their members cannot be read), and no write can fix that; " + action.Reason
		}
		blocked := false
		if action.Kind == ActionCreate || action.Kind == ActionUpdate {
			switch {
			case !req.Act:
				action.Reason += " (report only: nothing written)"
			case !r.Remediate:
				action.Reason += " (alert mode: nothing written; set REMEDIATION_MODE=remediate to restore)"
			case !co.Routed:
				action.Reason += " (this run's audit records do not touch this control: nothing written; the next sweep restores it)"
			case !mode.mayWrite:
				action.Reason += "; the restore was not attempted: " + mode.blocked + "; the trigger retries"
				out.restoreBlocked, blocked = true, true
			default:
				warnings, err := r.apply(ctx, g, &action, gr.planT, own, gr.missing, gone)
				if err != nil {
					return err
				}
				co.Warnings = append(co.Warnings, warnings...)
			}
		}
		co.Actions = []Action{action}
		log.Info("reconciled control", zap.String("control", c.ID), zap.String("trigger", string(req.Trigger)), zap.String("verdict", string(rep.Verdict)),
			zap.Bool("routed", co.Routed), zap.String("action", action.Kind), zap.Bool("written", action.Written), zap.Bool("performed", action.Performed))
		if req.Act && co.Routed && (rep.Verdict != capolicy.VerdictCompliant || action.Performed || action.Written || blocked || bgAlert) {
			a := r.controlAlert(req, c, rep, co)
			co.Alert = &a
			out.Guarding = append(out.Guarding, co)
			if err := r.send(ctx, a); err != nil {
				return err
			}
			continue
		}
		out.Guarding = append(out.Guarding, co)
	}
	return nil
}

// touches reports whether a run must act for g's control. A sweep or an HTTP run (no hints) touches
// every control. An audit-event run touches a control when one of its hints may bear on it: a policy
// hint whose old or new value meets the control (on everything but its state), or whose policy is
// the control's managed policy (own), passes it or is the closest to it now. A break-glass
// membership, authentication strength, named location or security defaults change, a policy hint
// without values, and a value that cannot be read touch every control (fail safe).
func (r *Reconciler) touches(req Request, g guard, rep capolicy.Report, t capolicy.Tenant, own *capolicy.Policy) bool {
	if len(req.Hints) == 0 {
		return true
	}
	for _, h := range req.Hints {
		switch h.Kind {
		case auditlog.KindPolicyAdded, auditlog.KindPolicyUpdated, auditlog.KindPolicyDeleted:
		default:
			return true
		}
		if id := strings.TrimSpace(h.PolicyID); id != "" {
			if (own != nil && strings.EqualFold(own.ID, id)) || strings.EqualFold(rep.Closest, id) || containsFold(rep.Passing, id) {
				return true
			}
		}
		if len(h.OldValue) == 0 && len(h.NewValue) == 0 {
			return true
		}
		for _, raw := range [][]byte{h.OldValue, h.NewValue} {
			if len(raw) == 0 {
				continue
			}
			p, err := capolicy.ParsePolicy(raw)
			if err != nil {
				return true
			}
			if g.judgeOne(p, t).Policies[0].MeetsAllButState {
				return true
			}
		}
	}
	return false
}
