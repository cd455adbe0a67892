package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/auditlog"
	"github.com/caguard/caguard/handler/capolicy"
)

// memStore is an in-memory PolicyStore: the reconciler's own interface, not a mock of an SDK. The
// Graph adapter is tested against the local Graph emulator, and the whole handler end to end.
type memStore struct {
	mu       sync.Mutex
	policies []capolicy.Policy
	groups   map[string][]string
	users    map[string]bool // nil: every user exists
	userErr  error
	listErr  error
	writeErr error
	getErr   error
	// unlisted are ids that GetPolicy answers but ListPolicies leaves out, as Graph's list can lag a
	// create.
	unlisted []string
	// ignore lists top-level properties an update is accepted for but does not change, like a Graph
	// that takes a write and applies only part of it.
	ignore  []string
	created []capolicy.Policy
	updates []update
	gets    []string
	nextID  int
}

type update struct {
	id     string
	policy capolicy.Policy
	fields []string
}

func (m *memStore) ListPolicies(ctx context.Context) ([]capolicy.Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listErr != nil {
		return nil, m.listErr
	}
	var out []capolicy.Policy
	for _, p := range m.policies {
		if !slices.Contains(m.unlisted, p.ID) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (m *memStore) GetPolicy(ctx context.Context, id string) (capolicy.Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets = append(m.gets, id)
	if m.getErr != nil {
		return capolicy.Policy{}, m.getErr
	}
	for _, p := range m.policies {
		if p.ID == id {
			return p, nil
		}
	}
	return capolicy.Policy{}, notFoundErr{}
}

func (m *memStore) UserExists(ctx context.Context, id string) (bool, error) {
	if m.userErr != nil {
		return false, m.userErr
	}
	return m.users == nil || m.users[id], nil
}

func (m *memStore) CreatePolicy(ctx context.Context, p capolicy.Policy) (capolicy.Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.writeErr != nil {
		return capolicy.Policy{}, m.writeErr
	}
	m.nextID++
	p.ID = fmt.Sprintf("aaaaaaaa-0000-4000-8000-%012d", m.nextID)
	m.created = append(m.created, p)
	m.policies = append(m.policies, p)
	return p, nil
}

func (m *memStore) UpdatePolicy(ctx context.Context, id string, p capolicy.Policy, fields []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.writeErr != nil {
		return m.writeErr
	}
	m.updates = append(m.updates, update{id, p, fields})
	for i := range m.policies {
		if m.policies[i].ID != id {
			continue
		}
		for _, f := range fields {
			if slices.Contains(m.ignore, f) {
				continue
			}
			switch f {
			case "state":
				m.policies[i].State = p.State
			case "displayName":
				m.policies[i].DisplayName = p.DisplayName
			case "conditions":
				m.policies[i].Conditions = p.Conditions
			case "grantControls":
				m.policies[i].GrantControls = p.GrantControls
			case "sessionControls":
				m.policies[i].SessionControls = p.SessionControls
			}
		}
	}
	return nil
}

func (m *memStore) GroupTransitiveMemberIDs(ctx context.Context, id string) ([]string, error) {
	ids, ok := m.groups[id]
	if !ok {
		return nil, notFoundErr{}
	}
	return ids, nil
}

type notFoundErr struct{}

func (notFoundErr) Error() string  { return "404 Request_ResourceNotFound" }
func (notFoundErr) NotFound() bool { return true }

func (m *memStore) AuthenticationStrengths(ctx context.Context) ([]capolicy.AuthenticationStrength, error) {
	return nil, nil
}

type sink struct {
	name   string
	err    error
	alerts []Alert
}

func (s *sink) Name() string { return s.name }
func (s *sink) Send(ctx context.Context, a Alert) error {
	s.alerts = append(s.alerts, a)
	return s.err
}

type retryErr struct{}

func (retryErr) Error() string   { return "503 service unavailable" }
func (retryErr) Retriable() bool { return true }

const (
	bgUser  = "11111111-1111-4111-8111-111111111111"
	bgGroup = "22222222-2222-4222-8222-222222222222"
	someone = "99999999-9999-4999-8999-999999999999"
)

func cfg() capolicy.Config {
	return capolicy.Config{
		BreakGlassUserIDs:  []string{bgUser},
		BreakGlassGroupIDs: []string{bgGroup},
		ManagedPolicyName:  "caguard: require MFA for Azure management",
	}
}

// adminPolicy is an admin-made policy that meets the control.
func adminPolicy(id string, st capolicy.State) capolicy.Policy {
	return capolicy.Policy{
		ID: id, DisplayName: "CA001: MFA for Azure management", State: st,
		Conditions: capolicy.Conditions{
			Users:          &capolicy.Users{IncludeUsers: []string{"All"}, ExcludeUsers: []string{bgUser}},
			Applications:   &capolicy.Applications{IncludeApplications: []string{capolicy.AzureManagementAppID}},
			ClientAppTypes: []string{"all"},
		},
		GrantControls: &capolicy.GrantControls{Operator: "OR", BuiltInControls: []string{"mfa"}},
	}
}

func weakened(p capolicy.Policy) capolicy.Policy {
	p.GrantControls = nil
	return p
}

// msManagedName is a Microsoft-managed policy's name: Microsoft's policies carry the prefix.
const msManagedName = capolicy.MicrosoftManagedPrefix + ": Multifactor authentication for Azure management"

func managed(st capolicy.State) capolicy.Policy {
	p := capolicy.Desired(cfg())
	p.ID = "bbbbbbbb-0000-4000-8000-000000000001"
	p.State = st
	return p
}

func newReconciler(store *memStore, remediate bool, sinks ...AlertSink) *Reconciler {
	if store.groups == nil {
		store.groups = map[string][]string{bgGroup: {bgUser}}
	}
	return &Reconciler{
		Store: store, Sinks: sinks, Policy: cfg(), TenantID: "0b1c2d3e-0000-4000-8000-00000000aaaa",
		Remediate: remediate, Now: func() time.Time { return time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC) },
		Log: zap.NewNop(),
		// Reads after a write are repeated while they lag; the tests need no real waits.
		ReadBackDelays: testReadBackDelays,
	}
}

var testReadBackDelays = []time.Duration{0, time.Millisecond, time.Millisecond}

func TestReconcile(t *testing.T) {
	tests := []struct {
		name        string
		policies    []capolicy.Policy
		groups      map[string][]string
		remediate   bool
		act         bool
		wantVerdict capolicy.Verdict
		wantAction  string
		performed   bool
		wantAlert   bool
		check       func(t *testing.T, s *memStore)
		managedName string // MANAGED_POLICY_NAME, when not the default
	}{
		{name: "compliant tenant: nothing written, no alert",
			policies: []capolicy.Policy{adminPolicy("p1", capolicy.StateEnabled)}, remediate: true, act: true,
			wantVerdict: capolicy.VerdictCompliant, wantAction: ActionNone},
		{name: "weakened policy and no managed policy: create it in report-only mode",
			policies: []capolicy.Policy{weakened(adminPolicy("p1", capolicy.StateEnabled))}, remediate: true, act: true,
			wantVerdict: capolicy.VerdictNonCompliant, wantAction: ActionCreate, performed: true, wantAlert: true,
			check: func(t *testing.T, s *memStore) {
				if len(s.created) != 1 || s.created[0].State != capolicy.StateReportOnly {
					t.Fatalf("created %+v, want one report-only policy", s.created)
				}
				if s.created[0].DisplayName != cfg().ManagedPolicyName {
					t.Errorf("created %q, want the managed name", s.created[0].DisplayName)
				}
			}},
		{name: "alert mode only says what it would do",
			policies: []capolicy.Policy{weakened(adminPolicy("p1", capolicy.StateEnabled))}, remediate: false, act: true,
			wantVerdict: capolicy.VerdictNonCompliant, wantAction: ActionCreate, wantAlert: true},
		{name: "a report request neither writes nor alerts",
			policies: []capolicy.Policy{weakened(adminPolicy("p1", capolicy.StateEnabled))}, remediate: true, act: false,
			wantVerdict: capolicy.VerdictNonCompliant, wantAction: ActionCreate},
		{name: "report-only compliant policy is pending enforcement and is left alone",
			policies: []capolicy.Policy{adminPolicy("p1", capolicy.StateReportOnly)}, remediate: true, act: true,
			wantVerdict: capolicy.VerdictPendingEnforcement, wantAction: ActionNone, wantAlert: true},
		{name: "enabled managed policy that lost its grant gets the grant back and stays enabled",
			policies: []capolicy.Policy{weakened(managed(capolicy.StateEnabled))}, remediate: true, act: true,
			wantVerdict: capolicy.VerdictNonCompliant, wantAction: ActionUpdate, performed: true, wantAlert: true,
			check: func(t *testing.T, s *memStore) {
				if len(s.updates) != 1 {
					t.Fatalf("updates %d, want 1", len(s.updates))
				}
				u := s.updates[0]
				if strings.Join(u.fields, ",") != "grantControls" {
					t.Errorf("patched fields %v, want only grantControls", u.fields)
				}
				if u.policy.State != capolicy.StateEnabled {
					t.Errorf("state %v, want enabled kept", u.policy.State)
				}
			}},
		{name: "disabled managed policy is restored to report-only, never enabled",
			policies: []capolicy.Policy{managed(capolicy.StateDisabled)}, remediate: true, act: true,
			wantVerdict: capolicy.VerdictNonCompliant, wantAction: ActionUpdate, performed: true, wantAlert: true,
			check: func(t *testing.T, s *memStore) {
				u := s.updates[0]
				if strings.Join(u.fields, ",") != "state" || u.policy.State != capolicy.StateReportOnly {
					t.Errorf("patched %v to %v, want state to report-only", u.fields, u.policy.State)
				}
			}},
		{name: "managed policy with an extra excluded user loses the exclusion",
			policies: []capolicy.Policy{func() capolicy.Policy {
				p := managed(capolicy.StateEnabled)
				p.Conditions.Users.ExcludeUsers = append(p.Conditions.Users.ExcludeUsers, someone)
				return p
			}()}, remediate: true, act: true,
			wantVerdict: capolicy.VerdictNonCompliant, wantAction: ActionUpdate, performed: true, wantAlert: true,
			check: func(t *testing.T, s *memStore) {
				if strings.Join(s.updates[0].fields, ",") != "conditions" {
					t.Errorf("patched %v, want conditions", s.updates[0].fields)
				}
			}},
		{name: "an administrator's stricter grant survives a restore of the conditions",
			policies: []capolicy.Policy{func() capolicy.Policy {
				p := managed(capolicy.StateEnabled)
				p.GrantControls = &capolicy.GrantControls{Operator: "AND", BuiltInControls: []string{"mfa", "compliantDevice"}}
				p.SessionControls = &capolicy.SessionControls{SignInFrequency: &capolicy.SignInFrequency{IsEnabled: true, Value: 4, Type: "hours"}}
				p.Conditions.Users.ExcludeUsers = append(p.Conditions.Users.ExcludeUsers, someone)
				return p
			}()}, remediate: true, act: true,
			wantVerdict: capolicy.VerdictNonCompliant, wantAction: ActionUpdate, performed: true, wantAlert: true,
			check: func(t *testing.T, s *memStore) {
				if got := strings.Join(s.updates[0].fields, ","); got != "conditions" {
					t.Errorf("patched %v, want only conditions: the AND grant and session controls are stricter, not broken", got)
				}
				g := s.policies[0].GrantControls
				if g == nil || g.Operator != "AND" || len(g.BuiltInControls) != 2 || s.policies[0].SessionControls == nil {
					t.Errorf("stricter settings lost: %+v %+v", g, s.policies[0].SessionControls)
				}
			}},
		{name: "disabled managed policy with a removed grant gets both back, in report-only",
			policies: []capolicy.Policy{weakened(managed(capolicy.StateDisabled))}, remediate: true, act: true,
			wantVerdict: capolicy.VerdictNonCompliant, wantAction: ActionUpdate, performed: true, wantAlert: true,
			check: func(t *testing.T, s *memStore) {
				if got := strings.Join(s.updates[0].fields, ","); got != "state,grantControls" {
					t.Errorf("patched %v, want state and grantControls", got)
				}
			}},
		{name: "two policies share the managed name: nothing is written",
			policies: []capolicy.Policy{weakened(managed(capolicy.StateEnabled)), func() capolicy.Policy {
				p := weakened(managed(capolicy.StateEnabled))
				p.ID = "bbbbbbbb-0000-4000-8000-000000000002"
				return p
			}()}, remediate: true, act: true,
			wantVerdict: capolicy.VerdictNonCompliant, wantAction: ActionSkip, wantAlert: true},
		{name: "a Microsoft-managed policy with the managed name is never written",
			managedName: msManagedName,
			policies: []capolicy.Policy{func() capolicy.Policy {
				p := weakened(managed(capolicy.StateEnabled))
				p.DisplayName = msManagedName
				p.TemplateID = "c7503427-338e-4c5e-902d-abe252abfde8"
				return p
			}()}, remediate: true, act: true,
			wantVerdict: capolicy.VerdictNonCompliant, wantAction: ActionSkip, wantAlert: true},
		{name: "a managed policy an administrator created from a template is restored like any other",
			policies: []capolicy.Policy{func() capolicy.Policy {
				p := weakened(managed(capolicy.StateEnabled))
				p.TemplateID = "c7503427-338e-4c5e-902d-abe252abfde8"
				return p
			}()}, remediate: true, act: true,
			wantVerdict: capolicy.VerdictNonCompliant, wantAction: ActionUpdate, performed: true, wantAlert: true},
		{name: "a break-glass group with an ordinary member cannot be fixed by a restore",
			policies: []capolicy.Policy{weakened(adminPolicy("p1", capolicy.StateEnabled))},
			groups:   map[string][]string{bgGroup: {bgUser, someone}}, remediate: true, act: true,
			wantVerdict: capolicy.VerdictNonCompliant, wantAction: ActionSkip, wantAlert: true},
		{name: "managed policy already matching its definition is not written again",
			policies: []capolicy.Policy{managed(capolicy.StateReportOnly)}, remediate: true, act: true,
			wantVerdict: capolicy.VerdictPendingEnforcement, wantAction: ActionNone, wantAlert: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &memStore{policies: tt.policies, groups: tt.groups}
			before := policiesJSON(t, store.policies)
			sk := &sink{name: "test"}
			r := newReconciler(store, tt.remediate, sk)
			if tt.managedName != "" {
				r.Policy.ManagedPolicyName = tt.managedName
			}
			out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: tt.act})
			if err != nil {
				t.Fatal(err)
			}
			if out.Report.Verdict != tt.wantVerdict {
				t.Errorf("verdict = %s, want %s (%s)", out.Report.Verdict, tt.wantVerdict, out.Report.Summary)
			}
			if len(out.Actions) != 1 || out.Actions[0].Kind != tt.wantAction || out.Actions[0].Performed != tt.performed {
				t.Fatalf("actions = %+v, want %s performed=%t", out.Actions, tt.wantAction, tt.performed)
			}
			if got := len(sk.alerts) > 0; got != tt.wantAlert {
				t.Errorf("alerted = %t, want %t", got, tt.wantAlert)
			}
			if !tt.performed && (len(store.created) > 0 || len(store.updates) > 0) {
				t.Errorf("wrote %d creates, %d updates; want none", len(store.created), len(store.updates))
			}
			// No policy but the managed one is ever written.
			for _, u := range store.updates {
				for _, p := range tt.policies {
					if p.ID == u.id && !strings.EqualFold(p.DisplayName, cfg().ManagedPolicyName) {
						t.Errorf("updated policy %s (%q), which caguard does not own", u.id, p.DisplayName)
					}
				}
			}
			if !tt.performed && policiesJSON(t, store.policies) != before {
				t.Errorf("tenant changed without a performed action")
			}
			if tt.check != nil {
				tt.check(t, store)
			}
		})
	}
}

