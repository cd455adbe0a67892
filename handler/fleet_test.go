package main

import (
	"context"
	"encoding/json"
	"github.com/caguard/caguard/handler/tenantqueue"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/caguard/caguard/handler/azfunc/hosttest"
	"github.com/caguard/caguard/handler/blobstate/azuritetest"
	"github.com/caguard/caguard/handler/graphfake"
)

// Three customer tenants, each with its own break-glass account and mode, guarded by one handler
// through the tenant registry; the handler runs in-process as the host starts it, the real Graph
// client and azidentity talk to the emulated Graph and Entra authority of graphfake.Fleet.
const (
	tenantA = "a0000000-0000-4000-8000-00000000000a" // remediate, break-glass user bgA
	tenantB = "b0000000-0000-4000-8000-00000000000b" // remediate, break-glass user bgB and group grpB
	tenantC = "c0000000-0000-4000-8000-00000000000c" // alert, break-glass user bgC
	homeTID = "d0000000-0000-4000-8000-00000000000d" // AZURE_TENANT_ID: not in the registry
	bgA     = "a1111111-1111-4111-8111-11111111111a"
	bgB     = "b1111111-1111-4111-8111-11111111111b"
	grpB    = "b2222222-2222-4222-8222-22222222222b"
	bgC     = "c1111111-1111-4111-8111-11111111111c"
)

type fleetHarness struct {
	fleet  *graphfake.Fleet
	host   *hosttest.Host
	stderr *lockedBuffer
}

func user(upn string) json.RawMessage {
	return json.RawMessage(`{"displayName":"Break-glass","userPrincipalName":"` + upn + `","accountEnabled":true}`)
}

