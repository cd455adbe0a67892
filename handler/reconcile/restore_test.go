package reconcile

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/caguard/caguard/handler/capolicy"
)

const squatterID = "bbbbbbbb-0000-4000-8000-0000000000ff"

func run(t *testing.T, r *Reconciler) Outcome {
	t.Helper()
	out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Actions) != 1 {
		t.Fatalf("actions = %+v, want one", out.Actions)
	}
	return out
}

func hasWarning(out Outcome, sub string) bool {
	for _, w := range out.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

// A pending look-alike stops caguard from creating a second report-only copy, never from restoring
// its own policy.
func TestPendingLookAlike(t *testing.T) {
	lookAlike := adminPolicy("p1", capolicy.StateReportOnly)
	t.Run("an enabled managed policy that was weakened is restored in the same run", func(t *testing.T) {
		store := &memStore{policies: []capolicy.Policy{weakened(managed(capolicy.StateEnabled)), lookAlike}}
		sk := &sink{name: "test"}
		out := run(t, newReconciler(store, true, sk))
		a := out.Actions[0]
		if out.Report.Verdict != capolicy.VerdictPendingEnforcement {
			t.Fatalf("verdict %s, want pending-enforcement", out.Report.Verdict)
		}
		if a.Kind != ActionUpdate || !a.Performed || a.PolicyID != managed(0).ID || strings.Join(a.Fields, ",") != "grantControls" {
			t.Fatalf("action %+v, want the managed policy's grant restored", a)
		}
		if s := store.policies[0].State; s != capolicy.StateEnabled {
			t.Errorf("state %v after restore, want enabled kept", s)
		}
		if len(sk.alerts) != 1 || !strings.Contains(sk.alerts[0].NextStep, "restored") {
			t.Errorf("alerts %+v, want one saying the policy was restored", sk.alerts)
		}
	})
	t.Run("with no managed policy nothing is written and the alert says switch it on", func(t *testing.T) {
		store := &memStore{policies: []capolicy.Policy{lookAlike}}
		sk := &sink{name: "test"}
		out := run(t, newReconciler(store, true, sk))
		if a := out.Actions[0]; a.Kind != ActionNone || len(store.created)+len(store.updates) != 0 {
			t.Fatalf("action %+v, %d creates, %d updates; want nothing written", a, len(store.created), len(store.updates))
		}
		if len(sk.alerts) != 1 || !strings.Contains(sk.alerts[0].NextStep, "switch it on") || !strings.Contains(sk.alerts[0].NextStep, "p1") {
			t.Errorf("alerts %+v, want one saying to switch p1 on", sk.alerts)
		}
	})
	t.Run("a disabled but otherwise intact managed policy is left for the look-alike", func(t *testing.T) {
		store := &memStore{policies: []capolicy.Policy{managed(capolicy.StateDisabled), lookAlike}}
		out := run(t, newReconciler(store, true))
		if a := out.Actions[0]; a.Kind != ActionNone || len(store.updates) != 0 {
			t.Fatalf("action %+v, %d updates; want nothing written", a, len(store.updates))
		}
	})
	t.Run("a disabled and weakened managed policy is restored, to report-only", func(t *testing.T) {
		store := &memStore{policies: []capolicy.Policy{weakened(managed(capolicy.StateDisabled)), lookAlike}}
		out := run(t, newReconciler(store, true))
		if a := out.Actions[0]; a.Kind != ActionUpdate || !a.Performed || store.policies[0].State != capolicy.StateReportOnly {
			t.Fatalf("action %+v state %v, want a restore to report-only", a, store.policies[0].State)
		}
	})
}

func TestOwnership(t *testing.T) {
	squatter := func() capolicy.Policy {
		p := weakened(managed(capolicy.StateReportOnly))
		p.ID = squatterID
		return p
	}
	t.Run("a recorded id wins over a squatting policy with the managed name", func(t *testing.T) {
		store := &memStore{policies: []capolicy.Policy{squatter(), weakened(managed(capolicy.StateEnabled))}}
		owner := &MemoryOwnership{}
		_ = owner.SetManagedPolicyID(context.Background(), managed(0).ID)
		r := newReconciler(store, true)
		r.Owner = owner
		out := run(t, r)
		a := out.Actions[0]
		if a.Kind != ActionUpdate || !a.Performed || len(store.updates) != 1 || store.updates[0].id != managed(0).ID {
			t.Fatalf("action %+v, updates %+v; want only the recorded policy restored", a, store.updates)
		}
		if !hasWarning(out, squatterID) {
			t.Errorf("warnings %v do not name the squatting policy", out.Warnings)
		}
		if again := run(t, r); len(store.updates) != 1 || again.Actions[0].Kind != ActionNone {
			t.Errorf("second run: %+v, %d updates; want nothing written", again.Actions[0], len(store.updates))
		}
	})
	t.Run("a recorded policy that the list does not show yet is read by id, not created again", func(t *testing.T) {
		store := &memStore{policies: []capolicy.Policy{managed(capolicy.StateReportOnly)}, unlisted: []string{managed(0).ID}}
		owner := &MemoryOwnership{}
		_ = owner.SetManagedPolicyID(context.Background(), managed(0).ID)
		r := newReconciler(store, true)
		r.Owner = owner
		out := run(t, r)
		if len(store.created) != 0 || len(store.updates) != 0 || out.Report.Verdict != capolicy.VerdictPendingEnforcement {
			t.Fatalf("verdict %s, %d creates, %d updates; want the lagging policy found (pending enforcement) and nothing written",
				out.Report.Verdict, len(store.created), len(store.updates))
		}
		if !slices.Contains(store.gets, managed(0).ID) {
			t.Errorf("gets %v; want the recorded id read", store.gets)
		}
	})
	t.Run("a recorded policy that is gone for good is created again", func(t *testing.T) {
		store := &memStore{}
		owner := &MemoryOwnership{}
		_ = owner.SetManagedPolicyID(context.Background(), "deleted-policy-id")
		r := newReconciler(store, true)
		r.Owner = owner
		if a := run(t, r).Actions[0]; a.Kind != ActionCreate || !a.Performed || len(store.created) != 1 {
			t.Fatalf("action %+v, %d creates; want one create", a, len(store.created))
		}
	})
	t.Run("a recorded policy that cannot be read fails the run, so it is retried rather than created twice", func(t *testing.T) {
		store := &memStore{getErr: retryErr{}}
		owner := &MemoryOwnership{}
		_ = owner.SetManagedPolicyID(context.Background(), managed(0).ID)
		r := newReconciler(store, true)
		r.Owner = owner
		if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true}); err == nil || len(store.created) != 0 {
			t.Fatalf("err %v, %d creates; want an error and nothing created", err, len(store.created))
		}
	})
	t.Run("without a record two policies with the name are ambiguous and nothing is written", func(t *testing.T) {
		store := &memStore{policies: []capolicy.Policy{squatter(), weakened(managed(capolicy.StateEnabled))}}
		r := newReconciler(store, true)
		r.Owner = &MemoryOwnership{}
		if a := run(t, r).Actions[0]; a.Kind != ActionSkip || len(store.updates) != 0 {
			t.Fatalf("action %+v, %d updates; want a skip", a, len(store.updates))
		}
	})
	t.Run("a policy found by its unique name is adopted and recorded", func(t *testing.T) {
		store := &memStore{policies: []capolicy.Policy{weakened(managed(capolicy.StateEnabled))}}
		owner := &MemoryOwnership{}
		r := newReconciler(store, true)
		r.Owner = owner
		a := run(t, r).Actions[0]
		if id, _ := owner.ManagedPolicyID(context.Background()); id != managed(0).ID || !a.Adopted {
			t.Fatalf("recorded %q adopted %t, want %s adopted", id, a.Adopted, managed(0).ID)
		}
		// Once recorded, a squatter appearing later changes nothing.
		store.policies = append(store.policies, squatter())
		store.policies[0].GrantControls = nil
		if a := run(t, r).Actions[0]; a.Kind != ActionUpdate || !a.Performed || a.Adopted {
			t.Fatalf("action %+v, want the recorded policy restored without adopting again", a)
		}
	})
	t.Run("a report adopts nothing", func(t *testing.T) {
		store := &memStore{policies: []capolicy.Policy{managed(capolicy.StateEnabled)}}
		owner := &MemoryOwnership{}
		r := newReconciler(store, true)
		r.Owner = owner
		if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerHTTP}); err != nil {
			t.Fatal(err)
		}
		if id, _ := owner.ManagedPolicyID(context.Background()); id != "" {
			t.Errorf("a report recorded %q", id)
		}
	})
	t.Run("a recorded policy that was deleted is created anew and the new id recorded", func(t *testing.T) {
		store := &memStore{policies: []capolicy.Policy{weakened(adminPolicy("p1", capolicy.StateEnabled))}}
		owner := &MemoryOwnership{}
		_ = owner.SetManagedPolicyID(context.Background(), "bbbbbbbb-0000-4000-8000-00000000dead")
		r := newReconciler(store, true)
		r.Owner = owner
		a := run(t, r).Actions[0]
		id, _ := owner.ManagedPolicyID(context.Background())
		if a.Kind != ActionCreate || !a.Performed || len(store.created) != 1 || id != store.created[0].ID {
			t.Fatalf("action %+v, recorded %q, created %d; want one create, recorded", a, id, len(store.created))
		}
	})
	t.Run("a recorded id that names a policy Microsoft manages is never written", func(t *testing.T) {
		p := weakened(managed(capolicy.StateEnabled))
		// Microsoft's own policies carry its name prefix (and a templateId, as template-made ones do).
		p.DisplayName = "Microsoft-managed: Multifactor authentication for Azure management"
		p.TemplateID = "c7503427-338e-4c5e-902d-abe252abfde8"
		store := &memStore{policies: []capolicy.Policy{p}}
		owner := &MemoryOwnership{}
		_ = owner.SetManagedPolicyID(context.Background(), p.ID)
		r := newReconciler(store, true)
		r.Owner = owner
		if a := run(t, r).Actions[0]; a.Kind != ActionSkip || len(store.updates) != 0 {
			t.Fatalf("action %+v; want a skip", a)
		}
	})
}

