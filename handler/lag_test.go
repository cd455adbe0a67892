package main

import (
	"net/http"
	"testing"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/graphfake"
	"github.com/caguard/caguard/handler/reconcile"
)

// These tests play Entra's replication lag with the emulator's lag fault: right after a write a
// policy reads as it was, and right after a create it answers 404. The reconciler must neither call
// a restore failed nor create a second policy on such a read.

func TestReadBackWaitsOutAStaleRead(t *testing.T) {
	e := newTenant(t, "compliant.json", nil)
	e.edit(t, managedID, func(p map[string]any) { set(p, "conditions.users.excludeRoles", []string{globalAdmin}) })
	e.fake.Lag(3, 0)
	out := e.reconcile(t)
	if a := out.Actions[0]; a.Kind != reconcile.ActionUpdate || !a.Performed {
		t.Fatalf("action %+v, want a performed update once the read shows the write", a)
	}
	if n := len(e.fake.CallsTo("GET /v1.0/identity/conditionalAccess/policies/" + managedID)); n != 4 {
		t.Errorf("read the policy back %d times, want 4: three stale reads, then the write", n)
	}
	if next := e.reconcile(t); next.Actions[0].Kind != reconcile.ActionNone || len(e.writes()) != 1 {
		t.Errorf("next run: %+v, %d writes; want nothing more written", next.Actions[0], len(e.writes()))
	}
}

func TestCreateIsNotRepeatedWhileItReplicates(t *testing.T) {
	e := newTenant(t, "empty.json", nil)
	reads := len(e.rec.ReadBackDelays)
	// Longer than one run's read-back: the first run cannot confirm its create, and the second still
	// sees neither the policy in the list nor, at first, by id.
	e.fake.Lag(0, reads+2)
	first := e.reconcile(t)
	if a := first.Actions[0]; a.Kind != reconcile.ActionCreate || !a.Written || a.Performed {
		t.Fatalf("first run: %+v, want a create written but not yet confirmed", a)
	}
	second := e.reconcile(t)
	creates := 0
	for _, w := range e.writes() {
		if w.Method == http.MethodPost {
			creates++
		}
	}
	if creates != 1 {
		t.Fatalf("%d creates, want 1: the recorded id must be read again before it counts as deleted", creates)
	}
	if a := second.Actions[0]; a.Kind == reconcile.ActionCreate {
		t.Errorf("second run planned %+v, want no second create", a)
	}
	if second.Report.Verdict != capolicy.VerdictPendingEnforcement {
		t.Errorf("second run verdict %s, want pending-enforcement (the created policy, found by id)", second.Report.Verdict)
	}
}

func TestTransient404OnABreakGlassGroupAgainstGraph(t *testing.T) {
	e := newTenant(t, "compliant.json", nil)
	e.fake.Inject(graphfake.Fault{Match: "GET /v1.0/groups/" + breakGlassGroup + "/transitiveMembers", Status: http.StatusNotFound, Times: 1})
	before, _ := e.fake.Policy(managedID)
	out := e.reconcile(t)
	if len(e.writes()) != 0 {
		t.Fatalf("wrote %+v after one 404 on the break-glass group; want nothing written", e.writes())
	}
	if out.Alert == nil || out.Report.Verdict == capolicy.VerdictCompliant {
		t.Fatalf("verdict %s, alert %v; want the unreadable group alerted", out.Report.Verdict, out.Alert)
	}
	if after, _ := e.fake.Policy(managedID); string(after) != string(before) {
		t.Errorf("the managed policy changed: %s", after)
	}
	if again := e.reconcile(t); again.Report.Verdict != capolicy.VerdictCompliant || len(e.writes()) != 0 {
		t.Errorf("after the 404 passed: verdict %s, %d writes; want compliant, nothing written", again.Report.Verdict, len(e.writes()))
	}
}
