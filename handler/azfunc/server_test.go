package azfunc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caguard/caguard/handler/azfunc/hosttest"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type retriableErr struct{}

func (retriableErr) Error() string   { return "graph: 503 service unavailable" }
func (retriableErr) Retriable() bool { return true }

// countEvents reads a batch as the host delivers it: an array whose elements are event bodies, either
// strings (dataType string) or already-parsed JSON (default dataType).
func countEvents(v Value) (strs, objs int, err error) {
	dec := json.NewDecoder(v.Reader())
	if _, err := dec.Token(); err != nil {
		return 0, 0, err
	}
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return 0, 0, err
		}
		if raw[0] == '"' {
			strs++
		} else {
			objs++
		}
	}
	return strs, objs, nil
}

func testServer(t *testing.T) (*Server, *syncBuffer, *syncBuffer) {
	t.Helper()
	return newTestServer()
}

func newTestServer() (*Server, *syncBuffer, *syncBuffer) {
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	log := NewLogger(stdout, stderr, zapcore.DebugLevel)
	s := NewServer(log, 5*time.Second,
		Function{Name: "AuditLogEvents", Handle: func(ctx context.Context, inv *Invocation) (*Result, error) {
			v, ok := inv.Binding("events")
			if !ok {
				return nil, Permanent("binding events is missing", nil)
			}
			strs, objs, err := countEvents(v)
			if err != nil {
				return nil, Permanent("events is not an array", err)
			}
			inv.Logf("events=%d parsed=%d", strs, objs)
			return &Result{}, nil
		}},
		Function{Name: "NightlySweep", Handle: func(ctx context.Context, inv *Invocation) (*Result, error) {
			ti, err := inv.Timer("timer")
			if err != nil {
				return nil, Permanent("timer binding", err)
			}
			inv.Logf("pastDue=%t monitored=%t", ti.IsPastDue, ti.ScheduleStatus != nil)
			return &Result{}, nil
		}},
		Function{Name: "Evaluate", HTTPOutput: "res", Handle: func(ctx context.Context, inv *Invocation) (*Result, error) {
			req, err := inv.HTTPRequest("req")
			if err != nil {
				return nil, Permanent("req binding", err)
			}
			return &Result{Outputs: map[string]any{"res": JSONResponse(200, map[string]string{"method": req.Method})}}, nil
		}},
		Function{Name: "Panics", Handle: func(ctx context.Context, inv *Invocation) (*Result, error) {
			var m map[string]int
			m["boom"]++
			return nil, nil
		}},
		Function{Name: "Throttled", Handle: func(ctx context.Context, inv *Invocation) (*Result, error) {
			return nil, fmt.Errorf("list policies: %w", retriableErr{})
		}},
		Function{Name: "ThrottledHTTP", HTTPOutput: "res", Handle: func(ctx context.Context, inv *Invocation) (*Result, error) {
			return nil, fmt.Errorf("list policies: %w", retriableErr{})
		}},
		Function{Name: "Broken", Handle: func(ctx context.Context, inv *Invocation) (*Result, error) {
			return nil, errors.New("secret detail: token eyJhbGciOi")
		}},
	)
	return s, stdout, stderr
}

type answer struct {
	Status      int    `json:"-"`
	ContentType string `json:"-"`
	Outputs     map[string]json.RawMessage
	Logs        []string
	Error       string
	raw         []byte
}

