package config

import (
	"strings"
	"testing"
)

func TestExclusionReviewSettings(t *testing.T) {
	tests := []struct {
		name      string
		set       map[string]string
		wantMode  string
		wantGrace int
		wantErr   string
	}{
		{name: "defaults are report mode with 14 days of grace", wantMode: "report", wantGrace: 14},
		{name: "require mode is read without regard to case", set: map[string]string{"EXCLUSION_REVIEW": "Require"}, wantMode: "require", wantGrace: 14},
		{name: "off mode and no grace", set: map[string]string{"EXCLUSION_REVIEW": "off", "EXCLUSION_REVIEW_GRACE_DAYS": "0"}, wantMode: "off", wantGrace: 0},
		{name: "an unknown mode names the setting", set: map[string]string{"EXCLUSION_REVIEW": "strict"}, wantErr: "EXCLUSION_REVIEW"},
		{name: "a grace that is not a number names the setting", set: map[string]string{"EXCLUSION_REVIEW_GRACE_DAYS": "2w"}, wantErr: "EXCLUSION_REVIEW_GRACE_DAYS"},
		{name: "a negative grace names the setting", set: map[string]string{"EXCLUSION_REVIEW_GRACE_DAYS": "-1"}, wantErr: "EXCLUSION_REVIEW_GRACE_DAYS"},
		{name: "a grace over a year names the setting", set: map[string]string{"EXCLUSION_REVIEW_GRACE_DAYS": "400"}, wantErr: "EXCLUSION_REVIEW_GRACE_DAYS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kv := base()
			for k, v := range tc.set {
				kv[k] = v
			}
			c, err := Load(env(kv))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error: got %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.ExclusionReview != tc.wantMode || c.ExclusionReviewGraceDays != tc.wantGrace {
				t.Errorf("got mode %q grace %d, want %q %d", c.ExclusionReview, c.ExclusionReviewGraceDays, tc.wantMode, tc.wantGrace)
			}
		})
	}
}
