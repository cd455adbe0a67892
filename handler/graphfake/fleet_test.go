package graphfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	fleetA = "aaaaaaaa-1111-4111-8111-111111111111"
	fleetB = "bbbbbbbb-2222-4222-8222-222222222222"
)

func fleetToken(t *testing.T, f *Fleet, tenant, secret string) (int, map[string]any) {
	t.Helper()
	c := f.Client()
	disc, err := c.Get(f.AuthorityURL() + "/" + tenant + "/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	_ = json.NewDecoder(disc.Body).Decode(&d)
	disc.Body.Close()
	res, err := c.PostForm(d.TokenEndpoint, url.Values{"grant_type": {"client_credentials"}, "client_id": {f.ClientID()},
		"client_secret": {secret}, "scope": {"https://graph.microsoft.com/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body
}

// One Graph root serves each tenant its own policies, chosen by the token's tenant; the authority
// issues per tenant and refuses an unconsented one with an AADSTS code; the latency and the
// requests in flight are per tenant.
func TestFleetRoutesByTokenTenant(t *testing.T) {
	f, err := NewFleet(FleetOptions{Latency: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, id := range []string{fleetA, fleetB} {
		sc := Scenario{Policies: []json.RawMessage{json.RawMessage(`{"id":"p-` + id[:8] + `","displayName":"of ` + id[:8] + `","state":"enabled"}`)}}
		if _, err := f.Add(id, sc, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	tokens := map[string]string{}
	for _, id := range []string{fleetA, fleetB} {
		status, body := fleetToken(t, f, id, f.ClientSecret())
		if status != http.StatusOK {
			t.Fatalf("%s: token status %d %v", id, status, body)
		}
		tokens[id] = body["access_token"].(string)
	}
	if status, body := fleetToken(t, f, fleetA, "wrong"); status != http.StatusUnauthorized || !strings.Contains(body["error_description"].(string), "AADSTS7000215") {
		t.Errorf("wrong secret: got %d %v, want 401 AADSTS7000215", status, body)
	}
	f.Refuse(fleetB, "AADSTS700016")
	if status, body := fleetToken(t, f, fleetB, f.ClientSecret()); status != http.StatusBadRequest || !strings.HasPrefix(body["error_description"].(string), "AADSTS700016") {
		t.Errorf("unconsented: got %d %v, want 400 AADSTS700016", status, body)
	}
	get := func(tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, f.GraphURL()+"/identity/conditionalAccess/policies", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			status, body := get(tokens[fleetA])
			if status != http.StatusOK || !strings.Contains(body, "p-aaaaaaaa") || strings.Contains(body, "p-bbbbbbbb") {
				t.Errorf("tenant A: got %d %s, want its own policy only", status, body)
			}
			if d := time.Since(start); d < 20*time.Millisecond {
				t.Errorf("answered in %v, under the added latency", d)
			}
		}()
	}
	wg.Wait()
	if status, body := get(tokens[fleetB]); status != http.StatusOK || !strings.Contains(body, "p-bbbbbbbb") {
		t.Errorf("tenant B (token issued before the refusal): got %d %s", status, body)
	}
	if got := f.MaxInFlight(fleetA); got < 1 || got > 3 {
		t.Errorf("tenant A's max in flight: got %d, want 1..3", got)
	}
	if got := f.Requests(fleetA); got != 3 {
		t.Errorf("tenant A's requests: got %d, want 3", got)
	}
	// A token naming a tenant the fleet does not hold, or forged, is a 401.
	forged := strings.Split(tokens[fleetA], ".")
	forged[1] = b64([]byte(`{"tid":"` + fleetB + `","exp":9999999999}`))
	if status, _ := get(strings.Join(forged, ".")); status != http.StatusUnauthorized {
		t.Errorf("a token of A relabelled as B: got %d, want 401", status)
	}
	if status, _ := get("nope"); status != http.StatusUnauthorized {
		t.Errorf("no token: got %d, want 401", status)
	}
}
