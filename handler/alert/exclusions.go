package alert

import (
	"fmt"
	"strings"

	"go.uber.org/zap/zapcore"

	"github.com/caguard/caguard/handler/exclusion"
)

// maxTextExclusions bounds the exclusions a chat message lists; the alert object holds them all.
const maxTextExclusions = 10

// writeExclusions lists the exclusions and their access-review findings, one line each.
func writeExclusions(b *strings.Builder, items []exclusion.Item) {
	if len(items) == 0 {
		return
	}
	b.WriteString("\n\nExclusions and their access reviews:")
	for i, x := range items {
		if i == maxTextExclusions {
			fmt.Fprintf(b, "\n- and %d more", len(items)-maxTextExclusions)
			break
		}
		b.WriteString("\n- " + exclusionText(x))
	}
}

// exclusionLine is the compact form a card shows: `group "Name" (id): review overdue`, with
// "not approved" for an exclusion that is not a configured break-glass object. Names come first, as
// a reader looks for them; the id follows whole, for a search in Entra.
func exclusionLine(x exclusion.Item) string {
	s := string(x.Kind) + " "
	if x.DisplayName != "" {
		s += quoted(x.DisplayName) + " (" + x.ID + ")"
	} else {
		s += x.ID
	}
	if !x.Allowlisted {
		s += ", not approved"
	}
	return s + ": review " + string(x.Review.Status)
}

func exclusionText(x exclusion.Item) string {
	s := clean(string(x.Kind)) + " "
	if x.DisplayName != "" {
		s += quoteName(x.DisplayName) + " (" + clean(x.ID) + ")"
	} else {
		s += clean(x.ID)
	}
	if !x.Allowlisted {
		s += ", not an approved break-glass exclusion"
	}
	if x.MemberCount != nil {
		s += fmt.Sprintf(", %d member(s)", *x.MemberCount)
	}
	s += ": review " + clean(string(x.Review.Status))
	if x.Review.Detail != "" {
		s += " — " + clean(x.Review.Detail)
	}
	for _, n := range x.Notes {
		// A detail is a sentence: its full stop gives way to the semicolon, never ".;".
		s = strings.TrimSuffix(s, ".") + "; " + clean(n)
	}
	return s
}

// logExclusions puts each exclusion's identity and review status in the log sink's line.
type logExclusions []exclusion.Item

func (xs logExclusions) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, x := range xs {
		err := enc.AppendObject(zapcore.ObjectMarshalerFunc(func(o zapcore.ObjectEncoder) error {
			o.AddString("kind", string(x.Kind))
			o.AddString("id", x.ID)
			if x.DisplayName != "" {
				o.AddString("displayName", x.DisplayName)
			}
			o.AddBool("allowlisted", x.Allowlisted)
			o.AddString("review", string(x.Review.Status))
			return nil
		}))
		if err != nil {
			return err
		}
	}
	return nil
}
