package exclusion

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Ids the placeholders of testdata/scopes.json stand for: the break-glass group judged, and another
// Microsoft 365 group. They are the ids of Graph's own examples.
const (
	TableGroup      = "4444d821-ca3b-45cc-98ee-54c00a04deef"
	TableOtherGroup = "119cc181-22f0-4e18-8537-264e7524ee0b"
)

// ScopeRow is one row of testdata/scopes.json: a definition as Graph answers it and whether it covers
// each group of TableGroups. It is exported for the end-to-end test in package exclusion_test.
type ScopeRow struct {
	Name       string          `json:"name"`
	Source     string          `json:"source"`
	Derived    string          `json:"derived"`
	Covers     map[string]bool `json:"covers"`
	Definition json.RawMessage `json:"definition"`
}

// TableGroups are the groups each row is judged for, by the table's column names.
var TableGroups = map[string]GroupInfo{
	"security":       {ID: TableGroup},
	"m365":           {ID: TableGroup, GroupTypes: []string{"Unified"}},
	"dynamicM365":    {ID: TableGroup, GroupTypes: []string{"Unified", "DynamicMembership"}},
	"roleAssignable": {ID: TableGroup, GroupTypes: []string{"Unified"}, RoleAssignable: true},
	"otherM365":      {ID: TableOtherGroup, GroupTypes: []string{"Unified"}},
}

// ReadScopeTable reads testdata/scopes.json with its placeholders replaced, and checks that every
// row names its source and judges every group.
func ReadScopeTable(t testing.TB) []ScopeRow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "scopes.json"))
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.NewReplacer("{groupId}", TableGroup, "{otherGroupId}", TableOtherGroup).Replace(string(b)))
	var table struct {
		Rows []ScopeRow `json:"rows"`
	}
	if err := json.Unmarshal(b, &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Rows) < 30 {
		t.Fatalf("table: got %d rows, want the whole table", len(table.Rows))
	}
	names := map[string]bool{}
	for _, r := range table.Rows {
		if r.Source == "" && r.Derived == "" {
			t.Fatalf("row %q: a row names its documentation source or says how it was derived", r.Name)
		}
		if names[r.Name] {
			t.Fatalf("row %q: names must be unique", r.Name)
		}
		names[r.Name] = true
		if len(r.Covers) != len(TableGroups) {
			t.Fatalf("row %q: covers: got %d columns, want %d", r.Name, len(r.Covers), len(TableGroups))
		}
		for col := range r.Covers {
			if _, ok := TableGroups[col]; !ok {
				t.Fatalf("row %q: unknown column %q", r.Name, col)
			}
		}
	}
	return table.Rows
}

// graphScope decodes a scope under Graph's property names, as handler/graph does.
type graphScope struct {
	ODataType        string       `json:"@odata.type"`
	Query            string       `json:"query"`
	QueryType        string       `json:"queryType"`
	QueryRoot        *string      `json:"queryRoot"`
	InactiveDuration string       `json:"inactiveDuration"`
	PrincipalScopes  []graphScope `json:"principalScopes"`
	ResourceScopes   []graphScope `json:"resourceScopes"`
}

func (s *graphScope) domain() *Scope {
	if s == nil {
		return nil
	}
	out := &Scope{ODataType: s.ODataType, Query: s.Query, QueryType: s.QueryType, InactiveDuration: s.InactiveDuration}
	if s.QueryRoot != nil {
		out.QueryRoot = *s.QueryRoot
	}
	for i := range s.PrincipalScopes {
		out.PrincipalScopes = append(out.PrincipalScopes, *s.PrincipalScopes[i].domain())
	}
	for i := range s.ResourceScopes {
		out.ResourceScopes = append(out.ResourceScopes, *s.ResourceScopes[i].domain())
	}
	return out
}

func TestCoversEveryDocumentedScopeShape(t *testing.T) {
	for _, r := range ReadScopeTable(t) {
		t.Run(r.Name, func(t *testing.T) {
			var d struct {
				ID                       string      `json:"id"`
				Scope                    *graphScope `json:"scope"`
				InstanceEnumerationScope *graphScope `json:"instanceEnumerationScope"`
			}
			if err := json.Unmarshal(r.Definition, &d); err != nil {
				t.Fatal(err)
			}
			def := Definition{ID: d.ID, Scope: d.Scope.domain(), InstanceEnumerationScope: d.InstanceEnumerationScope.domain()}
			for col, want := range r.Covers {
				g := TableGroups[col]
				got, how := Covers(def, g)
				if got != want {
					t.Errorf("%s group: got covered %t (%q), want %t", col, got, how, want)
				}
				if got && !strings.HasPrefix(how, "reviews ") {
					t.Errorf("%s group: how %q does not say what the review reviews", col, how)
				}
			}
		})
	}
}

