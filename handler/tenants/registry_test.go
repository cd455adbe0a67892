package tenants

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	t1 = "11111111-0000-4000-8000-000000000001"
	t2 = "22222222-0000-4000-8000-000000000002"
	u1 = "aaaaaaaa-0000-4000-8000-000000000001"
	g1 = "bbbbbbbb-0000-4000-8000-000000000001"
)

func TestParseAGoodRegistry(t *testing.T) {
	doc := `{"tenants": [
	  {"id": "` + strings.ToUpper(t1) + `", "displayName": " Contoso ", "breakGlassUserIds": ["` + u1 + `"], "breakGlassGroupIds": ["` + g1 + `"], "mode": "Remediate"},
	  {"id": "` + t2 + `", "displayName": "Fabrikam", "breakGlassUserIds": [], "breakGlassGroupIds": []}
	]}`
	reg, err := Parse(strings.NewReader(doc), ModeAlert)
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.Tenants) != 2 {
		t.Fatalf("%d tenants", len(reg.Tenants))
	}
	c := reg.Tenants[0]
	if c.ID != t1 || c.DisplayName != "Contoso" || c.Mode != ModeRemediate || len(c.BreakGlassUserIDs) != 1 || c.BreakGlassGroupIDs[0] != g1 {
		t.Errorf("contoso: %+v", c)
	}
	if f := reg.Tenants[1]; f.Mode != ModeAlert {
		t.Errorf("fabrikam: mode %q, want the global alert", f.Mode)
	}
	if got, ok := reg.Find(strings.ToUpper(t2)); !ok || got.DisplayName != "Fabrikam" {
		t.Errorf("find: %+v %v", got, ok)
	}
}

// Every malformed entry fails the whole registry, naming the entry and the field: a tenant is never
// silently dropped.
func TestParseRefusesAndNames(t *testing.T) {
	entry := func(s string) string {
		return `{"tenants": [{"id": "` + t1 + `", "displayName": "Contoso"}, ` + s + `]}`
	}
	for _, tt := range []struct {
		name, doc string
		want      []string // all must be in the error
	}{
		{"typo in a field", entry(`{"id": "` + t2 + `", "displayName": "F", "breakGlassUserId": ["` + u1 + `"]}`), []string{"tenants[1] (" + t2 + ")", "breakGlassUserId", "unknown field"}},
		{"id not a GUID", entry(`{"id": "fabrikam.onmicrosoft.com", "displayName": "F"}`), []string{"tenants[1]", ".id", "not a GUID"}},
		{"no id", entry(`{"displayName": "F"}`), []string{"tenants[1]", ".id", "missing"}},
		{"no name", entry(`{"id": "` + t2 + `"}`), []string{"tenants[1] (" + t2 + ").displayName", "missing"}},
		{"bad mode", entry(`{"id": "` + t2 + `", "displayName": "F", "mode": "fix"}`), []string{"tenants[1] (" + t2 + ").mode", `"fix"`}},
		{"bad user id", entry(`{"id": "` + t2 + `", "displayName": "F", "breakGlassUserIds": ["bob@fabrikam.com"]}`), []string{".breakGlassUserIds", "item 0", "not a GUID"}},
		{"duplicate group", entry(`{"id": "` + t2 + `", "displayName": "F", "breakGlassGroupIds": ["` + g1 + `", "` + strings.ToUpper(g1) + `"]}`), []string{".breakGlassGroupIds", "listed twice"}},
		{"ids as a string", entry(`{"id": "` + t2 + `", "displayName": "F", "breakGlassUserIds": "` + u1 + `"}`), []string{"tenants[1] (" + t2 + ").breakGlassUserIds", "want a"}},
		{"duplicate tenant", entry(`{"id": "` + strings.ToUpper(t1) + `", "displayName": "Again"}`), []string{"tenants[1] (" + t1 + ").id", "same tenant as tenants[0]"}},
		{"entry not an object", entry(`"` + t2 + `"`), []string{"tenants[1]", "not a JSON object"}},
		{"no tenants", `{"tenant": []}`, []string{"not a document"}},
		{"empty tenants", `{"tenants": []}`, []string{"empty"}},
		{"trailing data", `{"tenants": [{"id": "` + t1 + `", "displayName": "C"}]} {}`, []string{"data after the document"}},
		{"not JSON", `tenants: [contoso]`, []string{"not a document"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg, err := Parse(strings.NewReader(tt.doc), ModeAlert)
			if err == nil {
				t.Fatalf("accepted: %+v", reg)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if len(reg.Tenants) != 0 {
				t.Errorf("a refused registry still returned %d tenants", len(reg.Tenants))
			}
		})
	}
}

func TestParseBoundsTheDocument(t *testing.T) {
	big := `{"tenants": [{"id": "` + t1 + `", "displayName": "` + strings.Repeat("x", MaxBytes) + `"}]}`
	if _, err := Parse(strings.NewReader(big), ModeAlert); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a document over %d bytes: %v", MaxBytes, err)
	}
}

type blobs struct {
	data  []byte
	found bool
	err   error
}

func (b blobs) ReadBlob(_ context.Context, name string, _ int64) ([]byte, bool, error) {
	if name != BlobName {
		return nil, false, errors.New("wrong blob " + name)
	}
	return b.data, b.found, b.err
}

func TestLoadFromAFileOrStorage(t *testing.T) {
	good := []byte(`{"tenants": [{"id": "` + t1 + `", "displayName": "Contoso"}]}`)
	path := filepath.Join(t.TempDir(), "tenants.json")
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if reg, found, err := Load(ctx, Source{File: path, Blobs: blobs{err: errors.New("not asked")}}, ModeAlert); err != nil || !found || reg.Tenants[0].ID != t1 {
		t.Errorf("file: %+v %v %v", reg, found, err)
	}
	if _, _, err := Load(ctx, Source{File: path + ".missing"}, ModeAlert); err == nil || !strings.Contains(err.Error(), "TENANTS_FILE") {
		t.Errorf("missing file: %v", err)
	}
	if reg, found, err := Load(ctx, Source{Blobs: blobs{data: good, found: true}}, ModeAlert); err != nil || !found || len(reg.Tenants) != 1 {
		t.Errorf("blob: %+v %v %v", reg, found, err)
	}
	if _, found, err := Load(ctx, Source{Blobs: blobs{}}, ModeAlert); err != nil || found {
		t.Errorf("no blob: found %v, %v; want the single-tenant default", found, err)
	}
	if _, _, err := Load(ctx, Source{Blobs: blobs{err: errors.New("storage down")}}, ModeAlert); err == nil {
		t.Error("a storage failure was taken for no registry")
	}
	if _, _, err := Load(ctx, Source{Blobs: blobs{data: []byte(`{"tenants": [{"id": "x"}]}`), found: true}}, ModeAlert); err == nil || !strings.Contains(err.Error(), "caguard/tenants.json") {
		t.Errorf("bad blob: %v, want an error naming the blob", err)
	}
	if _, found, err := Load(ctx, Source{}, ModeAlert); err != nil || found {
		t.Errorf("no source: %v %v", found, err)
	}
}

func TestSingleIsTodaysTenant(t *testing.T) {
	reg := Single(strings.ToUpper(t1), []string{u1}, nil, ModeRemediate)
	if len(reg.Tenants) != 1 || reg.Tenants[0].ID != t1 || reg.Tenants[0].Mode != ModeRemediate || reg.Tenants[0].BreakGlassUserIDs[0] != u1 {
		t.Errorf("%+v", reg)
	}
}
