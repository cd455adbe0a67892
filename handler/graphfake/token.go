package graphfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// claims are the parts of an issued token the emulator reads back.
type claims struct {
	Aud   string   `json:"aud"`
	Iss   string   `json:"iss"`
	Iat   int64    `json:"iat"`
	Nbf   int64    `json:"nbf"`
	Exp   int64    `json:"exp"`
	AppID string   `json:"appid"`
	OID   string   `json:"oid"`
	Sub   string   `json:"sub"`
	TID   string   `json:"tid"`
	Roles []string `json:"roles,omitempty"`
	IDTyp string   `json:"idtyp"`
	Ver   string   `json:"ver"`
}

func (c claims) has(perms ...string) bool {
	for _, p := range perms {
		if slices.Contains(c.Roles, p) {
			return true
		}
	}
	return false
}

// issue signs a token for resource. HS256 with a per-server key: only this server can verify it,
// which is all a test needs.
func (s *Server) issue(resource, clientID string) string {
	now := s.opts.Now()
	s.mu.Lock()
	tid := s.tenant.id
	s.mu.Unlock()
	roles := s.opts.Roles
	if roles == nil {
		roles = allRoles()
	}
	c := claims{
		Aud:   resource,
		Iss:   "https://sts.windows.net/" + tid + "/",
		Iat:   now.Unix(),
		Nbf:   now.Unix(),
		Exp:   now.Add(s.opts.TokenLifetime).Unix(),
		AppID: clientID,
		OID:   s.opts.ObjectID,
		Sub:   s.opts.ObjectID,
		TID:   tid,
		Roles: roles,
		IDTyp: "app",
		Ver:   "1.0",
	}
	header := b64(mustJSON(map[string]string{"alg": "HS256", "typ": "JWT"}))
	payload := b64(mustJSON(c))
	return header + "." + payload + "." + s.sign(header+"."+payload)
}

func (s *Server) sign(signed string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(signed))
	return b64(m.Sum(nil))
}

// verify checks an Authorization header value. It returns the token's claims, or the message Graph
// would answer with when the token is not acceptable.
func (s *Server) verify(authz string) (claims, string) {
	tok, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		return claims{}, "Access token is empty."
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return claims{}, "Invalid JWT token. The token is not in JWS Compact Serialization Format."
	}
	if !hmac.Equal([]byte(parts[2]), []byte(s.sign(parts[0]+"."+parts[1]))) {
		return claims{}, "Access token validation failure. Invalid signature."
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return claims{}, "Access token validation failure."
	}
	var c claims
	if err := json.Unmarshal(raw, &c); err != nil {
		return claims{}, "Access token validation failure."
	}
	if s.opts.Now().Unix() >= c.Exp {
		return claims{}, "Lifetime validation failed, the token is expired."
	}
	return c, ""
}

// serveIdentity is the App Service managed-identity endpoint (api-version 2019-08-01).
func (s *Server) serveIdentity(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, r, http.StatusMethodNotAllowed, "MethodNotAllowed", "use GET")
		return
	}
	if r.Header.Get("X-IDENTITY-HEADER") != s.idHeader {
		writeError(w, r, http.StatusUnauthorized, "Unauthorized", "missing or wrong X-IDENTITY-HEADER")
		return
	}
	q := r.URL.Query()
	if q.Get("api-version") != "2019-08-01" {
		writeError(w, r, http.StatusBadRequest, "BadRequest", "unsupported api-version "+strconv.Quote(q.Get("api-version")))
		return
	}
	resource := q.Get("resource")
	if resource == "" {
		writeError(w, r, http.StatusBadRequest, "BadRequest", "resource is required")
		return
	}
	clientID := s.opts.ClientID
	if id := q.Get("client_id"); id != "" {
		clientID = id
	}
	exp := s.opts.Now().Add(s.opts.TokenLifetime).Unix()
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token": s.issue(resource, clientID),
		"expires_on":   strconv.FormatInt(exp, 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    clientID,
	})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with values that always marshal
	}
	return b
}