func policiesJSON(t *testing.T, ps []capolicy.Policy) string {
	t.Helper()
	b, err := json.Marshal(ps)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A restore is idempotent: the run after a restore finds nothing to write.
func TestSecondRunWritesNothing(t *testing.T) {
	store := &memStore{policies: []capolicy.Policy{weakened(managed(capolicy.StateEnabled)), weakened(adminPolicy("p1", capolicy.StateEnabled))}}
	r := newReconciler(store, true)
	if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true}); err != nil {
		t.Fatal(err)
	}
	if len(store.updates) != 1 {
		t.Fatalf("first run: %d updates, want 1", len(store.updates))
	}
	out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true})
	if err != nil {
		t.Fatal(err)
	}
	if out.Report.Verdict != capolicy.VerdictCompliant || len(store.updates) != 1 || len(store.created) != 0 {
		t.Fatalf("second run: verdict %s, %d updates, %d creates; want compliant and no new writes",
			out.Report.Verdict, len(store.updates), len(store.created))
	}
}

// A configured break-glass group that answers 404 may be deleted or not yet replicated: it stays in
// the restored definition, and the warning and the alert name it; it does not stop the run.
func TestMissingBreakGlassGroup(t *testing.T) {
	store := &memStore{groups: map[string][]string{}}
	sk := &sink{name: "test"}
	r := newReconciler(store, true, sk)
	out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(store.created) != 1 {
		t.Fatalf("created %d policies, want 1", len(store.created))
	}
	if u := store.created[0].Conditions.Users; u == nil || strings.Join(u.ExcludeGroups, ",") != bgGroup {
		t.Errorf("created policy excludes %v, want the break-glass group kept", u)
	}
	if a := out.Actions[0]; !a.Performed {
		t.Errorf("action %+v, want a performed create", a)
	}
	if len(out.Warnings) != 1 || !strings.Contains(out.Warnings[0], bgGroup) || len(sk.alerts) != 1 || len(sk.alerts[0].Warnings) != 1 {
		t.Errorf("warnings %v / alert %+v, want the missing group named", out.Warnings, sk.alerts)
	}
}

