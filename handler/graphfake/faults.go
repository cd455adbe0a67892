package graphfake

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Call is one request the server received.
type Call struct {
	Time   time.Time
	Method string
	Path   string
	// Query is the raw query string.
	Query string
	// Header is the request header without Authorization and X-IDENTITY-HEADER.
	Header http.Header
	// Body is the request body after undoing Content-Encoding.
	Body []byte
	// Status is the status answered; 0 when the connection was dropped.
	Status   int
	Duration time.Duration
	// Fault reports that an injected fault matched the request.
	Fault bool
	// Batch is the id of the request within its JSON batch when it came in one (the batch itself
	// is a call of its own, POST /v1.0/$batch); empty for a request sent on its own.
	Batch string
}

// Fault describes a misbehaviour to inject. A matching request first waits Delay, then is dropped
// (Drop), answered with Body or an OData error (Status), or, with neither, served normally.
type Fault struct {
	// Match is "METHOD /path" or "/path" (any method). METHOD may be "*". A path ending in "*"
	// matches every path with that prefix; otherwise the path must be equal, query ignored.
	Match string
	// Skip lets this many matching requests through before the fault applies (e.g. Skip: 1 to fail
	// the second page of a list).
	Skip int
	// Times is how many requests the fault applies to; zero or less means every one until cleared.
	Times int
	// Delay is waited before answering (or dropping).
	Delay time.Duration
	// Drop closes the connection without answering.
	Drop bool
	// Status is the status to answer. With an empty Body the answer is an OData error built from
	// Code and Message (defaults derived from Status).
	Status int
	// RetryAfter is sent as the Retry-After header when set (seconds or an HTTP date).
	RetryAfter string
	// Code and Message fill the OData error; NoMessage leaves "message" out of it entirely.
	Code      string
	Message   string
	NoMessage bool
	// Body, when set, is sent verbatim as the answer (with ContentType, default application/json),
	// e.g. malformed JSON or an error object without a message.
	Body        string
	ContentType string
	// IgnoreFields serves the request normally, but as if its JSON body lacked these dotted paths
	// (e.g. "conditions.users.excludeRoles"): a write Graph accepts and does not fully apply. The call
	// log keeps the body as sent.
	IgnoreFields []string
}

type faultState struct {
	Fault
	method, path string
	prefix       bool
	seen, used   int
}

// Inject adds a fault. Faults are checked in the order they were added; the first that matches and
// is still active applies.
func (s *Server) Inject(f Fault) {
	st := &faultState{Fault: f, method: "*"}
	m := strings.TrimSpace(f.Match)
	if method, path, ok := strings.Cut(m, " "); ok {
		st.method, m = strings.ToUpper(method), strings.TrimSpace(path)
	}
	if p, ok := strings.CutSuffix(m, "*"); ok {
		st.path, st.prefix = p, true
	} else {
		st.path = m
	}
	s.mu.Lock()
	s.faults = append(s.faults, st)
	s.mu.Unlock()
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// Calls returns a copy of the calls recorded so far, oldest first.
func (s *Server) Calls() []Call {
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		out[i] = *c
	}
	return out
}

// CallsTo returns the recorded calls whose method and path match like Fault.Match does.
func (s *Server) CallsTo(match string) []Call {
	probe := &faultState{method: "*"}
	m := strings.TrimSpace(match)
	if method, path, ok := strings.Cut(m, " "); ok {
		probe.method, m = strings.ToUpper(method), strings.TrimSpace(path)
	}
	if p, ok := strings.CutSuffix(m, "*"); ok {
		probe.path, probe.prefix = p, true
	} else {
		probe.path = m
	}
	var out []Call
	for _, c := range s.Calls() {
		if probe.matches(c.Method, c.Path) {
			out = append(out, c)
		}
	}
	return out
}

// Reset forgets the recorded calls, every injected fault and the replication lag. Tenant data stays.
func (s *Server) Reset() {
	s.callsMu.Lock()
	s.calls = nil
	s.callsMu.Unlock()
	s.mu.Lock()
	s.faults = nil
	s.lag = lagState{}
	s.mu.Unlock()
}

func (f *faultState) matches(method, path string) bool {
	if f.method != "*" && f.method != method {
		return false
	}
	if f.prefix {
		return strings.HasPrefix(path, f.path)
	}
	return path == f.path
}

// takeFault returns a copy of the first active fault matching the request, counting its use.
func (s *Server) takeFault(method, path string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if !f.matches(method, path) || (f.Times > 0 && f.used >= f.Times) {
			continue
		}
		f.seen++
		if f.seen <= f.Skip {
			continue
		}
		f.used++
		out := f.Fault
		return &out
	}
	return nil
}

// applyFault carries out f. It reports whether the request was answered (or dropped); false means
// serve it normally after the delay.
func (s *Server) applyFault(rec *recorder, w http.ResponseWriter, r *http.Request, f *Fault) bool {
	if f.Delay > 0 && !sleep(r.Context(), f.Delay) {
		return true
	}
	if f.Drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return true
			}
		}
		// Without a hijackable connection, abort the handler: net/http closes the connection.
		panic(http.ErrAbortHandler)
	}
	if f.Status == 0 {
		return false
	}
	if f.RetryAfter != "" {
		rec.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Body != "" {
		ct := f.ContentType
		if ct == "" {
			ct = "application/json"
		}
		rec.Header().Set("Content-Type", ct)
		rec.Header().Set("Content-Length", strconv.Itoa(len(f.Body)))
		rec.WriteHeader(f.Status)
		_, _ = rec.Write([]byte(f.Body))
		return true
	}
	code, msg := f.Code, f.Message
	if code == "" {
		code = defaultCode(f.Status)
	}
	if msg == "" {
		msg = http.StatusText(f.Status)
	}
	if f.NoMessage {
		writeErrorBody(rec, r, f.Status, map[string]any{"code": code})
		return true
	}
	writeError(rec, r, f.Status, code, msg)
	return true
}

// withoutFields removes dotted paths from a JSON object body; a body that is not an object is
// returned unchanged.
func withoutFields(body []byte, paths []string) []byte {
	var o object
	if json.Unmarshal(body, &o) != nil || o == nil {
		return body
	}
	for _, p := range paths {
		o = withoutPath(o, strings.Split(p, "."))
	}
	return o.marshal()
}

func withoutPath(o object, path []string) object {
	if len(path) == 1 {
		delete(o, path[0])
		return o
	}
	var sub object
	if json.Unmarshal(o[path[0]], &sub) != nil || sub == nil {
		return o
	}
	o[path[0]] = withoutPath(sub, path[1:]).marshal()
	return o
}

func defaultCode(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return "TooManyRequests"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	case http.StatusGatewayTimeout:
		return "GatewayTimeout"
	case http.StatusForbidden:
		return "Authorization_RequestDenied"
	case http.StatusNotFound:
		return "ResourceNotFound"
	case http.StatusUnauthorized:
		return "InvalidAuthenticationToken"
	case http.StatusBadRequest:
		return "BadRequest"
	}
	if status >= 500 {
		return "InternalServerError"
	}
	return "UnknownError"
}

// IsBatch reports whether c is a JSON batch itself (POST /v1.0/$batch): its requests are recorded as
// calls of their own, so a batch of reads is no write.
func IsBatch(c Call) bool {
	return c.Method == http.MethodPost && strings.HasSuffix(c.Path, "/$batch")
}
