// Command handler is caguard's Azure Functions custom handler. The host starts it with the port in
// FUNCTIONS_CUSTOMHANDLER_PORT and every app setting in the environment; it serves on 127.0.0.1 until
// SIGTERM or SIGINT. This file only wires: config -> logger -> Graph client -> sinks -> writer lock and
// ownership record -> reconciler -> functions -> server.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caguard/caguard/handler/alert"
	"github.com/caguard/caguard/handler/app"
	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/azfunc"
	"github.com/caguard/caguard/handler/blobstate"
	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/config"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/graph"
	"github.com/caguard/caguard/handler/logctx"
	"github.com/caguard/caguard/handler/reconcile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "caguard: error: %v\n", err)
		os.Exit(1)
	}
}

// run starts the handler and blocks until ctx is cancelled.
func run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	return runWith(ctx, getenv, stdout, stderr, seams{})
}

// seams are what a test of the whole process replaces: the transport of token requests to the
// tenants' authority (a local one over TLS, whose certificate the process does not otherwise trust).
type seams struct {
	tokenTransport policy.Transporter
}

func runWith(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer, sm seams) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	level, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("setting LOG_LEVEL: %w", err)
	}
	log := azfunc.NewLogger(stdout, stderr, level)
	defer func() { _ = log.Sync() }()
	log.Info("starting caguard", zap.Any("config", cfg.Redacted()))

	// Listen first: the host polls GET / from the moment it starts the process.
	ln, err := azfunc.Listen(cfg.Port)
	if err != nil {
		return err
	}

	gopts := graph.Options{
		BaseURL:            cfg.GraphBaseURL,
		TenantID:           cfg.TenantID,
		ClientID:           cfg.ClientID,
		ClientSecret:       cfg.ClientSecret,
		FederatedTokenFile: cfg.FederatedTokenFile,
		AuthorityHost:      cfg.AuthorityHost,
		ServicePrincipalID: cfg.ServicePrincipalID,
		RetryBudget:        cfg.GraphRetryBudget,
		Logger:             log.Named("graph"),
	}
	// One identity for Graph and the alert Event Hub.
	cred, err := graph.NewCredential(gopts)
	if err != nil {
		ln.Close()
		return fmt.Errorf("credential: %w", err)
	}
	gopts.Credential = cred
	gc, err := graph.New(gopts)
	if err != nil {
		ln.Close()
		return fmt.Errorf("graph client: %w", err)
	}

	sinks, closeSinks, err := alertSinks(cfg, cred, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer closeSinks()

	store, storeOpts, err := writerStore(cfg, cred, getenv, log)
	if err != nil {
		ln.Close()
		return err
	}
	reg, found, err := loadRegistry(ctx, cfg, store)
	if err != nil {
		ln.Close()
		return err
	}

	now := time.Now
	rec := &reconcile.Reconciler{
		Store: gc,
		Sinks: sinks,
		Policy: capolicy.Config{
			TargetAppIDs:             cfg.TargetAppIDs,
			BreakGlassUserIDs:        cfg.BreakGlassUserIDs,
			BreakGlassGroupIDs:       cfg.BreakGlassGroupIDs,
			CustomControlsCountAsMFA: cfg.CustomControlsCountAsMFA,
			ManagedPolicyName:        cfg.ManagedPolicyName,
		},
		TenantID:  cfg.TenantID,
		Remediate: cfg.Remediate(),
		Controls:  catalogueControls(cfg.Controls),
		Now:       now,
		Log:       log.Named("reconcile"),
		// Without storage the managed policy's id is remembered in this process only.
		Owner: &reconcile.MemoryOwnership{},
		Exclusions: reconcile.Exclusions{
			Reader: gc,
			Mode:   exclusion.Mode(cfg.ExclusionReview),
			Grace:  time.Duration(cfg.ExclusionReviewGraceDays) * 24 * time.Hour,
		},
	}
	if store != nil {
		rec.Lock, rec.Owner = store, store
	}
	deps := app.Deps{
		Reconciler: rec,
		Filter:     auditFilter(cfg, gc, log),
		TenantID:   cfg.TenantID,
		Now:        now,
	}
	if found {
		fl, err := newFleet(cfg, reg, cred, sinks, store != nil, storeOpts, now, log, sm)
		if err != nil {
			ln.Close()
			return err
		}
		deps.Fleet = fl
		deps.Filter = fleetFilter(cfg, fl)
		// With a registry no run may fall back to AZURE_TENANT_ID and the global settings: that
		// tenant is guarded only if the registry lists it.
		deps.Reconciler = notWithRegistry{}
		log.Info("guarding the tenants of the registry", zap.Int("tenants", len(reg.Tenants)))
	}
	fns := app.Functions(deps)
	srv := azfunc.NewServer(log, cfg.InvocationTimeout, fns...)
	return azfunc.Serve(ctx, ln, srv, log, cfg.InvocationTimeout)
}

