package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/caguard/caguard/handler/config"
)

// fixedToken is a credential that is not a managed identity, like a client secret's.
type fixedToken struct{}

func (fixedToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "graph", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// The storage identity follows the Functions host's rule, so that caguard and the host use the same
// identity for AzureWebJobsStorage: __clientId names a user-assigned identity; without it, in Azure,
// the system-assigned one. The managed identity endpoint is the App Service one the platform gives
// the host and its child processes (IDENTITY_ENDPOINT, IDENTITY_HEADER), served here by a fake.
func TestStorageIdentityFollowsTheHost(t *testing.T) {
	var (
		mu   sync.Mutex
		asks []string
	)
	msi := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asks = append(asks, r.URL.Query().Get("client_id"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"storage","expires_on":"%d","resource":"https://storage.azure.com","token_type":"Bearer"}`, time.Now().Add(time.Hour).Unix())
	}))
	t.Cleanup(msi.Close)
	const uami = "5d3f8b8e-0000-4000-8000-00000000abcd"
	inAzure := func(k string) string {
		if k == "IDENTITY_ENDPOINT" {
			return msi.URL
		}
		return ""
	}
	tests := []struct {
		name       string
		clientID   string
		getenv     func(string) string
		wantMSI    bool
		wantClient string
		wantWhich  string
	}{
		{"a named user-assigned identity", uami, inAzure, true, uami, "user-assigned"},
		{"no __clientId in Azure: the system-assigned identity", "", inAzure, true, "", "system-assigned"},
		{"no __clientId outside Azure: the Graph credential", "", func(string) string { return "" }, false, "", "Graph credential"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("IDENTITY_ENDPOINT", msi.URL+"/msi/token")
			t.Setenv("IDENTITY_HEADER", "header")
			mu.Lock()
			asks = nil
			mu.Unlock()
			st := config.Storage{Setting: config.SettingStorageAccount, BlobServiceURL: "https://acct.blob.core.windows.net/", ClientID: tt.clientID}
			cred, which, err := storageCredential(st, config.Config{ClientSecret: "secret"}, fixedToken{}, tt.getenv)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(which, tt.wantWhich) {
				t.Errorf("identity %q, want %q", which, tt.wantWhich)
			}
			tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !tt.wantMSI {
				if tok.Token != "graph" || len(asks) != 0 {
					t.Errorf("token %q from %d identity requests, want the Graph credential's", tok.Token, len(asks))
				}
				return
			}
			if len(asks) != 1 || asks[0] != tt.wantClient {
				t.Errorf("identity endpoint asked with client_id %q, want %q", asks, tt.wantClient)
			}
		})
	}
}
