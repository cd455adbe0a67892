package capolicy

import "testing"

// reviewEvalCases are R20's rows of the evaluation table: EXCLUSION_REVIEW=require with the review
// statuses supplied as data.
func reviewEvalCases() []evalCase {
	require := testConfig()
	require.RequireExclusionReview = true
	excludeGroup := withUsers(Users{IncludeUsers: []string{"All"}, ExcludeGroups: []string{bgGroup}})
	reviews := func(m map[string]ExclusionReview) func(t *Tenant) {
		return func(t *Tenant) { t.ExclusionReviews = m }
	}
	return []evalCase{
		{name: "require mode passes a group whose access review is current", policies: []Policy{good(excludeGroup)}, cfg: &require,
			tenant:  reviews(map[string]ExclusionReview{bgGroup: {Status: "current"}}),
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "report mode ignores an overdue review", policies: []Policy{good(excludeGroup)},
			tenant:  reviews(map[string]ExclusionReview{bgGroup: {Status: "overdue"}}),
			verdict: VerdictCompliant, passing: []string{good().ID}},
		{name: "require mode fails a group whose access review is overdue", policies: []Policy{good(excludeGroup)}, cfg: &require,
			tenant:  reviews(map[string]ExclusionReview{bgGroup: {Status: "overdue"}}),
			verdict: VerdictNonCompliant, codes: []string{CodeExclusionReviewOverdue}},
		{name: "require mode fails a group no access review covers", policies: []Policy{good(excludeGroup)}, cfg: &require,
			tenant:  reviews(map[string]ExclusionReview{bgGroup: {Status: "none"}}),
			verdict: VerdictNonCompliant, codes: []string{CodeExclusionNotReviewed}},
		{name: "require mode fails a directly excluded break-glass user", policies: []Policy{good()}, cfg: &require,
			tenant:  reviews(map[string]ExclusionReview{bgUser1: {Status: "not-reviewable"}}),
			verdict: VerdictNonCompliant, codes: []string{CodeExcludedUserNotReviewable}},
		{name: "require mode fails an exclusion whose review could not be read", policies: []Policy{good(excludeGroup)}, cfg: &require,
			tenant:  reviews(map[string]ExclusionReview{bgGroup: {Status: "unknown", Detail: "the AccessReview.Read.All permission is missing"}}),
			verdict: VerdictNonCompliant, codes: []string{CodeExclusionReviewUnknown}},
		{name: "require mode fails an exclusion whose review was not supplied", policies: []Policy{good(excludeGroup)}, cfg: &require,
			verdict: VerdictNonCompliant, codes: []string{CodeExclusionReviewUnknown}},
		{name: "require mode leaves the guests token to R4", policies: []Policy{good(withUsers(Users{IncludeUsers: []string{"All"}, ExcludeUsers: []string{"GuestsOrExternalUsers"}}))}, cfg: &require,
			verdict: VerdictNonCompliant, codes: []string{CodeExcludesGuests}},
		{name: "require mode judges reviews only once every other rule holds", policies: []Policy{good(excludeGroup, withState(StateDisabled), withGrant(nil))}, cfg: &require,
			verdict: VerdictNonCompliant, codes: []string{CodeStateNotEnabled, CodeNoGrantControls}},
		{name: "require mode keeps a report-only policy with a current review pending", policies: []Policy{good(excludeGroup, withState(StateReportOnly))}, cfg: &require,
			tenant:  reviews(map[string]ExclusionReview{bgGroup: {Status: "current"}}),
			verdict: VerdictPendingEnforcement, codes: []string{CodeStateReportOnly}, closest: good().ID},
	}
}

func TestUnknownReviewSaysWhy(t *testing.T) {
	cfg := testConfig()
	cfg.RequireExclusionReview = true
	p := good(withUsers(Users{IncludeUsers: []string{"All"}, ExcludeGroups: []string{bgGroup}}))
	tenant := testTenant(p)
	tenant.ExclusionReviews = map[string]ExclusionReview{bgGroup: {Status: "unknown", Detail: "the AccessReview.Read.All permission is missing."}}
	rep := Evaluate(tenant, cfg)
	got := rep.Policies[0].Reasons[0].Message
	want := "Excludes " + bgGroup + ", whose access review could not be checked (the AccessReview.Read.All permission is missing), so the exclusion cannot be shown to be reviewed."
	if got != want {
		t.Errorf("message: got %q, want %q", got, want)
	}
}
