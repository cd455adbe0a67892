package fleet

import (
	"context"
	"errors"
	"regexp"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/caguard/caguard/handler/graph"
	"github.com/caguard/caguard/handler/reconcile"
)

// aadstsWords say what Entra's refusals of a token mean for a tenant of the fleet ("Microsoft Entra
// authentication and authorization error codes"). An unconsented tenant is the usual one: the app
// has no service principal there until an administrator consents.
var aadstsWords = map[string]string{
	"AADSTS700016":  "the app is not found in this tenant: it was never consented there (run scripts/onboard-tenant.sh in the tenant)",
	"AADSTS7000229": "the app has no service principal in this tenant: it was never consented there (run scripts/onboard-tenant.sh in the tenant)",
	"AADSTS65001":   "the app's permissions are not consented in this tenant (run scripts/onboard-tenant.sh in the tenant)",
	"AADSTS90002":   "the tenant does not exist (check its id in the registry)",
	"AADSTS7000215": "the app's client secret is wrong",
	"AADSTS700024":  "the managed identity's assertion is not valid for the app (check the app's federated credential)",
	"AADSTS70021":   "no federated credential of the app matches the managed identity",
	"AADSTS7000112": "the app is disabled in this tenant",
	"AADSTS53003":   "a Conditional Access policy of the tenant blocks caguard's sign-in",
}

var aadstsRE = regexp.MustCompile(`AADSTS[0-9]{5,8}`)

// tokenCause is a tenant's credential that remembers the AADSTS code of its last refusal: the
// Graph adapter keeps only a clipped line of azidentity's message, which can end before the code.
type tokenCause struct {
	azcore.TokenCredential
	mu   sync.Mutex
	code string
}

func (c *tokenCause) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.TokenCredential.GetToken(ctx, o)
	code := ""
	if err != nil {
		code = aadstsRE.FindString(err.Error())
	}
	c.mu.Lock()
	c.code = code
	c.mu.Unlock()
	return tok, err
}

func (c *tokenCause) last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code
}

// withTokenCause names Entra's refusal when a run failed because the tenant would not issue a
// token: the AADSTS code (code, from tokenCause) and what it means, which the generic words of a
// failed sign-in leave out. Any other error is returned as it is.
func withTokenCause(err error, code string) error {
	var afe *azidentity.AuthenticationFailedError
	var ge *graph.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &afe):
		if c := aadstsRE.FindString(afe.Error()); c != "" {
			code = c
		}
	case errors.As(err, &ge) && ge.Code == "AuthenticationFailed":
		if c := aadstsRE.FindString(ge.Message); c != "" {
			code = c
		}
	default:
		return err
	}
	words := "Entra refused caguard's app a token for this tenant"
	if code != "" {
		words += " (" + code + ")"
		if w, ok := aadstsWords[code]; ok {
			words += ": " + w
		}
	}
	return &reconcile.Failure{Words: words, Err: err}
}
