package reconcile

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/capolicy"
)

func control(t *testing.T, id string) capolicy.Control {
	t.Helper()
	c, ok := capolicy.ControlByID(id)
	if !ok {
		t.Fatalf("no control %s", id)
	}
	return c
}

// managedFor is caguard's policy for c, as Graph would hold it.
func managedFor(c capolicy.Control, id string, st capolicy.State) capolicy.Policy {
	p := capolicy.DesiredFor(cfg(), c)
	p.ID, p.State = id, st
	return p
}

// guardedRun runs a sweep guarding azure-management-mfa and cs, and returns what it did about each.
func guardedRun(t *testing.T, r *Reconciler, cs ...capolicy.Control) Outcome {
	t.Helper()
	r.Controls = append([]capolicy.Control{control(t, capolicy.ControlAzureManagementMFA)}, cs...)
	return run(t, r)
}

func actionOf(t *testing.T, out Outcome, id string) Action {
	t.Helper()
	as, _ := out.ActionsFor(id)
	if len(as) != 1 {
		t.Fatalf("%s: actions %+v, want one", id, as)
	}
	return as[0]
}

// Plan for any control follows the default control's safety rules, from the control's data alone.
func TestPlanGuard(t *testing.T) {
	legacy := control(t, capolicy.ControlBlockLegacyAuth)
	admin := control(t, capolicy.ControlAdminMFA)
	const id = "cccccccc-0000-4000-8000-000000000001"
	tenant := func(ps ...capolicy.Policy) capolicy.Tenant {
		return capolicy.Tenant{Policies: ps, GroupMembers: map[string][]string{bgGroup: {bgUser}}}
	}
	tests := []struct {
		name  string
		c     capolicy.Control
		ps    []capolicy.Policy
		check func(t *testing.T, a Action)
	}{
		{"a missing managed policy is created in report-only mode", admin, nil, func(t *testing.T, a Action) {
			if a.Kind != ActionCreate || a.desired.State != capolicy.StateReportOnly || a.desired.DisplayName != capolicy.ManagedNameFor(cfg(), admin) {
				t.Errorf("action %+v, want a report-only create named for the control", a)
			}
		}},
		{"an enabled weakened policy keeps enabled", admin, []capolicy.Policy{weakened(managedFor(admin, id, capolicy.StateEnabled))}, func(t *testing.T, a Action) {
			if a.Kind != ActionUpdate || a.State != capolicy.StateEnabled.String() || strings.Join(a.Fields, ",") != "grantControls" {
				t.Errorf("action %+v, want the grant restored, enabled kept", a)
			}
		}},
		{"an enabled weakened blocking policy is not written", legacy, []capolicy.Policy{weakened(managedFor(legacy, id, capolicy.StateEnabled))}, func(t *testing.T, a Action) {
			if a.Kind != ActionSkip || !strings.Contains(a.Reason, "never writes an enforced blocking policy") {
				t.Errorf("action %+v, want a skip saying why", a)
			}
		}},
		{"a report-only weakened blocking policy is restored report-only", legacy, []capolicy.Policy{weakened(managedFor(legacy, id, capolicy.StateReportOnly))}, func(t *testing.T, a Action) {
			if a.Kind != ActionUpdate || a.State != capolicy.StateReportOnly.String() {
				t.Errorf("action %+v, want a report-only restore", a)
			}
		}},
		{"a disabled blocking policy comes back report-only, never enabled", legacy, []capolicy.Policy{managedFor(legacy, id, capolicy.StateDisabled)}, func(t *testing.T, a Action) {
			if a.Kind != ActionUpdate || a.State != capolicy.StateReportOnly.String() || enforcedBlock(a, nil) {
				t.Errorf("action %+v, want it put back in report-only mode", a)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := guardFor(cfg(), tt.c)
			tn := tenant(tt.ps...)
			tt.check(t, planGuard(g, g.judge(tn), tn, ""))
		})
	}
}

// enforcedBlock is the last guard: no write may leave a policy enabled with a block grant.
func TestEnforcedBlock(t *testing.T) {
	legacy := control(t, capolicy.ControlBlockLegacyAuth)
	on := managedFor(legacy, "x", capolicy.StateEnabled)
	off := managedFor(legacy, "x", capolicy.StateReportOnly)
	if !enforcedBlock(Action{Kind: ActionUpdate, Fields: []string{"conditions"}, desired: off}, &on) {
		t.Error("a conditions-only write to an enabled blocking policy passed")
	}
	if enforcedBlock(Action{Kind: ActionUpdate, Fields: []string{"state", "conditions"}, desired: off}, &on) {
		t.Error("a write that sets report-only was refused")
	}
	if !enforcedBlock(Action{Kind: ActionCreate, desired: on}, nil) {
		t.Error("an enabled blocking create passed")
	}
	r := newReconciler(&memStore{policies: []capolicy.Policy{on}}, true)
	g := guardFor(cfg(), legacy)
	a := Action{Kind: ActionUpdate, PolicyID: "x", Fields: []string{"conditions"}, desired: on}
	if _, err := r.apply(context.Background(), g, &a, capolicy.Tenant{}, &on, nil, nil); err == nil || !strings.Contains(err.Error(), "enforced mode") {
		t.Errorf("apply: %v, want a refusal", err)
	}
}

// A control whose verdict says the licence is missing is skipped: nothing written, the reason says so.
func TestLicenceMissingSkips(t *testing.T) {
	rep := capolicy.Report{Policies: []capolicy.PolicyResult{{ID: "p", Reasons: []capolicy.Reason{{Code: capolicy.CodeLicenceMissing}}}}}
	if !lacksLicence(rep) {
		t.Fatal("a report with LICENCE_MISSING does not read as lacking the licence")
	}
	if lacksLicence(capolicy.Report{Policies: []capolicy.PolicyResult{{ID: "p", Reasons: []capolicy.Reason{{Code: capolicy.CodeNoGrantControls}}}}}) {
		t.Error("another code reads as a missing licence")
	}
}

// Each control's managed policy is recorded on its own; a recorded id wins over a squatter with the
// control's managed name, as for the default control.
func TestControlOwnership(t *testing.T) {
	admin := control(t, capolicy.ControlAdminMFA)
	store := &memStore{}
	owner := &MemoryOwnership{}
	r := newReconciler(store, true)
	r.Owner = owner
	out := guardedRun(t, r, admin)
	created := actionOf(t, out, admin.ID)
	ids, _ := owner.ControlPolicyIDs(context.Background())
	if !created.Performed || ids[admin.ID] != created.PolicyID {
		t.Fatalf("recorded %v after %+v, want the created policy recorded for %s", ids, created, admin.ID)
	}
	if def, _ := owner.ManagedPolicyID(context.Background()); def == "" || def == created.PolicyID {
		t.Errorf("default control's record %q, want its own policy", def)
	}
	// A squatter takes the managed name; the recorded policy is weakened.
	squat := managedFor(admin, squatterID, capolicy.StateEnabled)
	store.mu.Lock()
	for i := range store.policies {
		if store.policies[i].ID == created.PolicyID {
			store.policies[i] = weakened(store.policies[i])
		}
	}
	store.policies = append(store.policies, weakened(squat))
	store.mu.Unlock()
	out = guardedRun(t, r, admin)
	a := actionOf(t, out, admin.ID)
	if a.PolicyID != created.PolicyID || !a.Performed {
		t.Errorf("action %+v, want the recorded policy %s restored", a, created.PolicyID)
	}
	var warned bool
	for _, co := range out.Guarding {
		for _, w := range co.Warnings {
			warned = warned || strings.Contains(w, squatterID)
		}
	}
	if !warned {
		t.Errorf("no warning names the squatter: %+v", out.Guarding)
	}
	for _, u := range store.updates {
		if u.id == squatterID {
			t.Errorf("wrote the squatter: %+v", u)
		}
	}
}

// An alert about a control other than azure-management-mfa names it, and has an id of its own.
func TestControlAlertNamesTheControl(t *testing.T) {
	admin := control(t, capolicy.ControlAdminMFA)
	sk := &sink{name: "test"}
	r := newReconciler(&memStore{}, false, sk)
	out := guardedRun(t, r, admin)
	_, al := out.ActionsFor(admin.ID)
	if al == nil || al.Control != admin.ID || !strings.Contains(al.Heading().String(), admin.Title) || !strings.Contains(al.NextStep, admin.Title) {
		t.Fatalf("alert %+v, want one naming %q", al, admin.Title)
	}
	if out.Alert == nil || out.Alert.ID == al.ID || out.Alert.Control != capolicy.ControlAzureManagementMFA {
		t.Errorf("default alert %+v beside the control's %s", out.Alert, al.ID)
	}
	if len(sk.alerts) != 2 {
		t.Errorf("%d alerts sent, want one per control", len(sk.alerts))
	}
}

// When the lock's storage fails, every control is judged and alerted, none is written, and the run
// fails as retriable without a second, failure alert.
func TestStorageDownBlocksEveryControlsRestore(t *testing.T) {
	admin := control(t, capolicy.ControlAdminMFA)
	store := &memStore{policies: []capolicy.Policy{managed(capolicy.StateEnabled)}}
	sk := &sink{name: "test"}
	r := newReconciler(store, true, sk)
	r.Lock = failingLock{err: retryErr{}}
	r.Controls = []capolicy.Control{control(t, capolicy.ControlAzureManagementMFA), admin}
	out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true})
	if !isRetriable(err) {
		t.Fatalf("got %v, want a retriable failure", err)
	}
	a := actionOf(t, out, admin.ID)
	if a.Written || a.Kind != ActionCreate || !strings.Contains(a.Reason, "the restore was not attempted") {
		t.Errorf("action %+v, want a create not attempted", a)
	}
	if len(store.created)+len(store.updates) != 0 {
		t.Errorf("wrote without the lock: %d creates, %d updates", len(store.created), len(store.updates))
	}
	if len(sk.alerts) != 1 || sk.alerts[0].Control != admin.ID {
		t.Errorf("alerts %+v, want the control's alone", sk.alerts)
	}
}