// Concurrent triggers (Event Hub partitions, the timer, an HTTP caller) create the managed policy once.
func TestConcurrentRunsCreateOnePolicy(t *testing.T) {
	store := &memStore{}
	r := newReconciler(store, true)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerAuditEvent, Act: true}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(store.created) != 1 {
		t.Fatalf("created %d policies, want 1", len(store.created))
	}
}

func TestGraphErrorsPropagateWithTheirClass(t *testing.T) {
	store := &memStore{listErr: fmt.Errorf("page 2: %w", retryErr{})}
	r := newReconciler(store, true)
	_, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true})
	var re interface{ Retriable() bool }
	if !errors.As(err, &re) || !re.Retriable() {
		t.Fatalf("err = %v, want a retriable error", err)
	}

	// A write refused for good does not fail the run (a retry sends the same write): the alert says so.
	store = &memStore{policies: []capolicy.Policy{weakened(adminPolicy("p1", capolicy.StateEnabled))}, writeErr: errors.New("403 Authorization_RequestDenied")}
	sk := &sink{name: "test"}
	r = newReconciler(store, true, sk)
	out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true})
	if err != nil {
		t.Fatalf("err = %v, want the refusal in the alert instead", err)
	}
	if a := out.Actions[0]; a.Written || a.Performed || !strings.Contains(a.Reason, "Graph refused the write") || len(sk.alerts) != 1 {
		t.Fatalf("action %+v, alerts %d; want a refused write, alerted", a, len(sk.alerts))
	}

	// One a retry can fix fails the run, so the trigger retries.
	store = &memStore{policies: []capolicy.Policy{weakened(adminPolicy("p1", capolicy.StateEnabled))}, writeErr: retryErr{}}
	r = newReconciler(store, true)
	if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true}); err == nil || !strings.Contains(err.Error(), "create managed policy") {
		t.Fatalf("err = %v, want the create error", err)
	}
}

