package exclusion

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Ids the placeholders of testdata/scopes.json stand for.
const (
	tableGroup      = "4444d821-ca3b-45cc-98ee-54c00a04deef"
	tableOtherGroup = "119cc181-22f0-4e18-8537-264e7524ee0b"
)

// ScopeRow is one row of testdata/scopes.json: a definition as Graph answers it and its coverage.
type scopeRow struct {
	Name       string          `json:"name"`
	Source     string          `json:"source"`
	Derived    string          `json:"derived"`
	Covers     map[string]bool `json:"covers"`
	Definition json.RawMessage `json:"definition"`
}

// tableGroups are the groups each row is judged for, by the table's column names.
var tableGroups = map[string]GroupInfo{
	"security":       {ID: tableGroup},
	"m365":           {ID: tableGroup, GroupTypes: []string{"Unified"}},
	"dynamicM365":    {ID: tableGroup, GroupTypes: []string{"Unified", "DynamicMembership"}},
	"roleAssignable": {ID: tableGroup, GroupTypes: []string{"Unified"}, RoleAssignable: true},
	"otherM365":      {ID: tableOtherGroup, GroupTypes: []string{"Unified"}},
}

func readScopeTable(t *testing.T) []scopeRow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "scopes.json"))
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.NewReplacer("{groupId}", tableGroup, "{otherGroupId}", tableOtherGroup).Replace(string(b)))
	var table struct {
		Rows []scopeRow `json:"rows"`
	}
	if err := json.Unmarshal(b, &table); err != nil {
		t.Fatal(err)
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
	rows := readScopeTable(t)
	if len(rows) < 30 {
		t.Fatalf("table: got %d rows, want the whole table", len(rows))
	}
	for _, r := range rows {
		t.Run(r.Name, func(t *testing.T) {
			if r.Source == "" && r.Derived == "" {
				t.Fatal("a row names its documentation source or says how it was derived")
			}
			var d struct {
				ID                       string      `json:"id"`
				Scope                    *graphScope `json:"scope"`
				InstanceEnumerationScope *graphScope `json:"instanceEnumerationScope"`
			}
			if err := json.Unmarshal(r.Definition, &d); err != nil {
				t.Fatal(err)
			}
			def := Definition{ID: d.ID, Scope: d.Scope.domain(), InstanceEnumerationScope: d.InstanceEnumerationScope.domain()}
			if len(r.Covers) != len(tableGroups) {
				t.Fatalf("covers: got %d columns, want %d", len(r.Covers), len(tableGroups))
			}
			for col, want := range r.Covers {
				g, ok := tableGroups[col]
				if !ok {
					t.Fatalf("unknown column %q", col)
				}
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
