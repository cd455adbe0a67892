package alert

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// step is one scripted answer of the test receiver.
type step struct {
	status int
	header map[string]string
	body   string
	drop   bool // close the connection without answering
}

// receiver is a webhook on 127.0.0.1 that answers with steps in order, repeating the last one.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	steps  []step
	bodies [][]byte
	reqs   []*http.Request
}

func newReceiver(t *testing.T, steps ...step) *receiver {
	t.Helper()
	r := &receiver{steps: steps}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := len(r.reqs)
		r.reqs = append(r.reqs, req)
		r.bodies = append(r.bodies, body)
		st := r.steps[min(n, len(r.steps)-1)]
		r.mu.Unlock()
		if st.drop {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		for k, v := range st.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(st.status)
		_, _ = io.WriteString(w, st.body)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// hookPath and hookQuery make the test URL look like a real one: the key sits in the path and query.
const hookPath, hookQuery = "/hooks/T0001/B0002/PATHSECRET", "?key=SECRET"

// newTestSink returns a sink for rec whose waits are recorded, not slept.
func newTestSink(t *testing.T, rec *receiver) (*WebhookSink, *[]time.Duration) {
	t.Helper()
	s, err := NewWebhookSink(rec.URL+hookPath+hookQuery, nil)
	if err != nil {
		t.Fatalf("NewWebhookSink: %v", err)
	}
	var waits []time.Duration
	s.sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctx.Err()
	}
	return s, &waits
}

func TestWebhookSinkDeliversTheExactJSON(t *testing.T) {
	rec := newReceiver(t, step{status: 200, body: "ok"})
	s, _ := newTestSink(t, rec)
	if err := s.Send(context.Background(), sampleAlert()); err != nil {
		t.Fatalf("Send: got %v, want nil", err)
	}
	if rec.requests() != 1 {
		t.Fatalf("got %d requests, want 1", rec.requests())
	}
	req := rec.reqs[0]
	if req.Method != http.MethodPost || req.URL.Path != hookPath || req.URL.Query().Get("key") != "SECRET" {
		t.Errorf("got %s %s, want POST %s%s", req.Method, req.URL, hookPath, hookQuery)
	}
	if got := req.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", got)
	}
	golden(t, "webhook_body.json", rec.bodies[0])

	var body struct {
		Text  string          `json:"text"`
		Alert json.RawMessage `json:"alert"`
	}
	if err := json.Unmarshal(rec.bodies[0], &body); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	want, _ := json.Marshal(sampleAlert())
	if string(body.Alert) != string(want) {
		t.Errorf("alert: got %s, want %s", body.Alert, want)
	}
}

