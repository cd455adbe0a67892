package alert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/reconcile"
)

// Format is the shape of a webhook body (ALERT_WEBHOOK_FORMAT).
type Format string

// Formats.
const (
	// FormatAuto picks a format from the webhook URL's host: see FormatForURL.
	FormatAuto Format = "auto"
	// FormatTeams is a Teams Workflows message holding one Adaptive Card. Workflows ("When a Teams
	// webhook request is received"), which replace the retired Microsoft 365 connectors, post Adaptive
	// Cards only: a {"text": …} body shows nothing.
	FormatTeams Format = "teams"
	// FormatSlack is a Slack incoming-webhook message: Block Kit blocks, with text as the fallback that
	// notifications and old clients show.
	FormatSlack Format = "slack"
	// FormatJSON is {"text": a short message, "alert": the Alert}, for any other receiver.
	FormatJSON Format = "json"
)

// Formats lists the values ALERT_WEBHOOK_FORMAT accepts.
var Formats = []Format{FormatAuto, FormatTeams, FormatSlack, FormatJSON}

// ParseFormat reads an ALERT_WEBHOOK_FORMAT value; empty means auto.
func ParseFormat(s string) (Format, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return FormatAuto, nil
	}
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("webhook format %q: want one of auto, teams, slack, json", s)
}

