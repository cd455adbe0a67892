// Package alert delivers reconcile alerts to where people will see them: the process log, an incoming
// webhook (Microsoft Teams or Slack style) and an Event Hub. Each sink implements reconcile.AlertSink;
// the reconciler sends every alert to each configured sink in turn, so no sink depends on another.
//
// The contract every sink keeps:
//   - Send returns nil only when the destination accepted the alert, and an error with context otherwise;
//     the log sink cannot fail.
//   - Send is safe for concurrent use and honours its context: it never waits past the deadline.
//   - Errors and sink names never carry secrets. A webhook URL is a bearer credential (Teams and Slack put
//     the key in its query or path), so only its host is ever shown.
//   - Delivery is at least once: a webhook retry after a lost answer can deliver an alert twice. Receivers
//     may deduplicate on Alert.ID, which is stable for the same tenant, verdict and reasons.
//   - Alerts carry ids, names and policy fields only; the sinks add nothing else about the tenant.
package alert
