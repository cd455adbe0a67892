package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caguard/caguard/handler/azfunc/hosttest"
	"github.com/caguard/caguard/handler/blobstate/azuritetest"
	"github.com/caguard/caguard/handler/graphfake"
)

const createPolicy = "POST /v1.0/identity/conditionalAccess/policies"

// watchedOutput is a process's output that signals when a text first appears in it.
type watchedOutput struct {
	mu      sync.Mutex
	b       strings.Builder
	waiters map[string]chan struct{}
}

func (w *watchedOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	for text, ch := range w.waiters {
		if strings.Contains(w.b.String(), text) {
			close(ch)
			delete(w.waiters, text)
		}
	}
	return len(p), nil
}

func (w *watchedOutput) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// appeared returns a channel closed once text has been written.
func (w *watchedOutput) appeared(text string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := make(chan struct{})
	if strings.Contains(w.b.String(), text) {
		close(ch)
		return ch
	}
	if w.waiters == nil {
		w.waiters = map[string]chan struct{}{}
	}
	w.waiters[text] = ch
	return ch
}

// process is a handler running as its own OS process, as each Functions instance runs one.
type process struct {
	cmd    *exec.Cmd
	out    *watchedOutput
	exited chan struct{}
	host   string // base URL
}

// tenantWithStorage is a graphfake tenant seeded with scenarioFile and an Azurite, shared by the
// handler processes of one test.
func tenantWithStorage(t *testing.T, scenarioFile string) (*graphfake.Server, *azuritetest.Azurite) {
	t.Helper()
	az := azuritetest.Start(t)
	fake, err := graphfake.New(graphfake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.LoadScenario(scenario(scenarioFile)); err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	return fake, az
}

// startProcess starts the handler binary (this test binary, re-executed) against fake and, when az is
// set, its storage. extra settings (KEY=value) override the defaults: exec keeps the last of duplicate
// keys.
func startProcess(t *testing.T, fake *graphfake.Server, az *azuritetest.Azurite, extra ...string) *process {
	t.Helper()
	port := freePort(t)
	env := []string{"CAGUARD_TEST_MAIN=1", "PATH=" + os.Getenv("PATH"),
		"FUNCTIONS_CUSTOMHANDLER_PORT=" + strconv.Itoa(port), "AZURE_TENANT_ID=" + fake.TenantID(),
		"GRAPH_BASE_URL=" + fake.GraphURL(), "IDENTITY_ENDPOINT=" + fake.IdentityEndpoint(), "IDENTITY_HEADER=" + fake.IdentityHeader(),
		"BREAK_GLASS_USER_IDS=" + breakGlassUsers, "GRAPH_RETRY_BUDGET=3s", "REMEDIATION_MODE=remediate", "LOG_LEVEL=debug"}
	if az != nil {
		env = append(env, "AzureWebJobsStorage="+az.ConnectionString())
	}
	env = append(env, extra...)
	p := &process{cmd: exec.Command(os.Args[0]), out: &watchedOutput{}, exited: make(chan struct{}), host: "http://127.0.0.1:" + strconv.Itoa(port)}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { err := p.cmd.Wait(); exited <- err; close(p.exited) }()
	t.Cleanup(func() {
		// Killed, not stopped: graceful shutdown is tested on its own, and a lease left behind
		// dies with the test's emulator.
		_ = p.cmd.Process.Kill()
		<-p.exited
		if strings.Contains(p.out.String(), "WARNING: DATA RACE") {
			t.Errorf("the race detector reported a race in handler %s", p.host)
		}
		if t.Failed() {
			t.Logf("handler %s output:\n%s", p.host, p.out.String())
		}
	})
	if err := hosttest.WaitReady(p.host, 30*time.Second, exited); err != nil {
		t.Fatalf("%v\n%s", err, p.out.String())
	}
	return p
}

// kill ends the process at once, as a crashed or evicted instance ends: nothing is released.
func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// invocation is one trigger sent to one process, and what came back.
type invocation struct {
	function string
	status   int // host status, or for Evaluate the http output's status
	err      error
}

// send invokes function (Evaluate with POST, NightlySweep, or AuditLogEvents) on p. Each call has its
// own hosttest.Host: a Host is not safe for concurrent use.
func (p *process) send(t *testing.T, function string) invocation {
	h := &hosttest.Host{Base: p.host}
	var (
		a   hosttest.Answer
		err error
	)
	switch function {
	case "Evaluate":
		a, err = h.Invoke("Evaluate", hosttest.HTTPData("req", http.MethodPost, ""), hosttest.SysMetadata("Evaluate"))
	case "NightlySweep":
		a, err = h.Invoke("NightlySweep", hosttest.TimerData("timer", false), hosttest.SysMetadata("NightlySweep"))
	case "AuditLogEvents":
		a, err = h.Invoke("AuditLogEvents", hosttest.EventHubData("events", event(t, "event-policy-weakened.json")), hosttest.EventHubMetadata("AuditLogEvents", 1))
	default:
		err = fmt.Errorf("unknown function %s", function)
	}
	inv := invocation{function: function, status: a.Status, err: err}
	if err == nil && function == "Evaluate" {
		res, herr := a.HTTP("res")
		inv.status, inv.err = res.StatusCode, herr
	}
	return inv
}

// Eight runs that may write, sent at once to three handler processes (three instances) that share one
// tenant with no managed policy and one storage account, create the managed policy exactly once. The
// emulator delays each policy list, so that without the lease the runs' read-to-write windows overlap
// and several would create it.
func TestOneWriterAcrossHandlerProcesses(t *testing.T) {
	t.Parallel()
	fake, az := tenantWithStorage(t, "empty.json")
	fake.Inject(graphfake.Fault{Match: "GET /v1.0/identity/conditionalAccess/policies", Delay: 150 * time.Millisecond})
	procs := []*process{startProcess(t, fake, az), startProcess(t, fake, az), startProcess(t, fake, az)}

	functions := []string{"Evaluate", "NightlySweep"}
	start := make(chan struct{})
	results := make(chan invocation, 8)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results <- procs[i%3].send(t, functions[i%2])
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil || r.status != http.StatusOK {
			t.Errorf("%s: status %d, err %v; want 200", r.function, r.status, r.err)
		}
	}
	if got := fake.CallsTo(createPolicy); len(got) != 1 {
		t.Fatalf("the tenant received %d creates of the managed policy, want exactly 1", len(got))
	}
}

