package graphfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// JSON batching, directory lookups by id and user lists filtered by id:
//
//   - POST /$batch serves "Combine multiple requests in one HTTP call using JSON batching"
//     (https://learn.microsoft.com/graph/json-batching): {"requests":[{"id","method","url",
//     "headers","body"}]}, url relative to the version root (with or without its leading slash), a
//     body only with a Content-Type header. Each sub-request is served through the same routes as
//     a request of its own, recorded (Call.Batch holds its id) and subject to faults, so one
//     sub-request can be throttled (429 with Retry-After in its headers) inside a 200; a Drop fault
//     on a sub-request drops the whole batch's connection. Answers are
//     {"responses":[{"id","status","headers","body"}]}, in an order other than the requests' (the
//     doc: "Responses to the batched requests might appear in a different order"). A payload that
//     is not a batch, more than 20 requests ("JSON batch requests are currently limited to 20
//     individual requests"), duplicate ids or dependsOn (not emulated) answer 400.
//   - POST /directoryObjects/getByIds (directoryobject-getbyids, v1.0): {"ids":[...],"types":[...]}
//     answers the existing objects of the requested types ("user", "group"; all when types is
//     empty), $select honoured, and 400 for more than 1000 ids ("You can specify up to 1000 IDs").
//     Graph documents Directory.Read.All as its only application permission; so does the emulator.
//   - GET /users with $filter "id in ('a','b')" or "id eq 'a'" (the user resource: id "Supports
//     $filter (eq, ne, not, in)"), $select honoured, paged. More than 15 values is a 400, the limit
//     Graph's $filter documentation gives for in. Any other $filter is a 400. Selecting
//     signInActivity needs AuditLog.Read.All, and with Options.NoPremiumLicence answers the 403
//     Graph gives a tenant without Entra ID P1 or P2.

const (
	maxBatchRequests = 20
	maxGetByIDs      = 1000
	maxInValues      = 15
	// codeNoPremiumLicence and its message are what Graph answers a read of signInActivity in a
	// tenant without an Entra ID P1 or P2 licence.
	codeNoPremiumLicence    = "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
	messageNoPremiumLicence = "Neither tenant is B2C or tenant doesn't have premium license"
)

type batchKey struct{}

type batchPayload struct {
	Requests *[]struct {
		ID        string            `json:"id"`
		Method    string            `json:"method"`
		URL       string            `json:"url"`
		Headers   map[string]string `json:"headers"`
		Body      json.RawMessage   `json:"body"`
		DependsOn []string          `json:"dependsOn"`
	} `json:"requests"`
}

type batchAnswer struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body"`
}

