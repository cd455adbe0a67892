package config

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

const tenant = "0b1c2d3e-0000-4000-8000-00000000aaaa"

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func base() map[string]string {
	return map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "7071", "AZURE_TENANT_ID": tenant}
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(base()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 7071 || c.TenantID != tenant {
		t.Errorf("port %d tenant %q", c.Port, c.TenantID)
	}
	if c.GraphBaseURL != DefaultGraphBaseURL || c.RemediationMode != ModeAlert || c.Remediate() {
		t.Errorf("graph %q mode %q", c.GraphBaseURL, c.RemediationMode)
	}
	if len(c.TargetAppIDs) != 1 || c.TargetAppIDs[0] != DefaultTargetAppID {
		t.Errorf("target apps %v", c.TargetAppIDs)
	}
	if c.ManagedPolicyName != DefaultManagedPolicyName || c.InvocationTimeout != DefaultInvocationTimeout {
		t.Errorf("name %q timeout %v", c.ManagedPolicyName, c.InvocationTimeout)
	}
	if c.AlertWebhookFormat != "auto" {
		t.Errorf("webhook format: got %q, want auto", c.AlertWebhookFormat)
	}
}

func TestLoadAll(t *testing.T) {
	kv := base()
	for k, v := range map[string]string{
		"AZURE_CLIENT_ID":              "AAAAAAAA-0000-4000-8000-000000000001",
		"AZURE_CLIENT_SECRET":          "s3cr3t",
		"AZURE_AUTHORITY_HOST":         "https://login.microsoftonline.us/",
		"GRAPH_BASE_URL":               "https://graph.microsoft.us/v1.0/",
		"BREAK_GLASS_USER_IDS":         " 11111111-1111-4111-8111-111111111111 ,11111111-1111-4111-8111-111111111112,11111111-1111-4111-8111-111111111111",
		"BREAK_GLASS_GROUP_IDS":        "22222222-2222-4222-8222-222222222222",
		"TARGET_APP_IDS":               "40a69793-8fe6-4db1-9591-dbc5c57b17d8",
		"REMEDIATION_MODE":             "Remediate",
		"MANAGED_POLICY_NAME":          "CIS 5.2.6 MFA for Azure management",
		"CAGUARD_SERVICE_PRINCIPAL_ID": "33333333-3333-4333-8333-333333333333",
		"ALERT_EVENTHUB_NAMESPACE":     "caguard-alerts.servicebus.windows.net",
		"ALERT_EVENTHUB_NAME":          "alerts",
		"ALERT_WEBHOOK_URL":            "https://hooks.example.com/caguard?key=abc",
		"ALERT_WEBHOOK_FORMAT":         "Teams",
		"CUSTOM_CONTROLS_COUNT_AS_MFA": "true",
		"INVOCATION_TIMEOUT":           "4m",
		"GRAPH_RETRY_BUDGET":           "30s",
	} {
		kv[k] = v
	}
	c, err := Load(env(kv))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientID != "aaaaaaaa-0000-4000-8000-000000000001" {
		t.Errorf("client id not normalised: %q", c.ClientID)
	}
	if len(c.BreakGlassUserIDs) != 2 {
		t.Errorf("break-glass users %v: want 2, trimmed and deduplicated", c.BreakGlassUserIDs)
	}
	if c.GraphBaseURL != "https://graph.microsoft.us/v1.0" {
		t.Errorf("graph base %q: want trailing slash trimmed", c.GraphBaseURL)
	}
	if !c.Remediate() || !c.CustomControlsCountAsMFA || c.InvocationTimeout != 4*time.Minute || c.GraphRetryBudget != 30*time.Second {
		t.Errorf("mode/custom/timeout/budget wrong: %+v", c)
	}
	if c.AlertWebhookFormat != "teams" {
		t.Errorf("webhook format: got %q, want teams (read in any case)", c.AlertWebhookFormat)
	}
	if c.TargetAppIDs[0] != "40a69793-8fe6-4db1-9591-dbc5c57b17d8" {
		t.Errorf("target apps %v", c.TargetAppIDs)
	}
	red := c.Redacted()
	for _, v := range red {
		if s, ok := v.(string); ok && (strings.Contains(s, "s3cr3t") || strings.Contains(s, "key=abc")) {
			t.Errorf("Redacted leaks a secret: %v", red)
		}
	}
}

