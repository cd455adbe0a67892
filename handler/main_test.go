package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caguard/caguard/handler/azfunc/hosttest"
	"github.com/caguard/caguard/handler/graphfake"
)

// The test binary doubles as the handler binary: with CAGUARD_TEST_MAIN=1 it runs main, so process
// behaviour (exit codes, signals) is tested without building a second binary.
func TestMain(m *testing.M) {
	if os.Getenv("CAGUARD_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const (
	breakGlassUsers = "11111111-1111-1111-1111-111111111111,22222222-2222-2222-2222-222222222222"
	breakGlassGroup = "bbbbbbbb-0000-0000-0000-000000000001"
	managedID       = "aaaaaaaa-0000-0000-0000-000000000001"
)

func scenario(name string) string { return filepath.Join("..", "scripts", "scenarios", name) }

func event(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type lockedBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // closed, and replaced, by every write
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written != nil {
		close(l.written)
		l.written = nil
	}
	return l.b.Write(p)
}

// waitFor reports whether the buffer holds s, waiting for writes until it does or limit passes. A
// child's output reaches the buffer through a pipe and a copying goroutine, so a line the child wrote
// before answering a request may still be on its way when the answer arrives.
func (l *lockedBuffer) waitFor(s string, limit time.Duration) bool {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		l.mu.Lock()
		if strings.Contains(l.b.String(), s) {
			l.mu.Unlock()
			return true
		}
		if l.written == nil {
			l.written = make(chan struct{})
		}
		written := l.written
		l.mu.Unlock()
		select {
		case <-written:
		case <-timer.C:
			return false
		}
	}
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type harness struct {
	fake   *graphfake.Server
	host   *hosttest.Host
	stdout *lockedBuffer
	stderr *lockedBuffer
}

// freshPorts remembers every emulator address this test process has used; see startFresh.
var freshPorts = struct {
	sync.Mutex
	used map[string]bool
}{used: map[string]bool{}}

// startFresh starts an emulator seeded with a scenario file, on a port no earlier emulator of this
// process listened on. MSAL caches managed-identity tokens process-wide, keyed by resource, and the
// resource is the Graph host and port: an emulator on a reused port would be handed the token an
// earlier one signed, which it rejects. A port handed out again is kept open until the test ends, so
// the next try gets another.
func startFresh(t *testing.T, scenarioPath string) *graphfake.Server {
	t.Helper()
	for range 50 {
		fake, err := graphfake.New(graphfake.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := fake.LoadScenario(scenarioPath); err != nil {
			t.Fatal(err)
		}
		if err := fake.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fake.Close)
		freshPorts.Lock()
		used := freshPorts.used[fake.URL()]
		freshPorts.used[fake.URL()] = true
		freshPorts.Unlock()
		if !used {
			return fake
		}
	}
	t.Fatal("no unused loopback port after 50 tries")
	return nil
}

// start runs the handler in-process against the emulator seeded with scenario, exactly as the host
// would start it: a port in FUNCTIONS_CUSTOMHANDLER_PORT and a managed-identity endpoint.
func start(t *testing.T, scenarioFile string, extra map[string]string) *harness {
	t.Helper()
	fake := startFresh(t, scenario(scenarioFile))
	// azidentity reads the App Service managed-identity endpoint from the process environment.
	t.Setenv("IDENTITY_ENDPOINT", fake.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", fake.IdentityHeader())

	port := freePort(t)
	env := map[string]string{
		"FUNCTIONS_CUSTOMHANDLER_PORT": strconv.Itoa(port),
		"AZURE_TENANT_ID":              fake.TenantID(),
		"GRAPH_BASE_URL":               fake.GraphURL(),
		"BREAK_GLASS_USER_IDS":         breakGlassUsers,
		"BREAK_GLASS_GROUP_IDS":        breakGlassGroup,
		"GRAPH_RETRY_BUDGET":           "3s",
		"REMEDIATION_MODE":             "remediate",
	}
	for k, v := range extra {
		env[k] = v
	}
	h := &harness{fake: fake, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, func(k string) string { return env[k] }, h.stdout, h.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v after shutdown", err)
			}
		case <-time.After(35 * time.Second):
			t.Error("handler did not shut down")
		}
	})
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := hosttest.WaitReady(base, 10*time.Second, done); err != nil {
		t.Fatalf("%v\nstderr: %s", err, h.stderr.String())
	}
	h.host = &hosttest.Host{Base: base}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("handler stderr:\n%s", h.stderr.String())
		}
	})
	return h
}

