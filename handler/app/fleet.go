package app

import (
	"github.com/caguard/caguard/handler/tenants"
)

// Fleet is the set of tenants one deployment guards, read from the tenant registry, with one
// reconciler per tenant. Deps.Fleet nil means the single tenant of Deps.Reconciler, exactly as
// before the registry existed.
type Fleet interface {
	// Tenants lists the registry's tenants, in the registry's order.
	Tenants() []tenants.Tenant
	// Reconciler returns the reconciler of tenant id (case-insensitive); ok is false when the tenant
	// is not in the registry.
	Reconciler(id string) (r Reconciler, ok bool)
}
