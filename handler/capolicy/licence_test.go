package capolicy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// sku is a subscription holding the plans, as GET /subscribedSkus answers one.
func sku(part, status string, plans ...ServicePlanInfo) SubscribedSku {
	return SubscribedSku{SkuID: "00000000-0000-4000-8000-0000000005c0", SkuPartNumber: part, CapabilityStatus: status, ServicePlans: plans}
}

func plan(p ServicePlan, status string) ServicePlanInfo {
	return ServicePlanInfo{ServicePlanID: p.ID, ServicePlanName: p.Name, ProvisioningStatus: status}
}

var planP1 = ServicePlan{ID: "41781fb2-bc02-4b7c-bd55-b576c07bb09d", Name: "AAD_PREMIUM", Product: "Microsoft Entra ID P1"}

func TestRiskControlsNeedEntraIDP2AndNoOtherControlDoes(t *testing.T) {
	for _, c := range Catalogue() {
		risk := len(c.Conditions.UserRiskLevels) > 0 || len(c.Conditions.SignInRiskLevels) > 0
		switch {
		case risk && (c.Licence == nil || *c.Licence != PlanEntraIDP2):
			t.Errorf("%s has risk conditions and needs licence %+v, want %+v", c.ID, c.Licence, PlanEntraIDP2)
		case !risk && c.Licence != nil:
			t.Errorf("%s needs licence %+v; only the risk controls need more than Entra ID P1", c.ID, c.Licence)
		}
	}
	if c, _ := ControlByID(DefaultControls); NeedsLicences([]Control{c}) {
		t.Error("the default control needs a licence: the default run would read subscriptions")
	}
	if !NeedsLicences(Catalogue()) {
		t.Error("CONTROLS=all needs no licence read")
	}
}

func TestLicenceJudging(t *testing.T) {
	p2 := PlanEntraIDP2
	cases := []struct {
		name     string
		licences *Licences
		present  *bool // nil: unknown
	}{
		{"P2 on an enabled subscription is present", &Licences{SKUs: []SubscribedSku{sku("AAD_PREMIUM_P2", "Enabled", plan(p2, "Success"))}}, ptr(true)},
		{"P2 inside E5 is present", &Licences{SKUs: []SubscribedSku{sku("SPE_E5", "Enabled", plan(planP1, "Success"), plan(p2, "Success"))}}, ptr(true)},
		{"a subscription in its grace period still provides P2", &Licences{SKUs: []SubscribedSku{sku("EMSPREMIUM", "Warning", plan(p2, "Success"))}}, ptr(true)},
		{"values compare without regard to case", &Licences{SKUs: []SubscribedSku{sku("AAD_PREMIUM_P2", "enabled", ServicePlanInfo{ServicePlanID: strings.ToUpper(p2.ID), ProvisioningStatus: "success"})}}, ptr(true)},
		{"a tenant with P1 only lacks P2", &Licences{SKUs: []SubscribedSku{sku("AAD_PREMIUM", "Enabled", plan(planP1, "Success"))}}, ptr(false)},
		{"a tenant with no subscription lacks P2", &Licences{SKUs: []SubscribedSku{}}, ptr(false)},
		{"a suspended subscription provides nothing", &Licences{SKUs: []SubscribedSku{sku("AAD_PREMIUM_P2", "Suspended", plan(p2, "Success"))}}, ptr(false)},
		{"a locked-out subscription provides nothing", &Licences{SKUs: []SubscribedSku{sku("AAD_PREMIUM_P2", "LockedOut", plan(p2, "Success"))}}, ptr(false)},
		{"a deleted subscription provides nothing", &Licences{SKUs: []SubscribedSku{sku("AAD_PREMIUM_P2", "Deleted", plan(p2, "Success"))}}, ptr(false)},
		{"a disabled plan provides nothing", &Licences{SKUs: []SubscribedSku{sku("SPE_E5", "Enabled", plan(planP1, "Success"), plan(p2, "Disabled"))}}, ptr(false)},
		{"a plan pending activation provides nothing", &Licences{SKUs: []SubscribedSku{sku("SPE_E5", "Enabled", plan(p2, "PendingActivation"))}}, ptr(false)},
		{"a suspended P2 beside a working one is present", &Licences{SKUs: []SubscribedSku{sku("AAD_PREMIUM_P2", "Suspended", plan(p2, "Success")), sku("SPE_E5", "Enabled", plan(p2, "Success"))}}, ptr(true)},
		{"unread subscriptions (403) leave the licence unknown", nil, nil},
	}
	for _, id := range []string{ControlUserRiskPolicy, ControlSignInRiskPolicy} {
		c, _ := ControlByID(id)
		pass := passingPolicies[id]
		for _, tc := range cases {
			t.Run(id+"/"+tc.name, func(t *testing.T) {
				tenant := testTenant(clonePolicy(pass))
				tenant.Licences = tc.licences
				rep := EvaluateControl(tenant, testConfig(), c)
				if rep.Licence == nil {
					t.Fatal("no licence finding for a control that needs one")
				}
				if rep.Licence.Required != "Microsoft Entra ID P2" || rep.Licence.ServicePlan != "AAD_PREMIUM_P2" || rep.Licence.ServicePlanID != p2.ID {
					t.Errorf("licence %+v, want Microsoft Entra ID P2 (AAD_PREMIUM_P2)", rep.Licence)
				}
				switch {
				case tc.present == nil && rep.Licence.Present != nil:
					t.Fatalf("present %v, want unknown (null)", *rep.Licence.Present)
				case tc.present != nil && (rep.Licence.Present == nil || *rep.Licence.Present != *tc.present):
					t.Fatalf("present %v, want %v", rep.Licence.Present, *tc.present)
				}
				codes := codesOf(rep.Policies[0])
				if tc.present != nil && !*tc.present {
					if rep.Verdict != VerdictNonCompliant || rep.Compliant || len(rep.Passing) != 0 {
						t.Errorf("verdict %s compliant %v passing %v, want non-compliant", rep.Verdict, rep.Compliant, rep.Passing)
					}
					want := `Licence missing: "` + c.Title + `" needs Microsoft Entra ID P2, which the tenant does not have.`
					if rep.Summary != want {
						t.Errorf("summary %q, want %q", rep.Summary, want)
					}
					if !slices.Equal(codes, []string{CodeLicenceMissing}) {
						t.Errorf("codes %v, want only %s (the policy itself meets the control)", codes, CodeLicenceMissing)
					}
					return
				}
				// Present or unknown: judged as without licences.
				if rep.Verdict != VerdictCompliant || slices.Contains(codes, CodeLicenceMissing) {
					t.Errorf("verdict %s codes %v, want compliant without %s", rep.Verdict, codes, CodeLicenceMissing)
				}
			})
		}
	}
}

