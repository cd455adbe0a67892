package auditlog

import (
	"encoding/json"
	"errors"
	"io"
	"unicode/utf16"
	"unicode/utf8"
)

// The batch array is read by a small streaming reader rather than by json.Decoder. The array level
// needs only strings, brackets and commas, and json.Decoder pays for generality there: on a batch of
// 100 events of about 5 KB, doing nothing else, Decoder.Token reads about 110 MB/s and allocates every
// element twice, Decoder.Decode into a json.RawMessage about 175 MB/s; this reader unescapes each
// element into a buffer reused across events at about 700 MB/s, with no allocation per event. Grammar
// errors inside an event body are left to encoding/json, which decodes every event that may matter.

// elemKind says what an array element turned out to be.
type elemKind int

const (
	elemString  elemKind = iota // a string; body holds its unescaped contents
	elemObject                  // an object; body holds its raw text
	elemOther                   // a number, literal or array: JSON, but not an event body
	elemInvalid                 // not JSON (a bad escape, a stray word)
)

// step says what batchReader.next found.
type step int

const (
	stepElem      step = iota // an element
	stepEnd                   // the closing bracket
	stepTruncated             // the input ended inside the array
	stepMalformed             // no way to find the next element
	stepReadError             // r failed
)

const (
	readBufSize = 32 << 10
	// maxDepth matches encoding/json's nesting limit.
	maxDepth = 10000
	// maxBareBytes caps a number or literal element; anything longer is not a sensible event.
	maxBareBytes = 1 << 10
	// maxEmptyReads bounds io.Reader implementations that return 0, nil.
	maxEmptyReads = 100
)

var errNotArray = errors.New("not a JSON array")

// batchReader yields the elements of a JSON array read from r, one at a time.
type batchReader struct {
	r        io.Reader
	buf      []byte
	pos, end int
	rerr     error // sticky; io.EOF included
	started  bool  // an element was read, so a comma comes before the next one
	stack    []byte

	// Per element.
	body      []byte
	oversized bool
}

func newBatchReader(r io.Reader) *batchReader {
	return &batchReader{r: r, buf: make([]byte, readBufSize)}
}

// ensure makes at least n (≤ readBufSize) unread bytes available and reports whether it could.
func (b *batchReader) ensure(n int) bool {
	empty := 0
	for b.end-b.pos < n {
		if b.rerr != nil {
			return false
		}
		if b.pos > 0 {
			copy(b.buf, b.buf[b.pos:b.end])
			b.end -= b.pos
			b.pos = 0
		}
		m, err := b.r.Read(b.buf[b.end:])
		b.end += m
		if err != nil {
			b.rerr = err
		} else if m == 0 {
			if empty++; empty >= maxEmptyReads {
				b.rerr = io.ErrNoProgress
			}
		}
	}
	return true
}

// readErr is the read error that stopped the reader, nil for a clean end of input.
func (b *batchReader) readErr() error {
	if b.rerr == nil || b.rerr == io.EOF {
		return nil
	}
	return b.rerr
}

// peek skips whitespace and returns the next byte without consuming it.
func (b *batchReader) peek() (byte, bool) {
	for {
		if b.pos == b.end && !b.ensure(1) {
			return 0, false
		}
		switch c := b.buf[b.pos]; c {
		case ' ', '\t', '\n', '\r':
			b.pos++
		default:
			return c, true
		}
	}
}

// open consumes the opening bracket.
func (b *batchReader) open() error {
	c, ok := b.peek()
	if !ok {
		if err := b.readErr(); err != nil {
			return err
		}
		return errNotArray
	}
	if c != '[' {
		return errNotArray
	}
	b.pos++
	return nil
}

// next reads the next element into dst (reused) and reports what it found. For stepElem the element
// is in b.body, its kind is returned, and b.oversized says whether it was cut at maxEventBytes.
func (b *batchReader) next(dst []byte) (step, elemKind) {
	b.body, b.oversized = dst[:0], false
	c, ok := b.peek()
	if !ok {
		return b.endStep(), 0
	}
	if c == ']' && !b.started {
		b.pos++
		return stepEnd, 0
	}
	if b.started {
		switch c {
		case ']':
			b.pos++
			return stepEnd, 0
		case ',':
			b.pos++
		default:
			return stepMalformed, 0
		}
		if c, ok = b.peek(); !ok {
			return b.endStep(), 0
		}
	}
	b.started = true
	switch c {
	case '"':
		b.pos++
		return b.readString()
	case '{', '[':
		return b.readComposite()
	case ']', ',', '}', ':':
		return stepMalformed, 0
	default:
		return b.readBare()
	}
}

func (b *batchReader) endStep() step {
	if b.readErr() != nil {
		return stepReadError
	}
	return stepTruncated
}

// add appends p to the element body unless that would pass maxEventBytes; an oversized element is
// still read to its end, so the batch goes on, but never held.
func (b *batchReader) add(p []byte) {
	if b.oversized {
		return
	}
	if len(b.body)+len(p) > maxEventBytes {
		b.oversized = true
		b.body = b.body[:0]
		return
	}
	b.body = append(b.body, p...)
}

