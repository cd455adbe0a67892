package capolicy

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// What the docs show a reader must be what the code emits: a reason code in README.md or docs/ that
// no code defines (an old name, a made-up example, the wrong case) sends an operator searching for a
// finding caguard never reports.

// docTokenRE finds upper-case snake tokens: reason codes, and also setting names.
var docTokenRE = regexp.MustCompile(`\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b`)

// lowerCodeRE finds a lower-case, hyphenated token in parentheses, the way an old alert format showed
// codes: "(state-not-enabled)".
var lowerCodeRE = regexp.MustCompile(`\(([a-z0-9]+(?:-[a-z0-9]+)+)\)`)

// sourceLiterals are the upper-case snake string literals of the handler's and scripts' Go sources:
// every reason code, every setting name, every other constant the docs may quote.
func sourceLiterals(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`)
	out := map[string]bool{}
	for _, root := range []string{"..", "../../scripts"} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
				out[m[1]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The host's own bindings read settings too: %AUDIT_EVENTHUB_NAME% in a function.json.
	bindings, _ := filepath.Glob("../../functions/*/function.json")
	for _, f := range append(bindings, "../../host.json") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range docTokenRE.FindAllString(string(b), -1) {
			out[tok] = true
		}
	}
	return out
}

// reasonCodes are the codes this package defines.
func reasonCodes(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`\bCode[A-Za-z0-9]*\s*(?:Code\s*)?=\s*"([A-Z_]+)"`)
	out := map[string]bool{}
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = true
		}
	}
	if len(out) < 20 {
		t.Fatalf("found %d reason codes in capolicy; the pattern no longer matches their declarations", len(out))
	}
	return out
}

// docTokenAllowed names tokens the docs may use that are not in the Go sources, with the reason.
var docTokenAllowed = map[string]string{
	"AZURE_CLIENT_ID":   "read by azidentity, not by caguard's own code",
	"IDENTITY_ENDPOINT": "set by App Service for the managed identity",
	"IDENTITY_HEADER":   "set by App Service for the managed identity",
}

func TestDocsShowOnlyCodesTheCodeEmits(t *testing.T) {
	known := sourceLiterals(t)
	codes := reasonCodes(t)
	docs := []string{"../../README.md"}
	more, _ := filepath.Glob("../../docs/*.md")
	docs = append(docs, more...)
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		var unknown []string
		seen := map[string]bool{}
		for _, tok := range docTokenRE.FindAllString(string(b), -1) {
			if seen[tok] || known[tok] || codes[tok] {
				continue
			}
			if _, ok := docTokenAllowed[tok]; ok {
				continue
			}
			seen[tok] = true
			unknown = append(unknown, tok)
		}
		sort.Strings(unknown)
		if len(unknown) > 0 {
			t.Errorf("%s shows %v, which no code of caguard defines (a renamed reason code?); fix the doc, or list the name in docTokenAllowed with why", doc, unknown)
		}
		for _, m := range lowerCodeRE.FindAllStringSubmatch(string(b), -1) {
			if c := strings.ToUpper(strings.ReplaceAll(m[1], "-", "_")); codes[c] {
				t.Errorf("%s shows the code %s as %q: caguard emits it as %s", doc, c, m[1], c)
			}
		}
	}
}
