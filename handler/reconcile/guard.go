package reconcile

import (
	"github.com/caguard/caguard/handler/capolicy"
)

// guard is one catalogue control as the engine restores it: the policy caguard owns for it
// (capolicy.DesiredFor) and how a policy is judged against it. Every safety rule of the package
// (owned, restoreFields, keepBreakGlass, apply with its read-back) takes a guard, so every control is
// restored by the same code; azure-management-mfa is judged by Evaluate, exactly as before the
// catalogue, and every other control by EvaluateControl.
type guard struct {
	control capolicy.Control
	cfg     capolicy.Config
}

// defaultGuard is the guard of azure-management-mfa under cfg.
func defaultGuard(cfg capolicy.Config) guard {
	c, _ := capolicy.ControlByID(capolicy.ControlAzureManagementMFA)
	return guard{control: c, cfg: cfg}
}

// guardFor is the guard of c. A control other than azure-management-mfa is judged without R20, as
// judgeControls judges it: access-review findings are collected for the default control's policies.
func guardFor(cfg capolicy.Config, c capolicy.Control) guard {
	if c.ID == capolicy.ControlAzureManagementMFA {
		return guard{control: c, cfg: cfg}
	}
	cfg.RequireExclusionReview = false
	return guard{control: c, cfg: cfg}
}

func (g guard) isDefault() bool { return g.control.ID == capolicy.ControlAzureManagementMFA }

// desired is the definition caguard writes for the control, report-only.
func (g guard) desired() capolicy.Policy { return capolicy.DesiredFor(g.cfg, g.control) }

// name is the display name of the control's managed policy.
func (g guard) name() string { return capolicy.ManagedNameFor(g.cfg, g.control) }

// judge returns the tenant verdict on the control.
func (g guard) judge(t capolicy.Tenant) capolicy.Report {
	if g.isDefault() {
		return capolicy.Evaluate(t, g.cfg)
	}
	return capolicy.EvaluateControl(t, g.cfg, g.control).Report
}

// judgeOne judges p alone, with t's group members and authentication strengths.
func (g guard) judgeOne(p capolicy.Policy, t capolicy.Tenant) capolicy.Report {
	return g.judge(capolicy.Tenant{
		Policies:                []capolicy.Policy{p},
		GroupMembers:            t.GroupMembers,
		AuthenticationStrengths: t.AuthenticationStrengths,
	})
}

// verdictFields are the top-level properties that can decide the control's verdict: state,
// conditions and grant controls, and session controls for a control that requires some.
func (g guard) verdictFields() []string {
	if g.control.Session != nil {
		return []string{"state", "conditions", "grantControls", "sessionControls"}
	}
	return []string{"state", "conditions", "grantControls"}
}

// enforcedBlock reports whether writing a would leave policy own (nil for a create) enabled with a
// block grant: caguard never writes a policy that blocks sign-in in enforced mode.
func enforcedBlock(a Action, own *capolicy.Policy) bool {
	if a.Kind != ActionCreate && a.Kind != ActionUpdate {
		return false
	}
	state, grant := a.desired.State, a.desired.GrantControls
	if a.Kind == ActionUpdate && own != nil {
		if !containsField(a.Fields, "state") {
			state = own.State
		}
		if !containsField(a.Fields, "grantControls") {
			grant = own.GrantControls
		}
	}
	return state == capolicy.StateEnabled && grant != nil && containsFold(grant.BuiltInControls, "block")
}

func containsField(fields []string, f string) bool {
	for _, v := range fields {
		if v == f {
			return true
		}
	}
	return false
}

// lacksLicence reports whether the verdict on a control says the tenant's licence cannot serve
// it: no policy caguard writes would take effect, so guarding writes nothing.
func lacksLicence(rep capolicy.Report) bool {
	for _, p := range rep.Policies {
		for _, r := range p.Reasons {
			if r.Code == capolicy.CodeLicenceMissing {
				return true
			}
		}
	}
	return false
}
