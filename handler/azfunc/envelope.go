// Package azfunc speaks the Azure Functions custom-handler protocol: it decodes the host's invocation
// envelopes ({"Data":…,"Metadata":…}), routes them to functions, and maps their results and errors to
// the answers the host understands. It is the only package that knows the host's quirks:
//   - string, number and array values arrive JSON-encoded inside the JSON (an Event Hub batch with
//     dataType string is a string holding an array of strings);
//   - every answer needs Content-Type application/json and a non-empty body, or the invocation fails
//     or hangs until the function timeout;
//   - any non-2xx answer fails the invocation and triggers the function's retry policy, so it is used
//     only when a retry can help.
package azfunc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Value is one binding value of an envelope, as the host sent it.
type Value struct {
	raw      json.RawMessage // objects, arrays, numbers, booleans: the JSON as sent
	text     []byte          // strings: the content once decoded
	isString bool
	// A string a Function's ScanString read in place: quoted is the token as sent (already
	// validated by the scanner), decoded only if asked for; verdict is what the scanner made of it.
	quoted  []byte
	verdict any
}

// StringValue returns a Value that holds a once-decoded JSON string, as the host sends strings.
func StringValue(s string) Value { return Value{text: []byte(s), isString: true} }

// RawValue returns a Value holding a JSON object, array or scalar as sent.
func RawValue(raw json.RawMessage) Value { return Value{raw: raw} }

// IsString reports whether the host sent the value as a JSON string (double-encoded content).
func (v Value) IsString() bool { return v.isString }

// IsNull reports whether the value is absent or JSON null.
func (v Value) IsNull() bool {
	return !v.isString && (len(v.raw) == 0 || string(bytes.TrimSpace(v.raw)) == "null")
}

// Verdict returns what the function's ScanString concluded from this value read in place, or nil
// when no scanner answered for it.
func (v Value) Verdict() any { return v.verdict }

// content returns a string value's decoded content, decoding a scanned string now.
func (v Value) content() ([]byte, error) {
	if v.quoted == nil {
		return v.text, nil
	}
	p := &parser{b: bytes.Clone(v.quoted)}
	s, err := p.str()
	if err != nil {
		return nil, fmt.Errorf("string value: %w", err)
	}
	return s, nil
}

// Text returns a string value's content, or the raw JSON of any other value.
func (v Value) Text() string {
	if v.isString {
		s, _ := v.content()
		return string(s)
	}
	return string(v.raw)
}

