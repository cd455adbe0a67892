package graph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

// Least-privilege application permissions, named in 403 errors.
const (
	PermReadPolicies  = "Policy.Read.All"
	PermWritePolicies = "Policy.ReadWrite.ConditionalAccess"
	PermReadMembers   = "GroupMember.Read.All"
)

// Error is a failed Graph operation. It never holds a token or a raw response body.
type Error struct {
	// Op is the operation, e.g. "list policies".
	Op string
	// Status is the HTTP status of the last answer; 0 when none arrived (network error, timeout,
	// token acquisition).
	Status int
	// Code and Message come from the OData error body when there was one.
	Code    string
	Message string
	// RequestID is Graph's request-id, for support cases.
	RequestID string
	// Permission is the application permission the operation needs, set on 403.
	Permission string
	// RetryAfter is the last Retry-After Graph sent, if any.
	RetryAfter time.Duration
	// Attempts is the number of HTTP attempts made for the failing request.
	Attempts int
	// Transient reports that retrying later can help (429, 5xx, timeouts, network errors).
	Transient bool
	// Err is the underlying cause when it is safe to expose (network and context errors).
	Err error
}

// Error describes the failure in one line.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	switch {
	case e.Status != 0:
		fmt.Fprintf(&b, "graph answered %d", e.Status)
		if e.Code != "" {
			fmt.Fprintf(&b, " %s", e.Code)
		}
		switch {
		case e.Message != "":
			fmt.Fprintf(&b, ": %s", e.Message)
		case e.Err != nil:
			fmt.Fprintf(&b, ": %s", oneLine(e.Err.Error()))
		}
	case e.Message != "":
		if e.Code != "" {
			fmt.Fprintf(&b, "%s: ", e.Code)
		}
		b.WriteString(e.Message)
	case e.Err != nil:
		b.WriteString(oneLine(e.Err.Error()))
	default:
		b.WriteString("unknown failure")
	}
	if e.Permission != "" {
		fmt.Fprintf(&b, " (the application needs the %s permission, admin-consented)", e.Permission)
	}
	if e.LicenceMissing() {
		b.WriteString(" (" + licenceNote + ")")
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [request-id %s]", e.RequestID)
	}
	return b.String()
}

// Unwrap returns the safe underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Retriable reports whether retrying later can help. Other packages test it through an interface
// (interface{ Retriable() bool }) with errors.As, without importing this package.
func (e *Error) Retriable() bool { return e.Transient }

// NotFound reports a 404: the object does not exist.
func (e *Error) NotFound() bool { return e.Status == http.StatusNotFound }

// callKey carries a *call in the request context, from a method to the retry transport.
type callKey struct{}

// call is the state of one method call: the retry deadline, and what the transport saw last, which
// classification needs when the SDK's error has lost it (e.g. a body that is not JSON).
type call struct {
	op       string
	perm     string
	deadline time.Time

	mu       sync.Mutex
	status   int
	header   http.Header
	attempts int
}

func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

func (c *call) record(resp *http.Response, attempts int) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attempts = attempts
	if resp == nil {
		c.status, c.header = 0, nil
		return
	}
	c.status, c.header = resp.StatusCode, resp.Header.Clone()
}

