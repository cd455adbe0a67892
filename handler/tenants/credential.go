package tenants

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// TokenExchangeScope is the audience Entra expects of a managed identity's token used as a federated
// credential of an app registration ("Configure an application to trust a managed identity":
// api://AzureADTokenExchange in the public cloud).
const TokenExchangeScope = "api://AzureADTokenExchange/.default"

// CredentialOptions say how caguard signs in to each customer tenant as its one multi-tenant app
// registration, consented in every tenant.
type CredentialOptions struct {
	// ClientID is the multi-tenant app registration's application id (not the managed identity's).
	ClientID string
	// ManagedIdentity, in Azure, is the Function's identity: its token for TokenExchangeScope is the
	// app's client assertion, through a federated identity credential on the app, so that no client
	// secret exists anywhere.
	ManagedIdentity azcore.TokenCredential
	// ClientSecret, for local runs only, replaces the managed identity.
	ClientSecret string
	// AuthorityHost is the Entra authority (AZURE_AUTHORITY_HOST); empty means the public cloud.
	AuthorityHost string
	// Transport carries the token requests (tests).
	Transport policy.Transporter
}

// Credential returns the credential of the app in tenantID. Each tenant gets its own credential, so
// each has its own token cache and a tenant that refuses (not consented, app disabled) fails alone.
func Credential(tenantID string, o CredentialOptions) (azcore.TokenCredential, error) {
	tenantID = strings.TrimSpace(tenantID)
	if !guidRE.MatchString(tenantID) {
		return nil, fmt.Errorf("tenant id %q is not a GUID", clip(tenantID))
	}
	if strings.TrimSpace(o.ClientID) == "" {
		return nil, errors.New("the multi-tenant app's client id is not set")
	}
	copts := azcore.ClientOptions{Transport: o.Transport}
	// An authority the operator names is trusted as named: MSAL's instance discovery asks the public
	// cloud about it, which a private or disconnected authority cannot answer.
	disableDiscovery := o.AuthorityHost != ""
	if o.AuthorityHost != "" {
		u, err := url.Parse(o.AuthorityHost)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("authority host %q must be an https URL", o.AuthorityHost)
		}
		copts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: strings.TrimRight(o.AuthorityHost, "/") + "/"}
	}
	switch {
	case o.ManagedIdentity != nil && o.ClientSecret != "":
		return nil, errors.New("set either a managed identity (in Azure) or a client secret (locally), not both")
	case o.ManagedIdentity != nil:
		mi := o.ManagedIdentity
		assertion := func(ctx context.Context) (string, error) {
			tok, err := mi.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{TokenExchangeScope}})
			if err != nil {
				return "", fmt.Errorf("managed identity token for the federated credential: %w", err)
			}
			return tok.Token, nil
		}
		return azidentity.NewClientAssertionCredential(tenantID, o.ClientID, assertion, &azidentity.ClientAssertionCredentialOptions{ClientOptions: copts, DisableInstanceDiscovery: disableDiscovery})
	case o.ClientSecret != "":
		return azidentity.NewClientSecretCredential(tenantID, o.ClientID, o.ClientSecret, &azidentity.ClientSecretCredentialOptions{ClientOptions: copts, DisableInstanceDiscovery: disableDiscovery})
	}
	return nil, errors.New("no way to sign in: a managed identity with a federated credential (in Azure) or a client secret (locally)")
}