// A handler process that dies while holding the lease (killed mid-run, inside its Graph read) never
// releases it; the lease expires and another process's run then proceeds and creates the policy.
func TestDeadHolderLosesTheLeaseAndTheNextRunProceeds(t *testing.T) {
	t.Parallel()
	fake, az := tenantWithStorage(t, "empty.json")
	// The dying process reads Graph through a proxy that holds its first Graph read (the JSON batch
	// that lists the policies) until the process is gone, and says when it arrived: the run is then
	// mid-way, holding the lease.
	arrived := make(chan struct{})
	var once sync.Once
	target, err := url.Parse(fake.URL())
	if err != nil {
		t.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1.0/") {
			// The body is read first: net/http notices a closed connection, and cancels the
			// request's context, only once the body has been consumed.
			_, _ = io.Copy(io.Discard, r.Body)
			once.Do(func() { close(arrived) })
			<-r.Context().Done()
			return
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	dying := startProcess(t, fake, az, "GRAPH_BASE_URL="+proxy.URL+"/v1.0")
	next := startProcess(t, fake, az)

	go dying.send(t, "NightlySweep") // never answered: its process dies
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatalf("the first run did not reach its Graph read:\n%s", dying.out.String())
	}
	dying.kill(t)

	waited := next.out.appeared("waiting for the writer lease")
	if r := next.send(t, "Evaluate"); r.err != nil || r.status != http.StatusOK {
		t.Fatalf("the run after the dead holder: status %d, err %v; want 200", r.status, r.err)
	}
	select {
	case <-waited:
	default:
		t.Error("the next run did not wait for the dead holder's lease")
	}
	if !strings.Contains(next.out.String(), "writer lease acquired after waiting") {
		t.Errorf("the next run does not say it got the lease after waiting:\n%s", next.out.String())
	}
	if got := fake.CallsTo(createPolicy); len(got) != 1 {
		t.Errorf("creates: got %d, want 1 (by the next run)", len(got))
	}
}

