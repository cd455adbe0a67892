// Package graph is caguard's adapter for Microsoft Graph v1.0: the only package that imports
// msgraph-sdk-go, kiota and azidentity. It reads and writes Conditional Access policies, resolves
// group membership and authentication strengths, and maps SDK models to and from the domain types of
// handler/capolicy.
//
// Contract:
//   - Reads are complete or fail: every @odata.nextLink is followed, and an error on any page is an
//     error for the whole call, never a silently shortened list. ReadTenant and ReadDetails carry
//     many reads in JSON batches (batch.go); each of those is complete or fails on its own.
//   - Policies are read as raw JSON and parsed by capolicy.ParsePolicy, never through the SDK's
//     models, which read an unknown member of an enum collection as the enum's zero value (an
//     unknown client app type as "all") and drop what they do not model: an unknown value or
//     property reaches the rules, which read it as narrowing the policy.
//   - A policy whose state Graph left out (or sent as an unknown value) is an error, never "enabled";
//     writes always send the state explicitly.
//   - UpdatePolicy PATCHes only the listed top-level properties, so nothing else of the policy can be
//     overwritten, and sends each in full ([] for an empty list, null for an absent section), because
//     Graph merges a PATCH: what a body leaves out keeps its value. Writes never carry read-only
//     properties.
//   - Throttling (429) and transient faults (503, 504, network errors) are retried honouring
//     Retry-After, within Options.RetryBudget and Options.MaxRetries, and never past the context's
//     deadline. Every error a method returns is an *Error that says whether a retry can help
//     (Retriable) and, for a 403, which application permission the operation needs.
//   - No error carries an access token or a raw response body.
package graph

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abstractions "github.com/microsoft/kiota-abstractions-go"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	kiotaauth "github.com/microsoft/kiota-authentication-azure-go"
	khttp "github.com/microsoft/kiota-http-go"
	jsonser "github.com/microsoft/kiota-serialization-json-go"
	"go.uber.org/zap"
)

// Defaults for Options.
const (
	DefaultBaseURL        = "https://graph.microsoft.com/v1.0"
	DefaultRetryBudget    = 60 * time.Second
	DefaultMaxRetries     = 4
	DefaultRetryBaseDelay = time.Second
	DefaultAttemptTimeout = 30 * time.Second
)

// Options configure a Client. Only BaseURL's default and the credential settings matter in
// production; the rest have safe defaults.
type Options struct {
	// BaseURL is the Graph root including the version, default DefaultBaseURL (GRAPH_BASE_URL). It
	// must be https, except plain http to a loopback host (localhost, 127.0.0.1, ::1) for tests.
	BaseURL string
	// TenantID is the tenant to authenticate in (AZURE_TENANT_ID); required with a client secret or a
	// federated token file.
	TenantID string
	// ClientID is the application (client) id (AZURE_CLIENT_ID): the app registration for a client
	// secret or workload identity, or a user-assigned managed identity. Empty with neither
	// ClientSecret nor FederatedTokenFile means the system-assigned managed identity.
	ClientID string
	// ClientSecret selects ClientSecretCredential (AZURE_CLIENT_SECRET).
	ClientSecret string
	// FederatedTokenFile selects WorkloadIdentityCredential (AZURE_FEDERATED_TOKEN_FILE) when
	// ClientSecret is empty.
	FederatedTokenFile string
	// AuthorityHost is the Entra authority (AZURE_AUTHORITY_HOST), default the public cloud.
	AuthorityHost string
	// ServicePrincipalID overrides the service principal object id that ServicePrincipalID returns
	// (CAGUARD_SERVICE_PRINCIPAL_ID).
	ServicePrincipalID string
	// Credential, when set, is used instead of building one from the settings above.
	Credential azcore.TokenCredential
	// RetryBudget bounds the retrying of one method call, every page and request of it together:
	// no wait is started that would end later than RetryBudget after the call began. Default
	// DefaultRetryBudget.
	RetryBudget time.Duration
	// MaxRetries bounds the retries of one HTTP request; default DefaultMaxRetries. Negative
	// disables retrying.
	MaxRetries int
	// RetryBaseDelay is the first backoff when Graph sends no Retry-After; it doubles per retry.
	// Default DefaultRetryBaseDelay.
	RetryBaseDelay time.Duration
	// AttemptTimeout bounds a single HTTP attempt; default DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// HTTPClient, when set, supplies the transport for Graph and for token requests (its Transport,
	// or http.DefaultTransport when nil). The SDK middleware and the retry policy stay in place.
	HTTPClient *http.Client
	// Logger receives retry notes; nil means no logging.
	Logger *zap.Logger
}

