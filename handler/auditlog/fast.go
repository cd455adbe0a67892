package auditlog

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// The noise scan reads a batch as the Functions host sends it, before anything is decoded. With
// dataType string the batch is Data.events of the invocation envelope: a JSON string (level 0) whose
// contents are a JSON array of strings (level 1), each holding one event body (level 2). DecodeBatch
// needs the array text, so the envelope decoder unescapes the string once, and DecodeBatch unescapes
// every element once more; on a batch of noise those two copies were most of the cost of the
// invocation. ScanNoise walks the string as it arrives, follows the three levels at once without
// copying anything, and answers only when it can prove the batch is noise; otherwise the caller
// decodes the batch the usual way.
//
// The proof has two halves.
//
// Relevance. Every record the classifier can call relevant (or a companion) contains a marker in
// its activity name, or in its operation name, and membership changes also contain a break-glass
// group id (see mayMatter). Those are letters, digits, spaces and hyphens. Whatever the level, such
// a character reaches the decoded text either as itself or through a \u00XX escape; and a
// backslash can itself be written \u005c, which is how an escape could be split across levels. So
// if the level-0 text holds no \u00XX escape of a letter, digit, space, hyphen or backslash, at any
// nesting (a deeper escape shows up as the same six bytes behind more backslashes), every such
// character of every decoded level stands as itself in the level-0 text, next to the same
// neighbours, and a marker or group id absent from the level-0 text is absent from every record.
// The walk checks both as it goes: every space of the token for a marker ending there (markerAt,
// as mayMatter does), every backslash not followed by another for such an escape (hidesAt); a
// membership marker has the token searched for the group ids once the walk is done.
//
// Counts. The walk reproduces what DecodeBatch counts for events the pre-filter drops: events,
// records (scanEnvelope's walk of the records array), and records that are not objects. Whenever it
// meets something whose count depends on more than that walk (an element that is not a string, an
// event that is not an object, truncated or malformed, a records member that is not an array, an
// oversized event, a bad escape, a \u escape of a character that matters to the structure, a
// byte-order mark, a member name written with escapes, a control character where the envelope
// decoder refuses one) it gives up, and the full decode counts it. So a batch the scan answers for
// is counted exactly as DecodeBatch counts it; FuzzScanNoise checks that against the full decode.

// ScanNoise reads b from the opening quote of the events binding's string value, as the host sent
// it (still escaped). When it proves the batch holds no record that could produce a hint or be
// counted as a companion, it returns the length of the string token (quotes included), the batch's
// counts exactly as DecodeBatch would give them, and true. Otherwise it returns false, and the
// caller decodes the value and the batch in full. Only f.BreakGlassGroupIDs matters to the proof:
// the other filters apply to relevant records only.
func ScanNoise(b []byte, f Filter) (int, Result, bool) {
	s := noiseScan{b: b}
	n, ok := s.walk()
	if !ok {
		return 0, Result{}, false
	}
	if s.membership {
		d := newDecoder(f)
		if len(d.groups) > 0 && d.containsGroup(b[:n]) {
			return 0, Result{}, false
		}
	}
	res := Result{Counts: s.counts}
	return n, res, true
}

// fastEscapeHides reports whether a \u00XX escape of c could hide part of a marker or group id from
// a byte search, directly or by hiding an escape at a deeper level.
func fastEscapeHides(c byte) bool {
	return markerByte(c) || c == '\\'
}

// hidesAt reports whether b[p:] starts with "u00XX" where XX is the hex code of a character
// fastEscapeHides: called for the byte after every backslash of the string that is not itself a
// backslash, so that the walk finds every \u00XX escape of such a character at any level, as
// hasEscapeOf(token, fastEscapeHides) would.
func hidesAt(b []byte, p int) bool {
	if p+5 > len(b) || b[p] != 'u' || b[p+1] != '0' || b[p+2] != '0' {
		return false
	}
	hi, ok1 := hexVal(b[p+3])
	lo, ok2 := hexVal(b[p+4])
	return ok1 && ok2 && fastEscapeHides(hi<<4|lo)
}

