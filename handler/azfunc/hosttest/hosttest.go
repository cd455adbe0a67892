// Package hosttest plays the Functions host against a running handler: it builds invocation envelopes
// in the host's exact shapes (strings and arrays double-encoded, an Event Hub batch with dataType string
// as a string holding an array of event bodies, timer data as an object, HTTP data as Data.req), sends
// them the way the host does, and reads the answers as the host would. Tests and the local demo use it.
package hosttest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Host sends invocations to a handler listening at Base (http://127.0.0.1:port).
type Host struct {
	Base   string
	Client *http.Client
	seq    int
}

// Answer is a handler's answer to one invocation.
type Answer struct {
	Status  int                        `json:"-"`
	Outputs map[string]json.RawMessage `json:"Outputs"`
	Logs    []string                   `json:"Logs"`
	Error   string                     `json:"error"`
	Raw     []byte                     `json:"-"`
}

// HTTPOutput is an http output binding as the host reads it.
type HTTPOutput struct {
	StatusCode int               `json:"statusCode"`
	Body       string            `json:"body"`
	Headers    map[string]string `json:"headers"`
}

// HTTP decodes the named http output binding.
func (a Answer) HTTP(name string) (HTTPOutput, error) {
	var o HTTPOutput
	raw, ok := a.Outputs[name]
	if !ok {
		return o, fmt.Errorf("no output %q in %s", name, a.Raw)
	}
	err := json.Unmarshal(raw, &o)
	return o, err
}

// LogText joins the answer's Logs lines.
func (a Answer) LogText() string { return strings.Join(a.Logs, "\n") }

// Invoke posts {"Data":data,"Metadata":metadata} to /function with the host's headers. An answer that
// the host could not read (not JSON, wrong content type, empty) is an error.
func (h *Host) Invoke(function string, data, metadata map[string]any) (Answer, error) {
	body, err := json.Marshal(map[string]any{"Data": data, "Metadata": metadata})
	if err != nil {
		return Answer{}, err
	}
	return h.InvokeRaw(function, body)
}

// InvokeRaw posts body as it is, for malformed envelopes.
func (h *Host) InvokeRaw(function string, body []byte) (Answer, error) {
	h.seq++
	req, err := http.NewRequest(http.MethodPost, h.Base+"/"+function, bytes.NewReader(body))
	if err != nil {
		return Answer{}, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Azure-Functions-InvocationId", fmt.Sprintf("00000000-0000-4000-8000-%012d", h.seq))
	req.Header.Set("X-Azure-Functions-HostVersion", "4.1036.0")
	req.Header.Set("User-Agent", "Azure-Functions-Host/4.1036.0")
	c := h.Client
	if c == nil {
		c = &http.Client{Timeout: 2 * time.Minute}
	}
	resp, err := c.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return Answer{}, err
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return Answer{}, fmt.Errorf("%s answered Content-Type %q; the host fails such an invocation", function, ct)
	}
	a := Answer{Status: resp.StatusCode, Raw: raw}
	if err := json.Unmarshal(raw, &a); err != nil {
		return Answer{}, fmt.Errorf("%s answered what the host cannot read: %q", function, raw)
	}
	return a, nil
}

// WaitReady polls GET / every 25 ms, as the host does, until any answer arrives.
func WaitReady(base string, timeout time.Duration, exited <-chan error) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("handler exited before it was ready: %v", err)
		default:
		}
		resp, err := http.Get(base + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return errors.New("handler not ready in time")
}

// EventHubData is Data for an eventHubTrigger with cardinality many and dataType string: the binding
// value is a JSON string holding a JSON array of strings, each one event body.
func EventHubData(binding string, bodies ...string) map[string]any {
	if bodies == nil {
		bodies = []string{}
	}
	arr, _ := json.Marshal(bodies)
	return map[string]any{binding: string(arr)}
}

// EventHubMetadata is the batch metadata the Event Hubs extension adds for n events.
func EventHubMetadata(method string, n int) map[string]any {
	m := SysMetadata(method)
	seq, offs, times, nulls, props := make([]int64, n), make([]string, n), make([]string, n), make([]any, n), make([]map[string]any, n)
	for i := range n {
		seq[i] = int64(1000 + i)
		offs[i] = fmt.Sprint(4294967296 + 256*i)
		times[i] = "2026-11-20T08:00:00.123"
		props[i] = map[string]any{}
	}
	enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	m["CheckpointContext"] = map[string]any{"IsCheckpointingAfterInvocation": true}
	m["PartitionContext"] = map[string]any{"IsCheckpointingAfterInvocation": true, "FullyQualifiedNamespace": "caguard-audit.servicebus.windows.net",
		"EventHubName": "insights-logs-auditlogs", "ConsumerGroup": "caguard", "PartitionId": "0"}
	m["PartitionKeyArray"] = enc(nulls)
	m["OffsetArray"] = enc(offs)
	m["SequenceNumberArray"] = enc(seq)
	m["EnqueuedTimeUtcArray"] = enc(times)
	m["PropertiesArray"] = enc(props)
	m["RetryContext"] = map[string]any{"RetryCount": 0, "MaxRetryCount": 5, "Exception": nil}
	return m
}

