package auditlog

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
)

// scanStatus is the outcome of a structural walk of an event body.
type scanStatus int

const (
	scanOK        scanStatus = iota
	scanTruncated            // ended inside a string or an open object or array
	scanMalformed            // mismatched brackets, a non-string key, text after the envelope
)

// recordsShape is what the envelope's records member holds.
type recordsShape int

const (
	recordsMissing recordsShape = iota // no records member: the body is a bare record
	recordsArray
	recordsOther
)

// envelopeScan is what scanEnvelope found.
type envelopeScan struct {
	status    scanStatus
	records   recordsShape
	count     int // elements of the records array
	nonObject int // of which are not objects
}

// scanEnvelope walks an event body that starts with '{' without decoding it: it follows strings and
// brackets, finds the records member of the envelope the way encoding/json would (names matched
// ignoring case, the last one winning), and counts its elements. It costs a fraction of a decode and
// allocates nothing (stack is reused), which is what lets noise events be counted exactly without
// being decoded. It does not check the grammar between brackets; for a body that is valid JSON its
// answer equals encoding/json's.
func scanEnvelope(body []byte, stack []byte) (envelopeScan, []byte) {
	var s envelopeScan
	stack = stack[:0]
	expectKey := false    // at depth 1 the next string is a member name
	recordsValue := false // at depth 1 the next value is the records member's
	inRecords := false    // the records array is open; it is stack[1]
	count, nonObject := 0, 0
	opened := false
	for i := 0; i < len(body); {
		c := body[i]
		depth := len(stack)
		switch c {
		case ' ', '\t', '\n', '\r', ':':
			i++
			continue
		case ',':
			if depth == 1 {
				expectKey = true
			}
			i++
			continue
		case '}', ']':
			if depth == 0 || stack[depth-1] != opener(c) {
				s.status = scanMalformed
				return s, stack
			}
			stack = stack[:depth-1]
			if inRecords && depth == 2 {
				inRecords = false
				s.count, s.nonObject = count, nonObject
			}
			i++
			if depth == 1 {
				for ; i < len(body); i++ {
					if !isSpace(body[i]) {
						s.status = scanMalformed
						return s, stack
					}
				}
				return s, stack
			}
			continue
		}

		// c starts a member name or a value.
		switch {
		case depth == 0 && (opened || c != '{'):
			s.status = scanMalformed
			return s, stack
		case depth == 1 && expectKey:
			if c != '"' {
				s.status = scanMalformed
				return s, stack
			}
			end, ok := stringEnd(body, i)
			if !ok {
				s.status = scanTruncated
				return s, stack
			}
			recordsValue = isRecordsName(body[i : end+1])
			expectKey = false
			i = end + 1
			continue
		case depth == 1 && recordsValue:
			recordsValue = false
			s.count, s.nonObject = 0, 0
			if c == '[' {
				s.records = recordsArray
				inRecords = true
				count, nonObject = 0, 0
			} else {
				s.records = recordsOther
			}
		case depth == 1:
			recordsValue = false
		case depth == 2 && inRecords:
			count++
			if c != '{' {
				nonObject++
			}
		}

		switch c {
		case '"':
			end, ok := stringEnd(body, i)
			if !ok {
				s.status = scanTruncated
				return s, stack
			}
			i = end + 1
		case '{', '[':
			if depth >= maxDepth {
				s.status = scanMalformed
				return s, stack
			}
			stack = append(stack, c)
			if depth == 0 {
				opened, expectKey = true, true
			}
			i++
		default:
			// A number or literal: skip to the next delimiter.
			i++
			for i < len(body) && !isDelim(body[i]) {
				i++
			}
		}
	}
	s.status = scanTruncated
	return s, stack
}

// stringEnd returns the index of the quote that closes the string opening at body[i]. A byte loop,
// for the reason given at batchReader.readString.
func stringEnd(body []byte, i int) (int, bool) {
	for j := i + 1; j < len(body); j++ {
		switch body[j] {
		case '"':
			return j, true
		case '\\':
			j++
		}
	}
	return 0, false
}

// isRecordsName reports whether a quoted member name is "records" as encoding/json would match it.
func isRecordsName(quoted []byte) bool {
	name := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(name, '\\') >= 0 {
		var s string
		if json.Unmarshal(quoted, &s) != nil {
			return false
		}
		name = []byte(s)
	}
	return bytes.EqualFold(name, []byte("records"))
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isDelim(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', ':', '"', '{', '}', '[', ']':
		return true
	}
	return false
}

// mayMatter is the pre-filter: it reports whether b (an event body or one record) may hold a record
// that the classifier would call relevant or a companion. It must never answer false for such a
// record; a false true costs one decode. See the package documentation for the argument.
//
// Every marker ends in a space followed by a word, so the scan jumps from space to space
// (bytes.IndexByte) and compares a few bytes, ignoring ASCII case, at each one.
func (d *decoder) mayMatter(b []byte) bool {
	return hasEscapeOf(b, markerByte) || d.markersIn(b)
}

