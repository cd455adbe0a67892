package auditlog

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestMayMatter(t *testing.T) {
	d := newDecoder(watched())
	t.Run("every relevant fixture and the companion get through", func(t *testing.T) {
		for _, name := range append(relevantNames, "ca-update-companion", "ca-update-failed") {
			if !d.mayMatter([]byte(envelope(rec(t, name)))) {
				t.Errorf("%s: got false, want true", name)
			}
		}
	})
	t.Run("no noise fixture gets through", func(t *testing.T) {
		for _, name := range noiseNames {
			if d.mayMatter([]byte(envelope(rec(t, name)))) {
				t.Errorf("%s: got true, want false (noise would be decoded)", name)
			}
		}
	})

	tests := []struct {
		name string
		f    Filter
		body string
		want bool
	}{
		{"a marker in lower case", watched(), `{"operationName":"update conditional access policy"}`, true},
		{"a marker in mixed case", watched(), `{"operationName":"uPdAtE CoNdItIoNaL AcCeSs PoLiCy"}`, true},
		{"a marker at the very end", watched(), `x Named location`, true},
		{"a marker at the very start", watched(), `Security defaults`, true},
		{"a marker with an escaped letter", watched(), `{"operationName":"Update security def\u0061ults"}`, true},
		{"a marker with an escaped upper-case letter", watched(), `{"operationName":"Update security def\u0041ults"}`, true},
		{"a marker with an escaped space", watched(), `{"operationName":"Update security\u0020defaults"}`, true},
		{"an escape with upper-case hex digits", watched(), `{"operationName":"Update security\u002Ddefaults"}`, true},
		{"an escaped apostrophe hides nothing", watched(), `{"displayName":"O\u0027Brien"}`, false},
		{"an escaped non-ASCII letter hides nothing", watched(), `{"displayName":"Ren\u00e9e"}`, false},
		{"an escape cut short", watched(), `{"displayName":"\u00`, false},
		{"words without their prefix", watched(), `{"a":"policy location strength defaults group"}`, false},
		{"a prefix without its word", watched(), `{"a":"conditional access named security authentication member to"}`, false},
		{"a word glued to its prefix", watched(), `{"a":"namedlocation securitydefaults"}`, false},
		{"add policy", watched(), `"Add policy"`, true},
		{"a membership change of a break-glass group", watched(), `"Add member to group" "` + breakGlass + `"`, true},
		{"a break-glass group id in upper case", watched(), `"Remove member from group" "` + strings.ToUpper(breakGlass) + `"`, true},
		{"a membership change of another group", watched(), `"Add member to group" "` + otherGroup + `"`, false},
		{"a membership change with no groups configured", Filter{}, `"Add member to group" "` + breakGlass + `"`, false},
		{"a break-glass group id without a membership change", watched(), `"Add owner to group" "` + breakGlass + `"`, false},
		{"a membership change of another group beside a relevant marker", watched(), `"Add member to group" "` + otherGroup + `" "Add named location"`, true},
		{"a group id with an escaped digit", watched(), `"Add member to group" "\u0036e0d"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newDecoder(tt.f).mayMatter([]byte(tt.body)); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPrefilterNeverChangesResult decodes variations of every fixture with and without the
// pre-filter and requires the same result: the pre-filter may only save work.
func TestPrefilterNeverChangesResult(t *testing.T) {
	var names []string
	names = append(names, relevantNames...)
	names = append(names, noiseNames...)
	names = append(names, "ca-update-companion", "ca-update-failed")
	variants := map[string]func(string) string{
		"as written": func(s string) string { return s },
		// Key names match ignoring case, ids compare ignoring case: an all-capitals record is still relevant.
		"in capitals":       func(s string) string { return literalsLower(strings.ToUpper(s)) },
		"in lower case":     strings.ToLower,
		"with spaces":       func(s string) string { return strings.ReplaceAll(s, `":`, `" : `) },
		"with escaped text": escapeSomeLetters,
	}
	for _, name := range names {
		for vname, v := range variants {
			t.Run(name+" "+vname, func(t *testing.T) {
				body := v(rec(t, name))
				batch := stringBatch(envelope(body), body, envelope(rec(t, "noise-update-user"), body))
				with, err1 := decodeWith(batch, watched(), true)
				without, err2 := decodeWith(batch, watched(), false)
				if err1 != nil || err2 != nil {
					t.Fatalf("errors: %v, %v", err1, err2)
				}
				if !reflect.DeepEqual(with, without) {
					t.Errorf("with the pre-filter:\n got %s %+v\nwithout:\n got %s %+v", with.LogLine(), briefs(with.Hints), without.LogLine(), briefs(without.Hints))
				}
			})
		}
	}
}

// literalsLower turns NULL, TRUE and FALSE back into JSON literals.
func literalsLower(s string) string {
	return strings.NewReplacer(":NULL", ":null", ":TRUE", ":true", ":FALSE", ":false").Replace(s)
}

// escapeSomeLetters writes every 'e' and every space inside string values as \u00XX.
func escapeSomeLetters(s string) string {
	return strings.NewReplacer("e", `\u0065`, " ", `\u0020`).Replace(s)
}

func decodeWith(batch string, f Filter, prefilter bool) (Result, error) {
	d := newDecoder(f)
	d.prefilter = prefilter
	return d.decodeBatch(strings.NewReader(batch))
}

func TestScanEnvelope(t *testing.T) {
	tests := []struct {
		name string
		body string
		want envelopeScan
	}{
		{"an envelope of three records", `{"records":[{},{"a":[1,{"b":"}"}]},{}]}`, envelopeScan{records: recordsArray, count: 3}},
		{"an empty records array", `{"records":[]}`, envelopeScan{records: recordsArray}},
		{"records that are not all objects", `{"records":[1,"x",null,{},[{}],true,-2.5e3]}`, envelopeScan{records: recordsArray, count: 7, nonObject: 6}},
		{"strings holding brackets and escaped quotes", `{"records":[{"a":"[\"{"},{"b":"\\"}]}`, envelopeScan{records: recordsArray, count: 2}},
		{"a name matched ignoring case", `{"Records":[{}]}`, envelopeScan{records: recordsArray, count: 1}},
		{"an escaped name", `{"r\u0065cords":[{},{}]}`, envelopeScan{records: recordsArray, count: 2}},
		{"the last of two records members wins", `{"records":[{},{}],"RECORDS":[{}]}`, envelopeScan{records: recordsArray, count: 1}},
		{"a records member after other members", `{"x":{"records":[1,2]},"y":[[]],"records":[{}]}`, envelopeScan{records: recordsArray, count: 1}},
		{"a nested records member is not the envelope's", `{"x":{"records":[1,2]}}`, envelopeScan{records: recordsMissing}},
		{"records that is a string", `{"records":"[{}]"}`, envelopeScan{records: recordsOther}},
		{"records that is null", `{"records":null}`, envelopeScan{records: recordsOther}},
		{"records that is an object", `{"records":{"a":[]}}`, envelopeScan{records: recordsOther}},
		{"a bare record", `{"time":"x","properties":{"records":[]}}`, envelopeScan{records: recordsMissing}},
		{"whitespace everywhere", " {\n \"records\" : [ {} ,\t{} ] } \n", envelopeScan{records: recordsArray, count: 2}},
		{"cut inside a string", `{"records":[{"a":"b`, envelopeScan{status: scanTruncated, records: recordsArray}},
		{"cut inside an escape", `{"records":[{"a":"b\`, envelopeScan{status: scanTruncated, records: recordsArray}},
		{"cut inside a member name", `{"reco`, envelopeScan{status: scanTruncated}},
		{"cut after a record", `{"records":[{}`, envelopeScan{status: scanTruncated, records: recordsArray}},
		{"mismatched brackets", `{"records":[{]}`, envelopeScan{status: scanMalformed, records: recordsArray}},
		{"text after the envelope", `{"records":[]}x`, envelopeScan{status: scanMalformed, records: recordsArray}},
		{"a second object after the envelope", `{"records":[]} {}`, envelopeScan{status: scanMalformed, records: recordsArray}},
		{"a name that is not a string", `{records:[]}`, envelopeScan{status: scanMalformed}},
		{"a closing bracket too many", `{}]`, envelopeScan{status: scanMalformed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(strings.TrimLeft(tt.body, " \n"))
			got, _ := scanEnvelope(body, nil)
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if got.status == scanOK {
				checkScanAgainstJSON(t, body, got)
			}
		})
	}
}

// checkScanAgainstJSON compares a scan of a valid body with what encoding/json makes of it.
func checkScanAgainstJSON(t *testing.T, body []byte, got envelopeScan) {
	t.Helper()
	var env struct {
		Records json.RawMessage `json:"records"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	want := envelopeScan{}
	switch {
	case env.Records == nil:
		want.records = recordsMissing
	case env.Records[0] != '[':
		want.records = recordsOther
	default:
		var recs []json.RawMessage
		if err := json.Unmarshal(env.Records, &recs); err != nil {
			t.Fatal(err)
		}
		want.records, want.count = recordsArray, len(recs)
		for _, r := range recs {
			if r[0] != '{' {
				want.nonObject++
			}
		}
	}
	if got != want {
		t.Errorf("scan %+v disagrees with encoding/json %+v", got, want)
	}
}

func TestBatchReaderStrings(t *testing.T) {
	tests := []struct {
		name string
		elem string // a JSON string literal
	}{
		{"plain text", `"abc"`},
		{"every short escape", `"\" \\ \/ \b \f \n \r \t"`},
		{"unicode escapes", `"\u00e9\u4e2d\u0041"`},
		{"a surrogate pair", `"\ud83d\ude00"`},
		{"a lone high surrogate", `"\ud83dx"`},
		{"a lone low surrogate", `"\ude00"`},
		{"a high surrogate followed by a non-surrogate escape", `"\ud83d\u0041"`},
		{"an empty string", `""`},
		{"escapes at the end", `"abc\\"`},
		{"multi-byte text", `"héllo wörld ✓"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want string
			if err := json.Unmarshal([]byte(tt.elem), &want); err != nil {
				t.Fatal(err)
			}
			for _, pad := range []int{0, readBufSize - 3, readBufSize - 1} {
				// Padding moves the element across the read buffer's boundary.
				batch := "[" + strings.Repeat(" ", pad) + tt.elem + "]"
				br := newBatchReader(strings.NewReader(batch))
				if err := br.open(); err != nil {
					t.Fatal(err)
				}
				st, kind := br.next(nil)
				if st != stepElem || kind != elemString {
					t.Fatalf("pad %d: got step %d kind %d, want a string", pad, st, kind)
				}
				if got := string(br.body); got != want {
					t.Errorf("pad %d: got %q, want %q", pad, got, want)
				}
				if st, _ := br.next(nil); st != stepEnd {
					t.Errorf("pad %d: got step %d after the element, want the end", pad, st)
				}
			}
		})
	}
}

func TestBatchReaderObjects(t *testing.T) {
	obj := `{"a":"}]\"[{","b":[{"c":{}}],"d":"\\"}`
	br := newBatchReader(strings.NewReader(`[` + obj + `, ` + obj + `]`))
	if err := br.open(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		st, kind := br.next(nil)
		if st != stepElem || kind != elemObject || !bytes.Equal(br.body, []byte(obj)) {
			t.Fatalf("element %d: got step %d kind %d body %s, want the object", i, st, kind, br.body)
		}
	}
	if st, _ := br.next(nil); st != stepEnd {
		t.Errorf("got step %d, want the end", st)
	}
}