func TestWebhookSinkRetries(t *testing.T) {
	tests := []struct {
		name      string
		steps     []step
		timeout   time.Duration // 0: no deadline
		wantErr   string        // "" means success
		wantCalls int
		wantWaits func(t *testing.T, waits []time.Duration)
	}{
		{
			name:      "retries 503 then succeeds",
			steps:     []step{{status: 503}, {status: 200}},
			wantCalls: 2,
			wantWaits: waitsBetween(time.Second, time.Second*5/4),
		},
		{
			name:      "retries 429 then succeeds",
			steps:     []step{{status: 429}, {status: 204}},
			wantCalls: 2,
			wantWaits: waitsBetween(time.Second, time.Second*5/4),
		},
		{
			name:      "retries a dropped connection then succeeds",
			steps:     []step{{drop: true}, {status: 200}},
			wantCalls: 2,
			wantWaits: waitsBetween(time.Second, time.Second*5/4),
		},
		{
			name:      "honours Retry-After in seconds",
			steps:     []step{{status: 429, header: map[string]string{"Retry-After": "7"}}, {status: 200}},
			wantCalls: 2,
			wantWaits: waitsExactly(7 * time.Second),
		},
		{
			name:      "honours Retry-After of zero",
			steps:     []step{{status: 503, header: map[string]string{"Retry-After": "0"}}, {status: 200}},
			wantCalls: 2,
			wantWaits: waitsExactly(time.Nanosecond),
		},
		{
			name:      "caps a long Retry-After at 30 seconds",
			steps:     []step{{status: 503, header: map[string]string{"Retry-After": "3600"}}, {status: 200}},
			wantCalls: 2,
			wantWaits: waitsExactly(30 * time.Second),
		},
		{
			name:      "ignores an unreadable Retry-After and backs off",
			steps:     []step{{status: 503, header: map[string]string{"Retry-After": "soon"}}, {status: 200}},
			wantCalls: 2,
			wantWaits: waitsBetween(time.Second, time.Second*5/4),
		},
		{
			name:      "gives up after two retries",
			steps:     []step{{status: 503, body: "busy"}},
			wantErr:   "(3 attempt(s)): webhook answered 503 Service Unavailable: busy",
			wantCalls: 3,
			wantWaits: func(t *testing.T, w []time.Duration) {
				if len(w) != 2 || w[0] < time.Second || w[1] < 2*time.Second || w[1] > 2*time.Second*5/4 {
					t.Errorf("waits: got %v, want about [1s 2s]", w)
				}
			},
		},
		{
			name:      "does not retry 400",
			steps:     []step{{status: 400, body: "bad payload"}},
			wantErr:   "(1 attempt(s)): webhook answered 400 Bad Request: bad payload",
			wantCalls: 1,
			wantWaits: waitsExactly(),
		},
		{
			name:      "does not follow a redirect",
			steps:     []step{{status: 302, header: map[string]string{"Location": "https://elsewhere.example/"}}},
			wantErr:   "webhook answered 302 Found (redirects are not followed)",
			wantCalls: 1,
			wantWaits: waitsExactly(),
		},
		{
			name:      "does not wait past the deadline",
			steps:     []step{{status: 429, header: map[string]string{"Retry-After": "20"}}},
			timeout:   5 * time.Second,
			wantErr:   "not retried: waiting 20s would pass the deadline",
			wantCalls: 1,
			wantWaits: waitsExactly(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newReceiver(t, tt.steps...)
			s, waits := newTestSink(t, rec)
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			err := s.Send(ctx, sampleAlert())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Send: got %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Send: got %v, want an error containing %q", err, tt.wantErr)
			}
			if got := rec.requests(); got != tt.wantCalls {
				t.Errorf("requests: got %d, want %d", got, tt.wantCalls)
			}
			tt.wantWaits(t, *waits)
		})
	}
}

func waitsExactly(want ...time.Duration) func(*testing.T, []time.Duration) {
	return func(t *testing.T, got []time.Duration) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("waits: got %v, want %v", got, want)
			return
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("waits: got %v, want %v", got, want)
			}
		}
	}
}

func waitsBetween(lo, hi time.Duration) func(*testing.T, []time.Duration) {
	return func(t *testing.T, got []time.Duration) {
		t.Helper()
		if len(got) != 1 || got[0] < lo || got[0] > hi {
			t.Errorf("waits: got %v, want one wait in [%s, %s]", got, lo, hi)
		}
	}
}

func TestWebhookSinkHonoursRetryAfterAsAnHTTPDate(t *testing.T) {
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	rec := newReceiver(t,
		step{status: 503, header: map[string]string{"Retry-After": now.Add(12 * time.Second).Format(http.TimeFormat)}},
		step{status: 200})
	s, waits := newTestSink(t, rec)
	s.now = func() time.Time { return now }
	if err := s.Send(context.Background(), sampleAlert()); err != nil {
		t.Fatalf("Send: got %v, want nil", err)
	}
	waitsExactly(12*time.Second)(t, *waits)
}

