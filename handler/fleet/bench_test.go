package fleet

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/graph"
	"github.com/caguard/caguard/handler/graphfake"
	"github.com/caguard/caguard/handler/reconcile"
	"github.com/caguard/caguard/handler/tenants"
)

// The fleet benchmark (make bench-fleet): one process judges, and where the tenant's mode says so
// restores, every tenant of a registry, the way the nightly sweep does, against Graph emulated in a
// separate process with an added latency on every round trip, so that the memory measured is
// caguard's alone. It reports the sweep's wall time, the Graph round trips per tenant ($batch
// counts once), the largest number of one tenant's requests in flight, and the process's peak
// resident memory.

var (
	benchTenants  = flag.Int("fleet.tenants", 1000, "tenants in the registry")
	benchLatency  = flag.Duration("fleet.latency", 100*time.Millisecond, "latency added to every Graph round trip")
	benchParallel = flag.Int("fleet.parallel", 32, "tenants judged at once")
	benchFleet    = flag.Bool("fleet", false, "run the fleet benchmark (make bench-fleet): it takes a process and a minute of its own")
)

const emulatorEnv = "CAGUARD_FLEET_EMULATOR"

func TestMain(m *testing.M) {
	if os.Getenv(emulatorEnv) != "" {
		emulate()
		return
	}
	flag.Parse()
	os.Exit(m.Run())
}

// emulatorInfo is what the emulator process tells the benchmark on its first line.
type emulatorInfo struct {
	GraphURL, AuthorityURL, ClientID, ClientSecret, CertPEM string
	Tenants                                                 []benchTenant
}

type benchTenant struct {
	ID, Kind string
}

// emulatorStats is its answer to "stats".
type emulatorStats struct {
	Requests    map[string]int // per tenant
	MaxInFlight map[string]int
}

// The three kinds of tenant of the benchmark, in turn: compliant (judged, nothing written),
// drifted in remediate mode (restored: a write and its read-back), empty in alert mode (alerted).
var benchKinds = []struct{ kind, scenario, mode string }{
	{"compliant", "compliant.json", tenants.ModeRemediate},
	{"drifted", "drifted.json", tenants.ModeRemediate},
	{"empty", "empty.json", tenants.ModeAlert},
}

func scenarioPath(name string) string { return filepath.Join("..", "..", "scripts", "scenarios", name) }

// emulate runs the emulator process: it serves the tenants until its stdin closes.
func emulate() {
	n, _ := strconv.Atoi(os.Getenv("CAGUARD_FLEET_TENANTS"))
	latency, _ := time.ParseDuration(os.Getenv("CAGUARD_FLEET_LATENCY"))
	gf, err := graphfake.NewFleet(graphfake.FleetOptions{Latency: latency})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer gf.Close()
	info := emulatorInfo{GraphURL: gf.GraphURL(), AuthorityURL: gf.AuthorityURL(), ClientID: gf.ClientID(), ClientSecret: gf.ClientSecret(),
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: gf.Certificate().Raw}))}
	for i := range n {
		k := benchKinds[i%len(benchKinds)]
		sc, err := graphfake.ReadScenario(scenarioPath(k.scenario))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i+1, i+1)
		if _, err := gf.Add(id, sc, graphfake.Options{PageSize: 100}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		info.Tenants = append(info.Tenants, benchTenant{ID: id, Kind: k.kind})
	}
	out := json.NewEncoder(os.Stdout)
	_ = out.Encode(info)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() != "stats" {
			continue
		}
		st := emulatorStats{Requests: map[string]int{}, MaxInFlight: map[string]int{}}
		for _, t := range info.Tenants {
			st.Requests[t.ID], st.MaxInFlight[t.ID] = gf.Requests(t.ID), gf.MaxInFlight(t.ID)
		}
		_ = out.Encode(st)
	}
}

type countSink struct {
	mu sync.Mutex
	n  int
}

func (s *countSink) Name() string { return "count" }
func (s *countSink) Send(context.Context, reconcile.Alert) error {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return nil
}

