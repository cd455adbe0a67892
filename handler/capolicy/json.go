package capolicy

import (
	"encoding/json"
	"strings"
)

// Policy marshals to Graph v1.0 JSON. The struct tags do most of it; the methods below write Graph's
// flags enums (guestOrExternalUserTypes, insiderRiskLevels, transferMethods) as one comma-separated
// string, and externalTenants with the @odata.type Graph needs to pick the derived type.

// MarshalJSON writes insiderRiskLevels as Graph's comma-separated string.
func (c Conditions) MarshalJSON() ([]byte, error) {
	type plain Conditions // no methods, so no recursion
	return json.Marshal(struct {
		plain
		InsiderRiskLevels string `json:"insiderRiskLevels,omitempty"`
	}{plain(c), strings.Join(c.InsiderRiskLevels, ",")})
}

// MarshalJSON writes guestOrExternalUserTypes as Graph's comma-separated string.
func (g GuestsOrExternalUsers) MarshalJSON() ([]byte, error) {
	type plain GuestsOrExternalUsers
	return json.Marshal(struct {
		plain
		GuestOrExternalUserTypes string `json:"guestOrExternalUserTypes,omitempty"`
	}{plain(g), strings.Join(g.GuestOrExternalUserTypes, ",")})
}

// MarshalJSON adds the @odata.type that tells Graph whether the tenants are all or enumerated.
func (t ExternalTenants) MarshalJSON() ([]byte, error) {
	type plain ExternalTenants
	var odata string
	switch t.MembershipKind {
	case "all":
		odata = "#microsoft.graph.conditionalAccessAllExternalTenants"
	case "enumerated":
		odata = "#microsoft.graph.conditionalAccessEnumeratedExternalTenants"
	}
	return json.Marshal(struct {
		ODataType string `json:"@odata.type,omitempty"`
		plain
	}{odata, plain(t)})
}

// MarshalJSON writes transferMethods as Graph's comma-separated string.
func (f AuthenticationFlows) MarshalJSON() ([]byte, error) {
	type plain AuthenticationFlows
	return json.Marshal(struct {
		plain
		TransferMethods string `json:"transferMethods,omitempty"`
	}{plain(f), strings.Join(f.TransferMethods, ",")})
}
