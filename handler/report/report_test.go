package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/reconcile"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (run with -update to accept)\ngot:\n%s", name, got)
	}
}

var evaluatedAt = time.Date(2026, 3, 14, 9, 27, 0, 0, time.UTC)

// pendingInput is a tenant with a passing report-only policy, a failing one, a Microsoft-managed one
// and reviewed and unreviewed exclusions.
func pendingInput() Input {
	last := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	return Input{
		TenantID:    "11111111-2222-3333-4444-555555555555",
		EvaluatedAt: evaluatedAt,
		Mode:        "report",
		Verdict:     capolicy.VerdictPendingEnforcement,
		Summary:     "\"caguard: require MFA for Azure management\" meets every rule but is report-only.",
		Policies: []capolicy.PolicyResult{
			{ID: "aaaaaaaa-0000-0000-0000-000000000001", DisplayName: "Require MFA for admins (legacy)", State: capolicy.StateDisabled,
				Reasons: []capolicy.Reason{
					{Code: "STATE_NOT_ENABLED", Message: "The policy is off."},
					{Code: "USERS_NOT_ALL", Message: "The policy does not include all users."},
				}},
			{ID: "cccccccc-0000-0000-0000-000000000003", DisplayName: "caguard: require MFA for Azure management", State: capolicy.StateReportOnly,
				MeetsAllButState: true,
				Reasons:          []capolicy.Reason{{Code: "STATE_REPORT_ONLY", Message: "The policy is in report-only mode: it logs but does not enforce."}}},
			{ID: "dddddddd-0000-0000-0000-000000000004", DisplayName: "Microsoft-managed: Multifactor authentication for admins accessing Microsoft Admin Portals",
				State: capolicy.StateReportOnly, MicrosoftManaged: true,
				Reasons: []capolicy.Reason{{Code: "APP_NOT_TARGETED", Message: "The policy does not target the Windows Azure Service Management API."}}},
		},
		Closest: "cccccccc-0000-0000-0000-000000000003",
		Actions: []reconcile.Action{{Kind: reconcile.ActionNone, Reason: "the tenant is pending enforcement; nothing to restore"}},
		Exclusions: []exclusion.Item{
			{Kind: exclusion.KindGroup, ID: "22222222-2222-2222-2222-222222222222", DisplayName: "Break-glass accounts", Allowlisted: true,
				Review: exclusion.Review{Status: exclusion.ReviewCurrent, Detail: "Quarterly review \"Break-glass\" completed 2026-02-01.", LastCompleted: &last}},
			{Kind: exclusion.KindUser, ID: "11111111-1111-1111-1111-111111111111", DisplayName: "Emergency admin", Allowlisted: true,
				Review: exclusion.Review{Status: exclusion.ReviewNotReviewable, Detail: "Access reviews cover groups, not single users."}},
			{Kind: exclusion.KindGroup, ID: "33333333-3333-3333-3333-333333333333", DisplayName: "Contractors", Allowlisted: false,
				Review: exclusion.Review{Status: exclusion.ReviewNone, Detail: "No access review covers this group."}},
		},
	}
}

// compliantInput has one passing enforced policy, no exclusions and a performed restore.
func compliantInput() Input {
	return Input{
		TenantID:    "11111111-2222-3333-4444-555555555555",
		EvaluatedAt: evaluatedAt,
		Mode:        "run",
		Verdict:     capolicy.VerdictCompliant,
		Summary:     "\"Require MFA for Azure management\" requires MFA for the Windows Azure Service Management API.",
		Policies: []capolicy.PolicyResult{
			{ID: "bbbbbbbb-0000-0000-0000-000000000002", DisplayName: "Block legacy authentication", State: capolicy.StateEnabled,
				Reasons: []capolicy.Reason{{Code: "GRANT_NOT_MFA", Message: "The policy does not require MFA."}}},
			{ID: "aaaaaaaa-0000-0000-0000-000000000001", DisplayName: "Require MFA for Azure management", State: capolicy.StateEnabled, Compliant: true},
		},
		Passing: []string{"aaaaaaaa-0000-0000-0000-000000000001"},
		Actions: []reconcile.Action{{Kind: reconcile.ActionUpdate, PolicyID: "cccccccc-0000-0000-0000-000000000003", State: "enabled",
			Fields: []string{"conditions", "grantControls"}, Performed: true, Reason: "restored 2 field(s) of the managed policy"}},
	}
}

