// Command localrun is caguard's local demo. It starts the built-in tenant emulator seeded from a
// scenario, starts the handler binary the way the Functions host does (a random port in
// FUNCTIONS_CUSTOMHANDLER_PORT, a managed-identity endpoint in IDENTITY_ENDPOINT), waits for GET / like
// the host, then drives the three functions with the host's exact envelopes and prints what happened.
//
//	go run ./scripts/localrun -handler dist/handler -scenario scripts/scenarios/drifted.json -mode remediate
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caguard/caguard/handler/azfunc/hosttest"
	"github.com/caguard/caguard/handler/graphfake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "localrun:", err)
		os.Exit(1)
	}
}

type options struct {
	handler, scenario, mode, logPath  string
	breakGlassUsers, breakGlassGroups string
	outDir, controls                  string
}

func run() error {
	var o options
	flag.StringVar(&o.handler, "handler", "dist/handler", "the handler binary")
	flag.StringVar(&o.scenario, "scenario", "scripts/scenarios/drifted.json", "tenant scenario to seed the emulator with")
	flag.StringVar(&o.mode, "mode", "remediate", "REMEDIATION_MODE: alert or remediate")
	flag.StringVar(&o.logPath, "log", "", "where the handler's own log lines go (default: handler.log in -out)")
	flag.StringVar(&o.controls, "controls", "all", "CONTROLS: the catalogue controls the demo judges")
	flag.StringVar(&o.breakGlassUsers, "break-glass-users", "11111111-1111-1111-1111-111111111111,22222222-2222-2222-2222-222222222222", "BREAK_GLASS_USER_IDS")
	flag.StringVar(&o.breakGlassGroups, "break-glass-groups", "bbbbbbbb-0000-0000-0000-000000000001,bbbbbbbb-0000-0000-0000-000000000003", "BREAK_GLASS_GROUP_IDS")
	flag.StringVar(&o.outDir, "out", "dist/demo", "where the alerts (Teams card, Slack message) and the HTML report are written")
	flag.Parse()
	if err := clearOutputs(o.outDir); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	if o.logPath == "" {
		o.logPath = filepath.Join(o.outDir, "handler.log")
	}

	fake, err := graphfake.New(graphfake.Options{})
	if err != nil {
		return err
	}
	if err := fake.LoadScenario(o.scenario); err != nil {
		return err
	}
	if err := fake.Start(); err != nil {
		return err
	}
	defer fake.Close()
	fmt.Printf("tenant emulator on %s, seeded from %s (%d policies)\n", fake.URL(), o.scenario, len(fake.Policies()))

	// A local webhook receives the alerts as JSON, the format every other one is rendered from.
	hook, err := startWebhook()
	if err != nil {
		return err
	}
	defer hook.close()

	port, err := freePort()
	if err != nil {
		return err
	}
	logFile, err := os.Create(o.logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(o.handler)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(),
		"FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port),
		"AZURE_TENANT_ID="+fake.TenantID(),
		"GRAPH_BASE_URL="+fake.GraphURL(),
		"IDENTITY_ENDPOINT="+fake.IdentityEndpoint(),
		"IDENTITY_HEADER="+fake.IdentityHeader(),
		"BREAK_GLASS_USER_IDS="+o.breakGlassUsers,
		"BREAK_GLASS_GROUP_IDS="+o.breakGlassGroups,
		"REMEDIATION_MODE="+o.mode,
		"CONTROLS="+o.controls,
		"GRAPH_RETRY_BUDGET=10s",
		"ALERT_WEBHOOK_URL="+hook.url,
		"ALERT_WEBHOOK_FORMAT=json",
	)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start handler: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := hosttest.WaitReady(base, 30*time.Second, exited); err != nil {
		if line := handlerError(o.logPath); line != "" {
			return fmt.Errorf("the handler did not start: %s\n(full log: %s)", line, o.logPath)
		}
		return fmt.Errorf("%w (see %s)", err, o.logPath)
	}
	fmt.Printf("handler ready on %s (mode %s); its log: %s\n", base, o.mode, o.logPath)

	h := &hosttest.Host{Base: base}
	step := func(title string) { fmt.Printf("\n== %s\n", title) }

	step("Evaluate (GET): report only")
	if err := evaluate(h, "GET"); err != nil {
		return err
	}

	step("AuditLogEvents: a batch with a policy edit, noise and a malformed event")
	batch, err := auditBatch(fake)
	if err != nil {
		return err
	}
	if err := invoke(h, "AuditLogEvents", hosttest.EventHubData("events", batch...), hosttest.EventHubMetadata("AuditLogEvents", len(batch))); err != nil {
		return err
	}

	step("NightlySweep")
	if err := invoke(h, "NightlySweep", hosttest.TimerData("timer", false), hosttest.SysMetadata("NightlySweep")); err != nil {
		return err
	}

	step("Evaluate (GET) after the run")
	if err := evaluate(h, "GET"); err != nil {
		return err
	}

	step("The alerts as a person reads them")
	if err := showAlerts(hook.bodies(), o.outDir); err != nil {
		return err
	}

	step("The report page")
	if err := writeReport(h, o.outDir); err != nil {
		return err
	}

	step("Writes the tenant emulator received")
	writes := 0
	for _, c := range fake.Calls() {
		if (c.Method == http.MethodPost || c.Method == http.MethodPatch || c.Method == http.MethodDelete) && !graphfake.IsBatch(c) {
			if strings.HasPrefix(c.Path, "/msi") {
				continue
			}
			writes++
			// With every control guarded there is a write per control: name the policy first, so the
			// list reads as which policy was written, then the body.
			var named struct {
				DisplayName string `json:"displayName"`
			}
			_ = json.Unmarshal(c.Body, &named)
			if named.DisplayName == "" {
				if raw, ok := fake.Policy(c.Path[strings.LastIndex(c.Path, "/")+1:]); ok {
					_ = json.Unmarshal(raw, &named)
				}
			}
			fmt.Printf("%s %s -> %d %q\n    %s\n", c.Method, c.Path, c.Status, named.DisplayName, compact(c.Body, 240))
		}
	}
	if writes == 0 {
		fmt.Println("none")
	}
	return nil
}