// A control whose verdict carries LICENCE_MISSING is skipped by the guarding: nothing is written,
// and the action says why.
func TestGuardingSkipsAControlWithoutLicence(t *testing.T) {
	risk := control(t, capolicy.ControlUserRiskPolicy)
	store := &memStore{}
	r := newReconciler(store, true)
	r.Controls = []capolicy.Control{risk}
	tn := capolicy.Tenant{GroupMembers: map[string][]string{bgGroup: {bgUser}}}
	rep := capolicy.Report{Verdict: capolicy.VerdictNonCompliant, Policies: []capolicy.PolicyResult{{ID: "p",
		Reasons: []capolicy.Reason{{Code: capolicy.CodeLicenceMissing, Message: "Risk conditions need Microsoft Entra ID P2."}}}}}
	out := Outcome{Controls: []capolicy.ControlReport{{ID: risk.ID, Report: rep}}}
	err := r.guardControls(context.Background(), Request{Trigger: TriggerSweep, Act: true}, runMode{mayWrite: true}, &out,
		guardRun{tenant: tn, planT: tn, users: &usersLookup{r: r}})
	if err != nil {
		t.Fatal(err)
	}
	a := actionOf(t, out, risk.ID)
	if a.Kind != ActionSkip || a.Written || !strings.Contains(a.Reason, capolicy.CodeLicenceMissing) {
		t.Errorf("action %+v, want a skip naming the missing licence", a)
	}
	if len(store.created)+len(store.updates) != 0 {
		t.Errorf("wrote %d creates and %d updates for a control the licence cannot serve", len(store.created), len(store.updates))
	}
}

