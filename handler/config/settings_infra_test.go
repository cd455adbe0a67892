package config

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The app settings the handler reads are a contract with infra/main.bicep (what Azure sets) and
// local.settings.sample.json (what a local run starts from). These tests hold both to the names this
// package reads, so a new setting cannot ship without its deployment and its sample.

const (
	bicepPath       = "../../infra/main.bicep"
	localSamplePath = "../../local.settings.sample.json"
)

// notInInfra lists settings the handler reads that Azure must not or need not set, with the reason.
var notInInfra = map[string]string{
	"FUNCTIONS_CUSTOMHANDLER_PORT": "set by the Functions host at start",
	"AZURE_CLIENT_SECRET":          "local runs only; in Azure the managed identity signs in",
	"AZURE_FEDERATED_TOKEN_FILE":   "workload identity outside Azure Functions only",
	"AZURE_AUTHORITY_HOST":         "national clouds only; the public cloud is the default",
	"TENANTS_FILE":                 "local runs only; in Azure the registry is the blob caguard/tenants.json",
}

// fleetOnly lists settings infra/main.bicep deploys only when a parameter is given (its
// fleetAppSettings list), so that a single-tenant deployment sets exactly what it set before.
var fleetOnly = map[string]string{
	"TENANTS_APP_CLIENT_ID": "tenantsAppClientId",
}

// notInLocalSample lists settings a local run never sets by hand.
var notInLocalSample = map[string]string{
	"FUNCTIONS_CUSTOMHANDLER_PORT": "set by the Functions host (or scripts/localrun) at start",
}

// hostStorageForms are interchangeable ways to name the host storage account: a connection string
// locally, a service URI or an account name with an identity in Azure. Any one of them satisfies each.
var hostStorageForms = []string{
	"AzureWebJobsStorage",
	"AzureWebJobsStorage__accountName",
	"AzureWebJobsStorage__blobServiceUri",
}

// flexDeprecated are app settings that Flex Consumption deprecates; infra/main.bicep may set them
// only in its ep1OnlyAppSettings list.
var flexDeprecated = []string{
	"FUNCTIONS_EXTENSION_VERSION",
	"FUNCTIONS_WORKER_RUNTIME",
	"WEBSITE_RUN_FROM_PACKAGE",
	"WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID",
	"WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
	"WEBSITE_CONTENTSHARE",
	"WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
	"SCM_DO_BUILD_DURING_DEPLOYMENT",
	"ENABLE_ORYX_BUILD",
}

var settingName = regexp.MustCompile(`^(?:[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|AzureWebJobsStorage(?:__[A-Za-z]+)?)$`)

// settingsRead returns the setting names that this package's code names: every string literal shaped
// like an app setting (the names given to its loader, and any constants that hold them).
func settingsRead(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if v, err := strconv.Unquote(lit.Value); err == nil && settingName.MatchString(v) {
				seen[v] = true
			}
			return true
		})
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// bicepList returns the names in the Bicep array variable `var <name> = [` ... `]`.
func bicepList(t *testing.T, bicep, name string) []string {
	t.Helper()
	start := strings.Index(bicep, "\nvar "+name+" = [\n")
	if start < 0 {
		t.Fatalf("%s has no `var %s = [` list", bicepPath, name)
	}
	body := bicep[start+1:]
	end := strings.Index(body, "\n]\n")
	if end < 0 {
		t.Fatalf("%s: list %s does not end with a `]` line", bicepPath, name)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*name: '([^']+)'\s*$`).FindAllStringSubmatch(body[:end], -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("%s: list %s names no app setting", bicepPath, name)
	}
	return names
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// present reports whether name, or for host storage any of its interchangeable forms, is in have.
func present(name string, have map[string]bool) bool {
	if have[name] {
		return true
	}
	forms := set(hostStorageForms...)
	if !forms[name] {
		return false
	}
	for f := range forms {
		if have[f] {
			return true
		}
	}
	return false
}