func TestMemoryOwnershipIsSafeForConcurrentUse(t *testing.T) {
	var o MemoryOwnership
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = o.SetManagedPolicyID(context.Background(), strings.Repeat("x", i+1))
			if _, err := o.ManagedPolicyID(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if id, _ := o.ManagedPolicyID(context.Background()); id == "" {
		t.Fatal("nothing recorded")
	}
}

func TestBreakGlassUsers(t *testing.T) {
	t.Run("a break-glass user that answers 404 stays in the written definition, with a warning", func(t *testing.T) {
		// A deleted account leaves its groups too.
		store := &memStore{users: map[string]bool{}, groups: map[string][]string{bgGroup: {}}}
		sk := &sink{name: "test"}
		out := run(t, newReconciler(store, true, sk))
		if len(store.created) != 1 || strings.Join(store.created[0].Conditions.Users.ExcludeUsers, ",") != bgUser {
			t.Fatalf("created %+v, want one policy still excluding the user", store.created)
		}
		if !hasWarning(out, bgUser) || len(sk.alerts) != 1 || len(sk.alerts[0].Warnings) == 0 {
			t.Errorf("warnings %v, alerts %+v; want the deleted user named", out.Warnings, sk.alerts)
		}
	})
	t.Run("without User.Read.All every user is kept and one warning says why", func(t *testing.T) {
		store := &memStore{userErr: forbiddenErr{perm: "User.Read.All"}}
		r := newReconciler(store, true)
		out := run(t, r)
		if len(store.created) != 1 || strings.Join(store.created[0].Conditions.Users.ExcludeUsers, ",") != bgUser {
			t.Fatalf("created %+v, want the break-glass user kept", store.created)
		}
		n := 0
		for _, w := range out.Warnings {
			if strings.Contains(w, "User.Read.All") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("warnings %v, want exactly one naming User.Read.All", out.Warnings)
		}
	})
	t.Run("another lookup failure fails the run", func(t *testing.T) {
		store := &memStore{userErr: retryErr{}}
		_, err := newReconciler(store, true).Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true})
		var re interface{ Retriable() bool }
		if !errors.As(err, &re) || len(store.created) != 0 {
			t.Fatalf("err %v, %d creates; want a retriable error and nothing written", err, len(store.created))
		}
	})
	t.Run("users are not looked up when the conditions are not written", func(t *testing.T) {
		store := &memStore{policies: []capolicy.Policy{weakened(managed(capolicy.StateEnabled))}, userErr: errors.New("must not be called")}
		if a := run(t, newReconciler(store, true)).Actions[0]; !a.Performed {
			t.Fatalf("action %+v, want the grant restored", a)
		}
	})
}

