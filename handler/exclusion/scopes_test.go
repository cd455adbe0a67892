package exclusion

import (
	"encoding/json"
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
