// Package azuritetest runs Azurite, the Azure Storage emulator, for tests that need real blob storage
// (leases, conditional writes). It starts azurite-blob on a free loopback port with its data in a
// temporary folder, waits until it answers, and stops its whole process group afterwards.
//
// azurite-blob is looked up in $AZURITE_BIN, then in the repository's .ci/node_modules/.bin (installed
// by `make test` and .ci/run from .ci/package-lock.json), then on PATH. When it or Node.js is missing,
// Start skips the test with a message saying how to install it, unless CAGUARD_REQUIRE_AZURITE=1
// (set by CI), where a missing emulator fails the test instead.
package azuritetest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Account is Azurite's well-known development account; its key is public.
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// TB is the part of testing.TB that Start needs.
type TB interface {
	Helper()
	Skip(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	TempDir() string
	Cleanup(func())
}

// Azurite is one running emulator service (blob, or queue for LaunchService).
type Azurite struct {
	Port    int
	service string // "blob" or "queue"
	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan struct{}
	once    sync.Once
}

// Find returns the azurite-blob executable to run, or an error saying why there is none.
func Find() (string, error) {
	if p := os.Getenv("AZURITE_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("AZURITE_BIN=%s: %w", p, err)
		}
		return p, nil
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", errors.New("Node.js (node) is not on PATH; Azurite runs on it: install Node.js 20 or later and npm, then `npm ci --prefix .ci`")
	}
	if root, ok := repoRoot(); ok {
		p := filepath.Join(root, ".ci", "node_modules", ".bin", "azurite-blob")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("azurite-blob"); err == nil {
		return p, nil
	}
	return "", errors.New("azurite-blob not found in $AZURITE_BIN, .ci/node_modules/.bin or PATH: run `npm ci --prefix .ci` (make test does when npm is there)")
}

func repoRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// Start runs Azurite for the test and stops it in the test's cleanup. Without Azurite it skips the
// test, saying why (or fails it under CAGUARD_REQUIRE_AZURITE=1).
func Start(t TB) *Azurite {
	t.Helper()
	bin, err := Find()
	if err != nil {
		Unavailable(t, err)
	}
	a, err := Launch(bin, t.TempDir())
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(a.Stop)
	return a
}

// Unavailable skips t because Azurite cannot run (err says why), or fails it when CI requires Azurite.
func Unavailable(t TB, err error) {
	t.Helper()
	if os.Getenv("CAGUARD_REQUIRE_AZURITE") == "1" {
		t.Fatalf("Azurite is required (CAGUARD_REQUIRE_AZURITE=1): %v", err)
	}
	t.Skip("skipping: this test needs Azurite, the Azure Storage emulator: ", err)
}

// Launch starts bin (azurite-blob) with its data in dir and waits until it answers. The caller must
// Stop it.
func Launch(bin, dir string) (*Azurite, error) { return LaunchService(bin, dir, "blob") }

// LaunchService is Launch for one of Azurite's services, "blob" or "queue", bin being that service's
// executable (azurite-blob, azurite-queue).
func LaunchService(bin, dir, service string) (*Azurite, error) {
	if service != "blob" && service != "queue" {
		return nil, fmt.Errorf("azurite service %q: want blob or queue", service)
	}
	// A free port can be taken by someone else between probing and Azurite's bind: try a few.
	var last error
	for range 3 {
		a, err := start(bin, dir, service)
		if err == nil {
			return a, nil
		}
		last = err
	}
	return nil, fmt.Errorf("start Azurite (%s): %w", bin, last)
}

func start(bin, dir, service string) (*Azurite, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--"+service+"Host", "127.0.0.1", "--"+service+"Port", strconv.Itoa(port), "--location", dir,
		"--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that Stop reaches whatever it starts, even behind a wrapper script.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	a := &Azurite{Port: port, service: service, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(a.done) }()
	if err := a.waitReady(30 * time.Second); err != nil {
		a.Stop()
		return nil, err
	}
	return a, nil
}

// waitReady polls the service's endpoint until any HTTP answer arrives (as a host polls a worker), the
// process exits, or timeout passes.
func (a *Azurite) waitReady(timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-a.done:
			return fmt.Errorf("azurite exited before answering: %s", a.out.String())
		default:
		}
		resp, err := client.Get(a.Endpoint() + "?comp=list")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("azurite did not answer within %s: %s", timeout, a.out.String())
}

// Endpoint is the account's URL on this service, without a trailing slash.
func (a *Azurite) Endpoint() string {
	return "http://127.0.0.1:" + strconv.Itoa(a.Port) + "/" + Account
}

// BlobEndpoint is the account's blob service URL, without a trailing slash.
func (a *Azurite) BlobEndpoint() string { return a.Endpoint() }

// ConnectionString is an AzureWebJobsStorage value for this emulator.
func (a *Azurite) ConnectionString() string {
	return "DefaultEndpointsProtocol=http;AccountName=" + Account + ";AccountKey=" + Key + ";BlobEndpoint=" + a.BlobEndpoint() + ";"
}

// Stop ends Azurite's process group: SIGTERM, then SIGKILL if it has not exited within a grace
// period (Node.js servers may ignore SIGTERM). It waits for the exit and is safe to call twice. After
// Stop, the port refuses connections: storage is unavailable.
func (a *Azurite) Stop() {
	a.once.Do(func() {
		pgid := a.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-a.done
		}
		// Children that outlived the leader (none expected) go too.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
}

// Output is what Azurite printed, for failure messages.
func (a *Azurite) Output() string { return a.out.String() }

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

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
	return strings.TrimSpace(s.b.String())
}
