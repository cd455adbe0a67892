package azfunc

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// The in-place unescaping must read every string exactly as encoding/json does.
func TestStringsDecodeLikeEncodingJSON(t *testing.T) {
	tests := []struct{ name, lit string }{
		{"plain", `"hello"`},
		{"empty", `""`},
		{"escaped quotes and backslashes", `"a\"b\\c\/d"`},
		{"control escapes", `"\b\f\n\r\t"`},
		{"unicode escape", `"caf\u00e9 \u20ac"`},
		{"upper-case hex", `"\u00C9\u00c9"`},
		{"surrogate pair", `"\ud83d\ude00!"`},
		{"lone high surrogate", `"\ud83d!"`},
		{"lone low surrogate", `"\ude00"`},
		{"high surrogate then non-surrogate escape", `"\ud83d\u0041"`},
		{"two high surrogates", `"\ud83d\ud83d\ude00"`},
		{"escaped NUL", `"a\u0000b"`},
		{"raw multibyte UTF-8", `"žluťoučký kůň"`},
		{"double-encoded event body", `"[\"{\\\"records\\\":[{\\\"a\\\":\\\"\\\\u00e9\\\"}]}\"]"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want string
			if err := json.Unmarshal([]byte(tt.lit), &want); err != nil {
				t.Fatal(err)
			}
			data, _, err := decodeEnvelope(strings.NewReader(`{"Data":{"v":`+tt.lit+`}}`), 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := data["v"].Text(); got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestInvalidEnvelopesAreRefused(t *testing.T) {
	for _, body := range []string{
		`{"Data":{"v":"\x"}}`, `{"Data":{"v":"\u12"}}`, `{"Data":{"v":"a` + "\n" + `b"}}`,
		`{"Data":{"v":"abc}}`, `{"Data":{"v":}}`, `{"Data":{"v":tru}}`, `{"Data":{"v":[1,}}`,
		`{"Data":{"v":{"a":1}}`, `{"Data" {"v":1}}`, `{"Data":{"v":1,}}`, `{"Data":{v:1}}`,
		`{"Data":{"v":1}} x`, `{"Data":{"v":01}}`, `{"Data":{"v":"x"}`, `{"Data":[]}`, `[]`, ``,
		`{"Data":{"v":[` + strings.Repeat("[", 20000) + `]}}`,
	} {
		if _, _, err := decodeEnvelope(strings.NewReader(body), 0, nil); err == nil {
			t.Errorf("accepted %q", body)
		}
	}
}

// jsonScanner is a StringScanner that answers for every string encoding/json reads, with the
// decoded string as its verdict.
func jsonScanner(binding string, b []byte) (int, any) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var s string
	if dec.Decode(&s) != nil {
		return 0, nil
	}
	return int(dec.InputOffset()), binding + "=" + s
}

func TestScannedStringsAreDecodedOnlyWhenAsked(t *testing.T) {
	body := `{"Metadata":{"m":"not offered"},"Data":{"events":"[\"{\\\"records\\\":[]}\"]","n":4,"o":{"a":"x"}}}`
	data, meta, err := decodeEnvelope(strings.NewReader(body), 0, jsonScanner)
	if err != nil {
		t.Fatal(err)
	}
	v := data["events"]
	if got, want := v.Verdict(), `events=["{\"records\":[]}"]`; got != want {
		t.Errorf("verdict: got %v, want %v", got, want)
	}
	if got, want := v.Text(), `["{\"records\":[]}"]`; !v.IsString() || got != want {
		t.Errorf("text: got %q (string %t), want the string %q", got, v.IsString(), want)
	}
	var arr []string
	if err := v.Decode(&arr); err != nil || len(arr) != 1 || arr[0] != `{"records":[]}` {
		t.Errorf("decode: got %q, %v; want one event body", arr, err)
	}
	if meta["m"].Verdict() != nil || data["n"].Verdict() != nil || data["o"].Verdict() != nil {
		t.Error("only strings of Data are offered to the scanner")
	}
}

func TestDecliningScannerChangesNothing(t *testing.T) {
	body := `{"Data":{"events":"[\"x\"]"}}`
	data, _, err := decodeEnvelope(strings.NewReader(body), 0, func(string, []byte) (int, any) { return 0, "ignored" })
	if err != nil {
		t.Fatal(err)
	}
	if v := data["events"]; v.Verdict() != nil || v.Text() != `["x"]` {
		t.Errorf("got verdict %v and text %q, want none and the decoded string", v.Verdict(), v.Text())
	}
}

// FuzzEnvelopeDecoder checks the decoder against encoding/json: it never accepts invalid JSON, and
// every value it returns equals encoding/json's reading of it.
func FuzzEnvelopeDecoder(f *testing.F) {
	for _, name := range []string{"eventhub-batch.json", "eventhub-batch-default-datatype.json", "timer.json", "http-get.json", "http-post.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"Data":{"v":"\ud83d\ude00\u00e9\"\\"},"Metadata":{"n":1,"o":{"a":[1,"x"]}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		sdata, smeta, serr := decodeEnvelope(bytes.NewReader(orig), int64(len(orig)), jsonScanner)
		data, meta, err := decodeEnvelope(bytes.NewReader(body), int64(len(body)), nil)
		if (err == nil) != (serr == nil) {
			t.Fatalf("with a scanner the decoder says %v, without %v", serr, err)
		}
		if err != nil {
			return
		}
		for section, pair := range map[string][2]map[string]Value{"Data": {data, sdata}, "Metadata": {meta, smeta}} {
			if len(pair[0]) != len(pair[1]) {
				t.Fatalf("%s: %d values with a scanner, %d without", section, len(pair[1]), len(pair[0]))
			}
			for k, v := range pair[0] {
				if sv := pair[1][k]; sv.IsString() != v.IsString() || sv.Text() != v.Text() {
					t.Fatalf("%s.%s: with a scanner %q, without %q", section, k, sv.Text(), v.Text())
				}
			}
		}
		if !json.Valid(orig) {
			t.Fatalf("accepted invalid JSON %q", orig)
		}
		var ref map[string]json.RawMessage
		if err := json.Unmarshal(orig, &ref); err != nil {
			t.Fatalf("encoding/json refuses what was accepted: %v", err)
		}
		for section, got := range map[string]map[string]Value{"Data": data, "Metadata": meta} {
			var refSection map[string]json.RawMessage
			matches := 0
			for k, v := range ref {
				if strings.EqualFold(k, section) {
					matches++
					_ = json.Unmarshal(v, &refSection)
				}
			}
			quoted := []byte(`"` + strings.ToLower(section) + `"`)
			if matches != 1 || bytes.Count(bytes.ToLower(orig), quoted) > 1 || bytes.Contains(orig, []byte(`\u`)) {
				continue // a section given twice (in any case): encoding/json merges, the decoder keeps the last
			}
			for k, v := range got {
				rv, ok := refSection[k]
				if !ok {
					t.Fatalf("%s.%s decoded, but encoding/json has no such key", section, k)
				}
				if v.IsString() {
					var s string
					if json.Unmarshal(rv, &s) == nil && utf8.Valid(v.text) && s != string(v.text) {
						t.Fatalf("%s.%s = %q, encoding/json reads %q", section, k, v.text, s)
					}
					continue
				}
				var a, b bytes.Buffer
				if json.Compact(&a, v.raw) != nil || json.Compact(&b, rv) != nil || a.String() != b.String() {
					t.Fatalf("%s.%s = %s, encoding/json reads %s", section, k, v.raw, rv)
				}
			}
		}
	})
}
