package alert

import (
	"fmt"
	"strings"
	"time"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/reconcile"
)

// Bounds on the human message: chat clients truncate or reject long posts, and the full detail is in
// the "alert" object beside it anyway.
const (
	maxTextChanges = 10
	maxTextFields  = 5
	maxTextValue   = 200 // runes of one name, summary or reason
	// The headline holds caguard's sentence around a policy name and an actor: it gets more room.
	maxTextHeadline = 2 * maxTextValue
)

// messageText renders an alert as a short message for a chat webhook. It keeps to the markdown subset
// that Teams and Slack incoming webhooks both render: plain paragraphs separated by blank lines and
// "- " lists. Names in an alert come from the tenant (policy names, user principal names), so every
// value goes through clean: a policy called "<!channel>" must not page a whole Slack workspace.
func messageText(a reconcile.Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "caguard alert: %s (tenant %s)", cleanN(headlineOf(a), maxTextHeadline), clean(tenantText(a)))
	switch {
	case a.Failure != "":
		// The summary wraps these words, and a cut summary would cut them.
		b.WriteString("\n\nWhat failed: " + clean(a.Failure))
	case a.Summary != "":
		b.WriteString("\n\n" + clean(a.Summary))
	}

	if len(a.Changes) > 0 {
		b.WriteString("\n\nWhat changed:")
		for i, c := range a.Changes {
			if i == maxTextChanges {
				fmt.Fprintf(&b, "\n- and %d more", len(a.Changes)-maxTextChanges)
				break
			}
			b.WriteString("\n- " + changeLine(c))
		}
	}

	if p := a.Closest; p != nil {
		fmt.Fprintf(&b, "\n\nClosest policy: %s (%s), state %s", quoteName(p.DisplayName), clean(p.ID), clean(p.State))
		if len(p.Reasons) == 0 {
			b.WriteString(": meets every rule")
		} else {
			b.WriteString(", because:")
			for _, r := range p.Reasons {
				fmt.Fprintf(&b, "\n- %s (%s)", clean(r.Message), clean(r.Code))
			}
		}
	}

	writeExclusions(&b, a.Exclusions)

	if len(a.Actions) > 0 {
		b.WriteString("\n\nWhat caguard did:")
		for _, act := range a.Actions {
			b.WriteString("\n- " + actionLine(act))
		}
	}

	if a.NextStep != "" {
		b.WriteString("\n\nNext step: " + clean(a.NextStep))
	}
	fmt.Fprintf(&b, "\n\nAlert %s, %s, trigger %s.", clean(a.ID), a.Time.UTC().Format(time.RFC3339), clean(string(a.Trigger)))
	return b.String()
}

// headlineOf is an alert's title: in one line, what happened and what the reader should do
// (reconcile.Alert.Heading, the one place those words are written), or that the run failed and nothing
// was checked. It holds names from the tenant: each renderer escapes it for its markup.
func headlineOf(a reconcile.Alert) string {
	if a.Failure != "" {
		return "a run failed, so MFA for the Windows Azure Service Management API was not checked"
	}
	if a.Verdict == "" {
		return headline(a.Verdict)
	}
	return a.Heading().String()
}

func headline(v capolicy.Verdict) string {
	switch v {
	case capolicy.VerdictNonCompliant:
		return "MFA is NOT required for the Windows Azure Service Management API"
	case capolicy.VerdictPendingEnforcement:
		return "MFA for the Windows Azure Service Management API is in report-only mode, not enforced"
	case capolicy.VerdictCompliant:
		return "MFA is required for the Windows Azure Service Management API"
	}
	return "verdict " + clean(string(v))
}

func changeLine(c reconcile.Change) string {
	var b strings.Builder
	b.WriteString(clean(c.Actor) + ": " + clean(c.Activity))
	switch {
	case c.TargetName != "" && c.TargetID != "":
		fmt.Fprintf(&b, " on %s (%s)", quoteName(c.TargetName), clean(c.TargetID))
	case c.TargetName != "":
		b.WriteString(" on " + quoteName(c.TargetName))
	case c.TargetID != "":
		b.WriteString(" on " + clean(c.TargetID))
	}
	if !c.Time.IsZero() {
		b.WriteString(" at " + c.Time.UTC().Format(time.RFC3339))
	}
	if len(c.Fields) > 0 {
		names := make([]string, 0, maxTextFields)
		for i, f := range c.Fields {
			if i == maxTextFields {
				names = append(names, fmt.Sprintf("and %d more", len(c.Fields)-maxTextFields))
				break
			}
			names = append(names, clean(f.Field))
		}
		b.WriteString("; changed " + strings.Join(names, ", "))
	}
	return b.String()
}

func actionLine(a reconcile.Action) string {
	done := "not performed"
	if a.Performed {
		done = "performed"
	}
	s := clean(a.Kind)
	if a.PolicyID != "" {
		s += " " + clean(a.PolicyID)
	}
	if a.State != "" {
		s += " (" + clean(a.State) + ")"
	}
	return s + ", " + done + ": " + clean(a.Reason)
}

func quoteName(s string) string { return "\"" + clean(s) + "\"" }

// clean makes one value safe to embed in the message: one line, bounded, with the three characters
// Slack treats as markup (links, mentions) escaped as its documentation asks, and @here, @channel and
// @everyone neutralised; Teams shows the entities as the characters.
func clean(s string) string { return cleanN(s, maxTextValue) }

// cleanN is clean with a bound of n runes.
func cleanN(s string, n int) string {
	s = cutAtWord(strings.Join(strings.Fields(s), " "), n)
	return neutraliseMentions(slackEscaper.Replace(s))
}
