package reconcile

import (
	"context"
	"sync"
)

// MemoryOwnership is an Ownership held in process memory, for a handler that has no storage. It is
// safe for concurrent use. What it records is lost when the process ends, so after a restart the
// managed policy is found by its display name again (and adopted anew when that name is unique), and
// it is not shared between instances.
type MemoryOwnership struct {
	mu       sync.Mutex
	id       string
	controls map[string]string
}

var _ ControlOwnership = (*MemoryOwnership)(nil)

// ManagedPolicyID returns the recorded id, or "".
func (m *MemoryOwnership) ManagedPolicyID(context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id, nil
}

// SetManagedPolicyID records id.
func (m *MemoryOwnership) SetManagedPolicyID(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.id = id
	return nil
}

// ControlPolicyIDs returns a copy of the ids recorded per control.
func (m *MemoryOwnership) ControlPolicyIDs(context.Context) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.controls))
	for k, v := range m.controls {
		out[k] = v
	}
	return out, nil
}

// SetControlPolicyID records id for control.
func (m *MemoryOwnership) SetControlPolicyID(_ context.Context, control, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.controls == nil {
		m.controls = map[string]string{}
	}
	m.controls[control] = id
	return nil
}
