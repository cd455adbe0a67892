package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"

	"github.com/caguard/caguard/handler/reconcile"
)

var _ reconcile.AlertSink = (*EventHubSink)(nil)

// Publisher sends one event to an Event Hub. It is the seam under EventHubSink: the SDK's batch type
// can only be built from a live AMQP link, so the interface sits one level above it, and tests put a
// fake here instead of a broker.
type Publisher interface {
	Publish(ctx context.Context, ev *azeventhubs.EventData) error
	Close(ctx context.Context) error
}

// Event application properties, for consumers that route or filter without parsing the body.
const (
	PropAlertID  = "alertId"
	PropVerdict  = "verdict"
	PropTenantID = "tenantId"
	// PropTenantName is the tenant's registry display name, set only with a tenant registry.
	PropTenantName = "tenantName"
)

const contentTypeJSON = "application/json"

// EventHubSink publishes each alert as one JSON event (the Alert object) with content type
// application/json and the alertId, verdict and tenantId application properties.
type EventHubSink struct {
	pub  Publisher
	name string
}

// NewEventHubSink returns a sink that publishes to hub in namespace, signing in with cred. namespace is
// a namespace name ("contoso-alerts", taken to be in the public cloud), or the namespace's host name
// in any cloud ("contoso-alerts.servicebus.usgovcloudapi.net"); a pasted endpoint such as
// "sb://contoso-alerts.servicebus.windows.net/" is accepted too. Nothing is dialled here: the SDK
// connects on the first Send. Call Close when done.
func NewEventHubSink(namespace, hub string, cred azcore.TokenCredential) (*EventHubSink, error) {
	return newEventHubSink(namespace, hub, cred, nil)
}

// newEventHubSink lets tests add client options (a dial hook) without widening the public API.
func newEventHubSink(namespace, hub string, cred azcore.TokenCredential, opts *azeventhubs.ProducerClientOptions) (*EventHubSink, error) {
	fqdn, err := normalizeNamespace(namespace)
	if err != nil {
		return nil, err
	}
	if err := validateHub(hub); err != nil {
		return nil, err
	}
	if cred == nil {
		return nil, errors.New("event hub sink: a credential is required")
	}
	if opts == nil {
		opts = &azeventhubs.ProducerClientOptions{}
	}
	opts.ApplicationID = "caguard"
	// The SDK's defaults (3 retries from 4s up to 2 minutes) could hold an invocation for minutes; an
	// alert is worth a short retry, and the reconciler logs what was not delivered.
	opts.RetryOptions = azeventhubs.RetryOptions{MaxRetries: 2, RetryDelay: time.Second, MaxRetryDelay: 10 * time.Second}
	pc, err := azeventhubs.NewProducerClient(fqdn, hub, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("event hub %s/%s: create producer: %w", fqdn, hub, err)
	}
	return NewEventHubSinkWithPublisher(producerPublisher{pc: pc}, fqdn+"/"+hub), nil
}

// NewEventHubSinkWithPublisher returns a sink over any Publisher; name identifies the destination in
// logs, for example "namespace.servicebus.windows.net/hub".
func NewEventHubSinkWithPublisher(p Publisher, name string) *EventHubSink {
	return &EventHubSink{pub: p, name: name}
}

// Name implements reconcile.AlertSink.
func (s *EventHubSink) Name() string { return "eventhub:" + s.name }

// Send publishes the alert as one event.
func (s *EventHubSink) Send(ctx context.Context, a reconcile.Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode alert %s: %w", a.ID, err)
	}
	ct := contentTypeJSON
	ev := &azeventhubs.EventData{
		Body:        body,
		ContentType: &ct,
		Properties: map[string]any{
			PropAlertID:  a.ID,
			PropVerdict:  string(a.Verdict),
			PropTenantID: a.TenantID,
		},
	}
	if a.TenantName != "" {
		ev.Properties[PropTenantName] = a.TenantName
	}
	if err := s.pub.Publish(ctx, ev); err != nil {
		return fmt.Errorf("publish alert %s to event hub %s: %w", a.ID, s.name, err)
	}
	return nil
}

