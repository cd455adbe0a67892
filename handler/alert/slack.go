package alert

import (
	"fmt"
	"strings"

	"github.com/caguard/caguard/handler/reconcile"
)

// Slack's Block Kit limits (api.slack.com/reference/block-kit/blocks): at most 50 blocks in a
// message, 3000 characters of text in a section, 10 fields of 2000 characters each, 150 characters in
// a header and 75 in a button label.
const (
	slackMaxBlocks      = 50
	slackMaxSectionText = 3000
	slackMaxFields      = 10
	slackMaxFieldText   = 2000
	slackMaxHeader      = 150
)

type (
	slackBlock struct {
		Type     string        `json:"type"`
		Text     *slackText    `json:"text,omitempty"`
		Fields   []slackText   `json:"fields,omitempty"`
		Elements []slackButton `json:"elements,omitempty"`
	}
	slackText struct {
		Type string `json:"type"` // plain_text or mrkdwn
		Text string `json:"text"`
	}
	slackButton struct {
		Type  string     `json:"type"`
		Text  *slackText `json:"text,omitempty"`
		URL   string     `json:"url,omitempty"`
		Style string     `json:"style,omitempty"`
	}
	// slackContext is a context block: its elements are text objects, not buttons.
	slackContext struct {
		Type     string      `json:"type"`
		Elements []slackText `json:"elements"`
	}
)

// slackMessage renders the alert as Block Kit blocks, with the plain message as the text fallback.
func slackMessage(a reconcile.Alert) ([]byte, error) {
	v := newView(a, defaultLimits)
	var blocks []any
	blocks = append(blocks, slackBlock{Type: "header", Text: &slackText{Type: "plain_text", Text: runes(plainSafe(v.Title), slackMaxHeader)}})
	if v.Summary != "" {
		blocks = append(blocks, section(mrkdwn(v.Summary)))
	}
	fields := make([]slackText, 0, len(v.Facts))
	for i, f := range v.Facts {
		if i == slackMaxFields {
			break
		}
		fields = append(fields, slackText{Type: "mrkdwn", Text: runes("*"+f.Title+"*\n"+mrkdwn(f.Value), slackMaxFieldText)})
	}
	blocks = append(blocks, slackBlock{Type: "section", Fields: fields})

	list := func(title string, lines []string) {
		if len(lines) > 0 {
			blocks = append(blocks, section(mrkdwnList(title, lines)))
		}
	}
	list("Why it fails", v.Reasons)
	if len(v.Changes) > 0 {
		blocks = append(blocks, slackBlock{Type: "divider"})
		for i, c := range v.Changes {
			title := ""
			if i == 0 {
				title = "What changed"
			}
			text := mrkdwn(c.Line)
			if title != "" {
				text = "*" + title + "*\n" + text
			}
			for _, f := range c.Fields {
				text += "\n• " + mrkdwn(f)
			}
			blocks = append(blocks, section(text))
		}
	}
	list("What caguard did", v.Actions)
	list("Warnings", v.Warnings)
	if v.NextStep != "" {
		blocks = append(blocks, section("*Next step*\n"+mrkdwn(v.NextStep)))
	}
	blocks = append(blocks, slackBlock{Type: "actions", Elements: []slackButton{{
		Type: "button", Text: &slackText{Type: "plain_text", Text: v.LinkTitle}, URL: v.PolicyURL, Style: "danger",
	}}})
	blocks = append(blocks, slackContext{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: mrkdwn(v.Footer)}}})
	if len(blocks) > slackMaxBlocks {
		// The view's caps keep well under 50; this guards a future section that forgets to.
		blocks = append(blocks[:slackMaxBlocks-1], blocks[len(blocks)-1])
	}

	b, err := marshal(struct {
		Text   string `json:"text"`
		Blocks []any  `json:"blocks"`
	}{Text: messageText(a), Blocks: blocks})
	if err != nil {
		return nil, fmt.Errorf("encode slack message for alert %s: %w", a.ID, err)
	}
	return b, nil
}

func section(text string) slackBlock {
	return slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Text: runes(text, slackMaxSectionText)}}
}

// mrkdwnList renders a titled bullet list, cutting whole items (with a count) to stay within one
// section's text limit.
func mrkdwnList(title string, lines []string) string {
	text := "*" + title + "*"
	for i, l := range lines {
		item := "\n• " + mrkdwn(l)
		if len([]rune(text+item)) > slackMaxSectionText-20 {
			return text + fmt.Sprintf("\n• and %d more", len(lines)-i)
		}
		text += item
	}
	return text
}

// mrkdwn makes one plain-text value inert in Slack mrkdwn: one line; &, < and > escaped as Slack asks
// (so "<!channel>" or "<https://x|y>" is shown, not acted on); and a word joiner after the @ of
// @here, @channel and @everyone, which some clients turn into mentions even without the <! > form.
func mrkdwn(s string) string { return neutraliseMentions(slackEscaper.Replace(oneLine(s))) }

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// neutraliseMentions puts a word joiner (U+2060, invisible) after the @ of @here, @channel and
// @everyone, in any case.
// plainSafe is a plain_text value that holds names from the tenant (the headline names who changed
// what): Slack does not parse plain_text, but a copy of it pasted into mrkdwn would, so angle brackets
// become look-alikes and mentions are broken.
func plainSafe(s string) string {
	return neutraliseMentions(strings.NewReplacer("<", "‹", ">", "›").Replace(oneLine(s)))
}

func neutraliseMentions(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(s[i])
		if s[i] != '@' {
			continue
		}
		rest := strings.ToLower(s[i+1:])
		for _, w := range []string{"here", "channel", "everyone"} {
			if strings.HasPrefix(rest, w) {
				b.WriteString("\u2060")
				break
			}
		}
	}
	return b.String()
}

// runes cuts s to at most n runes, marking the cut.
func runes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
