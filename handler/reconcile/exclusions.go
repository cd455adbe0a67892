package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/capolicy"
	"github.com/caguard/caguard/handler/exclusion"
	"github.com/caguard/caguard/handler/logctx"
)

// ExclusionReader is what the exclusion inventory needs of Microsoft Graph.
type ExclusionReader interface {
	GroupDetail(ctx context.Context, groupID string, maxMembers int) (exclusion.GroupDetail, error)
	UserDetail(ctx context.Context, userID string, signIns bool) (exclusion.Member, error)
	AccessReviewDefinitions(ctx context.Context) ([]exclusion.Definition, error)
	AccessReviewInstances(ctx context.Context, definitionID string) ([]exclusion.Instance, error)
}

// Exclusions configures the exclusion inventory and its access-review check.
type Exclusions struct {
	// Reader reads the details and the reviews; nil lists the exclusions by id only, unchecked.
	Reader ExclusionReader
	// Mode is EXCLUSION_REVIEW; empty means report.
	Mode exclusion.Mode
	// Grace is EXCLUSION_REVIEW_GRACE_DAYS as a duration.
	Grace time.Duration
	// MaxMembers caps the members listed per group; zero means exclusion.DefaultMaxMembers.
	MaxMembers int
}

func (x Exclusions) mode() exclusion.Mode {
	if x.Mode == "" {
		return exclusion.ModeReport
	}
	return x.Mode
}

// evaluate judges the tenant. report is the verdict the caller shows: with EXCLUSION_REVIEW=require,
// R20 included. base is the same verdict without R20, and plan is what Plan acts on: without R20
// (restoring the managed policy cannot make an access review happen, so a review finding never
// prompts a write) and on planT, where a break-glass group that answered 404 counts as empty (see
// planTenant). items is the exclusion inventory of the policies that pass in plan (or pass but for
// report-only state) and of the managed policy.
func (r *Reconciler) evaluate(ctx context.Context, t, planT capolicy.Tenant, pre *prefetch) (report, base, plan capolicy.Report, items []exclusion.Item) {
	cfg := r.Policy
	cfg.RequireExclusionReview = false
	base = capolicy.Evaluate(t, cfg)
	plan = capolicy.Evaluate(planT, cfg)
	chosen := map[string]bool{}
	for _, p := range plan.Policies {
		if p.Compliant || (p.MeetsAllButState && p.State == capolicy.StateReportOnly) {
			chosen[p.ID] = true
		}
	}
	managed := cfg.ManagedName()
	items = exclusion.Collect(t.Policies, func(p capolicy.Policy) bool {
		return chosen[p.ID] || strings.EqualFold(strings.TrimSpace(p.DisplayName), managed)
	}, cfg)
	reader := r.Exclusions.Reader
	if pre != nil && reader != nil {
		if tr, ok := r.Store.(TenantReader); ok {
			r.readDetails(ctx, tr, pre, items)
		}
		reader = pre
	}
	r.inspect(ctx, items, reader)
	if r.Exclusions.mode() != exclusion.ModeRequire {
		return base, base, plan, items
	}
	t.ExclusionReviews = exclusion.Statuses(items)
	cfg.RequireExclusionReview = true
	return capolicy.Evaluate(t, cfg), base, plan, items
}

