package capolicy

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the README's rules section from Rules()")

// rulesMarkdown renders the README section from Rules(), so the document cannot drift from the code.
func rulesMarkdown() string {
	var b strings.Builder
	b.WriteString(`## The rules

caguard judges the control "MFA is required for the Windows Azure Service Management API" one policy at a
time. The tenant is **compliant** when at least one enabled Conditional Access policy meets every rule
below, **pending-enforcement** when none does but a report-only policy meets every rule except R1, and
**non-compliant** otherwise. Grant requirements of Conditional Access policies add up, so no other policy
can weaken one that passes; a policy that fails is still listed with all of its reasons, and the report
names the closest one.

Object and app ids compare without regard to case, and enum values (` + "`MFA`/`mfa`, `All`/`all`" + `) likewise.
The target apps are configurable for sovereign clouds (default ` + "`" + AzureManagementAppID + "`" + `); the
look-alike id ` + "`797f3427-79cd-4827-8132-47d473d450e4`" + ` is not the target. Custom controls count as MFA only
when configured to. Microsoft-managed policies are judged like any other and flagged as such; a policy is
Microsoft-managed when its display name starts with ` + "`" + MicrosoftManagedPrefix + "`" + ` (Microsoft's documented naming,
which administrators cannot change; Graph has no property for it, and ` + "`templateId`" + ` only says that a policy,
possibly an administrator's, was created from a template).

A value caguard does not recognise never makes a policy look broader than it is, and it fails only
the policy that holds it: every other policy is still judged and the run goes on. A missing or unknown
state is never ` + "`enabled`" + ` and fails ` + "`" + CodeStateUnknown + "`" + `, naming the state Graph sent. An enum
value that a rule reads and caguard does not know (a client app type, platform, risk level, guest type,
transfer method, grant operator, built-in control, an authentication strength's requirement or method,
Graph's ` + "`unknownFutureValue`" + `) fails ` + "`" + CodeUnrecognisedValue + "`" + `, and is marked "(not recognised)" in any other
reason it causes; an unknown token in ` + "`excludeApplications`" + ` counts as excluding Azure management; and a
property of the conditions or grant controls that caguard does not model, when it holds a value, fails
` + "`" + CodeUnrecognisedProperty + "`" + ` (an empty one, ` + "`null`, `[]` or `{}`" + `, passes). These reasons carry what Graph
sent in ` + "`unrecognised`" + ` (` + "`[{\"field\": …, \"value\": …}]`" + `), in the Evaluate answer and in the alert.

Each failing rule adds a reason: a code and one sentence for the admin. Words in braces are filled in from
the policy.

| Rule | Reason code | A compliant policy has | What the admin reads |
|---|---|---|---|
`)
	for _, r := range Rules() {
		b.WriteString("| " + r.Rule + " | `" + r.Code + "` | " + r.Requirement + " | " + r.Message + " |\n")
	}
	b.WriteString(`
R19: session controls never affect the verdict, but a policy with session controls and no grant fails R17
(` + "`" + CodeNoGrantControls + "`" + `).

R20 counts only with ` + "`EXCLUSION_REVIEW=require`" + `, and only for a policy that meets every other rule: its
exclusions are then the ones that decide the control. How caguard finds and judges access reviews is in
[Exclusions and access reviews](#exclusions-and-access-reviews).
`)
	return b.String()
}

// TestRulesDocumentIsCurrent checks the README's rules section against Rules(); -update rewrites it.
func TestRulesDocumentIsCurrent(t *testing.T) {
	const path = "../../README.md"
	want := rulesMarkdown()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start := strings.Index(readme, "## The rules\n")
	if start < 0 {
		t.Fatal("README.md has no section \"## The rules\"")
	}
	end := len(readme)
	if next := strings.Index(readme[start+1:], "\n## "); next >= 0 {
		end = start + 1 + next
	}
	if *update {
		readme = readme[:start] + want + readme[end:]
		if err := os.WriteFile(path, []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		end = start + len(want)
	}
	got := readme[start:end]
	if got != want {
		t.Errorf("README.md's rules section is out of date with Rules(); run go test ./handler/capolicy -run TestRulesDocumentIsCurrent -update")
	}
	for _, r := range Rules() {
		if !strings.Contains(got, "`"+r.Code+"`") {
			t.Errorf("README.md does not mention %s", r.Code)
		}
	}
}

func TestRulesCodesAreDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules() {
		if seen[r.Code] {
			t.Errorf("code %s listed twice", r.Code)
		}
		seen[r.Code] = true
		if !strings.HasSuffix(r.Message, ".") || strings.Count(r.Message, ". ") > 0 {
			t.Errorf("%s: message %q is not one sentence", r.Code, r.Message)
		}
	}
}

// templatePattern turns a message template into a pattern its rendered sentences match.
func templatePattern(tmpl string) *regexp.Regexp {
	parts := regexp.MustCompile(`\{[a-z]+\}`).Split(tmpl, -1)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`^` + strings.Join(parts, `.+`) + `$`)
}

// TestEveryReasonCodeIsExercised runs the evaluation table and checks that each code in Rules() is
// produced by some case, and that each produced sentence is the code's template filled in.
func TestEveryReasonCodeIsExercised(t *testing.T) {
	patterns := map[string]*regexp.Regexp{}
	for _, r := range Rules() {
		patterns[r.Code] = templatePattern(r.Message)
	}
	produced := map[string]string{}
	for _, tc := range append(evalCases(), reviewEvalCases()...) {
		_, _, rep := tc.run(t)
		for _, p := range rep.Policies {
			for _, reason := range p.Reasons {
				re, ok := patterns[reason.Code]
				if !ok {
					t.Errorf("%s: code %s is not in Rules()", tc.name, reason.Code)
					continue
				}
				if !re.MatchString(reason.Message) {
					t.Errorf("%s: message %q does not match the template of %s", tc.name, reason.Message, reason.Code)
				}
				if _, ok := produced[reason.Code]; !ok {
					produced[reason.Code] = tc.name
				}
			}
		}
	}
	for _, r := range Rules() {
		if _, ok := produced[r.Code]; !ok {
			t.Errorf("no case produces %s", r.Code)
		}
	}
}

func TestRenderKeepsAlertsOnOneLine(t *testing.T) {
	got := render("Has {x} and {y}.", "a\nb", "c\td")
	if want := "Has a b and c d."; got != want {
		t.Errorf("render: got %q, want %q", got, want)
	}
}
