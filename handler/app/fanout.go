package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/azfunc"
	"github.com/caguard/caguard/handler/reconcile"
	"github.com/caguard/caguard/handler/tenantqueue"
)

// The nightly fan-out. With a tenant registry (Deps.Fleet), NightlySweep does not sweep inline: it
// puts one tenantqueue.Message per tenant on the tenant sweep queue through its output binding
// "sweeps", and TenantSweep, triggered by that queue, sweeps the one tenant each message names. The
// platform then does the rest: Flex Consumption scales TenantSweep out on its own instances as the
// queue grows, the queue extension runs a batch of messages at once on each, and a failed delivery
// comes back after visibilityTimeout (host.json). Without a registry nothing is written to the queue
// and NightlySweep sweeps the single tenant inline, as before the registry existed.
//
// Poison messages, with the reason. The queue extension moves a message whose last delivery
// (DequeueCount reaching maxDequeueCount) fails to "<queue>-poison", but bare: the reason is only in
// that invocation's log. So TenantSweep gives up on a message itself: a malformed message at once, a
// permanent failure at once, a retriable failure on its last delivery. It writes a
// tenantqueue.Poison record ({reason, detail, message, ...}) to the poison queue through its output
// binding "poison" and completes the invocation, so the extension deletes the original instead of
// moving it a second time. Only what TenantSweep cannot answer for (a crash, a timeout that restarts
// the handler, a last delivery the handler did not recognise as last) still reaches the poison queue
// bare, the platform's way.
const (
	FuncTenantSweep = "TenantSweep"

	bindingSweeps = "sweeps" // NightlySweep's queue output: the tenant sweep queue
	bindingSweep  = "sweep"  // TenantSweep's queue trigger
	bindingPoison = "poison" // TenantSweep's queue output: the tenant sweep queue's poison queue
)

// Fanout configures the nightly fan-out; the zero value is the defaults.
type Fanout struct {
	// MaxDequeueCount is the queue extension's maxDequeueCount: host.json's
	// extensions.queues.maxDequeueCount, or the app setting that overrides it
	// (AzureFunctionsJobHost__extensions__queues__maxDequeueCount). 0 means
	// tenantqueue.DefaultMaxDequeueCount, host.json's value.
	MaxDequeueCount int
}

func (f Fanout) maxDequeueCount() int {
	if f.MaxDequeueCount > 0 {
		return f.MaxDequeueCount
	}
	return tenantqueue.DefaultMaxDequeueCount
}

func (d Deps) now() time.Time {
	if d.Now != nil {
		return d.Now().UTC()
	}
	return time.Now().UTC()
}

// fanOut answers NightlySweep with one message per registry tenant on the "sweeps" output. An
// array given to a queue output binding is written as one message per element (Azure Functions
// custom handlers docs, the response payload's "myQueueOutput": [...]; the queue output binding docs,
// "use an array to return more than one message"). Each element is the message's JSON text: a string
// that holds '{' and '"' is never taken for base64, which the host would decode to bytes first
// (DefaultHttpWorkerService.GetBindingValue).
func (d Deps) fanOut(inv *azfunc.Invocation) (*azfunc.Result, error) {
	at := d.now()
	tenants := d.Fleet.Tenants()
	msgs := make([]string, 0, len(tenants))
	for i, t := range tenants {
		text, err := tenantqueue.New(t.ID, at, tenantqueue.ReasonNightlySweep).Encode()
		if err != nil {
			// The registry checked every id when it was read, so this is not expected; if it happens
			// the tenant is named, never skipped in silence, and the others are still enqueued.
			inv.Log.Error("tenant cannot be enqueued for its sweep", zap.Int("index", i), zap.Error(err))
			inv.Logf("tenant %d of the registry cannot be enqueued for its sweep: %v", i, err)
			continue
		}
		msgs = append(msgs, text)
	}
	inv.Logf("nightly sweep: %d of %d tenant(s) enqueued for %s", len(msgs), len(tenants), FuncTenantSweep)
	if len(msgs) == 0 {
		return &azfunc.Result{}, nil
	}
	return &azfunc.Result{Outputs: map[string]any{bindingSweeps: msgs}}, nil
}

