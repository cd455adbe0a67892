package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/caguard/caguard/handler/azfunc/hosttest"
	"github.com/caguard/caguard/handler/graphfake"
)

// The traffic is synthetic on purpose: records shaped like Entra's (see the auditlog fixtures and the
// reference notes), with their variety, but written here so that no sample data travels with the
// repository. Every record is noise to caguard: none is a Conditional Access, named location,
// authentication strength or security defaults change, and no membership change touches a
// break-glass group.

// Ids the benchmark configures caguard with (all invented); the tenant is the Graph emulator's when
// the handler runs against it.
const (
	benchTenant     = "7d3c1f0a-5b2e-4c8d-9a61-2f4e8b0c3d15"
	benchSelfSP     = "3b8e2d47-91fa-4c06-b5e3-6d0a7c1f2e98"
	benchBreakGlass = "6e0d9b4c-2a71-4c5f-8d3e-b17f0a92c6d8"
)

// activity is one kind of noise record: its name, the service that logs it, its directory category,
// the operation type and the type of its first target.
type activity struct {
	name, service, category, op, target string
	signIn                              bool // a SignInLogs record sharing the hub
}

var activities = []activity{
	{"Update user", "Core Directory", "UserManagement", "Update", "User", false},
	{"Add member to group", "Core Directory", "GroupManagement", "Assign", "Group", false},
	{"Remove member from group", "Core Directory", "GroupManagement", "Unassign", "Group", false},
	{"Consent to application", "Core Directory", "ApplicationManagement", "Assign", "ServicePrincipal", false},
	{"Add app role assignment to service principal", "Core Directory", "ApplicationManagement", "Assign", "ServicePrincipal", false},
	{"Update application – Certificates and secrets management ", "Core Directory", "ApplicationManagement", "Update", "Application", false},
	{"Change user password", "Core Directory", "UserManagement", "Update", "User", false},
	{"User registered security info", "Authentication Methods", "UserManagement", "Add", "User", false},
	{"Update service principal", "Core Directory", "ApplicationManagement", "Update", "ServicePrincipal", false},
	{"Add owner to application", "Core Directory", "ApplicationManagement", "Assign", "Application", false},
	{"Reset password (self-service)", "Self-service Password Management", "UserManagement", "Update", "User", false},
	{"Add user", "Core Directory", "UserManagement", "Add", "User", false},
	{"Update group", "Core Directory", "GroupManagement", "Update", "Group", false},
	{"Add device", "Core Directory", "Device", "Add", "Device", false},
	{"Sign-in activity", "", "", "", "", true},
}

// names carries the unicode, apostrophes and ampersands real directories hold.
var names = []string{
	"Zoë Ångström", "山田 太郎", "Łukasz Żółć", "Ngozi O'Connor", "R&D build agent", "Ana Lúcia 🚀",
	"Мария Иванова", "مدير النظام", "svc-backup <nightly>", "Jo",
}

// traffic is the benchmark's invocations, built once and sent to every handler.
type traffic struct {
	bodies    [][]byte // each invocation's request body
	bodyBytes int64    // event bodies in total: the numerator of every MB/s figure
	events    int      // per invocation
	records   []int    // per invocation
}

// requestBytes is the size of every request body together.
func (t *traffic) requestBytes() int64 {
	var n int64
	for _, b := range t.bodies {
		n += int64(len(b))
	}
	return n
}

// newTraffic builds batches of events of about eventSize bytes each for tenant, deterministically
// from seed.
func newTraffic(tenant string, batches, events, eventSize int, seed uint64) (*traffic, error) {
	rng := rand.New(rand.NewPCG(seed, 0x5ca1ab1e))
	t := &traffic{events: events}
	at := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	for b := range batches {
		bodies := make([]string, events)
		records := 0
		for e := range bodies {
			var recs []json.RawMessage
			size := len(`{"records":[]}`)
			for size < eventSize {
				at = at.Add(time.Duration(rng.IntN(900)) * time.Millisecond)
				r, err := noiseRecord(rng, tenant, at)
				if err != nil {
					return nil, err
				}
				recs = append(recs, r)
				size += len(r) + 1
			}
			body, err := json.Marshal(map[string]any{"records": recs})
			if err != nil {
				return nil, err
			}
			if rng.IntN(4) == 0 {
				// Some producers escape every slash; JSON allows it anywhere in a string.
				body = bytes.ReplaceAll(body, []byte("/"), []byte(`\/`))
			}
			bodies[e] = string(body)
			t.bodyBytes += int64(len(body))
			records += len(recs)
		}
		env, err := json.Marshal(map[string]any{
			"Data":     hosttest.EventHubData("events", bodies...),
			"Metadata": hosttest.EventHubMetadata("AuditLogEvents", events),
		})
		if err != nil {
			return nil, fmt.Errorf("batch %d: %w", b, err)
		}
		t.bodies = append(t.bodies, env)
		t.records = append(t.records, records)
	}
	return t, nil
}