func (h *harness) evaluate(t *testing.T, method string) (int, map[string]any) {
	t.Helper()
	a, err := h.host.Invoke("Evaluate", hosttest.HTTPData("req", method, ""), hosttest.SysMetadata("Evaluate"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != http.StatusOK {
		t.Fatalf("host status %d; an HTTP function must answer the host 2xx", a.Status)
	}
	res, err := a.HTTP("res")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(res.Body), &body); err != nil {
		t.Fatalf("res.body is not JSON: %q", res.Body)
	}
	return res.StatusCode, body
}

func (h *harness) writes() []graphfake.Call {
	var out []graphfake.Call
	for _, c := range h.fake.Calls() {
		if (c.Method == http.MethodPatch || c.Method == http.MethodPost || c.Method == http.MethodDelete) && strings.HasPrefix(c.Path, "/v1.0/") && !graphfake.IsBatch(c) {
			out = append(out, c)
		}
	}
	return out
}

func (h *harness) policyState(t *testing.T, id string) string {
	t.Helper()
	raw, ok := h.fake.Policy(id)
	if !ok {
		t.Fatalf("policy %s is gone", id)
	}
	var p struct{ State string }
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	return p.State
}

func reasonCodes(body map[string]any, id string) []string {
	var codes []string
	ps, _ := body["policies"].([]any)
	for _, p := range ps {
		pm, _ := p.(map[string]any)
		if pm["id"] != id {
			continue
		}
		rs, _ := pm["reasons"].([]any)
		for _, r := range rs {
			rm, _ := r.(map[string]any)
			codes = append(codes, rm["code"].(string))
		}
	}
	return codes
}

// The whole story, as the Functions host would drive it: a report, an audit event about a weakened
// policy, the restore, idempotence, and caguard ignoring its own write.
func TestEndToEndDriftedTenant(t *testing.T) {
	h := start(t, "drifted.json", nil)

	status, body := h.evaluate(t, http.MethodGet)
	if status != 200 || body["verdict"] != "non-compliant" || body["compliant"] != false {
		t.Fatalf("GET Evaluate: %d %v", status, body["verdict"])
	}
	codes := reasonCodes(body, managedID)
	for _, want := range []string{"NO_MFA_GRANT", "EXCLUDED_USER_NOT_ALLOWLISTED"} {
		if !slices.Contains(codes, want) {
			t.Errorf("managed policy reasons %v lack %s", codes, want)
		}
	}
	if w := h.writes(); len(w) != 0 {
		t.Fatalf("a report wrote to the tenant: %v", w)
	}

	// The audit event arrives: one reconcile, one minimal PATCH of the managed policy only.
	bodies := []string{event(t, "event-noise.json"), event(t, "event-policy-weakened.json"), `{"records":[{"trunc`, `not json`}
	a, err := h.host.Invoke("AuditLogEvents", hosttest.EventHubData("events", bodies...), hosttest.EventHubMetadata("AuditLogEvents", len(bodies)))
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != 200 {
		t.Fatalf("AuditLogEvents: host status %d: %s", a.Status, a.Raw)
	}
	if !strings.Contains(a.LogText(), "events=4") || !strings.Contains(a.LogText(), "relevant=1") {
		t.Errorf("Logs do not state the counts: %q", a.Logs)
	}
	w := h.writes()
	if len(w) != 1 || w[0].Method != http.MethodPatch || w[0].Path != "/v1.0/identity/conditionalAccess/policies/"+managedID {
		t.Fatalf("writes = %v, want one PATCH of the managed policy", w)
	}
	var patch map[string]json.RawMessage
	if err := json.Unmarshal(w[0].Body, &patch); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(patch))
	for k := range patch {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if strings.Join(keys, ",") != "conditions,grantControls" {
		t.Errorf("PATCH carried %v, want only conditions and grantControls", keys)
	}
	if st := h.policyState(t, managedID); st != "enabled" {
		t.Errorf("managed policy state %q after restore, want enabled kept", st)
	}
	if !strings.Contains(h.stderr.String(), "mallory@contoso.example") {
		t.Errorf("the alert does not name who changed the policy; stderr: %s", h.stderr.String())
	}

	// Every line written on behalf of an invocation carries its id, whichever package wrote it.
	for _, out := range []string{h.stdout.String(), h.stderr.String()} {
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("log line is not one JSON object: %q", line)
			}
			switch m["msg"] {
			case "reconciled", "caguard alert", "wrote the managed policy", "relevant audit record":
				if m["invocationId"] == nil || m["invocationId"] == "" {
					t.Errorf("%q line without invocationId: %s", m["msg"], line)
				}
			}
		}
	}

	status, body = h.evaluate(t, http.MethodGet)
	if body["verdict"] != "compliant" || body["compliant"] != true {
		t.Fatalf("after restore: %d %v %v", status, body["verdict"], body["summary"])
	}

	// caguard's own write comes back through the audit log: no reconcile, no Graph read.
	h.fake.Reset()
	a, err = h.host.Invoke("AuditLogEvents", hosttest.EventHubData("events", event(t, "event-own-write.json")), hosttest.EventHubMetadata("AuditLogEvents", 1))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a.LogText(), "self-initiated=1") {
		t.Errorf("own write not recognised: %q", a.Logs)
	}
	for _, c := range h.fake.Calls() {
		if strings.Contains(c.Path, "conditionalAccess") {
			t.Errorf("own write caused a Graph call: %s %s", c.Method, c.Path)
		}
	}

	// The nightly sweep finds nothing to do.
	a, err = h.host.Invoke("NightlySweep", hosttest.TimerData("timer", false), hosttest.SysMetadata("NightlySweep"))
	if err != nil || a.Status != 200 {
		t.Fatalf("NightlySweep: %v %d", err, a.Status)
	}
	if w := h.writes(); len(w) != 0 {
		t.Errorf("sweep of a compliant tenant wrote: %v", w)
	}
}