// TimerData is Data for a timerTrigger; the schedule status is absent when the host does not monitor it.
func TimerData(binding string, pastDue bool) map[string]any {
	return map[string]any{binding: map[string]any{
		"Schedule":       map[string]any{"AdjustForDST": true},
		"ScheduleStatus": map[string]any{"Last": "2026-11-19T02:30:00+00:00", "Next": "2026-11-20T02:30:00+00:00", "LastUpdated": "2026-11-19T02:30:00.0012345+00:00"},
		"IsPastDue":      pastDue,
	}}
}

// HTTPData is Data for an httpTrigger in envelope mode. Body is left out when empty, as the host does
// without a Content-Length.
func HTTPData(binding, method, body string) map[string]any {
	req := map[string]any{
		"Url":     "https://caguard.azurewebsites.net/api/Evaluate?code=REDACTED",
		"Method":  method,
		"Query":   map[string]string{"code": "REDACTED"},
		"Headers": map[string][]string{"Accept": {"application/json"}, "Host": {"caguard.azurewebsites.net"}},
		"Params":  map[string]string{},
		"Identities": []any{map[string]any{"AuthenticationType": "WebJobsAuthLevel", "IsAuthenticated": true,
			"Claims": []any{map[string]any{"Type": "http://schemas.microsoft.com/2017/07/functions/claims/authlevel", "Value": "Function"}}}},
	}
	if body != "" {
		req["Body"] = body
		req["Headers"].(map[string][]string)["Content-Length"] = []string{fmt.Sprint(len(body))}
	}
	return map[string]any{binding: req}
}

// SysMetadata is the sys entry every invocation's Metadata carries.
func SysMetadata(method string) map[string]any {
	return map[string]any{"sys": map[string]any{"MethodName": method, "UtcNow": time.Now().UTC().Format(time.RFC3339Nano), "RandGuid": "6b0e3c1a-2f4d-4e5b-9c8d-7a6b5c4d3e2f"}}
}

// QueueMessage is one delivery of a Storage queue message, as the queue extension describes it.
type QueueMessage struct {
	Text            string // the content, after the extension undid its base64 messageEncoding
	ID              string
	PopReceipt      string
	DequeueCount    int
	InsertionTime   time.Time
	ExpirationTime  time.Time
	NextVisibleTime time.Time
}

// QueueData is Data for a queueTrigger bound as a string: the message text, which the host
// serialises once more, so it arrives as a JSON string.
func QueueData(binding string, m QueueMessage) map[string]any {
	return map[string]any{binding: m.Text}
}

// QueueMetadata is the Metadata the host sends for a queueTrigger delivery: the extension's binding
// data (Id, PopReceipt and DequeueCount double-encoded, JSON inside a string, as the host's
// GetHttpScriptInvocationContextValue does for primitives; the DateTimeOffset values as ISO-8601
// strings with their offset), then the top-level properties of a JSON message, copied over them
// (Utility.ApplyBindingData: a property named like a metadata key overwrites it), and sys.
func QueueMetadata(method string, m QueueMessage) map[string]any {
	md := SysMetadata(method)
	enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	hostTime := func(t time.Time) string { return t.UTC().Truncate(time.Second).Format("2006-01-02T15:04:05-07:00") }
	md["Id"] = enc(m.ID)
	md["PopReceipt"] = enc(m.PopReceipt)
	md["DequeueCount"] = enc(m.DequeueCount)
	md["InsertionTime"] = hostTime(m.InsertionTime)
	md["ExpirationTime"] = hostTime(m.ExpirationTime)
	md["NextVisibleTime"] = hostTime(m.NextVisibleTime)
	var props map[string]any
	if json.Unmarshal([]byte(m.Text), &props) == nil {
		for k, v := range props {
			switch v.(type) {
			case []any, nil:
				// arrays are not copied; nulls are skipped
			case map[string]any:
				md[k] = v // objects arrive as objects
			default:
				b, _ := json.Marshal(v)
				md[k] = string(b)
			}
		}
	}
	return md
}