// Reader reads the JSON document the value carries: a string's content (what the host encoded into
// it) or the raw JSON of an object or array. It does not copy, except to decode a scanned string.
func (v Value) Reader() io.Reader {
	if v.isString {
		s, err := v.content()
		if err != nil {
			return &errReader{err}
		}
		return bytes.NewReader(s)
	}
	return bytes.NewReader(v.raw)
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

// Decode unmarshals the JSON document the value carries into dst: for a string value, the JSON inside
// the string (the host's double encoding); for anything else, the value itself.
func (v Value) Decode(dst any) error {
	if v.isString {
		s, err := v.content()
		if err != nil {
			return err
		}
		return json.Unmarshal(s, dst)
	}
	if len(v.raw) == 0 {
		return errors.New("value is absent")
	}
	return json.Unmarshal(v.raw, dst)
}

// decodeEnvelope reads {"Data":{…},"Metadata":{…}} from r.
//
// An Event Hub batch arrives as one string value of up to a hundred megabytes or so, escaped once more
// by the host. encoding/json's Decoder decodes such a token at about 100 MB/s and holds the raw token,
// its growing read buffer and the decoded string at once. Instead the body is read once, and string
// values are unescaped in place (unescaping never lengthens a string), so the envelope costs one copy
// of the body and the decode runs at memory speed. Objects and other values are kept as raw JSON and
// checked with json.Valid. Unknown top-level keys are skipped; key case is ignored because the host's
// serializer matches properties case-insensitively.
// sizeHint, the request's Content-Length when known, sizes the read buffer in one allocation.
// scan, when not nil, is offered every string value of Data in place (see Function.ScanString).
func decodeEnvelope(r io.Reader, sizeHint int64, scan StringScanner) (data, metadata map[string]Value, err error) {
	return decodeEnvelopeInto(new(bytes.Buffer), r, sizeHint, scan)
}

// decodeEnvelopeInto is decodeEnvelope reading into buf (empty), which the values then alias.
func decodeEnvelopeInto(buf *bytes.Buffer, r io.Reader, sizeHint int64, scan StringScanner) (data, metadata map[string]Value, err error) {
	if sizeHint > 0 && sizeHint < MaxBodyBytes {
		buf.Grow(int(sizeHint) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, nil, fmt.Errorf("envelope: %w", err)
	}
	p := &parser{b: buf.Bytes(), scan: scan}
	if err := p.expect('{'); err != nil {
		return nil, nil, fmt.Errorf("envelope: %w", err)
	}
	if !p.consume('}') {
		for {
			key, err := p.key()
			if err != nil {
				return nil, nil, fmt.Errorf("envelope: %w", err)
			}
			switch {
			case strings.EqualFold(key, "Data"):
				if data, err = p.bindings(true); err != nil {
					return nil, nil, fmt.Errorf("envelope Data: %w", err)
				}
			case strings.EqualFold(key, "Metadata"):
				if metadata, err = p.bindings(false); err != nil {
					return nil, nil, fmt.Errorf("envelope Metadata: %w", err)
				}
			default:
				if _, err := p.value(); err != nil {
					return nil, nil, fmt.Errorf("envelope %q: %w", key, err)
				}
			}
			if p.consume('}') {
				break
			}
			if err := p.expect(','); err != nil {
				return nil, nil, fmt.Errorf("envelope: %w", err)
			}
		}
	}
	p.space()
	if p.i != len(p.b) {
		return nil, nil, errors.New("envelope: unexpected data after the JSON object")
	}
	if data == nil {
		data = map[string]Value{}
	}
	if metadata == nil {
		metadata = map[string]Value{}
	}
	return data, metadata, nil
}

// StringScanner reads a string value of the binding named binding in place: b starts at its
// opening quote and runs to the end of the envelope. It returns the length of the string token
// (quotes included) and its verdict, or 0 to decline, in which case the string is decoded as usual.
// A scanner that answers vouches that the token is a valid JSON string that the decoder would have
// accepted; its verdict reaches the function through Value.Verdict.
type StringScanner func(binding string, b []byte) (n int, verdict any)

// parser walks an envelope held in b. Strings are unescaped in place, overwriting b.
type parser struct {
	b    []byte
	i    int
	scan StringScanner
}

var errEOF = io.ErrUnexpectedEOF

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

// consume skips white space and c, if c is next.
func (p *parser) consume(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) expect(c byte) error {
	if p.consume(c) {
		return nil
	}
	if p.i >= len(p.b) {
		return errEOF
	}
	return fmt.Errorf("want %q at offset %d, got %q", c, p.i, p.b[p.i])
}

// key reads an object key and its colon.
func (p *parser) key() (string, error) {
	p.space()
	if p.i >= len(p.b) {
		return "", errEOF
	}
	if p.b[p.i] != '"' {
		return "", fmt.Errorf("want an object key at offset %d", p.i)
	}
	s, err := p.str()
	if err != nil {
		return "", err
	}
	return string(s), p.expect(':')
}

// bindings reads an object of binding values, or null. Only Data's (data) strings are offered to
// the scanner.
func (p *parser) bindings(data bool) (map[string]Value, error) {
	p.space()
	if bytes.HasPrefix(p.b[p.i:], []byte("null")) {
		p.i += 4
		return map[string]Value{}, nil
	}
	if err := p.expect('{'); err != nil {
		return nil, err
	}
	out := map[string]Value{}
	if p.consume('}') {
		return out, nil
	}
	for {
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		var v Value
		if data {
			v, err = p.scanned(key)
		}
		if !v.isString {
			v, err = p.value()
		}
		if err != nil {
			return nil, fmt.Errorf("binding %q: %w", key, err)
		}
		out[key] = v
		if p.consume('}') {
			return out, nil
		}
		if err := p.expect(','); err != nil {
			return nil, err
		}
	}
}

// scanned offers a string value to the scanner; a Value that is not a string means it declined.
func (p *parser) scanned(key string) (Value, error) {
	p.space()
	if p.scan == nil || p.i >= len(p.b) || p.b[p.i] != '"' {
		return Value{}, nil
	}
	n, verdict := p.scan(key, p.b[p.i:])
	if n < 2 || n > len(p.b)-p.i || p.b[p.i+n-1] != '"' {
		return Value{}, nil
	}
	v := Value{isString: true, quoted: p.b[p.i : p.i+n], verdict: verdict}
	p.i += n
	return v, nil
}

// value reads any JSON value: a string is unescaped, anything else is kept raw and validated.
func (p *parser) value() (Value, error) {
	p.space()
	if p.i >= len(p.b) {
		return Value{}, errEOF
	}
	if p.b[p.i] == '"' {
		s, err := p.str()
		if err != nil {
			return Value{}, err
		}
		return Value{text: s, isString: true}, nil
	}
	start := p.i
	if err := p.skip(); err != nil {
		return Value{}, err
	}
	raw := p.b[start:p.i]
	if !json.Valid(raw) {
		return Value{}, fmt.Errorf("invalid JSON value at offset %d", start)
	}
	return Value{raw: raw}, nil
}

// skip moves past a non-string value: an object or array (strings inside are skipped, not
// unescaped) or a scalar. json.Valid checks what it skipped.
func (p *parser) skip() error {
	depth := 0
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch c {
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return nil // the end of the enclosing object: a scalar ended here
			}
			depth--
			if depth == 0 {
				p.i++
				return nil
			}
		case '"':
			if err := p.skipString(); err != nil {
				return err
			}
			continue
		case ',', ' ', '\t', '\r', '\n':
			if depth == 0 {
				return nil
			}
		}
		p.i++
	}
	if depth > 0 {
		return errEOF
	}
	return nil
}

