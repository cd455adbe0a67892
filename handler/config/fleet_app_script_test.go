package config

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeHomeAz is an Azure CLI stand-in for scripts/setup-fleet-app.sh: the provider's home tenant, its
// app registration and the Function app, kept in files under $FAKE_AZ (app: the app id, audience:
// its signInAudience, declared: its Graph role ids, fics: its federated credentials as az prints them,
// setting: TENANTS_APP_CLIENT_ID), with every call recorded in $FAKE_AZ/calls and each federated
// credential body in $FAKE_AZ/fic-bodies. Graph's application permissions get ids "id-<name>".
const fakeHomeAz = `#!/usr/bin/env bash
set -euo pipefail
s="$FAKE_AZ"
all="$*"
printf '%s\n' "$all" >> "$s/calls"
graph=00000003-0000-0000-c000-000000000000
app="$(cat "$s/app" 2>/dev/null || true)"
case "$*" in
  "account show --query tenantId -o tsv") echo 77777777-0000-4000-8000-000000000007 ;;
  "cloud show --query endpoints.activeDirectory -o tsv") echo https://login.microsoftonline.com/ ;;
  "ad app list --display-name caguard --query [?displayName=='caguard'].appId -o tsv") cat "$s/app" 2>/dev/null || true ;;
  "ad app show --id $app --query appId -o tsv") [[ -n "$app" ]] && echo "$app" || { echo "ERROR: not found" >&2; exit 3; } ;;
  "ad app show --id "*" --query appId -o tsv") echo "ERROR: not found" >&2; exit 3 ;;
  "ad app create --display-name caguard --sign-in-audience AzureADMultipleOrgs --query appId -o tsv")
    echo 12345678-0000-4000-8000-00000000abcd > "$s/app"; echo AzureADMultipleOrgs > "$s/audience"; cat "$s/app" ;;
  "ad app show --id $app --query signInAudience -o tsv") cat "$s/audience" ;;
  "ad app update --id $app --sign-in-audience AzureADMultipleOrgs --output none") echo AzureADMultipleOrgs > "$s/audience" ;;
  "ad sp show --id $graph --query appRoles"*)
    for p in Policy.Read.All GroupMember.Read.All AccessReview.Read.All Policy.ReadWrite.ConditionalAccess Application.Read.All User.Read.All AuditLog.Read.All LicenseAssignment.Read.All; do
      printf '%s\tid-%s\n' "$p" "$p"
    done ;;
  "ad app show --id $app --query requiredResourceAccess[?resourceAppId=='$graph'].resourceAccess[] | [?type=='Role'].id -o tsv")
    cat "$s/declared" 2>/dev/null || true ;;
  "ad app permission add --id $app --api $graph --api-permissions "*" --output none")
    rest="${all#*--api-permissions }"; rest="${rest% --output none}"
    for p in $rest; do echo "${p%=Role}" >> "$s/declared"; done ;;
  "ad app federated-credential list --id $app --query [].[name, issuer, subject, join(' ', audiences)] -o tsv")
    cat "$s/fics" 2>/dev/null || true ;;
  "ad app federated-credential create --id $app --parameters "*" --output none")
    body="${all#*--parameters }"; body="${body% --output none}"
    printf '%s\n' "$body" >> "$s/fic-bodies"
    jq -r '[.name, .issuer, .subject, (.audiences | join(" "))] | @tsv' <<<"$body" >> "$s/fics" ;;
  "functionapp config appsettings list -g rg-fleet -n caguard-func --query [?name=='TENANTS_APP_CLIENT_ID'].value -o tsv")
    cat "$s/setting" 2>/dev/null || true ;;
  "functionapp config appsettings set -g rg-fleet -n caguard-func --settings TENANTS_APP_CLIENT_ID="*" --output none")
    v="${all#*TENANTS_APP_CLIENT_ID=}"; echo "${v%% *}" > "$s/setting" ;;
  *) echo "fake az: unexpected: $*" >&2; exit 9 ;;
esac
`

const (
	homeTenantID    = "77777777-0000-4000-8000-000000000007"
	miPrincipalID   = "0a1b2c3d-0000-4000-8000-0000000000ff"
	fleetAppID      = "12345678-0000-4000-8000-00000000abcd"
	fleetAppCreated = "ad app create --display-name caguard --sign-in-audience AzureADMultipleOrgs"
)

func runFleetSetup(t *testing.T, state string, args ...string) (string, int) {
	t.Helper()
	bin := filepath.Join(state, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "az"), []byte(fakeHomeAz), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", append([]string{"../../scripts/setup-fleet-app.sh"}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "FAKE_AZ="+state)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// stateFile is a file of the fake tenant, "" when absent.
func stateFile(t *testing.T, state, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// callsSince returns the az calls recorded after the first n.
func callsSince(t *testing.T, state string, n int) []string {
	t.Helper()
	all := strings.Split(strings.TrimRight(stateFile(t, state, "calls"), "\n"), "\n")
	if n > len(all) {
		return nil
	}
	return all[n:]
}

func countCalls(t *testing.T, state string) int { return len(callsSince(t, state, 0)) }

// writes are the calls that change the tenant or the Function app.
func writes(calls []string) []string {
	var w []string
	for _, c := range calls {
		for _, verb := range []string{" create ", " update ", " add ", " set ", " delete ", " reset ", " remove "} {
			if strings.Contains(" "+c+" ", verb) {
				w = append(w, c)
				break
			}
		}
	}
	return w
}

func needBashAndJq(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"bash", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if tool == "jq" && os.Getenv("CAGUARD_REQUIRE_JQ") == "1" {
				t.Fatalf("jq is required (CAGUARD_REQUIRE_JQ=1): %v", err)
			}
			t.Skipf("no %s (scripts/setup-fleet-app.sh needs it)", tool)
		}
	}
}

