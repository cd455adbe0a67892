package alert

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
)

// fakePublisher records what it is given and answers with err.
type fakePublisher struct {
	mu     sync.Mutex
	events []*azeventhubs.EventData
	err    error
	closed int
}

func (p *fakePublisher) Publish(_ context.Context, ev *azeventhubs.EventData) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, ev)
	return p.err
}

func (p *fakePublisher) Close(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed++
	return p.err
}

// fakeCredential counts token requests; the sink must not make any before it sends.
type fakeCredential struct{ calls atomic.Int32 }

func (c *fakeCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls.Add(1)
	return azcore.AccessToken{Token: "fake", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestEventHubSink(t *testing.T) {
	t.Run("publishes one event with the alert JSON and properties", func(t *testing.T) {
		pub := &fakePublisher{}
		s := NewEventHubSinkWithPublisher(pub, "contoso-alerts.servicebus.windows.net/caguard-alerts")
		a := sampleAlert()
		if err := s.Send(context.Background(), a); err != nil {
			t.Fatalf("Send: got %v, want nil", err)
		}
		if len(pub.events) != 1 {
			t.Fatalf("events: got %d, want 1", len(pub.events))
		}
		ev := pub.events[0]
		want, _ := json.Marshal(a)
		if string(ev.Body) != string(want) {
			t.Errorf("body: got %s, want %s", ev.Body, want)
		}
		if ev.ContentType == nil || *ev.ContentType != "application/json" {
			t.Errorf("content type: got %v, want application/json", ev.ContentType)
		}
		wantProps := map[string]any{
			"alertId":  "3f2a9c1be07d4a55",
			"verdict":  "non-compliant",
			"tenantId": "11111111-2222-3333-4444-555555555555",
		}
		if !equalJSON(ev.Properties, wantProps) {
			t.Errorf("properties: got %v, want %v", ev.Properties, wantProps)
		}
		if got, want := s.Name(), "eventhub:contoso-alerts.servicebus.windows.net/caguard-alerts"; got != want {
			t.Errorf("Name: got %q, want %q", got, want)
		}
	})

	t.Run("surfaces publisher errors with context", func(t *testing.T) {
		boom := errors.New("link detached")
		s := NewEventHubSinkWithPublisher(&fakePublisher{err: boom}, "ns/hub")
		err := s.Send(context.Background(), sampleAlert())
		if !errors.Is(err, boom) {
			t.Fatalf("Send: got %v, want an error wrapping %v", err, boom)
		}
		if want := "publish alert 3f2a9c1be07d4a55 to event hub ns/hub: link detached"; err.Error() != want {
			t.Errorf("Send: got %q, want %q", err, want)
		}
	})

	t.Run("close closes the publisher and surfaces its error", func(t *testing.T) {
		pub := &fakePublisher{}
		s := NewEventHubSinkWithPublisher(pub, "ns/hub")
		if err := s.Close(context.Background()); err != nil || pub.closed != 1 {
			t.Errorf("Close: got %v after %d close(s), want nil after 1", err, pub.closed)
		}
		pub.err = errors.New("already closed")
		if err := s.Close(context.Background()); !errors.Is(err, pub.err) {
			t.Errorf("Close: got %v, want an error wrapping %v", err, pub.err)
		}
	})
}

func TestNewEventHubSinkDoesNotConnect(t *testing.T) {
	// Every connection the SDK makes goes through NewWebSocketConn when it is set, so counting its
	// calls counts dials without a network.
	var dials atomic.Int32
	opts := &azeventhubs.ProducerClientOptions{
		NewWebSocketConn: func(context.Context, azeventhubs.WebSocketConnParams) (net.Conn, error) {
			dials.Add(1)
			return nil, errors.New("no network in tests")
		},
	}
	cred := &fakeCredential{}
	s, err := newEventHubSink("contoso-alerts", "caguard-alerts", cred, opts)
	if err != nil {
		t.Fatalf("newEventHubSink: got %v, want nil", err)
	}
	if got, want := s.Name(), "eventhub:contoso-alerts.servicebus.windows.net/caguard-alerts"; got != want {
		t.Errorf("Name: got %q, want %q", got, want)
	}
	if dials.Load() != 0 || cred.calls.Load() != 0 {
		t.Errorf("after construction: got %d dial(s) and %d token request(s), want none", dials.Load(), cred.calls.Load())
	}

	// The hook does see a send: without this, zero dials above would prove nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := s.Send(ctx, sampleAlert()); err == nil {
		t.Error("Send without a network: got nil, want an error")
	} else {
		t.Logf("send error: %v", err)
	}
	if dials.Load() == 0 {
		t.Error("Send did not dial through the hook; the no-dial check above is void")
	}

	if err := s.Close(context.Background()); err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
}

func TestNewEventHubSinkRejectsBadSettings(t *testing.T) {
	cred := &fakeCredential{}
	tests := []struct {
		name      string
		namespace string
		hub       string
		cred      azcore.TokenCredential
		wantErr   string
	}{
		{"an empty namespace", "", "hub", cred, "event hub namespace: empty"},
		{"a namespace with a path", "contoso.servicebus.windows.net/hub", "hub", cred, "without scheme, port or path"},
		{"an empty hub", "contoso-alerts", "", cred, "event hub name: must be"},
		{"a hub with a slash", "contoso-alerts", "hub/partitions/0", cred, "event hub name: must be"},
		{"a connection string as the hub", "contoso-alerts", "Endpoint=sb://x/;SharedAccessKey=SECRET", cred, "event hub name: must be"},
		{"no credential", "contoso-alerts", "hub", nil, "a credential is required"},
	}
	for _, tt := range tests {
		t.Run("rejects "+tt.name, func(t *testing.T) {
			_, err := NewEventHubSink(tt.namespace, tt.hub, tt.cred)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error shows the key: %v", err)
			}
		})
	}
}

