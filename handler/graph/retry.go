package graph

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/logctx"
)

// retryTransport retries throttled and transient requests. It wraps the SDK's whole middleware
// chain, so each attempt is built (and compressed) afresh from the original body.
//
// Limits, whichever comes first: MaxRetries per request; the call's RetryBudget (a deadline shared
// by every request of one method call, pages included); the context's deadline. A wait that would
// end past a limit is not started: the last answer is returned at once.
type retryTransport struct {
	next           http.RoundTripper
	maxRetries     int
	baseDelay      time.Duration
	attemptTimeout time.Duration
	log            *zap.Logger
	now            func() time.Time
}

// maxBackoff caps the exponential backoff used when Graph sends no Retry-After.
const maxBackoff = 30 * time.Second

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	cl := callFrom(ctx)
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		body = b
	}
	deadline := t.now().Add(DefaultRetryBudget)
	if cl != nil {
		deadline = cl.deadline
	}
	// One client-request-id for every attempt, so Graph support can follow the retries.
	reqID := req.Header.Get("client-request-id")
	if reqID == "" {
		reqID = newRequestID()
	}
	op := ""
	if cl != nil {
		op = cl.op
	}

	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, t.attemptTimeout)
		r := req.Clone(actx)
		r.Header.Set("client-request-id", reqID)
		if attempt > 1 {
			r.Header.Set("Retry-Attempt", strconv.Itoa(attempt-1))
		}
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		}
		resp, err := t.next.RoundTrip(r)
		cl.record(resp, attempt)
		if err != nil {
			cancel()
		} else {
			// The attempt's context must live until the SDK has read the body.
			resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
		}

		delay, retry := t.retryable(ctx, req.Method, resp, err, attempt)
		if !retry || attempt > t.maxRetries {
			return resp, err
		}
		wake := t.now().Add(delay)
		if wake.After(deadline) {
			return resp, err
		}
		if d, ok := ctx.Deadline(); ok && !wake.Before(d) {
			return resp, err
		}
		status := 0
		if resp != nil {
			status = resp.StatusCode
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			_ = resp.Body.Close()
		}
		logctx.From(req.Context(), t.log).Info("graph request retried",
			zap.String("op", op), zap.String("method", req.Method), zap.String("path", req.URL.Path),
			zap.Int("status", status), zap.Int("attempt", attempt), zap.Duration("delay", delay),
			zap.NamedError("cause", err))
		if !sleep(ctx, delay) {
			return nil, ctx.Err()
		}
	}
}

// retryable decides whether an attempt's outcome is worth another attempt, and after how long.
func (t *retryTransport) retryable(ctx context.Context, method string, resp *http.Response, err error, attempt int) (time.Duration, bool) {
	if ctx.Err() != nil {
		return 0, false
	}
	idempotent := method != http.MethodPost || readOnlyFrom(ctx)
	if err != nil {
		// A POST may have reached Graph before the connection broke: retrying could create twice.
		if !idempotent || !(isNetwork(err) || errors.Is(err, context.DeadlineExceeded)) {
			return 0, false
		}
		return t.backoff(attempt), true
	}
	if !retryAnswer(idempotent, resp.StatusCode) {
		return 0, false
	}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), t.now()); ok {
		return d, true
	}
	return t.backoff(attempt), true
}

// retryAnswer reports whether an answer with this status is worth another attempt: throttling and
// an unavailable service for any request (Graph did not process it), a gateway timeout only for a
// request that may be repeated. Batched sub-requests follow the same rule.
func retryAnswer(idempotent bool, status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return true
	case http.StatusGatewayTimeout:
		return idempotent
	}
	return false
}

// readOnlyKey marks a POST that only reads (a JSON batch of GETs): it may be repeated like a GET
// after a broken connection or a gateway timeout.
type readOnlyKey struct{}

func withReadOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, readOnlyKey{}, true)
}

func readOnlyFrom(ctx context.Context) bool { v, _ := ctx.Value(readOnlyKey{}).(bool); return v }

// backoff is baseDelay doubled per attempt, capped, with up to 25% jitter so that concurrent
// invocations do not retry in step.
func (t *retryTransport) backoff(attempt int) time.Duration { return backoff(t.baseDelay, attempt) }

func backoff(base time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	if q := int64(d / 4); q > 0 {
		if n, err := rand.Int(rand.Reader, big.NewInt(q)); err == nil {
			d += time.Duration(n.Int64())
		}
	}
	return d
}

// parseRetryAfter reads Retry-After as seconds (fractions kept, unlike the SDK's handler) or an
// HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs < 0 || secs > 24*3600 {
			return 0, false
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