func post(t *testing.T, s *Server, method, path string, body io.Reader) answer {
	t.Helper()
	r := httptest.NewRequest(method, path, body)
	r.Header.Set("X-Azure-Functions-InvocationId", "3f2504e0-4f89-11d3-9a0c-0305e82c3301")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	a := answer{Status: w.Code, ContentType: w.Header().Get("Content-Type"), raw: w.Body.Bytes()}
	if len(a.raw) == 0 {
		t.Fatalf("%s %s: empty body; the host needs at least {}", method, path)
	}
	if err := json.Unmarshal(a.raw, &a); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %v: %q", method, path, err, a.raw)
	}
	if !strings.HasPrefix(a.ContentType, "application/json") {
		t.Fatalf("%s %s: Content-Type = %q, want application/json", method, path, a.ContentType)
	}
	return a
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInvocations(t *testing.T) {
	tests := []struct {
		name       string
		path       string
		body       string
		wantStatus int
		wantLog    string
		wantRes    int
	}{
		{name: "event hub batch with dataType string is an array of event strings", path: "/AuditLogEvents",
			body: string(fixture(t, "eventhub-batch.json")), wantStatus: 200, wantLog: "events=2 parsed=0"},
		{name: "event hub batch with default dataType is an array of parsed events", path: "/AuditLogEvents",
			body: string(fixture(t, "eventhub-batch-default-datatype.json")), wantStatus: 200, wantLog: "events=0 parsed=2"},
		{name: "event hub batch sent as a bare array is tolerated", path: "/AuditLogEvents",
			body: `{"Data":{"events":["{}","{}","{}"]},"Metadata":{}}`, wantStatus: 200, wantLog: "events=3 parsed=0"},
		{name: "empty event hub batch", path: "/AuditLogEvents",
			body: `{"Data":{"events":"[]"},"Metadata":{}}`, wantStatus: 200, wantLog: "events=0 parsed=0"},
		{name: "timer with schedule status", path: "/NightlySweep",
			body: string(fixture(t, "timer.json")), wantStatus: 200, wantLog: "pastDue=false monitored=true"},
		{name: "timer without schedule status", path: "/NightlySweep",
			body: string(fixture(t, "timer-unmonitored.json")), wantStatus: 200, wantLog: "pastDue=true monitored=false"},
		{name: "timer without Metadata", path: "/NightlySweep",
			body: `{"Data":{"timer":{"IsPastDue":false}}}`, wantStatus: 200, wantLog: "pastDue=false monitored=false"},
		{name: "http GET in envelope mode", path: "/Evaluate",
			body: string(fixture(t, "http-get.json")), wantStatus: 200, wantRes: 200},
		{name: "http POST in envelope mode", path: "/Evaluate",
			body: string(fixture(t, "http-post.json")), wantStatus: 200, wantRes: 200},
		{name: "http request with Query as a string and single header values", path: "/Evaluate",
			body: `{"Data":{"req":{"Method":"get","Query":"{\"a\":\"1\"}","Headers":{"Accept":"application/json"}}}}`, wantStatus: 200, wantRes: 200},
		{name: "keys in another case are accepted", path: "/NightlySweep",
			body: `{"data":{"Timer":{"IsPastDue":true}},"metadata":null}`, wantStatus: 200, wantLog: "pastDue=true"},
		{name: "envelope that is not JSON is acknowledged, not retried", path: "/AuditLogEvents",
			body: `this is not json`, wantStatus: 200, wantLog: "failed: the invocation envelope is not valid JSON"},
		{name: "truncated envelope", path: "/AuditLogEvents",
			body: `{"Data":{"events":"[\"{}\"`, wantStatus: 200, wantLog: "failed: the invocation envelope is not valid JSON"},
		{name: "empty body", path: "/NightlySweep", body: ``, wantStatus: 200, wantLog: "failed: the invocation envelope"},
		{name: "Data is an array", path: "/NightlySweep", body: `{"Data":[1,2]}`, wantStatus: 200, wantLog: "failed: the invocation envelope"},
		{name: "trailing garbage after the envelope", path: "/NightlySweep",
			body: `{"Data":{"timer":{}}} {"x":1}`, wantStatus: 200, wantLog: "failed: the invocation envelope"},
		{name: "missing binding", path: "/AuditLogEvents", body: `{"Data":{},"Metadata":{}}`, wantStatus: 200, wantLog: "failed: binding events is missing"},
		{name: "events is not an array", path: "/AuditLogEvents", body: `{"Data":{"events":"{\"records\":[]}"}}`, wantStatus: 200, wantLog: "failed: events is not an array"},
		{name: "timer binding of the wrong type", path: "/NightlySweep", body: `{"Data":{"timer":42}}`, wantStatus: 200, wantLog: "failed: timer binding"},
		{name: "http request without a method is a 400 to the caller", path: "/Evaluate",
			body: `{"Data":{"req":{"Url":"x"}}}`, wantStatus: 200, wantRes: 400},
		{name: "a panic becomes an error, never a crash", path: "/Panics", body: `{"Data":{}}`, wantStatus: 200, wantLog: "failed: internal error"},
		{name: "a retriable error fails the invocation so the host retries", path: "/Throttled", body: `{"Data":{}}`, wantStatus: 500, wantLog: "retriable: true"},
		{name: "a retriable error of an http function is a 503 to the caller", path: "/ThrottledHTTP", body: `{"Data":{}}`, wantStatus: 200, wantRes: 503},
		{name: "a permanent error is acknowledged", path: "/Broken", body: `{"Data":{}}`, wantStatus: 200, wantLog: "failed: internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := testServer(t)
			a := post(t, s, http.MethodPost, tt.path, strings.NewReader(tt.body))
			if a.Status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", a.Status, tt.wantStatus, a.raw)
			}
			if tt.wantLog != "" && !strings.Contains(strings.Join(a.Logs, "\n"), tt.wantLog) {
				t.Errorf("Logs = %q, want a line containing %q", a.Logs, tt.wantLog)
			}
			if tt.wantRes != 0 {
				var res HTTPResponse
				if err := json.Unmarshal(a.Outputs["res"], &res); err != nil {
					t.Fatalf("Outputs.res: %v in %s", err, a.raw)
				}
				if res.StatusCode != tt.wantRes {
					t.Errorf("res.statusCode = %d, want %d (%s)", res.StatusCode, tt.wantRes, res.Body)
				}
				if !json.Valid([]byte(res.Body)) {
					t.Errorf("res.body is not JSON: %q", res.Body)
				}
			}
			if a.Outputs == nil {
				t.Errorf("Outputs is null; want an object")
			}
			if bytes.Contains(a.raw, []byte("eyJhbGciOi")) || bytes.Contains(a.raw, []byte("FUNCTION-KEY")) {
				t.Errorf("answer leaks a secret: %s", a.raw)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	s, _, _ := testServer(t)
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"readiness probe answers at once", http.MethodGet, "/", 200},
		{"unknown function is a JSON 404", http.MethodPost, "/NoSuchFunction", 404},
		{"api-prefixed path is not a function", http.MethodPost, "/api/Evaluate", 404},
		{"GET of a function is a JSON 405", http.MethodGet, "/Evaluate", 405},
		{"PUT of a function is a JSON 405", http.MethodPut, "/AuditLogEvents", 405},
		{"very long unknown path", http.MethodPost, "/" + strings.Repeat("x", 5000), 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := post(t, s, tt.method, tt.path, strings.NewReader(`{}`))
			if a.Status != tt.want {
				t.Errorf("status = %d, want %d", a.Status, tt.want)
			}
			if len(a.raw) > 512 {
				t.Errorf("answer is %d bytes; an unknown path must not be echoed in full", len(a.raw))
			}
		})
	}
}

