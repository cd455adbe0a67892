// Package report renders caguard's evaluation as one self-contained HTML page, for the security and
// identity admins who look at the control and hand it to an auditor. It is pure: it takes values and
// returns bytes; no I/O, no clock.
//
// The page needs nothing from elsewhere: its CSS is inline, it has no script, and its Content
// Security Policy (default-src 'none'; style-src 'unsafe-inline') forbids every fetch, so it can be
// saved, mailed or printed as it is. Every tenant string (policy names, group names) goes through
// html/template's contextual escaping.
package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/reconcile"
)

// ContentType is the media type of the page.
const ContentType = "text/html; charset=utf-8"

// CSP is the page's Content Security Policy, also worth sending as a header.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

// Input is what the page shows: the Evaluate answer's values.
type Input struct {
	TenantID string
	// TenantName is the tenant's display name in the registry; empty with a single tenant.
	TenantName  string
	EvaluatedAt time.Time
	Mode        string // "report" (GET: nothing written) or "run" (POST)
	Verdict     capolicy.Verdict
	Summary     string
	Policies    []capolicy.PolicyResult
	Passing     []string // ids of the compliant policies
	Closest     string   // id of the closest policy when none passes
	Actions     []reconcile.Action
	Warnings    []string
	// Exclusions are the users and groups the policies exempt; the section is shown when there are any.
	Exclusions []exclusion.Item
	AlertID    string
	// Controls are the catalogue controls judged (CONTROLS); with more than one the page lists them,
	// the failing first. The sections below describe azure-management-mfa.
	Controls []Control
}

// Control is one catalogue control's verdict.
type Control struct {
	ID, Title, CIS, Summary string
	Verdict                 capolicy.Verdict
	Guarded                 bool
	// Licence names the licence the control needs ("" for none); LicenceMissing says the tenant
	// lacks it, and LicenceKnown false that its subscriptions could not be read.
	Licence                      string
	LicenceKnown, LicenceMissing bool
}

//go:embed report.html.tmpl
var pageTemplate string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"utc": func(t time.Time) string {
		if t.IsZero() {
			return "unknown"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"reviewClass": func(s exclusion.ReviewStatus) string {
		switch s {
		case exclusion.ReviewCurrent:
			return "ok"
		case exclusion.ReviewOverdue, exclusion.ReviewNone:
			return "bad"
		}
		return "warn"
	},
}).Parse(pageTemplate))

// HTML renders the page.
func HTML(in Input) ([]byte, error) {
	var b bytes.Buffer
	if err := page.Execute(&b, newView(in)); err != nil {
		return nil, fmt.Errorf("render report: %w", err)
	}
	return b.Bytes(), nil
}

// view is Input arranged for the template.
type view struct {
	Input
	Tone       string // ok, warn, bad: the banner's colour
	Headline   string
	Policies   []policyView
	Performed  int
	ModeText   string
	CSP        string
	Exclusions []exclusionView
	// ActionsTitle heads the actions: what this request did, or, for a report, what a run would do.
	ActionsTitle, ActionsNote string
	// ControlRows are the controls, failing first; empty when only one is judged.
	ControlRows []Control
}

type policyView struct {
	capolicy.PolicyResult
	Mark     string // PASS, FAIL
	Role     string // "passing", "closest", ""
	StateUI  string
	EntraURL string // the policy's page in the Entra admin center; "" when the id is not a GUID
}

// entraPolicyURL is the Entra admin center's page of one Conditional Access policy. Only a GUID goes
// into it, so a tenant string cannot steer the link elsewhere.
const entraPolicyURL = "https://entra.microsoft.com/#view/Microsoft_AAD_ConditionalAccess/PolicyBlade/policyId/"

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

type exclusionView struct {
	exclusion.Item
	KindText string
}

func newView(in Input) view {
	v := view{Input: in, CSP: CSP}
	switch in.Verdict {
	case capolicy.VerdictCompliant:
		v.Tone, v.Headline = "ok", "Compliant: MFA is required for the Windows Azure Service Management API"
	case capolicy.VerdictPendingEnforcement:
		v.Tone, v.Headline = "warn", "Pending enforcement: the MFA policy is in report-only mode, not enforced"
	case capolicy.VerdictNonCompliant:
		v.Tone, v.Headline = "bad", "Non-compliant: MFA is NOT required for the Windows Azure Service Management API"
	default:
		v.Tone, v.Headline = "bad", "Verdict unknown: "+string(in.Verdict)
	}
	// Compliant while an exclusion's access review is overdue or missing is not all green.
	if in.Verdict == capolicy.VerdictCompliant {
		n := 0
		for _, e := range in.Exclusions {
			if e.NeedsReview() {
				n++
			}
		}
		if n > 0 {
			v.Tone = "warn"
			v.Headline = fmt.Sprintf("Compliant, but %d exclusion(s) lack a current access review: MFA is required for the Windows Azure Service Management API", n)
		}
	}
	switch in.Mode {
	case "run":
		v.ModeText = "run (caguard could write its managed policy)"
		v.ActionsTitle = "Actions of this run"
	default:
		v.ModeText = "report only (nothing written, no alert sent)"
		v.ActionsTitle = "Planned actions"
		v.ActionsNote = "This page was asked for a report, so it wrote nothing: these are what a run would do now, not what the last run did."
	}

	passing := map[string]bool{}
	for _, id := range in.Passing {
		passing[id] = true
	}
	// The passing policies first, then the closest, then the rest in the order Graph listed them.
	var first, second, rest []policyView
	for _, p := range in.Policies {
		pv := policyView{PolicyResult: p, Mark: "FAIL", StateUI: stateText(p.State)}
		if guidRE.MatchString(p.ID) {
			pv.EntraURL = entraPolicyURL + strings.ToLower(p.ID)
		}
		switch {
		case passing[p.ID] || p.Compliant:
			pv.Mark, pv.Role = "PASS", "passing"
			first = append(first, pv)
		case p.ID == in.Closest:
			pv.Role = "closest"
			second = append(second, pv)
		default:
			rest = append(rest, pv)
		}
	}
	v.Policies = append(append(first, second...), rest...)
	for _, a := range in.Actions {
		if a.Performed {
			v.Performed++
		}
	}
	if len(in.Controls) > 1 {
		rank := map[capolicy.Verdict]int{capolicy.VerdictNonCompliant: 0, capolicy.VerdictPendingEnforcement: 1, capolicy.VerdictCompliant: 2}
		v.ControlRows = slices.Clone(in.Controls)
		slices.SortStableFunc(v.ControlRows, func(a, b Control) int { return rank[a.Verdict] - rank[b.Verdict] })
	}
	for _, e := range in.Exclusions {
		k := string(e.Kind)
		switch e.Kind {
		case exclusion.KindUser:
			k = "User"
		case exclusion.KindGroup:
			k = "Group"
		}
		v.Exclusions = append(v.Exclusions, exclusionView{Item: e, KindText: k})
	}
	return v
}

func stateText(s capolicy.State) string {
	switch s {
	case capolicy.StateEnabled:
		return "On"
	case capolicy.StateReportOnly:
		return "Report-only"
	case capolicy.StateDisabled:
		return "Off"
	}
	return s.String()
}