func TestWebhookSinkWaitsForRetryAfterOnTheRealClock(t *testing.T) {
	rec := newReceiver(t, step{status: 429, header: map[string]string{"Retry-After": "1"}}, step{status: 200})
	s, err := NewWebhookSink(rec.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Send(context.Background(), sampleAlert()); err != nil {
		t.Fatalf("Send: got %v, want nil", err)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("elapsed: got %s, want at least the 1s Retry-After", el)
	}
}

func TestWebhookSinkErrorsNeverShowTheURL(t *testing.T) {
	echo := func(r *receiver) string { return "you posted to " + r.URL + hookPath + hookQuery + " with key SECRET" }
	tests := []struct {
		name  string
		setup func(t *testing.T) (rawURL string)
	}{
		{"an answer that echoes the URL", func(t *testing.T) string {
			r := newReceiver(t)
			r.steps = []step{{status: 400, body: echo(r)}}
			return r.URL
		}},
		{"a server error after all retries", func(t *testing.T) string {
			r := newReceiver(t)
			r.steps = []step{{status: 500, body: echo(r)}}
			return r.URL
		}},
		{"a redirect to a URL with the key", func(t *testing.T) string {
			r := newReceiver(t)
			r.steps = []step{{status: 307, header: map[string]string{"Location": r.URL + hookPath + hookQuery}, body: echo(r)}}
			return r.URL
		}},
		{"a dropped connection", func(t *testing.T) string {
			return newReceiver(t, step{drop: true}).URL
		}},
		{"a refused connection", func(t *testing.T) string {
			r := newReceiver(t, step{status: 200})
			r.Close()
			return r.URL
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := tt.setup(t)
			s, err := NewWebhookSink(base+hookPath+hookQuery, nil)
			if err != nil {
				t.Fatal(err)
			}
			s.sleep = func(context.Context, time.Duration) error { return nil }
			err = s.Send(context.Background(), sampleAlert())
			if err == nil {
				t.Fatal("Send: got nil, want an error")
			}
			t.Logf("error: %v", err)
			for _, secret := range []string{"SECRET", "PATHSECRET", hookPath, "key="} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows %q: %v", secret, err)
				}
			}
			if !strings.Contains(err.Error(), "127.0.0.1") {
				t.Errorf("error does not name the host: %v", err)
			}
			if strings.Contains(s.Name(), "SECRET") || s.Name() != "webhook:127.0.0.1" {
				t.Errorf("Name: got %q, want webhook:127.0.0.1", s.Name())
			}
		})
	}
}

func TestWebhookSinkBoundsTheAnswer(t *testing.T) {
	rec := newReceiver(t, step{status: 400, body: strings.Repeat("x", 1<<20)})
	s, _ := newTestSink(t, rec)
	err := s.Send(context.Background(), sampleAlert())
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatalf("Send: got %v, want a *StatusError", err)
	}
	if n := len([]rune(se.Body)); n > maxErrorBody+1 {
		t.Errorf("error body: got %d runes, want at most %d", n, maxErrorBody+1)
	}
}

func TestWebhookSinkRespectsCancellation(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		slow  bool // the receiver does not answer until the request is abandoned
	}{
		{name: "cancelled while the receiver is slow", slow: true},
		{name: "cancelled while waiting to retry", steps: []step{{status: 503, header: map[string]string{"Retry-After": "30"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var srv *httptest.Server
			if tt.slow {
				done := make(chan struct{})
				srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					// The server notices a gone client only once the body has been read.
					_, _ = io.Copy(io.Discard, r.Body)
					select {
					case <-r.Context().Done():
					case <-done:
					}
				}))
				t.Cleanup(srv.Close)
				t.Cleanup(func() { close(done) })
			} else {
				srv = newReceiver(t, tt.steps...).Server
			}
			s, err := NewWebhookSink(srv.URL+hookQuery, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			start := time.Now()
			err = s.Send(ctx, sampleAlert())
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Send: got %v, want an error wrapping context.Canceled", err)
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("Send returned after %s, want soon after the cancel", el)
			}
		})
	}
}