// Client talks to Microsoft Graph. It is safe for concurrent use.
type Client struct {
	adapter        abstractions.RequestAdapter
	cred           azcore.TokenCredential
	scope          string
	base           *url.URL
	spID           string
	budget         time.Duration
	maxRetries     int
	baseDelay      time.Duration
	log            *zap.Logger
	now            func() time.Time
	pathParameters map[string]string
}

// New builds a Client. It does no I/O: a wrong credential shows on the first call.
func New(opts Options) (*Client, error) {
	if opts.BaseURL == "" {
		opts.BaseURL = DefaultBaseURL
	}
	if opts.RetryBudget <= 0 {
		opts.RetryBudget = DefaultRetryBudget
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	if opts.RetryBaseDelay <= 0 {
		opts.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = DefaultAttemptTimeout
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}

	base, err := parseBaseURL(opts.BaseURL)
	if err != nil {
		return nil, err
	}
	scope := scopeFor(base)

	var baseTransport http.RoundTripper
	if opts.HTTPClient != nil {
		baseTransport = opts.HTTPClient.Transport
	}
	if baseTransport == nil {
		baseTransport = khttp.GetDefaultTransport()
	}

	cred := opts.Credential
	if cred == nil {
		cred, err = newCredential(opts, &http.Client{Transport: baseTransport})
		if err != nil {
			return nil, err
		}
	}

	// Allowed hosts come from BaseURL: for any other host the SDK silently sends no Authorization
	// header (kiota-authentication-azure-go returns an empty token without an error).
	auth, err := kiotaauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred, []string{scope}, []string{base.Hostname()})
	if err != nil {
		return nil, fmt.Errorf("graph authentication provider: %w", err)
	}

	// The SDK's own RetryHandler is left out: it retries at most 180 s per request, knows no budget
	// per call, truncates fractional Retry-After and panics on options without ShouldRetry. Our
	// retryTransport wraps the whole middleware chain instead, so every attempt is compressed and
	// decorated afresh.
	chain := khttp.NewCustomTransportWithParentTransport(baseTransport,
		khttp.NewRedirectHandler(),
		khttp.NewCompressionHandler(),
		khttp.NewParametersNameDecodingHandler(),
		khttp.NewUserAgentHandler(),
		khttp.NewHeadersInspectionHandler(),
	)
	hc := &http.Client{
		Transport: &retryTransport{
			next:           chain,
			maxRetries:     opts.MaxRetries,
			baseDelay:      opts.RetryBaseDelay,
			attemptTimeout: opts.AttemptTimeout,
			log:            log,
			now:            time.Now,
		},
		// The SDK's RedirectHandler follows redirects (dropping Authorization across hosts).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	// Parse and serialisation factories of our own, rather than the SDK's process-wide registries.
	// No backing-store proxies: they are what makes a PATCH of a fetched model send {}.
	parse := absser.NewParseNodeFactoryRegistry()
	parse.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonParseNodeFactory()
	write := absser.NewSerializationWriterFactoryRegistry()
	write.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonSerializationWriterFactory()
	adapter, err := khttp.NewNetHttpRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, parse, write, hc)
	if err != nil {
		return nil, fmt.Errorf("graph request adapter: %w", err)
	}
	root := strings.TrimRight(base.String(), "/")
	adapter.SetBaseUrl(root)

	return &Client{
		adapter:        adapter,
		cred:           cred,
		scope:          scope,
		base:           base,
		spID:           opts.ServicePrincipalID,
		budget:         opts.RetryBudget,
		maxRetries:     opts.MaxRetries,
		baseDelay:      opts.RetryBaseDelay,
		log:            log,
		now:            time.Now,
		pathParameters: map[string]string{"baseurl": root},
	}, nil
}