func TestEndToEndEmptyTenantGetsReportOnlyPolicy(t *testing.T) {
	h := start(t, "empty.json", nil)
	_, body := h.evaluate(t, http.MethodPost)
	if body["verdict"] != "non-compliant" {
		t.Fatalf("verdict %v: %v", body["verdict"], body)
	}
	w := h.writes()
	if len(w) != 1 || w[0].Method != http.MethodPost {
		t.Fatalf("writes = %v, want one create", w)
	}
	var created struct {
		State       string
		DisplayName string
	}
	if err := json.Unmarshal(w[0].Body, &created); err != nil {
		t.Fatal(err)
	}
	if created.State != "enabledForReportingButNotEnforced" {
		t.Errorf("created in state %q, want report-only", created.State)
	}
	_, body = h.evaluate(t, http.MethodGet)
	if body["verdict"] != "pending-enforcement" || body["compliant"] != false {
		t.Errorf("after create: verdict %v compliant %v, want pending-enforcement and false", body["verdict"], body["compliant"])
	}
	// A second run writes nothing.
	h.evaluate(t, http.MethodPost)
	if n := len(h.writes()); n != 1 {
		t.Errorf("second run wrote again: %d writes", n)
	}
}

func TestEndToEndAlertModeWritesNothing(t *testing.T) {
	h := start(t, "drifted.json", map[string]string{"REMEDIATION_MODE": "alert"})
	a, err := h.host.Invoke("NightlySweep", hosttest.TimerData("timer", true), hosttest.SysMetadata("NightlySweep"))
	if err != nil || a.Status != 200 {
		t.Fatalf("sweep: %v %d %s", err, a.Status, a.Raw)
	}
	if w := h.writes(); len(w) != 0 {
		t.Fatalf("alert mode wrote: %v", w)
	}
	if !strings.Contains(a.LogText(), "alert") {
		t.Errorf("no alert stated in %q", a.Logs)
	}
}