// A write Graph accepts is claimed only when the policy read back meets the control.
func TestReadBack(t *testing.T) {
	t.Run("a restore that did not hold is reported, never as performed", func(t *testing.T) {
		p := managed(capolicy.StateEnabled)
		p.Conditions.Users.ExcludeRoles = []string{"62e90394-69f5-4237-9190-012177145e10"}
		store := &memStore{policies: []capolicy.Policy{p}, ignore: []string{"conditions"}}
		sk := &sink{name: "test"}
		out := run(t, newReconciler(store, true, sk))
		a := out.Actions[0]
		if a.Performed || !a.Written || len(a.Remaining) == 0 || a.Remaining[0].Code != capolicy.CodeExcludesRoles {
			t.Fatalf("action %+v, want written, not performed, still failing EXCLUDES_ROLES", a)
		}
		// The read shows the policy as it was where the write changed it, which is what replication
		// lag looks like: it is read again on the whole schedule before the restore is called failed.
		if len(store.gets) != len(testReadBackDelays) || store.gets[0] != p.ID {
			t.Errorf("read back %v, want the managed policy once per read-back delay", store.gets)
		}
		if len(sk.alerts) != 1 || !strings.Contains(sk.alerts[0].NextStep, "did not hold") || !strings.Contains(sk.alerts[0].NextStep, capolicy.CodeExcludesRoles) {
			t.Errorf("alerts %+v, want one saying the restore did not hold and what still fails", sk.alerts)
		}
	})
	t.Run("a write that cannot be read back is not claimed", func(t *testing.T) {
		store := &memStore{policies: []capolicy.Policy{weakened(managed(capolicy.StateEnabled))}, getErr: retryErr{}}
		sk := &sink{name: "test"}
		a := run(t, newReconciler(store, true, sk)).Actions[0]
		if a.Performed || !a.Written || len(store.updates) != 1 {
			t.Fatalf("action %+v, want written and not performed", a)
		}
		if !strings.Contains(sk.alerts[0].NextStep, "did not hold") {
			t.Errorf("next step %q", sk.alerts[0].NextStep)
		}
	})
	t.Run("a created policy pending enforcement counts as performed", func(t *testing.T) {
		store := &memStore{}
		a := run(t, newReconciler(store, true)).Actions[0]
		if a.Kind != ActionCreate || !a.Performed || len(store.gets) != 1 || store.gets[0] != store.created[0].ID {
			t.Fatalf("action %+v gets %v, want a confirmed create", a, store.gets)
		}
	})
}