func guid(rng *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), 0x8000|rng.IntN(1<<14), rng.Uint64()&(1<<48-1))
}

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

// noiseRecord builds one record as Entra's diagnostic setting writes it.
func noiseRecord(rng *rand.Rand, tenant string, at time.Time) (json.RawMessage, error) {
	a := pick(rng, activities)
	ts := at.Format("2006-01-02T15:04:05.0000000Z")
	corr := guid(rng)
	user := pick(rng, names)
	upn := fmt.Sprintf("user%d@contoso.example", rng.IntN(5000))
	ip := fmt.Sprintf("203.0.113.%d", rng.IntN(250))
	if rng.IntN(5) == 0 {
		ip = fmt.Sprintf("2001:db8::%x", rng.IntN(1<<16))
	}
	if a.signIn {
		return json.Marshal(map[string]any{
			"time": ts, "resourceId": "/tenants/" + tenant + "/providers/Microsoft.aadiam",
			"operationName": "Sign-in activity", "operationVersion": "1.0", "category": "SignInLogs",
			"tenantId": tenant, "resultType": "0", "resultSignature": "None", "durationMs": 0,
			"callerIpAddress": ip, "correlationId": corr, "identity": user, "Level": 4,
			"location": "NZ",
			"properties": map[string]any{
				"id": guid(rng), "createdDateTime": ts, "userDisplayName": user, "userPrincipalName": upn,
				"userId": guid(rng), "appId": guid(rng), "appDisplayName": "Azure Portal", "ipAddress": ip,
				"clientAppUsed": "Browser", "conditionalAccessStatus": "notApplied",
				"authenticationRequirement": "singleFactorAuthentication",
				"deviceDetail":              map[string]any{"operatingSystem": "Windows10", "browser": "Edge 131.0.0"},
				"status":                    map[string]any{"errorCode": 0},
			},
		})
	}
	var mods []any
	for range 1 + rng.IntN(4) {
		switch rng.IntN(4) {
		case 0:
			mods = append(mods, map[string]any{"displayName": "DisplayName",
				"oldValue": fmt.Sprintf("[%q]", pick(rng, names)), "newValue": fmt.Sprintf("[%q]", pick(rng, names))})
		case 1:
			mods = append(mods, map[string]any{"displayName": "StrongAuthenticationMethod",
				"oldValue": "[]", "newValue": `[{"MethodType":6,"Default":true},{"MethodType":7,"Default":false}]`})
		case 2:
			mods = append(mods, map[string]any{"displayName": "Included Updated Properties",
				"oldValue": nil, "newValue": `"DisplayName, StrongAuthenticationMethod"`})
		default:
			inner, _ := json.Marshal(map[string]any{"url": "https://app.contoso.example/callback?x=1&y=2",
				"keyId": guid(rng), "startDateTime": ts, "note": "path C:\\agents\\" + pick(rng, names)})
			mods = append(mods, map[string]any{"displayName": "KeyDescription", "oldValue": "[]",
				"newValue": "[" + string(inner) + "]"})
		}
	}
	target := map[string]any{"id": guid(rng), "displayName": pick(rng, names), "type": a.target,
		"userPrincipalName": nil, "modifiedProperties": mods, "administrativeUnits": []any{}}
	if a.target == "User" {
		target["userPrincipalName"] = upn
	}
	props := map[string]any{
		"id":                  "Directory_" + corr + "_" + fmt.Sprintf("%05X", rng.IntN(1<<20)) + "_" + fmt.Sprint(rng.IntN(9999)),
		"category":            a.category,
		"correlationId":       corr,
		"result":              "success",
		"resultReason":        "",
		"activityDisplayName": a.name,
		"activityDateTime":    ts,
		"loggedByService":     a.service,
		"operationType":       a.op,
		"userAgent":           "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
		"tenantId":            tenant,
		"initiatedBy": map[string]any{"user": map[string]any{"id": guid(rng), "displayName": nil,
			"userPrincipalName": upn, "ipAddress": ip, "roles": []any{}}},
		"targetResources": []any{target},
		"additionalDetails": []any{
			map[string]any{"key": "User-Agent", "value": "EvoSTS"},
			map[string]any{"key": "AppId", "value": guid(rng)},
		},
	}
	if strings.Contains(a.name, "group") {
		// A membership change names the group in modified properties, as Core Directory writes it;
		// never a break-glass group here.
		target["modifiedProperties"] = append(mods,
			map[string]any{"displayName": "Group.ObjectID", "oldValue": nil, "newValue": fmt.Sprintf("%q", guid(rng))},
			map[string]any{"displayName": "Group.DisplayName", "oldValue": nil, "newValue": fmt.Sprintf("%q", "Team "+pick(rng, names))})
	}
	return json.Marshal(map[string]any{
		"time": ts, "resourceId": "/tenants/" + tenant + "/providers/Microsoft.aadiam",
		"operationName": a.name, "operationVersion": "1.0", "category": "AuditLogs", "tenantId": tenant,
		"resultSignature": "None", "durationMs": rng.IntN(300), "callerIpAddress": ip, "correlationId": corr,
		"identity": user, "Level": 4, "properties": props,
	})
}