func TestLoadErrorsNameTheSetting(t *testing.T) {
	tests := []struct {
		name    string
		set     map[string]string
		unset   []string
		setting string
	}{
		{"missing port", nil, []string{"FUNCTIONS_CUSTOMHANDLER_PORT"}, "FUNCTIONS_CUSTOMHANDLER_PORT"},
		{"port not a number", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "http"}, nil, "FUNCTIONS_CUSTOMHANDLER_PORT"},
		{"port out of range", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "70000"}, nil, "FUNCTIONS_CUSTOMHANDLER_PORT"},
		{"port zero", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "0"}, nil, "FUNCTIONS_CUSTOMHANDLER_PORT"},
		{"missing tenant", nil, []string{"AZURE_TENANT_ID"}, "AZURE_TENANT_ID"},
		{"tenant not a GUID", map[string]string{"AZURE_TENANT_ID": "contoso.onmicrosoft.com"}, nil, "AZURE_TENANT_ID"},
		{"break-glass user not a GUID", map[string]string{"BREAK_GLASS_USER_IDS": "admin@contoso.com"}, nil, "BREAK_GLASS_USER_IDS"},
		{"break-glass group not a GUID", map[string]string{"BREAK_GLASS_GROUP_IDS": "22222222-2222"}, nil, "BREAK_GLASS_GROUP_IDS"},
		{"unknown remediation mode", map[string]string{"REMEDIATION_MODE": "fix"}, nil, "REMEDIATION_MODE"},
		{"graph over plain http to a remote host", map[string]string{"GRAPH_BASE_URL": "http://graph.microsoft.com/v1.0"}, nil, "GRAPH_BASE_URL"},
		{"graph URL not absolute", map[string]string{"GRAPH_BASE_URL": "graph.microsoft.com"}, nil, "GRAPH_BASE_URL"},
		{"webhook over plain http", map[string]string{"ALERT_WEBHOOK_URL": "http://hooks.example.com/x"}, nil, "ALERT_WEBHOOK_URL"},
		{"webhook with credentials", map[string]string{"ALERT_WEBHOOK_URL": "https://u:p@hooks.example.com/x"}, nil, "ALERT_WEBHOOK_URL"},
		{"unknown webhook format", map[string]string{"ALERT_WEBHOOK_FORMAT": "msteams"}, nil, "ALERT_WEBHOOK_FORMAT"},
		{"secret without client id", map[string]string{"AZURE_CLIENT_SECRET": "x"}, nil, "AZURE_CLIENT_SECRET"},
		{"federated token without client id", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": "/var/run/token"}, nil, "AZURE_FEDERATED_TOKEN_FILE"},
		{"alert hub without namespace", map[string]string{"ALERT_EVENTHUB_NAME": "alerts"}, nil, "ALERT_EVENTHUB_NAME"},
		{"timeout not a duration", map[string]string{"INVOCATION_TIMEOUT": "ten minutes"}, nil, "INVOCATION_TIMEOUT"},
		{"negative timeout", map[string]string{"INVOCATION_TIMEOUT": "-1s"}, nil, "INVOCATION_TIMEOUT"},
		{"timeout past the host's functionTimeout", map[string]string{"INVOCATION_TIMEOUT": "2h"}, nil, "INVOCATION_TIMEOUT"},
		{"timeout equal to the host's functionTimeout", map[string]string{"INVOCATION_TIMEOUT": "10m"}, nil, "INVOCATION_TIMEOUT"},
		{"custom controls not a bool", map[string]string{"CUSTOM_CONTROLS_COUNT_AS_MFA": "maybe"}, nil, "CUSTOM_CONTROLS_COUNT_AS_MFA"},
		{"service principal not a GUID", map[string]string{"CAGUARD_SERVICE_PRINCIPAL_ID": "caguard"}, nil, "CAGUARD_SERVICE_PRINCIPAL_ID"},
		{"log level unknown", map[string]string{"LOG_LEVEL": "verbose"}, nil, "LOG_LEVEL"},
		{"managed policy named like a Microsoft-managed one", map[string]string{"MANAGED_POLICY_NAME": "Microsoft-managed: MFA for Azure management"}, nil, "MANAGED_POLICY_NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := base()
			for k, v := range tt.set {
				kv[k] = v
			}
			for _, k := range tt.unset {
				delete(kv, k)
			}
			_, err := Load(env(kv))
			if err == nil {
				t.Fatalf("Load succeeded; want an error naming %s", tt.setting)
			}
			if !strings.Contains(err.Error(), tt.setting) {
				t.Errorf("error %q does not name %s", err, tt.setting)
			}
		})
	}
}

