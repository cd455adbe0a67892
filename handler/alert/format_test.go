package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/reconcile"
)

func TestParseFormat(t *testing.T) {
	tests := []struct {
		name, in string
		want     Format
		wantErr  bool
	}{
		{name: "empty means auto", in: "", want: FormatAuto},
		{name: "teams is read in any case", in: " Teams ", want: FormatTeams},
		{name: "slack is slack", in: "slack", want: FormatSlack},
		{name: "json is json", in: "json", want: FormatJSON},
		{name: "auto is auto", in: "auto", want: FormatAuto},
		{name: "an unknown format is an error", in: "msteams", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFormat(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseFormat(%q): got (%q, %v), want %q (error %t)", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFormatForURL(t *testing.T) {
	tests := []struct {
		name, url string
		want      Format
	}{
		{"a Workflows trigger on logic.azure.com is teams", "https://prod-27.westus.logic.azure.com:443/workflows/0123/triggers/manual/paths/invoke?api-version=2016-06-01&sig=KEY", FormatTeams},
		{"a Workflows trigger on the Power Platform environment host is teams", "https://default0123456789abcdef.ab.environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/0123/triggers/manual/paths/invoke?api-version=1&sig=KEY", FormatTeams},
		{"a Power Automate host is teams", "https://api.powerautomate.com/webhook/KEY", FormatTeams},
		{"a legacy connector host is teams", "https://contoso.webhook.office.com/webhookb2/KEY", FormatTeams},
		{"hooks.slack.com is slack", "https://hooks.slack.com/services/T000/B000/KEY", FormatSlack},
		{"an upper-case host is matched", "https://HOOKS.SLACK.COM/services/T000/B000/KEY", FormatSlack},
		{"a look-alike domain is json", "https://logic.azure.com.evil.example/workflows", FormatJSON},
		{"a look-alike prefix is json", "https://evillogic.azure.com/workflows", FormatJSON},
		{"a slack subdomain look-alike is json", "https://hooks.slack.com.evil.example/services", FormatJSON},
		{"any other host is json", "https://alerts.contoso.example/caguard", FormatJSON},
		{"a local receiver is json", "http://127.0.0.1:8080/hook", FormatJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatForURL(tt.url); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// hostileAlert is an alert whose tenant strings try everything: markdown, Slack mentions and links,
// quotes, newlines, an over-long name, and far more reasons, changes and fields than fit.
func hostileAlert() reconcile.Alert {
	a := sampleAlert()
	name := "**Bold** [click](https://evil.example) <!channel> @here @Channel \"quoted\" _x_ `code` <at>Admin</at>\n- injected item\n# heading"
	a.Closest.DisplayName = name + strings.Repeat(" very long name", 300)
	a.Closest.Reasons = nil
	for i := range 60 {
		a.Closest.Reasons = append(a.Closest.Reasons, capolicy.Reason{
			Code:    fmt.Sprintf("rule-%02d", i),
			Message: fmt.Sprintf("Reason %d mentions <!everyone> and *stars* ", i) + strings.Repeat("long ", 20),
		})
	}
	ch := a.Changes[0]
	ch.Actor = "1. mallory@contoso.example\r\n<@U123>"
	ch.TargetName = name
	ch.Fields = nil
	for i := range 20 {
		ch.Fields = append(ch.Fields, reconcile.FieldChange{Field: fmt.Sprintf("conditions.users.excludeUsers[%d]", i), From: "[]", To: strings.Repeat("<!here>", 4)})
	}
	a.Changes = nil
	for range 12 {
		a.Changes = append(a.Changes, ch)
	}
	a.Closest.ID = "not-a-guid\"><script>"
	a.Summary = strings.Repeat("S", 5000)
	return a
}

func pendingAlert() reconcile.Alert {
	a := sampleAlert()
	a.Verdict = capolicy.VerdictPendingEnforcement
	a.Summary = "The policy \"Require MFA for Azure management\" meets every rule but is report-only."
	a.Closest.State = "enabledForReportingButNotEnforced"
	a.Closest.Reasons = []capolicy.Reason{{Code: "STATE_NOT_ENABLED", Message: "The policy is in report-only mode."}}
	a.Changes = nil
	a.Actions = []reconcile.Action{{Kind: reconcile.ActionNone, Reason: "the tenant is pending enforcement; nothing to restore"}}
	a.NextStep = "Review the report-only policy and switch it to enabled."
	return a
}

func noPolicyAlert() reconcile.Alert {
	a := sampleAlert()
	a.Closest = nil
	a.Changes = nil
	a.Summary = "No policy targets the Windows Azure Service Management API."
	a.Actions = []reconcile.Action{{Kind: reconcile.ActionCreate, PolicyID: "cccccccc-0000-0000-0000-000000000003", State: "enabledForReportingButNotEnforced", Performed: true, Reason: "no managed policy existed; created it in report-only mode"}}
	a.Warnings = []string{"break-glass group 22222222-2222-2222-2222-222222222222 does not exist; the restored policy leaves it out"}
	return a
}

// failedRunAlert is the alert of a nightly sweep that could not finish: no verdict, and the words of
// its cause.
func failedRunAlert() reconcile.Alert {
	const words = "Graph answered 403 to list the Conditional Access policies: the app lacks Policy.Read.All (grant the application permission with admin consent)"
	return reconcile.Alert{
		ID:       "7c1e9a04d2b35f68",
		Time:     time.Date(2026, 3, 15, 2, 30, 4, 0, time.UTC),
		TenantID: "11111111-2222-3333-4444-555555555555",
		Trigger:  reconcile.TriggerSweep,
		Failure:  words,
		Summary:  "caguard could not finish the nightly-sweep run: " + words + ".",
		Actions:  []reconcile.Action{},
		NextStep: "Fix the cause above, then POST /api/Evaluate to check the tenant: until a run finishes, caguard neither checks the control nor restores its policy.",
	}
}

var formatCases = []struct {
	name  string
	alert func() reconcile.Alert
}{
	{"non-compliant", sampleAlert},
	{"pending-enforcement", pendingAlert},
	{"no-policy", noPolicyAlert},
	{"hostile", hostileAlert},
	{"run-failed", failedRunAlert},
}

// TestEncodeGolden pins every format's body for each alert; run with -update to accept a change.
// The golden files are indented for review; the wire body is compact.
func TestEncodeGolden(t *testing.T) {
	for _, f := range []Format{FormatTeams, FormatSlack, FormatJSON} {
		for _, c := range formatCases {
			t.Run(string(f)+"/"+c.name, func(t *testing.T) {
				b, err := Encode(f, c.alert())
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				var out bytes.Buffer
				if err := json.Indent(&out, b, "", "  "); err != nil {
					t.Fatalf("body is not JSON: %v", err)
				}
				out.WriteByte('\n')
				golden(t, "webhook/"+string(f)+"-"+c.name+".json", out.Bytes())
			})
		}
	}
}

func TestEncodeRefusesAuto(t *testing.T) {
	if _, err := Encode(FormatAuto, sampleAlert()); err == nil {
		t.Error("Encode(auto): got nil error, want an error (auto is resolved from the URL first)")
	}
}

// card decodes a Teams message and returns its one card.
func card(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var msg struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string         `json:"contentType"`
			ContentURL  any            `json:"contentUrl"`
			Content     map[string]any `json:"content"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(b, &msg); err != nil {
		t.Fatalf("teams message is not JSON: %v", err)
	}
	if msg.Type != "message" || len(msg.Attachments) != 1 {
		t.Fatalf("got type %q with %d attachment(s), want a message with 1", msg.Type, len(msg.Attachments))
	}
	att := msg.Attachments[0]
	if att.ContentType != "application/vnd.microsoft.card.adaptive" || att.ContentURL != nil {
		t.Fatalf("attachment: got contentType %q contentUrl %v, want application/vnd.microsoft.card.adaptive and null", att.ContentType, att.ContentURL)
	}
	return att.Content
}

func TestTeamsCardKeepsToSchema14(t *testing.T) {
	for _, c := range formatCases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Encode(FormatTeams, c.alert())
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range validateCard14(card(t, b)) {
				t.Error(p)
			}
		})
	}
}

func TestTeamsCardShowsTheAlert(t *testing.T) {
	b, err := Encode(FormatTeams, sampleAlert())
	if err != nil {
		t.Fatal(err)
	}
	c := card(t, b)
	body := c["body"].([]any)
	header := body[0].(map[string]any)
	if header["type"] != "Container" || header["style"] != "attention" {
		t.Errorf("header: got %v %v, want an attention Container", header["type"], header["style"])
	}
	facts := map[string]string{}
	for _, el := range body {
		m := el.(map[string]any)
		if m["type"] == "FactSet" {
			for _, f := range m["facts"].([]any) {
				fm := f.(map[string]any)
				facts[fm["title"].(string)] = fm["value"].(string)
			}
		}
	}
	want := map[string]string{
		"Verdict":    "non-compliant",
		"Tenant":     "11111111-2222-3333-4444-555555555555",
		"Policy":     "\"Require MFA for Azure management\" (aaaaaaaa-0000-0000-0000-000000000001)",
		"State":      "disabled",
		"Trigger":    "audit-event",
		"Changed by": "mallory@contoso.example from 203.0.113.7",
		"Changed at": "2026-03-14 09:26:40 UTC",
	}
	for k, v := range want {
		if facts[k] != v {
			t.Errorf("fact %q: got %q, want %q", k, facts[k], v)
		}
	}
	text := string(b)
	for _, s := range []string{"state: enabled → disabled", "Why it fails", "What caguard did", "Next step"} {
		if !strings.Contains(text, s) {
			t.Errorf("card does not contain %q", s)
		}
	}
	act := c["actions"].([]any)[0].(map[string]any)
	if got, want := act["url"], "https://entra.microsoft.com/#view/Microsoft_AAD_ConditionalAccess/PolicyBlade/policyId/aaaaaaaa-0000-0000-0000-000000000001"; act["type"] != "Action.OpenUrl" || got != want {
		t.Errorf("action: got %v %v, want Action.OpenUrl %s", act["type"], got, want)
	}
}

func TestTeamsCardDefusesHostileNames(t *testing.T) {
	b, err := Encode(FormatTeams, hostileAlert())
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > maxTeamsMessage {
		t.Errorf("message is %d bytes, want at most %d", len(b), maxTeamsMessage)
	}
	c := card(t, b)
	var texts []string
	walkStrings(c["body"], func(key, s string) {
		if key == "text" || key == "title" || key == "value" {
			texts = append(texts, s)
		}
	})
	for _, s := range texts {
		if strings.Contains(s, "\n") {
			t.Errorf("a text holds a newline (a tenant string could start a paragraph): %q", s)
		}
		for _, raw := range []string{"**Bold**", "[click]", "<!channel>", "<at>", "`code`", "_x_"} {
			if strings.Contains(s, raw) {
				t.Errorf("raw markup %q survives in %q", raw, s)
			}
		}
		// Every item of a list is a line we wrote: "- " then an escaped value.
		for _, item := range strings.Split(s, "\r") {
			if strings.HasPrefix(item, "- - ") || strings.HasPrefix(item, "# ") {
				t.Errorf("a tenant string starts markup: %q", item)
			}
		}
	}
	act := c["actions"].([]any)[0].(map[string]any)
	if act["url"] != entraPoliciesURL {
		t.Errorf("a policy id that is not a GUID must not go into the link: got %v, want %s", act["url"], entraPoliciesURL)
	}
	if !strings.Contains(string(b), "more") {
		t.Error("the capped lists do not say how many were left out")
	}
	if strings.Contains(string(b), strings.Repeat(" very long name", 30)) {
		t.Error("the very long policy name was not cut")
	}
}

func TestSlackMessageKeepsToBlockKitLimits(t *testing.T) {
	for _, c := range formatCases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Encode(FormatSlack, c.alert())
			if err != nil {
				t.Fatal(err)
			}
			var msg struct {
				Text   string           `json:"text"`
				Blocks []map[string]any `json:"blocks"`
			}
			if err := json.Unmarshal(b, &msg); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			if msg.Text == "" {
				t.Error("text fallback is empty")
			}
			if len(msg.Blocks) == 0 || len(msg.Blocks) > slackMaxBlocks {
				t.Errorf("got %d blocks, want 1 to %d", len(msg.Blocks), slackMaxBlocks)
			}
			for i, bl := range msg.Blocks {
				typ := bl["type"].(string)
				if txt, ok := bl["text"].(map[string]any); ok {
					n := utf8.RuneCountInString(txt["text"].(string))
					if typ == "header" && (n > slackMaxHeader || txt["type"] != "plain_text") {
						t.Errorf("block %d: header of %d characters, type %v; want plain_text of at most %d", i, n, txt["type"], slackMaxHeader)
					}
					if n > slackMaxSectionText {
						t.Errorf("block %d: %d characters of text, want at most %d", i, n, slackMaxSectionText)
					}
				}
				if fs, ok := bl["fields"].([]any); ok {
					if len(fs) > slackMaxFields {
						t.Errorf("block %d: %d fields, want at most %d", i, len(fs), slackMaxFields)
					}
					for _, f := range fs {
						if n := utf8.RuneCountInString(f.(map[string]any)["text"].(string)); n > slackMaxFieldText {
							t.Errorf("block %d: field of %d characters, want at most %d", i, n, slackMaxFieldText)
						}
					}
				}
			}
		})
	}
}

func TestSlackMessageDefusesHostileNames(t *testing.T) {
	b, err := Encode(FormatSlack, hostileAlert())
	if err != nil {
		t.Fatal(err)
	}
	var decoded any
	if err := json.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	walkStrings(decoded, func(key, s string) {
		if key == "url" {
			return
		}
		for _, bad := range []string{"<!channel>", "<!here>", "<!everyone>", "<@U123>", "<https://", "@here", "@Channel", "@everyone"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s holds %q: %.120q", key, bad, s)
			}
		}
	})
	for _, long := range []string{strings.Repeat(" very long name", 30), strings.Repeat("S", 1000)} {
		if strings.Contains(string(b), long) {
			t.Errorf("a very long value was not cut: %.40q…", long)
		}
	}
	if !strings.Contains(string(b), "&lt;!channel&gt;") {
		t.Error("the escaped form of <!channel> is missing: the name was dropped instead of shown")
	}
}

func TestJSONBodyDefusesHostileNames(t *testing.T) {
	a := hostileAlert()
	b, err := Encode(FormatJSON, a)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Text  string          `json:"text"`
		Alert reconcile.Alert `json:"alert"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if body.Alert.Closest.DisplayName != a.Closest.DisplayName {
		t.Errorf("alert name: got %q, want it unchanged %q", body.Alert.Closest.DisplayName, a.Closest.DisplayName)
	}
	for _, bad := range []string{"<!channel>", "@here", "\n- injected"} {
		if strings.Contains(body.Text, bad) {
			t.Errorf("text holds %q", bad)
		}
	}
}

func TestWebhookSinkPostsTheConfiguredFormat(t *testing.T) {
	for _, f := range []Format{FormatTeams, FormatSlack, FormatJSON} {
		t.Run(string(f), func(t *testing.T) {
			rec := newReceiver(t, step{status: 202})
			s, err := NewFormattedWebhookSink(rec.URL+hookPath, f, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(context.Background(), sampleAlert()); err != nil {
				t.Fatalf("Send: %v", err)
			}
			want, _ := Encode(f, sampleAlert())
			if got := rec.bodies[0]; !bytes.Equal(got, want) {
				t.Errorf("posted body differs from Encode(%s):\ngot  %s\nwant %s", f, got, want)
			}
		})
	}
}

func TestNewWebhookSinkResolvesAuto(t *testing.T) {
	tests := []struct {
		name, url string
		format    Format
		want      Format
	}{
		{"auto on a Workflows URL posts teams", "https://prod-27.westus.logic.azure.com/workflows/x?sig=KEY", FormatAuto, FormatTeams},
		{"an empty format is auto", "https://hooks.slack.com/services/T/B/KEY", "", FormatSlack},
		{"an explicit format wins over the host", "https://hooks.slack.com/services/T/B/KEY", FormatJSON, FormatJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewFormattedWebhookSink(tt.url, tt.format, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s.Format() != tt.want {
				t.Errorf("got %q, want %q", s.Format(), tt.want)
			}
		})
	}
	if _, err := NewFormattedWebhookSink("https://x.example/", "xml", nil); err == nil {
		t.Error("an unknown format: got nil error, want an error")
	}
}

// walkStrings calls fn for every string in a decoded JSON value, with the key it sits under.
func walkStrings(v any, fn func(key, s string)) {
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch x := v.(type) {
		case string:
			fn(key, x)
		case []any:
			for _, e := range x {
				walk(key, e)
			}
		case map[string]any:
			for k, e := range x {
				walk(k, e)
			}
		}
	}
	walk("", v)
}

// A cut falls between words: a GUID is shown whole or not at all, and the result fits the bound.
func TestCutAtWordKeepsGUIDsWhole(t *testing.T) {
	const id = "22222222-2222-2222-2222-222222222222"
	s := strings.Repeat("word ", 30) + id + " and more words after it"
	for n := 150; n < len(s); n++ {
		got := cutAtWord(s, n)
		if utf8.RuneCountInString(got) > n {
			t.Fatalf("n=%d: %d runes", n, utf8.RuneCountInString(got))
		}
		if strings.Contains(got, "2222") && !strings.Contains(got, id) {
			t.Fatalf("n=%d: the GUID was cut: %q", n, got)
		}
		if !strings.HasSuffix(got, "…") {
			t.Fatalf("n=%d: the cut is not marked: %q", n, got)
		}
	}
	if got := cutAtWord("short", 10); got != "short" {
		t.Errorf("no cut needed: got %q", got)
	}
	if got := cutAtWord(strings.Repeat("S", 50), 10); utf8.RuneCountInString(got) != 10 {
		t.Errorf("one long word is still bounded: got %q", got)
	}
}

// A review detail ends with a full stop; the notes after it never make ".;".
func TestExclusionTextHasNoDoublePunctuation(t *testing.T) {
	it := exclusion.Item{Kind: exclusion.KindUser, ID: "22222222-2222-2222-2222-222222222222", Allowlisted: true,
		Review: exclusion.Review{Status: exclusion.ReviewNotReviewable, Detail: "Access reviews cover groups, not single users."},
		Notes:  []string{"the account has not signed in since 2026-05-21"}}
	got := exclusionText(it)
	if strings.Contains(got, ".;") || !strings.Contains(got, "not single users; the account has not signed in") {
		t.Errorf("text %q", got)
	}
}

// The Teams card lists the exclusions compactly, names before ids, each with its review status.
func TestTeamsCardListsExclusions(t *testing.T) {
	a := sampleAlert()
	a.Exclusions = []exclusion.Item{
		{Kind: exclusion.KindGroup, ID: "22222222-2222-2222-2222-222222222222", DisplayName: "Break glass", Allowlisted: true,
			Review: exclusion.Review{Status: exclusion.ReviewOverdue, Detail: "long detail that the card leaves to the alert object"}},
		{Kind: exclusion.KindUser, ID: "33333333-3333-3333-3333-333333333333", Review: exclusion.Review{Status: exclusion.ReviewNotReviewable}},
	}
	b, err := Encode(FormatTeams, a)
	if err != nil {
		t.Fatal(err)
	}
	card := string(b)
	for _, want := range []string{"Exclusions and their access reviews",
		`group \"Break glass\" (22222222-2222-2222-2222-222222222222): review overdue`,
		"user 33333333-3333-3333-3333-333333333333, not approved: review not-reviewable"} {
		if !strings.Contains(card, want) {
			t.Errorf("card lacks %q", want)
		}
	}
	if strings.Contains(card, "long detail that the card leaves") {
		t.Error("the card repeats the review detail; it belongs in the alert object")
	}
}

// An alert names its control, in the card as in the JSON.
func TestCardsNameTheControl(t *testing.T) {
	a := sampleAlert()
	a.Control = "azure-management-mfa"
	for _, f := range []Format{FormatTeams, FormatSlack, FormatJSON} {
		b, err := Encode(f, a)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "azure-management-mfa") {
			t.Errorf("%s: the control is not named", f)
		}
	}
}