// serveBatch answers POST /$batch.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Context().Value(batchKey{}) != nil {
		writeError(w, r, http.StatusBadRequest, "BadRequest", "A batch request cannot be nested in a batch.")
		return
	}
	var p batchPayload
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&p); err != nil || p.Requests == nil {
		writeError(w, r, http.StatusBadRequest, "BadRequest", "Invalid batch payload format.")
		return
	}
	reqs := *p.Requests
	if len(reqs) == 0 || len(reqs) > maxBatchRequests {
		writeError(w, r, http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("Number of batch requests (%d) must be between 1 and %d.", len(reqs), maxBatchRequests))
		return
	}
	seen := map[string]bool{}
	for _, q := range reqs {
		switch {
		case q.ID == "" || q.Method == "" || q.URL == "":
			writeError(w, r, http.StatusBadRequest, "BadRequest", "Each batch request needs an id, a method and a url.")
			return
		case seen[q.ID]:
			writeError(w, r, http.StatusBadRequest, "BadRequest", "Batch request ids must be unique: '"+q.ID+"'.")
			return
		case len(q.DependsOn) > 0:
			writeError(w, r, http.StatusBadRequest, "BadRequest", "dependsOn is not supported by this emulator.")
			return
		case len(bytes.TrimSpace(q.Body)) > 0 && header(q.Headers, "Content-Type") == "":
			writeError(w, r, http.StatusBadRequest, "BadRequest", "Request "+q.ID+" has a body but no Content-Type header.")
			return
		}
		seen[q.ID] = true
	}
	answers := make([]batchAnswer, len(reqs))
	for i, q := range reqs {
		rel := strings.TrimPrefix(q.URL, "/")
		sub, err := http.NewRequestWithContext(context.WithValue(r.Context(), batchKey{}, q.ID),
			strings.ToUpper(q.Method), s.URL()+"/v1.0/"+rel, bytes.NewReader(q.Body))
		if err != nil {
			answers[i] = batchAnswer{ID: q.ID, Status: http.StatusBadRequest,
				Body: errorBody(r, "BadRequest", "Invalid request url '"+q.URL+"'.")}
			continue
		}
		for k, v := range q.Headers {
			sub.Header.Set(k, v)
		}
		// The batch's own token authorises each request in it.
		sub.Header.Set("Authorization", r.Header.Get("Authorization"))
		if id := r.Header.Get("client-request-id"); id != "" {
			sub.Header.Set("client-request-id", id)
		}
		rec := httptest.NewRecorder()
		s.serveHTTP(rec, sub)
		a := batchAnswer{ID: q.ID, Status: rec.Code, Headers: map[string]string{}}
		for k, v := range rec.Header() {
			if len(v) > 0 && !strings.EqualFold(k, "Content-Length") {
				a.Headers[k] = v[0]
			}
		}
		if b := bytes.TrimSpace(rec.Body.Bytes()); len(b) > 0 && json.Valid(b) {
			a.Body = b
		} else if len(b) > 0 {
			// A body that is not JSON travels base64-encoded, as Graph sends binary content.
			a.Body = mustJSON(b)
		} else {
			a.Body = json.RawMessage("null")
		}
		answers[i] = a
	}
	// Not in the requests' order, so a client must correlate by id.
	for i, j := 0, len(answers)-1; i < j; i, j = i+1, j-1 {
		answers[i], answers[j] = answers[j], answers[i]
	}
	writeJSON(w, http.StatusOK, map[string]any{"responses": answers})
}

func errorBody(r *http.Request, code, message string) json.RawMessage {
	rec := httptest.NewRecorder()
	writeError(rec, r, http.StatusBadRequest, code, message)
	return rec.Body.Bytes()
}

