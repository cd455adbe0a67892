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
	ID       string           `json:"id"` // stable for the same tenant, verdict, reasons and action outcome: sinks may deduplicate on it
	Time     time.Time        `json:"time"`
	TenantID string           `json:"tenantId"`
	Trigger  Trigger          `json:"trigger"`
	Verdict  capolicy.Verdict `json:"verdict"`
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
	rep := out.Report
	a := Alert{
		Time:     r.Now().UTC(),
		TenantID: r.TenantID,
		Trigger:  req.Trigger,
		Verdict:  rep.Verdict,
		Summary:  rep.Summary,
		Actions:  out.Actions,
		Warnings: out.Warnings,
	}
	if f := closest(rep); f != nil {
		a.Closest = f
	}
	for i, h := range req.Hints {
		if i == maxChanges {
			break
		}
		a.Changes = append(a.Changes, changeOf(h))
	}
	a.NextStep = reviewStep(nextStep(rep, out.Actions), out)
	a.Exclusions = out.Exclusions
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

func nextStep(rep capolicy.Report, actions []Action) string {
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
	switch rep.Verdict {
	case capolicy.VerdictPendingEnforcement:
		return "Review the report-only " + pendingName(rep) + " and switch it on: it meets the control."
	case capolicy.VerdictNonCompliant:
		return "Restore MFA for the Windows Azure Service Management API: fix the closest policy, or run caguard with REMEDIATION_MODE=remediate."
	}
	return "None."
}

func alertID(a Alert) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|", a.TenantID, a.Verdict)
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
