package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.uber.org/zap/zaptest"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/graphfake"
)

const (
	policiesPath     = "/v1.0/identity/conditionalAccess/policies"
	breakGlassGroup  = "bbbbbbbb-0000-0000-0000-000000000001"
	adminsGroup      = "bbbbbbbb-0000-0000-0000-000000000002"
	managedPolicyID  = "aaaaaaaa-0000-0000-0000-000000000001"
	strengthPolicyID = "aaaaaaaa-0000-0000-0000-000000000005"
)

type env struct {
	srv *graphfake.Server
	c   *Client
}

// freshPorts remembers every emulator address this test process has used; see startFresh.
var freshPorts = struct {
	sync.Mutex
	used map[string]bool
}{used: map[string]bool{}}

// startFresh starts an emulator on a port no earlier emulator of this process listened on. MSAL caches
// managed-identity tokens process-wide, keyed by resource, and the resource is the Graph host and
// port: an emulator on a reused port would be handed the token an earlier one signed, which it
// rejects (401, invalid signature). A port the system hands out again is kept open until the test
// ends, so the next try gets another.
func startFresh(t *testing.T, fo graphfake.Options, seed func(*graphfake.Server)) *graphfake.Server {
	t.Helper()
	for range 50 {
		srv, err := graphfake.New(fo)
		if err != nil {
			t.Fatal(err)
		}
		seed(srv)
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		freshPorts.Lock()
		used := freshPorts.used[srv.URL()]
		freshPorts.used[srv.URL()] = true
		freshPorts.Unlock()
		if !used {
			return srv
		}
	}
	t.Fatal("no unused loopback port after 50 tries")
	return nil
}

// setup starts an emulator seeded with a scenario from scripts/scenarios and a Client that gets its
// tokens from the emulator's managed-identity endpoint, as it would on App Service. Each emulator
// listens on a port of its own (startFresh), so each test asks for its own token resource and MSAL's
// process-wide managed-identity cache cannot leak a token between tests.
func setup(t *testing.T, fo graphfake.Options, scenario string, mod func(*Options)) env {
	t.Helper()
	srv := startFresh(t, fo, func(srv *graphfake.Server) {
		if scenario == "" {
			return
		}
		if err := srv.LoadScenario(filepath.Join("..", "..", "scripts", "scenarios", scenario)); err != nil {
			t.Fatal(err)
		}
	})
	t.Setenv("IDENTITY_ENDPOINT", srv.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", srv.IdentityHeader())
	for _, k := range []string{"IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"} {
		t.Setenv(k, "")
	}
	o := Options{
		BaseURL:        srv.GraphURL(),
		RetryBudget:    3 * time.Second,
		MaxRetries:     5,
		RetryBaseDelay: 20 * time.Millisecond,
		AttemptTimeout: 5 * time.Second,
		Logger:         zaptest.NewLogger(t),
	}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return env{srv: srv, c: c}
}

// asError insists on an *Error, reachable through wrapping.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("got no error")
	}
	var ge *Error
	if !errors.As(fmt.Errorf("wrapped: %w", err), &ge) {
		t.Fatalf("error %T %q is not a *graph.Error", err, err)
	}
	t.Logf("error: %v", ge) // Error must never panic
	return ge
}

func minimalPolicy() capolicy.Policy {
	return capolicy.Policy{
		DisplayName: "x",
		State:       capolicy.StateReportOnly,
		Conditions: capolicy.Conditions{
			Users:        &capolicy.Users{IncludeUsers: []string{"All"}},
			Applications: &capolicy.Applications{IncludeApplications: []string{capolicy.AzureManagementAppID}},
		},
		GrantControls: &capolicy.GrantControls{Operator: "OR", BuiltInControls: []string{"mfa"}},
	}
}