func TestNewWebhookSink(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		wantErr string // "" means accepted
	}{
		{"accepts https", "https://contoso.webhook.office.com/webhookb2/abc?key=SECRET", ""},
		{"accepts http to 127.0.0.1", "http://127.0.0.1:8080/hook", ""},
		{"accepts http to localhost", "http://localhost:8080/hook", ""},
		{"accepts http to ::1", "http://[::1]:8080/hook", ""},
		{"rejects http to another host", "http://hooks.example.com/hook?key=SECRET", "must use https"},
		{"rejects user information", "https://user:SECRET@hooks.example.com/hook", "must not carry user information"},
		{"rejects a relative URL", "/hook?key=SECRET", "must be an absolute http(s) url"},
		{"rejects another scheme", "ftp://hooks.example.com/hook?key=SECRET", "must be an absolute http(s) url"},
		{"rejects an unparseable URL", "https://hooks.example.com/%zz?key=SECRET", "must be an absolute http(s) url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewWebhookSink(tt.url, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error shows the key: %v", err)
			}
		})
	}

	t.Run("keeps the caller's client but adds a timeout and refuses redirects", func(t *testing.T) {
		c := &http.Client{}
		s, err := NewWebhookSink("https://hooks.example.com/x", c)
		if err != nil {
			t.Fatal(err)
		}
		if s.client == c || s.client.Timeout != webhookTimeout || s.client.CheckRedirect == nil {
			t.Errorf("client: got %+v, want a copy with a %s timeout and a redirect check", s.client, webhookTimeout)
		}
		if c.Timeout != 0 || c.CheckRedirect != nil {
			t.Errorf("the caller's client was changed: %+v", c)
		}
	})
}

func TestWebhookText(t *testing.T) {
	t.Run("tells who changed what, why it fails and what to do", func(t *testing.T) {
		text := messageText(sampleAlert())
		for _, want := range []string{
			"caguard alert: MFA is NOT required for the Windows Azure Service Management API: mallory@contoso.example weakened \"Require MFA for Azure management\", and caguard wrote nothing. Fix the policy, or let caguard restore it (REMEDIATION_MODE=remediate). (tenant 11111111-2222-3333-4444-555555555555)",
			"mallory@contoso.example: Update conditional access policy on \"Require MFA for Azure management\"",
			"changed state, conditions.users.includeUsers",
			"- The policy is disabled. (STATE_NOT_ENABLED)",
			"update-managed-policy cccccccc-0000-0000-0000-000000000003 (enabledForReportingButNotEnforced), not performed",
			"Next step: Restore MFA",
			"Alert 3f2a9c1be07d4a55, 2026-03-14T09:26:53Z, trigger audit-event.",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("text lacks %q:\n%s", want, text)
			}
		}
	})

	t.Run("escapes Slack markup and line breaks in tenant values", func(t *testing.T) {
		a := sampleAlert()
		a.Closest.DisplayName = "<!channel> pwned\n- fake line & more"
		text := messageText(a)
		if strings.Contains(text, "<!channel>") || strings.Contains(text, "\n- fake line") {
			t.Errorf("text carries raw markup:\n%s", text)
		}
		if !strings.Contains(text, "&lt;!channel&gt; pwned - fake line &amp; more") {
			t.Errorf("text lacks the escaped name:\n%s", text)
		}
	})

	t.Run("bounds a burst of changes", func(t *testing.T) {
		a := sampleAlert()
		for range 14 {
			a.Changes = append(a.Changes, a.Changes[0])
		}
		text := messageText(a)
		// One more for the headline, which names who made the first change.
		if got := strings.Count(text, "mallory@contoso.example"); got != maxTextChanges+1 {
			t.Errorf("changes shown: got %d, want %d", got, maxTextChanges)
		}
		if want := "- and " + strconv.Itoa(15-maxTextChanges) + " more"; !strings.Contains(text, want) {
			t.Errorf("text lacks %q", want)
		}
	})
}