// TestCoversHoldsForMixedUpShapes mixes the parts of the table's queries into shapes Graph does not
// document, as a hand-made review or a future Graph might write them: Covers never panics, a covered
// group is always said how, a review that names only other groups never covers the group, and
// narrowing a review (a guest filter, an inactive duration) never makes it cover more.
func TestCoversHoldsForMixedUpShapes(t *testing.T) {
	var queries, types []string
	for _, r := range ReadScopeTable(t) {
		var d struct {
			Scope                    *graphScope `json:"scope"`
			InstanceEnumerationScope *graphScope `json:"instanceEnumerationScope"`
		}
		if err := json.Unmarshal(r.Definition, &d); err != nil {
			t.Fatal(err)
		}
		queries = append(queries, d.Scope.Query)
		types = append(types, d.Scope.ODataType)
		if e := d.InstanceEnumerationScope; e != nil {
			queries = append(queries, e.Query)
		}
	}
	parts := []string{"", "/", "?", "&", "(", ")", "'", "$filter=", "$count=true", "$top=1", " and ", " eq ", "%", "+",
		"/v1.0", "/beta", "/groups", "/" + TableGroup, "/" + TableOtherGroup, "/members", "/transitiveMembers",
		"/microsoft.graph.user", "./", "id ne '" + TableGroup + "'", "groupTypes/any(c:c eq 'Unified')"}
	rng := rand.New(rand.NewPCG(19, 2))
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	mix := func() string {
		q := pick(queries)
		for range rng.IntN(4) {
			at := rng.IntN(len(q) + 1)
			switch rng.IntN(3) {
			case 0:
				q = q[:at] + pick(parts) + q[at:]
			case 1:
				q = q[:at] + q[min(len(q), at+rng.IntN(8)):]
			default:
				q = q[:at] + pick(queries) + q[at:]
			}
		}
		return q
	}
	for range 20000 {
		scope := Scope{ODataType: pick(types), Query: mix(), QueryType: pick([]string{"", "MicrosoftGraph", "ARM"})}
		if rng.IntN(4) == 0 {
			scope.PrincipalScopes = []Scope{{Query: pick([]string{"/users", "/users?$filter=(userType eq 'Guest')", mix()})}}
			scope.ResourceScopes = []Scope{{Query: mix()}, {Query: mix()}}
		}
		def := Definition{ID: "d", Scope: &scope}
		if rng.IntN(2) == 0 {
			def.InstanceEnumerationScope = &Scope{Query: mix(), QueryType: "MicrosoftGraph"}
		}
		all := scope.Query
		for _, s := range append(scope.PrincipalScopes, scope.ResourceScopes...) {
			all += " " + s.Query
		}
		if def.InstanceEnumerationScope != nil {
			all += " " + def.InstanceEnumerationScope.Query
		}
		for col, g := range TableGroups {
			ok, how := Covers(def, g)
			if ok && !strings.HasPrefix(how, "reviews ") {
				t.Fatalf("%s: covered, how %q, by %+v", col, how, def)
			}
			if ok && namesOnlyOtherGroups(all, g.ID) {
				t.Fatalf("%s: covered by a review that names only other groups: %+v %+v", col, def.Scope, def.InstanceEnumerationScope)
			}
			if ok || def.InstanceEnumerationScope != nil || len(scope.ResourceScopes) > 0 {
				continue
			}
			// Narrowing a review that does not cover the group never makes it cover it.
			for _, narrowed := range []Scope{
				{ODataType: scope.ODataType, Query: scope.Query + "?$filter=(userType eq 'Guest')", QueryType: scope.QueryType},
				{ODataType: "#microsoft.graph.accessReviewInactiveUsersQueryScope", Query: scope.Query, QueryType: scope.QueryType, InactiveDuration: "P30D"},
			} {
				if ok, _ := Covers(Definition{ID: "d", Scope: &narrowed}, g); ok {
					t.Fatalf("%s: narrowing %+v to %+v made it cover the group", col, scope, narrowed)
				}
			}
		}
	}
}

// namesOnlyOtherGroups reports whether every "/groups" in s is followed by an id other than id: such a
// review reaches named groups only, none of them the one judged.
func namesOnlyOtherGroups(s, id string) bool {
	s = strings.ToLower(s)
	seen := false
	for rest := s; ; {
		i := strings.Index(rest, "/groups")
		if i < 0 {
			return seen
		}
		rest = rest[i+len("/groups"):]
		if len(rest) < 37 || rest[0] != '/' || !looksLikeID(rest[1:37]) || strings.EqualFold(rest[1:37], id) {
			return false
		}
		seen = true
	}
}