// Storage that becomes unavailable fails every run that may write as retriable (the host retries it)
// and writes nothing, while reports keep working. The storage key never reaches a log.
func TestUnavailableStorageFailsWritesRetriablyAndKeepsReports(t *testing.T) {
	az := azuritetest.Start(t)
	h := start(t, "empty.json", map[string]string{"AzureWebJobsStorage": az.ConnectionString()})

	status, body := h.evaluate(t, http.MethodGet)
	if status != http.StatusOK || body["verdict"] != "non-compliant" {
		t.Fatalf("report with storage up: %d %v", status, body["verdict"])
	}
	az.Stop()

	status, body = h.evaluate(t, http.MethodPost)
	if status != http.StatusServiceUnavailable {
		t.Errorf("POST Evaluate with storage down: status %d, want 503", status)
	}
	// The caller reads the cause in words, and no address, key or storage error text.
	if msg, _ := body["error"].(string); msg != "storage is unreachable (the writer lease could not be taken); a retry later can succeed" ||
		strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, azuritetest.Key) {
		t.Errorf("the caller sees %q, want the cause in words without storage detail", msg)
	}
	for _, fn := range []string{"NightlySweep", "AuditLogEvents"} {
		var a hosttest.Answer
		var err error
		if fn == "NightlySweep" {
			a, err = h.host.Invoke(fn, hosttest.TimerData("timer", false), hosttest.SysMetadata(fn))
		} else {
			a, err = h.host.Invoke(fn, hosttest.EventHubData("events", event(t, "event-policy-weakened.json")), hosttest.EventHubMetadata(fn, 1))
		}
		if err != nil {
			t.Fatal(err)
		}
		if a.Status < 500 || !strings.Contains(a.LogText(), "retriable: true") || !strings.Contains(a.LogText(), "failed: storage is unreachable") {
			t.Errorf("%s with storage down: host status %d, logs %q; want 5xx and retriable, so the host retries", fn, a.Status, a.Logs)
		}
	}
	if w := h.writes(); len(w) != 0 {
		t.Errorf("wrote without the lease: %v", w)
	}

	status, body = h.evaluate(t, http.MethodGet)
	if status != http.StatusOK || body["verdict"] != "non-compliant" {
		t.Errorf("report with storage down: %d %v, want 200 and the verdict", status, body["verdict"])
	}
	for _, out := range []string{h.stdout.String(), h.stderr.String()} {
		if strings.Contains(out, azuritetest.Key) {
			t.Error("the storage account key appears in the log")
		}
	}
}

// Without a storage setting the handler starts and works on its in-process lock, and says so once.
func TestWithoutStorageTheHandlerSaysOnceThatItLocksInProcessOnly(t *testing.T) {
	h := start(t, "empty.json", nil)
	h.evaluate(t, http.MethodPost)
	h.evaluate(t, http.MethodPost)
	if got := len(h.writes()); got != 1 {
		t.Errorf("writes %d, want 1 create", got)
	}
	var warnings int
	for _, line := range strings.Split(strings.TrimSpace(h.stderr.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err == nil && m["level"] == "warn" && strings.Contains(fmt.Sprint(m["msg"]), "no AzureWebJobsStorage") {
			warnings++
		}
	}
	if warnings != 1 {
		t.Errorf("got %d warnings about the missing storage setting, want 1:\n%s", warnings, h.stderr.String())
	}
}