// Level-1 states: the array of event strings.
const (
	l1Open  = iota // before '['
	l1First        // after '['
	l1Need         // after ','
	l1After        // after an element
	l1Elem         // inside an element string
	l1Done         // after ']': DecodeBatch reads no further
)

// Level-2 states: one event body, as scanEnvelope walks it.
const (
	l2Pre    = iota // before the opening brace
	l2Struct        // between tokens
	l2Str           // inside a string
	l2Key           // inside a member name of the envelope
	l2Lit           // inside a number or literal
	l2Post          // after the closing brace
)

// maxScanDepth bounds the bracket stack; deeper events are left to the full decode.
const maxScanDepth = 64

// placeholder stands for a character that reached level 1 or 2 through a \u escape and is not
// ASCII: it is not a delimiter, a quote, a backslash or white space, and not a valid escape letter,
// which is all the walk needs to know about such a character.
const placeholder = 0x80

type noiseScan struct {
	b []byte
	i int

	l1    int
	l1Esc bool // a level-1 backslash is pending

	// The current event.
	elemStart    int
	l2           int
	l2Esc        bool
	stack        [maxScanDepth]byte
	depth        int
	expectKey    bool
	recordsValue bool
	inRecords    bool
	records      recordsShape
	count        int // of the records array being walked
	nonObject    int
	last         int // count of the last complete records array
	lastNon      int
	key          [32]byte
	keyLen       int

	// membership: a membership marker was seen; the token is then searched for the group ids.
	membership bool
	counts     Counts
}

// space checks the marker that may end at the space at b[p] (see markerAt). The walk calls it for
// every space of the token, so that together they do what mayMatter's marker search does. It
// reports false when a relevant marker is there.
func (s *noiseScan) space(p int) bool {
	switch markerAt(s.b, p) {
	case markerRelevant:
		return false
	case markerMembership:
		s.membership = true
	}
	return true
}

// walk follows b from its opening quote to its closing one. It returns the index after the closing
// quote, or false when the batch needs the full decode.
func (s *noiseScan) walk() (int, bool) {
	b := s.b
	if len(b) == 0 || b[0] != '"' {
		return 0, false
	}
	s.i = 1
	for s.i < len(b) {
		c := b[s.i]
		if s.l2 == l2Str && s.l1 == l1Elem && !s.l1Esc && !s.l2Esc {
			// The common case: inside a string of an event body.
			if !s.inString() {
				return 0, false
			}
			if s.i == len(b) {
				break
			}
			c = b[s.i]
		}
		if c == ' ' && !s.space(s.i) {
			return 0, false
		}
		if s.l1 == l1Elem && !s.l1Esc && c != '"' && c != '\\' && c >= 0x20 {
			// A plain byte inside an event string stands for itself at level 2.
			s.i++
			if !s.feed2(c) {
				return 0, false
			}
			continue
		}
		if c == '\\' && s.l1 == l1Elem && !s.l1Esc {
			if handled, ok := s.quoteRun(); handled {
				if !ok {
					return 0, false
				}
				continue
			}
		}
		var c1 byte
		switch {
		case c == '"':
			s.i++
			return s.i, s.l1 == l1Done
		case c < 0x20:
			return 0, false // the envelope decoder refuses a raw control character
		case c == '\\':
			if s.i+1 >= len(b) {
				return 0, false
			}
			switch e := b[s.i+1]; e {
			case '\\':
				if hidesAt(b, s.i+2) {
					return 0, false
				}
				c1 = e
			case '"', '/':
				c1 = e
			case 'b':
				c1 = '\b'
			case 'f':
				c1 = '\f'
			case 'n':
				c1 = '\n'
			case 'r':
				c1 = '\r'
			case 't':
				c1 = '\t'
			case 'u':
				ch, ok := s.hexEscape(s.i + 2)
				if !ok {
					return 0, false
				}
				s.i += 6
				if !s.feed1(ch) {
					return 0, false
				}
				continue
			default:
				return 0, false
			}
			s.i += 2
		default:
			c1 = c
			s.i++
		}
		if !s.feed1(c1) {
			return 0, false
		}
	}
	return 0, false // unterminated
}