func ids(ps []capolicy.Policy) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func TestListPoliciesFollowsEveryPageAndMapsTheModel(t *testing.T) {
	e := setup(t, graphfake.Options{PageSize: 2}, "drifted.json", nil)
	ps, err := e.c.ListPolicies(context.Background())
	if err != nil {
		t.Fatalf("ListPolicies: %v", err)
	}
	want := []string{managedPolicyID, "aaaaaaaa-0000-0000-0000-000000000002", "aaaaaaaa-0000-0000-0000-000000000003",
		"aaaaaaaa-0000-0000-0000-000000000004", strengthPolicyID}
	if got := ids(ps); !slices.Equal(got, want) {
		t.Fatalf("ids: got %v, want %v", got, want)
	}
	if n := len(e.srv.CallsTo("GET " + policiesPath)); n != 3 {
		t.Errorf("pages fetched: got %d, want 3", n)
	}

	managed, guests, msManaged, strength := ps[0], ps[2], ps[3], ps[4]
	t.Run("states map to the domain", func(t *testing.T) {
		got := []capolicy.State{managed.State, guests.State, strength.State}
		want := []capolicy.State{capolicy.StateEnabled, capolicy.StateReportOnly, capolicy.StateDisabled}
		if !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("users and applications are carried", func(t *testing.T) {
		u := managed.Conditions.Users
		if u == nil || !slices.Equal(u.IncludeUsers, []string{"All"}) || !slices.Equal(u.ExcludeGroups, []string{breakGlassGroup}) ||
			!slices.Equal(u.ExcludeUsers, []string{"33333333-3333-3333-3333-333333333333"}) {
			t.Errorf("users: %+v", u)
		}
		a := managed.Conditions.Applications
		if a == nil || !slices.Equal(a.IncludeApplications, []string{capolicy.AzureManagementAppID}) {
			t.Errorf("applications: %+v", a)
		}
		if !slices.Equal(managed.Conditions.ClientAppTypes, []string{"all"}) {
			t.Errorf("clientAppTypes: %v", managed.Conditions.ClientAppTypes)
		}
		if g := managed.GrantControls; g == nil || g.Operator != "OR" || !slices.Equal(g.BuiltInControls, []string{"compliantDevice"}) {
			t.Errorf("grant: %+v", g)
		}
	})
	t.Run("comma-separated guest types become a list", func(t *testing.T) {
		g := guests.Conditions.Users.IncludeGuestsOrExternalUsers
		if g == nil || !slices.Equal(g.GuestOrExternalUserTypes, []string{"b2bCollaborationGuest", "b2bCollaborationMember", "internalGuest"}) {
			t.Fatalf("guests: %+v", g)
		}
		if g.ExternalTenants == nil || g.ExternalTenants.MembershipKind != "all" {
			t.Errorf("external tenants: %+v", g.ExternalTenants)
		}
	})
	t.Run("session controls are carried", func(t *testing.T) {
		s := guests.SessionControls
		if s == nil || s.SignInFrequency == nil || s.SignInFrequency.Value != 12 || s.SignInFrequency.Type != "hours" ||
			s.PersistentBrowser == nil || s.PersistentBrowser.Mode != "never" || !s.PersistentBrowser.IsEnabled {
			t.Errorf("session: %+v", s)
		}
	})
	t.Run("Microsoft-managed policies are recognised and keep their templateId", func(t *testing.T) {
		if !msManaged.MicrosoftManaged() || msManaged.TemplateID != "eeeeeeee-0000-0000-0000-000000000001" {
			t.Errorf("got managed %v, templateId %q: %+v", msManaged.MicrosoftManaged(), msManaged.TemplateID, msManaged)
		}
	})
	t.Run("the authentication strength is expanded", func(t *testing.T) {
		s := strength.GrantControls.AuthenticationStrength
		if s == nil || s.ID != graphfake.StrengthPhishingResistant || s.RequirementsSatisfied != "mfa" || s.PolicyType != "builtIn" || len(s.AllowedCombinations) != 3 {
			t.Errorf("strength: %+v", s)
		}
		p := strength.Conditions.Platforms
		if p == nil || !slices.Equal(p.IncludePlatforms, []string{"all"}) || !slices.Equal(p.ExcludePlatforms, []string{"linux"}) {
			t.Errorf("platforms: %+v", p)
		}
	})
}

// TestReadsFailClosed reads, through the real SDK adapter and the emulator, policies holding what this
// version does not know. The SDK's models would read an unknown client app type as "all", drop an
// excluded guest selection whose type they do not know, and lose an unknown property: each policy
// would then pass. Read as raw JSON, each fails the rule it touches, saying why.
func TestReadsFailClosed(t *testing.T) {
	e := setup(t, graphfake.Options{PageSize: 2}, "unrecognised.json", nil)
	ctx := context.Background()
	ps, err := e.c.ListPolicies(ctx)
	if err != nil {
		t.Fatalf("ListPolicies: %v", err)
	}
	if n := len(e.srv.CallsTo("GET " + policiesPath)); n != 3 {
		t.Errorf("pages fetched: got %d, want 3", n)
	}
	want := []string{"cccccccc-0000-0000-0000-000000000001", "cccccccc-0000-0000-0000-000000000002", "cccccccc-0000-0000-0000-000000000003",
		"cccccccc-0000-0000-0000-000000000004", "cccccccc-0000-0000-0000-000000000005", "cccccccc-0000-0000-0000-000000000006"}
	if got := ids(ps); !slices.Equal(got, want) {
		t.Fatalf("ids: got %v, want %v (every page, in order)", got, want)
	}
	cfg := capolicy.Config{BreakGlassGroupIDs: []string{breakGlassGroup}}
	members := map[string][]string{breakGlassGroup: {"11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"}}
	cfg.BreakGlassUserIDs = members[breakGlassGroup]
	rep := capolicy.Evaluate(capolicy.Tenant{Policies: ps, GroupMembers: members}, cfg)

	tests := []struct {
		name    string
		managed bool
		codes   []string
		says    string // a substring of one reason
	}{
		{"a Microsoft-managed policy is recognised by its name", true, []string{capolicy.CodeStateReportOnly}, "report-only"},
		{"a policy an administrator created from a template is the administrator's", false, nil, ""},
		{"an unknown client app type is not all", false, []string{capolicy.CodeClientAppTypesNarrowed, capolicy.CodeUnrecognisedValue}, "futureClientType (not recognised)"},
		{"an unknown excluded guest type still excludes guests", false, []string{capolicy.CodeExcludesGuests, capolicy.CodeUnrecognisedValue}, "futureGuestKind (not recognised)"},
		{"an unknown built-in control is an alternative to MFA", false, []string{capolicy.CodeGrantORWithNonMFAAlternative, capolicy.CodeUnrecognisedValue}, "futureControl (not recognised)"},
		{"an unknown user condition is not dropped", false, []string{capolicy.CodeUnrecognisedProperty}, "conditions.users.excludeFutureIdentities"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rep.Policies[i]
			if r.MicrosoftManaged != tt.managed {
				t.Errorf("microsoftManaged: got %v, want %v", r.MicrosoftManaged, tt.managed)
			}
			var codes []string
			for _, reason := range r.Reasons {
				codes = append(codes, reason.Code)
			}
			if !slices.Equal(codes, tt.codes) {
				t.Fatalf("codes: got %v, want %v (%+v)", codes, tt.codes, r.Reasons)
			}
			if tt.says != "" && !slices.ContainsFunc(r.Reasons, func(x capolicy.Reason) bool { return strings.Contains(x.Message, tt.says) }) {
				t.Errorf("reasons: got %+v, want one to say %q", r.Reasons, tt.says)
			}
		})
	}
	t.Run("a single read fails closed too", func(t *testing.T) {
		p, err := e.c.GetPolicy(ctx, "cccccccc-0000-0000-0000-000000000003")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p.Conditions.ClientAppTypes, []string{"futureClientType"}) {
			t.Errorf("clientAppTypes: got %v, want [futureClientType]", p.Conditions.ClientAppTypes)
		}
	})
}

func TestListPoliciesCompletesStrengthsGivenByIDOnly(t *testing.T) {
	e := setup(t, graphfake.Options{PageSize: 2, CollapseAuthenticationStrength: true}, "drifted.json", nil)
	ps, err := e.c.ListPolicies(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := ps[4].GrantControls.AuthenticationStrength
	if s == nil || s.RequirementsSatisfied != "mfa" || s.DisplayName != "Phishing-resistant MFA" {
		t.Errorf("strength not completed: %+v", s)
	}
	if n := len(e.srv.CallsTo("GET /v1.0/policies/authenticationStrengthPolicies")); n != 2 {
		t.Errorf("strength pages fetched: got %d, want 2", n)
	}
}

func TestListPoliciesFailsWhenALaterPageFails(t *testing.T) {
	tests := []struct {
		name      string
		fault     graphfake.Fault
		status    int
		retriable bool
	}{
		{"a server error on page 2", graphfake.Fault{Status: 500}, 500, true},
		{"a forbidden page 3", graphfake.Fault{Status: 403, Skip: 1}, 403, false},
		{"a throttled page 2 beyond the retries", graphfake.Fault{Status: 429, RetryAfter: "0"}, 429, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, graphfake.Options{PageSize: 2}, "drifted.json", func(o *Options) { o.MaxRetries = 2 })
			f := tt.fault
			f.Match = "GET " + policiesPath
			f.Skip++ // the first page always succeeds
			e.srv.Inject(f)
			ps, err := e.c.ListPolicies(context.Background())
			if ps != nil {
				t.Errorf("got a partial list of %d policies, want none", len(ps))
			}
			ge := asError(t, err)
			if ge.Status != tt.status || ge.Retriable() != tt.retriable {
				t.Errorf("got status %d retriable %v, want %d %v (%v)", ge.Status, ge.Retriable(), tt.status, tt.retriable, ge)
			}
		})
	}
}

func TestGetPolicy(t *testing.T) {
	e := setup(t, graphfake.Options{}, "compliant.json", nil)
	p, err := e.c.GetPolicy(context.Background(), managedPolicyID)
	if err != nil {
		t.Fatal(err)
	}
	if p.DisplayName != "caguard: require MFA for Azure management" || p.State != capolicy.StateEnabled ||
		!slices.Equal(p.GrantControls.BuiltInControls, []string{"mfa"}) {
		t.Errorf("got %+v", p)
	}

	t.Run("an unknown id is a permanent 404", func(t *testing.T) {
		_, err := e.c.GetPolicy(context.Background(), "00000000-0000-0000-0000-00000000dead")
		ge := asError(t, err)
		if ge.Status != 404 || !ge.NotFound() || ge.Retriable() || ge.Code != "ResourceNotFound" {
			t.Errorf("got %+v", ge)
		}
	})
}

