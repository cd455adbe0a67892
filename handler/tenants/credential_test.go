package tenants

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// managedIdentity stands in for the Function's identity: it records the scopes it was asked for.
type managedIdentity struct {
	mu     sync.Mutex
	scopes []string
}

func (m *managedIdentity) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.scopes = append(m.scopes, o.Scopes...)
	return azcore.AccessToken{Token: "mi-assertion", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// entra is a local authority shaped like Entra's v2.0 endpoints (OpenID discovery, then the token
// endpoint), over TLS as azidentity insists. It issues a token per tenant to the client that proves
// itself with the managed identity's assertion (client credentials with a JWT-bearer client
// assertion, RFC 7523 as the Microsoft identity platform documents) or with the right secret.
func entra(t *testing.T) (*httptest.Server, *sync.Map) {
	t.Helper()
	var issued sync.Map // tenant -> number of tokens
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		tenant := parts[0]
		switch {
		case strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration"):
			base := "https://" + r.Host + "/" + tenant
			_ = json.NewEncoder(w).Encode(map[string]any{"token_endpoint": base + "/oauth2/v2.0/token",
				"authorization_endpoint": base + "/oauth2/v2.0/authorize", "issuer": base + "/v2.0"})
		case strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token"):
			_ = r.ParseForm()
			f := r.PostForm
			okAssertion := f.Get("client_assertion") == "mi-assertion" && f.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
			okSecret := f.Get("client_secret") == "s3cret"
			if f.Get("client_id") != "app-1" || f.Get("grant_type") != "client_credentials" || (!okAssertion && !okSecret) {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"AADSTS700016"}`))
				return
			}
			n, _ := issued.LoadOrStore(tenant, 0)
			issued.Store(tenant, n.(int)+1)
			_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3600, "access_token": "token-for-" + tenant})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &issued
}

func TestCredentialPerTenantThroughTheFederatedManagedIdentity(t *testing.T) {
	srv, issued := entra(t)
	mi := &managedIdentity{}
	ctx := context.Background()
	for _, tenant := range []string{t1, t2} {
		cred, err := Credential(tenant, CredentialOptions{ClientID: "app-1", ManagedIdentity: mi, AuthorityHost: srv.URL, Transport: srv.Client()})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second comes from the credential's own cache
			tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}})
			if err != nil {
				t.Fatalf("%s: %v", tenant, err)
			}
			if tok.Token != "token-for-"+tenant {
				t.Errorf("%s: got %q, a token of another tenant", tenant, tok.Token)
			}
		}
		if n, _ := issued.Load(tenant); n != 1 {
			t.Errorf("%s: %v tokens issued, want 1 (cached after)", tenant, n)
		}
	}
	for _, s := range mi.scopes {
		if s != TokenExchangeScope {
			t.Errorf("the managed identity was asked for %q; its token may only be the exchange assertion", s)
		}
	}
	if len(mi.scopes) == 0 {
		t.Error("the managed identity was never asked for the assertion")
	}
}

func TestCredentialWithASecretLocally(t *testing.T) {
	srv, _ := entra(t)
	cred, err := Credential(t1, CredentialOptions{ClientID: "app-1", ClientSecret: "s3cret", AuthorityHost: srv.URL, Transport: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}}); err != nil || tok.Token != "token-for-"+t1 {
		t.Fatalf("%q %v", tok.Token, err)
	}
	bad, _ := Credential(t2, CredentialOptions{ClientID: "app-1", ClientSecret: "wrong", AuthorityHost: srv.URL, Transport: srv.Client()})
	if _, err := bad.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}}); err == nil {
		t.Error("a wrong secret got a token")
	} else if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error repeats the secret: %v", err)
	}
}

func TestCredentialRefusesWhatCannotWork(t *testing.T) {
	mi := &managedIdentity{}
	for _, tt := range []struct {
		name   string
		tenant string
		o      CredentialOptions
		want   string
	}{
		{"tenant not a GUID", "contoso.onmicrosoft.com", CredentialOptions{ClientID: "app-1", ManagedIdentity: mi}, "not a GUID"},
		{"no client id", t1, CredentialOptions{ManagedIdentity: mi}, "client id"},
		{"both", t1, CredentialOptions{ClientID: "app-1", ManagedIdentity: mi, ClientSecret: "s"}, "not both"},
		{"neither", t1, CredentialOptions{ClientID: "app-1"}, "no way to sign in"},
		{"http authority", t1, CredentialOptions{ClientID: "app-1", ClientSecret: "s", AuthorityHost: "http://login.example"}, "https"},
	} {
		if _, err := Credential(tt.tenant, tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}