// hostileInput puts script, markup and quotes in every tenant string.
func hostileInput() Input {
	in := pendingInput()
	in.Verdict = capolicy.VerdictNonCompliant
	evil := `<script>alert(1)</script><img src=x onerror=alert(2)> "quoted" 'single' </style><a href="https://evil.example">x</a>`
	in.Summary = evil
	in.Policies[0].DisplayName = evil
	in.Policies[0].Reasons[0].Message = evil
	in.Exclusions[0].DisplayName = evil
	in.Exclusions[0].Review.Detail = evil
	in.Exclusions[1].Kind = exclusion.Kind(evil)
	in.Exclusions[1].Review.Status = exclusion.ReviewStatus(evil)
	in.Actions[0].Reason = evil
	in.Warnings = []string{evil, strings.Repeat("W", 3000)}
	in.TenantID = evil
	return in
}

func TestHTMLGolden(t *testing.T) {
	tests := []struct {
		name string
		in   Input
	}{
		{"pending-enforcement", pendingInput()},
		{"compliant", compliantInput()},
		{"hostile", hostileInput()},
		{"empty", Input{Verdict: capolicy.VerdictNonCompliant, EvaluatedAt: evaluatedAt, Summary: "No policy targets the app."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := HTML(tt.in)
			if err != nil {
				t.Fatalf("HTML: %v", err)
			}
			golden(t, tt.name+".html", b)
		})
	}
}

func TestHTMLIsSelfContained(t *testing.T) {
	b, err := HTML(hostileInput())
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, `<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; style-src &#39;unsafe-inline&#39;;`) {
		t.Error("the CSP meta tag is missing or changed")
	}
	if !strings.Contains(s, `<meta name="viewport"`) || !strings.Contains(s, "@media print") || !strings.Contains(s, "@media (max-width") {
		t.Error("the page lacks the viewport tag, the print styles or the phone styles")
	}
	// Walk the page as a browser's tokenizer sees it: only these elements and attributes may appear,
	// so no tenant string became a script, an image, a link or an event handler.
	elements := map[string]bool{"html": true, "head": true, "meta": true, "title": true, "style": true, "body": true,
		"main": true, "header": true, "section": true, "article": true, "footer": true, "div": true, "p": true, "span": true,
		"h1": true, "h2": true, "h3": true, "dl": true, "dt": true, "dd": true, "ul": true, "li": true, "code": true,
		"table": true, "thead": true, "tbody": true, "tr": true, "th": true, "td": true, "br": true}
	attrs := map[string]bool{"lang": true, "charset": true, "http-equiv": true, "content": true, "name": true,
		"class": true, "role": true, "data-label": true}
	z := html.NewTokenizer(bytes.NewReader(b))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		if tok.Data == "a" {
			// The one link: a policy's page in the Entra admin center, built from a GUID only.
			for _, a := range tok.Attr {
				switch {
				case a.Key == "href" && guidRE.MatchString(strings.TrimPrefix(a.Val, entraPolicyURL)) && strings.HasPrefix(a.Val, entraPolicyURL):
				case a.Key == "rel" && a.Val == "noopener noreferrer":
				default:
					t.Errorf("<a> holds %s=%q; only a link to a policy in Entra may appear", a.Key, a.Val)
				}
			}
			continue
		}
		if !elements[tok.Data] {
			t.Errorf("page holds a <%s> element", tok.Data)
		}
		for _, a := range tok.Attr {
			if !attrs[a.Key] {
				t.Errorf("<%s> holds a %s attribute", tok.Data, a.Key)
			}
		}
	}
	for _, fetch := range []string{"url(", "@import"} {
		if strings.Contains(s, fetch) {
			t.Errorf("the page's CSS fetches: %q", fetch)
		}
	}
	if strings.Count(s, "</style>") != 1 {
		t.Errorf("got %d </style>, want 1: a tenant string closed the style element", strings.Count(s, "</style>"))
	}
	if !strings.Contains(s, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("the hostile name is not shown escaped: it was dropped or mangled")
	}
}