// parseBaseURL checks GRAPH_BASE_URL: https, or http to a loopback host.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("GRAPH_BASE_URL %q is not an absolute URL", raw)
	}
	switch {
	case strings.EqualFold(u.Scheme, "https"):
	case strings.EqualFold(u.Scheme, "http") && isLoopback(u.Hostname()):
		// The SDK allows plain http only to localhost, 127.0.0.1 and ::1.
	default:
		return nil, fmt.Errorf("GRAPH_BASE_URL %q must use https (plain http only to a loopback host)", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("GRAPH_BASE_URL %q must not carry a query or fragment", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// scopeFor is the token scope for a Graph host: "https://<host>/.default", the default port left
// out.
func scopeFor(base *url.URL) string {
	host := base.Host
	if p := base.Port(); p == "443" || (p == "80" && strings.EqualFold(base.Scheme, "http")) {
		host = base.Hostname()
	}
	return "https://" + host + "/.default"
}

// knownAuthority reports whether Entra instance discovery knows the authority host. Any other host
// (Azure Stack, a test double) must skip discovery, or the credential calls
// login.microsoftonline.com to validate it.
func knownAuthority(host string) bool {
	switch strings.ToLower(strings.TrimSuffix(host, "/")) {
	case "login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn", "login.partner.microsoftonline.cn":
		return true
	}
	return false
}

// NewCredential builds the credential New would build from opts, for other Azure clients of the same
// identity (the alert Event Hub): client secret, then workload identity, then managed identity, with
// AuthorityHost honoured.
func NewCredential(opts Options) (azcore.TokenCredential, error) {
	var transport http.RoundTripper = khttp.GetDefaultTransport()
	if opts.HTTPClient != nil && opts.HTTPClient.Transport != nil {
		transport = opts.HTTPClient.Transport
	}
	return newCredential(opts, &http.Client{Transport: transport})
}

// newCredential picks the credential from the settings: client secret, then workload identity,
// then managed identity.
func newCredential(opts Options, tokenClient *http.Client) (azcore.TokenCredential, error) {
	co := azcore.ClientOptions{Transport: tokenClient}
	disableDiscovery := false
	if opts.AuthorityHost != "" {
		u, err := url.Parse(opts.AuthorityHost)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Scheme, "https") {
			return nil, fmt.Errorf("AZURE_AUTHORITY_HOST %q must be an https URL", opts.AuthorityHost)
		}
		co.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: strings.TrimRight(opts.AuthorityHost, "/") + "/"}
		disableDiscovery = !knownAuthority(u.Host)
	}
	switch {
	case opts.ClientSecret != "":
		if opts.TenantID == "" {
			return nil, errors.New("AZURE_TENANT_ID is required with AZURE_CLIENT_SECRET")
		}
		if opts.ClientID == "" {
			return nil, errors.New("AZURE_CLIENT_ID is required with AZURE_CLIENT_SECRET")
		}
		cred, err := azidentity.NewClientSecretCredential(opts.TenantID, opts.ClientID, opts.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: disableDiscovery})
		if err != nil {
			return nil, fmt.Errorf("client secret credential: %w", err)
		}
		return cred, nil
	case opts.FederatedTokenFile != "":
		if opts.TenantID == "" {
			return nil, errors.New("AZURE_TENANT_ID is required with AZURE_FEDERATED_TOKEN_FILE")
		}
		if opts.ClientID == "" {
			return nil, errors.New("AZURE_CLIENT_ID is required with AZURE_FEDERATED_TOKEN_FILE")
		}
		cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions:            co,
			ClientID:                 opts.ClientID,
			TenantID:                 opts.TenantID,
			TokenFilePath:            opts.FederatedTokenFile,
			DisableInstanceDiscovery: disableDiscovery,
		})
		if err != nil {
			return nil, fmt.Errorf("workload identity credential: %w", err)
		}
		return cred, nil
	default:
		// App Service and Functions put IDENTITY_ENDPOINT and IDENTITY_HEADER in the environment;
		// azidentity reads them itself.
		mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: co}
		if opts.ClientID != "" {
			mo.ID = azidentity.ClientID(opts.ClientID)
		}
		cred, err := azidentity.NewManagedIdentityCredential(mo)
		if err != nil {
			return nil, fmt.Errorf("managed identity credential: %w", err)
		}
		return cred, nil
	}
}

// begin starts a method call: the retry budget counts from here, and the call's last response is
// recorded for error classification.
func (c *Client) begin(ctx context.Context, op, perm string) (context.Context, *call) {
	cl := &call{op: op, perm: perm, deadline: c.now().Add(c.budget)}
	if parent := callFrom(ctx); parent != nil && parent.deadline.Before(cl.deadline) {
		// A call made on behalf of another (strengths completing a policy list) shares its budget.
		cl.deadline = parent.deadline
	}
	return context.WithValue(ctx, callKey{}, cl), cl
}

// ServicePrincipalID returns caguard's own service principal object id: Options.ServicePrincipalID
// when set, else the oid claim of the Graph access token. The token is our own, fresh from Entra,
// so its payload is read without verifying the signature.
func (c *Client) ServicePrincipalID(ctx context.Context) (string, error) {
	if c.spID != "" {
		return c.spID, nil
	}
	const op = "service principal id"
	tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{c.scope}, EnableCAE: true})
	if err != nil {
		return "", classify(op, "", err, nil)
	}
	oid, err := oidClaim(tok.Token)
	if err != nil {
		return "", &Error{Op: op, Code: "InvalidToken", Message: err.Error() + "; set CAGUARD_SERVICE_PRINCIPAL_ID"}
	}
	return oid, nil
}
