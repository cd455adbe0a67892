// Command benche2e measures what a batch of audit-log noise costs caguard end to end, through the
// real HTTP path, against two reference handlers started beside it:
//
//   - discard: reads the request body and answers {} with the host's headers, the ceiling that the
//     machine and the transport allow;
//   - naive: decodes the envelope, the events string, every event body and its records with
//     encoding/json and checks their activities, the straightforward way to write the function.
//
// It starts the built handler (dist/handler) the way the Functions host does, with the local Graph
// emulator behind it, sends the same host-shaped AuditLogEvents invocations to each handler in turn,
// alternating batch by batch in an order that rotates with every batch and round, and prints each one's throughput (MB of event bodies per
// second, and per CPU-second of the handler's process), invocation latency and memory, and caguard's
// share of the discard ceiling and multiple of the naive handler as medians of per-round ratios.
// Every invocation's answer is checked: caguard must count each batch exactly and reconcile none,
// and the Graph emulator must receive no call.
//
// Then it sends caguard one batch holding a Conditional Access change, twice, against a compliant
// tenant (the managed policy excluding a break-glass group of two break-glass users), and prints the
// Graph HTTP round trips the reconcile cost, counted by the emulator: a JSON batch counts once, a
// token request not at all. The budget is 3 for a run that writes nothing.
//
//	make build && go run ./scripts/benche2e -handler dist/handler
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caguard/caguard/handler/azfunc/hosttest"
	"github.com/caguard/caguard/handler/graphfake"
)

func main() {
	var serve string
	flag.StringVar(&serve, "serve", "", "internal: serve a reference handler (discard or naive) on FUNCTIONS_CUSTOMHANDLER_PORT")
	var o options
	flag.StringVar(&o.handler, "handler", "dist/handler", "caguard's handler binary")
	flag.StringVar(&o.logPath, "log", "dist/benche2e-handler.log", "where caguard's own log lines go")
	flag.IntVar(&o.rounds, "rounds", 9, "measured rounds (each sends every batch to every handler)")
	flag.IntVar(&o.batches, "batches", 40, "invocations per handler per round")
	flag.IntVar(&o.events, "events", 100, "events per batch")
	flag.IntVar(&o.eventSize, "event-size", 5000, "approximate bytes per event body")
	flag.DurationVar(&o.budget, "budget", 90*time.Second, "stop starting rounds after this long (at least 3 rounds run)")
	flag.Parse()
	var err error
	if serve != "" {
		err = serveReference(serve)
	} else {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benche2e:", err)
		os.Exit(1)
	}
}

type options struct {
	handler, logPath                   string
	rounds, batches, events, eventSize int
	budget                             time.Duration
}

// target is one handler under test.
type target struct {
	name  string
	cmd   *exec.Cmd
	host  *hosttest.Host
	check func(a hosttest.Answer, batch int) error

	rates []float64 // MB of event bodies per second, per round
	// CPU time the process used over the measured rounds, and the MB they carried: summed, because
	// the kernel counts CPU time in 10 ms ticks, coarse beside one round of the discard handler.
	cpu time.Duration
	mb  float64
	lat []time.Duration
}