func header(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// getByIDs answers POST /directoryObjects/getByIds.
func (s *Server) getByIDs(w http.ResponseWriter, r *http.Request, body []byte) {
	var p struct {
		IDs   *[]string `json:"ids"`
		Types []string  `json:"types"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.IDs == nil {
		writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "Invalid request: the ids parameter is required.")
		return
	}
	if len(*p.IDs) > maxGetByIDs {
		writeError(w, r, http.StatusBadRequest, "Request_BadRequest",
			fmt.Sprintf("Too many ids: %d. At most %d ids can be specified.", len(*p.IDs), maxGetByIDs))
		return
	}
	wantUsers, wantGroups := len(p.Types) == 0, len(p.Types) == 0
	for _, t := range p.Types {
		switch strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(t, "#"), "microsoft.graph.")) {
		case "user":
			wantUsers = true
		case "group":
			wantGroups = true
		case "directoryobject":
			wantUsers, wantGroups = true, true
		}
	}
	fields := selectFields(r)
	s.mu.Lock()
	items := []json.RawMessage{}
	for _, id := range *p.IDs {
		if u, ok := s.tenant.users[strings.ToLower(id)]; ok && wantUsers {
			items = append(items, project(u, fields).marshal())
			continue
		}
		if g, ok := s.tenant.groups[id]; ok && wantGroups {
			items = append(items, project(groupObject(id, g), fields).marshal())
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": s.URL() + "/v1.0/$metadata#directoryObjects", "value": items})
}

var (
	idInFilter = regexp.MustCompile(`^\s*id\s+in\s*\(\s*(.*?)\s*\)\s*$`)
	idEqFilter = regexp.MustCompile(`^\s*id\s+eq\s+('(?:[^']|'')*')\s*$`)
	literal    = regexp.MustCompile(`^'((?:[^']|'')*)'$`)
)

// filterIDs reads "id in ('a','b')" or "id eq 'a'". A non-empty second result is the 400's message.
func filterIDs(filter string) ([]string, string) {
	var parts []string
	if m := idEqFilter.FindStringSubmatch(filter); m != nil {
		parts = []string{m[1]}
	} else if m := idInFilter.FindStringSubmatch(filter); m != nil {
		for _, p := range splitLiterals(m[1]) {
			parts = append(parts, strings.TrimSpace(p))
		}
	} else {
		return nil, "Unsupported or invalid query filter clause specified for property 'id' of resource 'User'."
	}
	if len(parts) > maxInValues {
		return nil, fmt.Sprintf("Too many child clauses specified in search filter expression containing 'OR' operators: %d. Max allowed: %d.", len(parts), maxInValues)
	}
	ids := make([]string, 0, len(parts))
	for _, p := range parts {
		m := literal.FindStringSubmatch(p)
		if m == nil {
			return nil, "Invalid filter clause: " + strconv.Quote(p) + " is not a string literal."
		}
		ids = append(ids, strings.ReplaceAll(m[1], "''", "'"))
	}
	return ids, ""
}

// splitLiterals splits a comma-separated list of OData string literals, commas inside quotes kept.
func splitLiterals(s string) []string {
	var out []string
	inQuote, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\'':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// listUsers answers GET /users filtered by id.
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("$filter")
	if filter == "" {
		writeError(w, r, http.StatusBadRequest, "Request_UnsupportedQuery", "This emulator lists users only filtered by id.")
		return
	}
	ids, msg := filterIDs(filter)
	if msg != "" {
		writeError(w, r, http.StatusBadRequest, "Request_UnsupportedQuery", msg)
		return
	}
	fields := selectFields(r)
	s.mu.Lock()
	items := []json.RawMessage{}
	seen := map[string]bool{}
	for _, id := range ids {
		k := strings.ToLower(id)
		if u, ok := s.tenant.users[k]; ok && !seen[k] {
			seen[k] = true
			items = append(items, project(u, fields).marshal())
		}
	}
	s.mu.Unlock()
	s.writePage(w, r, items, "users")
}

// signInsAllowed answers the 403 a tenant without Entra ID P1 or P2 gives when signInActivity is
// selected, and reports whether the request may go on.
func (s *Server) signInsAllowed(w http.ResponseWriter, r *http.Request) bool {
	if !s.opts.NoPremiumLicence {
		return true
	}
	for _, f := range selectFields(r) {
		if strings.EqualFold(f, "signInActivity") {
			writeError(w, r, http.StatusForbidden, codeNoPremiumLicence, messageNoPremiumLicence)
			return false
		}
	}
	return true
}

// RoundTrips counts the Graph HTTP requests received so far, each batch once however many requests
// it carried; token requests are not counted.
func (s *Server) RoundTrips() int {
	n := 0
	for _, c := range s.Calls() {
		if c.Batch == "" && strings.HasPrefix(c.Path, "/v1.0/") {
			n++
		}
	}
	return n
}

// CountingTransport counts the HTTP requests it carries whose URL starts with Prefix (the Graph
// root, e.g. GraphURL()), each attempt once: the round trips a client makes to Graph, its token
// requests left out. Next nil means http.DefaultTransport. It is safe for concurrent use.
type CountingTransport struct {
	Next   http.RoundTripper
	Prefix string

	mu sync.Mutex
	n  int
}

// RoundTrip counts req when it goes to Graph and passes it on.
func (t *CountingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasPrefix(req.URL.String(), t.Prefix) {
		t.mu.Lock()
		t.n++
		t.mu.Unlock()
	}
	next := t.Next
	if next == nil {
		next = http.DefaultTransport
	}
	return next.RoundTrip(req)
}

// Count is the number of Graph requests carried so far.
func (t *CountingTransport) Count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// Reset starts counting again from zero.
func (t *CountingTransport) Reset() {
	t.mu.Lock()
	t.n = 0
	t.mu.Unlock()
}
