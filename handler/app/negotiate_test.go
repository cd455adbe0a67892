package app

import (
	"net/http"
	"strings"
	"testing"

	"github.com/caguard/caguard/handler/azfunc/hosttest"
)

// evaluateRequest is the host's envelope for an Evaluate call with the given Accept header and query.
func evaluateRequest(method, accept string, query map[string]string) map[string]any {
	data := hosttest.HTTPData("req", method, "")
	req := data["req"].(map[string]any)
	headers := req["Headers"].(map[string][]string)
	if accept == "" {
		delete(headers, "Accept")
	} else {
		headers["Accept"] = []string{accept}
	}
	q := req["Query"].(map[string]string)
	for k, v := range query {
		q[k] = v
	}
	return data
}

func TestEvaluateNegotiatesTheAnswer(t *testing.T) {
	const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
	tests := []struct {
		name     string
		method   string
		accept   string
		query    map[string]string
		wantHTML bool
		wantCode int
	}{
		{name: "a browser gets the page", method: "GET", accept: browser, wantHTML: true},
		{name: "curl's */* gets JSON", method: "GET", accept: "*/*"},
		{name: "no Accept header gets JSON", method: "GET"},
		{name: "application/json gets JSON", method: "GET", accept: "application/json"},
		{name: "JSON preferred by quality gets JSON", method: "GET", accept: "text/html;q=0.5, application/json"},
		{name: "HTML preferred by quality gets the page", method: "GET", accept: "application/json;q=0.2, text/html", wantHTML: true},
		{name: "text/* beats */* for HTML", method: "GET", accept: "text/*, */*;q=0.1", wantHTML: true},
		{name: "format=html gets the page whatever Accept says", method: "GET", accept: "application/json", query: map[string]string{"format": "html"}, wantHTML: true},
		{name: "format=json gets JSON from a browser", method: "GET", accept: browser, query: map[string]string{"format": "json"}},
		{name: "Format=HTML is read in any case", method: "GET", query: map[string]string{"Format": "HTML"}, wantHTML: true},
		{name: "a POST run can answer with the page too", method: "POST", accept: browser, wantHTML: true},
		{name: "an unknown format is a 400", method: "GET", query: map[string]string{"format": "xml"}, wantCode: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := setup(t)
			a, err := h.Invoke(FuncEvaluate, evaluateRequest(tt.method, tt.accept, tt.query), nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := a.HTTP("res")
			if err != nil {
				t.Fatal(err)
			}
			wantCode := tt.wantCode
			if wantCode == 0 {
				wantCode = http.StatusOK
			}
			if res.StatusCode != wantCode {
				t.Fatalf("status: got %d, want %d (body %.200s)", res.StatusCode, wantCode, res.Body)
			}
			if wantCode != http.StatusOK {
				return
			}
			ct := res.Headers["Content-Type"]
			if tt.wantHTML {
				if ct != "text/html; charset=utf-8" {
					t.Errorf("Content-Type: got %q, want text/html; charset=utf-8", ct)
				}
				if !strings.HasPrefix(res.Body, "<!DOCTYPE html>") || !strings.Contains(res.Body, "Non-compliant: MFA is NOT required") {
					t.Errorf("body is not the report page with the verdict: %.200s", res.Body)
				}
				if csp := res.Headers["Content-Security-Policy"]; !strings.HasPrefix(csp, "default-src 'none'; style-src 'unsafe-inline'") {
					t.Errorf("Content-Security-Policy: got %q", csp)
				}
			} else if !strings.HasPrefix(ct, "application/json") || !strings.HasPrefix(res.Body, "{") {
				t.Errorf("got Content-Type %q and body %.80s, want JSON", ct, res.Body)
			}
			if res.Headers["Vary"] != "Accept" {
				t.Errorf("Vary: got %q, want Accept (one URL, two representations)", res.Headers["Vary"])
			}
		})
	}
}

func TestQuality(t *testing.T) {
	tests := []struct {
		name, accept, typ, sub string
		want                   float64
	}{
		{"an exact match takes its q", "text/html;q=0.7", "text", "html", 0.7},
		{"the most specific range wins over a higher wildcard", "*/*;q=1, text/html;q=0.3", "text", "html", 0.3},
		{"no match is zero", "image/png", "application", "json", 0},
		{"a bad q reads as 1", "application/json;q=x", "application", "json", 1},
		{"an absent header accepts all", "", "text", "html", 1},
		{"case does not matter", "Text/HTML; Q=0.4", "text", "html", 0.4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quality(tt.accept, tt.typ, tt.sub); got != tt.want {
				t.Errorf("quality(%q, %s/%s): got %v, want %v", tt.accept, tt.typ, tt.sub, got, tt.want)
			}
		})
	}
}
