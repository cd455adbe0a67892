package config

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// Beside TestBicepAssignsTheRolesTheHandlerNeeds (roles_infra_test.go), which checks that each role is
// assigned: these tests check the condition each assignment carries (a role granted on a plan that
// does not need it, or missing on one that does, deploys cleanly and fails only at run time), that the
// identity gets no role nothing needs, and that the consumer group follows the Event Hubs tier. Role
// ids are Azure's built-in ids ("Azure built-in roles").

// identityRoles: what the handler and its host do with the identity, the resource it needs it on, and
// the condition under which the template must grant it ("" for always).
var identityRoles = []struct {
	role, id, scope, condition, why string
}{
	{"Storage Blob Data Owner", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "storage", "",
		"AzureWebJobsStorage (host keys, leases, checkpoints), the Flex package, caguard's writer lease and record"},
	{"Storage Table Data Contributor", "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3", "storage", "!isFlex",
		"runtime scale monitoring on Elastic Premium"},
	{"Monitoring Metrics Publisher", "3913510d-42f4-4e42-8a64-420c390055eb", "appInsights", "",
		"telemetry with Entra authentication"},
	{"Azure Event Hubs Data Receiver", "a638d3c7-ab3a-418d-83e6-5f17a39d4fde", "auditHub", "",
		"the AuditLogEvents trigger"},
	{"Azure Event Hubs Data Sender", "2b629674-e913-4c01-ae53-ef4638d8f975", "alertHub", "deployAlertEventHub",
		"the Event Hubs alert sink"},
	// The nightly fan-out's queues, on both plans: Reader and Message Processor for the TenantSweep
	// trigger, Message Sender for the NightlySweep and poison outputs. Not Storage Queue Data
	// Contributor: the template creates the queues, so nothing needs to create, delete or clear one.
	{"Storage Queue Data Reader", "19e7f393-937e-4f77-808e-94535e297925", "storage", "",
		"the TenantSweep queue trigger"},
	{"Storage Queue Data Message Processor", "8a0f0c08-91a1-4084-bc3d-661d67233fed", "storage", "",
		"the TenantSweep queue trigger"},
	{"Storage Queue Data Message Sender", "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a", "storage", "",
		"NightlySweep's fan-out and TenantSweep's poison output"},
}

var (
	bicepVarRe        = regexp.MustCompile(`(?m)^var (\w+) = '([^']*)'`)
	bicepRoleAssignRe = regexp.MustCompile(`(?m)^resource (\w+) 'Microsoft\.Authorization/roleAssignments@[^']+' = (?:if \(([^)]*)\) )?\{`)
	bicepScopeRe      = regexp.MustCompile(`(?m)^\s+scope: (\w+)\s*$`)
	bicepRoleDefRe    = regexp.MustCompile(`roleDefinitions', (\w+)\)`)
	bicepPrincipalRe  = regexp.MustCompile(`principalId: identity\.properties\.principalId`)
)

type roleAssignment struct {
	name, condition, scope, roleID string
	toIdentity                     bool
}

// bicepRoleAssignments reads every roleAssignments resource of the template: its condition, scope,
// the role id its roleDefinitionId resolves to, and whether it names caguard's identity.
func bicepRoleAssignments(t *testing.T, src string) []roleAssignment {
	t.Helper()
	vars := map[string]string{}
	for _, m := range bicepVarRe.FindAllStringSubmatch(src, -1) {
		vars[m[1]] = m[2]
	}
	var out []roleAssignment
	locs := bicepRoleAssignRe.FindAllStringSubmatchIndex(src, -1)
	for _, loc := range locs {
		body := src[loc[1]:]
		// A top-level resource ends at the first line that is a lone closing brace.
		if end := strings.Index(body, "\n}\n"); end >= 0 {
			body = body[:end]
		}
		a := roleAssignment{name: src[loc[2]:loc[3]]}
		if loc[4] >= 0 {
			a.condition = strings.TrimSpace(src[loc[4]:loc[5]])
		}
		if m := bicepScopeRe.FindStringSubmatch(body); m != nil {
			a.scope = m[1]
		}
		if m := bicepRoleDefRe.FindStringSubmatch(body); m != nil {
			id, ok := vars[m[1]]
			if !ok {
				t.Errorf("%s: roleDefinitionId names %s, which is no string var of the template", a.name, m[1])
			}
			a.roleID = id
		}
		a.toIdentity = bicepPrincipalRe.MatchString(body)
		out = append(out, a)
	}
	return out
}

