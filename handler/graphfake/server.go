// Package graphfake is a local emulator of the parts of Microsoft Graph v1.0 and of the App Service
// managed-identity endpoint that caguard uses, close enough that the real msgraph-sdk-go and azidentity
// clients cannot tell it from the service.
//
// Contract:
//   - It listens on plain HTTP, by default on 127.0.0.1 with a random port. Graph lives under
//     GraphURL() (URL() + "/v1.0"); the managed-identity token endpoint is IdentityEndpoint() and expects
//     the IdentityHeader() secret in X-IDENTITY-HEADER, as App Service does.
//   - Every Graph request needs "Authorization: Bearer <token>" with a token this server issued and that
//     has not expired; anything else is a 401 OData error. Tokens are JWT-shaped (header.payload.sig,
//     base64url) and carry oid, tid, appid and roles claims. When Options.Roles is set, an operation
//     whose permission is missing from the token answers 403, so least privilege can be tested.
//   - Collections answer in small pages (Options.PageSize, default 2) with an absolute @odata.nextLink.
//     Request bodies may be gzip-compressed (the SDK compresses every body). Errors are OData error
//     bodies {"error":{"code","message","innerError"}}.
//   - Conditional Access policies: list, get, create (201 with the body; generated id and
//     createdDateTime), PATCH (merged as Graph merges it: objects key by key at every level, lists and
//     scalars replaced, an explicit null clears; answers 204), delete (204). Malformed JSON, an invalid
//     state, an unknown property, or users and groups that do not exist are a 400; an unknown id is a
//     404. grantControls.authenticationStrength is answered expanded from the strength's id, as Graph
//     v1.0 does.
//   - Users (GET /users/{id}, $select honoured; 404 for an unknown id; GET /users filtered by id):
//     the seeded users and every user that is a group member.
//   - JSON batching (POST /$batch, every sub-request recorded and served like a request of its
//     own) and POST /directoryObjects/getByIds; see batch.go.
//   - Groups' transitiveMembers (nested groups expanded, $select honoured) and authentication strength
//     policies, with Microsoft's three built-in strengths always present.
//   - Every request is recorded (Calls) before any answer to it leaves, so a client that has seen its
//     request fail or succeed finds it on record; faults can be injected (Inject): throttling, server
//     errors, slow answers, dropped connections, malformed or message-less bodies, and writes whose
//     body is partly ignored.
//   - Many tenants (fleet.go): a Fleet serves several tenants behind one Graph root, routing by the
//     token's tid claim, with an Entra-shaped TLS authority issuing each tenant's tokens.
//
// The server is safe for concurrent use. It imports only the standard library so that tests using it
// build in seconds.
package graphfake

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Placeholder identities used when Options leave them empty. None of them is a real object.
const (
	DefaultTenantID = "00000000-0000-0000-0000-0000000000aa"
	DefaultClientID = "00000000-0000-0000-0000-0000000000c1"
	DefaultObjectID = "00000000-0000-0000-0000-0000000000d1"
)

// Application permissions the emulator enforces when Options.Roles is set.
const (
	PermPolicyReadAll             = "Policy.Read.All"
	PermPolicyReadWriteCA         = "Policy.ReadWrite.ConditionalAccess"
	PermGroupMemberReadAll        = "GroupMember.Read.All"
	PermGroupReadAll              = "Group.Read.All"
	PermDirectoryReadAll          = "Directory.Read.All"
	PermPolicyReadWriteAuthMethod = "Policy.ReadWrite.AuthenticationMethod"
)

// allRoles is what a token carries when Options.Roles is nil: everything caguard may need.
func allRoles() []string {
	return []string{PermPolicyReadAll, PermPolicyReadWriteCA, PermGroupMemberReadAll, PermAccessReviewReadAll, PermUserReadAll, PermAuditLogReadAll,
		PermLicenseAssignmentReadAll}
}

const maxBody = 4 << 20

// Options configure a Server. The zero value is usable.
type Options struct {
	// Addr is the address to listen on; default "127.0.0.1:0" (a random free port).
	Addr string
	// TenantID is the tid claim of issued tokens; default DefaultTenantID. A seeded scenario's
	// tenantId overrides it.
	TenantID string
	// ClientID is the appid claim for a system-assigned identity; default DefaultClientID. A
	// user-assigned request (client_id=...) gets its own client id.
	ClientID string
	// ObjectID is the oid claim (the service principal's object id); default DefaultObjectID.
	ObjectID string
	// PageSize is the largest page any collection answers ($top can only lower it); default 2.
	PageSize int
	// Roles are the application permissions put in issued tokens. Nil grants every permission caguard
	// needs and skips permission checks; a non-nil slice is enforced per operation.
	Roles []string
	// TokenLifetime is how long issued tokens are valid; default one hour.
	TokenLifetime time.Duration
	// CollapseAuthenticationStrength makes policies answer grantControls.authenticationStrength with
	// its id only, for clients that must cope with an unexpanded reference.
	CollapseAuthenticationStrength bool
	// NoPremiumLicence makes the tenant one without Entra ID P1 or P2: selecting a user's
	// signInActivity answers 403 Authentication_RequestFromNonPremiumTenantOrB2CTenant, as Graph
	// does whatever the permissions.
	NoPremiumLicence bool
	// IdentityHeader is the managed-identity secret; default a random value.
	IdentityHeader string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Server is a running (or not yet started) emulator.
type Server struct {
	opts     Options
	key      []byte
	idHeader string

	srv *http.Server
	ln  net.Listener

	mu     sync.Mutex
	root   string // http://127.0.0.1:port, set by Start
	tenant tenant
	// callsMu guards calls and the fields of each recorded call. It is apart from mu because a
	// status is recorded while a handler may hold mu.
	callsMu sync.Mutex
	calls   []*Call
	faults  []*faultState
	lag     lagState
	started bool
	closed  bool
}

// New returns an unstarted server seeded with an empty tenant (built-in authentication strengths
// only). Seed it, then Start it.
func New(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.TenantID == "" {
		opts.TenantID = DefaultTenantID
	}
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.ObjectID == "" {
		opts.ObjectID = DefaultObjectID
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 2
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	idHeader := opts.IdentityHeader
	if idHeader == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("identity header: %w", err)
		}
		idHeader = hex.EncodeToString(b)
	}
	s := &Server{opts: opts, key: key, idHeader: idHeader}
	s.tenant = newTenant(opts.TenantID)
	return s, nil
}