// inspect fills in what Graph tells of each exclusion and judges its access review. Nothing here
// fails the run: a missing permission or a Graph failure leaves less detail, or an unknown review,
// and says which.
func (r *Reconciler) inspect(ctx context.Context, items []exclusion.Item, reader ExclusionReader) {
	log := logctx.From(ctx, r.Log)
	x := r.Exclusions
	x.Reader = reader
	mode := x.mode()
	if x.Reader == nil {
		for i := range items {
			items[i].Review = exclusion.Review{Status: exclusion.ReviewUnknown, Detail: "Not checked: caguard was started without a Graph reader for exclusions."}
			if items[i].Kind == exclusion.KindUser {
				items[i].Review = notReviewable(items[i])
			}
		}
		return
	}
	maxMembers := x.MaxMembers
	if maxMembers <= 0 {
		maxMembers = exclusion.DefaultMaxMembers
	}
	now := r.Now()
	signIns, users := !r.noSignIns.Load(), true
	licence := !signIns
	type userRead struct {
		m       exclusion.Member
		problem string
	}
	// readUser reads one account, degrading once per run: without AuditLog.Read.All no last sign-in,
	// without User.Read.All nothing.
	readUser := func(id string) (exclusion.Member, string) {
		if !users {
			return exclusion.Member{}, ""
		}
		if signIns {
			m, err := x.Reader.UserDetail(ctx, id, true)
			if err == nil {
				return m, ""
			}
			switch {
			case licenceMissing(err):
				signIns, licence = false, true
				if !r.noSignIns.Swap(true) {
					log.Warn("last sign-ins of excluded accounts are not shown: the tenant has no Entra ID P1 or P2 licence; this process stops asking", zap.Error(err))
				}
			case !forbidden(err):
				return exclusion.Member{}, brief(err)
			default:
				signIns = false
				log.Warn("last sign-ins of excluded accounts are not shown: the AuditLog.Read.All permission is missing", zap.Error(err))
			}
		}
		m, err := x.Reader.UserDetail(ctx, id, false)
		if err == nil {
			return m, ""
		}
		if forbidden(err) {
			users = false
			log.Warn("details of excluded users are not shown: the User.Read.All permission is missing", zap.Error(err))
			return exclusion.Member{}, ""
		}
		return exclusion.Member{}, brief(err)
	}

	seen := map[string]userRead{}
	// user reads each account once per run: a break-glass user is often excluded directly and a
	// member of an excluded group too.
	user := func(id string) (exclusion.Member, string) {
		key := strings.ToLower(id)
		if u, ok := seen[key]; ok {
			return u.m, u.problem
		}
		m, problem := readUser(id)
		seen[key] = userRead{m, problem}
		return m, problem
	}

	rv := reviews{reader: x.Reader, instances: map[string][]exclusion.Instance{}, instanceErr: map[string]error{}}
	for i := range items {
		it := &items[i]
		switch it.Kind {
		case exclusion.KindUser:
			it.Review = notReviewable(*it)
			m, problem := user(it.ID)
			it.DisplayName, it.AccountEnabled, it.LastSignIn = m.DisplayName, m.AccountEnabled, m.LastSignIn
			if problem != "" {
				it.Notes = append(it.Notes, "account details unavailable: "+problem)
			}
		case exclusion.KindGroup:
			info := exclusion.GroupInfo{ID: it.ID}
			g, err := x.Reader.GroupDetail(ctx, it.ID, maxMembers)
			switch {
			case err == nil:
				info = g.GroupInfo
				info.ID = it.ID
				count := g.MemberCount
				it.DisplayName, it.MemberCount, it.Members, it.MembersTruncated = g.DisplayName, &count, g.Members, g.Truncated
				if len(g.Members) > 0 && !slices.ContainsFunc(g.Members, func(m exclusion.Member) bool { return m.DisplayName != "" }) {
					// Graph answers members it may not read by id and type only.
					it.Notes = append(it.Notes, "member names and accountEnabled not shown: grant User.Read.All to see them")
				}
				for j := range it.Members {
					m := &it.Members[j]
					if m.AccountEnabled == nil || !signIns || !users {
						continue // not a user, or nothing more to learn
					}
					if d, problem := user(m.ID); problem == "" && d.LastSignIn != nil {
						m.LastSignIn = d.LastSignIn
					}
				}
			case isNotFound(err):
				it.Notes = append(it.Notes, "the group does not exist in the directory")
			default:
				it.Notes = append(it.Notes, "group details unavailable: "+brief(err))
				log.Warn("excluded group not read", zap.String("groupId", it.ID), zap.Error(err))
			}
			if mode == exclusion.ModeOff {
				it.Review = exclusion.Review{Status: exclusion.ReviewUnknown, Detail: "Not checked: EXCLUSION_REVIEW is off."}
			} else {
				it.Review = rv.assess(ctx, info, now, x.Grace)
			}
		}
		it.Notes = append(it.Notes, it.MemberNotes(now)...)
	}
	if rv.err != nil {
		log.Warn("access reviews not read; exclusion reviews are unknown", zap.Error(rv.err))
	}
	if !signIns && users {
		note := "last sign-ins not shown: grant AuditLog.Read.All to see them"
		if licence {
			note = "last sign-ins not shown: Graph reports sign-in activity only in tenants with an Entra ID P1 or P2 licence"
		}
		for i := range items {
			items[i].Notes = append(items[i].Notes, note)
		}
	}
}

// reviews reads the access review definitions once per run, and the instances of only those that
// cover an excluded group.
type reviews struct {
	reader      ExclusionReader
	loaded      bool
	defs        []exclusion.Definition
	err         error
	instances   map[string][]exclusion.Instance
	instanceErr map[string]error
}

func (rv *reviews) assess(ctx context.Context, g exclusion.GroupInfo, now time.Time, grace time.Duration) exclusion.Review {
	if !rv.loaded {
		rv.loaded = true
		rv.defs, rv.err = rv.reader.AccessReviewDefinitions(ctx)
	}
	if rv.err != nil {
		return unknownReview(rv.err, "access reviews")
	}
	var covering []exclusion.Definition
	for _, d := range rv.defs {
		if ok, _ := exclusion.Covers(d, g); !ok {
			continue
		}
		if _, done := rv.instances[d.ID]; !done && rv.instanceErr[d.ID] == nil {
			ins, err := rv.reader.AccessReviewInstances(ctx, d.ID)
			if err != nil {
				rv.instanceErr[d.ID] = err
			} else {
				rv.instances[d.ID] = ins
			}
		}
		if err := rv.instanceErr[d.ID]; err != nil {
			return unknownReview(err, "the instances of access review "+d.ID)
		}
		d.Instances = rv.instances[d.ID]
		covering = append(covering, d)
	}
	return exclusion.Assess(covering, g, now, grace)
}