// tenantSweep judges, and where the tenant's mode says so restores, the tenant one queue message
// names. See the comment at the top of this file for what goes to the poison queue and when.
func (d Deps) tenantSweep(ctx context.Context, inv *azfunc.Invocation) (*azfunc.Result, error) {
	q, err := inv.QueueTrigger(bindingSweep)
	if err != nil {
		return d.poison(inv, &azfunc.QueueMessage{}, "", tenantqueue.PoisonMalformed, "the invocation carries no sweep message")
	}
	msg, err := tenantqueue.Parse([]byte(q.Text))
	if err != nil {
		return d.poison(inv, q, "", tenantqueue.PoisonMalformed, err.Error())
	}
	r, ok := d.tenantReconciler(msg.TenantID)
	if !ok {
		// A tenant removed from the registry after the sweep was enqueued: nothing to do, and
		// nothing a retry could change, so the message is done with.
		inv.Log.Warn("sweep message for a tenant not in the registry dropped", zap.String("tenantId", msg.TenantID), zap.String("messageId", q.ID))
		inv.Logf("tenant %s is not in the registry: sweep message %s dropped", msg.TenantID, q.ID)
		return &azfunc.Result{}, nil
	}
	maxDeliveries := d.Fanout.maxDequeueCount()
	inv.Logf("sweep of tenant %s (%s at %s), delivery %d of at most %d", msg.TenantID, msg.Reason, msg.SweepAt.Format(time.RFC3339), q.DequeueCount, maxDeliveries)
	// Before the last delivery a failure a retry can fix is delivered again, so only the last alerts it:
	// a tenant whose Graph is down all night raises one failure alert, not maxDequeueCount.
	out, err := r.Reconcile(ctx, reconcile.Request{Trigger: reconcile.TriggerSweep, Act: true, RetryPending: q.DequeueCount < maxDeliveries})
	if err != nil {
		retriable := azfunc.IsRetriable(err)
		if retriable && q.DequeueCount < maxDeliveries {
			// Fail the invocation: the extension makes the message visible again after
			// visibilityTimeout and delivers it again with DequeueCount one higher.
			return nil, err
		}
		reason := tenantqueue.PoisonPermanent
		if retriable {
			reason = tenantqueue.PoisonRetriesExhausted
		}
		inv.Log.Error("tenant sweep failed; the message goes to the poison queue", zap.String("tenantId", msg.TenantID),
			zap.String("reason", reason), zap.Int("dequeueCount", q.DequeueCount), zap.Error(err))
		return d.poison(inv, q, msg.TenantID, reason, azfunc.PublicMessage(err))
	}
	logOutcome(inv, out)
	return &azfunc.Result{}, nil
}

// tenantReconciler is the reconciler of tenant id: the registry's, or without a registry the single
// tenant's when id is AZURE_TENANT_ID.
func (d Deps) tenantReconciler(id string) (Reconciler, bool) {
	if d.Fleet != nil {
		return d.Fleet.Reconciler(id)
	}
	if d.Reconciler != nil && d.TenantID != "" && strings.EqualFold(id, d.TenantID) {
		return d.Reconciler, true
	}
	return nil, false
}

// poison answers with the Poison record of q on the "poison" output and completes the invocation,
// so that the extension deletes q rather than moving it bare.
func (d Deps) poison(inv *azfunc.Invocation, q *azfunc.QueueMessage, tenantID, reason, detail string) (*azfunc.Result, error) {
	p := tenantqueue.Poison{Reason: reason, Detail: detail, TenantID: tenantID, Message: q.Text, MessageID: q.ID,
		DequeueCount: q.DequeueCount, PoisonedAt: d.now()}
	if !q.InsertionTime.IsZero() {
		t := q.InsertionTime
		p.InsertionTime = &t
	}
	text, err := p.Encode()
	if err != nil {
		// Fail the delivery rather than complete it without a record: the message stays on the
		// queue, and the extension's own poison handling still applies.
		return nil, retryLater{fmt.Errorf("poison record: %w", err)}
	}
	inv.Log.Warn("sweep message moved to the poison queue", zap.String("messageId", q.ID), zap.String("reason", reason), zap.String("detail", detail))
	inv.Logf("sweep message %s moved to the poison queue: %s: %s", q.ID, reason, detail)
	return &azfunc.Result{Outputs: map[string]any{bindingPoison: text}}, nil
}

// retryLater is an error whose invocation should fail, so the host delivers it again.
type retryLater struct{ err error }

func (e retryLater) Error() string   { return e.err.Error() }
func (e retryLater) Unwrap() error   { return e.err }
func (e retryLater) Retriable() bool { return true }
