// Package exclusion describes the users and groups that Conditional Access policies exempt from the
// control, and whether each exemption is reviewed through an Entra access review, as the CIS control
// asks of its exceptions ("very carefully tracked and reviewed for necessity on a regular interval").
// The types here are what the Evaluate answer, the alerts and the report page show; their JSON names
// are a contract that outside checks rely on.
package exclusion

import "time"

// Kind is what an exclusion exempts.
type Kind string

// Kinds.
const (
	KindUser  Kind = "user"
	KindGroup Kind = "group"
)

// ReviewStatus says whether an access review keeps an exclusion in check.
type ReviewStatus string

// Review statuses.
const (
	// ReviewCurrent: a recurring review covers the group and its last instance completed within one
	// recurrence period plus the grace period.
	ReviewCurrent ReviewStatus = "current"
	// ReviewOverdue: a review covers the group but has not completed within that window.
	ReviewOverdue ReviewStatus = "overdue"
	// ReviewNone: no access review covers the group.
	ReviewNone ReviewStatus = "none"
	// ReviewNotReviewable: a directly excluded user; access reviews cover groups, not single users.
	ReviewNotReviewable ReviewStatus = "not-reviewable"
	// ReviewUnknown: the permission is missing or Graph failed; Detail says which.
	ReviewUnknown ReviewStatus = "unknown"
)

// Review is the access-review finding for one exclusion.
type Review struct {
	Status ReviewStatus `json:"status"`
	// Detail is one sentence for the admin: which review, when it last completed, or why unknown.
	Detail string `json:"detail,omitempty"`
	// DefinitionID is the access review definition that covers the exclusion, if any.
	DefinitionID string `json:"definitionId,omitempty"`
	// LastCompleted is when the last instance of that review completed.
	LastCompleted *time.Time `json:"lastCompleted,omitempty"`
}

// Member is one transitive member of an excluded group, as far as Graph tells.
type Member struct {
	ID             string     `json:"id"`
	DisplayName    string     `json:"displayName,omitempty"`
	AccountEnabled *bool      `json:"accountEnabled,omitempty"`
	LastSignIn     *time.Time `json:"lastSignIn,omitempty"`
}

// Item is one excluded user or group, with the policies that exclude it.
type Item struct {
	Kind        Kind     `json:"kind"`
	ID          string   `json:"id"`
	DisplayName string   `json:"displayName,omitempty"`
	Allowlisted bool     `json:"allowlisted"`
	PolicyIDs   []string `json:"policyIds,omitempty"`
	// For a user.
	AccountEnabled *bool      `json:"accountEnabled,omitempty"`
	LastSignIn     *time.Time `json:"lastSignIn,omitempty"`
	// For a group: the transitive member count and the first members, capped.
	MemberCount      *int     `json:"memberCount,omitempty"`
	Members          []Member `json:"members,omitempty"`
	MembersTruncated bool     `json:"membersTruncated,omitempty"`
	Review           Review   `json:"review"`
	// Notes are facts a reviewer should look at: disabled or long-inactive accounts, details that
	// Graph did not give (a missing optional permission).
	Notes []string `json:"notes,omitempty"`
}
