package capolicy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
)

// A policy can carry properties this model does not know: Graph adds conditions and controls over
// time, and beta or audit-log values hold some that v1.0 lacks. Dropping one silently could make a
// policy look broader than it is (a new condition that narrows who it applies to, a new grant that
// is an alternative to MFA). So the sections that decide the verdict (conditions and everything in
// them, and grantControls) record the keys they did not decode, and the rules refuse to count such
// a policy as requiring MFA. Keys that say nothing (null, "", [], {}) are not recorded: Graph sends
// many properties as null, and an empty value narrows nothing. Annotations (keys holding "@") are
// metadata, not policy.

// knownKeys is the lower-cased JSON names a wire struct decodes. encoding/json matches names without
// regard to case, so the lookup does too.
type knownKeys map[string]bool

func keysOf[T any]() knownKeys {
	out := knownKeys{}
	t := reflect.TypeFor[T]()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[strings.ToLower(name)] = true
		}
	}
	return out
}

// The names each section decodes. Read-only lookup tables, like the vocabularies.
var (
	keysConditions   = keysOf[wireConditions]()
	keysUsers        = keysOf[wireUsers]()
	keysGuests       = keysOf[wireGuests]()
	keysTenants      = keysOf[wireTenants]()
	keysApplications = keysOf[wireApplications]()
	keysClientApps   = keysOf[wireClientApps]()
	keysInclExcl     = keysOf[wireInclExcl]()
	keysDevices      = keysOf[wireDevices]()
	keysFlows        = keysOf[wireFlows]()
	keysGrant        = keysOf[wireGrant]()
	keysFilter       = keysOf[wireFilter]()
)

// unmodelled returns, sorted by key, the keys of the JSON object b that known does not name and whose
// value says something, each with its value.
func unmodelled(b []byte, known knownKeys) ([]UnknownValue, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	var out []UnknownValue
	for k, v := range m {
		if strings.Contains(k, "@") || known[strings.ToLower(k)] || saysNothing(v) {
			continue
		}
		out = append(out, UnknownValue{Field: k, Value: shortJSON(v)})
	}
	slices.SortFunc(out, func(a, b UnknownValue) int { return strings.Compare(a.Field, b.Field) })
	return out, nil
}

// maxUnknownValue bounds how much of an unmodelled property's value a reason repeats.
const maxUnknownValue = 80

// shortJSON returns v compacted and shortened to maxUnknownValue bytes, for a reason to quote.
func shortJSON(v json.RawMessage) string {
	var buf bytes.Buffer
	if json.Compact(&buf, v) != nil {
		buf.Reset()
		buf.Write(bytes.Trim(v, jsonSpace))
	}
	return truncate(buf.String(), maxUnknownValue)
}

// saysNothing reports whether a JSON value is null, an empty string, an empty array, or an object
// whose every value says nothing.
func saysNothing(v json.RawMessage) bool {
	v = bytes.Trim(v, jsonSpace)
	if len(v) == 0 {
		return true
	}
	switch v[0] {
	case 'n':
		return true
	case '"':
		return len(v) == 2
	case '[':
		return len(bytes.Trim(v[1:len(v)-1], jsonSpace)) == 0
	case '{':
		var m map[string]json.RawMessage
		if json.Unmarshal(v, &m) != nil {
			return false
		}
		for k, x := range m {
			if !strings.Contains(k, "@") && !saysNothing(x) {
				return false
			}
		}
		return true
	}
	return false
}

// decodeSection decodes b into plain (the section's fields) and returns the keys it left out.
func decodeSection(b []byte, plain any, known knownKeys) ([]UnknownValue, error) {
	if err := json.Unmarshal(b, plain); err != nil {
		return nil, err
	}
	return unmodelled(b, known)
}

func (w *wireConditions) UnmarshalJSON(b []byte) (err error) {
	type plain wireConditions
	w.extra, err = decodeSection(b, (*plain)(w), keysConditions)
	return err
}

