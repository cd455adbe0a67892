// Package tenants reads the tenant registry: the list of Entra tenants one caguard deployment guards,
// each with its own break-glass accounts and mode.
//
// The registry is one JSON document:
//
//	{"tenants": [
//	  {"id": "<tenant GUID>", "displayName": "Contoso",
//	   "breakGlassUserIds": ["<GUID>", ...], "breakGlassGroupIds": ["<GUID>", ...],
//	   "mode": "alert" | "remediate"}
//	]}
//
// Parsing is strict, because a registry that silently loses a tenant leaves that tenant unguarded:
// an unknown field, a duplicate or malformed id, a bad mode or trailing data is an error that names
// the entry (its index and, when readable, its id) and the field. Nothing is ever dropped.
//
// Without a registry, Single describes the one tenant of AZURE_TENANT_ID and today's settings.
package tenants

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Modes of a tenant, as REMEDIATION_MODE.
const (
	ModeAlert     = "alert"
	ModeRemediate = "remediate"
)

// Tenant is one guarded tenant.
type Tenant struct {
	ID                 string   `json:"id"`
	DisplayName        string   `json:"displayName"`
	BreakGlassUserIDs  []string `json:"breakGlassUserIds"`
	BreakGlassGroupIDs []string `json:"breakGlassGroupIds"`
	// Mode overrides REMEDIATION_MODE for this tenant; empty means the global setting.
	Mode string `json:"mode,omitempty"`
}

// Registry is the parsed document, in its order.
type Registry struct {
	Tenants []Tenant `json:"tenants"`
}

// MaxTenants bounds a registry: a document larger than this is more likely a mistake than a fleet,
// and each tenant costs a queue message and a run every night.
const MaxTenants = 5000

// MaxBytes bounds the document read.
const MaxBytes = 4 << 20

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// EntryError is a registry entry that cannot be used: which one, which field, and why.
type EntryError struct {
	Index int    // 0-based position in "tenants"
	ID    string // the entry's id when it could be read
	Field string
	Msg   string
}

func (e *EntryError) Error() string {
	who := fmt.Sprintf("tenants[%d]", e.Index)
	if e.ID != "" {
		who += " (" + e.ID + ")"
	}
	return fmt.Sprintf("tenant registry: %s.%s: %s", who, e.Field, e.Msg)
}