func TestPlainHTTPToLoopbackIsAllowed(t *testing.T) {
	kv := base()
	kv["GRAPH_BASE_URL"] = "http://127.0.0.1:39211/v1.0"
	if _, err := Load(env(kv)); err != nil {
		t.Fatal(err)
	}
}

func TestWebhookURLIsNeverEchoed(t *testing.T) {
	kv := base()
	kv["ALERT_WEBHOOK_URL"] = "hooks.example.com/caguard?key=topsecret"
	_, err := Load(env(kv))
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("err = %v; want an error without the URL", err)
	}
}

func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	_, err := Load(env(map[string]string{"REMEDIATION_MODE": "x"}))
	for _, s := range []string{"FUNCTIONS_CUSTOMHANDLER_PORT", "AZURE_TENANT_ID", "REMEDIATION_MODE"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error %v does not name %s", err, s)
		}
	}
}

// The bound on INVOCATION_TIMEOUT is the functionTimeout that host.json ships: a change to one
// without the other would let the host kill the handler before caguard's own deadline.
func TestMaxInvocationTimeoutIsHostJSONFunctionTimeout(t *testing.T) {
	var host struct {
		FunctionTimeout string `json:"functionTimeout"`
	}
	b, err := os.ReadFile("../../host.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &host); err != nil {
		t.Fatalf("host.json: %v", err)
	}
	var h, m, s int
	if _, err := fmt.Sscanf(host.FunctionTimeout, "%d:%d:%d", &h, &m, &s); err != nil {
		t.Fatalf("host.json functionTimeout %q is not hh:mm:ss: %v", host.FunctionTimeout, err)
	}
	got := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second
	if got != MaxInvocationTimeout {
		t.Errorf("host.json functionTimeout is %s, MaxInvocationTimeout %s: keep them equal", got, MaxInvocationTimeout)
	}
	if DefaultInvocationTimeout >= MaxInvocationTimeout {
		t.Errorf("default INVOCATION_TIMEOUT %s is not under the bound %s", DefaultInvocationTimeout, MaxInvocationTimeout)
	}
}

func TestInvocationTimeoutErrorSaysTheBound(t *testing.T) {
	env := map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "8080", "AZURE_TENANT_ID": "00000000-0000-0000-0000-0000000000aa", "INVOCATION_TIMEOUT": "2h"}
	_, err := Load(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("INVOCATION_TIMEOUT=2h accepted")
	}
	for _, want := range []string{"INVOCATION_TIMEOUT", "under 10m", "functionTimeout", "got 2h"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestControlsSetting(t *testing.T) {
	c, err := Load(env(base()))
	if err != nil || len(c.Controls) != 1 || c.Controls[0] != "azure-management-mfa" {
		t.Fatalf("default: %v, %v; want azure-management-mfa alone", c.Controls, err)
	}
	e := base()
	e["CONTROLS"] = "all"
	if c, err = Load(env(e)); err != nil || len(c.Controls) < 10 {
		t.Fatalf("all: %v, %v", c.Controls, err)
	}
	e["CONTROLS"] = "azure-management-mfa,bogus"
	if _, err = Load(env(e)); err == nil || !strings.Contains(err.Error(), "CONTROLS") || !strings.Contains(err.Error(), `"bogus"`) {
		t.Fatalf("bogus: %v, want an error naming CONTROLS and the id", err)
	}
}
