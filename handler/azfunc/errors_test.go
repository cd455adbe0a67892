package azfunc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// describedErr stands for an adapter's error: detail for the log in Error, words for people in
// Describe.
type describedErr struct {
	words     string
	retriable bool
}

func (e describedErr) Error() string {
	return "graph answered 403 Authorization_RequestDenied: raw Graph text eyJhbGciOi"
}
func (e describedErr) Describe() string { return e.words }
func (e describedErr) Retriable() bool  { return e.retriable }

// TestDescribedErrorsNameTheirCause: a failed invocation answers with the words of the error that
// describes itself, keeping the retriable/permanent status semantics, and never its Error() text.
func TestDescribedErrorsNameTheirCause(t *testing.T) {
	const forbidden = "Graph answered 403 to list the Conditional Access policies: the app lacks Policy.Read.All"
	const storage = "storage is unreachable (the writer lease could not be taken)"
	tests := []struct {
		name       string
		http       bool
		err        error
		wantStatus int // to the host
		wantRes    int // to the HTTP caller
		words      string
	}{
		{"a permanent cause of an HTTP run is a 500 naming it", true, fmt.Errorf("list conditional access policies: %w", describedErr{words: forbidden}),
			200, 500, forbidden},
		{"a retriable cause of an HTTP run is a 503 naming it", true, fmt.Errorf("writer lock: %w", describedErr{words: storage, retriable: true}),
			200, 503, storage},
		{"a retriable cause of a trigger fails the invocation for a retry", false, describedErr{words: storage, retriable: true}, 500, 0, storage},
		{"a permanent cause of a trigger is acknowledged", false, describedErr{words: forbidden}, 200, 0, forbidden},
		{"a public error keeps its own message", true, fmt.Errorf("x: %w", BadRequest("use GET or POST")), 200, 400, "use GET or POST"},
		{"an error that says nothing gets the generic sentence", true, errors.New("secret eyJhbGciOi"), 200, 500, "internal error; the function's log has the details"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn := Function{Name: "F", Handle: func(context.Context, *Invocation) (*Result, error) { return nil, tt.err }}
			if tt.http {
				fn.HTTPOutput = "res"
			}
			s := NewServer(zap.NewNop(), 0, fn)
			a := post(t, s, http.MethodPost, "/F", strings.NewReader(`{"Data":{}}`))
			if a.Status != tt.wantStatus {
				t.Fatalf("host status %d, want %d", a.Status, tt.wantStatus)
			}
			if strings.Contains(string(a.raw), "eyJhbGciOi") || strings.Contains(string(a.raw), "raw Graph text") {
				t.Errorf("answer repeats the error's own text: %s", a.raw)
			}
			if !strings.Contains(strings.Join(a.Logs, "\n"), "failed: "+tt.words) {
				t.Errorf("logs %q: want the words %q", a.Logs, tt.words)
			}
			if !tt.http {
				return
			}
			var res HTTPResponse
			if err := json.Unmarshal(a.Outputs["res"], &res); err != nil {
				t.Fatal(err)
			}
			var body map[string]string
			if err := json.Unmarshal([]byte(res.Body), &body); err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.wantRes || body["error"] != tt.words {
				t.Errorf("answer %d %q, want %d %q", res.StatusCode, body["error"], tt.wantRes, tt.words)
			}
		})
	}
}
