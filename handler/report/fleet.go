package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"time"

	"github.com/caguard/caguard/handler/capolicy"
)

// FleetInput is the fleet summary: one row per registry tenant.
type FleetInput struct {
	EvaluatedAt time.Time
	Tenants     []FleetTenant
}

// FleetTenant is one row: the tenant's last verdict, or the cause it could not be judged.
type FleetTenant struct {
	ID, Name, Mode string
	// Verdict is the tenant's verdict, or "unknown" when Cause says why it could not be judged.
	Verdict capolicy.Verdict
	LastRun time.Time
	Reasons []string
	Cause   string
}

//go:embed fleet.html.tmpl
var fleetTemplate string

var fleetPage = template.Must(template.New("fleet").Funcs(template.FuncMap{
	"utc": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
}).Parse(fleetTemplate))

// FleetHTML renders the fleet summary as a page of its own, under the same CSP as the report: no
// script. Sorting by verdict is CSS alone: each row carries its rank in a custom property, and the
// "by verdict" link targets an anchor whose :target state makes the rows flex items ordered by it,
// so the page keeps working saved, mailed or printed.
func FleetHTML(in FleetInput) ([]byte, error) {
	v := fleetView{FleetInput: in, CSP: CSP, Counts: map[string]int{}}
	for _, t := range in.Tenants {
		tone, rank := "unknown", 1
		switch t.Verdict {
		case capolicy.VerdictNonCompliant:
			tone, rank = "bad", 0
		case capolicy.VerdictPendingEnforcement:
			tone, rank = "warn", 2
		case capolicy.VerdictCompliant:
			tone, rank = "ok", 3
		}
		v.Rows = append(v.Rows, fleetRowView{FleetTenant: t, Tone: tone, Rank: rank})
		v.Counts[tone]++
	}
	var b bytes.Buffer
	if err := fleetPage.Execute(&b, v); err != nil {
		return nil, fmt.Errorf("render fleet report: %w", err)
	}
	return b.Bytes(), nil
}

type fleetView struct {
	FleetInput
	CSP    string
	Rows   []fleetRowView
	Counts map[string]int // by tone
}

type fleetRowView struct {
	FleetTenant
	Tone string // ok, warn, bad, unknown
	// Rank orders the rows by verdict, worst first: non-compliant, not judged, pending, compliant.
	Rank int
}
