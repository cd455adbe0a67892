package graphfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Scenario is a tenant to seed, usually read from a JSON file (see scripts/scenarios).
type Scenario struct {
	// Description is free text for the humans reading the file.
	Description string `json:"description,omitempty"`
	// TenantID becomes the tid claim of issued tokens when set.
	TenantID string `json:"tenantId,omitempty"`
	// Policies are Graph v1.0 conditionalAccessPolicy objects, stored as given (an id and
	// createdDateTime are added when missing). They are not validated, so a scenario can hold what a
	// client must reject, such as a policy without a state.
	Policies []json.RawMessage `json:"policies,omitempty"`
	// Groups are keyed by object id.
	Groups map[string]Group `json:"groups,omitempty"`
	// AuthenticationStrengths are authenticationStrengthPolicy objects added to (or replacing, by id)
	// Microsoft's built-in ones.
	AuthenticationStrengths []json.RawMessage `json:"authenticationStrengths,omitempty"`
	// Users are Graph user objects keyed by object id (accountEnabled, signInActivity...), stored as
	// given; see reviews.go. They are the directory's users beyond those already named as group
	// members: every member of type #microsoft.graph.user exists as a user too.
	Users map[string]json.RawMessage `json:"users,omitempty"`
	// AccessReviews are access review definitions with their instances; see reviews.go.
	AccessReviews []AccessReview `json:"accessReviews,omitempty"`
	// SubscribedSkus are subscribedSku objects, answered by GET /subscribedSkus; see licences.go.
	SubscribedSkus []json.RawMessage `json:"subscribedSkus,omitempty"`
}

// Group is a security group. Members of type #microsoft.graph.group that are themselves seeded
// groups are expanded by transitiveMembers.
type Group struct {
	DisplayName string   `json:"displayName,omitempty"`
	Members     []Member `json:"members,omitempty"`
	// GroupTypes ("Unified", "DynamicMembership") and IsAssignableToRole decide whether a review of
	// all Microsoft 365 groups reaches the group.
	GroupTypes         []string `json:"groupTypes,omitempty"`
	IsAssignableToRole bool     `json:"isAssignableToRole,omitempty"`
}

// Member is a directory object in a group.
type Member struct {
	ID                string `json:"id"`
	ODataType         string `json:"@odata.type,omitempty"`
	DisplayName       string `json:"displayName,omitempty"`
	UserPrincipalName string `json:"userPrincipalName,omitempty"`
}

// The built-in authentication strengths every tenant has.
const (
	StrengthMFA               = "00000000-0000-0000-0000-000000000002"
	StrengthPasswordlessMFA   = "00000000-0000-0000-0000-000000000003"
	StrengthPhishingResistant = "00000000-0000-0000-0000-000000000004"
)

// object is a JSON object kept as raw values, so what a client stored is what it reads back.
type object map[string]json.RawMessage

type tenant struct {
	id            string
	policies      map[string]object
	policyOrder   []string
	groups        map[string]Group
	strengths     map[string]object
	strengthOrder []string
	users         map[string]object
	reviews       []accessReview
	skus          []object
}

func newTenant(id string) tenant {
	t := tenant{
		id:        id,
		policies:  map[string]object{},
		groups:    map[string]Group{},
		users:     map[string]object{},
		strengths: map[string]object{},
	}
	for _, raw := range builtInStrengths() {
		var o object
		if err := json.Unmarshal(raw, &o); err != nil {
			panic(err) // constant data
		}
		t.putStrength(o)
	}
	return t
}

func (t *tenant) putPolicy(o object) {
	id := o.str("id")
	if _, ok := t.policies[id]; !ok {
		t.policyOrder = append(t.policyOrder, id)
	}
	t.policies[id] = o
}

func (t *tenant) deletePolicy(id string) {
	delete(t.policies, id)
	t.policyOrder = slices.DeleteFunc(t.policyOrder, func(s string) bool { return s == id })
}

func (t *tenant) putStrength(o object) {
	id := o.str("id")
	if _, ok := t.strengths[id]; !ok {
		t.strengthOrder = append(t.strengthOrder, id)
	}
	t.strengths[id] = o
}

