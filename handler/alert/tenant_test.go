package alert

import (
	"strings"
	"testing"

	"github.com/caguard/caguard/handler/reconcile"
)

// With a tenant registry every format names the tenant by its display name and id, for a verdict
// and for a run that failed; without one (TenantName empty) the bodies are the golden ones.
func TestAlertsNameTheRegistryTenant(t *testing.T) {
	const want = "Fabrikam Retail (11111111-2222-3333-4444-555555555555)"
	for _, mk := range []func() reconcile.Alert{sampleAlert, failedRunAlert} {
		a := mk()
		a.TenantName = "Fabrikam Retail"
		for _, f := range []Format{FormatTeams, FormatSlack, FormatJSON} {
			b, err := Encode(f, a)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			s := string(b)
			if f == FormatJSON {
				if !strings.Contains(s, `"tenantName":"Fabrikam Retail"`) {
					t.Errorf("%s: no tenantName in %s", f, s)
				}
				continue
			}
			if !strings.Contains(s, want) {
				t.Errorf("%s (%s): the body does not name %q:\n%s", f, a.Trigger, want, s)
			}
		}
	}
}
