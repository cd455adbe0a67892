package config

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caguard/caguard/handler/capolicy"
)

// infra/graph-permissions.json is the single source of truth for caguard's Microsoft Graph
// application permissions (handler/graph/permissions_test.go holds the code to it). These tests
// hold the grant script and the README's Permissions table to the same file, so the three can
// never again list different sets for one mode.

const (
	permissionsPath = "../../infra/graph-permissions.json"
	grantScriptPath = "../../scripts/grant-graph-permissions.sh"
	readmePath      = "../../README.md"
)

type permissionSet struct {
	Grant       string   `json:"grant"`
	Skip        string   `json:"skip"`
	Permissions []string `json:"permissions"`
}

func readPermissionSets(t *testing.T) map[string]permissionSet {
	t.Helper()
	raw, err := os.ReadFile(permissionsPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Sets map[string]permissionSet `json:"sets"`
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%s: %v", permissionsPath, err)
	}
	for _, want := range []string{"alert", "remediate", "reviews", "users", "signIns"} {
		if len(doc.Sets[want].Permissions) == 0 {
			t.Fatalf("%s: set %q is missing or empty", permissionsPath, want)
		}
	}
	return doc.Sets
}

// scriptSets reads the SET_NAME=("A" "B") arrays of the grant script.
func scriptSets(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(grantScriptPath)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	re := regexp.MustCompile(`(?m)^SET_([A-Z]+)=\(([^)]*)\)`)
	for _, m := range re.FindAllStringSubmatch(string(raw), -1) {
		var perms []string
		for _, f := range strings.Fields(m[2]) {
			perms = append(perms, strings.Trim(f, `"'`))
		}
		out[strings.ToLower(m[1])] = perms
	}
	return out
}

func TestGrantScriptGrantsThePermissionFileSets(t *testing.T) {
	sets := readPermissionSets(t)
	script := scriptSets(t)
	for name, set := range sets {
		got, ok := script[strings.ToLower(name)]
		if !ok {
			t.Errorf("%s has no SET_%s for set %q", grantScriptPath, strings.ToUpper(name), name)
			continue
		}
		if !slices.Equal(got, set.Permissions) {
			t.Errorf("%s SET_%s = %v, %s says %v", grantScriptPath, strings.ToUpper(name), got, permissionsPath, set.Permissions)
		}
	}
	for name := range script {
		found := false
		for s := range sets {
			found = found || strings.EqualFold(s, name)
		}
		if !found {
			t.Errorf("%s has SET_%s, which %s does not know", grantScriptPath, strings.ToUpper(name), permissionsPath)
		}
	}
	raw, _ := os.ReadFile(grantScriptPath)
	for name, set := range sets {
		for _, flag := range []string{set.Grant, set.Skip} {
			if strings.HasPrefix(flag, "--") && !strings.Contains(string(raw), flag+")") {
				t.Errorf("set %q is granted with %s, which %s does not parse", name, flag, grantScriptPath)
			}
		}
	}
}

// TestReadmePermissionTableMatchesThePermissionFile: every permission of a set has a row in the
// README's Permissions table, every row is a permission of some set, and the row's mode column
// names the flag that grants it.
func TestReadmePermissionTableMatchesThePermissionFile(t *testing.T) {
	sets := readPermissionSets(t)
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	section := string(raw)
	start := strings.Index(section, "\n## Permissions\n")
	if start < 0 {
		t.Fatal("README.md has no ## Permissions section")
	}
	section = section[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	rows := map[string]string{} // permission -> mode column
	re := regexp.MustCompile("(?m)^\\| `([A-Za-z.]+)` \\|.*\\| ([^|]+) \\|$")
	for _, m := range re.FindAllStringSubmatch(section, -1) {
		rows[m[1]] = m[2]
	}
	if len(rows) == 0 {
		t.Fatal("README.md: no rows found in the Permissions table")
	}
	all := map[string]bool{}
	for name, set := range sets {
		for _, p := range set.Permissions {
			all[p] = true
			mode, ok := rows[p]
			if !ok {
				t.Errorf("README.md Permissions table has no row for %s (set %q)", p, name)
				continue
			}
			if strings.HasPrefix(set.Grant, "--") && !strings.Contains(mode, set.Grant) {
				t.Errorf("README.md row %s says %q; set %q is granted with %s", p, mode, name, set.Grant)
			}
			if set.Grant == "always" && !strings.Contains(mode, "always") {
				t.Errorf("README.md row %s says %q; set %q is always granted", p, mode, name)
			}
		}
	}
	for p := range rows {
		if !all[p] {
			t.Errorf("README.md Permissions table lists %s, which no set of %s grants", p, permissionsPath)
		}
	}
}

// bicepStringList returns the quoted strings of the Bicep array variable `var <name> = [` ... `]`.
func bicepStringList(t *testing.T, bicep, name string) []string {
	t.Helper()
	start := strings.Index(bicep, "\nvar "+name+" = [\n")
	if start < 0 {
		t.Fatalf("%s has no `var %s = [` list", bicepPath, name)
	}
	body := bicep[start+len(name)+9:]
	body = body[:strings.Index(body, "\n]\n")]
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^\s*'([^']*)'\s*$`).FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// The template's rule for "CONTROLS enables a control that needs a licence", as written in
// infra/main.bicep: split on commas after removing spaces and lower-casing, then all or any
// licensed id. TestBicepGrantsLicencesWhenControlsNeedThem holds the template's text to it.
const bicepControlsNeedLicences = "var deployedControlIds = split(toLower(replace(controls, ' ', '')), ',')\n" +
	"var controlsNeedLicences = contains(deployedControlIds, 'all') || !empty(intersection(deployedControlIds, licensedControlIds))\n"

