package graph

import (
	"fmt"
	"net/http"
	"strings"
)

// opWords says what each operation was doing, for a person reading an answer or an alert.
var opWords = map[string]string{
	"list policies":                  "list the Conditional Access policies",
	"get policy":                     "read a Conditional Access policy",
	"create policy":                  "create the managed policy",
	"update policy":                  "update the managed policy",
	"list group members":             "list the members of a break-glass group",
	"list authentication strengths":  "list the authentication strengths",
	"list access review definitions": "list the access reviews",
	"list access review instances":   "list the instances of an access review",
	"read excluded group":            "read an excluded group",
	"read excluded user":             "read an excluded user",
	"get user":                       "look up a break-glass user",
	"service principal id":           "find caguard's own service principal",
}

// doing names the operation of e in words. An operation made on behalf of another ("list policies:
// list authentication strengths") is named by the one that failed.
func (e *Error) doing() string {
	op := e.Op
	if i := strings.LastIndex(op, ": "); i >= 0 {
		op = op[i+2:]
	}
	if w, ok := opWords[op]; ok {
		return w
	}
	if op == "" {
		return "call Graph"
	}
	return op
}

// Describe says what failed in words a person can act on, and that are safe to show any caller or
// put in an alert: the HTTP status and Graph's error code, the permission a 403 asks for, the kind of
// network failure, and caguard's own reading of an answer it could not use. Graph's own message text,
// request ids, attempt counts and token details stay in Error and the logs: they are either not ours
// to repeat or differ from one attempt to the next, and an alert's id is built from these words.
func (e *Error) Describe() string {
	doing := e.doing()
	switch {
	case e.Code == "InvalidPolicy" || e.Code == "InvalidStrength":
		// caguard's own words about a body it could not read, e.g. `policy "X" (id) could not be
		// parsed: …`, or about a definition it refused to write.
		if strings.HasPrefix(e.Op, "create") || strings.HasPrefix(e.Op, "update") {
			return "caguard did not " + doing + ": " + e.Message
		}
		return "Graph answered something caguard cannot read when asked to " + doing + ": " + e.Message
	case e.Status == http.StatusForbidden:
		if e.Permission != "" {
			return fmt.Sprintf("Graph answered 403 to %s: the app lacks %s (grant the application permission with admin consent)", doing, e.Permission)
		}
		return fmt.Sprintf("Graph answered 403%s to %s: the app lacks a permission it needs", codeText(e), doing)
	case e.Status == http.StatusUnauthorized:
		return fmt.Sprintf("Graph answered 401%s to %s: it refused caguard's token (check AZURE_TENANT_ID and the identity caguard runs as)", codeText(e), doing)
	case e.Status == http.StatusTooManyRequests:
		return fmt.Sprintf("Graph is throttling caguard (it answered 429 to %s); a retry later can succeed", doing)
	case e.Code == "Timeout":
		return fmt.Sprintf("Graph did not answer in time when asked to %s; a retry later can succeed", doing)
	case e.Code == "Canceled":
		return fmt.Sprintf("the run was cancelled while asking Graph to %s", doing)
	case e.Code == "AuthenticationFailed":
		return fmt.Sprintf("caguard could not get a token for Graph to %s: Entra refused its identity (check AZURE_CLIENT_ID and the managed identity or client secret)", doing)
	case e.Code == "CredentialUnavailable":
		return fmt.Sprintf("caguard has no credential for Graph to %s (no managed identity is reachable and no client secret or workload identity is set)", doing)
	case e.Code == "InvalidToken":
		return "caguard could not read its own service principal id from its Graph token; set CAGUARD_SERVICE_PRINCIPAL_ID"
	case e.Code == "InvalidPaging":
		return fmt.Sprintf("Graph's answer to %s has a next-page link caguard will not follow (another host, or paging that does not end)", doing)
	case e.Code == "MalformedResponse" && e.Transient:
		return fmt.Sprintf("Graph's answer to %s could not be read%s; a retry later can succeed", doing, statusText(e))
	case e.Status >= 500 || (e.Transient && e.Status != 0):
		return fmt.Sprintf("Graph is unavailable (it answered %d%s to %s); a retry later can succeed", e.Status, codeText(e), doing)
	case e.Code == "NetworkError" || (e.Transient && e.Status == 0):
		return fmt.Sprintf("Graph could not be reached to %s (the connection failed); a retry later can succeed", doing)
	case e.Status != 0:
		return fmt.Sprintf("Graph answered %d%s to %s", e.Status, codeText(e), doing)
	}
	return fmt.Sprintf("caguard could not ask Graph to %s; the function's log has the details", doing)
}

// codeText is Graph's error code in parentheses, when it adds something to the status.
func codeText(e *Error) string {
	if e.Code == "" || strings.EqualFold(strings.ReplaceAll(e.Code, " ", ""), strings.ReplaceAll(http.StatusText(e.Status), " ", "")) {
		return ""
	}
	return " (" + clip(oneLine(e.Code), 64) + ")"
}

func statusText(e *Error) string {
	if e.Status == 0 {
		return ""
	}
	return fmt.Sprintf(" (status %d)", e.Status)
}