// The tenant the CA batch is measured against: caguard's managed policy, compliant, excluding the
// break-glass group, whose two members are the configured break-glass users (all ids invented).
const (
	benchManagedPolicy = "9c4e2a71-3d5b-4f08-a6e1-7b2d0c8f4e53"
	benchBGUser1       = "5a1f3c9e-7d24-4b6a-9e08-c3f2d1a7b645"
	benchBGUser2       = "e2b7d4a0-61c9-4f3e-8a5d-0f9c6b3e1d72"
)

// benchScenario is that tenant, for the Graph emulator.
func benchScenario() graphfake.Scenario {
	policy, _ := json.Marshal(map[string]any{
		"id": benchManagedPolicy, "displayName": "caguard: require MFA for Azure management", "state": "enabled",
		"createdDateTime": "2026-01-05T09:00:00Z", "templateId": nil, "sessionControls": nil,
		"conditions": map[string]any{
			"clientAppTypes": []string{"all"}, "userRiskLevels": []string{}, "signInRiskLevels": []string{},
			"applications": map[string]any{"includeApplications": []string{"797f4846-ba00-4fd7-ba43-dac1f8f63013"}, "excludeApplications": []string{}},
			"users": map[string]any{"includeUsers": []string{"All"}, "excludeUsers": []string{}, "includeGroups": []string{},
				"excludeGroups": []string{benchBreakGlass}, "includeRoles": []string{}, "excludeRoles": []string{}},
		},
		"grantControls": map[string]any{"operator": "OR", "builtInControls": []string{"mfa"}},
	})
	user := func(name string, days int) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"displayName": name, "accountEnabled": true,
			"signInActivity": map[string]any{"lastSuccessfulSignInDateTime": fmt.Sprintf("now-%dd", days)}})
		return b
	}
	return graphfake.Scenario{
		Policies: []json.RawMessage{policy},
		Groups: map[string]graphfake.Group{benchBreakGlass: {DisplayName: "Break-glass accounts",
			Members: []graphfake.Member{{ID: benchBGUser1, DisplayName: "Break-glass 1"}, {ID: benchBGUser2, DisplayName: "Break-glass 2"}}}},
		Users: map[string]json.RawMessage{benchBGUser1: user("Break-glass 1", 12), benchBGUser2: user("Break-glass 2", 40)},
	}
}

// caBatch is one AuditLogEvents invocation holding one Conditional Access change: an admin
// updating the managed policy, shaped as Entra's diagnostic setting writes it.
func caBatch(tenant string, at time.Time) ([]byte, error) {
	ts := at.UTC().Format("2006-01-02T15:04:05.0000000Z")
	corr := "0f6b2c1e-8a47-4d35-b9e0-2c7d5f1a3e86"
	rec, err := json.Marshal(map[string]any{
		"time": ts, "resourceId": "/tenants/" + tenant + "/providers/Microsoft.aadiam",
		"operationName": "Update conditional access policy", "operationVersion": "1.0", "category": "AuditLogs",
		"tenantId": tenant, "resultSignature": "None", "durationMs": 0, "callerIpAddress": "203.0.113.7",
		"correlationId": corr, "Level": 4,
		"properties": map[string]any{
			"id": "IPCGraph_" + corr[:8], "category": "Policy", "correlationId": corr, "result": "success",
			"activityDisplayName": "Update conditional access policy", "activityDateTime": ts,
			"loggedByService": "Conditional Access", "operationType": "Update", "tenantId": tenant,
			"initiatedBy": map[string]any{"user": map[string]any{"id": "8d2f6a13-4c7e-4b90-a5d1-e3f7b0c2946a",
				"userPrincipalName": "admin@contoso.example", "ipAddress": "203.0.113.7", "roles": []any{}}},
			"targetResources": []any{map[string]any{"id": benchManagedPolicy, "type": "Policy",
				"displayName": "caguard: require MFA for Azure management", "modifiedProperties": []any{}}},
			"additionalDetails": []any{},
		},
	})
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(map[string]any{"records": []json.RawMessage{rec}})
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"Data":     hosttest.EventHubData("events", string(body)),
		"Metadata": hosttest.EventHubMetadata("AuditLogEvents", 1),
	})
}