var (
	_ reconcile.PolicyStore     = (*graph.Client)(nil)
	_ reconcile.ExclusionReader = (*graph.Client)(nil)
	_ reconcile.WriterLock      = (*blobstate.Store)(nil)
	_ reconcile.Ownership       = (*blobstate.Store)(nil)
)

// writerStore puts the writer lock and the ownership record in the app's storage account. Without a
// storage setting it returns nil and says so once: runs are then serialised in this process only,
// which holds for a single local process but not for several instances.
func writerStore(cfg config.Config, cred azcore.TokenCredential, getenv func(string) string, log *zap.Logger) (*blobstate.Store, blobstate.Options, error) {
	st := cfg.Storage
	if !st.Configured() {
		log.Warn("no AzureWebJobsStorage setting: writing runs are serialised within this process only; " +
			"with more than one instance two runs could both create the managed policy")
		return nil, blobstate.Options{}, nil
	}
	opts := blobstate.Options{
		ServiceURL:  st.BlobServiceURL,
		AccountName: st.AccountName,
		AccountKey:  st.AccountKey,
		SAS:         st.SAS,
		Log:         log.Named("blobstate"),
	}
	if st.Auth() == "identity" {
		c, which, err := storageCredential(st, cfg, cred, getenv)
		if err != nil {
			return nil, blobstate.Options{}, err
		}
		opts.Credential = c
		log.Info("storage identity", zap.String("identity", which))
	}
	s, err := blobstate.New(opts)
	if err != nil {
		return nil, blobstate.Options{}, fmt.Errorf("setting %s: %w", st.Setting, err)
	}
	log.Info("single writer across instances: a lease on the storage account's blob", zap.String("blob", s.Name()),
		zap.String("blobServiceUrl", st.BlobServiceURL), zap.String("auth", st.Auth()))
	return s, opts, nil
}

// storageCredential picks the identity for an identity-based AzureWebJobsStorage the way the Functions
// host does, so that caguard and the host agree on which identity holds the storage roles:
// AzureWebJobsStorage__clientId names a user-assigned managed identity; without it, in Azure (the
// platform sets IDENTITY_ENDPOINT for the host and its child process), the host uses the app's
// system-assigned identity ("Connecting to host storage with an identity", Azure Functions docs). Only
// outside Azure, where the host uses the developer's own identity, does caguard fall back to its
// Graph credential. which describes the choice for the log.
func storageCredential(st config.Storage, cfg config.Config, graphCred azcore.TokenCredential, getenv func(string) string) (azcore.TokenCredential, string, error) {
	switch {
	case st.ClientID != "" && st.ClientID == cfg.ClientID && cfg.ClientSecret == "" && cfg.FederatedTokenFile == "":
		// The Graph credential is that same user-assigned managed identity.
		return graphCred, "user-assigned managed identity " + st.ClientID + " (shared with Graph)", nil
	case st.ClientID != "":
		mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(st.ClientID)})
		if err != nil {
			return nil, "", fmt.Errorf("setting %s: managed identity credential: %w", config.SettingStorageClientID, err)
		}
		return mi, "user-assigned managed identity " + st.ClientID, nil
	case getenv("IDENTITY_ENDPOINT") != "":
		mi, err := azidentity.NewManagedIdentityCredential(nil)
		if err != nil {
			return nil, "", fmt.Errorf("setting %s: system-assigned managed identity credential: %w", st.Setting, err)
		}
		return mi, "system-assigned managed identity (no " + config.SettingStorageClientID + ")", nil
	}
	return graphCred, "caguard's Graph credential (outside Azure, no " + config.SettingStorageClientID + ")", nil
}

