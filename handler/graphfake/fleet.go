package graphfake

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Fleet emulates many tenants for one multi-tenant app registration: one Graph root that routes each
// request to the tenant of its token, and one Entra-shaped authority that issues each tenant's tokens.
//
// The choice: one Graph server routing by the token's tid claim, rather than a server per tenant,
// because that is what Graph is (graph.microsoft.com serves every tenant and knows the tenant from
// the token alone), and because a thousand tenants then cost one listener and one connection pool,
// which is what the fleet benchmark must measure. Each tenant is still a Server of its own (policies,
// calls, faults, lag), reached through its serveHTTP; only the listener is shared.
//
// The authority speaks the Microsoft identity platform's v2.0 protocol as azidentity uses it: OpenID
// discovery at /{tenant}/v2.0/.well-known/openid-configuration, then the client-credentials grant at
// /{tenant}/oauth2/v2.0/token ("Microsoft identity platform and the OAuth 2.0 client credentials
// flow"). It listens on TLS, because azidentity refuses an authority over plain HTTP; Client trusts
// its certificate. A tenant can be made to refuse the app (Refuse) the way Entra refuses an app that
// was never consented there: 400 with an AADSTS code in error_description.
type Fleet struct {
	opts FleetOptions

	graph *http.Server
	ln    net.Listener
	auth  *httptest.Server
	root  string

	mu      sync.RWMutex
	tenants map[string]*Server
	refused map[string]string
	flight  map[string]*inFlight
}

// FleetOptions configure a Fleet.
type FleetOptions struct {
	// ClientID and ClientSecret are the multi-tenant app's credentials the authority accepts;
	// defaults DefaultClientID and "fleet-secret".
	ClientID, ClientSecret string
	// Latency is added before every Graph answer (a $batch counts once), to play the round trip to
	// a distant service.
	Latency time.Duration
}

type inFlight struct {
	mu       sync.Mutex
	now, max int
	total    int
}

// NewFleet starts the Graph root (plain HTTP on loopback) and the authority (TLS on loopback).
func NewFleet(o FleetOptions) (*Fleet, error) {
	if o.ClientID == "" {
		o.ClientID = DefaultClientID
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "fleet-secret"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("graphfake: listen: %w", err)
	}
	f := &Fleet{opts: o, ln: ln, root: "http://" + ln.Addr().String(),
		tenants: map[string]*Server{}, refused: map[string]string{}, flight: map[string]*inFlight{}}
	f.graph = &http.Server{Handler: http.HandlerFunc(f.serveGraph), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = f.graph.Serve(ln) }()
	f.auth = httptest.NewUnstartedServer(http.HandlerFunc(f.serveAuthority))
	f.auth.StartTLS()
	return f, nil
}

// Add seeds a tenant. opts.TenantID is replaced by tenantID; the tenant's Server is returned for
// seeding and inspection (Calls, Policy, Inject) but is never started: the Fleet serves it.
func (f *Fleet) Add(tenantID string, sc Scenario, opts Options) (*Server, error) {
	tenantID = strings.ToLower(strings.TrimSpace(tenantID))
	opts.TenantID, sc.TenantID = tenantID, tenantID
	opts.ClientID = f.opts.ClientID
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	if err := s.Seed(sc); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.root = f.root // next links and @odata.context name the shared root
	s.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, dup := f.tenants[tenantID]; dup {
		return nil, fmt.Errorf("graphfake: tenant %s added twice", tenantID)
	}
	f.tenants[tenantID] = s
	f.flight[tenantID] = &inFlight{}
	return s, nil
}

// Refuse makes the authority refuse every token of tenantID with an AADSTS code, e.g.
// "AADSTS700016" (the app is not found in the tenant: never consented there) or "AADSTS7000229"
// (no service principal); empty lifts the refusal.
func (f *Fleet) Refuse(tenantID, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if code == "" {
		delete(f.refused, strings.ToLower(tenantID))
		return
	}
	f.refused[strings.ToLower(tenantID)] = code
}

// GraphURL is the Graph base URL every tenant shares.
func (f *Fleet) GraphURL() string { return f.root + "/v1.0" }

// AuthorityURL is the authority host, the value for AZURE_AUTHORITY_HOST.
func (f *Fleet) AuthorityURL() string { return f.auth.URL }

// Client is an HTTP client that trusts the authority's certificate.
func (f *Fleet) Client() *http.Client { return f.auth.Client() }