func TestHTMLOrdersPassingThenClosest(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		want []string // display names in page order
	}{
		{"the passing policy comes first", compliantInput(), []string{"Require MFA for Azure management", "Block legacy authentication"}},
		{"the closest policy comes first when none passes", pendingInput(), []string{
			"caguard: require MFA for Azure management", "Require MFA for admins (legacy)",
			"Microsoft-managed: Multifactor authentication for admins accessing Microsoft Admin Portals"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := HTML(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range regexp.MustCompile(`<h3>([^<]*)</h3>`).FindAllStringSubmatch(string(b), -1) {
				got = append(got, strings.ReplaceAll(m[1], "&#34;", "\""))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("got order %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHTMLShowsExclusionsOnlyWhenThereAreAny(t *testing.T) {
	with, err := HTML(pendingInput())
	if err != nil {
		t.Fatal(err)
	}
	without, err := HTML(compliantInput())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(with), "<h2>Exclusions (3)</h2>") {
		t.Error("with three exclusions: the Exclusions section is missing")
	}
	for _, s := range []string{"Break-glass accounts", ">current<", ">not-reviewable<", ">none<", "No access review covers this group."} {
		if !strings.Contains(string(with), s) {
			t.Errorf("exclusions section lacks %q", s)
		}
	}
	if strings.Contains(string(without), "Exclusions") {
		t.Error("without exclusions: got an Exclusions section, want none")
	}
}

// With several controls the page lists them, the failing first.
func TestControlsAreListedFailingFirst(t *testing.T) {
	in := compliantInput()
	in.Controls = []Control{
		{ID: "azure-management-mfa", Title: "MFA for Azure management", Verdict: capolicy.VerdictCompliant, Guarded: true},
		{ID: "admin-portals-mfa", Title: "MFA for admin portals", Verdict: capolicy.VerdictPendingEnforcement},
		{ID: "block-legacy-authentication", Title: "Legacy authentication blocked", Verdict: capolicy.VerdictNonCompliant, Summary: "<b>no</b>"},
	}
	b, err := HTML(in)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j, k := strings.Index(s, "Legacy authentication blocked"), strings.Index(s, "MFA for admin portals"), strings.Index(s, "MFA for Azure management</")
	if i < 0 || j < 0 || i > j || (k >= 0 && j > k) || !strings.Contains(s, "Controls (3)") {
		t.Errorf("controls not listed failing first (%d, %d, %d)", i, j, k)
	}
	if strings.Contains(s, "<b>no</b>") {
		t.Error("a summary was not escaped")
	}
	in.Controls = in.Controls[:1]
	if b, _ = HTML(in); strings.Contains(string(b), "Controls (") {
		t.Error("a single control got a controls section")
	}
}

// A control's licence finding reads in words: missing, present, or unknown when the subscriptions
// could not be read.
func TestControlsNameTheirLicenceInWords(t *testing.T) {
	in := compliantInput()
	in.Controls = []Control{
		{ID: "azure-management-mfa", Title: "MFA for Azure management", Verdict: capolicy.VerdictCompliant, Guarded: true},
		{ID: "user-risk-policy", Title: "High user risk", Verdict: capolicy.VerdictNonCompliant,
			Summary: `Licence missing: "High user risk" needs Microsoft Entra ID P2, which the tenant does not have.`,
			Licence: "Microsoft Entra ID P2", LicenceKnown: true, LicenceMissing: true},
		{ID: "sign-in-risk-policy", Title: "Sign-in risk", Verdict: capolicy.VerdictCompliant, Licence: "Microsoft Entra ID P2", LicenceKnown: true},
	}
	for _, tc := range []struct {
		name  string
		mod   func([]Control)
		wants []string
		not   []string
	}{
		{"missing and present", func([]Control) {}, []string{
			`<span class="badge bad">licence missing</span> Licence missing: &#34;High user risk&#34; needs Microsoft Entra ID P2, which the tenant does not have.`,
			"Needs Microsoft Entra ID P2, which the tenant has."}, []string{"could not be read"}},
		{"unknown", func(cs []Control) {
			cs[1].LicenceKnown, cs[1].LicenceMissing, cs[1].Summary = false, false, "Non-compliant."
		}, []string{
			"Needs Microsoft Entra ID P2; the tenant's subscriptions could not be read, so whether it has it is unknown."}, []string{"licence missing<"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := in
			c.Controls = slices.Clone(in.Controls)
			tc.mod(c.Controls)
			b, err := HTML(c)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(string(b), w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(string(b), n) {
					t.Errorf("page shows %q", n)
				}
			}
		})
	}
}