// touches routes an audit-event run: a policy record touches the controls its values meet or whose
// policies it names; anything it cannot place touches every control.
func TestTouches(t *testing.T) {
	admin := guardFor(cfg(), control(t, capolicy.ControlAdminMFA))
	legacy := guardFor(cfg(), control(t, capolicy.ControlBlockLegacyAuth))
	adminJSON, err := json.Marshal(managedFor(admin.control, "aaaaaaaa-0000-4000-8000-00000000000a", capolicy.StateEnabled))
	if err != nil {
		t.Fatal(err)
	}
	tn := capolicy.Tenant{GroupMembers: map[string][]string{bgGroup: {bgUser}}}
	r := newReconciler(&memStore{}, true)
	own := managedFor(legacy.control, "bbbbbbbb-0000-4000-8000-00000000000b", capolicy.StateReportOnly)
	update := func(id string, old, new []byte) auditlog.Hint {
		return auditlog.Hint{Kind: auditlog.KindPolicyUpdated, PolicyID: id, OldValue: old, NewValue: new}
	}
	tests := []struct {
		name string
		g    guard
		h    []auditlog.Hint
		want bool
	}{
		{"no hints (a sweep) touches every control", legacy, nil, true},
		{"a value meeting the control touches it", admin, []auditlog.Hint{update("x", adminJSON, nil)}, true},
		{"a value meeting another control does not", legacy, []auditlog.Hint{update("x", adminJSON, adminJSON)}, false},
		{"the control's managed policy touches it", legacy, []auditlog.Hint{update(own.ID, adminJSON, adminJSON)}, true},
		{"a record without values touches every control", legacy, []auditlog.Hint{update("x", nil, nil)}, true},
		{"an unreadable value touches every control", legacy, []auditlog.Hint{update("x", []byte(`"conditions"`), nil)}, true},
		{"a named location change touches every control", legacy, []auditlog.Hint{{Kind: auditlog.KindNamedLocation}}, true},
		{"break-glass membership touches every control", legacy, []auditlog.Hint{{Kind: auditlog.KindBreakGlassMembership}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := tt.g.judge(tn)
			if got := r.touches(Request{Trigger: TriggerAuditEvent, Hints: tt.h}, tt.g, rep, tn, &own); got != tt.want {
				t.Errorf("touches: got %v, want %v", got, tt.want)
			}
		})
	}
}