func (w *wireUsers) UnmarshalJSON(b []byte) (err error) {
	type plain wireUsers
	w.extra, err = decodeSection(b, (*plain)(w), keysUsers)
	return err
}

func (w *wireGuests) UnmarshalJSON(b []byte) (err error) {
	type plain wireGuests
	w.extra, err = decodeSection(b, (*plain)(w), keysGuests)
	return err
}

func (w *wireTenants) UnmarshalJSON(b []byte) (err error) {
	type plain wireTenants
	w.extra, err = decodeSection(b, (*plain)(w), keysTenants)
	return err
}

func (w *wireApplications) UnmarshalJSON(b []byte) (err error) {
	type plain wireApplications
	w.extra, err = decodeSection(b, (*plain)(w), keysApplications)
	return err
}

func (w *wireClientApps) UnmarshalJSON(b []byte) (err error) {
	type plain wireClientApps
	w.extra, err = decodeSection(b, (*plain)(w), keysClientApps)
	return err
}

func (w *wireInclExcl) UnmarshalJSON(b []byte) (err error) {
	type plain wireInclExcl
	w.extra, err = decodeSection(b, (*plain)(w), keysInclExcl)
	return err
}

func (w *wireDevices) UnmarshalJSON(b []byte) (err error) {
	type plain wireDevices
	w.extra, err = decodeSection(b, (*plain)(w), keysDevices)
	return err
}

func (w *wireFlows) UnmarshalJSON(b []byte) (err error) {
	type plain wireFlows
	w.extra, err = decodeSection(b, (*plain)(w), keysFlows)
	return err
}

func (w *wireFilter) UnmarshalJSON(b []byte) (err error) {
	type plain wireFilter
	w.extra, err = decodeSection(b, (*plain)(w), keysFilter)
	return err
}

func (w *wireGrant) UnmarshalJSON(b []byte) (err error) {
	type plain wireGrant
	w.extra, err = decodeSection(b, (*plain)(w), keysGrant)
	return err
}

// unrecognisedConditions lists, as dotted Graph paths, every unmodelled key of the conditions and
// the sections inside them.
func (c *wireConditions) unrecognised() []UnknownValue {
	var out []UnknownValue
	add := func(prefix string, keys []UnknownValue) {
		for _, k := range keys {
			out = append(out, UnknownValue{Field: prefix + k.Field, Value: k.Value})
		}
	}
	add("conditions.", c.extra)
	if u := c.Users; u != nil {
		add("conditions.users.", u.extra)
		for _, g := range []struct {
			name string
			w    *wireGuests
		}{{"includeGuestsOrExternalUsers", u.IncludeGuestsOrExternalUsers}, {"excludeGuestsOrExternalUsers", u.ExcludeGuestsOrExternalUsers}} {
			if g.w == nil {
				continue
			}
			add("conditions.users."+g.name+".", g.w.extra)
			if t := g.w.ExternalTenants; t != nil {
				add("conditions.users."+g.name+".externalTenants.", t.extra)
			}
		}
	}
	filter := func(prefix string, f *wireFilter) {
		if f != nil {
			add(prefix, f.extra)
		}
	}
	if a := c.Applications; a != nil {
		add("conditions.applications.", a.extra)
		filter("conditions.applications.applicationFilter.", a.ApplicationFilter)
	}
	if ca := c.ClientApplications; ca != nil {
		add("conditions.clientApplications.", ca.extra)
		filter("conditions.clientApplications.servicePrincipalFilter.", ca.ServicePrincipalFilter)
		filter("conditions.clientApplications.agentIdServicePrincipalFilter.", ca.AgentIDServicePrincipalFilter)
	}
	if p := c.Platforms; p != nil {
		add("conditions.platforms.", p.extra)
	}
	if l := c.Locations; l != nil {
		add("conditions.locations.", l.extra)
	}
	if d := c.Devices; d != nil {
		add("conditions.devices.", d.extra)
		filter("conditions.devices.deviceFilter.", d.DeviceFilter)
	}
	if f := c.AuthenticationFlows; f != nil {
		add("conditions.authenticationFlows.", f.extra)
	}
	return out
}
