package auditlog

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// quoted is the events binding's value as the host sends it: the batch text as a JSON string.
func quoted(batch string) string {
	b, err := json.Marshal(batch)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// fullDecode is what the handler does without ScanNoise: the envelope decoder unquotes the string
// (refusing what encoding/json refuses), then DecodeBatch reads the batch.
func fullDecode(t testing.TB, b []byte, prefilter bool) (n int, res Result, err error, ok bool) {
	end, found := stringEnd(b, 0)
	if len(b) == 0 || b[0] != '"' || !found {
		return 0, Result{}, nil, false
	}
	var text string
	if json.Unmarshal(b[:end+1], &text) != nil {
		return 0, Result{}, nil, false
	}
	res, err = decodeWith(text, watched(), prefilter)
	return end + 1, res, err, true
}

func TestScanNoise(t *testing.T) {
	noise := func(i int) string { return noiseEvent(t, i, 2000) }
	tests := []struct {
		name  string
		token string
		want  bool // ScanNoise answers
	}{
		{"a batch of noise events is answered", quoted(stringBatch(noise(0), noise(1), noise(2))), true},
		{"an empty batch is answered", quoted(`[]`), true},
		{"a bare noise record is answered and counted as one record", quoted(stringBatch(rec(t, "noise-update-user"))), true},
		{"noise with escaped slashes is answered", quoted(stringBatch(strings.ReplaceAll(noise(3), "/", `\/`))), true},
		{"white space around elements is answered", quoted(" [ " + quoted(noise(0)) + " , " + quoted(noise(1)) + " ] "), true},
		{"records that are not objects are answered and counted", quoted(stringBatch(`{"records":[1,{},"x"]}`)), true},
		{"non-ASCII escaped by the host is answered", `"[\"{\\\"records\\\":[{\\\"identity\\\":\\\"Zo\u00eb \ud83d\ude80\\\"}]}\"]"`, true},
		{"a membership change of another group is answered", quoted(stringBatch(envelope(strings.ReplaceAll(rec(t, "group-add-member"), breakGlass, otherGroup)))), true},

		{"a Conditional Access change is left to the full decode", quoted(stringBatch(noise(0), envelope(rec(t, "ca-update-mfa-removed")))), false},
		{"a companion record is left to the full decode", quoted(stringBatch(envelope(rec(t, "ca-update-companion")))), false},
		{"a break-glass membership change is left to the full decode", quoted(stringBatch(envelope(rec(t, "group-add-member")))), false},
		{"a marker letter escaped in the event is left to the full decode", quoted(stringBatch(`{"records":[{"operationName":"Update conditional \u0061ccess policy"}]}`)), false},
		{"a marker letter escaped by the host is left to the full decode", `"[\"{\\\"records\\\":[{\\\"operationName\\\":\\\"Update conditional \u0061ccess policy\\\"}]}\"]"`, false},
		{"an escaped backslash is left to the full decode", `"[\"{\\\"records\\\":[{\\\"operationName\\\":\\\"x\u005c\\\"}]}\"]"`, false},
		{"events as objects are left to the full decode", quoted(objectBatch(noise(0))), false},
		{"an event that is not JSON is left to the full decode", quoted(stringBatch(noise(0), "not json")), false},
		{"a truncated event is left to the full decode", quoted(stringBatch(`{"records":[{}`)), false},
		{"a records member that is not an array is left to the full decode", quoted(stringBatch(`{"records":{}}`)), false},
		{"a truncated batch is left to the full decode", quoted(`["{}"`), false},
		{"a raw control character is left to the full decode", "\"[\x01]\"", false},
		{"a string that ends inside the array is left to the full decode", `"[\"{}\"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.token + `,"next":1}`)
			n, got, ok := ScanNoise(b, watched())
			if ok != tt.want {
				t.Fatalf("ScanNoise answered %t, want %t", ok, tt.want)
			}
			wantN, want, err, valid := fullDecode(t, b, true)
			if !ok {
				return
			}
			if !valid || err != nil {
				t.Fatalf("ScanNoise answered a value the full decode refuses: %v", err)
			}
			if n != wantN || !reflect.DeepEqual(got.Counts, want.Counts) || len(want.Hints) != 0 {
				t.Fatalf("got %d bytes, %s; the full decode reads %d bytes, %s", n, got.LogLine(), wantN, want.LogLine())
			}
		})
	}
}

// FuzzScanNoise is the differential check of ScanNoise: whenever it answers, the full decode
// (envelope unquoting, then DecodeBatch, with and without the pre-filter) accepts the same bytes,
// finds no hint, and counts the batch exactly as ScanNoise did.
func FuzzScanNoise(f *testing.F) {
	for _, name := range append(append(append([]string{}, relevantNames...), noiseNames...), "ca-update-companion", "ca-update-failed") {
		r := rec(f, name)
		f.Add([]byte(quoted(stringBatch(envelope(r), r))))
		f.Add([]byte(quoted(stringBatch(envelope(r, rec(f, "noise-update-user"))))))
	}
	f.Add([]byte(quoted(stringBatch(noiseEvent(f, 0, 3000), noiseEvent(f, 2, 1000)))))
	f.Add([]byte(quoted(stringBatch(strings.ReplaceAll(noiseEvent(f, 1, 1000), "/", `\/`)))))
	f.Add([]byte(`"[\"{\\\"records\\\":[{\\\"identity\\\":\\\"Zo\u00eb \ud83d\ude80 \\\\\\\"q\\\\\\\"\\\"}, 2]}\"]"`))
	f.Add([]byte(`"[\"{\\\"Records\\\":[], \\\"records\\\":[{}]}\", \" {\\\"a\\\":[1,true,null]}\"]"`))
	f.Add([]byte(`"[\"{\\\"records\\\":[{\\\"operationName\\\":\\\"Add member to group\\\",\\\"x\\\":\\\"` + strings.ToUpper(breakGlass) + `\\\"}]}\"]"`))
	f.Add([]byte(`"[\"\u005cu0041dd policy\"]"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, got, ok := ScanNoise(data, watched())
		if !ok {
			return
		}
		wantN, want, err, valid := fullDecode(t, data, true)
		if !valid || err != nil {
			t.Fatalf("ScanNoise answered a value the full decode refuses (%v): %q", err, data)
		}
		if n != wantN {
			t.Fatalf("ScanNoise read %d bytes, the string is %d", n, wantN)
		}
		if len(want.Hints) != 0 || want.Reconcile || want.Counts.Relevant != 0 || want.Counts.Skipped[SkipCompanionRecord] != 0 {
			t.Fatalf("ScanNoise called noise a batch the full decode finds relevant: %s", want.LogLine())
		}
		if !reflect.DeepEqual(got.Counts, want.Counts) {
			t.Fatalf("counts: ScanNoise %s, full decode %s", got.LogLine(), want.LogLine())
		}
		_, all, _, _ := fullDecode(t, data, false)
		if len(all.Hints) != 0 || all.Counts.Skipped[SkipCompanionRecord] != 0 {
			t.Fatalf("ScanNoise called noise a batch the decode without pre-filter finds relevant: %s", all.LogLine())
		}
	})
}

// BenchmarkScanNoise is BenchmarkDecodeBatchNoise's batch as the host sends it, answered by
// ScanNoise without decoding; bytes are the batch text's, to compare the two.
func BenchmarkScanNoise(b *testing.B) {
	batch := stringBatch(benchEvents(b)...)
	token := []byte(quoted(batch))
	_, res, ok := ScanNoise(token, watched())
	if !ok || res.Counts.Events != 100 {
		b.Fatalf("got %t %s, want an answer for 100 events", ok, res.LogLine())
	}
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		ScanNoise(token, watched())
	}
}
