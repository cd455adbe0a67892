package capolicy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

func fixtureNames(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures under testdata: %v", err)
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = filepath.ToSlash(f[len("testdata")+1:])
	}
	return names
}

func addSeeds(f *testing.F) {
	for _, name := range fixtureNames(f) {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{}`, `null`, `{"state":"enabled","conditions":{"users":{"includeUsers":"All"}}}`,
		`{"conditions":{"users":{"excludeGuestsOrExternalUsers":{"guestOrExternalUserTypes":"0,none, 99999999999999999999"}}}}`,
		`{"conditions":{"insiderRiskLevels":[15],"authenticationFlows":{"transferMethods":"none"}}}`,
		`{"grantControls":{"operator":"","builtInControls":["mfa",""],"authenticationStrength":{"id":"` + strWeak + `"}}}`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzEvaluate feeds arbitrary bytes through ParsePolicy and, when they parse, checks that Evaluate,
// Normalize and Diff neither panic nor disagree with each other.
func FuzzEvaluate(f *testing.F) {
	addSeeds(f)
	cfg := testConfig()
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			return
		}
		if n := Normalize(p); !reflect.DeepEqual(n, p) {
			t.Fatalf("ParsePolicy did not return a normal form:\n got %+v\nwant %+v", p, n)
		}
		rep := Evaluate(testTenant(p, Desired(cfg)), cfg)
		if len(rep.Policies) != 2 || rep.Verdict == VerdictCompliant && len(rep.Passing) == 0 {
			t.Fatalf("inconsistent report %+v", rep)
		}

		// The raw decoded policy, before Normalize, must get the same codes as its normal form.
		var w wirePolicy
		if err := json.Unmarshal(b, &w); err != nil {
			t.Fatalf("ParsePolicy accepted what json.Unmarshal rejects: %v", err)
		}
		raw := Evaluate(testTenant(w.policy()), cfg)
		norm := Evaluate(testTenant(p), cfg)
		if got, want := codesOf(raw.Policies[0]), codesOf(norm.Policies[0]); !slices.Equal(got, want) {
			t.Fatalf("raw policy codes %v, normal form codes %v", got, want)
		}

		// Marshalling and parsing again changes nothing the model holds. Unrecognised properties are
		// listed, not kept, so they are the one thing a round trip loses.
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		back, err := ParsePolicy(out)
		if err != nil {
			t.Fatalf("ParsePolicy(json.Marshal(p)): %v\njson: %s", err, out)
		}
		known := p
		known.Conditions.Unrecognised = nil
		if known.GrantControls != nil {
			g := *known.GrantControls
			g.Unrecognised = nil
			known.GrantControls = &g
		}
		if d := Diff(Normalize(known), back); len(d) != 0 {
			t.Fatalf("round trip differences %v\njson: %s", d, out)
		}
		if len(Diff(p, p)) != 0 {
			t.Fatal("Diff(p, p) is not empty")
		}
		TopLevelFields(Diff(Desired(cfg), p))
	})
}

// FuzzDiff checks that Diff is symmetric in whether two parsed policies differ.
func FuzzDiff(f *testing.F) {
	names := fixtureNames(f)
	for i := range names {
		a, _ := os.ReadFile(filepath.Join("testdata", names[i]))
		b, _ := os.ReadFile(filepath.Join("testdata", names[(i+1)%len(names)]))
		f.Add(a, b)
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		pa, err := ParsePolicy(a)
		if err != nil {
			return
		}
		pb, err := ParsePolicy(b)
		if err != nil {
			return
		}
		ab, ba := Diff(pa, pb), Diff(pb, pa)
		if len(ab) != len(ba) {
			t.Fatalf("Diff(a, b) has %d differences, Diff(b, a) %d", len(ab), len(ba))
		}
		for i := range ab {
			if ab[i].Field != ba[i].Field || ab[i].Want != ba[i].Got || ab[i].Got != ba[i].Want {
				t.Fatalf("Diff is not symmetric: %+v vs %+v", ab[i], ba[i])
			}
		}
	})
}
