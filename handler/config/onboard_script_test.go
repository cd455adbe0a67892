package config

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeAz is an Azure CLI stand-in for the scripts' tests: it answers the few az commands the scripts
// run from files in $FAKE_AZ (the customer tenant's state), and records every call in $FAKE_AZ/calls.
// Graph's application permissions get ids "id-<name>".
const fakeAz = `#!/usr/bin/env bash
set -euo pipefail
s="$FAKE_AZ"
echo "$*" >> "$s/calls"
graph=00000003-0000-0000-c000-000000000000
case "$*" in
  "account show --query tenantId -o tsv") echo 99999999-0000-4000-8000-000000000009 ;;
  "ad sp show --id $graph --query id -o tsv") echo graph-sp ;;
  "ad sp show --id $graph --query appRoles"*)
    for p in Policy.Read.All GroupMember.Read.All AccessReview.Read.All Policy.ReadWrite.ConditionalAccess Application.Read.All User.Read.All AuditLog.Read.All; do
      printf '%s\tid-%s\n' "$p" "$p"
    done ;;
  "ad sp show --id "*" --query id -o tsv")
    [[ -f "$s/sp" ]] || { echo "ERROR: not found" >&2; exit 3; }
    cat "$s/sp" ;;
  "ad sp show --id "*" --query [id, displayName, servicePrincipalType] -o tsv")
    printf '%s\tcaguard\tApplication\n' "$(cat "$s/sp")" ;;
  "ad sp create --id "*) echo 5a5a5a5a-0000-4000-8000-000000000001 > "$s/sp"; cat "$s/sp" ;;
  "rest --method get --url "*appRoleAssignments*)
    printf '%s\tNone\n' "$(tr '\n' ' ' < "$s/assigned" 2>/dev/null || true)" ;;
  "rest --method post --url "*appRoleAssignments*)
    body="${*##*--body }"; body="${body%% --output*}"
    id="${body##*\"appRoleId\":\"}"; echo "${id%%\"*}" >> "$s/assigned" ;;
  *) echo "fake az: unexpected: $*" >&2; exit 9 ;;
esac
`

func runOnboard(t *testing.T, state string, args ...string) (string, int) {
	t.Helper()
	bin := filepath.Join(state, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "az"), []byte(fakeAz), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", append([]string{"../../scripts/onboard-tenant.sh"}, args...)...)
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

const appID = "12345678-0000-4000-8000-00000000abcd"

// A tenant that never consented: --check says so, with the consent URL, and changes nothing; the
// onboarding run creates the service principal and grants exactly the alert and review sets; a
// second --check then finds nothing missing, and --check --remediate names the write permissions.
func TestOnboardTenantScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	state := t.TempDir()
	out, code := runOnboard(t, state, "--app-id", appID, "--check")
	if code != 1 || !strings.Contains(out, "adminconsent?client_id="+appID) || !strings.Contains(out, "nobody has consented") {
		t.Fatalf("check before consent: exit %d\n%s", code, out)
	}
	if calls, _ := os.ReadFile(filepath.Join(state, "calls")); strings.Contains(string(calls), "sp create") || strings.Contains(string(calls), "--method post") {
		t.Fatalf("--check changed the tenant:\n%s", calls)
	}

	out, code = runOnboard(t, state, "--app-id", appID)
	if code != 0 {
		t.Fatalf("onboard: exit %d\n%s", code, out)
	}
	granted, _ := os.ReadFile(filepath.Join(state, "assigned"))
	want := []string{"id-Policy.Read.All", "id-GroupMember.Read.All", "id-AccessReview.Read.All"}
	if got := strings.Fields(string(granted)); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("granted %v, want %v (the alert and reviews sets)", got, want)
	}
	if strings.Contains(out, "not a managed identity") {
		t.Errorf("the app's service principal was taken for a misconfigured managed identity:\n%s", out)
	}

	if out, code = runOnboard(t, state, "--app-id", appID, "--check"); code != 0 || !strings.Contains(out, "is ready for caguard") {
		t.Errorf("check after onboarding: exit %d\n%s", code, out)
	}
	out, code = runOnboard(t, state, "--app-id", appID, "--check", "--remediate")
	if code != 1 || !strings.Contains(out, "would add Policy.ReadWrite.ConditionalAccess") || !strings.Contains(out, "missing   3 Graph permission(s)") {
		t.Errorf("check for remediate: exit %d\n%s", code, out)
	}
	if out, code = runOnboard(t, state, "--app-id", "not-a-guid"); code != 2 || !strings.Contains(out, "must be the app registration's application id") {
		t.Errorf("bad app id: exit %d\n%s", code, out)
	}
}