func (p *parser) skipString() error {
	for p.i++; p.i < len(p.b); p.i++ {
		switch p.b[p.i] {
		case '\\':
			p.i++
		case '"':
			p.i++
			return nil
		}
	}
	return errEOF
}

// str reads a string at p.i (an opening quote) and returns its content, unescaped in place: the
// returned slice aliases b. Invalid UTF-8 is kept as it is (encoding/json would substitute U+FFFD,
// which can be longer than what it replaces); the consumer parses the content as JSON anyway.
func (p *parser) str() ([]byte, error) {
	p.i++ // opening quote
	start := p.i
	// Fast path: no escape before the closing quote, nothing to move.
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := p.b[start:p.i]
			p.i++
			return s, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return nil, fmt.Errorf("control character in string at offset %d", p.i)
		}
		p.i++
	}
	w := p.i // write position; always <= p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return p.b[start:w], nil
		case c < 0x20:
			return nil, fmt.Errorf("control character in string at offset %d", p.i)
		case c != '\\':
			p.b[w] = c
			w++
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return nil, errEOF
		}
		esc := p.b[p.i+1]
		p.i += 2
		switch esc {
		case '"', '\\', '/':
			p.b[w] = esc
		case 'b':
			p.b[w] = '\b'
		case 'f':
			p.b[w] = '\f'
		case 'n':
			p.b[w] = '\n'
		case 'r':
			p.b[w] = '\r'
		case 't':
			p.b[w] = '\t'
		case 'u':
			r, err := p.hex4()
			if err != nil {
				return nil, err
			}
			if utf16.IsSurrogate(r) {
				// A pair is 12 bytes in and 4 out; a lone surrogate becomes U+FFFD, 6 bytes in and 3 out.
				r2 := utf8.RuneError
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					lo, err := p.hex4()
					if err != nil {
						return nil, err
					}
					if d := utf16.DecodeRune(r, lo); d != utf8.RuneError {
						r2 = d
					} else {
						p.i = save
					}
				}
				r = r2
			}
			w += utf8.EncodeRune(p.b[w:], r)
			continue
		default:
			return nil, fmt.Errorf("invalid escape \\%c at offset %d", esc, p.i-2)
		}
		w++
	}
	return nil, errEOF
}

func (p *parser) hex4() (rune, error) {
	if p.i+4 > len(p.b) {
		return 0, errEOF
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, fmt.Errorf("invalid \\u escape at offset %d", p.i)
		}
	}
	p.i += 4
	return r, nil
}
