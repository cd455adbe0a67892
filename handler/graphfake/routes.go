package graphfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// route dispatches a Graph request (path below /v1.0, split into segments).
func (s *Server) route(w http.ResponseWriter, r *http.Request, c claims, seg []string, body []byte) {
	is := func(i int, name string) bool { return len(seg) > i && strings.EqualFold(seg[i], name) }
	if s.routeGovernance(w, r, c, seg) {
		return
	}
	switch {
	case is(0, "identity") && is(1, "conditionalAccess") && is(2, "policies") && len(seg) == 3:
		switch r.Method {
		case http.MethodGet:
			if s.allow(w, r, c, PermPolicyReadAll, PermPolicyReadWriteCA) {
				s.listPolicies(w, r)
			}
		case http.MethodPost:
			if s.allow(w, r, c, PermPolicyReadWriteCA) {
				s.createPolicy(w, r, body)
			}
		default:
			methodNotAllowed(w, r)
		}
	case is(0, "identity") && is(1, "conditionalAccess") && is(2, "policies") && len(seg) == 4:
		id := seg[3]
		switch r.Method {
		case http.MethodGet:
			if s.allow(w, r, c, PermPolicyReadAll, PermPolicyReadWriteCA) {
				s.getPolicy(w, r, id)
			}
		case http.MethodPatch:
			if s.allow(w, r, c, PermPolicyReadWriteCA) {
				s.patchPolicy(w, r, id, body)
			}
		case http.MethodDelete:
			if s.allow(w, r, c, PermPolicyReadWriteCA) {
				s.deletePolicy(w, r, id)
			}
		default:
			methodNotAllowed(w, r)
		}
	case is(0, "groups") && is(2, "transitiveMembers") && len(seg) == 3:
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r)
			return
		}
		if s.allowDirectory(w, r, c) {
			s.transitiveMembers(w, r, seg[1], c.has(PermUserReadAll, PermDirectoryReadAll))
		}
	case is(0, "policies") && is(1, "authenticationStrengthPolicies") && (len(seg) == 2 || len(seg) == 3):
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r)
			return
		}
		if !s.allow(w, r, c, PermPolicyReadAll, PermPolicyReadWriteCA, PermPolicyReadWriteAuthMethod) {
			return
		}
		if len(seg) == 2 {
			s.listStrengths(w, r)
		} else {
			s.getStrength(w, r, seg[2])
		}
	case is(0, "subscribedSkus") && len(seg) == 1:
		s.listSubscribedSkus(w, r, c)
	case is(0, "$batch") && len(seg) == 1:
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r)
			return
		}
		s.serveBatch(w, r, body)
	case is(0, "directoryObjects") && is(1, "getByIds") && len(seg) == 2:
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r)
			return
		}
		if s.allow(w, r, c, PermDirectoryReadAll) {
			s.getByIDs(w, r, body)
		}
	default:
		writeError(w, r, http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("Resource not found for the segment '%s'.", seg[0]))
	}
}

// allow answers 403 unless the token holds one of perms.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, c claims, perms ...string) bool {
	if c.has(perms...) {
		return true
	}
	writeError(w, r, http.StatusForbidden, "AccessDenied",
		"You cannot perform the requested operation, required scopes are missing in the token.")
	return false
}

func (s *Server) allowDirectory(w http.ResponseWriter, r *http.Request, c claims) bool {
	if c.has(PermGroupMemberReadAll, PermGroupReadAll, PermDirectoryReadAll) {
		return true
	}
	writeError(w, r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
	return false
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, http.StatusMethodNotAllowed, "Request_BadRequest", "The HTTP method '"+r.Method+"' is not allowed.")
}

// writePage answers one page of items with an absolute @odata.nextLink, as Graph does.
func (s *Server) writePage(w http.ResponseWriter, r *http.Request, items []json.RawMessage, context string) {
	q := r.URL.Query()
	offset := 0
	if tok := q.Get("$skiptoken"); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 {
			writeError(w, r, http.StatusBadRequest, "BadRequest", "Invalid $skiptoken.")
			return
		}
		offset = n
	}
	size := s.opts.PageSize
	if top := q.Get("$top"); top != "" {
		n, err := strconv.Atoi(top)
		if err != nil || n < 1 || n > 999 {
			writeError(w, r, http.StatusBadRequest, "BadRequest", "Invalid $top value.")
			return
		}
		// PageSize is the server's limit, as Graph's own limits cap $top.
		size = min(n, size)
	}
	offset = min(offset, len(items))
	end := min(offset+size, len(items))
	page := items[offset:end]
	if page == nil {
		page = []json.RawMessage{} // an empty collection is [], never null, in Graph as in OData
	}
	out := map[string]any{
		"@odata.context": s.URL() + "/v1.0/$metadata#" + context,
		"value":          page,
	}
	if end < len(items) {
		q.Del("$skiptoken")
		next := s.URL() + r.URL.Path + "?"
		if enc := q.Encode(); enc != "" {
			next += enc + "&"
		}
		out["@odata.nextLink"] = next + "$skiptoken=" + strconv.Itoa(end)
	}
	writeJSON(w, http.StatusOK, out)
}

