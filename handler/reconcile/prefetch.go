package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/logctx"
	"github.com/caguard/caguard/handler/snapshot"
)

// The Graph budget. A run that needs no write costs at most three Graph round trips when the store
// can batch (TenantReader): phase one reads the policies, the authentication strengths, the
// break-glass groups with all their members, the break-glass users and the access-review definitions
// in one JSON batch; phase two reads what the evaluation found excluded beyond those, the last
// sign-ins, and the instances of the reviews that cover an excluded group, in one more. Only an
// excluded group that is not a break-glass group (the alert flags it anyway) can need a third, for
// its own reviews. A write adds the write and its read-back.
//
// Access reviews are read on every run, event, sweep or report alike, in the batch that reads the
// policies, so that each alert and report carries each exclusion's review status; their instances
// only for the definitions that cover an excluded group.

// TenantReader reads a run's Graph state in batches. A PolicyStore that implements it is read through
// it; one that does not is read call by call.
type TenantReader interface {
	ReadTenant(ctx context.Context, q snapshot.Query) (snapshot.Read, error)
	ReadDetails(ctx context.Context, q snapshot.DetailQuery) (snapshot.Details, error)
}

// prefetch answers the exclusion inventory's reads from what the two phases read, and asks the
// per-call reader only for what they did not.
type prefetch struct {
	read     snapshot.Read
	details  snapshot.Details
	signIns  map[string]bool // users whose sign-ins phase two asked for
	fallback ExclusionReader
}

var _ ExclusionReader = (*prefetch)(nil)

// absent is the answer for an object the directory did not return.
type absent struct{ what string }

func (a absent) Error() string      { return a.what + " not found" }
func (absent) NotFound() bool       { return true }
func (a absent) Brief() string      { return "the directory has no such " + a.what }
func (absent) Retriable() bool      { return false }
func (absent) Forbidden() bool      { return false }
func (absent) LicenceMissing() bool { return false }

func (p *prefetch) group(id string) (snapshot.Group, bool) {
	if g, ok := p.read.Groups[id]; ok {
		return g, true
	}
	g, ok := p.details.Groups[id]
	return g, ok
}

// GroupDetail answers from the phases, truncating the members listed to maxMembers.
func (p *prefetch) GroupDetail(ctx context.Context, id string, maxMembers int) (exclusion.GroupDetail, error) {
	g, ok := p.group(id)
	if !ok {
		return p.fallback.GroupDetail(ctx, id, maxMembers)
	}
	if g.Err != nil {
		return exclusion.GroupDetail{}, g.Err
	}
	d := g.Detail
	if len(d.Members) > maxMembers {
		d.Members, d.Truncated = d.Members[:maxMembers], true
	}
	return d, nil
}

// UserDetail answers from the phases: the account from whichever read it, the last sign-in from
// phase two; a refusal of either is answered as the per-call read would answer it.
func (p *prefetch) UserDetail(ctx context.Context, id string, signIns bool) (exclusion.Member, error) {
	u, known := p.read.Users[id]
	usersErr := p.read.UsersErr
	if !known {
		if u, known = p.details.Users[id]; known || p.details.UsersErr != nil {
			usersErr = p.details.UsersErr
		}
	}
	if usersErr != nil {
		return exclusion.Member{}, usersErr
	}
	if !known {
		return p.fallback.UserDetail(ctx, id, signIns)
	}
	if !u.Found {
		return exclusion.Member{}, absent{what: "user"}
	}
	m := u.Member
	m.ID, m.LastSignIn = id, nil
	if !signIns {
		return m, nil
	}
	if !p.signIns[strings.ToLower(id)] {
		return p.fallback.UserDetail(ctx, id, true)
	}
	if p.details.SignInsErr != nil {
		return exclusion.Member{}, p.details.SignInsErr
	}
	if t, ok := lookupTime(p.details.SignIns, id); ok {
		m.LastSignIn = &t
	}
	return m, nil
}

// AccessReviewDefinitions answers phase one's definitions.
func (p *prefetch) AccessReviewDefinitions(ctx context.Context) ([]exclusion.Definition, error) {
	return p.read.Definitions, p.read.DefinitionsErr
}

// AccessReviewInstances answers phase two's instances, asking for those it did not read.
func (p *prefetch) AccessReviewInstances(ctx context.Context, id string) ([]exclusion.Instance, error) {
	if err, ok := p.details.InstanceErrs[id]; ok {
		return nil, err
	}
	if ins, ok := p.details.Instances[id]; ok {
		return ins, nil
	}
	return p.fallback.AccessReviewInstances(ctx, id)
}

func lookupTime(m map[string]time.Time, key string) (time.Time, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return time.Time{}, false
}

func (r *Reconciler) maxMembers() int {
	if r.Exclusions.MaxMembers > 0 {
		return r.Exclusions.MaxMembers
	}
	return exclusion.DefaultMaxMembers
}

