// Command cardpreview renders a Teams alert, as caguard sends it (a message whose attachment is an
// Adaptive Card), as a plain HTML page close to how Teams shows it, so that a headless browser can take
// the picture in docs/. It reads the card from the file caguard's demo saved; nothing in it is made up.
//
//	go run ./scripts/cardpreview -in dist/demo/alert-01-audit-event-teams.json -out dist/demo/card.html
//
// It renders the elements caguard's cards use (Container, TextBlock with its markdown subset of
// escapes and "- " lists, FactSet, Action.OpenUrl) and fails on any other, so the picture cannot
// silently drop part of a card.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"os"
	"strings"
)

type element struct {
	Type      string    `json:"type"`
	Text      string    `json:"text"`
	Weight    string    `json:"weight"`
	Size      string    `json:"size"`
	Color     string    `json:"color"`
	IsSubtle  bool      `json:"isSubtle"`
	Separator bool      `json:"separator"`
	Style     string    `json:"style"`
	Items     []element `json:"items"`
	Facts     []struct {
		Title string `json:"title"`
		Value string `json:"value"`
	} `json:"facts"`
}

type message struct {
	Attachments []struct {
		Content struct {
			Body    []element `json:"body"`
			Actions []struct {
				Type  string `json:"type"`
				Title string `json:"title"`
			} `json:"actions"`
		} `json:"content"`
	} `json:"attachments"`
}

func main() {
	in := flag.String("in", "", "the Teams message caguard saved (JSON)")
	out := flag.String("out", "", "the HTML page to write")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "cardpreview:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	if in == "" || out == "" {
		return errors.New("-in and -out are required")
	}
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if len(m.Attachments) != 1 {
		return fmt.Errorf("%s: %d attachments, want 1", in, len(m.Attachments))
	}
	var page strings.Builder
	page.WriteString(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><style>
body { margin: 0; background: #f5f5f5; font: 14px/1.45 "Segoe UI", Roboto, Arial, sans-serif; color: #242424; }
.card { max-width: 760px; margin: 16px; background: #fff; border-radius: 6px; box-shadow: 0 1px 4px rgba(0,0,0,.15); padding: 0 0 12px; }
.c { padding: 12px 16px; } .attention { background: #fde7e9; } .warning { background: #fff4ce; } .good { background: #dff6dd; }
.t { margin: 6px 16px; white-space: pre-line; } .c .t { margin: 0; }
.Bolder { font-weight: 600; } .Large { font-size: 18px; } .Small { font-size: 12px; } .subtle { color: #616161; }
.Attention { color: #a4262c; } .Warning { color: #8a5a00; } .Good { color: #107c10; }
.sep { border-top: 1px solid #e0e0e0; padding-top: 8px; }
table { margin: 6px 16px; border-collapse: collapse; } td { padding: 1px 12px 1px 0; vertical-align: top; } td:first-child { font-weight: 600; white-space: nowrap; }
.btn { display: inline-block; margin: 8px 16px 0; padding: 5px 12px; border: 1px solid #d1d1d1; border-radius: 4px; font-weight: 600; }
</style></head><body><div class="card">`)
	for _, e := range m.Attachments[0].Content.Body {
		if err := render(&page, e); err != nil {
			return err
		}
	}
	for _, a := range m.Attachments[0].Content.Actions {
		if a.Type != "Action.OpenUrl" {
			return fmt.Errorf("action %q is not rendered", a.Type)
		}
		fmt.Fprintf(&page, `<span class="btn">%s</span>`, html.EscapeString(a.Title))
	}
	page.WriteString("</div></body></html>\n")
	return os.WriteFile(out, []byte(page.String()), 0o644)
}

func render(b *strings.Builder, e element) error {
	switch e.Type {
	case "Container":
		fmt.Fprintf(b, `<div class="c %s">`, html.EscapeString(e.Style))
		for _, it := range e.Items {
			if err := render(b, it); err != nil {
				return err
			}
		}
		b.WriteString("</div>")
	case "TextBlock":
		cls := []string{"t", e.Weight, e.Size, e.Color}
		if e.IsSubtle {
			cls = append(cls, "subtle")
		}
		if e.Separator {
			cls = append(cls, "sep")
		}
		fmt.Fprintf(b, `<div class="%s">%s</div>`, html.EscapeString(strings.Join(cls, " ")), html.EscapeString(text(e.Text)))
	case "FactSet":
		b.WriteString("<table>")
		for _, f := range e.Facts {
			fmt.Fprintf(b, "<tr><td>%s</td><td>%s</td></tr>", html.EscapeString(text(f.Title)), html.EscapeString(text(f.Value)))
		}
		b.WriteString("</table>")
	default:
		return fmt.Errorf("card element %q is not rendered", e.Type)
	}
	return nil
}

// text undoes the card's markdown escapes (a backslash before punctuation) and its list separator
// (\r between items), as Teams does when it shows the text.
func text(s string) string {
	s = strings.ReplaceAll(s, "\r", "\n")
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\`*_[]<>~#-+.", s[i+1]) >= 0 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