func TestEndToEndGraphOutage(t *testing.T) {
	h := start(t, "compliant.json", nil)
	h.fake.Inject(graphfake.Fault{Match: "GET /v1.0/identity/conditionalAccess/policies", Status: 503, RetryAfter: "1"})

	// An event-triggered run fails the invocation, so the host retries under the retry policy.
	a, err := h.host.Invoke("AuditLogEvents", hosttest.EventHubData("events", event(t, "event-policy-weakened.json")), hosttest.EventHubMetadata("AuditLogEvents", 1))
	if err != nil {
		t.Fatal(err)
	}
	if a.Status < 500 {
		t.Errorf("AuditLogEvents during an outage: host status %d, want 5xx so the host retries", a.Status)
	}
	// An HTTP caller gets a 503 in the http output that names the cause, and none of Graph's own text.
	status, body := h.evaluate(t, http.MethodGet)
	if status != http.StatusServiceUnavailable {
		t.Errorf("Evaluate during an outage: %d, want 503", status)
	}
	if s, _ := body["error"].(string); !strings.HasPrefix(s, "Graph is unavailable (it answered 503") ||
		strings.Contains(s, "graph.microsoft") || strings.Contains(s, "request-id") || strings.Contains(s, "ServiceUnavailable") {
		t.Errorf("error: got %q, want the cause in words without Graph's detail", s)
	}
	// Nothing leaks the bearer token into logs.
	if tok := h.fake.Token(); tok != "" && (strings.Contains(h.stdout.String(), tok) || strings.Contains(h.stderr.String(), tok)) {
		t.Error("a Graph token appears in the logs")
	}
}

// Without FUNCTIONS_CUSTOMHANDLER_PORT the process exits non-zero at once, naming the setting.
func TestExitsWithoutPort(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{"CAGUARD_TEST_MAIN=1", "AZURE_TENANT_ID=00000000-0000-0000-0000-0000000000aa", "PATH=" + os.Getenv("PATH")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("exit: %v, want a non-zero exit code", err)
	}
	if !strings.Contains(stderr.String(), "FUNCTIONS_CUSTOMHANDLER_PORT") {
		t.Errorf("stderr %q does not name FUNCTIONS_CUSTOMHANDLER_PORT", stderr.String())
	}
	// Generous for a loaded race-enabled test binary; the budget that matters is the host's 30 s.
	if elapsed > 5*time.Second {
		t.Errorf("took %v to exit", elapsed)
	}
}

// SIGTERM shuts the process down cleanly with exit code 0.
func TestGracefulShutdownOnSIGTERM(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM")
	}
	fake, err := graphfake.New(graphfake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	port := freePort(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{"CAGUARD_TEST_MAIN=1", "PATH=" + os.Getenv("PATH"),
		"FUNCTIONS_CUSTOMHANDLER_PORT=" + strconv.Itoa(port), "AZURE_TENANT_ID=" + fake.TenantID(),
		"GRAPH_BASE_URL=" + fake.GraphURL(), "IDENTITY_ENDPOINT=" + fake.IdentityEndpoint(), "IDENTITY_HEADER=" + fake.IdentityHeader()}
	var stdout lockedBuffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := hosttest.WaitReady("http://127.0.0.1:"+strconv.Itoa(port), 20*time.Second, exited); err != nil {
		t.Fatal(err)
	}
	if !stdout.waitFor(`"addr":"127.0.0.1:`, 20*time.Second) {
		t.Errorf("not listening on loopback only: %s", stdout.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("no exit within 20s of SIGTERM")
	}
}