// A home tenant without the app: --check says so and changes nothing; the setup creates a
// multi-tenant app, declares exactly the alert and reviews sets, adds one federated credential with
// Entra's issuer, the identity's principal id as subject and api://AzureADTokenExchange as audience,
// sets TENANTS_APP_CLIENT_ID, and never creates a secret. A second run writes nothing; --check then
// passes; --check --remediate --licences names what those sets add, and a run with them adds only that.
func TestSetupFleetAppScript(t *testing.T) {
	needBashAndJq(t)
	state := t.TempDir()
	fa := []string{"--principal-id", miPrincipalID, "--function-app", "caguard-func", "--resource-group", "rg-fleet"}

	out, code := runFleetSetup(t, state, append(fa, "--check")...)
	if code != 1 || !strings.Contains(out, "no app registration named 'caguard'") {
		t.Fatalf("check before setup: exit %d, want 1 naming the missing app\n%s", code, out)
	}
	if w := writes(callsSince(t, state, 0)); len(w) > 0 {
		t.Fatalf("--check changed the tenant: %q", w)
	}

	out, code = runFleetSetup(t, state, fa...)
	if code != 0 {
		t.Fatalf("setup: exit %d\n%s", code, out)
	}
	calls := callsSince(t, state, 0)
	if !strings.Contains(strings.Join(calls, "\n"), fleetAppCreated) {
		t.Errorf("the app was not created multi-tenant; calls:\n%s", strings.Join(calls, "\n"))
	}
	for _, c := range calls {
		l := strings.ToLower(c)
		for _, secret := range []string{"credential reset", "password", "secret", "cert"} {
			if strings.Contains(l, secret) {
				t.Errorf("call %q creates or touches a secret", c)
			}
		}
	}
	if got, want := strings.Fields(stateFile(t, state, "declared")), []string{"id-Policy.Read.All", "id-GroupMember.Read.All", "id-AccessReview.Read.All"}; !reflect.DeepEqual(got, want) {
		t.Errorf("declared Graph roles %v, want %v (the alert and reviews sets)", got, want)
	}
	bodies := strings.Split(strings.TrimSpace(stateFile(t, state, "fic-bodies")), "\n")
	if len(bodies) != 1 {
		t.Fatalf("federated credentials created: %d, want 1\n%s", len(bodies), stateFile(t, state, "fic-bodies"))
	}
	var fic map[string]any
	if err := json.Unmarshal([]byte(bodies[0]), &fic); err != nil {
		t.Fatalf("federated credential body %q: %v", bodies[0], err)
	}
	wantFIC := map[string]any{
		"name":        "caguard-mi-" + miPrincipalID,
		"issuer":      "https://login.microsoftonline.com/" + homeTenantID + "/v2.0",
		"subject":     miPrincipalID,
		"audiences":   []any{"api://AzureADTokenExchange"},
		"description": "caguard: the Function app's managed identity signs in as this app",
	}
	if !reflect.DeepEqual(fic, wantFIC) {
		t.Errorf("federated credential %v, want %v", fic, wantFIC)
	}
	if got := strings.TrimSpace(stateFile(t, state, "setting")); got != fleetAppID {
		t.Errorf("TENANTS_APP_CLIENT_ID = %q, want %s", got, fleetAppID)
	}
	if !strings.Contains(out, "tenantsAppClientId = '"+fleetAppID+"'") || !strings.Contains(out, "onboard-tenant.sh --app-id "+fleetAppID) {
		t.Errorf("setup does not say how to keep the setting and onboard tenants:\n%s", out)
	}

	n := countCalls(t, state)
	if out, code = runFleetSetup(t, state, fa...); code != 0 {
		t.Fatalf("second setup: exit %d\n%s", code, out)
	}
	if w := writes(callsSince(t, state, n)); len(w) > 0 {
		t.Errorf("second setup wrote %q, want nothing (idempotent)", w)
	}

	if out, code = runFleetSetup(t, state, append(fa, "--check")...); code != 0 || !strings.Contains(out, "is ready to sign in as the managed identity "+miPrincipalID) {
		t.Errorf("check after setup: exit %d\n%s", code, out)
	}

	n = countCalls(t, state)
	out, code = runFleetSetup(t, state, append(fa, "--check", "--remediate", "--licences")...)
	if code != 1 || !strings.Contains(out, "missing   4 item(s)") {
		t.Errorf("check with --remediate --licences: exit %d, want 1 with 4 missing\n%s", code, out)
	}
	for _, p := range []string{"Policy.ReadWrite.ConditionalAccess", "Application.Read.All", "User.Read.All", "LicenseAssignment.Read.All"} {
		if !strings.Contains(out, "missing   "+p+" ") {
			t.Errorf("check with --remediate --licences does not name %s:\n%s", p, out)
		}
	}
	if w := writes(callsSince(t, state, n)); len(w) > 0 {
		t.Errorf("--check wrote %q", w)
	}

	n = countCalls(t, state)
	if out, code = runFleetSetup(t, state, append(fa, "--remediate", "--licences")...); code != 0 {
		t.Fatalf("setup with --remediate --licences: exit %d\n%s", code, out)
	}
	wantAdd := "ad app permission add --id " + fleetAppID + " --api 00000003-0000-0000-c000-000000000000 --api-permissions " +
		"id-Policy.ReadWrite.ConditionalAccess=Role id-Application.Read.All=Role id-User.Read.All=Role id-LicenseAssignment.Read.All=Role --output none"
	if w := writes(callsSince(t, state, n)); !reflect.DeepEqual(w, []string{wantAdd}) {
		t.Errorf("setup with --remediate --licences wrote %q, want only %q", w, wantAdd)
	}
}

