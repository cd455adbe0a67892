package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
)

// Alert tells a human that the tenant fails the control (or that caguard restored its policy): why it
// fails, who changed what just before, and what caguard did about it. It carries ids, names and policy
// fields only: no tokens, secrets or raw audit payloads.
type Alert struct {
	ID       string    `json:"id"` // stable for the same tenant, verdict, reasons and action outcome: sinks may deduplicate on it
	Time     time.Time `json:"time"`
	TenantID string    `json:"tenantId"`
	Trigger  Trigger   `json:"trigger"`
	// Control is the catalogue control the alert is about (the guarded one, azure-management-mfa);
	// empty for a run that could not finish.
	Control string           `json:"control,omitempty"`
	Verdict capolicy.Verdict `json:"verdict"`
	// Failure says, when the run could not finish, what failed (Verdict is then empty and the id
	// depends on the tenant and these words only).
	Failure  string         `json:"failure,omitempty"`
	Summary  string         `json:"summary"`
	Closest  *PolicyFinding `json:"closestPolicy,omitempty"`
	Changes  []Change       `json:"changes,omitempty"`
	Actions  []Action       `json:"actions"`
	Warnings []string       `json:"warnings,omitempty"`
	NextStep string         `json:"nextStep"`
	// Exclusions is the exclusion inventory with each exclusion's access-review finding.
	Exclusions []exclusion.Item `json:"exclusions,omitempty"`
	// TenantName is the tenant's display name in the registry; empty with a single tenant. It is
	// not part of the id: renaming a tenant does not make its open alerts new.
	TenantName string `json:"tenantName,omitempty"`
}

// PolicyFinding is the evaluation of one policy, as shown in an alert.
type PolicyFinding struct {
	ID          string            `json:"id"`
	DisplayName string            `json:"displayName"`
	State       string            `json:"state"`
	Reasons     []capolicy.Reason `json:"reasons"`
}

// Change is one audit record that prompted the reconcile: who did what to which object, and for a
// policy edit, which fields changed (From is the value before, To after).
type Change struct {
	Activity      string        `json:"activity"`
	Kind          string        `json:"kind"`
	TargetID      string        `json:"targetId,omitempty"`
	TargetName    string        `json:"targetName,omitempty"`
	MemberID      string        `json:"memberId,omitempty"`
	MemberName    string        `json:"memberName,omitempty"`
	Actor         string        `json:"actor"`
	ActorID       string        `json:"actorId,omitempty"`
	ActorIP       string        `json:"actorIp,omitempty"`
	Time          time.Time     `json:"time"`
	CorrelationID string        `json:"correlationId,omitempty"`
	Fields        []FieldChange `json:"fields,omitempty"`
}