func BenchmarkFleetSweep(b *testing.B) {
	if !*benchFleet {
		b.Skip("the fleet benchmark runs with -fleet (make bench-fleet)")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), emulatorEnv+"=1", "CAGUARD_FLEET_TENANTS="+strconv.Itoa(*benchTenants), "CAGUARD_FLEET_LATENCY="+benchLatency.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	dec := json.NewDecoder(stdout)
	var info emulatorInfo
	if err := dec.Decode(&info); err != nil {
		b.Fatalf("emulator: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(info.CertPEM))
	tokenClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 64}}

	for i := 0; i < b.N; i++ {
		reg := tenants.Registry{}
		for _, t := range info.Tenants {
			mode := tenants.ModeAlert
			for _, k := range benchKinds {
				if k.kind == t.Kind {
					mode = k.mode
				}
			}
			reg.Tenants = append(reg.Tenants, tenants.Tenant{ID: t.ID, DisplayName: "Tenant " + t.ID[:8], Mode: mode,
				BreakGlassUserIDs:  []string{"11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"},
				BreakGlassGroupIDs: []string{"bbbbbbbb-0000-0000-0000-000000000001"}})
		}
		sink := &countSink{}
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxIdleConnsPerHost = 64
		f, err := New(Options{
			Registry: reg,
			Credential: func(id string) (azcore.TokenCredential, error) {
				return tenants.Credential(id, tenants.CredentialOptions{ClientID: info.ClientID, ClientSecret: info.ClientSecret,
					AuthorityHost: info.AuthorityURL, Transport: tokenClient})
			},
			Graph:     graph.Options{BaseURL: info.GraphURL},
			Transport: transport,
			Settings:  Settings{Sinks: []reconcile.AlertSink{sink}, Policy: capolicy.Config{ManagedPolicyName: "caguard: require MFA for Azure management"}},
		})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var failed []string
		var mu sync.Mutex
		sem := make(chan struct{}, *benchParallel)
		var wg sync.WaitGroup
		start := time.Now()
		for _, t := range f.Tenants() {
			rec, _ := f.Reconciler(t.ID)
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if _, err := rec.Reconcile(context.Background(), reconcile.Request{Trigger: reconcile.TriggerSweep, Act: true}); err != nil {
					mu.Lock()
					failed = append(failed, t.ID+": "+err.Error())
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		wall := time.Since(start)
		if len(failed) > 0 {
			b.Fatalf("%d tenants failed, the first: %s", len(failed), failed[0])
		}
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if _, err := fmt.Fprintln(stdin, "stats"); err != nil {
			b.Fatal(err)
		}
		var st emulatorStats
		if err := dec.Decode(&st); err != nil {
			b.Fatal(err)
		}
		perKind := map[string][]int{}
		maxInFlight := 0
		for _, t := range info.Tenants {
			perKind[t.Kind] = append(perKind[t.Kind], st.Requests[t.ID])
			maxInFlight = max(maxInFlight, st.MaxInFlight[t.ID])
		}
		total := 0
		for _, n := range st.Requests {
			total += n
		}
		b.ReportMetric(wall.Seconds(), "sweep-s")
		b.ReportMetric(float64(total)/float64(len(info.Tenants)), "roundtrips/tenant")
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-rss-MB")
		b.ReportMetric(float64(maxInFlight), "max-inflight/tenant")
		fmt.Printf("fleet sweep: %d tenants, %v latency per Graph round trip, %d at once: %.1f s wall; peak RSS %.0f MB (Go heap in use after the sweep %.0f MB, %d goroutines); alerts %d\n",
			len(info.Tenants), *benchLatency, *benchParallel, wall.Seconds(), float64(ru.Maxrss)/1024, float64(ms.HeapInuse)/(1<<20), runtime.NumGoroutine(), sink.n)
		kinds := make([]string, 0, len(perKind))
		for k := range perKind {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			ns := perKind[k]
			sort.Ints(ns)
			sum := 0
			for _, n := range ns {
				sum += n
			}
			fmt.Printf("  %-9s %4d tenants: Graph round trips per tenant min %d, mean %.2f, max %d\n", k, len(ns), ns[0], float64(sum)/float64(len(ns)), ns[len(ns)-1])
		}
		fmt.Printf("  most requests of one tenant in flight at once: %d (cap %d)\n", maxInFlight, DefaultMaxInFlight)
	}
}
