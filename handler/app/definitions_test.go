package app

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/caguard/caguard/handler/tenantqueue"
)

// The function.json files and host.json are contracts with the Functions host; these tests hold them
// to what the handler expects, so a rename on one side cannot pass unnoticed.

type binding struct {
	Type          string   `json:"type"`
	Direction     string   `json:"direction"`
	Name          string   `json:"name"`
	EventHubName  string   `json:"eventHubName"`
	ConsumerGroup string   `json:"consumerGroup"`
	Connection    string   `json:"connection"`
	Cardinality   string   `json:"cardinality"`
	DataType      string   `json:"dataType"`
	Schedule      string   `json:"schedule"`
	AuthLevel     string   `json:"authLevel"`
	Methods       []string `json:"methods"`
	QueueName     string   `json:"queueName"`
}

type functionJSON struct {
	Bindings []binding `json:"bindings"`
	Retry    *struct {
		Strategy        string `json:"strategy"`
		MaxRetryCount   int    `json:"maxRetryCount"`
		MinimumInterval string `json:"minimumInterval"`
		MaximumInterval string `json:"maximumInterval"`
	} `json:"retry"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestFunctionDefinitions(t *testing.T) {
	dirs, err := filepath.Glob("../../functions/*/function.json")
	if err != nil || len(dirs) != 4 {
		t.Fatalf("function folders %v (%v), want exactly four", dirs, err)
	}
	defs := map[string]functionJSON{}
	for _, p := range dirs {
		var f functionJSON
		readJSON(t, p, &f)
		defs[filepath.Base(filepath.Dir(p))] = f
	}
	for _, fn := range Functions(Deps{}) {
		if _, ok := defs[fn.Name]; !ok {
			t.Errorf("no functions/%s/function.json for the handler's function %s", fn.Name, fn.Name)
		}
	}

	ev := defs[FuncAuditLogEvents]
	if len(ev.Bindings) != 1 {
		t.Fatalf("AuditLogEvents bindings %+v", ev.Bindings)
	}
	b := ev.Bindings[0]
	if b.Type != "eventHubTrigger" || b.Name != bindingEvents || b.Cardinality != "many" || b.DataType != "string" {
		t.Errorf("AuditLogEvents trigger %+v: want eventHubTrigger %q, cardinality many, dataType string (the default dataType loses non-JSON events)", b, bindingEvents)
	}
	if b.EventHubName != "%AUDIT_EVENTHUB_NAME%" || b.ConsumerGroup != "%AUDIT_EVENTHUB_CONSUMER_GROUP%" || b.Connection == "" {
		t.Errorf("AuditLogEvents hub settings %+v", b)
	}
	if ev.Retry == nil || ev.Retry.Strategy != "exponentialBackoff" || ev.Retry.MaxRetryCount < 1 || ev.Retry.MinimumInterval == "" || ev.Retry.MaximumInterval == "" {
		t.Errorf("AuditLogEvents retry %+v: Event Hubs checkpoints after retries, so a retry policy is what makes a Graph outage survivable", ev.Retry)
	}

	sw := defs[FuncNightlySweep]
	if len(sw.Bindings) != 2 || sw.Bindings[0].Type != "timerTrigger" || sw.Bindings[0].Name != bindingTimer || sw.Bindings[0].Schedule != "%SWEEP_SCHEDULE%" {
		t.Errorf("NightlySweep bindings %+v", sw.Bindings)
	}
	sweepQueue := binding{Type: "queue", Direction: "out", Name: bindingSweeps, QueueName: "%TENANT_SWEEP_QUEUE%", Connection: "AzureWebJobsStorage"}
	if len(sw.Bindings) == 2 && !reflect.DeepEqual(sw.Bindings[1], sweepQueue) {
		t.Errorf("NightlySweep output %+v, want %+v: the fan-out writes one message per tenant there", sw.Bindings[1], sweepQueue)
	}

	ts := defs[FuncTenantSweep]
	trigger := binding{Type: "queueTrigger", Direction: "in", Name: bindingSweep, QueueName: "%TENANT_SWEEP_QUEUE%", Connection: "AzureWebJobsStorage", DataType: "string"}
	poison := binding{Type: "queue", Direction: "out", Name: bindingPoison, QueueName: "%TENANT_SWEEP_QUEUE%-poison", Connection: "AzureWebJobsStorage"}
	if len(ts.Bindings) != 2 || !reflect.DeepEqual(ts.Bindings[0], trigger) || !reflect.DeepEqual(ts.Bindings[1], poison) {
		t.Errorf("TenantSweep bindings %+v, want the trigger %+v and the poison output %+v (the platform's poison queue is \"<queue>-poison\")", ts.Bindings, trigger, poison)
	}
	if ts.Retry != nil {
		t.Errorf("TenantSweep retry %+v: queue triggers retry through the queue (visibilityTimeout, maxDequeueCount), not a retry policy", ts.Retry)
	}

	httpDef := defs[FuncEvaluate]
	var in, out *binding
	for i := range httpDef.Bindings {
		switch httpDef.Bindings[i].Type {
		case "httpTrigger":
			in = &httpDef.Bindings[i]
		case "http":
			out = &httpDef.Bindings[i]
		}
	}
	if in == nil || out == nil || in.Name != bindingReq || out.Name != bindingRes || out.Direction != "out" {
		t.Fatalf("Evaluate bindings %+v", httpDef.Bindings)
	}
	if in.AuthLevel != "function" || strings.Join(in.Methods, ",") != "get,post" {
		t.Errorf("Evaluate trigger %+v: want authLevel function, methods get and post", in)
	}
}

func TestHostJSON(t *testing.T) {
	var h struct {
		Version         string `json:"version"`
		FunctionTimeout string `json:"functionTimeout"`
		CustomHandler   struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
			EnableForwardingHTTPRequest bool `json:"enableForwardingHttpRequest"`
		} `json:"customHandler"`
		ExtensionBundle struct {
			ID      string `json:"id"`
			Version string `json:"version"`
		} `json:"extensionBundle"`
		Extensions struct {
			Queues struct {
				BatchSize         int    `json:"batchSize"`
				NewBatchThreshold *int   `json:"newBatchThreshold"`
				MaxDequeueCount   int    `json:"maxDequeueCount"`
				VisibilityTimeout string `json:"visibilityTimeout"`
				MessageEncoding   string `json:"messageEncoding"`
			} `json:"queues"`
			EventHubs struct {
				MaxEventBatchSize int `json:"maxEventBatchSize"`
				PrefetchCount     int `json:"prefetchCount"`
			} `json:"eventHubs"`
		} `json:"extensions"`
	}
	readJSON(t, "../../host.json", &h)
	if h.Version != "2.0" || h.CustomHandler.Description.DefaultExecutablePath != "handler" {
		t.Errorf("host.json version %q, executable %q: want 2.0 and the staged binary \"handler\"", h.Version, h.CustomHandler.Description.DefaultExecutablePath)
	}
	if h.CustomHandler.EnableForwardingHTTPRequest {
		t.Error("enableForwardingHttpRequest must be false: all three functions speak the envelope protocol")
	}
	if h.ExtensionBundle.ID != "Microsoft.Azure.Functions.ExtensionBundle" || h.ExtensionBundle.Version != "[4.*, 5.0.0)" {
		t.Errorf("extension bundle %+v", h.ExtensionBundle)
	}
	if h.FunctionTimeout != "00:10:00" {
		t.Errorf("functionTimeout %q; INVOCATION_TIMEOUT's default (9m) is sized to stay below 10 minutes", h.FunctionTimeout)
	}
	if eh := h.Extensions.EventHubs; eh.MaxEventBatchSize < 1 || eh.MaxEventBatchSize > 100 || eh.PrefetchCount < eh.MaxEventBatchSize {
		t.Errorf("eventHubs %+v: the body limit admits 100 events; prefetch must cover a batch", eh)
	}
	q := h.Extensions.Queues
	if q.MaxDequeueCount != tenantqueue.DefaultMaxDequeueCount {
		t.Errorf("queues.maxDequeueCount %d, but TenantSweep takes delivery %d as the last: keep tenantqueue.DefaultMaxDequeueCount equal", q.MaxDequeueCount, tenantqueue.DefaultMaxDequeueCount)
	}
	if q.BatchSize < 1 || q.BatchSize > 32 || q.NewBatchThreshold == nil || *q.NewBatchThreshold < 0 {
		t.Errorf("queues %+v: batchSize must be 1 to 32, and newBatchThreshold set", q)
	}
	if !regexp.MustCompile(`^00:[0-5][0-9]:[0-5][0-9]$`).MatchString(q.VisibilityTimeout) || q.VisibilityTimeout == "00:00:00" {
		t.Errorf("queues.visibilityTimeout %q: want a pause of under an hour before a failed sweep is delivered again", q.VisibilityTimeout)
	}
	if q.MessageEncoding != "base64" {
		t.Errorf("queues.messageEncoding %q: tenantqueue.MaxMessageBytes assumes base64", q.MessageEncoding)
	}
}

// Every app setting a function.json names (%NAME%) must be set wherever the app runs: the host
// refuses to load a function whose binding names an unresolved setting.
func TestFunctionSettingsAreSetLocallyAndInAzure(t *testing.T) {
	files, err := filepath.Glob("../../functions/*/function.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("function.json files %v (%v)", files, err)
	}
	var sample struct {
		Values map[string]string `json:"Values"`
	}
	readJSON(t, "../../local.settings.sample.json", &sample)
	bicep, err := os.ReadFile("../../infra/main.bicep")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`%([A-Za-z_][A-Za-z0-9_]*)%`).FindAllStringSubmatch(string(b), -1) {
			if sample.Values[m[1]] == "" {
				t.Errorf("%s names %%%s%%, which local.settings.sample.json does not set", f, m[1])
			}
			if !strings.Contains(string(bicep), "name: '"+m[1]+"'") {
				t.Errorf("%s names %%%s%%, which infra/main.bicep does not set", f, m[1])
			}
		}
	}
}

// Only handler/graph may import msgraph-sdk-go (and kiota): it takes minutes and gigabytes to
// compile, and every other package must build and test in seconds.
func TestOnlyGraphImportsTheGraphSDK(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "graph" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if p := strings.Trim(imp.Path.Value, `"`); strings.Contains(p, "msgraph-sdk-go") || strings.Contains(p, "microsoft/kiota") {
				t.Errorf("%s imports %s; only handler/graph may", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
