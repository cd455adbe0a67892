package main

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/blobstate"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/config"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/fleet"
	"github.com/caguard/caguard/handler/graph"
	"github.com/caguard/caguard/handler/reconcile"
	"github.com/caguard/caguard/handler/tenants"
)

// loadRegistry reads the tenant registry: TENANTS_FILE, else the blob caguard/tenants.json when
// storage is configured. found is false without either, and the handler then guards the tenant of
// AZURE_TENANT_ID exactly as before. A registry that is there and does not parse stops the start.
func loadRegistry(ctx context.Context, cfg config.Config, store *blobstate.Store) (tenants.Registry, bool, error) {
	src := tenants.Source{File: cfg.TenantsFile}
	if store != nil {
		src.Blobs = store
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return tenants.Load(ctx, src, cfg.RemediationMode)
}

// tenantBlob is a tenant's writer lease and ownership record: one blob per tenant, so tenants never
// wait for each other's writes and never share a record of the managed policy's id. The single
// tenant keeps blobstate.DefaultBlob.
func tenantBlob(tenantID string) string { return "tenants/" + tenantID + "/" + blobstate.DefaultBlob }

// newFleet builds the registry's reconcilers (lazily, in handler/fleet). Each tenant signs in as the
// multi-tenant app: in Azure with the Function's managed identity (mi) as the app's federated
// credential, locally with AZURE_CLIENT_SECRET.
func newFleet(cfg config.Config, reg tenants.Registry, mi azcore.TokenCredential, sinks []reconcile.AlertSink,
	withStorage bool, storeOpts blobstate.Options, now func() time.Time, log *zap.Logger, sm seams) (*fleet.Fleet, error) {
	appID := cfg.TenantsAppClientID
	copts := tenants.CredentialOptions{AuthorityHost: cfg.AuthorityHost, Transport: sm.tokenTransport}
	switch {
	case cfg.ClientSecret != "":
		if appID == "" {
			appID = cfg.ClientID
		}
		copts.ClientSecret = cfg.ClientSecret
	default:
		if appID == "" {
			return nil, errors.New("setting TENANTS_APP_CLIENT_ID: required with a tenant registry when caguard signs in with its managed identity: " +
				"the multi-tenant app registration it signs in as in each tenant")
		}
		copts.ManagedIdentity = mi
	}
	if appID == "" {
		return nil, errors.New("setting TENANTS_APP_CLIENT_ID: required with a tenant registry (or AZURE_CLIENT_ID with AZURE_CLIENT_SECRET)")
	}
	copts.ClientID = appID
	var state func(string) (reconcile.WriterLock, reconcile.Ownership, error)
	var runs fleet.RunRecords
	if withStorage {
		// Each tenant's last run is recorded beside its lease blob (caguard/tenants/<id>/last-run.json),
		// so that the fleet summary of any instance sees the runs of all.
		s, err := blobstate.New(storeOpts)
		if err != nil {
			return nil, err
		}
		runs = s
		state = func(tenantID string) (reconcile.WriterLock, reconcile.Ownership, error) {
			o := storeOpts
			o.Blob = tenantBlob(tenantID)
			s, err := blobstate.New(o)
			if err != nil {
				return nil, nil, err
			}
			return s, s, nil
		}
	}
	// One pool of connections for every tenant: Graph is one host whatever the tenant.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	return fleet.New(fleet.Options{
		Registry:   reg,
		Credential: func(id string) (azcore.TokenCredential, error) { return tenants.Credential(id, copts) },
		Graph: graph.Options{
			BaseURL:     cfg.GraphBaseURL,
			RetryBudget: cfg.GraphRetryBudget,
			Logger:      log.Named("graph"),
		},
		Transport: transport,
		Settings: fleet.Settings{
			Sinks: sinks,
			Policy: capolicy.Config{
				TargetAppIDs:             cfg.TargetAppIDs,
				CustomControlsCountAsMFA: cfg.CustomControlsCountAsMFA,
				ManagedPolicyName:        cfg.ManagedPolicyName,
			},
			Controls:       catalogueControls(cfg.Controls),
			ExclusionMode:  exclusion.Mode(cfg.ExclusionReview),
			ExclusionGrace: time.Duration(cfg.ExclusionReviewGraceDays) * 24 * time.Hour,
			Now:            now,
			Log:            log.Named("reconcile"),
		},
		State: state,
		Runs:  runs,
	})
}

// fleetFilter is the audit filter with a registry: every registry tenant, every tenant's
// break-glass groups, and caguard's own identities (the app's id, the same in every tenant, and its
// service principal in each tenant it has run).
func fleetFilter(cfg config.Config, fl *fleet.Fleet) func(context.Context) auditlog.Filter {
	ids := make([]string, 0, len(fl.Tenants()))
	for _, t := range fl.Tenants() {
		ids = append(ids, t.ID)
	}
	groups := fl.BreakGlassGroupIDs()
	return func(context.Context) auditlog.Filter {
		f := auditlog.Filter{TenantIDs: ids, BreakGlassGroupIDs: groups, SelfPrincipalIDs: fl.SelfPrincipalIDs()}
		for _, id := range []string{cfg.TenantsAppClientID, cfg.ClientID, cfg.ServicePrincipalID} {
			if id != "" {
				f.SelfPrincipalIDs = append(f.SelfPrincipalIDs, id)
			}
		}
		return f
	}
}

// notWithRegistry stands in for the single tenant's reconciler when a registry is in use, so that no
// trigger can reconcile AZURE_TENANT_ID with the global settings behind the registry's back: the
// nightly sweep of a fleet is one run per registry tenant, not one of the deployment's home tenant.
type notWithRegistry struct{}

func (notWithRegistry) Reconcile(context.Context, reconcile.Request) (reconcile.Outcome, error) {
	return reconcile.Outcome{}, errRegistry
}

var errRegistry = &registryError{}

type registryError struct{}

func (*registryError) Error() string {
	return "a tenant registry is in use: each run is for one registry tenant"
}
func (*registryError) Retriable() bool    { return false }
func (e *registryError) Describe() string { return e.Error() }