// FormatForURL is what auto resolves to for a webhook URL:
//   - Teams: Workflows webhooks are Power Automate / Logic Apps triggers. Their URLs are on
//     <region>.logic.azure.com (the original Workflows host, e.g. prod-27.westus.logic.azure.com) or,
//     since Microsoft moved the triggers in 2025, on <env>.environment.api.powerplatform.com; Power
//     Automate also issues api.powerautomate.com and *.flow.microsoft.com addresses. The legacy
//     connector host *.webhook.office.com accepts the same attachments message.
//   - Slack: hooks.slack.com.
//   - anything else: json.
func FormatForURL(rawURL string) Format {
	u, err := url.Parse(rawURL)
	if err != nil {
		return FormatJSON
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	switch {
	case host == "hooks.slack.com":
		return FormatSlack
	case hasDomain(host, "logic.azure.com"),
		hasDomain(host, "environment.api.powerplatform.com"),
		hasDomain(host, "api.powerplatform.com"),
		hasDomain(host, "powerautomate.com"),
		hasDomain(host, "flow.microsoft.com"),
		hasDomain(host, "webhook.office.com"):
		return FormatTeams
	}
	return FormatJSON
}

// hasDomain reports whether host is domain or a subdomain of it ("evil-logic.azure.com.example" is not).
func hasDomain(host, domain string) bool {
	return host == domain || strings.HasSuffix(host, "."+domain)
}

// Encode renders the body of a webhook post in format f (teams, slack or json; auto must be resolved
// first, with FormatForURL).
func Encode(f Format, a reconcile.Alert) ([]byte, error) {
	switch f {
	case FormatTeams:
		return teamsMessage(a)
	case FormatSlack:
		return slackMessage(a)
	case FormatJSON:
		b, err := json.Marshal(webhookBody{Text: messageText(a), Alert: a})
		if err != nil {
			return nil, fmt.Errorf("encode alert %s: %w", a.ID, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("encode alert %s: unresolved webhook format %q", a.ID, f)
}

// marshal encodes v without turning <, > and & into \u escapes: the bodies are not HTML, and the
// Slack escapes (&lt;) stay readable.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// view is an alert laid out for a person, as plain text: the Teams and Slack renderers escape every
// string for their markup and add the structure. Lists are already capped, with an "and N more" line.
type view struct {
	Title    string
	Tone     tone
	Summary  string
	Facts    []fact
	Reasons  []string
	Changes  []changeView
	Actions  []string
	Warnings []string
	// Exclusions is one compact line per excluded object: its name before its id, and its review
	// status (the alert object carries every detail).
	Exclusions []string
	NextStep   string
	Footer     string
	PolicyURL  string // Entra admin center page of the closest policy; "" when its id is not a GUID
	LinkTitle  string
}

type fact struct{ Title, Value string }

type changeView struct {
	Line   string   // who did what to which object, when
	Fields []string // "field: from → to"
}

// tone is how loud the header is.
type tone int

const (
	toneAttention tone = iota // non-compliant: red
	toneWarning               // pending enforcement: amber
	toneGood                  // compliant (e.g. after a restore)
)

// limits bound the rendered lists and values. The card renderer tightens them until the message fits.
type limits struct {
	reasons, changes, fields, actions, warnings, exclusions int
	value                                                   int // runes of one value from the tenant or the reconciler
}

var defaultLimits = limits{reasons: 15, changes: 5, fields: 8, actions: 5, warnings: 5, exclusions: 8, value: 300}

// entraPolicyURL is the Entra admin center's page for one Conditional Access policy; the id is checked
// to be a GUID first, so a tenant string cannot steer the link elsewhere.
const (
	entraPolicyURL   = "https://entra.microsoft.com/#view/Microsoft_AAD_ConditionalAccess/PolicyBlade/policyId/"
	entraPoliciesURL = "https://entra.microsoft.com/#view/Microsoft_AAD_ConditionalAccess/ConditionalAccessBlade/~/Policies"
)

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func newView(a reconcile.Alert, lim limits) view {
	c := func(s string) string { return clip(s, lim.value) }
	v := view{
		// The headline holds a policy name and an actor from the tenant: bounded like the summary.
		Title: "caguard alert: " + clip(headlineOf(a), 2*lim.value),
		// The summary and next step are caguard's own sentences around a name or two: they get more room.
		Summary:   clip(a.Summary, 3*lim.value),
		NextStep:  clip(a.NextStep, 3*lim.value),
		PolicyURL: entraPoliciesURL,
		LinkTitle: "Open Conditional Access policies in Entra",
	}
	// The colour follows what happened, as the headline does: a restore that held is no longer red,
	// and a compliant tenant whose review is overdue is amber, not green.
	switch a.Kind() {
	case reconcile.AlertPending, reconcile.AlertReviewOverdue:
		v.Tone = toneWarning
	case reconcile.AlertRestored:
		v.Tone = toneWarning
		if act, ok := restoreOf(a); ok && act.State == capolicy.StateEnabled.String() {
			v.Tone = toneGood
		}
	case reconcile.AlertCompliant:
		v.Tone = toneGood
	}
	if a.Failure != "" {
		v.Tone = toneAttention
	}

	if a.Failure != "" {
		// A failed run has no verdict: what failed is the one reason to show.
		v.Facts = append(v.Facts, fact{"Verdict", "not evaluated: the run failed"}, fact{"Tenant", c(tenantText(a))})
		v.Reasons = append(v.Reasons, c(a.Failure))
	} else {
		v.Facts = append(v.Facts, fact{"Verdict", c(string(a.Verdict))}, fact{"Tenant", c(tenantText(a))})
		if a.Control != "" {
			v.Facts = append(v.Facts, fact{"Control", c(a.Control)})
		}
	}
	if p := a.Closest; p != nil {
		v.Facts = append(v.Facts, fact{"Policy", c(quoted(p.DisplayName) + " (" + p.ID + ")")}, fact{"State", c(p.State)})
		if guidRE.MatchString(p.ID) {
			v.PolicyURL = entraPolicyURL + strings.ToLower(p.ID)
			v.LinkTitle = "Open the policy in Entra"
		}
		for i, r := range p.Reasons {
			if i == lim.reasons {
				v.Reasons = append(v.Reasons, fmt.Sprintf("and %d more", len(p.Reasons)-lim.reasons))
				break
			}
			v.Reasons = append(v.Reasons, c(fmt.Sprintf("%s (%s)", oneLine(r.Message), r.Code)))
		}
	}
	v.Facts = append(v.Facts, fact{"Trigger", c(string(a.Trigger))})
	if len(a.Changes) > 0 {
		first := a.Changes[0]
		who := first.Actor
		if first.ActorIP != "" {
			who += " from " + first.ActorIP
		}
		if n := len(a.Changes) - 1; n > 0 {
			who += fmt.Sprintf(" (and %d more change(s))", n)
		}
		v.Facts = append(v.Facts, fact{"Changed by", c(who)})
		if !first.Time.IsZero() {
			v.Facts = append(v.Facts, fact{"Changed at", first.Time.UTC().Format("2006-01-02 15:04:05 UTC")})
		}
	}
	v.Facts = append(v.Facts, fact{"Alert time", a.Time.UTC().Format("2006-01-02 15:04:05 UTC")})

	for i, ch := range a.Changes {
		if i == lim.changes {
			v.Changes = append(v.Changes, changeView{Line: fmt.Sprintf("and %d more change(s)", len(a.Changes)-lim.changes)})
			break
		}
		cv := changeView{Line: c(changeSentence(ch))}
		for j, f := range ch.Fields {
			if j == lim.fields {
				cv.Fields = append(cv.Fields, fmt.Sprintf("and %d more field(s)", len(ch.Fields)-lim.fields))
				break
			}
			cv.Fields = append(cv.Fields, c(fmt.Sprintf("%s: %s → %s", oneLine(f.Field), orNone(f.From), orNone(f.To))))
		}
		v.Changes = append(v.Changes, cv)
	}
	for i, act := range a.Actions {
		if i == lim.actions {
			v.Actions = append(v.Actions, fmt.Sprintf("and %d more", len(a.Actions)-lim.actions))
			break
		}
		v.Actions = append(v.Actions, c(actionSentence(act)))
	}
	for i, w := range a.Warnings {
		if i == lim.warnings {
			v.Warnings = append(v.Warnings, fmt.Sprintf("and %d more", len(a.Warnings)-lim.warnings))
			break
		}
		v.Warnings = append(v.Warnings, c(w))
	}
	for i, x := range a.Exclusions {
		if i == lim.exclusions {
			v.Exclusions = append(v.Exclusions, fmt.Sprintf("and %d more", len(a.Exclusions)-lim.exclusions))
			break
		}
		v.Exclusions = append(v.Exclusions, c(exclusionLine(x)))
	}
	v.Footer = c(fmt.Sprintf("Alert %s · %s · trigger %s", a.ID, a.Time.UTC().Format("2006-01-02T15:04:05Z"), a.Trigger))
	return v
}

// restoreOf is the write of this run, if any.
func restoreOf(a reconcile.Alert) (reconcile.Action, bool) {
	for _, act := range a.Actions {
		if act.Written {
			return act, true
		}
	}
	return reconcile.Action{}, false
}

func changeSentence(c reconcile.Change) string {
	s := oneLine(c.Actor) + ": " + oneLine(c.Activity)
	switch {
	case c.TargetName != "" && c.TargetID != "":
		s += " on " + quoted(c.TargetName) + " (" + c.TargetID + ")"
	case c.TargetName != "":
		s += " on " + quoted(c.TargetName)
	case c.TargetID != "":
		s += " on " + c.TargetID
	}
	if c.MemberName != "" || c.MemberID != "" {
		s += " (member " + strings.TrimSpace(oneLine(c.MemberName)+" "+c.MemberID) + ")"
	}
	if !c.Time.IsZero() {
		s += " at " + c.Time.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	return s
}

func actionSentence(a reconcile.Action) string {
	done := "not performed"
	if a.Performed {
		done = "performed"
	}
	s := a.Kind
	if a.PolicyID != "" {
		s += " " + a.PolicyID
	}
	if a.State != "" {
		s += " (" + a.State + ")"
	}
	return s + ", " + done + ": " + a.Reason
}

// quoted puts a name in plain double quotes (not Go's %q, whose backslash escapes would show).
func quoted(s string) string { return "\"" + oneLine(s) + "\"" }

func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "(none)"
	}
	return oneLine(s)
}

// oneLine folds every run of white space, newlines included, into one space: a name with a newline
// must not start a new list item or paragraph in any format.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// clip folds s to one line of at most n runes, marking a cut with an ellipsis.
func clip(s string, n int) string {
	return cutAtWord(oneLine(strings.ToValidUTF8(s, "?")), n)
}

// cutAtWord shortens s to at most n runes, marking the cut with an ellipsis. It cuts at a space when
// one lies in the last quarter of the room, so that a word, and above all a GUID, is never cut in
// the middle: a reader who sees half an id cannot look it up, and may take it for another.
func cutAtWord(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	cut := n - 1                                    // room for the ellipsis
	for i := cut - 1; i > cut-cut/4 && i > 0; i-- { // and for the space before it
		if r[i] == ' ' {
			return strings.TrimRight(string(r[:i]), " ,;:") + " …"
		}
	}
	return string(r[:cut]) + "…"
}

// tenantText names the tenant: its id alone for the single tenant, as always; with a registry, its
// display name first, since a provider reading alerts for a thousand tenants knows them by name.
func tenantText(a reconcile.Alert) string {
	if a.TenantName == "" || a.TenantName == a.TenantID {
		return a.TenantID
	}
	return a.TenantName + " (" + a.TenantID + ")"
}
