package config

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
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