func run(o options) error {
	start := time.Now()
	load0 := loadAvg()
	// Pages as large as Graph's defaults (100 for most collections): the emulator's small test
	// pages would add round trips that a tenant this size does not cost.
	fake, err := graphfake.New(graphfake.Options{PageSize: 100})
	if err != nil {
		return err
	}
	if err := fake.Seed(benchScenario()); err != nil {
		return err
	}
	if err := fake.Start(); err != nil {
		return err
	}
	defer fake.Close()

	tr, err := newTraffic(fake.TenantID(), o.batches, o.events, o.eventSize, 1)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logFile, err := os.Create(o.logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()

	caguard := &target{name: "caguard", check: func(a hosttest.Answer, b int) error {
		want := fmt.Sprintf("audit batch: events=%d records=%d relevant=0 reconcile=false skipped=[]", tr.events, tr.records[b])
		if a.Status != http.StatusOK || a.LogText() != want {
			return fmt.Errorf("caguard answered %d %q, want 200 and %q", a.Status, a.LogText(), want)
		}
		return nil
	}}
	discard := &target{name: "discard", check: func(a hosttest.Answer, _ int) error {
		if a.Status != http.StatusOK {
			return fmt.Errorf("discard answered %d", a.Status)
		}
		return nil
	}}
	naive := &target{name: "naive", check: func(a hosttest.Answer, b int) error {
		want := fmt.Sprintf("audit batch: events=%d records=%d relevant=0", tr.events, tr.records[b])
		if a.Status != http.StatusOK || a.LogText() != want {
			return fmt.Errorf("naive answered %d %q, want 200 and %q", a.Status, a.LogText(), want)
		}
		return nil
	}}
	caguard.cmd = exec.Command(o.handler)
	caguard.cmd.Stdout, caguard.cmd.Stderr = logFile, logFile
	caguard.cmd.Env = append(os.Environ(),
		"AZURE_TENANT_ID="+fake.TenantID(),
		"GRAPH_BASE_URL="+fake.GraphURL(),
		"IDENTITY_ENDPOINT="+fake.IdentityEndpoint(),
		"IDENTITY_HEADER="+fake.IdentityHeader(),
		// Known up front, as in a deployment that sets it: the handler has no reason to ask Graph.
		"CAGUARD_SERVICE_PRINCIPAL_ID="+benchSelfSP,
		"BREAK_GLASS_GROUP_IDS="+benchBreakGlass,
		"BREAK_GLASS_USER_IDS="+benchBGUser1+","+benchBGUser2,
		"REMEDIATION_MODE=alert",
	)
	discard.cmd = exec.Command(self, "-serve", "discard")
	naive.cmd = exec.Command(self, "-serve", "naive")
	targets := []*target{discard, caguard, naive}
	for _, t := range targets {
		if t.cmd.Stdout == nil {
			t.cmd.Stdout, t.cmd.Stderr = os.Stderr, os.Stderr
			t.cmd.Env = os.Environ()
		}
		stop, err := startHandler(t)
		if err != nil {
			return fmt.Errorf("%s: %w (see %s)", t.name, err, o.logPath)
		}
		defer stop()
	}

	// One unmeasured pass: connections, page faults and the handlers' first allocations.
	if _, err := round(tr, targets, 0, false); err != nil {
		return err
	}
	var shares, multiples []float64
	loadDuring := []float64{}
	for r := 0; r < o.rounds; r++ {
		if r >= 3 && time.Since(start) > o.budget {
			fmt.Printf("stopped after %d rounds: the %s budget is spent\n", r, o.budget)
			break
		}
		perRound, err := round(tr, targets, r, true)
		if err != nil {
			return err
		}
		shares = append(shares, perRound["caguard"]/perRound["discard"])
		multiples = append(multiples, perRound["caguard"]/perRound["naive"])
		loadDuring = append(loadDuring, loadAvg())
	}

	calls := 0
	for _, c := range fake.Calls() {
		fmt.Fprintf(os.Stderr, "Graph emulator call: %s %s\n", c.Method, c.Path)
		calls++
	}

	fmt.Printf("machine: %d CPUs, %s; load average (1 min) %.2f before, %.2f median during the rounds\n",
		nproc(), cpuModel(), load0, median(loadDuring))
	fmt.Printf("traffic: %d AuditLogEvents invocations per handler per round, %d events of ~%d bytes each; %.1f MB of event bodies, %.1f MB of request bodies per round\n",
		len(tr.bodies), tr.events, o.eventSize, float64(tr.bodyBytes)/1e6, float64(tr.requestBytes())/1e6)
	fmt.Printf("rounds: %d measured after one warm-up; one invocation at a time, the handlers taking turns batch by batch; figures are medians\n\n", len(shares))
	fmt.Printf("%-8s %10s %16s %12s %9s %9s %10s %10s\n", "handler", "MB/s", "range", "MB/CPU-s", "p50 ms", "p99 ms", "VmHWM", "VmRSS")
	for _, t := range []*target{discard, caguard, naive} {
		hwm, rss := memory(t.cmd.Process.Pid)
		fmt.Printf("%-8s %10.1f %16s %12.1f %9.2f %9.2f %10s %10s\n", t.name, median(t.rates),
			fmt.Sprintf("%.0f–%.0f", slices.Min(t.rates), slices.Max(t.rates)), t.mb/t.cpu.Seconds(),
			ms(percentile(t.lat, 50)), ms(percentile(t.lat, 99)), hwm, rss)
	}
	fmt.Printf("\ncaguard: %.0f%% of the discard ceiling, %.1f× the naive handler (medians of per-round ratios)\n",
		100*median(shares), median(multiples))
	fmt.Printf("Graph emulator calls during the run: %d\n", calls)
	if calls != 0 {
		return errors.New("a batch of noise made caguard call Graph")
	}

	var trips []int
	for range 2 {
		n, err := caRoundTrips(fake, caguard.host)
		if err != nil {
			return err
		}
		trips = append(trips, n)
	}
	fmt.Printf("Graph round trips per CA batch: %d (first batch after start %d; budget 3 when nothing is written)\n", trips[1], trips[0])
	return nil
}

// caRoundTrips sends caguard one batch holding a Conditional Access change and returns the Graph
// round trips its reconcile made, as the emulator counted them. The tenant is compliant and the
// mode is alert: any write is an error.
func caRoundTrips(fake *graphfake.Server, host *hosttest.Host) (int, error) {
	body, err := caBatch(fake.TenantID(), time.Now())
	if err != nil {
		return 0, err
	}
	fake.Reset()
	a, err := host.InvokeRaw("AuditLogEvents", body)
	if err != nil {
		return 0, fmt.Errorf("caguard: %w", err)
	}
	if a.Status != http.StatusOK || !strings.Contains(a.LogText(), "relevant=1 reconcile=true") {
		return 0, fmt.Errorf("caguard answered a CA batch %d %q, want 200 and a reconcile", a.Status, a.LogText())
	}
	for _, c := range fake.Calls() {
		if c.Batch != "" || !strings.HasPrefix(c.Path, "/v1.0/") {
			continue
		}
		fmt.Fprintf(os.Stderr, "Graph round trip for a CA batch: %s %s\n", c.Method, c.Path)
		if c.Method != http.MethodGet && c.Path != "/v1.0/$batch" {
			return 0, fmt.Errorf("a compliant tenant in alert mode made caguard write: %s %s", c.Method, c.Path)
		}
	}
	return fake.RoundTrips(), nil
}

// round sends every batch once to every handler, one invocation at a time, and returns each
// handler's MB of event bodies per second of the time its invocations took. The handlers take
// turns batch by batch, in an order that rotates with the batch and the round, so that a burst of
// load on the shared machine falls on all of them alike. A measured round also adds to each
// handler's rates, CPU time and latencies.
func round(tr *traffic, targets []*target, r int, record bool) (map[string]float64, error) {
	cpu0 := make([]time.Duration, len(targets))
	took := make([]time.Duration, len(targets))
	for k, t := range targets {
		cpu0[k] = cpuTime(t.cmd.Process.Pid)
	}
	for b, body := range tr.bodies {
		for j := range targets {
			k := (r + b + j) % len(targets)
			t := targets[k]
			s := time.Now()
			a, err := t.host.InvokeRaw("AuditLogEvents", body)
			d := time.Since(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
			if err := t.check(a, b); err != nil {
				return nil, err
			}
			took[k] += d
			if record {
				t.lat = append(t.lat, d)
			}
		}
	}
	mb := float64(tr.bodyBytes) / 1e6
	rates := map[string]float64{}
	for k, t := range targets {
		rates[t.name] = mb / took[k].Seconds()
		if record {
			t.cpu += cpuTime(t.cmd.Process.Pid) - cpu0[k]
			t.mb += mb
			t.rates = append(t.rates, rates[t.name])
		}
	}
	return rates, nil
}

// startHandler starts t.cmd on a free loopback port, as the host does, and waits for GET /.
func startHandler(t *target) (stop func(), err error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	t.cmd.Env = append(t.cmd.Env, "FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port))
	if err := t.cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- t.cmd.Wait() }()
	stop = func() {
		_ = t.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = t.cmd.Process.Kill()
		}
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := hosttest.WaitReady(base, 30*time.Second, exited); err != nil {
		stop()
		return nil, err
	}
	t.host = &hosttest.Host{Base: base, Client: &http.Client{Timeout: time.Minute}}
	return stop, nil
}

// serveReference runs a reference handler until SIGTERM.
func serveReference(kind string) error {
	var h http.HandlerFunc
	switch kind {
	case "discard":
		h = discardHandler
	case "naive":
		h = naiveHandler
	default:
		return fmt.Errorf("no reference handler %q", kind)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// answer writes the host's response envelope.
func answer(w http.ResponseWriter, logs ...string) {
	if logs == nil {
		logs = []string{}
	}
	body, _ := json.Marshal(map[string]any{"Outputs": map[string]any{}, "Logs": logs, "ReturnValue": nil})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(body)
}

// discardHandler reads the body and answers: the least any handler can do.
func discardHandler(w http.ResponseWriter, r *http.Request) {
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	answer(w)
}

// naiveHandler decodes everything with encoding/json, as a first version of the function would:
// the envelope, the events string (a JSON array inside a JSON string), every event body (another
// JSON document inside a string) and its records, and checks each record's category and activity.
func naiveHandler(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" {
		answer(w)
		return
	}
	var env struct {
		Data     map[string]json.RawMessage
		Metadata map[string]json.RawMessage
	}
	if err := json.NewDecoder(r.Body).Decode(&env); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var text string
	var bodies []string
	if err := json.Unmarshal(env.Data["events"], &text); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := json.Unmarshal([]byte(text), &bodies); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	records, relevant := 0, 0
	for _, body := range bodies {
		var ev struct {
			Records []struct {
				Category      string `json:"category"`
				OperationName string `json:"operationName"`
				Properties    struct {
					ActivityDisplayName string `json:"activityDisplayName"`
				} `json:"properties"`
			} `json:"records"`
		}
		if json.Unmarshal([]byte(body), &ev) != nil {
			continue
		}
		for _, rec := range ev.Records {
			records++
			if rec.Category != "AuditLogs" {
				continue
			}
			a := strings.ToLower(rec.Properties.ActivityDisplayName + " " + rec.OperationName)
			for _, m := range []string{"conditional access policy", "named location", "authentication strength", "security defaults"} {
				if strings.Contains(a, m) {
					relevant++
					break
				}
			}
		}
	}
	answer(w, fmt.Sprintf("audit batch: events=%d records=%d relevant=%d", len(bodies), records, relevant))
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile is the nearest-rank percentile.
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	k := (p*len(s) + 99) / 100
	return s[max(k-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
