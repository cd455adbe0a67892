// Package config reads caguard's app settings from the environment into a validated Config. Every
// bad value is an error that names the setting, so a misconfigured Function App fails at start-up with
// a message an operator can act on, not later with a confusing Graph error.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caguard/caguard/handler/capolicy"
)

// Remediation modes.
const (
	ModeAlert     = "alert"
	ModeRemediate = "remediate"
)

// Defaults for optional settings.
const (
	DefaultGraphBaseURL      = "https://graph.microsoft.com/v1.0"
	DefaultManagedPolicyName = "caguard: require MFA for Azure management"
	DefaultTargetAppID       = "797f4846-ba00-4fd7-ba43-dac1f8f63013"
	DefaultInvocationTimeout = 9 * time.Minute
	// MaxInvocationTimeout is host.json's functionTimeout (00:10:00). INVOCATION_TIMEOUT must stay
	// below it: when the host's timeout fires first, it kills and restarts the handler process, and
	// every invocation in flight with it.
	// Flex Consumption would allow 30 minutes by default and more when configured, but the host
	// enforces the value host.json ships; a test holds the two equal.
	MaxInvocationTimeout    = 10 * time.Minute
	DefaultGraphRetryBudget = 60 * time.Second
	DefaultExclusionReview  = "report"
	DefaultReviewGraceDays  = 14
)

// Config is every setting the handler reads. Secrets (ClientSecret, the storage account key) are never
// logged: use Redacted.
type Config struct {
	Port int // FUNCTIONS_CUSTOMHANDLER_PORT

	TenantID           string // AZURE_TENANT_ID
	ClientID           string // AZURE_CLIENT_ID
	ClientSecret       string // AZURE_CLIENT_SECRET
	FederatedTokenFile string // AZURE_FEDERATED_TOKEN_FILE
	AuthorityHost      string // AZURE_AUTHORITY_HOST

	GraphBaseURL       string        // GRAPH_BASE_URL
	GraphRetryBudget   time.Duration // GRAPH_RETRY_BUDGET
	ServicePrincipalID string        // CAGUARD_SERVICE_PRINCIPAL_ID

	BreakGlassUserIDs        []string // BREAK_GLASS_USER_IDS
	BreakGlassGroupIDs       []string // BREAK_GLASS_GROUP_IDS
	TargetAppIDs             []string // TARGET_APP_IDS
	CustomControlsCountAsMFA bool     // CUSTOM_CONTROLS_COUNT_AS_MFA

	RemediationMode   string // REMEDIATION_MODE
	ManagedPolicyName string // MANAGED_POLICY_NAME

	ExclusionReview string // EXCLUSION_REVIEW: off, report or require
	// Controls are the catalogue controls to judge (CONTROLS: comma-separated ids, or all), in
	// catalogue order; the default is the one control caguard guards, azure-management-mfa.
	Controls                 []string
	ExclusionReviewGraceDays int // EXCLUSION_REVIEW_GRACE_DAYS

	AlertEventHubNamespace string // ALERT_EVENTHUB_NAMESPACE
	AlertEventHubName      string // ALERT_EVENTHUB_NAME
	AlertWebhookURL        string // ALERT_WEBHOOK_URL
	AlertWebhookFormat     string // ALERT_WEBHOOK_FORMAT: auto, teams, slack or json

	Storage Storage // AzureWebJobsStorage, or its identity-based form

	// TenantsFile is a local tenant registry (TENANTS_FILE); without it the registry is the blob
	// caguard/tenants.json when storage is configured, and without either the one tenant of
	// AZURE_TENANT_ID is guarded.
	TenantsFile string
	// TenantsAppClientID is the multi-tenant app registration caguard signs in as in each registry
	// tenant (TENANTS_APP_CLIENT_ID); empty means AZURE_CLIENT_ID, which then names the app (with a
	// client secret, locally).
	TenantsAppClientID string

	InvocationTimeout time.Duration // INVOCATION_TIMEOUT
	LogLevel          string        // LOG_LEVEL
}

