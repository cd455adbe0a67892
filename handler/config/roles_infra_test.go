package config

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The Azure roles the handler's identity needs, each on the resource it uses, with the role's
// built-in id (Azure built-in roles reference). infra/main.bicep must assign each to the identity at
// that scope, and nothing broader: a role at the resource group or subscription would let caguard's
// identity reach far more than its storage account and hubs.
var neededRoles = []struct {
	name, id, scope, why string
}{
	{"Storage Blob Data Owner", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "storage", "host keys, leases, checkpoints, the Flex package, caguard's writer lease and record"},
	{"Azure Event Hubs Data Receiver", "a638d3c7-ab3a-418d-83e6-5f17a39d4fde", "auditHub", "the AuditLogEvents trigger reads the audit hub"},
	{"Monitoring Metrics Publisher", "3913510d-42f4-4e42-8a64-420c390055eb", "appInsights", "telemetry with Entra authentication"},
	{"Storage Queue Data Reader", "19e7f393-937e-4f77-808e-94535e297925", "storage", "the TenantSweep queue trigger looks up and peeks its queue"},
	{"Storage Queue Data Message Processor", "8a0f0c08-91a1-4084-bc3d-661d67233fed", "storage", "the TenantSweep queue trigger receives and deletes messages"},
	{"Storage Queue Data Message Sender", "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a", "storage", "NightlySweep enqueues a sweep per tenant; TenantSweep and the host write the poison queue"},
}

func TestBicepAssignsTheRolesTheHandlerNeeds(t *testing.T) {
	b, err := os.ReadFile(bicepPath)
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	vars := map[string]string{} // role variable -> role id
	for _, m := range regexp.MustCompile(`(?m)^var (role[A-Za-z]+) = '([0-9a-f-]{36})'`).FindAllStringSubmatch(src, -1) {
		vars[m[1]] = m[2]
	}
	// Each roleAssignments resource: its scope and the role variable it assigns.
	re := regexp.MustCompile(`(?s)resource \w+ 'Microsoft\.Authorization/roleAssignments@[^']+' = (?:if \([^)]*\) )?\{(.*?)\n\}`)
	type assignment struct{ scope, role, principal string }
	var got []assignment
	for _, m := range re.FindAllStringSubmatch(src, -1) {
		body := m[1]
		scope := regexp.MustCompile(`(?m)^\s*scope: (\w+)`).FindStringSubmatch(body)
		role := regexp.MustCompile(`roleDefinitions', (role\w+)\)`).FindStringSubmatch(body)
		principal := regexp.MustCompile(`(?m)^\s*principalId: (\S+)`).FindStringSubmatch(body)
		if scope == nil || role == nil || principal == nil {
			t.Errorf("a role assignment whose scope, role or principal this test cannot read:\n%s", body)
			continue
		}
		got = append(got, assignment{scope[1], vars[role[1]], principal[1]})
	}
	if len(got) == 0 {
		t.Fatal("no role assignment found in infra/main.bicep")
	}
	for _, need := range neededRoles {
		found := false
		for _, a := range got {
			found = found || (a.role == need.id && a.scope == need.scope && strings.HasPrefix(a.principal, "identity."))
		}
		if !found {
			t.Errorf("infra/main.bicep does not assign %s (%s) to the identity on %s: %s", need.name, need.id, need.scope, need.why)
		}
	}
	for _, a := range got {
		if a.role == "" {
			t.Errorf("a role assignment on %s names a role variable without a built-in id", a.scope)
		}
		if a.scope == "resourceGroup" || a.scope == "subscription" {
			t.Errorf("a role assignment at %s scope: assign on the one resource instead", a.scope)
		}
	}
}