func bicepRuleNeedsLicences(controls string, licensed []string) bool {
	for id := range strings.SplitSeq(strings.ToLower(strings.ReplaceAll(controls, " ", "")), ",") {
		if id == "all" || slices.Contains(licensed, id) {
			return true
		}
	}
	return false
}

// TestBicepGrantsLicencesWhenControlsNeedThem: the graphPermissions output of infra/main.bicep
// includes the licences set, in licences and in grant, exactly when the controls it deploys
// (CONTROLS) enable one that needs a licence; its list of such controls is the catalogue's; and its
// rule agrees with how the handler reads CONTROLS.
func TestBicepGrantsLicencesWhenControlsNeedThem(t *testing.T) {
	bicep := readFile(t, bicepPath)
	var want []string
	for _, c := range capolicy.Catalogue() {
		if c.Licence != nil {
			want = append(want, c.ID)
		}
	}
	if len(want) == 0 {
		t.Fatal("the catalogue has no control that needs a licence: this test proves nothing")
	}
	got := bicepStringList(t, bicep, "licensedControlIds")
	if !slices.Equal(got, want) {
		t.Errorf("infra/main.bicep licensedControlIds = %v, the catalogue's controls with a licence are %v", got, want)
	}
	if !strings.Contains(bicep, "\n"+bicepControlsNeedLicences) {
		t.Errorf("infra/main.bicep does not decide controlsNeedLicences as this test reads it:\n%s", bicepControlsNeedLicences)
	}
	if !strings.Contains(bicep, "\nparam controls string = '") {
		t.Error("infra/main.bicep has no controls parameter")
	}
	if !strings.Contains(bicep, "name: 'CONTROLS'\n    value: controls\n") {
		t.Error("infra/main.bicep does not deploy CONTROLS from the controls parameter")
	}
	out := bicep[strings.Index(bicep, "\noutput graphPermissions object = {"):]
	out = out[:strings.Index(out, "\n}\n")]
	for _, line := range []string{
		"\n  licences: controlsNeedLicences ? graphPermissionSets.licences.permissions : []\n",
		"\n    controlsNeedLicences ? graphPermissionSets.licences.permissions : []\n  )",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("the graphPermissions output lacks %q", strings.TrimSpace(line))
		}
	}

	for _, tc := range []struct{ name, controls string }{
		{"the default judges no licensed control", "azure-management-mfa"},
		{"empty is the default", ""},
		{"all includes the risk controls", "all"},
		{"ALL in capitals, as the handler accepts", " ALL "},
		{"one risk control among others", "admin-mfa, sign-in-risk-policy"},
		{"the user risk control in capitals", "User-Risk-Policy"},
		{"controls that need no more than P1", "admin-mfa,block-legacy-authentication,all-users-mfa"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, err := capolicy.ParseControls(tc.controls)
			if err != nil {
				t.Fatal(err)
			}
			handler := false
			for _, id := range ids {
				c, _ := capolicy.ControlByID(id)
				handler = handler || c.Licence != nil
			}
			if bicep := bicepRuleNeedsLicences(tc.controls, got); bicep != handler {
				t.Errorf("CONTROLS=%q: the template grants licences %v, the handler reads licensed controls %v", tc.controls, bicep, handler)
			}
		})
	}
}
