package reconcile

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/caguard/caguard/handler/capolicy"
)

const (
	bgUser2  = "33333333-3333-4333-8333-333333333333"
	bgGroup2 = "44444444-4444-4444-8444-444444444444"
)

// twoOfEach is a configuration with two break-glass users and two break-glass groups.
func twoOfEach() capolicy.Config {
	c := cfg()
	c.BreakGlassUserIDs = []string{bgUser, bgUser2}
	c.BreakGlassGroupIDs = []string{bgGroup, bgGroup2}
	return c
}

func excludes(p capolicy.Policy) (users, groups string) {
	if p.Conditions.Users == nil {
		return "", ""
	}
	u := slices.Clone(p.Conditions.Users.ExcludeUsers)
	g := slices.Clone(p.Conditions.Users.ExcludeGroups)
	slices.Sort(u)
	slices.Sort(g)
	return strings.Join(u, ","), strings.Join(g, ",")
}

// A 404 on a break-glass object is never a reason to exclude fewer of them.
func TestBreakGlassNeverDroppedOnA404(t *testing.T) {
	c := twoOfEach()
	wantUsers, wantGroups := strings.Join([]string{bgUser, bgUser2}, ","), strings.Join([]string{bgGroup, bgGroup2}, ",")
	enabled := func() capolicy.Policy {
		p := capolicy.Desired(c)
		p.ID, p.State = managed(0).ID, capolicy.StateEnabled
		return p
	}
	newR := func(store *memStore, sk *sink) *Reconciler {
		r := newReconciler(store, true, sk)
		r.Policy = c
		return r
	}
	t.Run("a transient 404 on a group writes nothing, alerts, and the next run is compliant", func(t *testing.T) {
		store := &memStore{policies: []capolicy.Policy{enabled()}, groups: map[string][]string{bgGroup2: {bgUser2}}}
		sk := &sink{name: "test"}
		r := newR(store, sk)
		out := run(t, r)
		if len(store.updates)+len(store.created) != 0 {
			t.Fatalf("%d updates, %d creates after a 404 on a group; want nothing written", len(store.updates), len(store.created))
		}
		if out.Report.Verdict == capolicy.VerdictCompliant || len(sk.alerts) != 1 || !hasWarning(out, bgGroup) {
			t.Fatalf("verdict %s, %d alerts, warnings %v; want the unreadable group alerted and named", out.Report.Verdict, len(sk.alerts), out.Warnings)
		}
		if !strings.Contains(out.Actions[0].Reason, "answer 404") {
			t.Errorf("action reason %q, want it to say why nothing is written", out.Actions[0].Reason)
		}
		store.groups[bgGroup] = []string{bgUser}
		if out := run(t, r); out.Report.Verdict != capolicy.VerdictCompliant || len(store.updates)+len(store.created) != 0 {
			t.Fatalf("after the group replicated: verdict %s, %d writes; want compliant, nothing written", out.Report.Verdict, len(store.updates)+len(store.created))
		}
		if u, g := excludes(store.policies[0]); u != wantUsers || g != wantGroups {
			t.Errorf("the policy excludes users %s, groups %s; want all of them still", u, g)
		}
	})
	t.Run("a 404 on every break-glass object keeps them all in a restore", func(t *testing.T) {
		p := enabled()
		p.Conditions.Users.IncludeUsers = []string{someone} // narrowed: conditions must be written
		p.GrantControls = nil
		store := &memStore{policies: []capolicy.Policy{p}, groups: map[string][]string{}, users: map[string]bool{}}
		sk := &sink{name: "test"}
		out := run(t, newR(store, sk))
		if len(store.updates) != 1 || !slices.Contains(store.updates[0].fields, "conditions") {
			t.Fatalf("updates %+v, want one that writes the conditions", store.updates)
		}
		if u, g := excludes(store.updates[0].policy); u != wantUsers || g != wantGroups {
			t.Errorf("the write excludes users %s, groups %s; want every configured break-glass object", u, g)
		}
		if st := store.policies[0].State; st != capolicy.StateEnabled {
			t.Errorf("state %s, want enabled kept", st)
		}
		for _, id := range []string{bgUser, bgUser2, bgGroup, bgGroup2} {
			if !hasWarning(out, id) {
				t.Errorf("warnings %v do not name %s", out.Warnings, id)
			}
		}
	})
	t.Run("a write Graph refuses because an object is gone says so, and keeps it", func(t *testing.T) {
		store := &memStore{groups: map[string][]string{bgGroup: {bgUser}, bgGroup2: {}}, users: map[string]bool{bgUser: true}, writeErr: badRequest{}}
		sk := &sink{name: "test"}
		out := run(t, newR(store, sk))
		a := out.Actions[0]
		if a.Written || !strings.Contains(a.Reason, "Graph refused the write") || !strings.Contains(a.Reason, bgUser2) {
			t.Fatalf("action %+v, want a refused create naming the user that answers 404", a)
		}
		if len(sk.alerts) != 1 {
			t.Fatalf("%d alerts, want 1", len(sk.alerts))
		}
	})
}

