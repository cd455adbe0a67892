package reconcile

import "context"

// Ownership remembers which Conditional Access policy caguard owns, across runs and instances. A
// display name can be squatted (anyone may create a second policy with the managed name); an id that
// caguard recorded when it created or adopted the policy cannot.
type Ownership interface {
	// ManagedPolicyID returns the recorded id, or "" when none is recorded yet.
	ManagedPolicyID(ctx context.Context) (string, error)
	// SetManagedPolicyID records id as the managed policy, after caguard created or adopted it.
	SetManagedPolicyID(ctx context.Context, id string) error
}

// ControlOwnership is an Ownership that also records the managed policy of each catalogue control
// other than azure-management-mfa, whose id stays with ManagedPolicyID. Without it those controls'
// policies are found by their display names alone.
type ControlOwnership interface {
	Ownership
	// ControlPolicyIDs returns the recorded id of each control's managed policy, by control id;
	// a control with none recorded is absent.
	ControlPolicyIDs(ctx context.Context) (map[string]string, error)
	// SetControlPolicyID records id as the managed policy of control, after caguard created or
	// adopted it.
	SetControlPolicyID(ctx context.Context, control, id string) error
}

// WriterLock lets one reconcile that may write run at a time across every instance of the app: Flex
// Consumption runs the event, timer and HTTP functions on separate instances, so an in-process mutex
// alone cannot stop two runs from both creating the managed policy.
type WriterLock interface {
	// Lock blocks until the caller holds the lock, or fails when ctx ends first. The returned context
	// derives from ctx and is cancelled if the lock is lost while held (a renewal failed), so writes
	// stop. unlock releases the lock; it is safe to call once, after which held is cancelled.
	Lock(ctx context.Context) (held context.Context, unlock func(), err error)
}