// plainRun returns the index of the first byte at or after i that is a quote, a backslash, a
// control character or a space (where a marker may end), or len(b): eight bytes at a time while
// none is there, then byte by byte.
func plainRun(b []byte, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q := x ^ ('"' * ones)
		bs := x ^ ('\\' * ones)
		// A byte of v is zero, or v's byte is below k, exactly where (v - k*ones) &^ v has its
		// high bit set for the first such byte; any such byte is enough to stop here. Below
		// 0x21 takes control characters and the space together.
		if ((q-ones)&^q|(bs-ones)&^bs|(x-0x21*ones)&^x)&highs != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c <= ' ' {
			return i
		}
	}
	return i
}

// inString follows the inside of a string of an event body (level 2), from s.i, until that string
// ends or the input does; it reports false when the batch needs the full decode. It is the walk's
// inner loop, so it takes a backslash run and what follows it at once, by arithmetic on the run's
// length k (see quoteRun), instead of one level at a time:
//   - a quote: level 0 makes of the run k/2 backslashes and (k odd) a quote; level 1 makes of those
//     (k-1)/2 backslashes and the quote either the end of the event string (an even count: the
//     event ends inside a string, which the full decode counts) or (k-3)/4 backslashes and a
//     quote of the body, which ends this string when it follows an even number of backslashes;
//   - anything else: the escapes must be valid at levels 0 and 1 (the full decode refuses or counts
//     the others), and whatever they make of it at level 2 stays inside the string.
func (s *noiseScan) inString() bool {
	b := s.b
	for {
		i := plainRun(b, s.i)
		s.i = i
		if i == len(b) {
			return true
		}
		if b[i] == ' ' {
			if !s.space(i) {
				return false
			}
			s.i++
			continue
		}
		if b[i] != '\\' {
			return false // the event string ends inside a string, or a raw control character
		}
		k := 1
		for i+k < len(b) && b[i+k] == '\\' {
			k++
		}
		if i+k >= len(b) {
			return false
		}
		c := b[i+k]
		if hidesAt(b, i+k) {
			return false
		}
		i += k + 1 // past the run and c
		if c == '"' {
			if k&1 == 0 {
				return false // the batch string ends here
			}
			k1 := (k - 1) / 2
			if k1&1 == 0 {
				return false // the event string ends inside a string
			}
			s.i = i
			if k2 := (k1 - 1) / 2; k2&1 == 1 {
				continue // an escaped quote inside the string
			}
			// The string ended. Inside a record (depth 3 and more) nothing but bracket matching
			// matters, so the commonest sequel, a colon or comma and the next string's quote
			// (level 0 `\\\"`), is taken here, back into a string.
			if s.depth >= 3 && i+5 <= len(b) && (b[i] == ':' || b[i] == ',') &&
				b[i+1] == '\\' && b[i+2] == '\\' && b[i+3] == '\\' && b[i+4] == '"' {
				s.i = i + 5
				continue
			}
			s.l2 = l2Struct
			return true
		}
		if c < 0x20 {
			return false
		}
		// Level 0: the run's last backslash escapes c when k is odd.
		k1 := k / 2
		var c1 byte
		if k&1 == 1 {
			switch c {
			case '/':
				c1 = '/'
			case 'b', 'f', 'n', 'r', 't':
				c1 = 0 // a control character: not a valid escape at level 1 either
			case 'u':
				ch, ok := s.hexEscape(i)
				if !ok {
					return false
				}
				i += 4
				c1 = ch
				if c1 == placeholder {
					c1 = 0
				}
			default:
				return false
			}
		} else {
			c1 = c
		}
		// Level 1: the k1 backslashes pair up, and an odd one escapes c1.
		if k1&1 == 1 {
			switch c1 {
			case '/', 'b', 'f', 'n', 'r', 't':
				if k&1 == 1 && c1 != '/' {
					return false
				}
			case 'u':
				if k&1 == 1 {
					return false
				}
				if _, ok := s.hexEscape(i); !ok {
					return false
				}
				i += 4
			default:
				return false
			}
		}
		// Level 2 gets some backslashes and one character that is neither a quote nor a
		// backslash: an escape or plain text inside the string, either way the string goes on.
		s.i = i
	}
}