// readBatched is phase one through a TenantReader.
func (r *Reconciler) readBatched(ctx context.Context, tr TenantReader) (t capolicy.Tenant, missing []string, pre *prefetch, err error) {
	x := r.Exclusions
	q := snapshot.Query{
		GroupIDs:   r.Policy.BreakGlassGroupIDs,
		UserIDs:    r.Policy.BreakGlassUserIDs,
		Reviews:    x.Reader != nil && x.mode() != exclusion.ModeOff,
		MaxMembers: r.maxMembers(),
		// The subscriptions only when an enabled control needs a licence: the default run reads
		// exactly what it always has.
		Licences: capolicy.NeedsLicences(r.Controls),
	}
	rd, err := tr.ReadTenant(ctx, q)
	if err != nil {
		return t, nil, nil, fmt.Errorf("read conditional access policies: %w", err)
	}
	t = capolicy.Tenant{Policies: rd.Policies, AuthenticationStrengths: rd.Strengths, GroupMembers: map[string][]string{}}
	if q.Licences {
		t.Licences = r.licences(ctx, rd)
	}
	for _, g := range r.Policy.BreakGlassGroupIDs {
		got, ok := rd.Groups[g]
		switch {
		case !ok:
			return t, nil, nil, fmt.Errorf("list members of break-glass group %s: the store did not read it", g)
		case isNotFound(got.Err):
			r.logGoneGroup(ctx, g)
			missing = append(missing, g)
		case got.Err != nil:
			return t, nil, nil, fmt.Errorf("list members of break-glass group %s: %w", g, got.Err)
		default:
			t.GroupMembers[g] = got.MemberIDs
		}
	}
	return t, missing, &prefetch{read: rd, fallback: x.Reader}, nil
}

// readDetails is phase two: what the inventory lists beyond phase one, the last sign-ins of the
// accounts it shows, and the instances of the reviews that cover a group read in phase one. A failure
// leaves the inventory to ask call by call, and so to say what it could not read.
func (r *Reconciler) readDetails(ctx context.Context, tr TenantReader, pre *prefetch, items []exclusion.Item) {
	q := snapshot.DetailQuery{MaxMembers: r.maxMembers()}
	seen := map[string]bool{}
	signIn := func(id string) {
		if k := strings.ToLower(id); !seen[k] && !r.noSignIns.Load() {
			seen[k] = true
			q.SignInUserIDs = append(q.SignInUserIDs, id)
		}
	}
	var infos []exclusion.GroupInfo
	for _, it := range items {
		switch it.Kind {
		case exclusion.KindUser:
			if _, ok := pre.read.Users[it.ID]; !ok && pre.read.UsersErr == nil {
				q.UserIDs = append(q.UserIDs, it.ID)
			}
			signIn(it.ID)
		case exclusion.KindGroup:
			g, ok := pre.read.Groups[it.ID]
			if !ok {
				q.GroupIDs = append(q.GroupIDs, it.ID)
				continue
			}
			if g.Err != nil {
				continue
			}
			info := g.Detail.GroupInfo
			info.ID = it.ID
			infos = append(infos, info)
			for i, m := range g.Detail.Members {
				if i == q.MaxMembers {
					break
				}
				if m.AccountEnabled != nil { // a user
					signIn(m.ID)
				}
			}
		}
	}
	if pre.read.DefinitionsErr == nil && r.Exclusions.mode() != exclusion.ModeOff {
		for _, d := range pre.read.Definitions {
			if slices.ContainsFunc(infos, func(g exclusion.GroupInfo) bool { ok, _ := exclusion.Covers(d, g); return ok }) {
				q.InstanceDefinitionIDs = append(q.InstanceDefinitionIDs, d.ID)
			}
		}
	}
	if len(q.GroupIDs)+len(q.UserIDs)+len(q.SignInUserIDs)+len(q.InstanceDefinitionIDs) == 0 {
		return
	}
	d, err := tr.ReadDetails(ctx, q)
	if err != nil {
		logctx.From(ctx, r.Log).Warn("exclusion details not read in a batch; reading them one by one", zap.Error(err))
		return
	}
	pre.details = d
	pre.signIns = seen
}

// licences are the subscriptions phase one read, or nil (unknown) when Graph refused or failed them:
// the controls that need a licence are then judged as if licensed, never as missing it, and the
// log says so once per process, naming the permission a 403 asked for.
func (r *Reconciler) licences(ctx context.Context, rd snapshot.Read) *capolicy.Licences {
	if rd.SKUsErr == nil {
		return &capolicy.Licences{SKUs: rd.SKUs}
	}
	if !r.warnedLicences.Swap(true) {
		var needing []string
		for _, c := range r.Controls {
			if c.Licence != nil {
				needing = append(needing, c.ID)
			}
		}
		fields := []zap.Field{zap.Strings("controls", needing), zap.Error(rd.SKUsErr)}
		var p interface{ MissingPermission() string }
		if errors.As(rd.SKUsErr, &p) && p.MissingPermission() != "" {
			fields = append(fields, zap.String("permission", p.MissingPermission()))
			logctx.From(ctx, r.Log).Warn("tenant subscriptions not readable without the "+p.MissingPermission()+
				" permission: the licence of these controls is unknown, and they are judged as if licensed", fields...)
		} else {
			logctx.From(ctx, r.Log).Warn("tenant subscriptions not read: the licence of these controls is unknown, and they are judged as if licensed", fields...)
		}
	}
	return nil
}