// FieldChange is one field of a policy that an audited edit changed.
type FieldChange struct {
	Field string `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// maxChanges bounds an alert's size when a burst of audit records arrives at once.
const maxChanges = 20

func (r *Reconciler) newAlert(req Request, out Outcome) Alert {
	a := r.baseAlert(req, capolicy.ControlAzureManagementMFA, out.Report, out.Actions, out.Warnings)
	a.NextStep = reviewStep(nextStep(out.Report, out.Actions, ""), out)
	a.Exclusions = out.Exclusions
	return finishAlert(a, out.Report)
}

// controlAlert is the alert about a control other than azure-management-mfa: its own verdict,
// actions and warnings, naming it. The exclusion inventory belongs to the default control's alert.
func (r *Reconciler) controlAlert(req Request, c capolicy.Control, rep capolicy.Report, co ControlOutcome) Alert {
	a := r.baseAlert(req, c.ID, rep, co.Actions, co.Warnings)
	a.NextStep = nextStep(rep, co.Actions, c.Title)
	return finishAlert(a, rep)
}

func (r *Reconciler) baseAlert(req Request, control string, rep capolicy.Report, actions []Action, warnings []string) Alert {
	a := Alert{
		Time:     r.Now().UTC(),
		TenantID: r.TenantID,
		Trigger:  req.Trigger,
		Control:  control,
		Verdict:  rep.Verdict,
		Summary:  rep.Summary,
		Actions:  actions,
		Warnings: warnings,
	}
	a.TenantName = r.TenantName
	if f := closest(rep); f != nil {
		a.Closest = f
	}
	for i, h := range req.Hints {
		if i == maxChanges {
			break
		}
		a.Changes = append(a.Changes, changeOf(h))
	}
	return a
}

// finishAlert sets the alert's id, once everything that counts in it is set.
func finishAlert(a Alert, rep capolicy.Report) Alert {
	a.ID = alertID(a)
	if notes := unrecognisedNotes(rep, a.Closest); len(notes) > 0 {
		// Values caguard does not recognise failed policies other than the closest one: name them,
		// and let them count in the id, since a new unknown value is news.
		a.Warnings = append(append([]string{}, a.Warnings...), notes...)
		h := sha256.New()
		fmt.Fprintf(h, "%s|%s", a.ID, strings.Join(notes, "|"))
		a.ID = hex.EncodeToString(h.Sum(nil))[:16]
	}
	return a
}

// unrecognisedNotes names, one line per policy other than the closest (whose reasons the alert shows
// anyway), the values caguard did not recognise and failed the policy for.
func unrecognisedNotes(rep capolicy.Report, closest *PolicyFinding) []string {
	var notes []string
	for _, p := range rep.Policies {
		if closest != nil && p.ID == closest.ID {
			continue
		}
		var vals []string
		for _, r := range p.Reasons {
			for _, u := range r.Unrecognised {
				vals = append(vals, u.Field+" "+strconv.Quote(u.Value))
			}
		}
		if n := len(vals) - 8; n > 0 {
			vals = append(vals[:8], fmt.Sprintf("and %d more", n))
		}
		if len(vals) > 0 {
			notes = append(notes, fmt.Sprintf("policy %q (%s) holds values caguard does not recognise, so it cannot count: %s", p.DisplayName, p.ID, strings.Join(vals, ", ")))
		}
	}
	return notes
}

// closest picks the policy to explain: the passing one awaiting enforcement, else the closest one.
func closest(rep capolicy.Report) *PolicyFinding {
	id := rep.Closest
	if id == "" && len(rep.Passing) > 0 {
		id = rep.Passing[0]
	}
	for _, p := range rep.Policies {
		if p.ID == id {
			return &PolicyFinding{ID: p.ID, DisplayName: p.DisplayName, State: p.State.String(), Reasons: p.Reasons}
		}
	}
	return nil
}

func changeOf(h auditlog.Hint) Change {
	c := Change{
		Activity:      h.Activity,
		Kind:          string(h.Kind),
		TargetID:      h.PolicyID,
		TargetName:    h.PolicyName,
		MemberID:      h.MemberID,
		MemberName:    h.MemberName,
		Time:          h.Time,
		CorrelationID: h.CorrelationID,
		ActorIP:       h.Actor.IPAddress,
	}
	switch {
	case h.Actor.UserPrincipalName != "":
		c.Actor, c.ActorID = h.Actor.UserPrincipalName, h.Actor.UserID
	case h.Actor.UserID != "":
		c.Actor, c.ActorID = "user "+h.Actor.UserID, h.Actor.UserID
	case h.Actor.DisplayName != "":
		c.Actor, c.ActorID = "app "+h.Actor.DisplayName, firstNonEmpty(h.Actor.ServicePrincipalID, h.Actor.AppID)
	case h.Actor.ServicePrincipalID != "" || h.Actor.AppID != "":
		c.ActorID = firstNonEmpty(h.Actor.ServicePrincipalID, h.Actor.AppID)
		c.Actor = "app " + c.ActorID
	default:
		c.Actor = "unknown"
	}
	c.Fields = policyChanges(h.OldValue, h.NewValue)
	return c
}

// policyChanges compares the policy before and after an audited edit. A side that is absent (a create
// or a delete) or unreadable compares as an empty policy.
func policyChanges(oldJSON, newJSON []byte) []FieldChange {
	if len(oldJSON) == 0 && len(newJSON) == 0 {
		return nil
	}
	parse := func(b []byte) capolicy.Policy {
		if len(b) == 0 {
			return capolicy.Policy{}
		}
		p, err := capolicy.ParsePolicy(b)
		if err != nil {
			return capolicy.Policy{}
		}
		return p
	}
	var out []FieldChange
	for _, d := range capolicy.Diff(parse(oldJSON), parse(newJSON)) {
		out = append(out, FieldChange{Field: d.Field, From: d.Want, To: d.Got})
	}
	return out
}

// nextStep is the alert's next step; title names a control other than azure-management-mfa ("" for
// that one).
func nextStep(rep capolicy.Report, actions []Action, title string) string {
	for _, a := range actions {
		if a.Written && !a.Performed {
			still := "it could not be read back"
			if len(a.Remaining) > 0 {
				codes := make([]string, 0, len(a.Remaining))
				for _, r := range a.Remaining {
					codes = append(codes, r.Code)
				}
				still = "it still fails: " + strings.Join(codes, ", ")
			}
			return fmt.Sprintf("The restore of policy %s did not hold: Graph accepted the write but %s. Graph reads can lag, so the next trigger checks again; if it persists, restore the policy by hand.", a.PolicyID, still)
		}
		if !a.Performed {
			continue
		}
		if a.State == capolicy.StateEnabled.String() {
			return fmt.Sprintf("caguard restored the definition of the enabled policy %s; review who weakened it and why.", a.PolicyID)
		}
		return fmt.Sprintf("Review the report-only policy caguard restored (%s) and switch it to enabled when it is right.", a.PolicyID)
	}
	if title != "" && rep.Verdict != capolicy.VerdictCompliant {
		for _, a := range actions {
			if a.Kind == ActionSkip {
				return "caguard wrote nothing for " + strconv.Quote(title) + ": " + a.Reason + "."
			}
		}
	}
	switch rep.Verdict {
	case capolicy.VerdictPendingEnforcement:
		return "Review the report-only " + pendingName(rep) + " and switch it on: it meets the control."
	case capolicy.VerdictNonCompliant:
		if title != "" {
			return fmt.Sprintf("Meet %q: fix the closest policy, or run caguard with REMEDIATION_MODE=remediate.", title)
		}
		return "Restore MFA for the Windows Azure Service Management API: fix the closest policy, or run caguard with REMEDIATION_MODE=remediate."
	}
	return "None."
}

func alertID(a Alert) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|", a.TenantID, a.Verdict)
	if a.Control != "" && a.Control != capolicy.ControlAzureManagementMFA {
		// Two controls in the same state are different news; the default control's ids stay as
		// they were before the catalogue.
		fmt.Fprintf(h, "control:%s|", a.Control)
	}
	if a.Closest != nil {
		codes := make([]string, 0, len(a.Closest.Reasons))
		for _, r := range a.Closest.Reasons {
			codes = append(codes, r.Code)
		}
		sort.Strings(codes)
		fmt.Fprintf(h, "%s|%s", a.Closest.ID, strings.Join(codes, ","))
	}
	// A restore that held and one that did not are different news.
	for _, act := range a.Actions {
		fmt.Fprintf(h, "|%s:%t:%t", act.Kind, act.Written, act.Performed)
	}
	if k := findingsKey(a.Exclusions); k != "" {
		fmt.Fprintf(h, "|reviews:%s", k)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// The words a person reads first. Every outcome's headline, and the advice for each exclusion, are
// written here and nowhere else, so that the alert formats, the log and the report say the same thing.

// AlertKind is the outcome an alert reports.
type AlertKind string

// Alert kinds, in the order a reader cares about them.
const (
	// AlertRestoreFailed: caguard wrote its policy but the policy, read back, still fails.
	AlertRestoreFailed AlertKind = "restore-did-not-hold"
	// AlertNotCompliant: MFA is not required and caguard wrote nothing (alert mode, or a write it
	// would not make).
	AlertNotCompliant AlertKind = "alert-only"
	// AlertRestored: caguard restored its policy and the policy, read back, meets the control.
	AlertRestored AlertKind = "restored"
	// AlertPending: a policy meets the control in report-only mode only.
	AlertPending AlertKind = "pending-enforcement"
	// AlertReviewOverdue: MFA is required, but an exclusion lacks a current access review (or, with
	// EXCLUSION_REVIEW=require, fails on that alone).
	AlertReviewOverdue AlertKind = "review-overdue"
	// AlertCompliant: nothing to report but the state.
	AlertCompliant AlertKind = "compliant"
)

// Heading is an alert's first line, in two parts: what happened, and what the reader should do.
type Heading struct {
	Kind AlertKind
	What string
	Do   string
}

// String is the heading as one line.
func (h Heading) String() string { return h.What + " " + h.Do }

// restore returns the write caguard made in this run, if any.
func (a Alert) restore() (Action, bool) {
	for _, act := range a.Actions {
		if act.Written {
			return act, true
		}
	}
	return Action{}, false
}

// Kind classifies the alert.
func (a Alert) Kind() AlertKind {
	if act, ok := a.restore(); ok {
		if act.Performed {
			return AlertRestored
		}
		return AlertRestoreFailed
	}
	switch a.Verdict {
	case capolicy.VerdictNonCompliant:
		if a.Closest != nil && len(a.Closest.Reasons) > 0 && onlyReviewReasons(a.Closest.Reasons) {
			return AlertReviewOverdue
		}
		return AlertNotCompliant
	case capolicy.VerdictPendingEnforcement:
		return AlertPending
	case capolicy.VerdictCompliant:
		if len(reviewFindings(a.Exclusions)) > 0 {
			return AlertReviewOverdue
		}
		return AlertCompliant
	}
	return AlertNotCompliant
}

func onlyReviewReasons(rs []capolicy.Reason) bool {
	for _, r := range rs {
		switch r.Code {
		case capolicy.CodeExclusionReviewOverdue, capolicy.CodeExclusionNotReviewed,
			capolicy.CodeExcludedUserNotReviewable, capolicy.CodeExclusionReviewUnknown:
		default:
			return false
		}
	}
	return true
}

// Heading says in one line what happened and what to do. Names come from the tenant: a renderer
// escapes them for its markup.
func (a Alert) Heading() Heading {
	k := a.Kind()
	h := Heading{Kind: k}
	if a.Control != "" && a.Control != capolicy.ControlAzureManagementMFA {
		return a.controlHeading(h)
	}
	switch k {
	case AlertRestored:
		act, _ := a.restore()
		name := a.policyName(act.PolicyID)
		switch {
		case act.Kind == ActionCreate:
			h.What = fmt.Sprintf("Restored in report-only mode: no policy required MFA for the Windows Azure Service Management API, so caguard created %s in report-only mode.", name)
			h.Do = "Review it and switch it on."
		case act.State == capolicy.StateEnabled.String():
			h.What = fmt.Sprintf("Restored: %s; caguard restored it, enabled, so MFA is required again.", a.weakened(name))
			h.Do = "Ask who changed it, and why."
		default:
			h.What = fmt.Sprintf("Restored in report-only mode: %s; caguard restored it in report-only mode, so MFA is not enforced yet.", a.weakened(name))
			h.Do = "Review it and switch it on."
		}
	case AlertRestoreFailed:
		act, _ := a.restore()
		h.What = fmt.Sprintf("Restore did not hold: MFA is NOT required; %s, and caguard's write did not make it meet the control.", a.weakened(a.policyName(act.PolicyID)))
		h.Do = "Restore the policy by hand if the next run does not."
	case AlertNotCompliant:
		if len(a.Changes) > 0 && a.Closest != nil {
			h.What = fmt.Sprintf("MFA is NOT required for the Windows Azure Service Management API: %s, and caguard wrote nothing.", a.weakened(a.policyName(a.Closest.ID)))
		} else {
			h.What = "MFA is NOT required for the Windows Azure Service Management API, and caguard wrote nothing."
		}
		h.Do = "Fix the policy, or let caguard restore it (REMEDIATION_MODE=remediate)."
	case AlertPending:
		h.What = "MFA for the Windows Azure Service Management API is in report-only mode: it is not enforced."
		h.Do = "Review the report-only policy and switch it on."
	case AlertReviewOverdue:
		n := len(reviewFindings(a.Exclusions))
		if a.Verdict == capolicy.VerdictCompliant {
			h.What = fmt.Sprintf("MFA is required for the Windows Azure Service Management API, but %s.", reviewsLacking(n))
		} else {
			h.What = fmt.Sprintf("Not compliant: MFA is required for the Windows Azure Service Management API, but %s, and EXCLUSION_REVIEW=require.", reviewsLacking(max(n, 1)))
		}
		h.Do = "Complete or create the access review."
	default:
		h.What = "MFA is required for the Windows Azure Service Management API."
		h.Do = "Nothing to do."
	}
	return h
}

func reviewsLacking(n int) string {
	if n == 1 {
		return "one exclusion lacks a current access review"
	}
	return fmt.Sprintf("%d exclusions lack a current access review", n)
}

// weakened says who changed the policy, from the audit records that prompted the run.
func (a Alert) weakened(name string) string {
	if len(a.Changes) == 0 {
		return name + " had drifted from its definition"
	}
	who := a.Changes[0].Actor
	if n := len(a.Changes) - 1; n == 1 {
		who += " and one other change"
	} else if n > 1 {
		who += fmt.Sprintf(" and %d other changes", n)
	}
	return who + " weakened " + name
}

// policyName is a policy's display name in quotes, from the alert's own findings, else its id.
func (a Alert) policyName(id string) string {
	if a.Closest != nil && strings.EqualFold(a.Closest.ID, id) && a.Closest.DisplayName != "" {
		return `"` + a.Closest.DisplayName + `"`
	}
	for _, c := range a.Changes {
		if strings.EqualFold(c.TargetID, id) && c.TargetName != "" {
			return `"` + c.TargetName + `"`
		}
	}
	if id == "" {
		return "the managed policy"
	}
	return "policy " + id
}

// ExclusionAdvice is what to do about one exclusion, "" when nothing. An account that is not an
// approved break-glass account must never be told to join a break-glass group: every member of one
// must itself be approved (R5), so that would fail the control.
func ExclusionAdvice(it exclusion.Item) string {
	switch {
	case !it.Allowlisted && it.Kind == exclusion.KindUser:
		return "Not an approved break-glass account: remove the exclusion, or, if it really is a break-glass account, add it to BREAK_GLASS_USER_IDS and cover it with a recurring access review."
	case !it.Allowlisted:
		return "Not an approved break-glass group: remove the exclusion, or, if it really is a break-glass group, add it to BREAK_GLASS_GROUP_IDS (each member to BREAK_GLASS_USER_IDS) and cover it with a recurring access review."
	}
	switch it.Review.Status {
	case exclusion.ReviewOverdue:
		return "Complete its overdue access review, and keep the review recurring."
	case exclusion.ReviewNone:
		return "Create a recurring access review of this group (README: Creating an access review that satisfies caguard)."
	case exclusion.ReviewNotReviewable:
		return "Access reviews cover groups, not single users: to have this approved account reviewed, exclude it through a break-glass group (BREAK_GLASS_GROUP_IDS) that a recurring access review covers."
	case exclusion.ReviewUnknown:
		return "caguard could not judge its access review: check it by hand."
	}
	return ""
}

// notReviewable is the review finding of a directly excluded user, with the advice that fits whether
// the account is approved.
func notReviewable(it exclusion.Item) exclusion.Review {
	r := exclusion.NotReviewable()
	if !it.Allowlisted {
		r.Detail = "Access reviews cover groups, not single users. " + ExclusionAdvice(it)
	} else {
		it.Review = r
		r.Detail = ExclusionAdvice(it)
	}
	return r
}

// reviewStepText is the next step for exclusions whose access review is not current.
func reviewStepText(items []exclusion.Item) string {
	parts := make([]string, 0, len(items))
	for _, it := range items {
		name := it.ID
		if it.DisplayName != "" {
			name = fmt.Sprintf("%q (%s)", it.DisplayName, it.ID)
		}
		part := fmt.Sprintf("%s %s (review %s)", it.Kind, name, it.Review.Status)
		if adv := ExclusionAdvice(it); adv != "" {
			part += ": " + adv
		} else {
			part += "."
		}
		parts = append(parts, part)
	}
	return "Keep the exclusions reviewed. " + strings.Join(parts, " ")
}

// controlHeading is Heading for a control other than azure-management-mfa: the same outcomes, in
// words that name the control by its title.
func (a Alert) controlHeading(h Heading) Heading {
	title := a.Control
	if c, ok := capolicy.ControlByID(a.Control); ok {
		title = c.Title
	}
	q := strconv.Quote(title)
	switch h.Kind {
	case AlertRestored:
		act, _ := a.restore()
		name := a.policyName(act.PolicyID)
		switch {
		case act.Kind == ActionCreate:
			if act.desired.DisplayName != "" {
				name = strconv.Quote(act.desired.DisplayName)
			}
			h.What = fmt.Sprintf("Restored in report-only mode: no policy met %s, so caguard created %s in report-only mode.", q, name)
		case act.State == capolicy.StateEnabled.String():
			h.What = fmt.Sprintf("Restored: %s; caguard restored it, enabled, so %s is met again.", a.weakened(name), q)
			h.Do = "Ask who changed it, and why."
			return h
		default:
			h.What = fmt.Sprintf("Restored in report-only mode: %s; caguard restored it in report-only mode, so %s is not enforced yet.", a.weakened(name), q)
		}
		h.Do = "Review it and switch it on."
	case AlertRestoreFailed:
		act, _ := a.restore()
		h.What = fmt.Sprintf("Restore did not hold: %s is NOT met; %s, and caguard's write did not make it meet the control.", q, a.weakened(a.policyName(act.PolicyID)))
		h.Do = "Restore the policy by hand if the next run does not."
	case AlertNotCompliant, AlertReviewOverdue:
		if len(a.Changes) > 0 && a.Closest != nil {
			h.What = fmt.Sprintf("%s is NOT met: %s, and caguard wrote nothing.", q, a.weakened(a.policyName(a.Closest.ID)))
		} else {
			h.What = fmt.Sprintf("%s is NOT met, and caguard wrote nothing.", q)
		}
		h.Do = "Fix the policy, or let caguard restore it (REMEDIATION_MODE=remediate)."
	case AlertPending:
		h.What = fmt.Sprintf("%s is in report-only mode: it is not enforced.", q)
		h.Do = "Review the report-only policy and switch it on."
	default:
		h.What = fmt.Sprintf("%s is met.", q)
		h.Do = "Nothing to do."
	}
	return h
}