func TestCreatePolicySendsStateExplicitly(t *testing.T) {
	// drifted.json holds the break-glass group the policy excludes: Graph refuses unknown ids.
	e := setup(t, graphfake.Options{}, "drifted.json", nil)
	off := false
	want := capolicy.Policy{
		DisplayName: "caguard: require MFA for Azure management",
		State:       capolicy.StateReportOnly,
		Conditions: capolicy.Conditions{
			Users: &capolicy.Users{
				IncludeUsers:  []string{"All"},
				ExcludeGroups: []string{breakGlassGroup},
				ExcludeGuestsOrExternalUsers: &capolicy.GuestsOrExternalUsers{
					GuestOrExternalUserTypes: []string{"internalGuest", "serviceProvider"},
					ExternalTenants:          &capolicy.ExternalTenants{MembershipKind: "enumerated", Members: []string{"tenant-x"}},
				},
			},
			Applications:        &capolicy.Applications{IncludeApplications: []string{capolicy.AzureManagementAppID}},
			ClientAppTypes:      []string{"all"},
			InsiderRiskLevels:   []string{"minor", "elevated"},
			AuthenticationFlows: &capolicy.AuthenticationFlows{TransferMethods: []string{"deviceCodeFlow", "authenticationTransfer"}},
		},
		GrantControls: &capolicy.GrantControls{
			Operator:               "OR",
			BuiltInControls:        []string{"mfa"},
			AuthenticationStrength: &capolicy.AuthenticationStrength{ID: graphfake.StrengthMFA, DisplayName: "ignored"},
		},
		SessionControls: &capolicy.SessionControls{DisableResilienceDefaults: &off,
			SignInFrequency: &capolicy.SignInFrequency{IsEnabled: true, Value: 4, Type: "hours", FrequencyInterval: "timeBased"}},
	}
	got, err := e.c.CreatePolicy(context.Background(), want)
	if err != nil {
		t.Fatalf("CreatePolicy: %v", err)
	}
	if got.ID == "" || got.CreatedDateTime == "" || got.State != capolicy.StateReportOnly {
		t.Errorf("created: %+v", got)
	}
	if s := got.GrantControls.AuthenticationStrength; s == nil || s.RequirementsSatisfied != "mfa" {
		t.Errorf("created strength: %+v", s)
	}

	posts := e.srv.CallsTo("POST " + policiesPath)
	if len(posts) != 1 {
		t.Fatalf("POSTs: got %d, want 1", len(posts))
	}
	var body map[string]any
	if err := json.Unmarshal(posts[0].Body, &body); err != nil {
		t.Fatalf("POST body: %v: %s", err, posts[0].Body)
	}
	if body["state"] != "enabledForReportingButNotEnforced" {
		t.Errorf("state sent: %v", body["state"])
	}
	gc := body["grantControls"].(map[string]any)
	if s := gc["authenticationStrength"].(map[string]any); len(s) != 1 || s["id"] != graphfake.StrengthMFA {
		t.Errorf("strength sent: %v, want only its id", s)
	}
	users := body["conditions"].(map[string]any)["users"].(map[string]any)
	guests := users["excludeGuestsOrExternalUsers"].(map[string]any)
	if guests["guestOrExternalUserTypes"] != "internalGuest,serviceProvider" {
		t.Errorf("guest types sent: %v", guests["guestOrExternalUserTypes"])
	}
	if et := guests["externalTenants"].(map[string]any); et["@odata.type"] != "#microsoft.graph.conditionalAccessEnumeratedExternalTenants" {
		t.Errorf("external tenants sent: %v", et)
	}
	cond := body["conditions"].(map[string]any)
	if cond["insiderRiskLevels"] != "minor,elevated" || cond["authenticationFlows"].(map[string]any)["transferMethods"] != "deviceCodeFlow,authenticationTransfer" {
		t.Errorf("flag enums sent: %v / %v", cond["insiderRiskLevels"], cond["authenticationFlows"])
	}

	back, err := e.c.GetPolicy(context.Background(), got.ID)
	if err != nil {
		t.Fatal(err)
	}
	bu := back.Conditions.Users.ExcludeGuestsOrExternalUsers
	if !slices.Equal(bu.GuestOrExternalUserTypes, []string{"internalGuest", "serviceProvider"}) ||
		!slices.Equal(bu.ExternalTenants.Members, []string{"tenant-x"}) ||
		!slices.Equal(back.Conditions.InsiderRiskLevels, []string{"elevated", "minor"}) {
		t.Errorf("round trip: %+v %+v", bu, back.Conditions)
	}

	t.Run("an unknown state is refused before any request", func(t *testing.T) {
		e.srv.Reset()
		p := want
		p.State = capolicy.StateUnknown
		_, err := e.c.CreatePolicy(context.Background(), p)
		if ge := asError(t, err); ge.Code != "InvalidPolicy" || ge.Retriable() {
			t.Errorf("got %+v", ge)
		}
		if n := len(e.srv.Calls()); n != 0 {
			t.Errorf("requests sent: %d, want 0", n)
		}
	})
}