func TestAlertDelivery(t *testing.T) {
	drifted := []capolicy.Policy{weakened(adminPolicy("p1", capolicy.StateEnabled))}
	ok, bad := &sink{name: "ok"}, &sink{name: "bad", err: errors.New("webhook 500")}
	r := newReconciler(&memStore{policies: drifted}, false, bad, ok)
	if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true}); err != nil {
		t.Fatalf("one sink failing must not fail the run: %v", err)
	}
	if len(ok.alerts) != 1 || len(bad.alerts) != 1 {
		t.Fatalf("alerts ok=%d bad=%d, want each sink tried once", len(ok.alerts), len(bad.alerts))
	}
	r = newReconciler(&memStore{policies: drifted}, false, &sink{name: "bad", err: errors.New("down")})
	if _, err := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true}); err == nil {
		t.Fatal("every sink failing must fail the run, so that the trigger retries")
	}
}

func TestAlertSaysWhoChangedWhat(t *testing.T) {
	old := adminPolicy("p1", capolicy.StateEnabled)
	now := weakened(old)
	oldJSON, _ := json.Marshal(old)
	newJSON, _ := json.Marshal(now)
	hint := auditlog.Hint{
		Kind: auditlog.KindPolicyUpdated, Activity: "Update conditional access policy",
		PolicyID: "p1", PolicyName: old.DisplayName,
		Actor: auditlog.Actor{UserID: someone, UserPrincipalName: "mallory@contoso.example", IPAddress: "192.0.2.44"},
		Time:  time.Date(2026, 11, 20, 7, 59, 0, 0, time.UTC), CorrelationID: "c0ffee00-0000-4000-8000-000000000001",
		OldValue: oldJSON, NewValue: newJSON,
	}
	sk := &sink{name: "test"}
	r := newReconciler(&memStore{policies: []capolicy.Policy{now}}, false, sk)
	out, err := r.Reconcile(context.Background(), Request{Trigger: TriggerAuditEvent, Act: true, Hints: []auditlog.Hint{hint}})
	if err != nil {
		t.Fatal(err)
	}
	a := out.Alert
	if a == nil || len(sk.alerts) != 1 {
		t.Fatal("no alert")
	}
	if len(a.Changes) != 1 || a.Changes[0].Actor != "mallory@contoso.example" || a.Changes[0].ActorID != someone {
		t.Fatalf("changes = %+v", a.Changes)
	}
	var sawGrant bool
	for _, f := range a.Changes[0].Fields {
		if strings.HasPrefix(f.Field, "grantControls") {
			sawGrant = true
		}
	}
	if !sawGrant {
		t.Errorf("fields %+v do not show the removed grant", a.Changes[0].Fields)
	}
	if a.Closest == nil || a.Closest.ID != "p1" || len(a.Closest.Reasons) == 0 {
		t.Errorf("closest = %+v, want p1 with its reasons", a.Closest)
	}
	if a.ID == "" || a.NextStep == "" || a.TenantID == "" {
		t.Errorf("alert incomplete: %+v", a)
	}
	// The same failure gives the same id, so sinks can deduplicate.
	out2, _ := r.Reconcile(context.Background(), Request{Trigger: TriggerSweep, Act: true})
	if out2.Alert.ID != a.ID {
		t.Errorf("alert id changed between identical failures: %s vs %s", a.ID, out2.Alert.ID)
	}
}