// Remediate reports whether caguard may write its managed policy.
func (c Config) Remediate() bool { return c.RemediationMode == ModeRemediate }

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Load reads and validates the settings through getenv (os.Getenv in production). It reports every
// problem at once, each naming its setting.
func Load(getenv func(string) string) (Config, error) {
	l := loader{getenv: getenv}
	c := Config{
		Port:               l.port("FUNCTIONS_CUSTOMHANDLER_PORT"),
		TenantID:           l.guid("AZURE_TENANT_ID", true),
		ClientID:           l.guid("AZURE_CLIENT_ID", false),
		ClientSecret:       l.str("AZURE_CLIENT_SECRET", ""),
		FederatedTokenFile: l.str("AZURE_FEDERATED_TOKEN_FILE", ""),
		AuthorityHost:      l.url("AZURE_AUTHORITY_HOST", "", false),
		GraphBaseURL:       strings.TrimRight(l.url("GRAPH_BASE_URL", DefaultGraphBaseURL, true), "/"),
		GraphRetryBudget:   l.duration("GRAPH_RETRY_BUDGET", DefaultGraphRetryBudget),
		ServicePrincipalID: l.guid("CAGUARD_SERVICE_PRINCIPAL_ID", false),
		BreakGlassUserIDs:  l.guids("BREAK_GLASS_USER_IDS"),
		BreakGlassGroupIDs: l.guids("BREAK_GLASS_GROUP_IDS"),
		TargetAppIDs:       l.guids("TARGET_APP_IDS"),
		RemediationMode:    l.oneOf("REMEDIATION_MODE", ModeAlert, ModeAlert, ModeRemediate),
		ManagedPolicyName:  l.str("MANAGED_POLICY_NAME", DefaultManagedPolicyName),

		ExclusionReview:          l.oneOf("EXCLUSION_REVIEW", DefaultExclusionReview, "off", "report", "require"),
		ExclusionReviewGraceDays: l.integer("EXCLUSION_REVIEW_GRACE_DAYS", DefaultReviewGraceDays, 0, 365),
		Controls:                 l.controls("CONTROLS"),

		AlertEventHubNamespace: l.str("ALERT_EVENTHUB_NAMESPACE", ""),
		AlertEventHubName:      l.str("ALERT_EVENTHUB_NAME", ""),
		AlertWebhookURL:        l.url("ALERT_WEBHOOK_URL", "", true),
		// auto picks by the webhook host: Teams Workflows (Adaptive Card), Slack (Block Kit), else JSON.
		AlertWebhookFormat: l.oneOf("ALERT_WEBHOOK_FORMAT", "auto", "auto", "teams", "slack", "json"),
		Storage:            l.storage(),
		TenantsFile:        l.str("TENANTS_FILE", ""),
		TenantsAppClientID: l.guid("TENANTS_APP_CLIENT_ID", false),

		CustomControlsCountAsMFA: l.boolean("CUSTOM_CONTROLS_COUNT_AS_MFA", false),
		InvocationTimeout:        l.duration("INVOCATION_TIMEOUT", DefaultInvocationTimeout),
		LogLevel:                 l.oneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
	}
	if len(c.TargetAppIDs) == 0 {
		c.TargetAppIDs = []string{DefaultTargetAppID}
	}
	if c.ClientSecret != "" && c.ClientID == "" {
		l.fail("AZURE_CLIENT_SECRET", "is set but AZURE_CLIENT_ID is not: a client secret needs its application id")
	}
	if c.FederatedTokenFile != "" && c.ClientID == "" {
		l.fail("AZURE_FEDERATED_TOKEN_FILE", "is set but AZURE_CLIENT_ID is not: workload identity needs its application id")
	}
	if (c.AlertEventHubNamespace == "") != (c.AlertEventHubName == "") {
		l.fail("ALERT_EVENTHUB_NAME", "and ALERT_EVENTHUB_NAMESPACE must be set together")
	}
	if strings.TrimSpace(c.ManagedPolicyName) != c.ManagedPolicyName || len(c.ManagedPolicyName) > 256 {
		l.fail("MANAGED_POLICY_NAME", "must have no leading or trailing spaces and at most 256 characters")
	}
	if (capolicy.Policy{DisplayName: c.ManagedPolicyName}).MicrosoftManaged() {
		// caguard never writes a policy so named, so it could create its policy once and never
		// restore it.
		l.fail("MANAGED_POLICY_NAME", "must not start with "+strconv.Quote(capolicy.MicrosoftManagedPrefix)+", which marks Microsoft-managed policies")
	}
	if c.InvocationTimeout <= 0 {
		l.fail("INVOCATION_TIMEOUT", "must be positive")
	} else if c.InvocationTimeout >= MaxInvocationTimeout {
		l.fail("INVOCATION_TIMEOUT", fmt.Sprintf("must be under %s, host.json's functionTimeout: when the host's timeout fires first it restarts the handler and every invocation in flight; got %s (raise functionTimeout in host.json first to go higher)",
			fmtDuration(MaxInvocationTimeout), fmtDuration(c.InvocationTimeout)))
	}
	if c.GraphRetryBudget < 0 {
		l.fail("GRAPH_RETRY_BUDGET", "must not be negative")
	}
	if err := errors.Join(l.errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Redacted returns the configuration as loggable fields: the client secret shows only whether it is set.
func (c Config) Redacted() map[string]any {
	return map[string]any{
		"port":                   c.Port,
		"tenantId":               c.TenantID,
		"clientId":               c.ClientID,
		"clientSecretSet":        c.ClientSecret != "",
		"federatedTokenFileSet":  c.FederatedTokenFile != "",
		"authorityHost":          c.AuthorityHost,
		"graphBaseUrl":           c.GraphBaseURL,
		"breakGlassUsers":        len(c.BreakGlassUserIDs),
		"breakGlassGroups":       len(c.BreakGlassGroupIDs),
		"targetAppIds":           c.TargetAppIDs,
		"remediationMode":        c.RemediationMode,
		"managedPolicyName":      c.ManagedPolicyName,
		"alertEventHub":          c.AlertEventHubName != "",
		"alertWebhook":           c.AlertWebhookURL != "",
		"alertWebhookFormat":     c.AlertWebhookFormat,
		"customControlsCountMfa": c.CustomControlsCountAsMFA,
		"exclusionReview":        c.ExclusionReview,
		"exclusionReviewGrace":   c.ExclusionReviewGraceDays,
		"storage":                c.Storage.Redacted(),
		"tenantsFile":            c.TenantsFile,
		"tenantsAppClientId":     c.TenantsAppClientID,
	}
}

type loader struct {
	getenv func(string) string
	errs   []error
}

// controls reads a list of catalogue control ids, or all.
func (l *loader) controls(name string) []string {
	ids, err := capolicy.ParseControls(l.getenv(name))
	if err != nil {
		l.fail(name, err.Error())
		return []string{capolicy.DefaultControls}
	}
	return ids
}

func (l *loader) fail(name, msg string) {
	l.errs = append(l.errs, fmt.Errorf("setting %s %s", name, msg))
}

func (l *loader) str(name, def string) string {
	if v := strings.TrimSpace(l.getenv(name)); v != "" {
		return v
	}
	return def
}

func (l *loader) port(name string) int {
	v := l.str(name, "")
	if v == "" {
		l.fail(name, "is required: the Functions host sets it to the port the handler must listen on")
		return 0
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 1 || p > 65535 {
		l.fail(name, fmt.Sprintf("must be a TCP port from 1 to 65535, got %q", v))
		return 0
	}
	return p
}

func (l *loader) guid(name string, required bool) string {
	v := l.str(name, "")
	switch {
	case v == "" && required:
		l.fail(name, "is required (an Entra object id, a GUID)")
	case v != "" && !guidRE.MatchString(v):
		l.fail(name, fmt.Sprintf("must be a GUID, got %q", v))
		return ""
	}
	return strings.ToLower(v)
}

func (l *loader) guids(name string) []string {
	v := l.str(name, "")
	if v == "" {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, part := range strings.Split(v, ",") {
		part = strings.ToLower(strings.TrimSpace(part))
		if part == "" {
			continue
		}
		if !guidRE.MatchString(part) {
			l.fail(name, fmt.Sprintf("must be comma-separated GUIDs, got %q", part))
			continue
		}
		if !seen[part] {
			seen[part] = true
			out = append(out, part)
		}
	}
	return out
}

func (l *loader) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(l.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	l.fail(name, fmt.Sprintf("must be one of %s, got %q", strings.Join(allowed, ", "), v))
	return def
}

func (l *loader) boolean(name string, def bool) bool {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		l.fail(name, fmt.Sprintf("must be true or false, got %q", v))
		return def
	}
	return b
}

func (l *loader) integer(name string, def, lo, hi int) int {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		l.fail(name, fmt.Sprintf("must be a whole number from %d to %d, got %q", lo, hi, v))
		return def
	}
	return n
}

// fmtDuration writes a duration without Go's zero units: 10m, not 10m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (l *loader) duration(name string, def time.Duration) time.Duration {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		l.fail(name, fmt.Sprintf("must be a Go duration such as 90s or 5m, got %q", v))
		return def
	}
	return d
}

// url accepts an absolute http(s) URL. With httpsOnly, plain http is allowed only to a loopback host
// (the local tenant emulator), so a typo cannot send tokens or alerts over the network in clear text.
func (l *loader) url(name, def string, httpsOnly bool) string {
	v := l.str(name, def)
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		// The value is not echoed: a webhook URL can carry a key in its query string.
		l.fail(name, "must be an absolute http(s) URL")
		return ""
	}
	if u.User != nil {
		l.fail(name, "must not carry credentials in the URL")
		return ""
	}
	if httpsOnly && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		l.fail(name, fmt.Sprintf("must use https (plain http is allowed only to a loopback host), got host %q", u.Hostname()))
		return ""
	}
	return v
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