func TestInvocationIDInEveryLogLine(t *testing.T) {
	s, stdout, stderr := testServer(t)
	post(t, s, http.MethodPost, "/AuditLogEvents", bytes.NewReader(fixture(t, "eventhub-batch.json")))
	post(t, s, http.MethodPost, "/Throttled", strings.NewReader(`{"Data":{}}`))
	post(t, s, http.MethodPost, "/Broken", strings.NewReader(`{"Data":{}}`))
	for name, out := range map[string]string{"stdout": stdout.String(), "stderr": stderr.String()} {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) == 0 || lines[0] == "" {
			t.Fatalf("%s: no log lines", name)
		}
		for _, l := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("%s: log line is not one JSON object: %q", name, l)
			}
			if m["invocationId"] != "3f2504e0-4f89-11d3-9a0c-0305e82c3301" {
				t.Errorf("%s: line without the invocation id: %s", name, l)
			}
		}
	}
	if !strings.Contains(stderr.String(), `"level":"warn"`) || !strings.Contains(stderr.String(), `"level":"error"`) {
		t.Errorf("stderr should hold the warn and error lines, got %s", stderr.String())
	}
	if strings.Contains(stdout.String(), `"level":"warn"`) || strings.Contains(stdout.String(), `"level":"error"`) {
		t.Errorf("stdout should hold info and below only, got %s", stdout.String())
	}
}