// selectFields parses $select; nil means every field.
func selectFields(r *http.Request) []string {
	sel := r.URL.Query().Get("$select")
	if sel == "" {
		return nil
	}
	var out []string
	for _, f := range strings.Split(sel, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// project keeps the selected fields, plus id and @odata.type, which Graph always returns.
func project(o object, fields []string) object {
	if fields == nil {
		return o
	}
	out := object{}
	for _, k := range append([]string{"id", "@odata.type"}, fields...) {
		if v, ok := o[k]; ok {
			out[k] = v
		}
	}
	return out
}

// render is a policy as Graph answers it: authenticationStrength expanded from its id.
func (s *Server) render(o object) object {
	out := o.clone()
	if s.opts.CollapseAuthenticationStrength {
		return out
	}
	var gc object
	if err := json.Unmarshal(o["grantControls"], &gc); err != nil || gc == nil {
		return out
	}
	var ref object
	if err := json.Unmarshal(gc["authenticationStrength"], &ref); err != nil || ref == nil {
		return out
	}
	full, ok := s.tenant.strengths[ref.str("id")]
	if !ok {
		return out
	}
	gc["authenticationStrength@odata.context"] = mustJSON(s.root + "/v1.0/$metadata#identity/conditionalAccess/policies('" +
		o.str("id") + "')/grantControls/authenticationStrength/$entity")
	gc["authenticationStrength"] = full.marshal()
	out["grantControls"] = gc.marshal()
	return out
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request) {
	fields := selectFields(r)
	s.mu.Lock()
	items := make([]json.RawMessage, 0, len(s.tenant.policyOrder))
	for _, id := range s.tenant.policyOrder {
		o, ok := s.lagRead(id, s.tenant.policies[id])
		if !ok {
			continue
		}
		items = append(items, project(s.render(o), fields).marshal())
	}
	s.mu.Unlock()
	s.writePage(w, r, items, "identity/conditionalAccess/policies")
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	o, ok := s.tenant.policies[id]
	if ok {
		o, ok = s.lagRead(id, o)
	}
	var out object
	if ok {
		out = project(s.render(o), selectFields(r))
		out["@odata.context"] = mustJSON(s.root + "/v1.0/$metadata#identity/conditionalAccess/policies/$entity")
	}
	s.mu.Unlock()
	if !ok {
		policyNotFound(w, r, id)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func policyNotFound(w http.ResponseWriter, r *http.Request, id string) {
	writeError(w, r, http.StatusNotFound, "ResourceNotFound", "Policy "+id+" not found.")
}

// decodeObject parses a request body that must be one JSON object. A non-empty second result is the
// message of the 400 to answer.
func decodeObject(body []byte) (object, string) {
	var o object
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&o); err != nil || o == nil || dec.More() {
		return nil, "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."
	}
	return o, ""
}

// checkPolicyBody validates the properties a client sent, the way Graph rejects them with a 400.
// Read-only properties are ignored; unknown ones are an error. It returns the 400's message, or "".
func (s *Server) checkPolicyBody(o object, id string) string {
	for k, v := range o {
		isNull := bytes.Equal(bytes.TrimSpace(v), []byte("null"))
		switch k {
		case "displayName", "description":
			var str string
			if err := json.Unmarshal(v, &str); err != nil || (k == "displayName" && (isNull || str == "")) {
				return fmt.Sprintf("Invalid value for property '%s'.", k)
			}
		case "state":
			var st string
			if err := json.Unmarshal(v, &st); err != nil || isNull {
				return "Invalid value for property 'state'."
			}
			switch st {
			case "enabled", "disabled", "enabledForReportingButNotEnforced":
			default:
				return fmt.Sprintf("Cannot convert the literal '%s' to the expected type 'microsoft.graph.conditionalAccessPolicyState'.", st)
			}
		case "conditions", "grantControls", "sessionControls":
			var sub object
			if err := json.Unmarshal(v, &sub); err != nil || (k == "conditions" && sub == nil) {
				return fmt.Sprintf("Invalid value for property '%s'.", k)
			}
			if k == "grantControls" && sub != nil {
				if msg := s.checkStrengthRef(sub); msg != "" {
					return msg
				}
			}
			if k == "conditions" {
				if msg := s.checkDirectoryRefs(sub); msg != "" {
					return msg
				}
			}
		case "id":
			if id != "" && o.str("id") != id {
				return "The id in the payload does not match the id in the URL."
			}
		case "createdDateTime", "modifiedDateTime", "templateId", "@odata.type", "@odata.context":
		default:
			return fmt.Sprintf("Invalid property '%s'.", k)
		}
	}
	return ""
}

// checkDirectoryRefs refuses users and groups that do not exist, as Graph refuses a whole policy
// write that names a deleted account or group.
func (s *Server) checkDirectoryRefs(cond object) string {
	var users object
	if err := json.Unmarshal(cond["users"], &users); err != nil || users == nil {
		return ""
	}
	for _, key := range []string{"includeUsers", "excludeUsers", "includeGroups", "excludeGroups"} {
		var ids []string
		if raw, ok := users[key]; ok {
			if err := json.Unmarshal(raw, &ids); err != nil {
				return fmt.Sprintf("Invalid value for property '%s'.", key)
			}
		}
		for _, id := range ids {
			switch strings.ToLower(id) {
			case "all", "none", "guestsorexternalusers":
				continue
			}
			known := false
			if strings.HasSuffix(key, "Users") {
				_, known = s.tenant.users[strings.ToLower(id)]
			} else {
				_, known = s.tenant.groups[id]
			}
			if !known {
				return fmt.Sprintf("Invalid conditions.users.%s: the directory has no object with id '%s'.", key, id)
			}
		}
	}
	return ""
}

func (s *Server) checkStrengthRef(gc object) string {
	raw, ok := gc["authenticationStrength"]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return ""
	}
	var ref object
	if err := json.Unmarshal(raw, &ref); err != nil || ref == nil {
		return "Invalid value for property 'authenticationStrength'."
	}
	if _, ok := s.tenant.strengths[ref.str("id")]; !ok {
		return fmt.Sprintf("Authentication strength policy '%s' was not found.", ref.str("id"))
	}
	return ""
}

func (s *Server) createPolicy(w http.ResponseWriter, r *http.Request, body []byte) {
	o, msg := decodeObject(body)
	if msg != "" {
		writeError(w, r, http.StatusBadRequest, "BadRequest", msg)
		return
	}
	for _, k := range []string{"displayName", "state", "conditions"} {
		if _, ok := o[k]; !ok {
			writeError(w, r, http.StatusBadRequest, "BadRequest", "Property '"+k+"' is required.")
			return
		}
	}
	s.mu.Lock()
	if msg := s.checkPolicyBody(o, ""); msg != "" {
		s.mu.Unlock()
		writeError(w, r, http.StatusBadRequest, "BadRequest", msg)
		return
	}
	id := newGUID()
	stored := object{}
	for k, v := range o {
		switch k {
		case "id", "createdDateTime", "modifiedDateTime", "templateId", "@odata.type", "@odata.context":
		default:
			stored[k] = v
		}
	}
	stored["id"] = mustJSON(id)
	stored["createdDateTime"] = mustJSON(s.opts.Now().UTC().Format("2006-01-02T15:04:05.0000000Z"))
	stored["modifiedDateTime"] = json.RawMessage("null")
	stored["templateId"] = json.RawMessage("null")
	s.tenant.putPolicy(stored)
	s.lagCreated(id)
	out := s.render(stored)
	out["@odata.context"] = mustJSON(s.root + "/v1.0/$metadata#identity/conditionalAccess/policies/$entity")
	location := s.root + "/v1.0/identity/conditionalAccess/policies/" + id
	s.mu.Unlock()
	w.Header().Set("Location", location)
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) patchPolicy(w http.ResponseWriter, r *http.Request, id string, body []byte) {
	o, msg := decodeObject(body)
	if msg != "" {
		writeError(w, r, http.StatusBadRequest, "BadRequest", msg)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.tenant.policies[id]
	if !ok {
		policyNotFound(w, r, id)
		return
	}
	if msg := s.checkPolicyBody(o, id); msg != "" {
		writeError(w, r, http.StatusBadRequest, "BadRequest", msg)
		return
	}
	patch := object{}
	for k, v := range o {
		switch k {
		case "id", "createdDateTime", "modifiedDateTime", "templateId", "@odata.type", "@odata.context":
		default:
			patch[k] = v
		}
	}
	next := mergePatch(cur, patch)
	next["modifiedDateTime"] = mustJSON(s.opts.Now().UTC().Format("2006-01-02T15:04:05.0000000Z"))
	s.lagPatched(id, cur)
	s.tenant.putPolicy(next)
	w.WriteHeader(http.StatusNoContent)
}

// mergePatch applies a PATCH body the way Graph does: "Existing properties that aren't included in the
// request body maintain their previous values" (Update conditionalAccessPolicy, v1.0:
// https://learn.microsoft.com/graph/api/conditionalaccesspolicy-update?view=graph-rest-1.0), at every
// level: objects merge key by key, lists and scalars replace, and an explicit null clears. An object
// that names another @odata.type than the stored one replaces it whole.
func mergePatch(cur, patch object) object {
	out := cur.clone()
	for k, v := range patch {
		var sub object
		if bytes.HasPrefix(bytes.TrimSpace(v), []byte("{")) && json.Unmarshal(v, &sub) == nil && sub != nil {
			var old object
			if json.Unmarshal(out[k], &old) == nil && old != nil {
				if t, ok := sub["@odata.type"]; !ok || bytes.Equal(t, old["@odata.type"]) {
					out[k] = mergePatch(old, sub).marshal()
					continue
				}
			}
			out[k] = mergePatch(object{}, sub).marshal()
			continue
		}
		out[k] = slices.Clone(v)
	}
	return out
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	_, ok := s.tenant.policies[id]
	if ok {
		s.tenant.deletePolicy(id)
	}
	s.mu.Unlock()
	if !ok {
		policyNotFound(w, r, id)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// transitiveMembers answers a group's members, nested groups expanded, each member once.
func (s *Server) transitiveMembers(w http.ResponseWriter, r *http.Request, groupID string, readUsers bool) {
	fields := selectFields(r)
	s.mu.Lock()
	_, ok := s.tenant.groups[groupID]
	var items []json.RawMessage
	if ok {
		seen := map[string]bool{groupID: true}
		queue := []string{groupID}
		for len(queue) > 0 {
			g := s.tenant.groups[queue[0]]
			queue = queue[1:]
			for _, m := range g.Members {
				if seen[m.ID] {
					continue
				}
				seen[m.ID] = true
				o := object{"@odata.type": mustJSON(m.ODataType), "id": mustJSON(m.ID)}
				if m.DisplayName != "" {
					o["displayName"] = mustJSON(m.DisplayName)
				}
				if m.UserPrincipalName != "" {
					o["userPrincipalName"] = mustJSON(m.UserPrincipalName)
				}
				s.tenant.describeMember(o, readUsers)
				items = append(items, project(o, fields).marshal())
				if _, nested := s.tenant.groups[m.ID]; nested && m.ODataType == "#microsoft.graph.group" {
					queue = append(queue, m.ID)
				}
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, r, http.StatusNotFound, "Request_ResourceNotFound",
			"Resource '"+groupID+"' does not exist or one of its queried reference-property objects are not present.")
		return
	}
	s.writePage(w, r, items, "directoryObjects")
}

func (s *Server) listStrengths(w http.ResponseWriter, r *http.Request) {
	fields := selectFields(r)
	s.mu.Lock()
	items := make([]json.RawMessage, 0, len(s.tenant.strengthOrder))
	for _, id := range s.tenant.strengthOrder {
		items = append(items, project(s.tenant.strengths[id], fields).marshal())
	}
	s.mu.Unlock()
	s.writePage(w, r, items, "policies/authenticationStrengthPolicies")
}

func (s *Server) getStrength(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	o, ok := s.tenant.strengths[id]
	var out object
	if ok {
		out = project(o, selectFields(r)).clone()
		out["@odata.context"] = mustJSON(s.root + "/v1.0/$metadata#policies/authenticationStrengthPolicies/$entity")
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, r, http.StatusNotFound, "ResourceNotFound", "Authentication strength policy "+id+" not found.")
		return
	}
	writeJSON(w, http.StatusOK, out)
}
