package auditlog

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeBatch checks, for any input: no panic; counts that agree with the hints; the same hints
// with and without the pre-filter (and the same counts when every event is valid JSON); and, for a
// batch encoding/json accepts as an array, one event per element read exactly as encoding/json
// reads it.
func FuzzDecodeBatch(f *testing.F) {
	var all []string
	for _, name := range append(append(append([]string{}, relevantNames...), noiseNames...), "ca-update-companion", "ca-update-failed") {
		r := rec(f, name)
		all = append(all, envelope(r))
		f.Add([]byte(stringBatch(envelope(r))))
		f.Add([]byte(objectBatch(envelope(r))))
	}
	f.Add([]byte(stringBatch(all...)))
	f.Add([]byte(objectBatch(all[:4]...)))
	f.Add([]byte(`["not json", "{\"records\":\"x\"}", "{\"records\":[1,{}]", 42, null, [], {"records":[]}]`))
	f.Add([]byte(`["{\"records\":[{\"operationName\":\"Add member to group\",\"properties\":{\"targetResources\":[{\"id\":\"` + breakGlass + `\"}]}}]}"]`))
	f.Add([]byte(`["\ud83d\ude00 \u0041dd policy"]`))
	f.Add([]byte(`["{\"records\":[{\"category\":\"AuditLogs\",\"operationName\":\"Update conditional access policy\",\"properties\":{\"id\":\"a\",\"result\":\"success\",\"targetResources\":[{\"id\":\"p\",\"type\":\"Policy\",\"modifiedProperties\":[{\"displayName\":\"ConditionalAccessPolicy\",\"oldValue\":null,\"newValue\":\"{}\"}]}]}}]}"]`))
	f.Add([]byte(`[{"records":[{"operationName":"Update policy"},{"operationName":"Update security defaults","tenantId":"x"}]}]`))
	f.Add([]byte(`[`))
	f.Add([]byte(`{}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		filter := watched()
		with, err1 := decodeWith(string(data), filter, true)
		without, err2 := decodeWith(string(data), filter, false)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("errors differ: %v vs %v", err1, err2)
		}
		for _, res := range []Result{with, without} {
			c := res.Counts
			if c.Relevant != len(res.Hints) || res.Reconcile != (len(res.Hints) > 0) {
				t.Fatalf("counts disagree with hints: %s, %d hints", res.LogLine(), len(res.Hints))
			}
			if c.Events < 0 || c.Records < 0 {
				t.Fatalf("negative counts: %s", res.LogLine())
			}
			for reason, n := range c.Skipped {
				if n <= 0 {
					t.Fatalf("skip %s counted %d", reason, n)
				}
			}
		}
		if !reflect.DeepEqual(with.Hints, without.Hints) {
			t.Fatalf("the pre-filter changed the hints:\n with    %+v\n without %+v", briefs(with.Hints), briefs(without.Hints))
		}

		var elems []json.RawMessage
		if json.Unmarshal(data, &elems) != nil {
			return
		}
		if err1 != nil {
			t.Fatalf("encoding/json reads an array, DecodeBatch fails: %v", err1)
		}
		if with.Counts.Events != len(elems) {
			t.Fatalf("events: got %d, want %d", with.Counts.Events, len(elems))
		}
		if with.Counts.Skipped[SkipBatchMalformed] != 0 || with.Counts.Skipped[SkipBatchTruncated] != 0 {
			t.Fatalf("a valid array counted as broken: %s", with.LogLine())
		}
		checkElements(t, data, elems)
		if allEventsValid(elems) && !reflect.DeepEqual(with.Counts, without.Counts) {
			t.Fatalf("the pre-filter changed the counts of valid events:\n with    %s\n without %s", with.LogLine(), without.LogLine())
		}
	})
}

// checkElements reads data with batchReader and compares every element with encoding/json's reading.
func checkElements(t *testing.T, data []byte, elems []json.RawMessage) {
	br := newBatchReader(bytes.NewReader(data))
	if err := br.open(); err != nil {
		t.Fatal(err)
	}
	for i, want := range elems {
		st, kind := br.next(nil)
		if st != stepElem {
			t.Fatalf("element %d: got step %d, want an element", i, st)
		}
		if br.oversized {
			continue
		}
		switch want[0] {
		case '"':
			var s string
			if err := json.Unmarshal(want, &s); err != nil {
				t.Fatal(err)
			}
			// encoding/json replaces invalid UTF-8; batchReader leaves that to the body's decode.
			if kind != elemString || (utf8.Valid(br.body) && string(br.body) != s) {
				t.Fatalf("element %d: got kind %d %q, want string %q", i, kind, br.body, s)
			}
		case '{':
			if kind != elemObject || !bytes.Equal(br.body, want) {
				t.Fatalf("element %d: got kind %d %s, want object %s", i, kind, br.body, want)
			}
		default:
			if kind != elemOther {
				t.Fatalf("element %d: got kind %d, want other for %s", i, kind, want)
			}
		}
	}
	if st, _ := br.next(nil); st != stepEnd {
		t.Fatalf("got step %d after the last element, want the end", st)
	}
}

// allEventsValid reports whether every element is an object, or a string holding valid JSON.
func allEventsValid(elems []json.RawMessage) bool {
	for _, e := range elems {
		if e[0] != '"' {
			continue
		}
		var s string
		if json.Unmarshal(e, &s) != nil {
			return false
		}
		body := strings.TrimLeft(s, " \t\r\n")
		body = strings.TrimLeft(strings.TrimPrefix(body, "\ufeff"), " \t\r\n")
		if len(body) > maxEventBytes || !json.Valid([]byte(body)) {
			return false
		}
	}
	return true
}
