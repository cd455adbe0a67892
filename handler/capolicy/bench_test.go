package capolicy

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// benchTenant builds a tenant at the service maximum of 195 policies, with three break-glass groups of
// about 50 transitive members each and a list of authentication strengths. Only the last policy passes,
// so Evaluate does all of its work.
func benchTenant() (Tenant, Config) {
	id := func(kind, i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", kind, i) }
	cfg := Config{}
	for i := range 60 {
		cfg.BreakGlassUserIDs = append(cfg.BreakGlassUserIDs, id(1, i))
	}
	t := Tenant{GroupMembers: map[string][]string{}}
	for g := range 3 {
		gid := id(2, g)
		cfg.BreakGlassGroupIDs = append(cfg.BreakGlassGroupIDs, gid)
		for m := range 50 {
			t.GroupMembers[gid] = append(t.GroupMembers[gid], id(1, (g*7+m)%60))
		}
	}
	t.GroupMembers[id(2, 2)][49] = id(9, 1) // one group gained a normal member
	for i := range 12 {
		req := "mfa"
		if i%3 == 0 {
			req = "none"
		}
		t.AuthenticationStrengths = append(t.AuthenticationStrengths, AuthenticationStrength{ID: id(3, i), DisplayName: fmt.Sprintf("Strength %d", i), RequirementsSatisfied: req})
	}
	variants := []func(p *Policy, i int){
		func(p *Policy, i int) { p.Conditions.Users.ExcludeGroups = []string{id(2, i%3), id(2, 2)} },
		func(p *Policy, i int) { p.State = StateReportOnly },
		func(p *Policy, i int) { p.Conditions.Applications.IncludeApplications = []string{"Office365"} },
		func(p *Policy, i int) {
			p.Conditions.Users.ExcludeUsers = []string{id(1, 1), id(4, i), id(4, i+1)}
		},
		func(p *Policy, i int) {
			p.GrantControls = &GrantControls{Operator: "OR", BuiltInControls: []string{"mfa", "compliantDevice"}}
		},
		func(p *Policy, i int) {
			p.GrantControls = &GrantControls{Operator: "OR", BuiltInControls: []string{"domainJoinedDevice"},
				AuthenticationStrength: &AuthenticationStrength{ID: id(3, i%12)}}
		},
		func(p *Policy, i int) {
			p.Conditions.ClientAppTypes = []string{"exchangeActiveSync", "other"}
			p.GrantControls = &GrantControls{Operator: "OR", BuiltInControls: []string{"block"}}
		},
		func(p *Policy, i int) {
			p.Conditions.Users = &Users{IncludeRoles: []string{globalAdm, id(5, i)}}
			p.Conditions.Locations = &Locations{IncludeLocations: []string{"All"}, ExcludeLocations: []string{"AllTrusted"}}
		},
		func(p *Policy, i int) {
			p.Conditions.SignInRiskLevels = []string{"high", "medium"}
			p.Conditions.Platforms = &Platforms{IncludePlatforms: []string{"android", "iOS"}}
		},
		func(p *Policy, i int) {
			p.GrantControls = nil
			p.SessionControls = &SessionControls{SignInFrequency: &SignInFrequency{IsEnabled: true, Value: 1, Type: "hours"}}
		},
		func(p *Policy, i int) {
			p.Conditions.Users.ExcludeGuestsOrExternalUsers = &GuestsOrExternalUsers{GuestOrExternalUserTypes: []string{"internalGuest,b2bCollaborationGuest"}}
		},
		func(p *Policy, i int) { p.Conditions.Applications.IncludeApplications = []string{"All"} },
	}
	for i := range 195 {
		p := good(withID(id(6, i), fmt.Sprintf("Policy %d", i)))
		p.Conditions.Users.ExcludeUsers = []string{id(1, 0)}
		if i < 194 {
			variants[i%len(variants)](&p, i)
			if i%len(variants) == len(variants)-1 {
				p.State = StateDisabled
			}
		} else {
			p.Conditions.Users.ExcludeGroups = []string{id(2, 0), id(2, 1)}
		}
		t.Policies = append(t.Policies, p)
	}
	return t, cfg
}

func BenchmarkEvaluate195Policies(b *testing.B) {
	t, cfg := benchTenant()
	if rep := Evaluate(t, cfg); rep.Verdict != VerdictCompliant || len(rep.Passing) != 1 {
		b.Fatalf("bench tenant: got %s with passing %v, want one compliant policy", rep.Verdict, rep.Passing)
	}
	b.ReportAllocs()
	for b.Loop() {
		Evaluate(t, cfg)
	}
}

func BenchmarkParsePolicy(b *testing.B) {
	for _, name := range []string{"graph/compliant-enabled.json", "auditlog/excludes-guests-63.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(name)))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(filepath.Base(name), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParsePolicy(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