// A 50 MB batch decodes with the string held once, and the answer still counts every event.
func TestLargeBatch(t *testing.T) {
	const events = 51
	body := bytes.Repeat([]byte("x"), 1<<20-200)
	ev := fmt.Sprintf(`{"records":[{"category":"AuditLogs","pad":"%s"}]}`, body)
	arr := make([]string, events)
	for i := range arr {
		arr[i] = ev
	}
	inner, _ := json.Marshal(arr)
	env, _ := json.Marshal(map[string]any{"Data": map[string]any{"events": string(inner)}, "Metadata": map[string]any{}})
	if len(env) < 50<<20 {
		t.Fatalf("envelope is %d bytes, want at least 50 MB", len(env))
	}
	s, _, _ := testServer(t)
	a := post(t, s, http.MethodPost, "/AuditLogEvents", bytes.NewReader(env))
	if a.Status != 200 || !strings.Contains(strings.Join(a.Logs, ""), fmt.Sprintf("events=%d", events)) {
		t.Fatalf("status %d logs %q", a.Status, a.Logs)
	}
}

func TestBodyOverLimitIsRefusedWithJSON(t *testing.T) {
	s, _, _ := testServer(t)
	s.MaxBody = 1 << 20
	r := io.MultiReader(strings.NewReader(`{"Data":{"events":"`), io.LimitReader(zeroReader{}, s.MaxBody+1))
	a := post(t, s, http.MethodPost, "/AuditLogEvents", r)
	if a.Status != 200 || !strings.Contains(strings.Join(a.Logs, ""), "exceeds") {
		t.Fatalf("status %d logs %q", a.Status, a.Logs)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

func TestValueDecoding(t *testing.T) {
	data, _, err := decodeEnvelope(strings.NewReader(`{"Data":{"s":"\"hello\"","n":"4","o":{"a":1},"arr":"[1,2]","nul":null}}`), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := data["s"].Decode(&s); err != nil || s != "hello" {
		t.Errorf("double-encoded string = %q, %v; want hello", s, err)
	}
	var n int
	if err := data["n"].Decode(&n); err != nil || n != 4 {
		t.Errorf("double-encoded number = %d, %v; want 4", n, err)
	}
	var o map[string]int
	if err := data["o"].Decode(&o); err != nil || o["a"] != 1 {
		t.Errorf("object = %v, %v", o, err)
	}
	var arr []int
	if err := data["arr"].Decode(&arr); err != nil || len(arr) != 2 {
		t.Errorf("double-encoded array = %v, %v", arr, err)
	}
	if !data["nul"].IsNull() || data["o"].IsNull() {
		t.Errorf("IsNull wrong")
	}
}

func FuzzEnvelope(f *testing.F) {
	for _, name := range []string{"eventhub-batch.json", "eventhub-batch-default-datatype.json", "timer.json", "http-get.json", "http-post.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"Data":null}`))
	s, _, _ := newTestServer()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/AuditLogEvents", "/NightlySweep", "/Evaluate"} {
			r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Body.Len() == 0 || !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%s: answer is not JSON: %q", path, w.Body.Bytes())
			}
		}
	})
}

// Request bodies are read into pooled buffers that the invocation's values alias. Concurrent
// invocations of different sizes, some read in place by a scanner and decoded later, must each see
// their own body only.
func TestConcurrentInvocationsSeeTheirOwnBodies(t *testing.T) {
	s := NewServer(zap.NewNop(), 5*time.Second, Function{
		Name: "Echo",
		ScanString: func(_ context.Context, binding string, b []byte) (int, any) {
			if binding != "scanned" {
				return 0, nil
			}
			return jsonScanner(binding, b)
		},
		Handle: func(_ context.Context, inv *Invocation) (*Result, error) {
			scanned, _ := inv.Binding("scanned")
			plain, _ := inv.Binding("plain")
			inv.Logf("%s|%s|%v", scanned.Text(), plain.Text(), scanned.Verdict())
			return &Result{}, nil
		},
	})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)

	const workers, calls = 8, 25
	start := make(chan struct{})
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			h := &hosttest.Host{Base: srv.URL}
			for c := range calls {
				v := fmt.Sprintf("w%d-c%d-%s", w, c, strings.Repeat("\"x\\", (w*calls+c)%97*50))
				a, err := h.Invoke("Echo", map[string]any{"scanned": v, "plain": v + "!"}, nil)
				if err != nil {
					errs <- err
					return
				}
				if want := v + "|" + v + "!|scanned=" + v; a.Status != 200 || a.LogText() != want {
					errs <- fmt.Errorf("got %d %.80q, want 200 %.80q", a.Status, a.LogText(), want)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