// Parse reads a registry document. defaultMode is the global REMEDIATION_MODE, which an entry without
// a mode takes.
func Parse(r io.Reader, defaultMode string) (Registry, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return Registry{}, fmt.Errorf("tenant registry: read: %w", err)
	}
	if len(b) > MaxBytes {
		return Registry{}, fmt.Errorf("tenant registry: larger than %d bytes", MaxBytes)
	}
	// The document first, leniently, so an entry's error can name it; then each entry strictly.
	var doc struct {
		Tenants *[]json.RawMessage `json:"tenants"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return Registry{}, fmt.Errorf("tenant registry: not a document {\"tenants\": [...]}: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Registry{}, errors.New("tenant registry: data after the document")
	}
	if doc.Tenants == nil {
		return Registry{}, errors.New("tenant registry: no \"tenants\" array")
	}
	if len(*doc.Tenants) == 0 {
		return Registry{}, errors.New("tenant registry: \"tenants\" is empty; remove the registry to guard the tenant of AZURE_TENANT_ID alone")
	}
	if len(*doc.Tenants) > MaxTenants {
		return Registry{}, fmt.Errorf("tenant registry: %d tenants, more than %d", len(*doc.Tenants), MaxTenants)
	}
	out := Registry{Tenants: make([]Tenant, 0, len(*doc.Tenants))}
	seen := map[string]int{}
	for i, raw := range *doc.Tenants {
		t, err := parseEntry(i, raw, defaultMode)
		if err != nil {
			return Registry{}, err
		}
		if j, dup := seen[t.ID]; dup {
			return Registry{}, &EntryError{Index: i, ID: t.ID, Field: "id", Msg: fmt.Sprintf("the same tenant as tenants[%d]", j)}
		}
		seen[t.ID] = i
		out.Tenants = append(out.Tenants, t)
	}
	return out, nil
}

func parseEntry(i int, raw json.RawMessage, defaultMode string) (Tenant, error) {
	// The id alone first, to name the entry in any later error.
	var head struct {
		ID any `json:"id"`
	}
	_ = json.Unmarshal(raw, &head)
	id, _ := head.ID.(string)
	id = strings.ToLower(strings.TrimSpace(id))
	if !guidRE.MatchString(id) {
		id = ""
	}
	fail := func(field, msg string) (Tenant, error) {
		return Tenant{}, &EntryError{Index: i, ID: id, Field: field, Msg: msg}
	}
	var t Tenant
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ute) && ute.Field != "":
			return fail(ute.Field, "want a "+ute.Type.String()+", got a JSON "+ute.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return fail(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unknown field (a typo would silently drop a setting)")
		}
		return fail("", "not a JSON object: "+err.Error())
	}
	t.ID = strings.ToLower(strings.TrimSpace(t.ID))
	if t.ID == "" {
		return fail("id", "missing: want the tenant's id (a GUID)")
	}
	if !guidRE.MatchString(t.ID) {
		return fail("id", fmt.Sprintf("%q is not a GUID", clip(t.ID)))
	}
	t.DisplayName = strings.TrimSpace(t.DisplayName)
	if t.DisplayName == "" {
		return fail("displayName", "missing: alerts and the fleet view name the tenant by it")
	}
	if len([]rune(t.DisplayName)) > 256 {
		return fail("displayName", "longer than 256 characters")
	}
	var err error
	if t.BreakGlassUserIDs, err = guidList(t.BreakGlassUserIDs); err != nil {
		return fail("breakGlassUserIds", err.Error())
	}
	if t.BreakGlassGroupIDs, err = guidList(t.BreakGlassGroupIDs); err != nil {
		return fail("breakGlassGroupIds", err.Error())
	}
	switch m := strings.ToLower(strings.TrimSpace(t.Mode)); m {
	case "":
		t.Mode = defaultMode
	case ModeAlert, ModeRemediate:
		t.Mode = m
	default:
		return fail("mode", fmt.Sprintf("%q: want alert or remediate", clip(t.Mode)))
	}
	return t, nil
}

// guidList checks and normalises a list of object ids; a duplicate is an error, as it usually hides
// a copy-paste that meant another account.
func guidList(ids []string) ([]string, error) {
	out := make([]string, 0, len(ids))
	seen := map[string]bool{}
	for k, id := range ids {
		id = strings.ToLower(strings.TrimSpace(id))
		if !guidRE.MatchString(id) {
			return nil, fmt.Errorf("item %d %q is not a GUID", k, clip(id))
		}
		if seen[id] {
			return nil, fmt.Errorf("item %d %s is listed twice", k, id)
		}
		seen[id] = true
		out = append(out, id)
	}
	return out, nil
}

// Single is the registry of a deployment without one: the tenant of AZURE_TENANT_ID with today's
// settings, exactly as a single-tenant caguard has always run.
func Single(tenantID string, breakGlassUsers, breakGlassGroups []string, mode string) Registry {
	return Registry{Tenants: []Tenant{{ID: strings.ToLower(tenantID), DisplayName: tenantID,
		BreakGlassUserIDs: breakGlassUsers, BreakGlassGroupIDs: breakGlassGroups, Mode: mode}}}
}

// Find returns the tenant with id (any case).
func (r Registry) Find(id string) (Tenant, bool) {
	id = strings.ToLower(strings.TrimSpace(id))
	for _, t := range r.Tenants {
		if t.ID == id {
			return t, true
		}
	}
	return Tenant{}, false
}

func clip(s string) string {
	if r := []rune(s); len(r) > 64 {
		return string(r[:64]) + "…"
	}
	return s
}