// markersIn reports whether b holds a marker as it stands (see mayMatter). Every marker ends in a
// space and a word, so it looks at every space, eight bytes at a time: spaces come every few dozen
// bytes in audit records, too often for a call per space.
func (d *decoder) markersIn(b []byte) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	groupsChecked := false
	at := func(p int) bool {
		switch markerAt(b, p) {
		case markerRelevant:
			return true
		case markerMembership:
			if len(d.groups) == 0 || groupsChecked {
				return false
			}
			groupsChecked = true
			return d.containsGroup(b)
		}
		return false
	}
	i := 0
	for ; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:]) ^ (' ' * ones)
		// The high bit of a byte is set where v has a zero byte (a space), and possibly right
		// after one: each candidate is checked.
		for m := (v - ones) &^ v & highs; m != 0; m &= m - 1 {
			if p := i + bits.TrailingZeros64(m)/8; b[p] == ' ' && at(p) {
				return true
			}
		}
	}
	for ; i < len(b); i++ {
		if b[i] == ' ' && at(i) {
			return true
		}
	}
	return false
}

type marker int

const (
	markerNone marker = iota
	markerRelevant
	markerMembership
)

// markerAt reports which marker, if any, has its last space at b[p]. The markers are the substrings
// that classifyActivity looks for; keep the two in step.
func markerAt(b []byte, p int) marker {
	if p+1 >= len(b) {
		return markerNone
	}
	switch lowerASCII(b[p+1]) {
	case 'p':
		if wordAt(b, p, "policy") && (prefixAt(b, p, "conditional access") || prefixAt(b, p, "add") ||
			prefixAt(b, p, "update") || prefixAt(b, p, "delete")) {
			return markerRelevant
		}
	case 'l':
		if wordAt(b, p, "location") && prefixAt(b, p, "named") {
			return markerRelevant
		}
	case 's':
		if wordAt(b, p, "strength") && prefixAt(b, p, "authentication") {
			return markerRelevant
		}
	case 'd':
		if wordAt(b, p, "defaults") && prefixAt(b, p, "security") {
			return markerRelevant
		}
	case 'g':
		if wordAt(b, p, "group") && (prefixAt(b, p, "member to") || prefixAt(b, p, "member from")) {
			return markerMembership
		}
	}
	return markerNone
}

func wordAt(b []byte, p int, word string) bool {
	return p+1+len(word) <= len(b) && equalFoldASCII(b[p+1:p+1+len(word)], word)
}

func prefixAt(b []byte, p int, prefix string) bool {
	return p >= len(prefix) && equalFoldASCII(b[p-len(prefix):p], prefix)
}

// containsGroup reports whether b contains one of the break-glass group ids, ignoring ASCII case.
func (d *decoder) containsGroup(b []byte) bool {
	for _, g := range d.groups {
		if indexFoldASCII(b, g) >= 0 {
			return true
		}
	}
	return false
}

// indexFoldASCII returns the index of the first match of lower (lower-case ASCII) in b, ignoring
// ASCII case, or -1. It allocates nothing: it searches (bytes.Index) for the longest run of lower
// that has no case (digits and hyphens, in a group id), which is rare in a body, and compares
// around each hit.
func indexFoldASCII(b []byte, lower string) int {
	start, end := 0, 0
	for i := 0; i < len(lower); {
		if c := lower[i]; c >= 'a' && c <= 'z' {
			i++
			continue
		}
		j := i
		for j < len(lower) && (lower[j] < 'a' || lower[j] > 'z') {
			j++
		}
		if j-i > end-start {
			start, end = i, j
		}
		i = j
	}
	if end == start {
		for i := 0; i+len(lower) <= len(b); i++ {
			if equalFoldASCII(b[i:i+len(lower)], lower) {
				return i
			}
		}
		return -1
	}
	anchor := []byte(lower[start:end])
	for i := start; i < len(b); {
		j := bytes.Index(b[i:], anchor)
		if j < 0 {
			return -1
		}
		p := i + j - start
		if p+len(lower) <= len(b) && equalFoldASCII(b[p:p+len(lower)], lower) {
			return p
		}
		i += j + 1
	}
	return -1
}

// hasEscapeOf reports whether b holds a \u00XX escape of a character c for which hides(c) holds.
// The pre-filter asks it about the characters that occur in a marker or a group id (markerByte):
// such an escape could hide a marker from the byte scan. Entra does not escape these, so in practice
// this never fires; the check costs one bytes.Index. An escaped backslash followed by "u00" also
// fires; that costs a decode, nothing more.
func hasEscapeOf(b []byte, hides func(byte) bool) bool {
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(`\u00`))
		if j < 0 {
			return false
		}
		p := i + j + 4
		if p+2 > len(b) {
			return false // not a complete escape: the body cannot decode anyway
		}
		hi, ok1 := hexVal(b[p])
		lo, ok2 := hexVal(b[p+1])
		if ok1 && ok2 && hides(hi<<4|lo) {
			return true
		}
		i = i + j + 1
	}
}

// markerByte reports the characters that occur in a marker or a group id: letters, digits, space
// and hyphen.
func markerByte(c byte) bool {
	return c == ' ' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFoldASCII compares b with a lower-case ASCII string, ignoring ASCII case only. Unicode case
// folding is avoided on purpose: it would let "K" (Kelvin sign) or "ſ" match a marker that the byte
// scan of the pre-filter cannot see.
func equalFoldASCII[T string | []byte](b T, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		if lowerASCII(b[i]) != lower[i] {
			return false
		}
	}
	return true
}
