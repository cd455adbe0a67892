package exclusion_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.uber.org/zap/zaptest"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/graph"
	"github.com/caguard/caguard/handler/graphfake"
	"github.com/caguard/caguard/handler/reconcile"
)

// The end-to-end half of the scope table: every row's definition is seeded into the Graph emulator,
// which serves it verbatim; caguard reads it as it does in Azure (handler/graph's JSON batch, the
// group's own properties, the instances of the reviews that cover it) and reports each break-glass
// exclusion. A group the row covers is "current" through that row's review, any other is "none";
// the break-glass user excluded directly is "not-reviewable" whatever the review.

const (
	breakGlassUser = "5c4f6c2e-1f0b-4a7e-9d3a-2b8e7f1a6c90"
	// unrelatedGroup is a group of a review of many groups whose instance is not the judged group's.
	unrelatedGroup = "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
)

type emulatorToken struct{ srv *graphfake.Server }

func (e emulatorToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: e.srv.Token(), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// oneGroupEnumeration matches an instanceEnumerationScope that names one group, as the portal writes
// it: such a review has one instance per recurrence, scoped like the definition.
var oneGroupEnumeration = regexp.MustCompile(`(?i)^(/v1\.0)?/groups/[0-9a-f-]{36}/?$`)

// instancesFor are the instances Graph would list for a row's definition: one completed six days ago.
// A review of many groups has one instance per group, each scoped to its group in the form
// accessreviewscheduledefinition-list-instances shows ("/v1.0/groups/{id}/members/..."); the judged
// group's instance completed six days ago, another group's yesterday, so only the judged group's
// own instance may count for it. Any other review's instance is seeded without a scope, which the
// emulator fills from the definition as Graph does.
func instancesFor(t *testing.T, def json.RawMessage, judged string) []json.RawMessage {
	t.Helper()
	var d struct {
		Scope                    *struct{ Query string } `json:"scope"`
		InstanceEnumerationScope *struct{ Query string } `json:"instanceEnumerationScope"`
	}
	if err := json.Unmarshal(def, &d); err != nil {
		t.Fatal(err)
	}
	completed := func(id, end, scope string) json.RawMessage {
		in := map[string]any{"id": id, "status": "Completed", "startDateTime": "now-20d", "endDateTime": end,
			"reviewers": []any{}, "fallbackReviewers": []any{}}
		if scope != "" {
			in["scope"] = map[string]any{"@odata.type": "#microsoft.graph.accessReviewQueryScope", "query": scope,
				"queryType": "MicrosoftGraph", "queryRoot": nil}
		}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	e := d.InstanceEnumerationScope
	if e == nil || strings.TrimSpace(e.Query) == "" || oneGroupEnumeration.MatchString(strings.TrimSpace(e.Query)) || d.Scope == nil {
		return []json.RawMessage{completed("5a0d6b1e-0000-4000-8000-000000000001", "now-6d", "")}
	}
	perGroup := strings.TrimPrefix(d.Scope.Query, ".")
	return []json.RawMessage{
		completed("5a0d6b1e-0000-4000-8000-000000000002", "now-1d", "/v1.0/groups/"+unrelatedGroup+perGroup),
		completed("5a0d6b1e-0000-4000-8000-000000000003", "now-6d", "/v1.0/groups/"+judged+perGroup),
	}
}

// tenantFor seeds one enabled policy that meets the control and excludes the break-glass user and
// group, the judged group typed as the column says with the user as its member, and the row's review.
func tenantFor(t *testing.T, r exclusion.ScopeRow, col string, instances []json.RawMessage) (*graphfake.Server, capolicy.Config) {
	t.Helper()
	info := exclusion.TableGroups[col]
	judged := info.ID
	if instances == nil {
		instances = instancesFor(t, r.Definition, judged)
	}
	sc := graphfake.Scenario{
		TenantID: "00000000-0000-0000-0000-0000000000aa",
		Groups: map[string]graphfake.Group{
			// Both groups of the table exist; the judged one holds the break-glass user.
			exclusion.TableGroup:      {DisplayName: "Break-glass accounts"},
			exclusion.TableOtherGroup: {DisplayName: "Project team", GroupTypes: []string{"Unified"}},
			unrelatedGroup:            {DisplayName: "Sales", GroupTypes: []string{"Unified"}},
		},
		Users: map[string]json.RawMessage{breakGlassUser: json.RawMessage(`{"displayName":"Break-glass 1","accountEnabled":true,
			"signInActivity":{"lastSuccessfulSignInDateTime":"now-3d","lastSignInDateTime":"now-3d"}}`)},
		AccessReviews: []graphfake.AccessReview{{Definition: r.Definition, Instances: instances}},
	}
	sc.Groups[judged] = graphfake.Group{DisplayName: "Break-glass accounts", GroupTypes: info.GroupTypes, IsAssignableToRole: info.RoleAssignable,
		Members: []graphfake.Member{{ID: breakGlassUser, ODataType: "#microsoft.graph.user", DisplayName: "Break-glass 1"}}}
	cfg := capolicy.Config{BreakGlassUserIDs: []string{breakGlassUser}, BreakGlassGroupIDs: []string{judged}}
	policy, err := json.Marshal(map[string]any{
		"displayName": "CA001: MFA for Azure management", "state": "enabled",
		"conditions": map[string]any{
			"users":          map[string]any{"includeUsers": []string{"All"}, "excludeUsers": cfg.BreakGlassUserIDs, "excludeGroups": cfg.BreakGlassGroupIDs},
			"applications":   map[string]any{"includeApplications": []string{capolicy.AzureManagementAppID}},
			"clientAppTypes": []string{"all"},
		},
		"grantControls": map[string]any{"operator": "OR", "builtInControls": []string{"mfa"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sc.Policies = []json.RawMessage{policy}
	fake, err := graphfake.New(graphfake.Options{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Seed(sc); err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	return fake, cfg
}

// servedDefinitions lists the definitions as any client would read them.
func servedDefinitions(t *testing.T, fake *graphfake.Server) []any {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, fake.GraphURL()+"/identityGovernance/accessReviews/definitions", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+fake.Token())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET definitions: %d %s %v", res.StatusCode, b, err)
	}
	var page struct {
		Value []any `json:"value"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatal(err)
	}
	return page.Value
}

func TestEveryDocumentedScopeShapeThroughGraph(t *testing.T) {
	for _, r := range exclusion.ReadScopeTable(t) {
		t.Run(r.Name, func(t *testing.T) {
			var want any
			if err := json.Unmarshal(r.Definition, &want); err != nil {
				t.Fatal(err)
			}
			defID := want.(map[string]any)["id"].(string)
			for col, covers := range r.Covers {
				t.Run(col, func(t *testing.T) {
					fake, cfg := tenantFor(t, r, col, nil)
					if got := servedDefinitions(t, fake); len(got) != 1 || !reflect.DeepEqual(got[0], want) {
						t.Fatalf("the emulator served %v, want the definition verbatim: %v", got, want)
					}
					group, user := report(t, fake, cfg, exclusion.TableGroups[col].ID)
					if user.Review.Status != exclusion.ReviewNotReviewable {
						t.Errorf("break-glass user: got review %s (%s), want not-reviewable", user.Review.Status, user.Review.Detail)
					}
					switch {
					case covers && (group.Review.Status != exclusion.ReviewCurrent || group.Review.DefinitionID != defID):
						t.Errorf("break-glass group: got review %s by %q (%s), want current by %s", group.Review.Status, group.Review.DefinitionID, group.Review.Detail, defID)
					case covers && (group.Review.LastCompleted == nil || time.Since(*group.Review.LastCompleted) < 5*24*time.Hour):
						t.Errorf("break-glass group: last completed %v, want its own instance of six days ago", group.Review.LastCompleted)
					case !covers && group.Review.Status != exclusion.ReviewNone:
						t.Errorf("break-glass group: got review %s by %q (%s), want none", group.Review.Status, group.Review.DefinitionID, group.Review.Detail)
					}
				})
			}
		})
	}
}

// report runs a report-only reconcile through handler/graph, as GET /api/Evaluate does, and returns
// the break-glass group's and user's exclusions.
func report(t *testing.T, fake *graphfake.Server, cfg capolicy.Config, judged string) (group, user *exclusion.Item) {
	t.Helper()
	fake.Reset()
	c, err := graph.New(graph.Options{BaseURL: fake.GraphURL(), Credential: emulatorToken{fake}, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	rec := &reconcile.Reconciler{Store: c, Policy: cfg, TenantID: fake.TenantID(), Now: time.Now,
		Log: zaptest.NewLogger(t), Owner: &reconcile.MemoryOwnership{},
		Exclusions: reconcile.Exclusions{Reader: c, Mode: exclusion.ModeReport, Grace: exclusion.DefaultGrace}}
	out, err := rec.Reconcile(context.Background(), reconcile.Request{Trigger: reconcile.TriggerHTTP})
	if err != nil {
		t.Fatal(err)
	}
	if !batched(fake.Calls(), "/identityGovernance/accessReviews/definitions") {
		t.Errorf("the definitions were not read in a JSON batch: %v", fake.Calls())
	}
	for i := range out.Exclusions {
		switch it := &out.Exclusions[i]; {
		case it.Kind == exclusion.KindGroup && it.ID == judged:
			group = it
		case it.Kind == exclusion.KindUser && it.ID == breakGlassUser:
			user = it
		}
	}
	if group == nil || user == nil {
		t.Fatalf("exclusions: got %+v, want the break-glass group %s and user", out.Exclusions, judged)
	}
	return group, user
}

// A review of every Microsoft 365 group has one instance per group; another group's recent instance
// says nothing of the break-glass group's review, which has not completed yet.
func TestAReviewOfManyGroupsCountsOnlyTheGroupsOwnInstance(t *testing.T) {
	var row exclusion.ScopeRow
	for _, r := range exclusion.ReadScopeTable(t) {
		if r.Name == "all Microsoft 365 groups, encoded as Graph answers" {
			row = r
		}
	}
	if row.Definition == nil || !row.Covers["m365"] {
		t.Fatal("the table lost its all-Microsoft-365-groups row")
	}
	others := instancesFor(t, row.Definition, exclusion.TableGroup)[:1] // the unrelated group's only
	pending := json.RawMessage(`{"id":"5a0d6b1e-0000-4000-8000-000000000004","status":"InProgress","startDateTime":"now-2d","endDateTime":"now+12d",
		"scope":{"@odata.type":"#microsoft.graph.accessReviewQueryScope","query":"/v1.0/groups/` + exclusion.TableGroup + `/members/microsoft.graph.user/?$count=true","queryType":"MicrosoftGraph","queryRoot":null}}`)
	fake, cfg := tenantFor(t, row, "m365", append(others, pending))
	group, _ := report(t, fake, cfg, exclusion.TableGroup)
	if group.Review.Status != exclusion.ReviewOverdue || group.Review.LastCompleted != nil {
		t.Errorf("break-glass group: got review %s, last completed %v (%s), want overdue with no completed instance of its own",
			group.Review.Status, group.Review.LastCompleted, group.Review.Detail)
	}
}

// batched reports whether a GET of path was a sub-request of a JSON batch.
func batched(calls []graphfake.Call, path string) bool {
	for _, c := range calls {
		if c.Batch != "" && c.Method == http.MethodGet && strings.HasSuffix(c.Path, path) {
			return true
		}
	}
	return false
}