func TestEverySettingReadIsDeployedAndInTheLocalSample(t *testing.T) {
	read := settingsRead(t)
	// Guard against a scan that finds nothing and so proves nothing.
	for _, must := range []string{"AZURE_TENANT_ID", "REMEDIATION_MODE", "FUNCTIONS_CUSTOMHANDLER_PORT"} {
		if !set(read...)[must] {
			t.Fatalf("scan of handler/config found %v, which lacks %s: the scan is broken", read, must)
		}
	}

	bicep := readFile(t, bicepPath)
	common := bicepList(t, bicep, "commonAppSettings")
	deployed := set(append(common, bicepList(t, bicep, "fleetAppSettings")...)...)

	var sample struct {
		Values map[string]string `json:"Values"`
	}
	if err := json.Unmarshal([]byte(readFile(t, localSamplePath)), &sample); err != nil {
		t.Fatalf("%s: %v", localSamplePath, err)
	}
	local := map[string]bool{}
	for k := range sample.Values {
		local[k] = true
	}

	for _, name := range read {
		t.Run(name, func(t *testing.T) {
			if why, ok := notInInfra[name]; ok {
				if deployed[name] {
					t.Errorf("infra/main.bicep sets %s, want it unset (%s)", name, why)
				}
			} else if !present(name, deployed) {
				t.Errorf("infra/main.bicep commonAppSettings lacks %s, which handler/config reads", name)
			}
			if _, ok := notInLocalSample[name]; !ok && !present(name, local) {
				t.Errorf("local.settings.sample.json lacks %s, which handler/config reads", name)
			}
		})
	}
}

func TestFlexDeprecatedSettingsAreSetOnlyForElasticPremium(t *testing.T) {
	bicep := readFile(t, bicepPath)
	common := set(bicepList(t, bicep, "commonAppSettings")...)
	ep1Only := set(bicepList(t, bicep, "ep1OnlyAppSettings")...)
	for _, name := range flexDeprecated {
		if common[name] {
			t.Errorf("commonAppSettings sets %s, which Flex Consumption deprecates; move it to ep1OnlyAppSettings", name)
		}
		// Any other `name: '<setting>'` outside the ep1-only list would reach a Flex app too.
		quoted := "name: '" + name + "'"
		want := 0
		if ep1Only[name] {
			want = 1
		}
		if got := strings.Count(bicep, quoted); got != want {
			t.Errorf("%s appears %d times as an app setting, want %d (in ep1OnlyAppSettings only)", name, got, want)
		}
	}
	for name := range ep1Only {
		if common[name] {
			t.Errorf("%s is in both commonAppSettings and ep1OnlyAppSettings", name)
		}
	}
}

// TestFleetSettingsAreDeployedOnlyWithTheirParameter: each fleet-only setting is in fleetAppSettings
// (not in commonAppSettings), takes its value from its parameter, whose default is empty, and the
// list reaches the app only when that parameter is given.
func TestFleetSettingsAreDeployedOnlyWithTheirParameter(t *testing.T) {
	bicep := readFile(t, bicepPath)
	common := set(bicepList(t, bicep, "commonAppSettings")...)
	fleet := bicepList(t, bicep, "fleetAppSettings")
	if len(fleet) != len(fleetOnly) {
		t.Errorf("fleetAppSettings = %v, want exactly the settings of fleetOnly %v", fleet, fleetOnly)
	}
	for _, name := range fleet {
		param, ok := fleetOnly[name]
		if !ok {
			t.Errorf("fleetAppSettings sets %s, which fleetOnly does not know", name)
			continue
		}
		if common[name] {
			t.Errorf("%s is in commonAppSettings too: a single-tenant deployment would set it", name)
		}
		if !regexp.MustCompile(`(?m)^\s*name: '` + name + `'\n\s*value: ` + param + `\n`).MatchString(bicep) {
			t.Errorf("%s does not take its value from the parameter %s", name, param)
		}
		if !strings.Contains(bicep, "\nparam "+param+" string = ''\n") {
			t.Errorf("parameter %s is not a string that defaults to empty", param)
		}
		cond := "empty(" + param + ") ? [] : fleetAppSettings"
		if !strings.Contains(bicep, "appSettings: concat(commonAppSettings, isFlex ? [] : ep1OnlyAppSettings, "+cond+")") {
			t.Errorf("the app's settings do not add fleetAppSettings under %q", cond)
		}
	}
}