type badRequest struct{}

func (badRequest) Error() string   { return "400 Request_BadRequest" }
func (badRequest) Retriable() bool { return false }

// The managed policy that lost a break-glass exclusion gets it back, with everything else it holds
// and its state kept, even while another policy keeps the tenant compliant.
func TestLostBreakGlassExclusionIsPutBack(t *testing.T) {
	for _, st := range []capolicy.State{capolicy.StateEnabled, capolicy.StateReportOnly, capolicy.StateDisabled} {
		t.Run(st.String(), func(t *testing.T) {
			own := managed(st)
			own.Conditions.Users.ExcludeGroups = nil
			own.Conditions.Locations = &capolicy.Locations{IncludeLocations: []string{"All"}}
			store := &memStore{policies: []capolicy.Policy{adminPolicy("p1", capolicy.StateEnabled), own}}
			sk := &sink{name: "test"}
			out := run(t, newReconciler(store, true, sk))
			a := out.Actions[0]
			if a.Kind != ActionUpdate || !a.Performed || strings.Join(a.Fields, ",") != "conditions" {
				t.Fatalf("action %+v, want the conditions written and confirmed", a)
			}
			got := store.policies[1]
			if _, g := excludes(got); g != bgGroup {
				t.Errorf("excluded groups %q, want %s back", g, bgGroup)
			}
			if got.State != st || got.Conditions.Locations == nil {
				t.Errorf("state %s, locations %+v; want the state and the administrator's locations kept", got.State, got.Conditions.Locations)
			}
			if !hasWarning(out, bgGroup) || len(sk.alerts) != 1 {
				t.Errorf("warnings %v, %d alerts; want the put-back named and alerted", out.Warnings, len(sk.alerts))
			}
			if again := run(t, newReconciler(store, true)); again.Actions[0].Kind != ActionNone || len(store.updates) != 1 {
				t.Errorf("second run %+v, %d updates; want nothing more written", again.Actions[0], len(store.updates))
			}
		})
	}
	t.Run("not when the group holds other accounts: that would fail the control", func(t *testing.T) {
		own := managed(capolicy.StateEnabled)
		own.Conditions.Users.ExcludeGroups = nil
		store := &memStore{policies: []capolicy.Policy{own}, groups: map[string][]string{bgGroup: {bgUser, someone}}}
		out := run(t, newReconciler(store, true))
		if len(store.updates) != 0 || !hasWarning(out, "would make it fail") {
			t.Fatalf("%d updates, warnings %v; want nothing written and a warning", len(store.updates), out.Warnings)
		}
	})
}