// invoke sends one invocation and prints the host status and the invocation's log lines.
func invoke(h *hosttest.Host, function string, data, metadata map[string]any) error {
	a, err := h.Invoke(function, data, metadata)
	if err != nil {
		return err
	}
	fmt.Printf("host status %d\n", a.Status)
	for _, l := range a.Logs {
		fmt.Println("  log:", l)
	}
	return nil
}

// evaluate calls Evaluate and prints its answer for a person.
func evaluate(h *hosttest.Host, method string) error {
	a, err := h.Invoke("Evaluate", hosttest.HTTPData("req", method, ""), hosttest.SysMetadata("Evaluate"))
	if err != nil {
		return err
	}
	res, err := a.HTTP("res")
	if err != nil {
		return fmt.Errorf("evaluate: %w", err)
	}
	fmt.Printf("host status %d, HTTP %d\n", a.Status, res.StatusCode)
	var ans struct {
		Compliant bool   `json:"compliant"`
		Verdict   string `json:"verdict"`
		Summary   string `json:"summary"`
		Policies  []struct {
			ID, DisplayName, State string
			Compliant              bool
			Reasons                []struct{ Code, Message string }
		} `json:"policies"`
		Actions []struct {
			Kind      string `json:"kind"`
			Performed bool   `json:"performed"`
			Reason    string `json:"reason"`
		} `json:"actions"`
		Exclusions []struct {
			Kind        string `json:"kind"`
			ID          string `json:"id"`
			DisplayName string `json:"displayName"`
			Allowlisted bool   `json:"allowlisted"`
			MemberCount *int   `json:"memberCount"`
			Review      struct {
				Status string `json:"status"`
				Detail string `json:"detail"`
			} `json:"review"`
			Notes []string `json:"notes"`
		} `json:"exclusions"`
		Controls []struct {
			ID      string `json:"id"`
			Verdict string `json:"verdict"`
			Guarded bool   `json:"guarded"`
			CIS     []struct {
				Benchmark, Control string
			} `json:"cis"`
			Actions []struct {
				Kind      string `json:"kind"`
				Performed bool   `json:"performed"`
				State     string `json:"state"`
			} `json:"actions"`
		} `json:"controls"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(res.Body), &ans); err != nil {
		return fmt.Errorf("evaluate body: %w", err)
	}
	if ans.Error != "" {
		fmt.Println("error:", ans.Error)
		return nil
	}
	fmt.Printf("verdict: %s (compliant=%t)\n%s\n", ans.Verdict, ans.Compliant, ans.Summary)
	for _, p := range ans.Policies {
		mark := "FAIL"
		if p.Compliant {
			mark = "PASS"
		}
		fmt.Printf("  [%s] %s (%s)\n", mark, p.DisplayName, p.State)
		for _, r := range p.Reasons {
			fmt.Printf("         %s: %s\n", r.Code, r.Message)
		}
	}
	if len(ans.Controls) > 1 {
		fmt.Println("controls (CONTROLS; the policies above are those of the guarded one):")
		for _, c := range ans.Controls {
			var refs []string
			for _, r := range c.CIS {
				refs = append(refs, r.Control)
			}
			guarded := ""
			if c.Guarded {
				guarded = ", guarded"
			}
			did := ""
			for _, a := range c.Actions {
				switch {
				case a.Kind == "none":
				case a.Performed:
					did += fmt.Sprintf(" -> %s, %s", a.Kind, a.State)
				default:
					did += " -> " + a.Kind + " (not written)"
				}
			}
			fmt.Printf("  %-20s %s (CIS %s%s)%s\n", c.Verdict, c.ID, strings.Join(refs, ", "), guarded, did)
		}
	}
	for _, act := range ans.Actions {
		fmt.Printf("  action %s (performed: %t): %s\n", act.Kind, act.Performed, act.Reason)
	}
	for _, x := range ans.Exclusions {
		name := x.ID
		if x.DisplayName != "" {
			name = fmt.Sprintf("%q (%s)", x.DisplayName, x.ID)
		}
		size := ""
		if x.MemberCount != nil {
			size = fmt.Sprintf(", %d member(s)", *x.MemberCount)
		}
		fmt.Printf("  exclusion %s %s (allowlisted: %t%s): review %s\n         %s\n", x.Kind, name, x.Allowlisted, size, x.Review.Status, x.Review.Detail)
		for _, n := range x.Notes {
			fmt.Printf("         note: %s\n", n)
		}
	}
	return nil
}

// auditBatch builds the event bodies of an audit-log batch. One event reports an edit of the scenario's first policy (its
// state now, and a plausible state before), one is unrelated directory noise, one is not JSON.
func auditBatch(fake *graphfake.Server) ([]string, error) {
	policies := fake.Policies()
	if len(policies) == 0 {
		return nil, nil
	}
	var now map[string]any
	if err := json.Unmarshal(policies[0], &now); err != nil {
		return nil, err
	}
	before := map[string]any{}
	for k, v := range now {
		before[k] = v
	}
	before["grantControls"] = map[string]any{"operator": "OR", "builtInControls": []string{"mfa"}}
	oldJSON, _ := json.Marshal(before)
	newJSON, _ := json.Marshal(now)
	tenant := fake.TenantID()
	at := time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z")
	record := func(op, service, category, id string, target map[string]any) map[string]any {
		return map[string]any{
			"time": at, "resourceId": "/tenants/" + tenant + "/providers/Microsoft.aadiam",
			"operationName": op, "operationVersion": "1.0", "category": "AuditLogs", "tenantId": tenant,
			"resultSignature": "None", "durationMs": 0, "callerIpAddress": "192.0.2.44",
			"correlationId": "7d1c0c5e-0000-4000-8000-000000000001", "Level": 4,
			"properties": map[string]any{
				"id": id, "category": category, "correlationId": "7d1c0c5e-0000-4000-8000-000000000001",
				"result": "success", "activityDisplayName": op, "activityDateTime": at,
				"loggedByService": service, "operationType": "Update", "tenantId": tenant,
				"initiatedBy": map[string]any{"user": map[string]any{
					"id": "44444444-4444-4444-4444-444444444444", "displayName": nil,
					"userPrincipalName": "mallory@contoso.example", "ipAddress": "192.0.2.44", "roles": []any{}}},
				"targetResources":   []any{target},
				"additionalDetails": []any{map[string]any{"key": "Category", "value": "Conditional Access"}},
			},
		}
	}
	caEdit := record("Update conditional access policy", "Conditional Access", "Policy", "IPCGraph_demo-0001",
		map[string]any{"id": now["id"], "displayName": now["displayName"], "type": "Policy",
			"modifiedProperties": []any{map[string]any{"displayName": "ConditionalAccessPolicy",
				"oldValue": string(oldJSON), "newValue": string(newJSON)}}})
	noise := record("Update user", "Core Directory", "UserManagement", "Directory_demo-0002",
		map[string]any{"id": "55555555-5555-5555-5555-555555555555", "displayName": "Jo", "type": "User", "modifiedProperties": []any{}})
	ev1, _ := json.Marshal(map[string]any{"records": []any{caEdit}})
	ev2, _ := json.Marshal(map[string]any{"records": []any{noise}})
	return []string{string(ev1), string(ev2), `{"records":[{"truncated`}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func compact(b []byte, max int) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		buf.Reset()
		buf.Write(b)
	}
	s := buf.String()
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// handlerError returns the line of the handler's log that says why it stopped: its own
// "caguard: error: …" line, else the last line it wrote.
func handlerError(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "caguard: error:") {
			return lines[i]
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}