// str returns a string property, or "" when absent or not a string.
func (o object) str(key string) string {
	var s string
	if raw, ok := o[key]; ok {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}

func (o object) clone() object {
	out := make(object, len(o))
	for k, v := range o {
		out[k] = slices.Clone(v)
	}
	return out
}

func (o object) marshal() json.RawMessage {
	b, err := json.Marshal(map[string]json.RawMessage(o))
	if err != nil {
		panic(err) // values are valid JSON by construction
	}
	return b
}

// ReadScenario reads a scenario file. Unknown top-level fields are an error, to catch typos.
func ReadScenario(path string) (Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("read scenario: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		return Scenario{}, fmt.Errorf("decode scenario %s: %w", path, err)
	}
	return sc, nil
}

// LoadScenario reads a scenario file and seeds the server with it.
func (s *Server) LoadScenario(path string) error {
	sc, err := ReadScenario(path)
	if err != nil {
		return err
	}
	return s.Seed(sc)
}

// Seed replaces the tenant's data with the scenario's. Built-in authentication strengths stay.
func (s *Server) Seed(sc Scenario) error {
	tid := sc.TenantID
	if tid == "" {
		tid = s.opts.TenantID
	}
	t := newTenant(tid)
	for i, raw := range sc.Policies {
		var o object
		if err := json.Unmarshal(raw, &o); err != nil || o == nil {
			return fmt.Errorf("seed policy %d: not a JSON object", i)
		}
		if o.str("id") == "" {
			o["id"] = mustJSON(newGUID())
		}
		if _, ok := o["createdDateTime"]; !ok {
			o["createdDateTime"] = mustJSON("2024-01-01T00:00:00Z")
		}
		t.putPolicy(o)
	}
	for id, g := range sc.Groups {
		g.Members = slices.Clone(g.Members)
		for j, m := range g.Members {
			if m.ID == "" {
				return fmt.Errorf("seed group %s: member %d has no id", id, j)
			}
			if m.ODataType == "" {
				g.Members[j].ODataType = "#microsoft.graph.user"
			}
		}
		t.groups[id] = g
		for _, m := range g.Members {
			if strings.EqualFold(m.ODataType, "#microsoft.graph.user") {
				if _, ok := t.users[strings.ToLower(m.ID)]; !ok {
					u := object{"@odata.type": mustJSON("#microsoft.graph.user"), "id": mustJSON(m.ID)}
					if m.DisplayName != "" {
						u["displayName"] = mustJSON(m.DisplayName)
					}
					if m.UserPrincipalName != "" {
						u["userPrincipalName"] = mustJSON(m.UserPrincipalName)
					}
					t.users[strings.ToLower(m.ID)] = u
				}
			}
		}
	}
	for i, raw := range sc.AuthenticationStrengths {
		var o object
		if err := json.Unmarshal(raw, &o); err != nil || o == nil || o.str("id") == "" {
			return fmt.Errorf("seed authentication strength %d: not a JSON object with an id", i)
		}
		t.putStrength(o)
	}
	if err := t.seedGovernance(sc, s.opts.Now()); err != nil {
		return err
	}
	if err := t.seedSkus(sc); err != nil {
		return err
	}
	s.mu.Lock()
	s.tenant = t
	s.mu.Unlock()
	return nil
}

// DeleteUser removes a user from the directory, as deleting an account does; group memberships and
// policies that name it stay as they are. It reports whether the user existed.
func (s *Server) DeleteUser(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.tenant.users[strings.ToLower(id)]
	delete(s.tenant.users, strings.ToLower(id))
	return ok
}

// TenantID is the tenant the server pretends to be.
func (s *Server) TenantID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenant.id
}

// Policy returns a policy as stored (authentication strength not expanded).
func (s *Server) Policy(id string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.tenant.policies[id]
	if !ok {
		return nil, false
	}
	return o.marshal(), true
}

// Policies returns every policy as stored, in creation order.
func (s *Server) Policies() []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]json.RawMessage, 0, len(s.tenant.policyOrder))
	for _, id := range s.tenant.policyOrder {
		out = append(out, s.tenant.policies[id].marshal())
	}
	return out
}

// PutPolicy stores a policy object as given (no validation), adding an id when missing, and
// returns its id.
func (s *Server) PutPolicy(raw json.RawMessage) (string, error) {
	var o object
	if err := json.Unmarshal(raw, &o); err != nil || o == nil {
		return "", fmt.Errorf("put policy: not a JSON object")
	}
	if o.str("id") == "" {
		o["id"] = mustJSON(newGUID())
	}
	s.mu.Lock()
	s.tenant.putPolicy(o)
	s.mu.Unlock()
	return o.str("id"), nil
}

// builtInStrengths are Microsoft's built-in authentication strengths as Graph v1.0 lists them.
func builtInStrengths() []json.RawMessage {
	return []json.RawMessage{
		json.RawMessage(`{
			"id": "` + StrengthMFA + `",
			"createdDateTime": "2021-12-01T00:00:00Z",
			"modifiedDateTime": "2021-12-01T00:00:00Z",
			"displayName": "Multifactor authentication",
			"description": "Combinations of methods that satisfy strong authentication, such as a password + SMS",
			"policyType": "builtIn",
			"requirementsSatisfied": "mfa",
			"allowedCombinations": ["windowsHelloForBusiness", "fido2", "x509CertificateMultiFactor", "deviceBasedPush",
				"temporaryAccessPassOneTime", "temporaryAccessPassMultiUse", "password,microsoftAuthenticatorPush",
				"password,softwareOath", "password,hardwareOath", "password,sms", "password,voice",
				"federatedMultiFactor", "microsoftAuthenticatorPush,federatedSingleFactor",
				"softwareOath,federatedSingleFactor", "hardwareOath,federatedSingleFactor",
				"sms,federatedSingleFactor", "voice,federatedSingleFactor"]
		}`),
		json.RawMessage(`{
			"id": "` + StrengthPasswordlessMFA + `",
			"createdDateTime": "2021-12-01T00:00:00Z",
			"modifiedDateTime": "2021-12-01T00:00:00Z",
			"displayName": "Passwordless MFA",
			"description": "Passwordless methods that satisfy strong authentication, such as Passwordless sign-in with the Microsoft Authenticator",
			"policyType": "builtIn",
			"requirementsSatisfied": "mfa",
			"allowedCombinations": ["windowsHelloForBusiness", "fido2", "x509CertificateMultiFactor", "deviceBasedPush"]
		}`),
		json.RawMessage(`{
			"id": "` + StrengthPhishingResistant + `",
			"createdDateTime": "2021-12-01T00:00:00Z",
			"modifiedDateTime": "2021-12-01T00:00:00Z",
			"displayName": "Phishing-resistant MFA",
			"description": "Phishing-resistant, Passwordless methods for the strongest authentication, such as a FIDO2 security key",
			"policyType": "builtIn",
			"requirementsSatisfied": "mfa",
			"allowedCombinations": ["windowsHelloForBusiness", "fido2", "x509CertificateMultiFactor"]
		}`),
	}
}
