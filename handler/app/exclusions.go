package app

import (
	"fmt"
	"strings"

	"github.com/caguard/caguard/handler/exclusion"
)

// exclusionLine states one exclusion for the invocation log: what it is, whether it is approved,
// its size, and its access-review finding.
func exclusionLine(x exclusion.Item) string {
	var b strings.Builder
	fmt.Fprintf(&b, "exclusion %s %s", x.Kind, x.ID)
	if x.DisplayName != "" {
		fmt.Fprintf(&b, " %q", x.DisplayName)
	}
	if x.Allowlisted {
		b.WriteString(", allowlisted")
	} else {
		b.WriteString(", NOT allowlisted")
	}
	if x.MemberCount != nil {
		fmt.Fprintf(&b, ", %d member(s)", *x.MemberCount)
	}
	fmt.Fprintf(&b, ", review %s", x.Review.Status)
	if x.Review.Detail != "" {
		b.WriteString(": " + strings.TrimSuffix(x.Review.Detail, "."))
	}
	if len(x.Notes) > 0 {
		b.WriteString("; " + strings.Join(x.Notes, "; "))
	}
	return b.String()
}