// TLSConfig trusts the authority's certificate, for a transport of one's own.
func (f *Fleet) TLSConfig() *tls.Config {
	return f.auth.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
}

// Certificate is the authority's TLS certificate, for a client in another process to trust.
func (f *Fleet) Certificate() *x509.Certificate { return f.auth.Certificate() }

// ClientID and ClientSecret are the app credentials the authority accepts.
func (f *Fleet) ClientID() string     { return f.opts.ClientID }
func (f *Fleet) ClientSecret() string { return f.opts.ClientSecret }

// Tenant returns a tenant's Server.
func (f *Fleet) Tenant(id string) (*Server, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s, ok := f.tenants[strings.ToLower(id)]
	return s, ok
}

// MaxInFlight is the most Graph requests of tenant id that were ever being answered at once, and
// Requests how many it answered ($batch counts once).
func (f *Fleet) MaxInFlight(id string) int {
	fl := f.inflight(id)
	if fl == nil {
		return 0
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.max
}

// Requests is the number of Graph round trips tenant id made ($batch counts once).
func (f *Fleet) Requests(id string) int {
	fl := f.inflight(id)
	if fl == nil {
		return 0
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.total
}

func (f *Fleet) inflight(id string) *inFlight {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.flight[strings.ToLower(id)]
}

// Close stops both listeners.
func (f *Fleet) Close() {
	_ = f.graph.Close()
	f.auth.Close()
}

// serveGraph routes by the tid claim of the bearer token; the tenant's Server then verifies the
// token as its own (a token of another tenant fails its signature check, as it would in Graph).
func (f *Fleet) serveGraph(w http.ResponseWriter, r *http.Request) {
	tid := unverifiedTID(r.Header.Get("Authorization"))
	f.mu.RLock()
	s, ok := f.tenants[tid]
	fl := f.flight[tid]
	f.mu.RUnlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm=""`)
		writeError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
		return
	}
	fl.mu.Lock()
	fl.now++
	fl.total++
	fl.max = max(fl.max, fl.now)
	fl.mu.Unlock()
	defer func() {
		fl.mu.Lock()
		fl.now--
		fl.mu.Unlock()
	}()
	if f.opts.Latency > 0 && !sleep(r.Context(), f.opts.Latency) {
		return
	}
	s.serveHTTP(w, r)
}

// unverifiedTID reads the tid claim of a JWT without checking it; the tenant's Server checks it.
func unverifiedTID(authz string) string {
	tok, _ := strings.CutPrefix(authz, "Bearer ")
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		TID string `json:"tid"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return ""
	}
	return strings.ToLower(c.TID)
}

// serveAuthority answers OpenID discovery and the client-credentials grant per tenant.
func (f *Fleet) serveAuthority(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	tid := strings.ToLower(parts[0])
	f.mu.RLock()
	s, known := f.tenants[tid]
	refused := f.refused[tid]
	f.mu.RUnlock()
	oauthError := func(status int, code, desc string) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": code, "error_description": desc, "error_codes": []int{}})
	}
	switch {
	case strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration"):
		base := "https://" + r.Host + "/" + parts[0]
		_ = json.NewEncoder(w).Encode(map[string]any{"token_endpoint": base + "/oauth2/v2.0/token",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize", "issuer": base + "/v2.0"})
	case strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token"):
		if r.Method != http.MethodPost || r.ParseForm() != nil {
			oauthError(http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the grant_type parameter.")
			return
		}
		form := r.PostForm
		switch {
		case !known:
			oauthError(http.StatusBadRequest, "invalid_request", "AADSTS90002: Tenant '"+tid+"' not found.")
		case refused != "":
			oauthError(http.StatusBadRequest, "unauthorized_client", refused+": Application with identifier '"+f.opts.ClientID+
				"' was not found in the directory '"+tid+"'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.")
		case form.Get("grant_type") != "client_credentials" || form.Get("client_id") != f.opts.ClientID:
			oauthError(http.StatusBadRequest, "unauthorized_client", "AADSTS700016: Application with identifier '"+form.Get("client_id")+"' was not found.")
		case form.Get("client_secret") != f.opts.ClientSecret:
			oauthError(http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		default:
			resource := strings.TrimSuffix(form.Get("scope"), "/.default")
			_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600,
				"access_token": s.issue(resource, f.opts.ClientID)})
		}
	default:
		http.NotFound(w, r)
	}
}