func (c *call) last() (int, http.Header, int) {
	if c == nil {
		return 0, nil, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.header, c.attempts
}

// retriableStatus is the classification for callers: throttling and server-side failures.
func retriableStatus(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500
}

// classify turns whatever the SDK, azidentity or the transport returned into an *Error.
func classify(op, perm string, err error, cl *call) error {
	if err == nil {
		return nil
	}
	var ge *Error
	if errors.As(err, &ge) {
		return ge
	}
	status, header, attempts := cl.last()
	e := &Error{Op: op, Attempts: attempts}

	var oe *odataerrors.ODataError
	var ae *abstractions.ApiError
	var afe *azidentity.AuthenticationFailedError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		e.Code, e.Message, e.Transient, e.Err = "Timeout", "deadline exceeded", true, context.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		// The work was not done; an invocation that is not cancelled can do it.
		e.Code, e.Message, e.Transient, e.Err = "Canceled", "canceled", true, context.Canceled
	case errors.As(err, &oe):
		// ODataError.Error() dereferences the message and panics when it is absent: read the
		// fields through the getters only.
		e.Status = oe.ResponseStatusCode
		if me := oe.GetErrorEscaped(); me != nil {
			e.Code, e.Message = deref(me.GetCode()), deref(me.GetMessage())
			if in := me.GetInnerError(); in != nil {
				e.RequestID = deref(in.GetRequestId())
			}
		}
		fromHeaders(e, oe.GetResponseHeaders())
	case errors.As(err, &ae):
		e.Status = ae.ResponseStatusCode
		e.Message = "no error details in the answer"
		fromHeaders(e, ae.GetResponseHeaders())
	case isNetwork(err):
		e.Code, e.Transient, e.Err = "NetworkError", true, err
		if status != 0 {
			// The connection broke while the body was read.
			e.Status = status
		}
	case errors.As(err, &afe):
		e.Code = "AuthenticationFailed"
		e.Message = "token acquisition failed: " + oneLine(afe.Error())
		if afe.RawResponse != nil {
			e.Transient = retriableStatus(afe.RawResponse.StatusCode)
		}
		return e
	case isCredentialUnavailable(err):
		e.Code = "CredentialUnavailable"
		e.Message = oneLine(err.Error())
		return e
	case status != 0:
		// The SDK could not read the answer (not JSON, truncated): keep the status we saw.
		e.Status = status
		e.Code = "MalformedResponse"
		e.Message = "the answer could not be decoded: " + oneLine(err.Error())
		if status < 400 {
			// A garbled success answer comes from a proxy or a broken connection, not from a
			// request Graph refused.
			e.Transient = true
		}
	default:
		e.Code = "ClientError"
		e.Message = oneLine(err.Error())
		return e
	}
	if e.RequestID == "" && header != nil {
		e.RequestID = header.Get("request-id")
	}
	if e.Status != 0 {
		e.Transient = e.Transient || retriableStatus(e.Status)
		if e.Code == "" {
			e.Code = http.StatusText(e.Status)
		}
	}
	if e.Status == http.StatusForbidden && perm != "" && !e.LicenceMissing() {
		e.Permission = perm
	}
	return e
}

// codeNoPremiumLicence is the error code of the 403 Graph answers a read of sign-in activity with
// when the tenant has no Entra ID P1 or P2 licence ("Neither tenant is B2C or tenant doesn't have
// premium license"): no permission is missing, and granting one would not help.
const codeNoPremiumLicence = "Authentication_RequestFromNonPremiumTenantOrB2CTenant"

const licenceNote = "the tenant needs an Entra ID P1 or P2 licence; no permission is missing"

// LicenceMissing reports a 403 that asks for a licence rather than a permission: reading sign-in
// activity in a tenant without Entra ID P1 or P2.
func (e *Error) LicenceMissing() bool {
	return e.Status == http.StatusForbidden && strings.EqualFold(e.Code, codeNoPremiumLicence)
}

func fromHeaders(e *Error, h *abstractions.ResponseHeaders) {
	if h == nil {
		return
	}
	if v := h.Get("request-id"); len(v) > 0 && e.RequestID == "" {
		e.RequestID = v[0]
	}
	if v := h.Get("Retry-After"); len(v) > 0 {
		if d, ok := parseRetryAfter(v[0], time.Now()); ok {
			e.RetryAfter = d
		}
	}
}

func isNetwork(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// isCredentialUnavailable matches azidentity's unexported credentialUnavailableError, which marks
// itself NonRetriable for azcore's retry policy.
func isCredentialUnavailable(err error) bool {
	var nr interface{ NonRetriable() }
	return errors.As(err, &nr)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// oneLine keeps a message to one short line, for logs and errors.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const max = 300
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// oidClaim reads the oid claim from a JWT's payload without verifying it.
func oidClaim(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("access token is not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", errors.New("access token payload is not base64url")
	}
	var c struct {
		OID string `json:"oid"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", errors.New("access token payload is not JSON")
	}
	if c.OID == "" {
		return "", errors.New("access token has no oid claim")
	}
	return c.OID, nil
}