// quoteRun takes, inside an event string, a run of k backslashes followed by a quote at once: the
// form every quote of an event body has in the level-0 text (k = 3 for a quote of the body's
// structure, 7 for an escaped quote inside one of its strings, 1 for the end of the event string).
// Level 0 makes k/2 backslashes and an escaped quote of it; level 1 makes of those (k-1)/2
// backslashes and that quote either half as many backslashes and the end of the event (an even
// count) or (k-3)/4 backslashes and a quote of the body. Any other run is taken unit by unit.
func (s *noiseScan) quoteRun() (handled, ok bool) {
	k := 1
	for s.i+k < len(s.b) && s.b[s.i+k] == '\\' {
		k++
	}
	if s.i+k >= len(s.b) || s.b[s.i+k] != '"' || k&1 == 0 {
		return false, false
	}
	s.i += k + 1
	k1 := (k - 1) / 2
	ok = true
	if k1&1 == 0 {
		for range k1 / 2 {
			ok = ok && s.feed2('\\')
		}
		ok = ok && s.endEvent()
	} else {
		for range (k1 - 1) / 2 {
			ok = ok && s.feed2('\\')
		}
		ok = ok && s.feed2('"')
	}
	return true, ok
}

// hexEscape decodes the four hex digits at b[p:] of a \u escape into the byte the walk feeds on, and
// refuses the characters that matter to structure or to the relevance argument.
func (s *noiseScan) hexEscape(p int) (byte, bool) {
	if p+4 > len(s.b) {
		return 0, false
	}
	r, ok := hex4(s.b[p : p+4])
	if !ok {
		return 0, false
	}
	switch {
	case r == 0xfeff:
		return 0, false // a byte-order mark: event() trims one at the start of a body
	case r >= utf8.RuneSelf:
		return placeholder, true
	case markerByte(byte(r)) || structural(byte(r)):
		return 0, false
	}
	return byte(r), true
}

// structural reports the ASCII characters whose escaped form the walk does not follow.
func structural(c byte) bool {
	switch c {
	case '"', '\\', '/', '{', '}', '[', ']', ',', ':':
		return true
	}
	return false
}