// auditFilter resolves caguard's own service principal once (from the setting, or the oid claim of its
// Graph token) so that its own writes in the audit log trigger nothing. Until that succeeds, each batch
// tries again; a batch decoded without it can at worst cause one reconcile that finds nothing to write.
func auditFilter(cfg config.Config, gc *graph.Client, log *zap.Logger) func(context.Context) auditlog.Filter {
	var (
		mu   sync.Mutex
		self string
	)
	return func(ctx context.Context) auditlog.Filter {
		mu.Lock()
		defer mu.Unlock()
		if self == "" {
			id, err := gc.ServicePrincipalID(ctx)
			if err != nil {
				logctx.From(ctx, log).Warn("own service principal id unknown; own writes cannot be told apart in this batch", zap.Error(err))
			} else {
				self = id
			}
		}
		f := auditlog.Filter{TenantID: cfg.TenantID, BreakGlassGroupIDs: cfg.BreakGlassGroupIDs}
		if self != "" {
			f.SelfPrincipalIDs = append(f.SelfPrincipalIDs, self)
		}
		if cfg.ClientID != "" {
			f.SelfPrincipalIDs = append(f.SelfPrincipalIDs, cfg.ClientID)
		}
		return f
	}
}

// alertSinks builds the configured sinks. The log sink is always there, so an alert is never lost
// silently even when the optional sinks fail.
func alertSinks(cfg config.Config, cred azcore.TokenCredential, log *zap.Logger) ([]reconcile.AlertSink, func(), error) {
	sinks := []reconcile.AlertSink{&alert.LogSink{Log: log.Named("alert")}}
	closers := []func(){}
	if cfg.AlertWebhookURL != "" {
		format, err := alert.ParseFormat(cfg.AlertWebhookFormat)
		if err != nil {
			return nil, nil, fmt.Errorf("setting ALERT_WEBHOOK_FORMAT: %w", err)
		}
		wh, err := alert.NewFormattedWebhookSink(cfg.AlertWebhookURL, format, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("setting ALERT_WEBHOOK_URL: %w", err)
		}
		log.Info("webhook alerts", zap.String("host", wh.Name()), zap.String("format", string(wh.Format())))
		sinks = append(sinks, wh)
	}
	if cfg.AlertEventHubName != "" {
		eh, err := alert.NewEventHubSink(cfg.AlertEventHubNamespace, cfg.AlertEventHubName, cred)
		if err != nil {
			return nil, nil, fmt.Errorf("setting ALERT_EVENTHUB_NAMESPACE: %w", err)
		}
		sinks = append(sinks, eh)
		closers = append(closers, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = eh.Close(ctx)
		})
	}
	return sinks, func() {
		for _, c := range closers {
			c()
		}
	}, nil
}

var _ reconcile.TenantReader = (*graph.Client)(nil)

// catalogueControls turns the ids CONTROLS named (config checked them) into the catalogue's controls.
func catalogueControls(ids []string) []capolicy.Control {
	var out []capolicy.Control
	for _, id := range ids {
		if c, ok := capolicy.ControlByID(id); ok {
			out = append(out, c)
		}
	}
	return out
}