// readString reads the rest of a string whose opening quote is consumed, unescaping as it goes.
// Unlike encoding/json it lets raw control characters and invalid UTF-8 through; the body is decoded
// by encoding/json later if it matters at all, which replaces or rejects them there.
//
// A byte loop rather than bytes.IndexByte: in an event body that travels as a JSON string every
// quote is escaped, so an escape comes every ten bytes or so and the call overhead of IndexByte,
// twice per escape, cost more than the loop.
func (b *batchReader) readString() (step, elemKind) {
	kind := elemString
	for {
		if b.pos == b.end && !b.ensure(1) {
			return b.endStep(), 0
		}
		buf := b.buf[:b.end]
		i := b.pos
		for i < len(buf) && buf[i] != '"' && buf[i] != '\\' {
			i++
		}
		b.add(buf[b.pos:i])
		b.pos = i
		switch {
		case i == len(buf):
			continue
		case buf[i] == '"':
			b.pos++
			return stepElem, kind
		case i+1 < len(buf) && (buf[i+1] == '"' || buf[i+1] == '\\' || buf[i+1] == '/'):
			// The common escapes, without a call.
			b.add(buf[i+1 : i+2])
			b.pos += 2
		case !b.unescape():
			if !b.ensure(2) {
				return b.endStep(), 0
			}
			// A bad escape: JSON it is not, but the string still ends at its closing quote.
			kind = elemInvalid
			b.pos += 2
		}
	}
}

// unescape decodes the escape sequence at b.pos (a backslash) into the body and reports whether it
// was a valid one. Lone or broken surrogates become U+FFFD, as encoding/json does.
func (b *batchReader) unescape() bool {
	if !b.ensure(2) {
		return false
	}
	var one byte
	switch b.buf[b.pos+1] {
	case '"', '\\', '/':
		one = b.buf[b.pos+1]
	case 'b':
		one = '\b'
	case 'f':
		one = '\f'
	case 'n':
		one = '\n'
	case 'r':
		one = '\r'
	case 't':
		one = '\t'
	case 'u':
		if !b.ensure(6) {
			return false
		}
		r, ok := hex4(b.buf[b.pos+2 : b.pos+6])
		if !ok {
			return false
		}
		n := 6
		if utf16.IsSurrogate(r) {
			hi := r
			r = utf8.RuneError
			if b.ensure(12) && b.buf[b.pos+6] == '\\' && b.buf[b.pos+7] == 'u' {
				if lo, ok := hex4(b.buf[b.pos+8 : b.pos+12]); ok {
					if dec := utf16.DecodeRune(hi, lo); dec != utf8.RuneError {
						r, n = dec, 12
					}
				}
			}
		}
		var tmp [utf8.UTFMax]byte
		b.add(tmp[:utf8.EncodeRune(tmp[:], r)])
		b.pos += n
		return true
	default:
		return false
	}
	var tmp [1]byte
	tmp[0] = one
	b.add(tmp[:])
	b.pos += 2
	return true
}

// hex4 decodes four hexadecimal digits.
func hex4(p []byte) (rune, bool) {
	var r rune
	for _, c := range p {
		v, ok := hexVal(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// readComposite copies an object or array element through its matching closing bracket. It tracks
// strings and bracket kinds only; whether the text in between is JSON is checked later, by
// encoding/json, for the events that may matter.
func (b *batchReader) readComposite() (step, elemKind) {
	kind := elemObject
	if b.buf[b.pos] == '[' {
		kind = elemOther
	}
	stack := b.stack[:0]
	defer func() { b.stack = stack[:0] }()
	inString, escaped := false, false
	for {
		if b.pos == b.end && !b.ensure(1) {
			return b.endStep(), 0
		}
		chunk := b.buf[b.pos:b.end]
		for i := 0; i < len(chunk); i++ {
			c := chunk[i]
			if inString {
				switch {
				case escaped:
					escaped = false
				case c == '\\':
					escaped = true
				case c == '"':
					inString = false
				}
				continue
			}
			switch c {
			case '"':
				inString = true
			case '{', '[':
				if len(stack) >= maxDepth {
					return stepMalformed, 0
				}
				stack = append(stack, c)
			case '}', ']':
				if len(stack) == 0 || stack[len(stack)-1] != opener(c) {
					return stepMalformed, 0
				}
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					b.add(chunk[:i+1])
					b.pos += i + 1
					return stepElem, kind
				}
			}
		}
		b.add(chunk)
		b.pos = b.end
	}
}

func opener(closer byte) byte {
	if closer == '}' {
		return '{'
	}
	return '['
}

// readBare reads a number or literal element up to the next delimiter.
func (b *batchReader) readBare() (step, elemKind) {
	for {
		if b.pos == b.end && !b.ensure(1) {
			break
		}
		c := b.buf[b.pos]
		if c == ',' || c == ']' || c == '}' || c == '[' || c == '{' || c == '"' || c == ':' ||
			c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			break
		}
		if len(b.body) >= maxBareBytes {
			b.pos++
			continue
		}
		b.body = append(b.body, c)
		b.pos++
	}
	if b.readErr() != nil {
		return stepReadError, 0
	}
	if len(b.body) < maxBareBytes && json.Valid(b.body) {
		return stepElem, elemOther
	}
	return stepElem, elemInvalid
}
