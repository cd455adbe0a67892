package graph

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/graphfake"
	"github.com/caguard/caguard/handler/snapshot"
)

func licenceScenario(skus ...json.RawMessage) graphfake.Scenario {
	sc := newTenantOf(1, 1, 1).scenario
	sc.SubscribedSkus = skus
	return sc
}

// The subscriptions travel in phase one's batch: asking for them adds a sub-request, not a round
// trip, and they read back as the capolicy values the licence check judges.
func TestReadTenantReadsSubscriptionsInTheSameBatch(t *testing.T) {
	e, ct := counted(t, graphfake.Options{PageSize: 999}, licenceScenario(
		graphfake.SKU("SPE_E5", "06ebc4ee-1bb5-47dd-8120-11324bc54e06", "Enabled",
			graphfake.ServicePlanEntraIDP1+":Success", graphfake.ServicePlanEntraIDP2+":Success"),
		graphfake.SKU("AAD_PREMIUM_P2", "84a661c4-e949-4bd2-a560-ed7766fcaf2b", "Suspended", graphfake.ServicePlanEntraIDP2+":Disabled"),
	), nil)
	rd, err := e.c.ReadTenant(context.Background(), snapshot.Query{Licences: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := ct.Count(); n != 1 {
		t.Errorf("%d round trips, want 1 (the subscriptions ride in the policies' batch)", n)
	}
	if rd.SKUsErr != nil || len(rd.SKUs) != 2 {
		t.Fatalf("SKUs %+v, error %v; want the two seeded", rd.SKUs, rd.SKUsErr)
	}
	e5 := rd.SKUs[0]
	if e5.SkuPartNumber != "SPE_E5" || e5.CapabilityStatus != "Enabled" || len(e5.ServicePlans) != 2 ||
		e5.ServicePlans[1].ServicePlanID != capolicy.PlanEntraIDP2.ID || e5.ServicePlans[1].ProvisioningStatus != "Success" {
		t.Errorf("E5 read as %+v", e5)
	}
	if l := (&capolicy.Licences{SKUs: rd.SKUs}); !l.Has(capolicy.PlanEntraIDP2) {
		t.Error("the tenant with E5 reads as lacking Entra ID P2")
	}
	calls := e.srv.CallsTo("GET /v1.0/subscribedSkus")
	if len(calls) != 1 || !strings.Contains(calls[0].Query, "servicePlans") {
		t.Errorf("subscribedSkus requests %+v, want one selecting servicePlans", calls)
	}
}

func TestReadTenantAsksForNoSubscriptionsUnlessTold(t *testing.T) {
	e, _ := counted(t, graphfake.Options{PageSize: 999}, licenceScenario(), nil)
	rd, err := e.c.ReadTenant(context.Background(), snapshot.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.srv.CallsTo("GET /v1.0/subscribedSkus")); n != 0 || rd.SKUs != nil || rd.SKUsErr != nil {
		t.Errorf("%d subscribedSkus requests, SKUs %v, error %v; want none", n, rd.SKUs, rd.SKUsErr)
	}
}

// A refused or failed read of the subscriptions stays with them: the policies are read, and the
// error names the permission on a 403.
func TestReadTenantKeepsASubscriptionFailureToItself(t *testing.T) {
	for _, tc := range []struct {
		name  string
		roles []string
		fault *graphfake.Fault
		check func(t *testing.T, err *Error)
	}{
		{"403 without LicenseAssignment.Read.All names it", []string{graphfake.PermPolicyReadAll, graphfake.PermGroupMemberReadAll}, nil,
			func(t *testing.T, err *Error) {
				if err.Status != http.StatusForbidden || err.Permission != PermReadLicences || err.LicenceMissing() {
					t.Errorf("got status %d permission %q, want 403 naming %s", err.Status, err.Permission, PermReadLicences)
				}
			}},
		{"a server error fails the read of the subscriptions only", nil, &graphfake.Fault{Match: "GET /v1.0/subscribedSkus", Status: 500},
			func(t *testing.T, err *Error) {
				if err.Status != http.StatusInternalServerError {
					t.Errorf("got status %d, want 500", err.Status)
				}
			}},
		{"a page without a collection is malformed", nil, &graphfake.Fault{Match: "GET /v1.0/subscribedSkus", Status: 200, Body: `{"value":null}`},
			func(t *testing.T, err *Error) {
				if err.Code != "MalformedResponse" {
					t.Errorf("got code %q, want MalformedResponse", err.Code)
				}
			}},
		{"a SKU of another shape is malformed", nil, &graphfake.Fault{Match: "GET /v1.0/subscribedSkus", Status: 200, Body: `{"value":[{"capabilityStatus":7}]}`},
			func(t *testing.T, err *Error) {
				if err.Code != "MalformedResponse" {
					t.Errorf("got code %q, want MalformedResponse", err.Code)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := counted(t, graphfake.Options{PageSize: 999, Roles: tc.roles}, licenceScenario(
				graphfake.SKU("SPE_E5", "06ebc4ee-1bb5-47dd-8120-11324bc54e06", "Enabled", graphfake.ServicePlanEntraIDP2+":Success")), func(o *Options) {
				o.MaxRetries = 1
			})
			if tc.fault != nil {
				e.srv.Inject(*tc.fault)
			}
			rd, err := e.c.ReadTenant(context.Background(), snapshot.Query{Licences: true})
			if err != nil {
				t.Fatalf("the run's read failed: %v", err)
			}
			if len(rd.Policies) == 0 {
				t.Error("no policies read beside the failed subscriptions")
			}
			var ge *Error
			if !errors.As(rd.SKUsErr, &ge) || rd.SKUs != nil {
				t.Fatalf("SKUs %v, error %v; want no SKUs and a *graph.Error", rd.SKUs, rd.SKUsErr)
			}
			tc.check(t, ge)
		})
	}
}