// startFleet starts the handler with the registry in TENANTS_FILE, or, with az, in the blob
// caguard/tenants.json of the app's storage.
func startFleet(t *testing.T, az ...*azuritetest.Azurite) *fleetHarness {
	t.Helper()
	fl, err := graphfake.NewFleet(graphfake.FleetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fl.Close)
	seeds := map[string]graphfake.Scenario{
		tenantA: {Users: map[string]json.RawMessage{bgA: user("bg@a.example")}},
		tenantB: {Users: map[string]json.RawMessage{bgB: user("bg@b.example")}, Groups: map[string]graphfake.Group{
			grpB: {DisplayName: "Break-glass B", IsAssignableToRole: true, Members: []graphfake.Member{{ID: bgB, ODataType: "#microsoft.graph.user", UserPrincipalName: "bg@b.example"}}}}},
		tenantC: {Users: map[string]json.RawMessage{bgC: user("bg@c.example")}},
	}
	for id, sc := range seeds {
		if _, err := fl.Add(id, sc, graphfake.Options{PageSize: 5}); err != nil {
			t.Fatal(err)
		}
	}
	reg := `{"tenants": [
	  {"id": "` + tenantA + `", "displayName": "Adatum", "breakGlassUserIds": ["` + bgA + `"], "breakGlassGroupIds": [], "mode": "remediate"},
	  {"id": "` + tenantB + `", "displayName": "Bellows", "breakGlassUserIds": ["` + bgB + `"], "breakGlassGroupIds": ["` + grpB + `"], "mode": "remediate"},
	  {"id": "` + tenantC + `", "displayName": "Coho", "breakGlassUserIds": ["` + bgC + `"], "breakGlassGroupIds": []}
	]}`
	port := freePort(t)
	env := map[string]string{
		"FUNCTIONS_CUSTOMHANDLER_PORT": strconv.Itoa(port),
		"AZURE_TENANT_ID":              homeTID,
		"AZURE_CLIENT_ID":              fl.ClientID(),
		"AZURE_CLIENT_SECRET":          fl.ClientSecret(),
		"AZURE_AUTHORITY_HOST":         fl.AuthorityURL(),
		"GRAPH_BASE_URL":               fl.GraphURL(),
		"GRAPH_RETRY_BUDGET":           "3s",
		"REMEDIATION_MODE":             "alert", // the global mode: Coho takes it, the others override it
	}
	if len(az) > 0 {
		putBlob(t, az[0], "tenants.json", []byte(reg))
		env["AzureWebJobsStorage"] = az[0].ConnectionString()
	} else {
		regFile := filepath.Join(t.TempDir(), "tenants.json")
		if err := os.WriteFile(regFile, []byte(reg), 0o600); err != nil {
			t.Fatal(err)
		}
		env["TENANTS_FILE"] = regFile
	}
	h := &fleetHarness{fleet: fl, stderr: &lockedBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runWith(ctx, func(k string) string { return env[k] }, &lockedBuffer{}, h.stderr, seams{tokenTransport: fl.Client()})
	}()
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

// eventOf is the weakened-policy audit event, as written in tenant id.
func eventOf(t *testing.T, id string) string {
	ev := strings.ReplaceAll(event(t, "event-policy-weakened.json"), graphfake.DefaultTenantID, id)
	// Audit ids are unique per record; the same id twice in a batch is a duplicate delivery.
	return strings.ReplaceAll(ev, "IPCGraph_7f3e0001", "IPCGraph_"+id[:8])
}

func (h *fleetHarness) audit(t *testing.T, bodies ...string) hosttest.Answer {
	t.Helper()
	a, err := h.host.Invoke("AuditLogEvents", hosttest.EventHubData("events", bodies...), hosttest.EventHubMetadata("AuditLogEvents", len(bodies)))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (h *fleetHarness) evaluate(t *testing.T, query string, headers map[string]string) (int, string) {
	t.Helper()
	data := hosttest.HTTPData("req", http.MethodGet, "")
	req := data["req"].(map[string]any)
	if query != "" {
		k, v, _ := strings.Cut(query, "=")
		req["Query"].(map[string]string)[k] = v
		req["Url"] = req["Url"].(string) + "&" + query
	}
	for k, v := range headers {
		req["Headers"].(map[string][]string)[k] = []string{v}
	}
	a, err := h.host.Invoke("Evaluate", data, hosttest.SysMetadata("Evaluate"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.HTTP("res")
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Body
}

func tenantWrites(s *graphfake.Server) []graphfake.Call {
	var out []graphfake.Call
	for _, c := range s.Calls() {
		if (c.Method == http.MethodPatch || c.Method == http.MethodPost || c.Method == http.MethodDelete) && !graphfake.IsBatch(c) {
			out = append(out, c)
		}
	}
	return out
}

func TestFleetRoutesEachTenantToItsOwnReconciler(t *testing.T) {
	h := startFleet(t)
	a, _ := h.fleet.Tenant(tenantA)
	b, _ := h.fleet.Tenant(tenantB)
	c, _ := h.fleet.Tenant(tenantC)

	// An event in Adatum restores Adatum alone, excluding Adatum's break-glass account.
	ans := h.audit(t, eventOf(t, tenantA), eventOf(t, "e0000000-0000-4000-8000-00000000000e"))
	if ans.Status != http.StatusOK {
		t.Fatalf("AuditLogEvents: host status %d: %s", ans.Status, ans.Raw)
	}
	if !strings.Contains(ans.LogText(), "other-tenant=1") {
		t.Errorf("the record of a tenant outside the registry was not counted: %q", ans.Logs)
	}
	w := tenantWrites(a)
	if len(w) != 1 || w[0].Method != http.MethodPost {
		t.Fatalf("Adatum's writes: %v, want one create of the managed policy", w)
	}
	if body := string(w[0].Body); !strings.Contains(body, bgA) || strings.Contains(body, bgB) || strings.Contains(body, bgC) {
		t.Errorf("Adatum's managed policy excludes the wrong break-glass accounts: %s", body)
	}
	if n := len(b.Calls()) + len(c.Calls()); n != 0 {
		t.Errorf("an event of Adatum made %d Graph calls in the other tenants", n)
	}

	// Coho is not consented: an event in Bellows and one in Coho restore Bellows, and Coho is a
	// finding with the cause in words; the invocation succeeds (retrying cannot consent the app).
	h.fleet.Refuse(tenantC, "AADSTS700016")
	ans = h.audit(t, eventOf(t, tenantC), eventOf(t, tenantB))
	if ans.Status != http.StatusOK {
		t.Fatalf("AuditLogEvents with an unconsented tenant: host status %d: %s", ans.Status, ans.Raw)
	}
	if w := tenantWrites(b); len(w) != 1 || !strings.Contains(string(w[0].Body), grpB) || !strings.Contains(string(w[0].Body), bgB) {
		t.Errorf("Bellows' writes: %v, want one create excluding its own break-glass user and group", w)
	}
	if !h.stderr.waitFor("AADSTS700016", 5*time.Second) || !strings.Contains(h.stderr.String(), "it was never consented there") {
		t.Errorf("the unconsented tenant's cause is not in the log")
	}
	if len(tenantWrites(c)) != 0 {
		t.Error("Coho was written to")
	}

	// Graph is down for Adatum only: an event in Adatum and one in Bellows run both; Bellows is
	// judged (and, restored before, needs no write), and the invocation fails so that the host
	// retries the batch for Adatum.
	a.Inject(graphfake.Fault{Match: "* /v1.0/*", Status: http.StatusServiceUnavailable, RetryAfter: "1"})
	b.Reset()
	ans = h.audit(t, eventOf(t, tenantA), eventOf(t, tenantB))
	if ans.Status < 500 {
		t.Errorf("AuditLogEvents with a tenant Graph cannot serve: host status %d, want a failure the host retries", ans.Status)
	}
	if len(b.Calls()) == 0 || len(tenantWrites(b)) != 0 {
		t.Errorf("Bellows beside a failing tenant: %d calls, %d writes; want it judged, nothing written", len(b.Calls()), len(tenantWrites(b)))
	}
	a.ClearFaults()

	// With a registry the nightly sweep reconciles nothing inline (above all not AZURE_TENANT_ID with
	// the global settings): it writes one queue message per registry tenant, in registry order.
	before := len(a.Calls()) + len(b.Calls()) + len(c.Calls())
	sweep, err := h.host.Invoke("NightlySweep", hosttest.TimerData("timer", false), hosttest.SysMetadata("NightlySweep"))
	if err != nil {
		t.Fatal(err)
	}
	if sweep.Status != http.StatusOK {
		t.Fatalf("NightlySweep with a registry: %d %s", sweep.Status, sweep.Raw)
	}
	if after := len(a.Calls()) + len(b.Calls()) + len(c.Calls()); after != before {
		t.Errorf("NightlySweep with a registry made %d Graph calls", after-before)
	}
	var texts []string
	if err := json.Unmarshal(sweep.Outputs["sweeps"], &texts); err != nil {
		t.Fatalf("NightlySweep's sweeps output %s: %v", sweep.Outputs["sweeps"], err)
	}
	msgs := map[string]string{}
	var order []string
	for _, text := range texts {
		m, err := tenantqueue.Parse([]byte(text))
		if err != nil {
			t.Fatalf("sweep message %s: %v", text, err)
		}
		order = append(order, m.TenantID)
		msgs[m.TenantID] = text
	}
	if want := []string{tenantA, tenantB, tenantC}; !slices.Equal(order, want) {
		t.Fatalf("sweep messages for %v, want one per registry tenant %v", order, want)
	}

	// Each message sweeps its own tenant alone, through the same per-tenant reconciler.
	deliver := func(tenant string) hosttest.Answer {
		t.Helper()
		m := hosttest.QueueMessage{Text: msgs[tenant], ID: "m-" + tenant, PopReceipt: "p", DequeueCount: 1,
			InsertionTime: time.Now(), ExpirationTime: time.Now().Add(7 * 24 * time.Hour), NextVisibleTime: time.Now().Add(5 * time.Minute)}
		ans, err := h.host.Invoke("TenantSweep", hosttest.QueueData("sweep", m), hosttest.QueueMetadata("TenantSweep", m))
		if err != nil {
			t.Fatal(err)
		}
		return ans
	}
	a.Reset()
	b.Reset()
	c.Reset()
	if ans := deliver(tenantA); ans.Status != http.StatusOK || len(ans.Outputs["poison"]) > 0 && string(ans.Outputs["poison"]) != "null" {
		t.Errorf("TenantSweep of Adatum: %d %s, want a sweep without a poison record", ans.Status, ans.Raw)
	}
	if len(a.Calls()) == 0 || len(b.Calls())+len(c.Calls()) != 0 {
		t.Errorf("TenantSweep of Adatum: %d calls to Adatum, %d to the others; want Adatum alone judged", len(a.Calls()), len(b.Calls())+len(c.Calls()))
	}
	// Coho is still not consented: no retry can fix it, so its message goes to the poison queue with
	// the reason, and the invocation completes.
	ans = deliver(tenantC)
	if ans.Status != http.StatusOK || !strings.Contains(string(ans.Outputs["poison"]), "permanent-failure") {
		t.Errorf("TenantSweep of the unconsented tenant: %d, poison %s; want a permanent-failure record", ans.Status, ans.Outputs["poison"])
	}
	if len(a.Calls()) == 0 || len(tenantWrites(a))+len(tenantWrites(b)) != 0 {
		t.Errorf("the sweeps wrote to a tenant that needed nothing")
	}

	// The fleet view: one row per tenant, Coho's with its cause.
	status, body := h.evaluate(t, "", nil)
	if status != http.StatusOK {
		t.Fatalf("fleet summary: %d %s", status, body)
	}
	var fleetAns struct {
		Counts  map[string]int `json:"counts"`
		Tenants []struct {
			TenantID, DisplayName, Mode, Verdict, Cause string
			LastRun                                     time.Time
			Reasons                                     []string
		} `json:"tenants"`
	}
	if err := json.Unmarshal([]byte(body), &fleetAns); err != nil {
		t.Fatal(err)
	}
	if len(fleetAns.Tenants) != 3 {
		t.Fatalf("fleet rows: %d, want 3: %s", len(fleetAns.Tenants), body)
	}
	// A row is the tenant's last run: what it found before restoring. Adatum's is its queued sweep,
	// which found the policy restored by its first event, in report-only mode.
	want := map[string][2]string{tenantA: {"Adatum", "pending-enforcement"}, tenantB: {"Bellows", "pending-enforcement"}, tenantC: {"Coho", "unknown"}}
	for _, r := range fleetAns.Tenants {
		w := want[r.TenantID]
		if r.DisplayName != w[0] || r.Verdict != w[1] || r.LastRun.IsZero() {
			t.Errorf("row %s: got %s %s (last run %v), want %s %s", r.TenantID, r.DisplayName, r.Verdict, r.LastRun, w[0], w[1])
		}
		if r.TenantID == tenantC && !strings.Contains(r.Cause, "AADSTS700016") {
			t.Errorf("Coho's cause: %q, want the AADSTS code in words", r.Cause)
		}
		if r.TenantID == tenantC && r.Mode != "alert" {
			t.Errorf("Coho's mode: %q, want the global alert", r.Mode)
		}
	}

	// One tenant's report, named; a tenant outside the registry is a 404.
	status, body = h.evaluate(t, "tenant="+strings.ToUpper(tenantB), nil)
	if status != http.StatusOK || !strings.Contains(body, `"tenantName":"Bellows"`) || !strings.Contains(body, `"tenantId":"`+tenantB+`"`) {
		t.Errorf("?tenant=B: %d %s", status, body)
	}
	if status, body = h.evaluate(t, "tenant="+homeTID, nil); status != http.StatusNotFound {
		t.Errorf("?tenant= outside the registry: %d %s, want 404", status, body)
	}
	status, body = h.evaluate(t, "", map[string]string{"Accept": "text/html"})
	if status != http.StatusOK || !strings.Contains(body, "caguard fleet: 3 tenants") || !strings.Contains(body, "Coho") {
		t.Errorf("fleet HTML: %d %.300s", status, body)
	}
}

// A malformed registry stops the start with the entry and the field; the handler never falls back
// to the single tenant.
func TestMalformedRegistryFailsTheStart(t *testing.T) {
	regFile := filepath.Join(t.TempDir(), "tenants.json")
	reg := `{"tenants": [{"id": "` + tenantA + `", "displayName": "Adatum"}, {"id": "` + tenantB + `", "displayName": "Bellows", "mode": "enforce"}]}`
	if err := os.WriteFile(regFile, []byte(reg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"FUNCTIONS_CUSTOMHANDLER_PORT": strconv.Itoa(freePort(t)),
		"AZURE_TENANT_ID":              homeTID,
		"AZURE_CLIENT_ID":              graphfake.DefaultClientID,
		"AZURE_CLIENT_SECRET":          "s",
		"TENANTS_FILE":                 regFile,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, func(k string) string { return env[k] }, &lockedBuffer{}, &lockedBuffer{})
	if err == nil || !strings.Contains(err.Error(), "tenants[1] ("+tenantB+").mode") {
		t.Fatalf("run: %v, want an error naming tenants[1] and its mode", err)
	}
}

// putBlob writes a blob of the app's container, creating the container if need be.
func putBlob(t *testing.T, az *azuritetest.Azurite, name string, data []byte) {
	t.Helper()
	cred, err := container.NewSharedKeyCredential(azuritetest.Account, azuritetest.Key)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(az.BlobEndpoint()+"/caguard", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cc.Create(ctx, nil); err != nil && !strings.Contains(err.Error(), "ContainerAlreadyExists") {
		t.Fatal(err)
	}
	if _, err := cc.NewBlockBlobClient(name).UploadBuffer(ctx, data, nil); err != nil {
		t.Fatal(err)
	}
}

// readBlob reads a blob of the app's container; found is false when it does not exist.
func readBlob(t *testing.T, az *azuritetest.Azurite, name string) (string, bool) {
	t.Helper()
	cred, err := container.NewSharedKeyCredential(azuritetest.Account, azuritetest.Key)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(az.BlobEndpoint()+"/caguard", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cc.NewBlockBlobClient(name).DownloadStream(context.Background(), nil)
	if err != nil {
		if strings.Contains(err.Error(), "BlobNotFound") {
			return "", false
		}
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

// In Azure the registry is the blob caguard/tenants.json, and each tenant keeps its lease and its
// record of the managed policy's id in a blob of its own; the single tenant's blob is not touched.
func TestFleetRegistryAndOwnershipInStorage(t *testing.T) {
	az := azuritetest.Start(t)
	h := startFleet(t, az)
	a, _ := h.fleet.Tenant(tenantA)
	if ans := h.audit(t, eventOf(t, tenantA)); ans.Status != http.StatusOK {
		t.Fatalf("AuditLogEvents: host status %d: %s", ans.Status, ans.Raw)
	}
	w := tenantWrites(a)
	if len(w) != 1 {
		t.Fatalf("Adatum's writes: %v, want one create", w)
	}
	rec, found := readBlob(t, az, "tenants/"+tenantA+"/managed-policy.json")
	if !found {
		t.Fatal("no ownership record for Adatum at caguard/tenants/<id>/managed-policy.json")
	}
	var record map[string]any
	if err := json.Unmarshal([]byte(rec), &record); err != nil {
		t.Fatalf("record %q: %v", rec, err)
	}
	held := false
	for _, v := range record {
		if id, ok := v.(string); ok {
			if _, exists := a.Policy(id); exists {
				held = true
			}
		}
	}
	if !held {
		t.Errorf("Adatum's record %s does not name a policy of Adatum", rec)
	}
	for _, other := range []string{"tenants/" + tenantB + "/managed-policy.json", "managed-policy.json"} {
		if _, found := readBlob(t, az, other); found {
			t.Errorf("%s exists: a run of Adatum wrote another tenant's record", other)
		}
	}
}

// Two handlers, as two Flex instances, share the app's storage: the run one makes is recorded in
// caguard/tenants/<id>/last-run.json, and the fleet summary of the other shows it without asking
// Graph about that tenant.
func TestFleetSummaryOfOneInstanceShowsTheRunsOfAnother(t *testing.T) {
	az := azuritetest.Start(t)
	first := startFleet(t, az)
	if ans := first.audit(t, eventOf(t, tenantA)); ans.Status != http.StatusOK {
		t.Fatalf("AuditLogEvents: host status %d: %s", ans.Status, ans.Raw)
	}
	rec, found := readBlob(t, az, "tenants/"+tenantA+"/last-run.json")
	if !found {
		t.Fatal("no last-run record for Adatum at caguard/tenants/<id>/last-run.json")
	}
	var record struct {
		Version          int
		Trigger, Verdict string
	}
	if err := json.Unmarshal([]byte(rec), &record); err != nil || record.Version != 1 || record.Trigger != "audit-event" || record.Verdict == "" {
		t.Fatalf("Adatum's last-run record %s (%v), want version 1 of its audit-event run with a verdict", rec, err)
	}
	for _, other := range []string{tenantB, tenantC} {
		if _, found := readBlob(t, az, "tenants/"+other+"/last-run.json"); found {
			t.Errorf("a run of Adatum recorded a last run of %s", other)
		}
	}

	second := startFleet(t, az)
	status, body := second.evaluate(t, "", nil)
	if status != http.StatusOK {
		t.Fatalf("fleet summary: %d %s", status, body)
	}
	var ans struct {
		Tenants []struct{ TenantID, Verdict, Trigger string }
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil {
		t.Fatal(err)
	}
	for _, r := range ans.Tenants {
		want := "http" // judged now by the second instance: no instance had run them
		if r.TenantID == tenantA {
			want = "audit-event"
			if r.Verdict != record.Verdict {
				t.Errorf("Adatum on the second instance: verdict %s, want the recorded %s", r.Verdict, record.Verdict)
			}
		}
		if r.Trigger != want {
			t.Errorf("row %s on the second instance: trigger %q, want %q", r.TenantID, r.Trigger, want)
		}
	}
	if a, _ := second.fleet.Tenant(tenantA); len(a.Calls()) != 0 {
		t.Errorf("the second instance asked Graph %d times about Adatum, whose run is recorded", len(a.Calls()))
	}
}
