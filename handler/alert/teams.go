package alert

import (
	"fmt"
	"strings"

	"github.com/caguard/caguard/handler/reconcile"
)

// maxTeamsMessage is the budget for a Teams message: Teams refuses a message over about 28 KB, and the
// Workflows post action wraps the card in more JSON, so the card is kept well under.
const maxTeamsMessage = 24 << 10

// adaptiveCardVersion is the schema version of the card. Teams renders up to 1.5 on desktop and web
// but not everywhere on mobile; 1.4 has everything this card uses (Container styles and bleed from
// 1.2, FactSet and Action.OpenUrl from 1.0).
const adaptiveCardVersion = "1.4"

// teamsMessage renders the alert as a Teams Workflows message: {"type":"message","attachments":[…]}
// with one Adaptive Card. If the card is too large, the lists and values are cut shorter until it fits.
func teamsMessage(a reconcile.Alert) ([]byte, error) {
	lim := defaultLimits
	for {
		b, err := marshal(teamsEnvelope(newView(a, lim)))
		if err != nil {
			return nil, fmt.Errorf("encode teams card for alert %s: %w", a.ID, err)
		}
		if len(b) <= maxTeamsMessage || lim.value <= 40 {
			return b, nil
		}
		lim = limits{
			reasons: max(lim.reasons/2, 3), changes: max(lim.changes/2, 1), fields: max(lim.fields/2, 2),
			actions: max(lim.actions/2, 2), warnings: max(lim.warnings/2, 1), exclusions: max(lim.exclusions/2, 2), value: lim.value / 2,
		}
	}
}

// Adaptive Card elements, as much of schema 1.4 as the card uses. Field order is the JSON order, kept
// readable: type first.
type (
	acMessage struct {
		Type        string         `json:"type"`
		Attachments []acAttachment `json:"attachments"`
	}
	acAttachment struct {
		ContentType string  `json:"contentType"`
		ContentURL  *string `json:"contentUrl"` // null, as the Workflows template expects
		Content     acCard  `json:"content"`
	}
	acCard struct {
		Schema  string     `json:"$schema"`
		Type    string     `json:"type"`
		Version string     `json:"version"`
		MSTeams acMSTeams  `json:"msteams"`
		Body    []any      `json:"body"`
		Actions []acAction `json:"actions,omitempty"`
	}
	acMSTeams struct {
		Width string `json:"width"`
	}
	acContainer struct {
		Type  string `json:"type"`
		Style string `json:"style,omitempty"`
		Bleed bool   `json:"bleed,omitempty"`
		Items []any  `json:"items"`
	}
	acText struct {
		Type      string `json:"type"`
		Text      string `json:"text"`
		Wrap      bool   `json:"wrap"`
		Weight    string `json:"weight,omitempty"`
		Size      string `json:"size,omitempty"`
		Color     string `json:"color,omitempty"`
		IsSubtle  bool   `json:"isSubtle,omitempty"`
		Spacing   string `json:"spacing,omitempty"`
		Separator bool   `json:"separator,omitempty"`
	}
	acFactSet struct {
		Type  string   `json:"type"`
		Facts []acFact `json:"facts"`
	}
	acFact struct {
		Title string `json:"title"`
		Value string `json:"value"`
	}
	acAction struct {
		Type  string `json:"type"`
		Title string `json:"title"`
		URL   string `json:"url"`
	}
)

func teamsEnvelope(v view) acMessage {
	style, color := "attention", "Attention"
	switch v.Tone {
	case toneWarning:
		style, color = "warning", "Warning"
	case toneGood:
		style, color = "good", "Good"
	}
	body := []any{
		acContainer{Type: "Container", Style: style, Bleed: true, Items: []any{
			acText{Type: "TextBlock", Text: md(v.Title), Wrap: true, Weight: "Bolder", Size: "Large", Color: color},
		}},
	}
	if v.Summary != "" {
		body = append(body, acText{Type: "TextBlock", Text: md(v.Summary), Wrap: true})
	}
	facts := make([]acFact, 0, len(v.Facts))
	for _, f := range v.Facts {
		facts = append(facts, acFact{Title: md(f.Title), Value: md(f.Value)})
	}
	body = append(body, acFactSet{Type: "FactSet", Facts: facts})

	section := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		body = append(body,
			acText{Type: "TextBlock", Text: md(title), Wrap: true, Weight: "Bolder", Spacing: "Medium", Separator: true},
			acText{Type: "TextBlock", Text: mdList(lines), Wrap: true, Spacing: "Small"})
	}
	section("Why it fails", v.Reasons)
	if len(v.Changes) > 0 {
		body = append(body, acText{Type: "TextBlock", Text: "What changed", Wrap: true, Weight: "Bolder", Spacing: "Medium", Separator: true})
		for _, c := range v.Changes {
			body = append(body, acText{Type: "TextBlock", Text: md(c.Line), Wrap: true, Spacing: "Small"})
			if len(c.Fields) > 0 {
				body = append(body, acText{Type: "TextBlock", Text: mdList(c.Fields), Wrap: true, Spacing: "None"})
			}
		}
	}
	section("Exclusions and their access reviews", v.Exclusions)
	section("What caguard did", v.Actions)
	section("Warnings", v.Warnings)
	if v.NextStep != "" {
		body = append(body,
			acText{Type: "TextBlock", Text: "Next step", Wrap: true, Weight: "Bolder", Spacing: "Medium", Separator: true},
			acText{Type: "TextBlock", Text: md(v.NextStep), Wrap: true, Spacing: "Small"})
	}
	body = append(body, acText{Type: "TextBlock", Text: md(v.Footer), Wrap: true, Size: "Small", IsSubtle: true, Spacing: "Medium"})

	return acMessage{
		Type: "message",
		Attachments: []acAttachment{{
			ContentType: "application/vnd.microsoft.card.adaptive",
			Content: acCard{
				Schema:  "http://adaptivecards.io/schemas/adaptive-card.json",
				Type:    "AdaptiveCard",
				Version: adaptiveCardVersion,
				MSTeams: acMSTeams{Width: "Full"},
				Body:    body,
				Actions: []acAction{{Type: "Action.OpenUrl", Title: v.LinkTitle, URL: v.PolicyURL}},
			},
		}},
	}
}

// mdList renders lines as a markdown list. Teams separates list items with \r (a \n\n would indent the
// next item); each item is escaped, so an item cannot end the list or start another.
func mdList(lines []string) string {
	items := make([]string, len(lines))
	for i, l := range lines {
		items[i] = "- " + md(l)
	}
	return strings.Join(items, "\r")
}

// mdSpecial are the characters that start markup in the markdown subset Adaptive Cards render in
// TextBlock and Fact: bold and italic (* _), links and images ([ ]; a "(" only matters after "]"),
// code (`), strike-through (~), the <at> mention tag and HTML-ish tags (< >), headings (#) and the
// backslash itself. Each is escaped with a backslash, as CommonMark allows for ASCII punctuation;
// other punctuation is left alone so ids and sentences read plainly.
const mdSpecial = "\\`*_[]<>~#"

// md makes one plain-text value inert in an Adaptive Card: one line, markup characters escaped, and a
// leading list or heading marker ("-", "+", "1.") escaped so a name cannot turn into a list.
func md(s string) string {
	s = oneLine(s)
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i, r := range s {
		switch {
		case strings.ContainsRune(mdSpecial, r):
			b.WriteByte('\\')
		case i == 0 && (r == '-' || r == '+'):
			b.WriteByte('\\')
		case r == '.' && i > 0 && isDigits(s[:i]):
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
