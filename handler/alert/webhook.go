package alert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/caguard/caguard/handler/reconcile"
)

var _ reconcile.AlertSink = (*WebhookSink)(nil)

const (
	// webhookTimeout bounds one attempt, whatever client the caller passes.
	webhookTimeout = 10 * time.Second
	// webhookRetries is how many times a failed post is repeated: enough to ride out a throttle or a
	// restart, few enough that a dead endpoint cannot hold up the other sinks for long.
	webhookRetries = 2
	// maxRetryAfter caps the wait a server can ask for: an alert an hour late is no better than an error.
	maxRetryAfter = 30 * time.Second
	// webhookBackoff is the first wait when the server gives no Retry-After; it doubles per retry.
	webhookBackoff = time.Second
	// maxResponseRead is how much of an answer is kept, for the error text only.
	maxResponseRead = 4 << 10
	// maxResponseDrain is how much more is read so the connection can be reused; a longer answer is
	// cut off rather than read forever.
	maxResponseDrain = 64 << 10
	// maxErrorBody is how much of the kept answer goes into an error.
	maxErrorBody = 200
)

// WebhookSink posts each alert as JSON to an incoming webhook, in one of the Formats: a Teams Workflows
// Adaptive Card, Slack Block Kit blocks, or {"text": a short message, "alert": the Alert} for any
// other receiver.
//
// The URL is treated as a secret: errors and Name show its host only, and redirects are not followed,
// since a redirect would send the alert to a host the operator never named.
type WebhookSink struct {
	url     string
	host    string
	secrets []string // parts of the URL that must never appear in an error, longest first
	client  *http.Client
	format  Format // resolved: never FormatAuto

	// sleep and now are fields so tests can observe the waits between retries without waiting.
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time
}

// NewWebhookSink returns a sink that posts to rawURL in the format its host calls for (FormatAuto).
// See NewFormattedWebhookSink.
func NewWebhookSink(rawURL string, client *http.Client) (*WebhookSink, error) {
	return NewFormattedWebhookSink(rawURL, FormatAuto, client)
}

// NewFormattedWebhookSink returns a sink that posts to rawURL in format f with client, or with a client
// of its own when client is nil. FormatAuto (or "") picks the format from the URL's host with
// FormatForURL. The URL must be absolute https, or http to a loopback host (a local test receiver),
// and must not carry user information. A copy of client is used, with redirects switched off and a
// 10 second timeout when it has none.
func NewFormattedWebhookSink(rawURL string, f Format, client *http.Client) (*WebhookSink, error) {
	switch f {
	case "", FormatAuto:
		f = FormatForURL(rawURL)
	case FormatTeams, FormatSlack, FormatJSON:
	default:
		return nil, fmt.Errorf("webhook format %q: want one of auto, teams, slack, json", f)
	}
	// Errors here never echo rawURL: it carries the webhook's key.
	u, err := url.Parse(rawURL)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return nil, errors.New("webhook url: must be an absolute http(s) url")
	}
	switch {
	case u.User != nil:
		return nil, errors.New("webhook url: must not carry user information")
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	case u.Scheme == "http":
		return nil, fmt.Errorf("webhook url: must use https (plain http only to a loopback host), got host %q", u.Hostname())
	default:
		return nil, errors.New("webhook url: must be an absolute http(s) url")
	}

	c := &http.Client{}
	if client != nil {
		cp := *client
		c = &cp
	}
	if c.Timeout == 0 {
		c.Timeout = webhookTimeout
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	return &WebhookSink{
		url:     rawURL,
		host:    u.Hostname(),
		secrets: urlSecrets(rawURL, u),
		client:  c,
		format:  f,
		sleep:   sleepCtx,
		now:     time.Now,
	}, nil
}

// Name implements reconcile.AlertSink. It shows the host only.
func (s *WebhookSink) Name() string { return "webhook:" + s.host }

// Format is the format the sink posts in, with auto resolved.
func (s *WebhookSink) Format() Format { return s.format }

type webhookBody struct {
	Text  string          `json:"text"`
	Alert reconcile.Alert `json:"alert"`
}