// Close releases the connection to the Event Hub, if one was opened.
func (s *EventHubSink) Close(ctx context.Context) error {
	if s == nil || s.pub == nil {
		return nil
	}
	if err := s.pub.Close(ctx); err != nil {
		return fmt.Errorf("close event hub %s: %w", s.name, err)
	}
	return nil
}

// producerPublisher is the real Publisher. ProducerClient in v2 sends batches only, so each event
// travels in a batch of one.
type producerPublisher struct {
	pc *azeventhubs.ProducerClient
}

func (p producerPublisher) Publish(ctx context.Context, ev *azeventhubs.EventData) error {
	batch, err := p.pc.NewEventDataBatch(ctx, nil)
	if err != nil {
		return fmt.Errorf("open batch: %w", err)
	}
	if err := batch.AddEventData(ev, nil); err != nil {
		if errors.Is(err, azeventhubs.ErrEventDataTooLarge) {
			return fmt.Errorf("event of %d bytes is larger than the hub accepts: %w", len(ev.Body), err)
		}
		return fmt.Errorf("add event to batch: %w", err)
	}
	if err := p.pc.SendEventDataBatch(ctx, batch, nil); err != nil {
		return fmt.Errorf("send batch: %w", err)
	}
	return nil
}

func (p producerPublisher) Close(ctx context.Context) error { return p.pc.Close(ctx) }

// publicCloudSuffix completes a bare namespace name. Sovereign clouds use other suffixes
// (servicebus.usgovcloudapi.net, servicebus.chinacloudapi.cn), so a name with a dot is taken as the
// full host name and kept as given.
const publicCloudSuffix = ".servicebus.windows.net"

// normalizeNamespace turns what an operator may write into the host name the SDK wants.
func normalizeNamespace(ns string) (string, error) {
	s := strings.TrimSpace(ns)
	if s == "" {
		return "", errors.New("event hub namespace: empty")
	}
	// A connection string holds a key: refuse it without echoing it.
	if strings.ContainsAny(s, ";=") || strings.Contains(strings.ToLower(s), "sharedaccesskey") {
		return "", errors.New("event hub namespace: looks like a connection string; give the namespace name or host name (caguard signs in with its identity, not a key)")
	}
	lower := strings.ToLower(s)
	for _, scheme := range []string{"sb://", "amqps://", "https://"} {
		if strings.HasPrefix(lower, scheme) {
			lower = strings.TrimSuffix(lower[len(scheme):], "/")
			break
		}
	}
	lower = strings.TrimSuffix(lower, ".") // a fully qualified name may end in the root's dot
	if strings.ContainsAny(lower, "/:?#@ \t") {
		return "", fmt.Errorf("event hub namespace %q: want a namespace name or host name, without scheme, port or path", s)
	}
	if !strings.Contains(lower, ".") {
		if !validNamespaceName(lower) {
			return "", fmt.Errorf("event hub namespace %q: a namespace name is 6 to 50 letters, digits and hyphens, starting with a letter and ending with a letter or digit", s)
		}
		return lower + publicCloudSuffix, nil
	}
	if len(lower) > 253 {
		return "", fmt.Errorf("event hub namespace %q: host name longer than 253 characters", s)
	}
	for _, label := range strings.Split(lower, ".") {
		if !validLabel(label) {
			return "", fmt.Errorf("event hub namespace %q: not a valid host name (each dot-separated part is 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen)", s)
		}
	}
	return lower, nil
}

func validNamespaceName(s string) bool {
	if len(s) < 6 || len(s) > 50 || !validLabel(s) {
		return false
	}
	return s[0] >= 'a' && s[0] <= 'z'
}

func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// validateHub applies the Event Hub naming rule. The value is not echoed: a misplaced connection string
// would carry a key.
func validateHub(hub string) error {
	ok := len(hub) > 0 && len(hub) <= 256 && isAlnum(rune(hub[0])) && isAlnum(rune(hub[len(hub)-1]))
	for _, r := range hub {
		if !isAlnum(r) && r != '.' && r != '-' && r != '_' {
			ok = false
		}
	}
	if !ok {
		return errors.New("event hub name: must be 1 to 256 letters, digits, periods, hyphens or underscores, starting and ending with a letter or digit")
	}
	return nil
}

func isAlnum(r rune) bool {
	return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}