// Over random patterns of 404s and random weakenings, no run ever writes a policy, nor leaves the
// managed policy, excluding fewer configured break-glass objects than all of them.
func TestBreakGlassInvariantOverRandom404s(t *testing.T) {
	c := twoOfEach()
	ids := []string{bgUser, bgUser2, bgGroup, bgGroup2}
	weakenings := []func(p *capolicy.Policy){
		func(p *capolicy.Policy) { p.GrantControls = nil },
		func(p *capolicy.Policy) { p.Conditions.Users.IncludeUsers = []string{someone} },
		func(p *capolicy.Policy) { p.Conditions.Users.ExcludeUsers = nil },
		func(p *capolicy.Policy) { p.Conditions.Users.ExcludeGroups = []string{bgGroup} },
		func(p *capolicy.Policy) { p.State = capolicy.StateDisabled },
		func(p *capolicy.Policy) {
			p.Conditions.Users.ExcludeRoles = []string{"62e90394-69f5-4237-9190-012177145e10"}
		},
		func(p *capolicy.Policy) {},
	}
	rng := rand.New(rand.NewPCG(19, 404))
	for trial := range 300 {
		store := &memStore{groups: map[string][]string{}, users: map[string]bool{}}
		r := newReconciler(store, true)
		r.Policy = c
		for step := range 6 {
			// Each object answers 404 at random on this run, as replication lag would have it.
			clear(store.groups)
			clear(store.users)
			absent := []string{}
			for _, id := range ids {
				if rng.IntN(3) == 0 {
					absent = append(absent, id)
					continue
				}
				if strings.HasPrefix(id, "1") || strings.HasPrefix(id, "3") {
					store.users[id] = true
				} else {
					store.groups[id] = []string{}
				}
			}
			if len(store.policies) > 0 && rng.IntN(2) == 0 {
				weakenings[rng.IntN(len(weakenings))](&store.policies[0])
			}
			writes := len(store.created) + len(store.updates)
			out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true})
			if err != nil {
				t.Fatalf("trial %d step %d (404: %v): %v", trial, step, absent, err)
			}
			var written []capolicy.Policy
			for _, p := range store.created[min(len(store.created), writes):] {
				written = append(written, p)
			}
			for _, u := range store.updates[max(0, writes-len(store.created)):] {
				if slices.Contains(u.fields, "conditions") {
					written = append(written, u.policy)
				}
			}
			for _, p := range written {
				if users, groups := lostBreakGlass(p, c); len(users)+len(groups) > 0 {
					t.Fatalf("trial %d step %d (404: %v): a write lost %v %v: %+v", trial, step, absent, users, groups, out.Actions)
				}
			}
			if len(store.policies) > 0 && out.Actions[0].Performed {
				if users, groups := lostBreakGlass(store.policies[0], c); len(users)+len(groups) > 0 {
					t.Fatalf("trial %d step %d (404: %v): the managed policy lost %v %v after a performed %+v", trial, step, absent, users, groups, out.Actions[0])
				}
			}
		}
	}
}

// An alert needs nothing but a sink: in alert mode no lock is taken, so storage failing changes nothing.
func TestAlertModeNeedsNoStorage(t *testing.T) {
	store := &memStore{policies: []capolicy.Policy{weakened(adminPolicy("p1", capolicy.StateEnabled))}}
	sk := &sink{name: "test"}
	r := newReconciler(store, false, sk)
	r.Lock = failingLock{err: errors.New("storage must not be asked")}
	r.Owner = failingOwner{}
	out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerAuditEvent, Act: true})
	if err != nil {
		t.Fatalf("alert mode with storage down: %v", err)
	}
	if len(sk.alerts) != 1 || out.Report.Verdict != capolicy.VerdictNonCompliant {
		t.Fatalf("%d alerts, verdict %s; want the non-compliant tenant alerted", len(sk.alerts), out.Report.Verdict)
	}
}

// In remediate mode, storage down stops the restore, not the alert: it says the restore was not
// attempted and why, and the run fails as retriable so the trigger tries again.
func TestRemediateWithStorageDownStillAlerts(t *testing.T) {
	store := &memStore{policies: []capolicy.Policy{weakened(adminPolicy("p1", capolicy.StateEnabled))}}
	sk := &sink{name: "test"}
	r := newReconciler(store, true, sk)
	r.Lock = failingLock{err: storageDown{}}
	out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerAuditEvent, Act: true})
	if !isRetriable(err) {
		t.Fatalf("err %v, want a retriable error", err)
	}
	if len(store.created)+len(store.updates) != 0 {
		t.Fatal("wrote without the lock")
	}
	if len(sk.alerts) != 1 || !strings.Contains(sk.alerts[0].Actions[0].Reason, "not attempted") || !strings.Contains(sk.alerts[0].Actions[0].Reason, "storage: acquire") {
		t.Fatalf("alerts %+v, want one saying the restore was not attempted, and why", sk.alerts)
	}
	if out.Actions[0].Performed {
		t.Error("a restore not attempted is reported performed")
	}
	t.Run("a compliant tenant needs no lock and the run succeeds", func(t *testing.T) {
		store := &memStore{policies: []capolicy.Policy{adminPolicy("p1", capolicy.StateEnabled)}}
		r := newReconciler(store, true)
		r.Lock = failingLock{err: storageDown{}}
		if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true}); err != nil {
			t.Fatal(err)
		}
	})
}

type storageDown struct{}

func (storageDown) Error() string   { return "acquire writer lease: dial tcp: connection refused" }
func (storageDown) Retriable() bool { return true }
func (storageDown) Brief() string   { return "storage: acquire writer lease: no answer from the account" }

type failingOwner struct{}

func (failingOwner) ManagedPolicyID(context.Context) (string, error) {
	return "", fmt.Errorf("storage down")
}
func (failingOwner) SetManagedPolicyID(context.Context, string) error {
	return fmt.Errorf("storage down")
}