// unknownReview explains why a review could not be judged, without Graph's own message text.
func unknownReview(err error, what string) exclusion.Review {
	var p interface{ MissingPermission() string }
	if errors.As(err, &p) && p.MissingPermission() != "" {
		return exclusion.Review{Status: exclusion.ReviewUnknown,
			Detail: fmt.Sprintf("The %s permission is missing, so %s cannot be read; grant it to check this exclusion.", p.MissingPermission(), what)}
	}
	if forbidden(err) {
		return exclusion.Review{Status: exclusion.ReviewUnknown,
			Detail: fmt.Sprintf("Graph refused to read %s (403); grant AccessReview.Read.All to check this exclusion.", what)}
	}
	return exclusion.Review{Status: exclusion.ReviewUnknown, Detail: fmt.Sprintf("Reading %s failed (%s); the next run tries again.", what, brief(err))}
}

// licenceMissing reports a store error that says the tenant lacks the licence a read needs.
func licenceMissing(err error) bool {
	var l interface{ LicenceMissing() bool }
	return errors.As(err, &l) && l.LicenceMissing()
}

// forbidden reports a store error that says a permission is missing.
func forbidden(err error) bool {
	var f interface{ Forbidden() bool }
	return errors.As(err, &f) && f.Forbidden()
}

func isNotFound(err error) bool {
	var nf notFound
	return errors.As(err, &nf) && nf.NotFound()
}

// brief is a failure in words safe to show outside the process.
func brief(err error) string {
	var b interface{ Brief() string }
	if errors.As(err, &b) {
		return b.Brief()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "the run ran out of time"
	}
	return "an unexpected error"
}

// reviewAlert reports whether the run alerts on review findings alone: in report mode the nightly
// sweep alerts on overdue and missing reviews (in require mode they fail the verdict, which alerts
// anyway). Other triggers leave them to the sweep, so an audit burst does not repeat them.
func (r *Reconciler) reviewAlert(req Request, out Outcome) bool {
	if r.Exclusions.mode() != exclusion.ModeReport || req.Trigger != TriggerSweep {
		return false
	}
	return len(reviewFindings(out.Exclusions)) > 0
}

// reviewFindings are the exclusions whose review needs a human: overdue or missing.
func reviewFindings(items []exclusion.Item) []exclusion.Item {
	var out []exclusion.Item
	for _, it := range items {
		if it.NeedsReview() {
			out = append(out, it)
		}
	}
	return out
}

// findingsKey is the part of an alert's id that review findings contribute: which exclusion, with
// which status. Dates and member lists stay out of it, so the same finding keeps the same id night
// after night and a sink that deduplicates sees it once.
func findingsKey(items []exclusion.Item) string {
	var keys []string
	for _, it := range reviewFindings(items) {
		keys = append(keys, fmt.Sprintf("%s:%s:%s", it.Kind, strings.ToLower(it.ID), it.Review.Status))
	}
	if len(keys) == 0 {
		return ""
	}
	sort.Strings(keys)
	h := sha256.Sum256([]byte(strings.Join(keys, ",")))
	return hex.EncodeToString(h[:8])
}

// reviewStep adds the review findings to an alert's next step. When they alone fail the control
// (require mode), the generic advice to restore MFA does not apply and every exclusion that is not
// current is named.
func reviewStep(step string, out Outcome) string {
	f := reviewFindings(out.Exclusions)
	if out.reviewOnly {
		step, f = "", nil
		for _, it := range out.Exclusions {
			if it.Review.Status != exclusion.ReviewCurrent {
				f = append(f, it)
			}
		}
	}
	if len(f) == 0 {
		return step
	}
	s := reviewStepText(f)
	if step == "" || step == "None." {
		return s
	}
	return step + " " + s
}

// logExclusions writes the inventory to the log, one line per exclusion.
func (r *Reconciler) logExclusions(ctx context.Context, items []exclusion.Item) {
	log := logctx.From(ctx, r.Log)
	for _, it := range items {
		fields := []zap.Field{zap.String("kind", string(it.Kind)), zap.String("id", it.ID), zap.String("displayName", it.DisplayName),
			zap.Bool("allowlisted", it.Allowlisted), zap.Strings("policyIds", it.PolicyIDs),
			zap.String("review", string(it.Review.Status)), zap.String("reviewDetail", it.Review.Detail)}
		if it.MemberCount != nil {
			fields = append(fields, zap.Int("members", *it.MemberCount))
		}
		if len(it.Notes) > 0 {
			fields = append(fields, zap.Strings("notes", it.Notes))
		}
		log.Info("exclusion", fields...)
	}
}
