package azfunc

import (
	"context"
	"errors"
	"net/http"
)

// retriable is implemented by errors that know whether a retry can fix them (Graph's errors do).
type retriable interface{ Retriable() bool }

// IsRetriable reports whether a retry of the invocation may succeed: the error says so itself, or it
// is a deadline that ran out.
func IsRetriable(err error) bool {
	var r retriable
	if errors.As(err, &r) {
		return r.Retriable()
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// PublicError is an error whose message is safe to show a caller. Other errors are shown only as a
// generic sentence: their text may hold a Graph answer or other detail that belongs in logs only.
type PublicError struct {
	Status  int // HTTP status for an HTTP caller; 0 means 500
	Message string
	Err     error
}

func (e *PublicError) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *PublicError) Unwrap() error { return e.Err }

// Retriable is false: a public error describes input that retrying cannot change.
func (e *PublicError) Retriable() bool { return false }

// Permanent wraps err with a message safe to show a caller; retrying will not help.
func Permanent(msg string, err error) error {
	return &PublicError{Status: http.StatusBadRequest, Message: msg, Err: err}
}

// BadRequest is a caller's mistake, answered with 400 and msg.
func BadRequest(msg string) error { return &PublicError{Status: http.StatusBadRequest, Message: msg} }

// Describer is implemented by errors that can say what failed in words a person can act on and that
// are safe to show any caller: no token, no raw answer body, no SAS. The reconciler's failures, Graph's
// errors and storage's errors do; the text is what an HTTP caller and the invocation log read.
type Describer interface{ Describe() string }

// PublicMessage returns the text of err that may be shown to a caller: a PublicError's message, else
// the words of the outermost Describer in the chain, else a generic sentence.
func PublicMessage(err error) string {
	var p *PublicError
	if errors.As(err, &p) {
		return p.Message
	}
	var d Describer
	if errors.As(err, &d) {
		if s := d.Describe(); s != "" {
			return s
		}
	}
	if IsRetriable(err) {
		return "a dependency is unavailable or throttling; retry later"
	}
	return "internal error; the function's log has the details"
}

func statusOf(err error) int {
	var p *PublicError
	if errors.As(err, &p) {
		return p.Status
	}
	return 0
}
