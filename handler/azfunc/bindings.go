package azfunc

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// HTTPRequest is an httpTrigger's request as the host puts it in Data.<binding> (envelope mode).
type HTTPRequest struct {
	URL     string
	Method  string
	Query   map[string]string
	Headers http.Header
	Params  map[string]string
	Body    string // absent when the caller sent no Content-Length
}

// wireHTTPRequest is tolerant of the host's variants: Query as an object or as a string holding one
// (the docs show the latter), header values as arrays (what the host sends) or single strings.
type wireHTTPRequest struct {
	URL     string          `json:"Url"`
	Method  string          `json:"Method"`
	Query   json.RawMessage `json:"Query"`
	Headers map[string]any  `json:"Headers"`
	Params  json.RawMessage `json:"Params"`
	Body    any             `json:"Body"`
}

// HTTPRequest decodes the named httpTrigger binding.
func (inv *Invocation) HTTPRequest(name string) (*HTTPRequest, error) {
	v, ok := inv.Binding(name)
	if !ok || v.IsNull() {
		return nil, fmt.Errorf("binding %q is missing", name)
	}
	var w wireHTTPRequest
	if err := v.Decode(&w); err != nil {
		return nil, fmt.Errorf("binding %q: %w", name, err)
	}
	req := &HTTPRequest{
		URL:     w.URL,
		Method:  strings.ToUpper(strings.TrimSpace(w.Method)),
		Query:   stringMap(w.Query),
		Params:  stringMap(w.Params),
		Headers: http.Header{},
	}
	for k, hv := range w.Headers {
		switch x := hv.(type) {
		case string:
			req.Headers.Add(k, x)
		case []any:
			for _, e := range x {
				if s, ok := e.(string); ok {
					req.Headers.Add(k, s)
				}
			}
		}
	}
	switch b := w.Body.(type) {
	case string:
		req.Body = b
	case nil:
	default:
		// A JSON body the host already parsed: hand it back as JSON text.
		raw, _ := json.Marshal(b)
		req.Body = string(raw)
	}
	if req.Method == "" {
		return nil, fmt.Errorf("binding %q has no Method", name)
	}
	return req, nil
}

// stringMap reads an object of scalars, or a string holding such an object; anything else is empty.
func stringMap(raw json.RawMessage) map[string]string {
	out := map[string]string{}
	if len(raw) == 0 {
		return out
	}
	if raw[0] == '"' {
		var inner string
		if json.Unmarshal(raw, &inner) != nil {
			return out
		}
		raw = json.RawMessage(inner)
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return out
	}
	for k, v := range m {
		switch x := v.(type) {
		case string:
			out[k] = x
		case nil:
		default:
			out[k] = fmt.Sprint(x)
		}
	}
	return out
}

// HTTPResponse is an http output binding's value. Body is sent as a string of JSON, which the host
// relays as is; headers carry the content type.
type HTTPResponse struct {
	StatusCode int               `json:"statusCode"`
	Body       string            `json:"body"`
	Headers    map[string]string `json:"headers"`
}

// JSONResponse builds an HTTPResponse whose body is v as JSON.
func JSONResponse(status int, v any) HTTPResponse {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"response could not be encoded"}`)
	}
	return HTTPResponse{
		StatusCode: status,
		Body:       string(body),
		Headers: map[string]string{
			"Content-Type":           "application/json; charset=utf-8",
			"Cache-Control":          "no-store",
			"X-Content-Type-Options": "nosniff",
		},
	}
}

// TimerInfo is a timerTrigger's value. ScheduleStatus is nil when the host does not monitor the
// schedule (useMonitor false, or a sub-minute schedule).
type TimerInfo struct {
	ScheduleStatus *struct {
		Last        time.Time `json:"Last"`
		Next        time.Time `json:"Next"`
		LastUpdated time.Time `json:"LastUpdated"`
	} `json:"ScheduleStatus"`
	IsPastDue bool `json:"IsPastDue"`
}

// Timer decodes the named timerTrigger binding. The host sends an object; a string holding one is
// accepted too.
func (inv *Invocation) Timer(name string) (*TimerInfo, error) {
	v, ok := inv.Binding(name)
	if !ok || v.IsNull() {
		return nil, fmt.Errorf("binding %q is missing", name)
	}
	var t TimerInfo
	if err := v.Decode(&t); err != nil {
		return nil, fmt.Errorf("binding %q: %w", name, err)
	}
	return &t, nil
}