// Start listens on Options.Addr and serves in the background until Close.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("graphfake: already started")
	}
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("graphfake: listen on %s: %w", s.opts.Addr, err)
	}
	s.ln = ln
	s.root = "http://" + ln.Addr().String()
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
	}
	s.started = true
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// Close stops the server and closes every connection, waiting requests included.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.started || s.closed {
		s.closed = true
		s.mu.Unlock()
		return
	}
	s.closed = true
	srv := s.srv
	s.mu.Unlock()
	_ = srv.Close()
}

// URL is the server root, e.g. http://127.0.0.1:41234. Empty before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.root
}

// GraphURL is the Graph base URL, URL() + "/v1.0", the value for GRAPH_BASE_URL.
func (s *Server) GraphURL() string { return s.URL() + "/v1.0" }

// IdentityEndpoint is the App Service style managed-identity endpoint, the value for
// IDENTITY_ENDPOINT.
func (s *Server) IdentityEndpoint() string { return s.URL() + "/msi/token" }

// IdentityHeader is the secret the identity endpoint expects, the value for IDENTITY_HEADER.
func (s *Server) IdentityHeader() string { return s.idHeader }

// Token issues a valid access token for Graph as the system-assigned identity, for tests that plug
// in a static credential instead of the managed-identity endpoint.
func (s *Server) Token() string {
	return s.issue("https://graph.microsoft.com", s.opts.ClientID)
}

// serveHTTP records the call, applies any matching fault and routes the request.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.opts.Now()
	call := &Call{
		Time:   start,
		Method: r.Method,
		Path:   r.URL.Path,
		Query:  r.URL.RawQuery,
		Header: redactHeader(r.Header),
	}
	if id, ok := r.Context().Value(batchKey{}).(string); ok {
		call.Batch = id
	}
	body, bodyErr := readBody(r)
	call.Body = body
	// The call is on record before any answer can reach the client: a test that reads Calls as
	// soon as its request returns (or its connection drops) must find it there. Status is set
	// when the status line is written, before any byte of the answer goes out.
	s.callsMu.Lock()
	s.calls = append(s.calls, call)
	s.callsMu.Unlock()
	rec := &recorder{ResponseWriter: w, onStatus: func(code int) {
		s.callsMu.Lock()
		call.Status = code
		s.callsMu.Unlock()
	}}
	defer func() {
		d := s.opts.Now().Sub(start)
		s.callsMu.Lock()
		call.Duration = d
		s.callsMu.Unlock()
	}()

	if f := s.takeFault(r.Method, r.URL.Path); f != nil {
		s.callsMu.Lock()
		call.Fault = true
		s.callsMu.Unlock()
		if s.applyFault(rec, w, r, f) {
			return
		}
		if len(f.IgnoreFields) > 0 && bodyErr == nil {
			body = withoutFields(body, f.IgnoreFields)
		}
	}
	if bodyErr != nil {
		status := http.StatusBadRequest
		if errors.Is(bodyErr, errUnsupportedEncoding) {
			status = http.StatusUnsupportedMediaType
		}
		writeError(rec, r, status, "BadRequest", bodyErr.Error())
		return
	}
	if r.URL.Path == "/msi/token" {
		s.serveIdentity(rec, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1.0/")
	if !ok {
		writeError(rec, r, http.StatusNotFound, "NotFound", "only /v1.0 is served")
		return
	}
	claims, denied := s.verify(r.Header.Get("Authorization"))
	if denied != "" {
		rec.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
		writeError(rec, r, http.StatusUnauthorized, "InvalidAuthenticationToken", denied)
		return
	}
	s.route(rec, r, claims, strings.Split(strings.Trim(rest, "/"), "/"), body)
}

// errUnsupportedEncoding answers 415, which makes the SDK resend the body uncompressed.
var errUnsupportedEncoding = errors.New("unsupported content encoding")

// readBody reads the request body, undoing gzip (the SDK compresses every request body).
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return raw, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return raw, fmt.Errorf("gzip body: %w", err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, maxBody))
		if err != nil {
			return raw, fmt.Errorf("gzip body: %w", err)
		}
		return out, nil
	default:
		return raw, fmt.Errorf("%w %q", errUnsupportedEncoding, enc)
	}
}

func redactHeader(h http.Header) http.Header {
	out := h.Clone()
	out.Del("Authorization")
	out.Del("X-Identity-Header")
	return out
}

// recorder reports the status written, once, before it is sent.
type recorder struct {
	http.ResponseWriter
	onStatus func(int)
	wrote    bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.wrote = true
		r.onStatus(code)
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

// sleep waits d or until ctx ends, so Close never hangs on a slow-answer fault.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