func isL1Space(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// feed1 takes one level-1 character.
func (s *noiseScan) feed1(c byte) bool {
	switch s.l1 {
	case l1Elem:
		if s.l1Esc {
			s.l1Esc = false
			switch c {
			case '"', '\\', '/':
				return s.feed2(c)
			case 'b':
				return s.feed2('\b')
			case 'f':
				return s.feed2('\f')
			case 'n':
				return s.feed2('\n')
			case 'r':
				return s.feed2('\r')
			case 't':
				return s.feed2('\t')
			case 'u':
				// The four hex digits are level-0 bytes as they stand: an escaped digit or letter
				// is refused by hexEscape.
				ch, ok := s.hexEscape(s.i)
				if !ok {
					return false
				}
				s.i += 4
				return s.feed2(ch)
			}
			return false // a bad escape: DecodeBatch counts the event as not JSON
		}
		switch c {
		case '\\':
			s.l1Esc = true
			return true
		case '"':
			return s.endEvent()
		}
		return s.feed2(c)
	case l1Done:
		return true
	}
	if isL1Space(c) {
		return true
	}
	switch s.l1 {
	case l1Open:
		if c == '[' {
			s.l1 = l1First
			return true
		}
	case l1First:
		switch c {
		case ']':
			s.l1 = l1Done
			return true
		case '"':
			s.startEvent()
			return true
		}
	case l1After:
		switch c {
		case ',':
			s.l1 = l1Need
			return true
		case ']':
			s.l1 = l1Done
			return true
		}
	case l1Need:
		if c == '"' {
			s.startEvent()
			return true
		}
	}
	return false
}

func (s *noiseScan) startEvent() {
	s.l1 = l1Elem
	s.elemStart = s.i
	s.l2, s.l2Esc, s.depth = l2Pre, false, 0
	s.expectKey, s.recordsValue, s.inRecords = false, false, false
	s.records, s.count, s.nonObject, s.last, s.lastNon = recordsMissing, 0, 0, 0, 0
}

// endEvent counts a complete event the way event() counts one the pre-filter drops.
func (s *noiseScan) endEvent() bool {
	if s.l2 != l2Post || s.i-s.elemStart > maxEventBytes {
		return false
	}
	s.l1 = l1After
	s.counts.Events++
	switch s.records {
	case recordsMissing:
		s.counts.Records++
	case recordsArray:
		s.counts.Records += s.last
		if s.lastNon > 0 {
			if s.counts.Skipped == nil {
				s.counts.Skipped = make(map[string]int)
			}
			s.counts.Skipped[SkipRecordNotObject] += s.lastNon
		}
	default:
		return false
	}
	return true
}

// feed2 takes one byte of an event body, following scanEnvelope.
func (s *noiseScan) feed2(c byte) bool {
	switch s.l2 {
	case l2Str:
		switch {
		case s.l2Esc:
			s.l2Esc = false
		case c == '\\':
			s.l2Esc = true
		case c == '"':
			s.l2 = l2Struct
		}
		return true
	case l2Key:
		switch c {
		case '"':
			s.recordsValue = s.keyLen <= len(s.key) && bytes.EqualFold(s.key[:s.keyLen], []byte("records"))
			s.expectKey = false
			s.l2 = l2Struct
			return true
		case '\\', placeholder:
			return false // isRecordsName unescapes such a name; leave it to the full decode
		}
		if s.keyLen < len(s.key) {
			s.key[s.keyLen] = c
		}
		s.keyLen++
		return true
	case l2Lit:
		if !isDelim(c) {
			return true
		}
		s.l2 = l2Struct
	case l2Pre:
		switch {
		case isSpace(c):
			return true
		case c == '{':
			s.stack[0], s.depth = '{', 1
			s.expectKey = true
			s.l2 = l2Struct
			return true
		}
		return false
	case l2Post:
		return isSpace(c)
	}

	// Between tokens.
	switch c {
	case ' ', '\t', '\n', '\r', ':':
		return true
	case ',':
		if s.depth == 1 {
			s.expectKey = true
		}
		return true
	case '}', ']':
		if s.stack[s.depth-1] != opener(c) {
			return false
		}
		if s.inRecords && s.depth == 2 {
			s.inRecords = false
			s.last, s.lastNon = s.count, s.nonObject
		}
		s.depth--
		if s.depth == 0 {
			s.l2 = l2Post
		}
		return true
	}
	switch {
	case s.depth == 1 && s.expectKey:
		if c != '"' {
			return false
		}
		s.l2, s.keyLen = l2Key, 0
		return true
	case s.depth == 1 && s.recordsValue:
		s.recordsValue = false
		s.last, s.lastNon = 0, 0
		if c != '[' {
			s.records = recordsOther
			return false
		}
		s.records, s.inRecords = recordsArray, true
		s.count, s.nonObject = 0, 0
	case s.depth == 1:
		s.recordsValue = false
	case s.depth == 2 && s.inRecords:
		s.count++
		if c != '{' {
			s.nonObject++
		}
	}
	switch c {
	case '"':
		s.l2 = l2Str
	case '{', '[':
		if s.depth >= maxScanDepth {
			return false
		}
		s.stack[s.depth] = c
		s.depth++
	default:
		s.l2 = l2Lit
	}
	return true
}