func topKeys(t *testing.T, body []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("PATCH body %q: %v", body, err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestUpdatePolicySendsExactlyTheListedProperties(t *testing.T) {
	tests := []struct {
		name   string
		fields []string
		edit   func(*capolicy.Policy)
		want   string // the body the emulator must receive, for bodies small enough to spell out
	}{
		{"state only", []string{FieldState}, func(p *capolicy.Policy) { p.State = capolicy.StateReportOnly },
			`{"state":"enabledForReportingButNotEnforced"}`},
		{"display name and state", []string{FieldDisplayName, FieldState}, func(p *capolicy.Policy) { p.DisplayName = "renamed" }, ""},
		{"conditions only", []string{FieldConditions}, func(p *capolicy.Policy) { p.Conditions.Users.ExcludeUsers = nil }, ""},
		{"grant controls only", []string{FieldGrantControls}, func(p *capolicy.Policy) {
			p.GrantControls = &capolicy.GrantControls{Operator: "OR", BuiltInControls: []string{"mfa"}}
		}, ""},
		{"cleared session controls are sent as null", []string{FieldSessionControls}, func(p *capolicy.Policy) { p.SessionControls = nil },
			`{"sessionControls":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, graphfake.Options{}, "drifted.json", nil)
			ctx := context.Background()
			// Read, change, write back: the pattern that makes the SDK send {} when the fetched
			// model itself is patched.
			p, err := e.c.GetPolicy(ctx, managedPolicyID)
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(&p)
			if err := e.c.UpdatePolicy(ctx, managedPolicyID, p, tt.fields); err != nil {
				t.Fatalf("UpdatePolicy: %v", err)
			}
			patches := e.srv.CallsTo("PATCH " + policiesPath + "/" + managedPolicyID)
			if len(patches) != 1 {
				t.Fatalf("PATCHes: got %d, want 1", len(patches))
			}
			if enc := patches[0].Header.Get("Content-Encoding"); enc != "gzip" {
				t.Errorf("Content-Encoding: got %q, want gzip", enc)
			}
			want := slices.Clone(tt.fields)
			sort.Strings(want)
			if got := topKeys(t, patches[0].Body); !slices.Equal(got, want) {
				t.Fatalf("keys sent: got %v, want %v (%s)", got, want, patches[0].Body)
			}
			if tt.want != "" && string(patches[0].Body) != tt.want {
				t.Errorf("body: got %s, want %s", patches[0].Body, tt.want)
			}
			after, err := e.c.GetPolicy(ctx, managedPolicyID)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(tt.fields, FieldDisplayName) && after.DisplayName != p.DisplayName {
				t.Errorf("displayName changed to %q", after.DisplayName)
			}
			if after.State != p.State {
				t.Errorf("state after: got %v, want %v", after.State, p.State)
			}
		})
	}

	t.Run("conditions without applications are refused before any request", func(t *testing.T) {
		e := setup(t, graphfake.Options{}, "drifted.json", nil)
		p := minimalPolicy()
		p.Conditions.Applications = nil
		err := e.c.UpdatePolicy(context.Background(), managedPolicyID, p, []string{FieldConditions})
		if ge := asError(t, err); ge.Code != "InvalidPolicy" {
			t.Errorf("got %+v", ge)
		}
		if n := len(e.srv.Calls()); n != 0 {
			t.Errorf("requests sent: %d, want 0", n)
		}
	})
	t.Run("an unknown property is refused before any request", func(t *testing.T) {
		e := setup(t, graphfake.Options{}, "drifted.json", nil)
		err := e.c.UpdatePolicy(context.Background(), managedPolicyID, capolicy.Policy{State: capolicy.StateEnabled}, []string{"state", "templateId"})
		if ge := asError(t, err); ge.Code != "ClientError" {
			t.Errorf("got %+v", ge)
		}
		if n := len(e.srv.Calls()); n != 0 {
			t.Errorf("requests sent: %d, want 0", n)
		}
	})
}

// narrowedEverywhere is the managed policy of compliant.json after an administrator narrowed it in
// every way a policy can be narrowed, and added session controls.
const narrowedEverywhere = `{
	"id": "` + managedPolicyID + `", "displayName": "caguard: require MFA for Azure management", "state": "enabled",
	"conditions": {
		"users": {"includeUsers": ["All"], "excludeUsers": ["33333333-3333-3333-3333-333333333333"], "excludeGroups": ["bbbbbbbb-0000-0000-0000-000000000001"],
			"excludeRoles": ["62e90394-69f5-4237-9190-012177145e10"],
			"excludeGuestsOrExternalUsers": {"guestOrExternalUserTypes": "b2bCollaborationGuest",
				"externalTenants": {"@odata.type": "#microsoft.graph.conditionalAccessAllExternalTenants", "membershipKind": "all"}}},
		"applications": {"includeApplications": ["797f4846-ba00-4fd7-ba43-dac1f8f63013"], "excludeApplications": ["c44b4083-3bb0-49c1-b47d-974e53cbdf3c"],
			"applicationFilter": {"mode": "exclude", "rule": "CustomSecurityAttribute.Team -eq \"x\""}},
		"clientAppTypes": ["browser"],
		"platforms": {"includePlatforms": ["all"], "excludePlatforms": ["linux"]},
		"locations": {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]},
		"devices": {"deviceFilter": {"mode": "exclude", "rule": "device.isCompliant -eq True"}},
		"signInRiskLevels": ["high"], "userRiskLevels": ["medium"], "insiderRiskLevels": "elevated",
		"authenticationFlows": {"transferMethods": "deviceCodeFlow"}
	},
	"grantControls": {"operator": "OR", "builtInControls": ["mfa", "compliantDevice"], "termsOfUse": ["tou-1"],
		"authenticationStrength": {"id": "` + graphfake.StrengthMFA + `"}},
	"sessionControls": {"signInFrequency": {"isEnabled": true, "value": 4, "type": "hours"}}
}`

// Graph merges a PATCH, so a write holds only if it carries every list and section of what it
// writes. After one UpdatePolicy the conditions and grant read back exactly as written, whatever they
// held before, and what was not written (session controls) stays.
func TestUpdatePolicyHoldsAgainstAMergingGraph(t *testing.T) {
	e := setup(t, graphfake.Options{}, "compliant.json", nil)
	ctx := context.Background()
	if _, err := e.srv.PutPolicy(json.RawMessage(narrowedEverywhere)); err != nil {
		t.Fatal(err)
	}
	want := capolicy.Desired(capolicy.Config{BreakGlassGroupIDs: []string{breakGlassGroup}})
	want.State = capolicy.StateEnabled
	if err := e.c.UpdatePolicy(ctx, managedPolicyID, want, []string{FieldConditions, FieldGrantControls}); err != nil {
		t.Fatalf("UpdatePolicy: %v", err)
	}
	got, err := e.c.GetPolicy(ctx, managedPolicyID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range capolicy.Diff(want, got) {
		if !strings.HasPrefix(d.Field, "sessionControls") {
			t.Errorf("%s: got %s, want %s", d.Field, d.Got, d.Want)
		}
	}
	if s := got.SessionControls; s == nil || s.SignInFrequency == nil || s.SignInFrequency.Value != 4 {
		t.Errorf("session controls not written must stay: %+v", s)
	}

	patches := e.srv.CallsTo("PATCH " + policiesPath + "/" + managedPolicyID)
	if len(patches) != 1 {
		t.Fatalf("PATCHes: got %d, want 1", len(patches))
	}
	var body struct {
		Conditions    map[string]json.RawMessage `json:"conditions"`
		GrantControls map[string]json.RawMessage `json:"grantControls"`
	}
	if err := json.Unmarshal(patches[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	t.Run("absent sections are sent as null", func(t *testing.T) {
		for _, k := range []string{"platforms", "locations", "devices", "authenticationFlows", "clientApplications", "insiderRiskLevels"} {
			if v, ok := body.Conditions[k]; !ok || string(v) != "null" {
				t.Errorf("conditions.%s: got %s (present %t), want null", k, v, ok)
			}
		}
		if v := string(body.GrantControls["authenticationStrength"]); v != "null" {
			t.Errorf("grantControls.authenticationStrength: got %s, want null", v)
		}
	})
	t.Run("empty lists are sent as []", func(t *testing.T) {
		for _, k := range []string{"userRiskLevels", "signInRiskLevels", "servicePrincipalRiskLevels"} {
			if v := string(body.Conditions[k]); v != "[]" {
				t.Errorf("conditions.%s: got %s, want []", k, v)
			}
		}
		var users map[string]json.RawMessage
		if err := json.Unmarshal(body.Conditions["users"], &users); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"excludeUsers", "excludeRoles", "includeGroups", "includeRoles"} {
			if v := string(users[k]); v != "[]" {
				t.Errorf("conditions.users.%s: got %s, want []", k, v)
			}
		}
		if v := string(users["excludeGuestsOrExternalUsers"]); v != "null" {
			t.Errorf("conditions.users.excludeGuestsOrExternalUsers: got %s, want null", v)
		}
		if v := string(body.GrantControls["termsOfUse"]); v != "[]" {
			t.Errorf("grantControls.termsOfUse: got %s, want []", v)
		}
	})
}

func TestWriteBodiesNeverCarryReadOnlyProperties(t *testing.T) {
	p := minimalPolicy()
	p.ID, p.TemplateID, p.CreatedDateTime, p.ModifiedDateTime = "id-1", "tmpl-1", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"
	b, err := policyBody(p, []string{FieldDisplayName, FieldState, FieldConditions, FieldGrantControls, FieldSessionControls})
	if err != nil {
		t.Fatal(err)
	}
	if got := topKeys(t, b); strings.Join(got, ",") != "conditions,displayName,grantControls,sessionControls,state" {
		t.Errorf("keys: got %v", got)
	}
	for _, ro := range []string{"id-1", "tmpl-1", "2024-01-01", "2024-01-02"} {
		if strings.Contains(string(b), ro) {
			t.Errorf("body carries read-only value %s: %s", ro, b)
		}
	}
	t.Run("an unknown enum value is refused", func(t *testing.T) {
		q := minimalPolicy()
		q.Conditions.Platforms = &capolicy.Platforms{IncludePlatforms: []string{"amiga"}}
		if _, err := policyBody(q, []string{FieldConditions}); err == nil || !strings.Contains(err.Error(), "amiga") {
			t.Errorf("got %v, want an error naming the value", err)
		}
	})
}

func TestUserExists(t *testing.T) {
	e := setup(t, graphfake.Options{}, "compliant.json", nil)
	ctx := context.Background()
	const bg1 = "11111111-1111-1111-1111-111111111111"
	ok, err := e.c.UserExists(ctx, bg1)
	if err != nil || !ok {
		t.Fatalf("existing user: got %t, %v", ok, err)
	}
	if calls := e.srv.CallsTo("GET /v1.0/users/" + bg1); len(calls) != 1 || calls[0].Query != "$select=id" && calls[0].Query != "%24select=id" {
		t.Errorf("calls %+v, want one GET with $select=id", calls)
	}
	e.srv.DeleteUser(bg1)
	if ok, err := e.c.UserExists(ctx, bg1); err != nil || ok {
		t.Errorf("deleted user: got %t, %v; want false, nil", ok, err)
	}
	t.Run("without User.Read.All the error is Forbidden and names it", func(t *testing.T) {
		e := setup(t, graphfake.Options{Roles: []string{graphfake.PermPolicyReadAll}}, "compliant.json", nil)
		_, err := e.c.UserExists(ctx, bg1)
		ge := asError(t, err)
		if !ge.Forbidden() || ge.Permission != PermReadUsers || ge.Retriable() {
			t.Errorf("got %+v", ge)
		}
	})
	t.Run("a server error is retriable", func(t *testing.T) {
		e := setup(t, graphfake.Options{}, "compliant.json", func(o *Options) { o.MaxRetries = -1 })
		e.srv.Inject(graphfake.Fault{Match: "GET /v1.0/users/*", Status: 503})
		_, err := e.c.UserExists(ctx, bg1)
		if ge := asError(t, err); !ge.Retriable() || ge.Forbidden() {
			t.Errorf("got %+v", ge)
		}
	})
}

func TestGroupTransitiveMemberIDs(t *testing.T) {
	e := setup(t, graphfake.Options{PageSize: 2}, "drifted.json", nil)
	got, err := e.c.GroupTransitiveMemberIDs(context.Background(), adminsGroup)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"33333333-3333-3333-3333-333333333333", breakGlassGroup,
		"11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"}
	if !slices.Equal(got, want) {
		t.Errorf("members: got %v, want %v", got, want)
	}
	calls := e.srv.CallsTo("GET /v1.0/groups/" + adminsGroup + "/transitiveMembers")
	if len(calls) != 2 {
		t.Fatalf("pages: got %d, want 2", len(calls))
	}
	for _, c := range calls {
		q, _ := url.ParseQuery(c.Query)
		if q.Get("$select") != "id" {
			t.Errorf("query %q lacks $select=id", c.Query)
		}
	}

	t.Run("an unknown group is a permanent 404", func(t *testing.T) {
		_, err := e.c.GroupTransitiveMemberIDs(context.Background(), "nope")
		if ge := asError(t, err); !ge.NotFound() || ge.Retriable() {
			t.Errorf("got %+v", ge)
		}
	})
	t.Run("an empty group has no members", func(t *testing.T) {
		e := setup(t, graphfake.Options{}, "", nil)
		if err := e.srv.Seed(graphfake.Scenario{Groups: map[string]graphfake.Group{"g": {}}}); err != nil {
			t.Fatal(err)
		}
		got, err := e.c.GroupTransitiveMemberIDs(context.Background(), "g")
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("got %v, %v; want an empty list", got, err)
		}
	})
}

func TestAuthenticationStrengths(t *testing.T) {
	e := setup(t, graphfake.Options{PageSize: 2}, "empty.json", nil)
	got, err := e.c.AuthenticationStrengths(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d strengths, want 3", len(got))
	}
	for _, s := range got {
		if s.RequirementsSatisfied != "mfa" || s.PolicyType != "builtIn" || len(s.AllowedCombinations) == 0 {
			t.Errorf("strength %+v", s)
		}
	}
	if !slices.Contains(got[0].AllowedCombinations, "password,sms") {
		t.Errorf("combinations of %s: %v", got[0].ID, got[0].AllowedCombinations)
	}
}

func TestThrottledRequestIsRetriedAfterRetryAfter(t *testing.T) {
	e := setup(t, graphfake.Options{}, "compliant.json", nil)
	e.srv.Inject(graphfake.Fault{Match: "GET " + policiesPath, Status: 429, RetryAfter: "1", Times: 1})
	start := time.Now()
	ps, err := e.c.ListPolicies(context.Background())
	if err != nil {
		t.Fatalf("ListPolicies: %v", err)
	}
	if len(ps) != 2 {
		t.Errorf("policies: got %d, want 2", len(ps))
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %v, want at least the 1s Retry-After", d)
	}
	calls := e.srv.CallsTo("GET " + policiesPath)
	if len(calls) != 2 || calls[0].Status != 429 || calls[1].Status != 200 {
		t.Fatalf("calls: %+v", calls)
	}
	if calls[1].Header.Get("Retry-Attempt") != "1" {
		t.Errorf("Retry-Attempt: got %q, want 1", calls[1].Header.Get("Retry-Attempt"))
	}
	if a, b := calls[0].Header.Get("client-request-id"), calls[1].Header.Get("client-request-id"); a == "" || a != b {
		t.Errorf("client-request-id: %q then %q, want one id for both attempts", a, b)
	}
}

func TestServiceUnavailableStormExhaustsTheBudget(t *testing.T) {
	const budget = 2500 * time.Millisecond
	e := setup(t, graphfake.Options{}, "compliant.json", func(o *Options) {
		o.RetryBudget = budget
		o.MaxRetries = 50
	})
	e.srv.Inject(graphfake.Fault{Match: "GET " + policiesPath, Status: 503, RetryAfter: "1"})
	start := time.Now()
	_, err := e.c.ListPolicies(context.Background())
	elapsed := time.Since(start)
	ge := asError(t, err)
	if ge.Status != 503 || !ge.Retriable() {
		t.Errorf("got %+v, want a retriable 503", ge)
	}
	if elapsed > budget {
		t.Errorf("gave up after %v, want within the %v budget", elapsed, budget)
	}
	if n := len(e.srv.CallsTo("GET " + policiesPath)); n < 2 || n != ge.Attempts {
		t.Errorf("attempts: emulator saw %d, error says %d", n, ge.Attempts)
	}
	if ge.RetryAfter != time.Second {
		t.Errorf("RetryAfter: got %v, want 1s", ge.RetryAfter)
	}
}

func TestRetryNeverSleepsPastTheContextDeadline(t *testing.T) {
	e := setup(t, graphfake.Options{}, "compliant.json", nil)
	e.srv.Inject(graphfake.Fault{Match: "GET " + policiesPath, Status: 429, RetryAfter: "2"})
	// Fetch the token first so the deadline only has to cover Graph.
	if _, err := e.c.ServicePrincipalID(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := e.c.ListPolicies(ctx)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("returned after %v; a 2s Retry-After cannot fit a 1s deadline, so it must not wait", d)
	}
	if ge := asError(t, err); ge.Status != 429 || !ge.Retriable() {
		t.Errorf("got %+v", ge)
	}
}

func TestPermissionErrorsNameThePermission(t *testing.T) {
	e := setup(t, graphfake.Options{Roles: []string{graphfake.PermPolicyReadAll}}, "drifted.json", nil)
	ctx := context.Background()
	if _, err := e.c.ListPolicies(ctx); err != nil {
		t.Fatalf("reading with Policy.Read.All: %v", err)
	}
	tests := []struct {
		name string
		run  func() error
		perm string
	}{
		{"create needs Policy.ReadWrite.ConditionalAccess", func() error {
			_, err := e.c.CreatePolicy(ctx, minimalPolicy())
			return err
		}, PermWritePolicies},
		{"update needs Policy.ReadWrite.ConditionalAccess", func() error {
			return e.c.UpdatePolicy(ctx, managedPolicyID, capolicy.Policy{State: capolicy.StateReportOnly}, []string{FieldState})
		}, PermWritePolicies},
		{"group members need GroupMember.Read.All", func() error {
			_, err := e.c.GroupTransitiveMemberIDs(ctx, breakGlassGroup)
			return err
		}, PermReadMembers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ge := asError(t, tt.run())
			if ge.Status != 403 || ge.Retriable() || ge.Permission != tt.perm || !strings.Contains(ge.Error(), tt.perm) {
				t.Errorf("got %+v: %v", ge, ge)
			}
		})
	}
	t.Run("reading without Policy.Read.All names it", func(t *testing.T) {
		e := setup(t, graphfake.Options{Roles: []string{}}, "drifted.json", nil)
		_, err := e.c.ListPolicies(ctx)
		if ge := asError(t, err); ge.Status != 403 || !strings.Contains(ge.Error(), PermReadPolicies) {
			t.Errorf("got %v", ge)
		}
	})
}

func TestUnusualAnswersAreErrorsNotPanics(t *testing.T) {
	tests := []struct {
		name      string
		fault     graphfake.Fault
		status    int
		code      string
		retriable bool
	}{
		{"malformed JSON in a success answer", graphfake.Fault{Status: 200, Body: `{"value": [`}, 200, "MalformedResponse", true},
		{"an error body without a message", graphfake.Fault{Status: 400, NoMessage: true}, 400, "BadRequest", false},
		{"an error body without an error object", graphfake.Fault{Status: 409, Body: `{}`}, 409, "Conflict", false},
		{"an error body that is not JSON", graphfake.Fault{Status: 502, Body: `<html>bad gateway</html>`, ContentType: "application/json"}, 502, "MalformedResponse", true},
		{"an error without a body", graphfake.Fault{Status: 500, Body: " ", ContentType: "text/plain"}, 500, "", true},
		{"a 401 is permanent", graphfake.Fault{Status: 401}, 401, "InvalidAuthenticationToken", false},
		{"a success answer without a value collection", graphfake.Fault{Status: 200, Body: `{"@odata.context":"x"}`}, 200, "MalformedResponse", true},
		{"a blank success answer", graphfake.Fault{Status: 200, Body: " ", ContentType: "application/json"}, 200, "MalformedResponse", true},
		{"a policy that is not an object", graphfake.Fault{Status: 200, Body: `{"value":[42]}`}, 0, "InvalidPolicy", false},
		{"a nextLink to another host", graphfake.Fault{Status: 200, Body: `{"value":[],"@odata.nextLink":"https://elsewhere.example/v1.0/identity/conditionalAccess/policies?$skiptoken=2"}`}, 0, "InvalidPaging", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, graphfake.Options{}, "compliant.json", nil)
			tt.fault.Match = "GET " + policiesPath
			e.srv.Inject(tt.fault)
			ps, err := e.c.ListPolicies(context.Background())
			if ps != nil {
				t.Errorf("got %d policies, want none", len(ps))
			}
			ge := asError(t, err)
			if ge.Status != tt.status || (tt.code != "" && ge.Code != tt.code) || ge.Retriable() != tt.retriable {
				t.Errorf("got status %d code %q retriable %v, want %d %q %v (%v)", ge.Status, ge.Code, ge.Retriable(), tt.status, tt.code, tt.retriable, ge)
			}
		})
	}
}

// A policy whose list holds an object is not an error of the list: ListPolicies and GetPolicy read
// it as a policy the rules fail alone, naming the property and the value Graph sent.
func TestAPolicyWhoseValuesCannotBeDecodedIsReadAlone(t *testing.T) {
	const body = `{"id":"x","displayName":"Odd lists","state":"enabled","conditions":{"clientAppTypes":[{}]}}`
	want := []capolicy.UnknownValue{{Field: "conditions.clientAppTypes", Value: "[{}]"}}
	e := setup(t, graphfake.Options{}, "compliant.json", nil)
	e.srv.Inject(graphfake.Fault{Match: "GET " + policiesPath, Status: 200, Times: 1, Body: `{"value":[` + body + `]}`})
	ps, err := e.c.ListPolicies(context.Background())
	if err != nil || len(ps) != 1 {
		t.Fatalf("list: %d policies, %v; want the one policy", len(ps), err)
	}
	if p := ps[0]; p.ID != "x" || p.DisplayName != "Odd lists" || p.State != capolicy.StateEnabled || !reflect.DeepEqual(p.Unreadable, want) {
		t.Errorf("list: got %+v, want x named, enabled, unreadable at %+v", p, want)
	}
	e.srv.Inject(graphfake.Fault{Match: "GET " + policiesPath + "/x", Status: 200, Times: 1, Body: body})
	p, err := e.c.GetPolicy(context.Background(), "x")
	if err != nil || !reflect.DeepEqual(p.Unreadable, want) {
		t.Errorf("get: %+v, %v; want unreadable at %+v", p, err, want)
	}
	rep := capolicy.Evaluate(capolicy.Tenant{Policies: ps}, capolicy.Config{})
	if rep.Compliant || !slices.ContainsFunc(rep.Policies[0].Reasons, func(r capolicy.Reason) bool {
		return r.Code == capolicy.CodeUnrecognisedValue && reflect.DeepEqual(r.Unrecognised, want)
	}) {
		t.Errorf("verdict %s, reasons %+v: want it to fail with %s naming %+v", rep.Verdict, rep.Policies[0].Reasons, capolicy.CodeUnrecognisedValue, want)
	}
}

func TestDroppedConnections(t *testing.T) {
	t.Run("a single drop is retried", func(t *testing.T) {
		e := setup(t, graphfake.Options{}, "compliant.json", nil)
		e.srv.Inject(graphfake.Fault{Match: "GET " + policiesPath, Drop: true, Times: 1})
		if _, err := e.c.ListPolicies(context.Background()); err != nil {
			t.Fatalf("ListPolicies: %v", err)
		}
	})
	t.Run("drops on every attempt are a retriable network error", func(t *testing.T) {
		e := setup(t, graphfake.Options{}, "compliant.json", func(o *Options) { o.MaxRetries = 2 })
		e.srv.Inject(graphfake.Fault{Match: "GET " + policiesPath, Drop: true})
		_, err := e.c.ListPolicies(context.Background())
		ge := asError(t, err)
		if ge.Code != "NetworkError" || !ge.Retriable() || ge.Status != 0 {
			t.Errorf("got %+v", ge)
		}
	})
	t.Run("a POST is not retried after a drop", func(t *testing.T) {
		e := setup(t, graphfake.Options{}, "empty.json", nil)
		e.srv.Inject(graphfake.Fault{Match: "POST " + policiesPath, Drop: true})
		_, err := e.c.CreatePolicy(context.Background(), minimalPolicy())
		if ge := asError(t, err); !ge.Retriable() {
			t.Errorf("got %+v", ge)
		}
		if n := len(e.srv.CallsTo("POST " + policiesPath)); n != 1 {
			t.Errorf("POST attempts: got %d, want 1", n)
		}
	})
}

func TestTokensComeFromTheManagedIdentityEndpoint(t *testing.T) {
	e := setup(t, graphfake.Options{}, "compliant.json", func(o *Options) { o.ClientID = "00000000-0000-0000-0000-0000000000c9" })
	if _, err := e.c.ListPolicies(context.Background()); err != nil {
		t.Fatal(err)
	}
	mi := e.srv.CallsTo("GET /msi/token")
	if len(mi) != 1 || mi[0].Status != 200 {
		t.Fatalf("identity endpoint calls: %+v", mi)
	}
	q, _ := url.ParseQuery(mi[0].Query)
	wantResource := "https://" + strings.TrimPrefix(e.srv.URL(), "http://")
	if q.Get("resource") != wantResource || q.Get("client_id") != "00000000-0000-0000-0000-0000000000c9" {
		t.Errorf("token request: %s, want resource %s and the user-assigned client id", mi[0].Query, wantResource)
	}
}

func TestServicePrincipalID(t *testing.T) {
	t.Run("read from the token's oid claim", func(t *testing.T) {
		e := setup(t, graphfake.Options{ObjectID: "00000000-0000-0000-0000-0000000000d7"}, "empty.json", nil)
		got, err := e.c.ServicePrincipalID(context.Background())
		if err != nil || got != "00000000-0000-0000-0000-0000000000d7" {
			t.Errorf("got %q, %v", got, err)
		}
	})
	t.Run("the setting wins without a token", func(t *testing.T) {
		e := setup(t, graphfake.Options{}, "empty.json", func(o *Options) { o.ServicePrincipalID = "sp-override" })
		got, err := e.c.ServicePrincipalID(context.Background())
		if err != nil || got != "sp-override" {
			t.Errorf("got %q, %v", got, err)
		}
		if n := len(e.srv.Calls()); n != 0 {
			t.Errorf("requests: %d, want 0", n)
		}
	})
	t.Run("a token that is not a JWT is an error", func(t *testing.T) {
		c, err := New(Options{Credential: staticCred("opaque")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ServicePrincipalID(context.Background())
		if ge := asError(t, err); ge.Code != "InvalidToken" || strings.Contains(ge.Error(), "opaque") {
			t.Errorf("got %v", ge)
		}
	})
}

// TestUnknownStateIsAPolicyVerdict: a policy whose state is absent or a value caguard does not know
// is read, not refused, so the rest of the tenant is still judged; the state is never enabled, and
// the rules fail that policy alone, naming what Graph sent.
func TestUnknownStateIsAPolicyVerdict(t *testing.T) {
	for _, tt := range []struct{ name, state, raw string }{
		{"absent", ``, ""},
		{"unknown value", `"state":"onAndOff",`, "onAndOff"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, graphfake.Options{}, "compliant.json", nil)
			id, err := e.srv.PutPolicy(json.RawMessage(`{"id":"p-nostate",` + tt.state + `"displayName":"x","conditions":{}}`))
			if err != nil {
				t.Fatal(err)
			}
			ps, err := e.c.ListPolicies(context.Background())
			if err != nil {
				t.Fatalf("list: %v, want the policies with a verdict for each", err)
			}
			var odd *capolicy.Policy
			for i := range ps {
				if ps[i].ID == id {
					odd = &ps[i]
				}
			}
			if len(ps) < 2 || odd == nil {
				t.Fatalf("list: got %d policies without %s", len(ps), id)
			}
			if odd.State != capolicy.StateUnknown || odd.UnrecognisedState != tt.raw {
				t.Errorf("state: got %s (%q), want unknown (%q)", odd.State, odd.UnrecognisedState, tt.raw)
			}
			const member = "11111111-1111-1111-1111-111111111111"
			rep := capolicy.Evaluate(capolicy.Tenant{Policies: ps, GroupMembers: map[string][]string{breakGlassGroup: {member}}},
				capolicy.Config{BreakGlassUserIDs: []string{member}, BreakGlassGroupIDs: []string{breakGlassGroup}})
			if rep.Verdict != capolicy.VerdictCompliant {
				t.Errorf("verdict: got %s (%s), want compliant from the other policy", rep.Verdict, rep.Summary)
			}
			for _, r := range rep.Policies {
				if r.ID == id && (r.Compliant || len(r.Reasons) == 0 || r.Reasons[0].Code != capolicy.CodeStateUnknown) {
					t.Errorf("policy %s: compliant %v, reasons %+v; want STATE_UNKNOWN first", id, r.Compliant, r.Reasons)
				}
				if r.ID == id && tt.raw != "" && !strings.Contains(r.Reasons[0].Message, tt.raw) {
					t.Errorf("reason %q: want it to name %q", r.Reasons[0].Message, tt.raw)
				}
			}
			got, err := e.c.GetPolicy(context.Background(), id)
			if err != nil || got.State != capolicy.StateUnknown || got.UnrecognisedState != tt.raw {
				t.Errorf("get: got %s (%q), %v; want unknown (%q)", got.State, got.UnrecognisedState, err, tt.raw)
			}
		})
	}
}

// TestAuthenticationStrengthsKeepUnknownValues reads a custom strength whose requirement and one
// method are new to caguard: both survive the read (the SDK's model would drop them), and a policy
// requiring that strength by reference fails closed.
func TestAuthenticationStrengthsKeepUnknownValues(t *testing.T) {
	const custom = "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"
	e := setup(t, graphfake.Options{}, "compliant.json", nil)
	if err := e.srv.Seed(graphfake.Scenario{AuthenticationStrengths: []json.RawMessage{json.RawMessage(`{"id":"` + custom +
		`","displayName":"Passkeys and newer","policyType":"custom","requirementsSatisfied":"mfa,futureRequirement",` +
		`"allowedCombinations":["fido2","password,futureMethod"]}`)}}); err != nil {
		t.Fatal(err)
	}
	ss, err := e.c.AuthenticationStrengths(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var found *capolicy.AuthenticationStrength
	for i := range ss {
		if ss[i].ID == custom {
			found = &ss[i]
		}
	}
	if found == nil {
		t.Fatalf("strengths: got %d without %s", len(ss), custom)
	}
	if found.RequirementsSatisfied != "mfa,futureRequirement" || !slices.Contains(found.AllowedCombinations, "password,futureMethod") {
		t.Errorf("strength: got %+v, want the unknown requirement and method kept", *found)
	}
	if len(ss) < 4 {
		t.Errorf("strengths: got %d, want the three built-in ones too", len(ss))
	}
	p := capolicy.Policy{ID: "p1", State: capolicy.StateEnabled, Conditions: capolicy.Conditions{
		Users:        &capolicy.Users{IncludeUsers: []string{"All"}},
		Applications: &capolicy.Applications{IncludeApplications: []string{capolicy.AzureManagementAppID}},
	}, GrantControls: &capolicy.GrantControls{Operator: "OR", AuthenticationStrength: &capolicy.AuthenticationStrength{ID: custom}}}
	rep := capolicy.Evaluate(capolicy.Tenant{Policies: []capolicy.Policy{p}, AuthenticationStrengths: ss}, capolicy.Config{})
	var vals []capolicy.UnknownValue
	for _, r := range rep.Policies[0].Reasons {
		if r.Code == capolicy.CodeUnrecognisedValue {
			vals = r.Unrecognised
		}
	}
	if rep.Compliant || len(vals) != 2 || vals[0].Value != "futureRequirement" || vals[1].Value != "futureMethod" {
		t.Errorf("verdict %s, unrecognised %+v; want the policy to fail naming futureRequirement and futureMethod", rep.Verdict, vals)
	}
}

type staticCred string

func (s staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestErrorsNeverCarryTheToken(t *testing.T) {
	e := setup(t, graphfake.Options{}, "compliant.json", nil)
	const secret = "header.c2VjcmV0LXRva2Vu.signature-not-from-the-emulator"
	c, err := New(Options{BaseURL: e.srv.GraphURL(), Credential: staticCred(secret), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListPolicies(context.Background())
	ge := asError(t, err)
	if ge.Status != 401 || strings.Contains(fmt.Sprintf("%v %+v", ge, ge), "c2VjcmV0") {
		t.Errorf("got %+v", ge)
	}
}

func TestRetriableIsVisibleThroughAnInterface(t *testing.T) {
	var err error = fmt.Errorf("reconcile: %w", &Error{Op: "list policies", Status: 503, Transient: true})
	var r interface{ Retriable() bool }
	if !errors.As(err, &r) || !r.Retriable() {
		t.Fatal("a wrapped retriable *Error is not found through interface{ Retriable() bool }")
	}
}

func TestNewValidatesSettings(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string // substring of the error; "" = no error
	}{
		{"the default is the public Graph with managed identity", Options{}, ""},
		{"plain http to a remote host is refused", Options{BaseURL: "http://graph.example/v1.0"}, "GRAPH_BASE_URL"},
		{"plain http to loopback is allowed", Options{BaseURL: "http://127.0.0.1:1234/v1.0"}, ""},
		{"a relative base URL is refused", Options{BaseURL: "/v1.0"}, "GRAPH_BASE_URL"},
		{"a client secret needs the tenant", Options{ClientSecret: "s", ClientID: "c"}, "AZURE_TENANT_ID"},
		{"a client secret needs the client id", Options{ClientSecret: "s", TenantID: "t"}, "AZURE_CLIENT_ID"},
		{"a federated token needs the tenant", Options{FederatedTokenFile: "/f", ClientID: "c"}, "AZURE_TENANT_ID"},
		{"a federated token needs the client id", Options{FederatedTokenFile: "/f", TenantID: "t"}, "AZURE_CLIENT_ID"},
		{"the authority host must be https", Options{AuthorityHost: "http://login.example"}, "AZURE_AUTHORITY_HOST"},
		{"a user-assigned managed identity", Options{ClientID: "c"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestScopeFollowsTheGraphHost(t *testing.T) {
	for raw, want := range map[string]string{
		"https://graph.microsoft.com/v1.0":     "https://graph.microsoft.com/.default",
		"https://graph.microsoft.us/v1.0":      "https://graph.microsoft.us/.default",
		"https://graph.microsoft.com:443/v1.0": "https://graph.microsoft.com/.default",
		"http://127.0.0.1:8080/v1.0":           "https://127.0.0.1:8080/.default",
	} {
		u, err := parseBaseURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := scopeFor(u); got != want {
			t.Errorf("%s: got %s, want %s", raw, got, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"1", time.Second, true},
		{"0.5", 500 * time.Millisecond, true},
		{now.Add(3 * time.Second).Format(http.TimeFormat), 3 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q): got %v %v, want %v %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestClientSecretCredentialHonoursAuthorityHost runs the client-secret path against a local
// authority (azidentity insists on https, hence the TLS server) whose tokens the emulator accepts.
func TestClientSecretCredentialHonoursAuthorityHost(t *testing.T) {
	e := setup(t, graphfake.Options{}, "compliant.json", nil)
	var tokenRequests atomic.Int32
	entra := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration"):
			base := "https://" + r.Host + "/tenant-1"
			_ = json.NewEncoder(w).Encode(map[string]any{
				"token_endpoint":         base + "/oauth2/v2.0/token",
				"authorization_endpoint": base + "/oauth2/v2.0/authorize",
				"issuer":                 base + "/v2.0",
			})
		case strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token"):
			tokenRequests.Add(1)
			_ = r.ParseForm()
			if r.PostForm.Get("client_secret") != "s3cret" || r.PostForm.Get("scope") == "" {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3600, "access_token": e.srv.Token()})
		default:
			http.NotFound(w, r)
		}
	}))
	defer entra.Close()

	c, err := New(Options{
		BaseURL:       e.srv.GraphURL(),
		TenantID:      "tenant-1",
		ClientID:      "client-1",
		ClientSecret:  "s3cret",
		AuthorityHost: entra.URL,
		HTTPClient:    entra.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.ListPolicies(context.Background())
	if err != nil || len(ps) != 2 {
		t.Fatalf("got %d policies, %v", len(ps), err)
	}
	if n := tokenRequests.Load(); n != 1 {
		t.Errorf("token requests: got %d, want 1", n)
	}
	if n := len(e.srv.CallsTo("GET /msi/token")); n != 0 {
		t.Errorf("the managed-identity endpoint was used %d times", n)
	}
}

// TestErrorsDescribeTheirCause: what a failed call says to a person names the cause (the status, the
// permission a 403 asks for, the policy that could not be read) and never Graph's own message text.
func TestErrorsDescribeTheirCause(t *testing.T) {
	const graphText = "Graph-internal-detail-7f3a"
	tests := []struct {
		name  string
		opts  graphfake.Options
		fault *graphfake.Fault
		want  []string
		retry bool
	}{
		{"a missing permission names it", graphfake.Options{Roles: []string{graphfake.PermGroupMemberReadAll}}, nil,
			[]string{"Graph answered 403 to list the Conditional Access policies: the app lacks Policy.Read.All"}, false},
		{"an outage says Graph is unavailable", graphfake.Options{}, &graphfake.Fault{Status: 503, Message: graphText},
			[]string{"Graph is unavailable (it answered 503 to list the Conditional Access policies)", "retry later"}, true},
		{"throttling says so", graphfake.Options{}, &graphfake.Fault{Status: 429, RetryAfter: "0", Message: graphText},
			[]string{"Graph is throttling caguard (it answered 429 to list the Conditional Access policies)"}, true},
		{"a dropped connection says Graph could not be reached", graphfake.Options{}, &graphfake.Fault{Drop: true},
			[]string{"Graph could not be reached to list the Conditional Access policies"}, true},
		{"an item that is not a policy is named", graphfake.Options{}, &graphfake.Fault{Status: 200,
			Body: `{"value":[{"id":"p-ok","state":"enabled"},"p-broken"]}`},
			[]string{`a policy could not be parsed: parse policy: not a JSON object (item 1 of page 1)`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, tt.opts, "compliant.json", nil)
			if tt.fault != nil {
				f := *tt.fault
				f.Match = "GET " + policiesPath
				e.srv.Inject(f)
			}
			_, err := e.c.ListPolicies(context.Background())
			ge := asError(t, err)
			got := ge.Describe()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Describe: got %q, want it to contain %q", got, w)
				}
			}
			if strings.Contains(got, graphText) || strings.Contains(got, "request-id") || (e.srv.Token() != "" && strings.Contains(got, e.srv.Token())) {
				t.Errorf("Describe: got %q, which repeats Graph's own text, a request id or the token", got)
			}
			if ge.Retriable() != tt.retry {
				t.Errorf("retriable: got %v, want %v", ge.Retriable(), tt.retry)
			}
		})
	}
}