func TestInfraRolesOnTheirScopesUnderTheirConditionsAndNoMore(t *testing.T) {
	src, err := os.ReadFile(bicepPath)
	if err != nil {
		t.Fatal(err)
	}
	assignments := bicepRoleAssignments(t, string(src))
	if len(assignments) == 0 {
		t.Fatalf("%s: no role assignments found; has the template's layout changed?", bicepPath)
	}
	for _, need := range identityRoles {
		found := false
		for _, a := range assignments {
			if a.roleID != need.id || !a.toIdentity {
				continue
			}
			found = true
			if a.scope != need.scope {
				t.Errorf("%s (%s) is granted on %q; the handler needs it on %q (%s)", need.role, a.name, a.scope, need.scope, need.why)
			}
			if a.condition != need.condition {
				t.Errorf("%s (%s) is granted if (%s); it is needed if (%s) (%s)", need.role, a.name, a.condition, need.condition, need.why)
			}
		}
		if !found {
			t.Errorf("%s does not grant the identity %s (%s), needed for %s", bicepPath, need.role, need.id, need.why)
		}
	}
	// Nothing more for the identity: every assignment to it is one the handler needs.
	for _, a := range assignments {
		if !a.toIdentity {
			continue
		}
		known := false
		for _, need := range identityRoles {
			known = known || need.id == a.roleID
		}
		if !known {
			t.Errorf("%s grants the identity role %s (%s), which no part of caguard needs", bicepPath, a.roleID, a.name)
		}
	}
}

// The audit hub on the Basic tier has only $Default; the trigger's consumer group setting must follow
// the tier, and the template must not create a group Basic refuses.
func TestInfraConsumerGroupFollowsTheEventHubTier(t *testing.T) {
	src, err := os.ReadFile(bicepPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	for _, want := range []string{
		"param eventHubSku string = 'Basic'",
		"var isBasicHub = eventHubSku == 'Basic'",
		"var auditTriggerConsumerGroup = isBasicHub ? '$Default' : auditConsumerGroupName",
		"resource auditConsumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = if (!isBasicHub) {",
		"messageRetentionInDays: isBasicHub ? 1 : auditRetentionDays",
		"param flexMaximumInstanceCount int = 40",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %q", bicepPath, want)
		}
	}
	setting := regexp.MustCompile(`name: 'AUDIT_EVENTHUB_CONSUMER_GROUP'\s+value: (\w+)`).FindStringSubmatch(s)
	if setting == nil || setting[1] != "auditTriggerConsumerGroup" {
		t.Errorf("AUDIT_EVENTHUB_CONSUMER_GROUP must be set from auditTriggerConsumerGroup (the tier's group), got %v", setting)
	}
}

// The fan-out's queues exist before the app (so no identity needs Storage Queue Data Contributor to
// create them), the poison queue under the name the queue extension uses, and the app setting the
// function.json files name is the queue the template creates.
func TestInfraCreatesTheFanOutQueues(t *testing.T) {
	src, err := os.ReadFile(bicepPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	for _, want := range []string{
		"param tenantSweepQueueName string = 'caguard-tenant-sweep'",
		"resource tenantSweepQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@",
		"resource tenantSweepPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@",
		"name: '${tenantSweepQueueName}-poison'",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %q", bicepPath, want)
		}
	}
	setting := regexp.MustCompile(`name: 'TENANT_SWEEP_QUEUE'\s+value: (\S+)`).FindStringSubmatch(s)
	if setting == nil || setting[1] != "tenantSweepQueue.name" {
		t.Errorf("TENANT_SWEEP_QUEUE must be the created queue's name (tenantSweepQueue.name), got %v", setting)
	}
	if strings.Contains(s, "974c5e8b-45b9-4653-ba55-5f855dd0fb88") {
		t.Error("the template names Storage Queue Data Contributor; the fan-out needs Reader, Message Processor and Message Sender only")
	}
}
