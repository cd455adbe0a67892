// Package snapshot holds the values a run reads from Microsoft Graph in as few round trips as Graph
// allows: the tenant's Conditional Access policies with everything needed to judge them (phase one),
// then the details of what those policies exclude (phase two). It has no behaviour: the Graph adapter
// fills these values, the reconciler consumes them, and neither imports the other.
//
// Errors inside a Read or a Details are per object and never fail the run by themselves: each is an
// error from the store that may implement NotFound() bool, Forbidden() bool, MissingPermission()
// string, LicenceMissing() bool and Brief() string, which the reconciler inspects.
package snapshot

import (
	"time"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
)

// Query asks for phase one: the policies (always), the authentication strengths (always, so that no
// second round trip is needed when a policy references one), the approved break-glass groups and users,
// and optionally the access-review definitions.
type Query struct {
	// GroupIDs are the break-glass groups: each is read with its name and type and all its transitive
	// members (ids for the rules, names and accountEnabled for the inventory).
	GroupIDs []string
	// UserIDs are the break-glass users: existence, name and accountEnabled.
	UserIDs []string
	// Reviews asks for the access-review definitions too.
	Reviews bool
	// MaxMembers caps the members kept with their details per group (all ids are kept regardless);
	// zero means exclusion.DefaultMaxMembers.
	MaxMembers int
	// Licences asks for the tenant's subscriptions (GET /subscribedSkus) too: only when an enabled
	// control needs a licence.
	Licences bool
}

// Group is one group as read: its detail and every transitive member id, or the error that stopped the
// read (NotFound for a 404: possibly a deleted group, possibly Entra's replication lag).
type Group struct {
	Detail    exclusion.GroupDetail
	MemberIDs []string
	Err       error
}

// User is one user as read. Found false with no error means the directory did not return it: deleted,
// or not yet replicated.
type User struct {
	Member exclusion.Member
	Found  bool
}

// Read is phase one's answer. Policies and strengths are complete (every page) or the whole read fails;
// everything else carries its own error.
type Read struct {
	Policies  []capolicy.Policy
	Strengths []capolicy.AuthenticationStrength
	// Groups and Users are keyed by the id as asked.
	Groups map[string]Group
	Users  map[string]User
	// UsersErr, when set, says that no user could be looked up (for example 403 without
	// User.Read.All): existence is unknown, and Users is empty.
	UsersErr error
	// Definitions are the access-review definitions (without instances) when Query.Reviews was set.
	Definitions    []exclusion.Definition
	DefinitionsErr error
	// SKUs are the tenant's subscriptions when Query.Licences was set; SKUsErr says why they could
	// not be read (for example 403 without LicenseAssignment.Read.All), and the licences are then
	// unknown.
	SKUs    []capolicy.SubscribedSku
	SKUsErr error
}

// DetailQuery asks for phase two: what the evaluation found excluded beyond what phase one read.
type DetailQuery struct {
	GroupIDs []string // groups to read as in Query.GroupIDs
	UserIDs  []string // users to read as in Query.UserIDs
	// SignInUserIDs are users whose last successful sign-in to read (needs AuditLog.Read.All and an
	// Entra ID P1 or P2 licence).
	SignInUserIDs []string
	// InstanceDefinitionIDs are access-review definitions whose instances to read.
	InstanceDefinitionIDs []string
	MaxMembers            int
}

// Details is phase two's answer.
type Details struct {
	Groups   map[string]Group
	Users    map[string]User
	UsersErr error
	// SignIns holds the last successful sign-in of each user that has one; a user absent from it
	// never signed in successfully (or the directory has no record).
	SignIns map[string]time.Time
	// SignInsErr says why no sign-in could be read (a missing permission, a missing licence).
	SignInsErr error
	// Instances are keyed by definition id; InstanceErrs holds the definitions whose read failed.
	Instances    map[string][]exclusion.Instance
	InstanceErrs map[string]error
}
