package capolicy

import (
	"strconv"
	"strings"
)

// ServicePlan is a licensed feature as the tenant's subscriptions name it: the service plan of
// GET /subscribedSkus (servicePlans[].servicePlanId and servicePlanName, "Product names and service
// plan identifiers for licensing" in the Entra docs) and the product an admin buys for it.
type ServicePlan struct {
	ID      string `json:"servicePlanId"`
	Name    string `json:"servicePlanName"`
	Product string `json:"product"`
}

// PlanEntraIDP2 is Microsoft Entra ID P2's service plan (AAD_PREMIUM_P2). It comes with Entra ID P2,
// Enterprise Mobility + Security E5 and Microsoft 365 E5 alike, which is why caguard looks for the plan
// and not for a SKU. Identity Protection's risk conditions need it: "Microsoft Entra ID P2 is required
// to include Identity Protection risk in Conditional Access policies" (Entra docs, "Plan a Microsoft
// Entra ID Protection deployment").
var PlanEntraIDP2 = ServicePlan{ID: "eec0eb4f-6444-4f95-aba0-50c24d67f998", Name: "AAD_PREMIUM_P2", Product: "Microsoft Entra ID P2"}

// SubscribedSku is one of the tenant's subscriptions as GET /subscribedSkus answers it, reduced to
// what a licence check reads (subscribedSku and servicePlanInfo resource types, Graph v1.0).
type SubscribedSku struct {
	SkuID         string `json:"skuId"`
	SkuPartNumber string `json:"skuPartNumber"`
	// CapabilityStatus is Enabled, Warning (in its grace period, still working), Suspended, Deleted
	// or LockedOut.
	CapabilityStatus string            `json:"capabilityStatus"`
	ServicePlans     []ServicePlanInfo `json:"servicePlans"`
}

// ServicePlanInfo is one service plan of a subscription. ProvisioningStatus is Success when the
// service is fully provisioned; Disabled, Error, PendingInput, PendingActivation and
// PendingProvisioning all mean it is not working yet (or any more).
type ServicePlanInfo struct {
	ServicePlanID      string `json:"servicePlanId"`
	ServicePlanName    string `json:"servicePlanName"`
	ProvisioningStatus string `json:"provisioningStatus"`
}

// Licences are the tenant's subscriptions. A nil *Licences means they were not read (not asked for,
// or Graph refused): whether a licence is present is then unknown, and no control is judged on it.
type Licences struct {
	SKUs []SubscribedSku
}

// Has reports whether some subscription that works (capabilityStatus Enabled or Warning) has plan
// fully provisioned (provisioningStatus Success). A suspended, deleted or locked-out subscription,
// and a plan that is disabled or pending, provide nothing. Values compare without regard to case.
func (l *Licences) Has(plan ServicePlan) bool {
	if l == nil {
		return false
	}
	for _, s := range l.SKUs {
		status := strings.TrimSpace(s.CapabilityStatus)
		if !strings.EqualFold(status, "Enabled") && !strings.EqualFold(status, "Warning") {
			continue
		}
		for _, p := range s.ServicePlans {
			if strings.EqualFold(strings.TrimSpace(p.ServicePlanID), plan.ID) &&
				strings.EqualFold(strings.TrimSpace(p.ProvisioningStatus), "Success") {
				return true
			}
		}
	}
	return false
}

// LicenceStatus is a control's licence finding: what it needs, and whether the tenant has it (nil
// when the subscriptions could not be read, so it is not known).
type LicenceStatus struct {
	Required      string `json:"required"`
	ServicePlan   string `json:"servicePlan"`
	ServicePlanID string `json:"servicePlanId"`
	Present       *bool  `json:"present"`
}

// Missing reports whether the tenant is known to lack the licence.
func (s *LicenceStatus) Missing() bool { return s != nil && s.Present != nil && !*s.Present }

// NeedsLicences reports whether any of controls needs a licence, so that the subscriptions must be read.
func NeedsLicences(controls []Control) bool {
	for _, c := range controls {
		if c.Licence != nil {
			return true
		}
	}
	return false
}

const msgLicenceMissing = "The control needs {product} (service plan {plan}), which no working subscription of the tenant provides, so Entra does not apply what this policy would need to meet it."

// licenceStatus is c's licence finding on t, nil for a control that needs none.
func licenceStatus(t Tenant, c Control) *LicenceStatus {
	if c.Licence == nil {
		return nil
	}
	s := &LicenceStatus{Required: c.Licence.Product, ServicePlan: c.Licence.Name, ServicePlanID: c.Licence.ID}
	if t.Licences != nil {
		has := t.Licences.Has(*c.Licence)
		s.Present = &has
	}
	return s
}

// licenceMissingSummary is the tenant verdict's sentence for a control the tenant lacks the licence of.
func licenceMissingSummary(c Control) string {
	return "Licence missing: " + strconv.Quote(c.Title) + " needs " + c.Licence.Product + ", which the tenant does not have."
}