func TestNormalizeNamespace(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{name: "a bare name gets the public cloud suffix", in: "contoso-alerts", want: "contoso-alerts.servicebus.windows.net"},
		{name: "a public cloud host name is kept", in: "contoso-alerts.servicebus.windows.net", want: "contoso-alerts.servicebus.windows.net"},
		{name: "a US Government host name is kept", in: "contoso-alerts.servicebus.usgovcloudapi.net", want: "contoso-alerts.servicebus.usgovcloudapi.net"},
		{name: "a China cloud host name is kept", in: "contoso-alerts.servicebus.chinacloudapi.cn", want: "contoso-alerts.servicebus.chinacloudapi.cn"},
		{name: "upper case and spaces are tidied", in: "  Contoso-Alerts.ServiceBus.Windows.NET ", want: "contoso-alerts.servicebus.windows.net"},
		{name: "a pasted sb endpoint is accepted", in: "sb://contoso-alerts.servicebus.windows.net/", want: "contoso-alerts.servicebus.windows.net"},
		{name: "a trailing root dot is dropped", in: "contoso-alerts.servicebus.windows.net.", want: "contoso-alerts.servicebus.windows.net"},
		{name: "an empty value is an error", in: " ", wantErr: "event hub namespace: empty"},
		{name: "a connection string is refused without echoing its key", in: "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=SECRET", wantErr: "looks like a connection string"},
		{name: "a port is an error", in: "contoso-alerts.servicebus.windows.net:5671", wantErr: "without scheme, port or path"},
		{name: "an https URL with a path is an error", in: "https://contoso-alerts.servicebus.windows.net/hub", wantErr: "without scheme, port or path"},
		{name: "another scheme is an error", in: "amqp://contoso-alerts.servicebus.windows.net", wantErr: "without scheme, port or path"},
		{name: "a space inside is an error", in: "contoso alerts", wantErr: "without scheme, port or path"},
		{name: "a short bare name is an error", in: "cont", wantErr: "6 to 50 letters"},
		{name: "a bare name starting with a digit is an error", in: "1contoso", wantErr: "starting with a letter"},
		{name: "an underscore is an error", in: "contoso_alerts", wantErr: "6 to 50 letters"},
		{name: "an empty label is an error", in: "contoso..windows.net", wantErr: "not a valid host name"},
		{name: "a label ending in a hyphen is an error", in: "contoso-.servicebus.windows.net", wantErr: "not a valid host name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := normalizeNamespace(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got (%q, %v), want an error containing %q", got, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "SECRET") {
					t.Errorf("error shows the key: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got (%q, %v), want %q", got, err, tt.want)
			}
		})
	}
}