// An app that exists already, single-tenant, with a federated credential of another identity: it is
// found by name and made multi-tenant, and the identity's own credential is added beside the other.
// Without --function-app the value is printed for the Bicep parameter and no app setting is touched.
func TestSetupFleetAppScriptReusesAnExistingApp(t *testing.T) {
	needBashAndJq(t)
	state := t.TempDir()
	other := "other\thttps://login.microsoftonline.com/" + homeTenantID + "/v2.0\tffffffff-0000-4000-8000-000000000000\tapi://AzureADTokenExchange\n"
	for name, body := range map[string]string{"app": fleetAppID + "\n", "audience": "AzureADMyOrg\n", "fics": other} {
		if err := os.WriteFile(filepath.Join(state, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, code := runFleetSetup(t, state, "--principal-id", miPrincipalID, "--check")
	if code != 1 || !strings.Contains(out, "signInAudience is AzureADMyOrg") || !strings.Contains(out, "no federated credential for the managed identity") {
		t.Fatalf("check of a single-tenant app: exit %d\n%s", code, out)
	}
	out, code = runFleetSetup(t, state, "--principal-id", miPrincipalID)
	if code != 0 {
		t.Fatalf("setup: exit %d\n%s", code, out)
	}
	w := writes(callsSince(t, state, 0))
	if strings.Contains(strings.Join(w, "\n"), "ad app create") {
		t.Errorf("an existing app was created again: %q", w)
	}
	if got := strings.TrimSpace(stateFile(t, state, "audience")); got != "AzureADMultipleOrgs" {
		t.Errorf("signInAudience = %s, want AzureADMultipleOrgs", got)
	}
	if fics := stateFile(t, state, "fics"); !strings.HasPrefix(fics, other) || strings.Count(fics, "\n") != 2 {
		t.Errorf("federated credentials:\n%s\nwant the other identity's kept and one added", fics)
	}
	if strings.Contains(stateFile(t, state, "calls"), "functionapp") {
		t.Errorf("no --function-app given, yet an app setting was read or written")
	}
	if !strings.Contains(out, "param tenantsAppClientId = '"+fleetAppID+"'") {
		t.Errorf("the Bicep parameter is not printed:\n%s", out)
	}
}

// Wrong input is a clear error (exit 2), and a federated credential for the identity with another
// audience is reported, not overwritten and not duplicated.
func TestSetupFleetAppScriptRefusesWrongInput(t *testing.T) {
	needBashAndJq(t)
	for _, tc := range []struct {
		name, fics, want string
		args             []string
	}{
		{"a principal id that is not a GUID", "", "must be the managed identity's object id", []string{"--principal-id", "mi"}},
		{"a function app without its resource group", "", "go together", []string{"--principal-id", miPrincipalID, "--function-app", "f"}},
		{"an unknown flag", "", "unknown argument: --all", []string{"--principal-id", miPrincipalID, "--all"}},
		{"an app id that does not exist", "", "no app registration with application id", []string{"--principal-id", miPrincipalID, "--app-id", "99999999-0000-4000-8000-000000000000"}},
		{"the identity trusted with another audience",
			"mine\thttps://login.microsoftonline.com/" + homeTenantID + "/v2.0\t" + miPrincipalID + "\tapi://other\n",
			"not api://AzureADTokenExchange", []string{"--principal-id", miPrincipalID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			for name, body := range map[string]string{"app": fleetAppID + "\n", "audience": "AzureADMultipleOrgs\n", "fics": tc.fics} {
				if err := os.WriteFile(filepath.Join(state, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, code := runFleetSetup(t, state, tc.args...)
			if code != 2 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want 2 with %q\n%s", code, tc.want, out)
			}
			if stateFile(t, state, "fic-bodies") != "" {
				t.Errorf("a federated credential was created")
			}
		})
	}
}