// Send posts the alert. It retries at most twice, on 429, 5xx and network errors, waiting as long as
// Retry-After asks (up to 30s) or backing off from one second; it gives up early rather than wait past
// ctx's deadline. Other statuses are not retried: the same bytes would be refused again.
func (s *WebhookSink) Send(ctx context.Context, a reconcile.Alert) error {
	body, err := Encode(s.format, a)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		wait, err := s.post(ctx, body)
		if err == nil {
			return nil
		}
		if wait < 0 || attempt > webhookRetries || ctx.Err() != nil {
			return s.failure(a.ID, attempt, err)
		}
		if wait == 0 {
			wait = backoff(attempt)
		}
		if dl, ok := ctx.Deadline(); ok && !s.now().Add(wait).Before(dl) {
			return s.failure(a.ID, attempt, fmt.Errorf("%w; not retried: waiting %s would pass the deadline", err, wait))
		}
		if serr := s.sleep(ctx, wait); serr != nil {
			return s.failure(a.ID, attempt, fmt.Errorf("%w; retry abandoned: %w", err, serr))
		}
	}
}

func (s *WebhookSink) failure(id string, attempts int, err error) error {
	return fmt.Errorf("post alert %s to webhook at %s (%d attempt(s)): %w", id, s.host, attempts, err)
}

// post makes one attempt. On failure, wait says what to do next: negative means do not retry, zero
// means retry after the default backoff, positive means retry after that long.
func (s *WebhookSink) post(ctx context.Context, body []byte) (wait time.Duration, err error) {
	actx, cancel := context.WithTimeout(ctx, webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return -1, s.redact(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "caguard")

	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up: say so plainly, with the cause errors.Is can find.
			return -1, fmt.Errorf("request abandoned: %w", context.Cause(ctx))
		}
		if actx.Err() != nil {
			return 0, fmt.Errorf("no answer within %s: %w", webhookTimeout, actx.Err())
		}
		return 0, s.redact(err)
	}
	defer func() {
		// Drain a bounded amount so the connection goes back to the pool, then close.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseDrain))
		_ = resp.Body.Close()
	}()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))

	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return 0, nil
	}
	// Scrub before cutting to length, so a cut cannot leave part of a key behind.
	err = &StatusError{Code: resp.StatusCode, Body: printable(s.scrub(string(answer)), maxErrorBody)}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), s.now()); ok {
			// A zero Retry-After means "now"; the smallest positive wait keeps it distinct from "no header".
			return max(d, time.Nanosecond), err
		}
		return 0, err
	default:
		return -1, err
	}
}

// StatusError is a webhook's non-2xx answer. Body is the start of the answer, on one line, with any
// part of the webhook URL removed.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("webhook answered %d %s", e.Code, http.StatusText(e.Code))
	if e.Code >= 300 && e.Code <= 399 {
		msg += " (redirects are not followed)"
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// redactedError keeps the cause for errors.Is and errors.As but shows a message with the URL removed.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

// redact hides the URL in a transport error. net/http wraps them in *url.Error, whose text quotes the
// whole URL, query included; it is dropped, and the rest is scrubbed in case the URL appears deeper.
func (s *WebhookSink) redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &redactedError{msg: s.scrub(err.Error()), cause: err}
}

func (s *WebhookSink) scrub(msg string) string {
	for _, secret := range s.secrets {
		msg = strings.ReplaceAll(msg, secret, "[redacted]")
	}
	return msg
}

// urlSecrets lists what may not appear in an error: the URL in its written and parsed forms, its path
// (Slack puts its key there) and its query, its path segments and query values, escaped or not. Parts
// shorter than 6 characters are kept: hiding them would mangle the error without hiding a key.
func urlSecrets(raw string, u *url.URL) []string {
	cands := []string{raw, u.String(), u.EscapedPath(), u.Path, u.RawQuery, u.Fragment}
	for _, seg := range strings.Split(u.Path, "/") {
		cands = append(cands, seg, url.PathEscape(seg))
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			cands = append(cands, v, url.QueryEscape(v))
		}
	}
	var out []string
	for _, c := range cands {
		if len(c) >= 6 && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// retryAfter reads a Retry-After header: seconds or an HTTP date, capped at maxRetryAfter.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		d = time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(t.Sub(now), 0)
	} else {
		return 0, false
	}
	return min(d, maxRetryAfter), true
}

// backoff is the wait before retry n (1-based) when the server names none: 1s, 2s, ... with up to a
// quarter added at random, so many instances retrying together spread out.
func backoff(n int) time.Duration {
	d := webhookBackoff << (n - 1)
	return d + rand.N(d/4+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// printable turns an answer into one bounded line, so a hostile or verbose receiver cannot forge log
// lines or flood them.
func printable(s string, limit int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, strings.ToValidUTF8(s, "?"))
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit]) + "…"
	}
	return s
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
