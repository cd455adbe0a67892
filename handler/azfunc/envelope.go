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
)

// Value is one binding value of an envelope, as the host sent it.
type Value struct {
	raw      json.RawMessage // objects, arrays, numbers, booleans: the JSON as sent
	text     string          // strings: the content once decoded
	isString bool
}

// StringValue returns a Value that holds a once-decoded JSON string, as the host sends strings.
func StringValue(s string) Value { return Value{text: s, isString: true} }

// RawValue returns a Value holding a JSON object, array or scalar as sent.
func RawValue(raw json.RawMessage) Value { return Value{raw: raw} }

// IsString reports whether the host sent the value as a JSON string (double-encoded content).
func (v Value) IsString() bool { return v.isString }

// IsNull reports whether the value is absent or JSON null.
func (v Value) IsNull() bool {
	return !v.isString && (len(v.raw) == 0 || string(bytes.TrimSpace(v.raw)) == "null")
}

// Text returns a string value's content, or the raw JSON of any other value.
func (v Value) Text() string {
	if v.isString {
		return v.text
	}
	return string(v.raw)
}

// Reader reads the JSON document the value carries: a string's content (what the host encoded into
// it) or the raw JSON of an object or array. It does not copy.
func (v Value) Reader() io.Reader {
	if v.isString {
		return strings.NewReader(v.text)
	}
	return bytes.NewReader(v.raw)
}

// Decode unmarshals the JSON document the value carries into dst: for a string value, the JSON inside
// the string (the host's double encoding); for anything else, the value itself.
func (v Value) Decode(dst any) error {
	if v.isString {
		return json.Unmarshal([]byte(v.text), dst)
	}
	if len(v.raw) == 0 {
		return errors.New("value is absent")
	}
	return json.Unmarshal(v.raw, dst)
}

// decodeEnvelope reads {"Data":{…},"Metadata":{…}} from r. Large string values (an Event Hub batch can
// be tens of megabytes) are decoded straight into a Go string, so the envelope holds one decoded copy
// of them and no json.RawMessage duplicate. Unknown top-level keys are skipped; key case is ignored
// because the host's serializer matches properties case-insensitively.
func decodeEnvelope(r io.Reader) (data, metadata map[string]Value, err error) {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return nil, nil, fmt.Errorf("envelope: %w", err)
	}
	for dec.More() {
		key, err := stringToken(dec)
		if err != nil {
			return nil, nil, fmt.Errorf("envelope: %w", err)
		}
		switch {
		case strings.EqualFold(key, "Data"):
			if data, err = decodeBindings(dec); err != nil {
				return nil, nil, fmt.Errorf("envelope Data: %w", err)
			}
		case strings.EqualFold(key, "Metadata"):
			if metadata, err = decodeBindings(dec); err != nil {
				return nil, nil, fmt.Errorf("envelope Metadata: %w", err)
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, nil, fmt.Errorf("envelope %q: %w", key, err)
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, nil, fmt.Errorf("envelope: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
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

// decodeBindings reads an object of binding values, or null.
func decodeBindings(dec *json.Decoder) (map[string]Value, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return map[string]Value{}, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("want an object, got %v", tok)
	}
	out := map[string]Value{}
	for dec.More() {
		key, err := stringToken(dec)
		if err != nil {
			return nil, err
		}
		v, err := decodeValue(dec)
		if err != nil {
			return nil, fmt.Errorf("binding %q: %w", key, err)
		}
		out[key] = v
	}
	return out, expectDelim(dec, '}')
}

// decodeValue reads one value. When the decoder's buffer shows that a string follows, the string is
// read as a token (one decoded copy); otherwise the raw JSON is kept.
func decodeValue(dec *json.Decoder) (Value, error) {
	if nextIsString(dec) {
		tok, err := dec.Token()
		if err != nil {
			return Value{}, err
		}
		s, ok := tok.(string)
		if !ok {
			return Value{}, fmt.Errorf("want a string, got %v", tok)
		}
		return StringValue(s), nil
	}
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return Value{}, err
	}
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Value{}, err
		}
		return StringValue(s), nil
	}
	return RawValue(raw), nil
}

// nextIsString peeks at the decoder's buffer, past the colon and white space, for an opening quote.
// An empty buffer answers false, and decodeValue takes the general path.
func nextIsString(dec *json.Decoder) bool {
	br, ok := dec.Buffered().(*bytes.Reader)
	if !ok {
		return false
	}
	for {
		c, err := br.ReadByte()
		if err != nil {
			return false
		}
		switch c {
		case ' ', '\t', '\r', '\n', ':':
			continue
		default:
			return c == '"'
		}
	}
}

func stringToken(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("want an object key, got %v", tok)
	}
	return s, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, got %v", want, tok)
	}
	return nil
}
