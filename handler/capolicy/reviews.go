package capolicy

import "strings"

// ExclusionReview is what the caller learnt about the access review of one excluded user or group.
// The values are those of handler/exclusion's review statuses; capolicy takes them as data and does
// no I/O of its own.
type ExclusionReview struct {
	// Status is "current", "overdue", "none", "not-reviewable" or "unknown".
	Status string
	// Detail is the sentence that explains an unknown status (which permission, which failure).
	Detail string
}

// Review statuses that R20 tells apart.
const (
	reviewCurrent       = "current"
	reviewOverdue       = "overdue"
	reviewNone          = "none"
	reviewNotReviewable = "not-reviewable"
)

// R20 reason codes: with EXCLUSION_REVIEW=require, an exclusion is allowed only while an access
// review keeps it in check, as the control asks of its exceptions.
const (
	CodeExclusionReviewOverdue    = "EXCLUSION_REVIEW_OVERDUE"
	CodeExclusionNotReviewed      = "EXCLUSION_NOT_REVIEWED"
	CodeExcludedUserNotReviewable = "EXCLUDED_USER_NOT_REVIEWABLE"
	CodeExclusionReviewUnknown    = "EXCLUSION_REVIEW_UNKNOWN"
)

const (
	msgExclusionReviewOverdue    = "Excludes {ids}, whose access review has not completed within its recurrence plus the grace period (or does not recur), so the exclusion is not kept in check."
	msgExclusionNotReviewed      = "Excludes groups {ids} that no access review covers, so nobody confirms on a regular interval that their members still need the exemption."
	msgExcludedUserNotReviewable = "Excludes users {ids} directly, which access reviews cannot cover; put them in a break-glass group that a recurring access review covers and exclude that group instead."
	msgExclusionReviewUnknown    = "Excludes {ids}, whose access review could not be checked ({why}), so the exclusion cannot be shown to be reviewed."
)

// reviewRules are R20's rows of Rules.
func reviewRules() []Rule {
	const req = "with `EXCLUSION_REVIEW=require`: "
	return []Rule{
		{"R20", CodeExclusionReviewOverdue, req + "every excluded group is covered by a recurring access review whose last instance completed within one recurrence plus `EXCLUSION_REVIEW_GRACE_DAYS`", msgExclusionReviewOverdue},
		{"R20", CodeExclusionNotReviewed, req + "an access review covers every excluded group", msgExclusionNotReviewed},
		{"R20", CodeExcludedUserNotReviewable, req + "no user is excluded directly (only groups can be reviewed)", msgExcludedUserNotReviewable},
		{"R20", CodeExclusionReviewUnknown, req + "the access reviews of every exclusion could be read", msgExclusionReviewUnknown},
	}
}

// exclusionReviews is R20. It runs only for a policy that meets every other rule: the exclusions of
// that policy are the ones that decide whether the control holds, and the caller reads the reviews
// of those alone. Tokens (None, GuestsOrExternalUsers) are not exclusions of a person or group and are
// left to R4 and R7.
func (e *evaluator) exclusionReviews(u *Users, add func(code, msg string)) {
	if u == nil {
		return
	}
	var overdue, none, direct, unknown, why []string
	check := func(id string, group bool) {
		r, ok := e.reviews[idKey(id)]
		if !ok {
			for k, v := range e.reviews {
				if idKey(k) == idKey(id) {
					r, ok = v, true
					break
				}
			}
		}
		status := r.Status
		if !ok {
			status, r.Detail = "", "not supplied"
		}
		switch {
		case status == reviewCurrent:
		case status == reviewOverdue:
			overdue = append(overdue, id)
		case status == reviewNone && group:
			none = append(none, id)
		case status == reviewNotReviewable || (!group && status == reviewNone):
			direct = append(direct, id)
		default:
			unknown = append(unknown, id)
			if d := strings.TrimSuffix(strings.TrimSpace(r.Detail), "."); d != "" && !containsFold(why, d) {
				why = append(why, d)
			}
		}
	}
	vocabUsers.eachToken(u.ExcludeUsers, func(t string) bool {
		if isGUID(t) {
			check(t, false)
		}
		return true
	})
	vocabIDs.eachToken(u.ExcludeGroups, func(t string) bool {
		check(t, true)
		return true
	})
	if len(direct) > 0 {
		add(CodeExcludedUserNotReviewable, render(msgExcludedUserNotReviewable, joinList(direct)))
	}
	if len(none) > 0 {
		add(CodeExclusionNotReviewed, render(msgExclusionNotReviewed, joinList(none)))
	}
	if len(overdue) > 0 {
		add(CodeExclusionReviewOverdue, render(msgExclusionReviewOverdue, joinList(overdue)))
	}
	if len(unknown) > 0 {
		if len(why) == 0 {
			why = []string{"no detail"}
		}
		add(CodeExclusionReviewUnknown, render(msgExclusionReviewUnknown, joinList(unknown), strings.Join(why, "; ")))
	}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