// A missing licence is reported beside what the policy fails on its own, and a report-only policy
// is not pending enforcement: it will not enforce the control even when switched on.
func TestLicenceMissingKeepsThePolicysOwnReasons(t *testing.T) {
	c, _ := ControlByID(ControlSignInRiskPolicy)
	p := clonePolicy(passingPolicies[ControlSignInRiskPolicy])
	p.State = StateReportOnly
	p.Conditions.SignInRiskLevels = []string{"high"}
	tenant := testTenant(p)
	tenant.Licences = &Licences{}
	rep := EvaluateControl(tenant, testConfig(), c)
	if rep.Verdict != VerdictNonCompliant {
		t.Fatalf("verdict %s, want non-compliant", rep.Verdict)
	}
	codes := codesOf(rep.Policies[0])
	for _, want := range []string{CodeStateReportOnly, CodeRiskConditionPresent, CodeLicenceMissing} {
		if !slices.Contains(codes, want) {
			t.Errorf("codes %v lack %s", codes, want)
		}
	}
	if rep.Policies[0].MeetsAllButState {
		t.Error("meetsAllButState true for a policy the tenant's licence cannot enforce")
	}
	// The tenant verdict in JSON carries the licence as {required, present}.
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"licence":{"required":"Microsoft Entra ID P2","servicePlan":"AAD_PREMIUM_P2","servicePlanId":"eec0eb4f-6444-4f95-aba0-50c24d67f998","present":false}`) {
		t.Errorf("JSON %s lacks the licence finding", b)
	}
	// A control that needs no licence has no licence field, and never reads LICENCE_MISSING.
	other, _ := ControlByID(ControlAllUsersMFA)
	r := EvaluateControl(tenant, testConfig(), other)
	if r.Licence != nil || slices.Contains(codesOf(r.Policies[0]), CodeLicenceMissing) {
		t.Errorf("%s: licence %+v codes %v", other.ID, r.Licence, codesOf(r.Policies[0]))
	}
}

func ptr[T any](v T) *T { return &v }
