package app

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/caguard/caguard/handler/azfunc"
	"github.com/caguard/caguard/handler/report"
)

// answerFormat says how Evaluate answers: JSON for machines (the default) or the HTML report.
type answerFormat int

const (
	answerJSON answerFormat = iota
	answerHTML
)

// negotiate picks Evaluate's answer format. ?format=html or ?format=json decides outright (a link
// can carry it; a browser's Accept cannot be set by hand). Otherwise the Accept header decides: HTML
// when text/html has a higher quality than application/json, so a browser ("text/html,…,*/*;q=0.8")
// gets the page and curl ("*/*"), a pipeline or an absent header gets JSON. A format that is neither
// is the caller's mistake, answered with 400.
func negotiate(req *azfunc.HTTPRequest) (answerFormat, error) {
	for k, v := range req.Query {
		if !strings.EqualFold(k, "format") {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "html":
			return answerHTML, nil
		case "json", "":
			return answerJSON, nil
		default:
			return answerJSON, &azfunc.PublicError{Status: http.StatusBadRequest, Message: "format must be html or json"}
		}
	}
	accept := strings.Join(req.Headers.Values("Accept"), ",")
	if quality(accept, "text", "html") > quality(accept, "application", "json") {
		return answerHTML, nil
	}
	return answerJSON, nil
}

// quality is the q value the Accept header gives to typ/sub (RFC 9110 section 12.5.1): the most
// specific matching range wins (text/html over text/* over */*); no match is 0. An absent header
// accepts everything equally.
func quality(accept, typ, sub string) float64 {
	if strings.TrimSpace(accept) == "" {
		return 1
	}
	best, bestSpec := 0.0, -1
	for _, part := range strings.Split(accept, ",") {
		fields := strings.Split(part, ";")
		mt, ms, ok := strings.Cut(strings.ToLower(strings.TrimSpace(fields[0])), "/")
		if !ok {
			continue
		}
		spec := -1
		switch {
		case mt == typ && ms == sub:
			spec = 2
		case mt == typ && ms == "*":
			spec = 1
		case mt == "*" && ms == "*":
			spec = 0
		}
		if spec < bestSpec || spec < 0 {
			continue
		}
		q := 1.0
		for _, p := range fields[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f >= 0 && f <= 1 {
					q = f
				}
			}
		}
		if spec > bestSpec || q > best {
			best, bestSpec = q, spec
		}
	}
	return best
}

// htmlResponse is the report page as an http output binding: the host relays statusCode, body and
// headers as they are (reference/functions-custom-handler.md, "The response for HTTP in envelope
// mode"), so the page travels as the body string with its own Content-Type.
func htmlResponse(status int, page []byte) azfunc.HTTPResponse {
	return azfunc.HTTPResponse{
		StatusCode: status,
		Body:       string(page),
		Headers: map[string]string{
			"Content-Type":            report.ContentType,
			"Content-Security-Policy": report.CSP + "; frame-ancestors 'none'",
			"Cache-Control":           "no-store",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"Vary":                    "Accept",
		},
	}
}
