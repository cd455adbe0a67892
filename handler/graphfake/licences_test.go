package graphfake

import (
	"encoding/json"
	"testing"
)

const skuE5 = "06ebc4ee-1bb5-47dd-8120-11324bc54e06"

func skuScenario() *Scenario {
	return &Scenario{SubscribedSkus: []json.RawMessage{
		SKU("SPE_E5", skuE5, "Enabled", ServicePlanEntraIDP1+":Success", ServicePlanEntraIDP2+":Success"),
		SKU("AAD_PREMIUM_P2", "84a661c4-e949-4bd2-a560-ed7766fcaf2b", "Suspended", ServicePlanEntraIDP2+":Disabled"),
	}}
}

type skuPage struct {
	Context  string `json:"@odata.context"`
	NextLink string `json:"@odata.nextLink"`
	Value    []struct {
		ID               string `json:"id"`
		SkuID            string `json:"skuId"`
		SkuPartNumber    string `json:"skuPartNumber"`
		CapabilityStatus string `json:"capabilityStatus"`
		ServicePlans     []struct {
			ServicePlanID      string `json:"servicePlanId"`
			ServicePlanName    string `json:"servicePlanName"`
			ProvisioningStatus string `json:"provisioningStatus"`
		} `json:"servicePlans"`
	} `json:"value"`
}

func TestSubscribedSkusAnswerTheSeededSubscriptionsInOnePage(t *testing.T) {
	s := start(t, Options{PageSize: 1}, skuScenario())
	r := call(t, "GET", s.GraphURL()+"/subscribedSkus?$select=skuId,capabilityStatus,servicePlans", s.Token(), nil, nil)
	if r.status != 200 {
		t.Fatalf("got %d %s, want 200", r.status, r.body)
	}
	var page skuPage
	if err := json.Unmarshal(r.body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Value) != 2 || page.NextLink != "" {
		t.Fatalf("got %d SKUs, nextLink %q; want both in one page (Graph documents no paging)", len(page.Value), page.NextLink)
	}
	first := page.Value[0]
	if first.ID != s.TenantID()+"_"+skuE5 || first.SkuID != skuE5 || first.CapabilityStatus != "Enabled" {
		t.Errorf("first SKU %+v", first)
	}
	if first.SkuPartNumber != "" {
		t.Errorf("skuPartNumber %q answered although $select left it out", first.SkuPartNumber)
	}
	if len(first.ServicePlans) != 2 || first.ServicePlans[1].ServicePlanName != "AAD_PREMIUM_P2" || first.ServicePlans[1].ProvisioningStatus != "Success" {
		t.Errorf("service plans %+v", first.ServicePlans)
	}
	if page.Value[1].CapabilityStatus != "Suspended" || page.Value[1].ServicePlans[0].ProvisioningStatus != "Disabled" {
		t.Errorf("second SKU %+v", page.Value[1])
	}
}

func TestSubscribedSkusNeedALicenceReadPermission(t *testing.T) {
	for _, tc := range []struct {
		name  string
		roles []string
		want  int
	}{
		{"LicenseAssignment.Read.All reads them", []string{PermLicenseAssignmentReadAll}, 200},
		{"Organization.Read.All reads them", []string{PermOrganizationReadAll}, 200},
		{"Directory.Read.All reads them", []string{PermDirectoryReadAll}, 200},
		{"Policy.Read.All alone is refused", []string{PermPolicyReadAll}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, Options{Roles: tc.roles}, skuScenario())
			r := call(t, "GET", s.GraphURL()+"/subscribedSkus", s.Token(), nil, nil)
			if r.status != tc.want {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.want)
			}
			if tc.want == 403 {
				if code := r.json(t)["error"].(map[string]any)["code"]; code != "Authorization_RequestDenied" {
					t.Errorf("error code %v, want Authorization_RequestDenied", code)
				}
			}
		})
	}
}

func TestSubscribedSkusInABatchBesideThePolicies(t *testing.T) {
	s := start(t, Options{Roles: []string{PermPolicyReadAll}}, skuScenario())
	r, br := postBatch(t, s, s.Token(), get("1", "/identity/conditionalAccess/policies"), get("2", "/subscribedSkus"))
	if r.status != 200 || len(br.Responses) != 2 {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	for _, resp := range br.Responses {
		want := map[string]int{"1": 200, "2": 403}[resp.ID]
		if resp.Status != want {
			t.Errorf("sub-request %s: %d %s, want %d (a refused sub-request inside a 200 batch)", resp.ID, resp.Status, resp.Body, want)
		}
	}
	s2 := start(t, Options{}, skuScenario())
	if err := s2.SetSubscribedSkus(SKU("AAD_PREMIUM", "078d2b04-f1bd-4111-bbd4-b4b1b354cef4", "Enabled", ServicePlanEntraIDP1+":Success")); err != nil {
		t.Fatal(err)
	}
	_, br = postBatch(t, s2, s2.Token(), get("1", "subscribedSkus"))
	var page skuPage
	if len(br.Responses) != 1 || br.Responses[0].Status != 200 || json.Unmarshal(br.Responses[0].Body, &page) != nil || len(page.Value) != 1 || page.Value[0].SkuPartNumber != "AAD_PREMIUM" {
		t.Fatalf("after SetSubscribedSkus: %+v", br.Responses)
	}
	if err := s2.SetSubscribedSkus(json.RawMessage(`[1]`)); err == nil {
		t.Error("a SKU that is not an object was accepted")
	}
}
