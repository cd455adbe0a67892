package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	jsonser "github.com/microsoft/kiota-serialization-json-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/logctx"
)

// JSON batching (https://learn.microsoft.com/graph/json-batching): one POST /$batch carries up to
// 20 requests, each with an id, a method, a url relative to the version root ("/users", not
// "https://graph.microsoft.com/v1.0/users"), and headers and a body when it has one. Graph answers
// 200 with {"responses":[{"id","status","headers","body"}]} in any order; "a 200 status code on the
// batch response does not indicate that the individual requests inside the batch succeeded", and
// "requests in a batch are evaluated individually against throttling limits": a sub-request can
// be 429 (or 503) inside a 200, with its own Retry-After among its headers.
//
// The batch runner carries reads: each is one request and then each page after it. Every round
// sends what is pending, the next page of every read and the retry of every throttled one, in as
// few batches as the limit of 20 allows, so that a read of N pages costs N round trips however many
// reads travel together.

// maxBatch is Graph's limit of requests in one JSON batch.
const maxBatch = 20

// batchRead is one read carried by batches.
type batchRead struct {
	op, perm string
	method   string
	// url is relative to the version root, query included.
	url  string
	body []byte // JSON, for a POST
	// page consumes one successful answer and returns its @odata.nextLink, nil when it is the last.
	page func(body []byte) (*string, error)

	err      error
	done     bool
	attempts int       // attempts of the current request so far
	wake     time.Time // when a throttled request may be sent again
	lastErr  error     // the throttled answer, returned if no retry is left
	pg       pager
}

func (r *batchRead) fail(err error) {
	r.err, r.done = err, true
}

type batchRequest struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

type batchResponse struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

// relative is path and query as a batch's url wants them, $ left unescaped as Graph writes it.
func relative(path string, query url.Values) string {
	if len(query) == 0 {
		return path
	}
	return path + "?" + strings.ReplaceAll(query.Encode(), "%24", "$")
}

// runBatches carries reads until each is done or failed. It never returns an error itself: a
// failed batch fails the reads it carried, each with its own *Error.
func (c *Client) runBatches(ctx context.Context, cl *call, reads []*batchRead) {
	for {
		var pending []*batchRead
		for _, r := range reads {
			if !r.done {
				pending = append(pending, r)
			}
		}
		if len(pending) == 0 {
			return
		}
		// Throttled reads go with the next round; the round waits for the latest of them, unless
		// that wait would end past the call's budget or the context's deadline, in which case those
		// reads end with the throttled answer.
		var wake time.Time
		for _, r := range pending {
			if r.wake.After(wake) {
				wake = r.wake
			}
		}
		if now := c.now(); wake.After(now) {
			d, hasDeadline := ctx.Deadline()
			if wake.After(cl.deadline) || (hasDeadline && !wake.Before(d)) {
				kept := pending[:0]
				for _, r := range pending {
					if r.wake.After(now) {
						r.fail(r.lastErr)
						continue
					}
					kept = append(kept, r)
				}
				pending = kept
				if len(pending) == 0 {
					return
				}
			} else if !sleep(ctx, wake.Sub(now)) {
				err := classify(cl.op, "", ctx.Err(), nil)
				for _, r := range pending {
					r.fail(asOp(err, r.op))
				}
				return
			}
		}
		for start := 0; start < len(pending); start += maxBatch {
			c.sendBatch(ctx, cl, pending[start:min(start+maxBatch, len(pending))])
		}
	}
}

// sendBatch sends one batch of at most maxBatch reads and hands each its answer.
func (c *Client) sendBatch(ctx context.Context, cl *call, rs []*batchRead) {
	reqs := make([]batchRequest, len(rs))
	for i, r := range rs {
		reqs[i] = batchRequest{ID: strconv.Itoa(i + 1), Method: r.method, URL: r.url}
		if r.body != nil {
			reqs[i].Headers = map[string]string{"Content-Type": "application/json"}
			reqs[i].Body = r.body
		}
		r.wake, r.lastErr = time.Time{}, nil
		r.attempts++
	}
	bctx := ctx
	if readOnly(rs) {
		bctx = withReadOnly(ctx)
	}
	answers, err := c.postBatch(bctx, cl, reqs)
	if err != nil {
		for _, r := range rs {
			r.fail(asOp(err, r.op))
		}
		return
	}
	for i, r := range rs {
		a, ok := answers[reqs[i].ID]
		if !ok {
			r.fail(&Error{Op: r.op, Code: "MalformedResponse", Message: "the batch answer has no response for request " + reqs[i].ID, Transient: true})
			continue
		}
		c.answer(ctx, r, a)
	}
}

// readOnly reports a batch of GETs, which the retry transport may send again after a broken
// connection or a gateway timeout as it would a GET.
func readOnly(rs []*batchRead) bool {
	for _, r := range rs {
		if r.method != http.MethodGet {
			return false
		}
	}
	return true
}

// answer applies one sub-response to its read.
func (c *Client) answer(ctx context.Context, r *batchRead, a batchResponse) {
	switch {
	case a.Status >= 200 && a.Status < 300:
		body := bytes.TrimSpace(a.Body)
		if len(body) == 0 || body[0] != '{' {
			r.fail(&Error{Op: r.op, Status: a.Status, Code: "MalformedResponse", Message: "the answer is not a JSON object", Transient: true, Attempts: r.attempts})
			return
		}
		next, err := r.page(body)
		if err != nil {
			r.fail(err)
			return
		}
		r.pg.c = c
		link, ok, err := r.pg.next(next)
		if err != nil {
			r.fail(&Error{Op: r.op, Code: "InvalidPaging", Message: err.Error()})
			return
		}
		if !ok {
			r.done = true
			return
		}
		rel, err := c.relativeLink(link)
		if err != nil {
			r.fail(&Error{Op: r.op, Code: "InvalidPaging", Message: err.Error()})
			return
		}
		// The nextLink carries every query option of the first request.
		r.method, r.url, r.body, r.attempts = http.MethodGet, rel, nil, 0
	case retryAnswer(r.method != http.MethodPost, a.Status):
		e := subError(r.op, r.perm, a, r.attempts)
		if r.attempts > c.maxRetries {
			r.fail(e)
			return
		}
		delay, ok := parseRetryAfter(header(a.Headers, "Retry-After"), c.now())
		if !ok {
			delay = backoff(c.baseDelay, r.attempts)
		}
		r.wake, r.lastErr = c.now().Add(delay), e
		logctx.From(ctx, c.log).Info("graph batched request retried",
			zap.String("op", r.op), zap.String("method", r.method), zap.String("path", pathOf(r.url)),
			zap.Int("status", a.Status), zap.Int("attempt", r.attempts), zap.Duration("delay", delay))
	default:
		r.fail(subError(r.op, r.perm, a, r.attempts))
	}
}

// postBatch sends POST /$batch through the request adapter (authentication, compression, the retry
// transport for the batch as a whole, OData error mapping) and returns the answers by id.
func (c *Client) postBatch(ctx context.Context, cl *call, reqs []batchRequest) (map[string]batchResponse, error) {
	payload, err := json.Marshal(map[string]any{"requests": reqs})
	if err != nil {
		return nil, &Error{Op: cl.op, Code: "ClientError", Message: "batch: " + err.Error()}
	}
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + "/$batch"
	ri := abstractions.NewRequestInformation()
	ri.Method = abstractions.POST
	ri.SetUri(u)
	ri.Headers.TryAdd("Accept", "application/json")
	ri.SetStreamContentAndContentType(payload, "application/json")
	res, err := c.adapter.SendPrimitive(ctx, ri, "[]byte", rawErrorMapping)
	if err != nil {
		return nil, classify(cl.op, "", err, cl)
	}
	b, _ := res.([]byte)
	var out struct {
		Responses *[]batchResponse `json:"responses"`
	}
	if len(b) == 0 || json.Unmarshal(b, &out) != nil || out.Responses == nil {
		return nil, &Error{Op: cl.op, Code: "MalformedResponse", Message: "the batch answer has no responses collection", Transient: true}
	}
	byID := make(map[string]batchResponse, len(*out.Responses))
	for _, a := range *out.Responses {
		byID[a.ID] = a
	}
	return byID, nil
}

// relativeLink turns an absolute @odata.nextLink, already checked to be on the Graph host, into a
// url relative to the version root.
func (c *Client) relativeLink(link string) (string, error) {
	u, err := url.Parse(link)
	if err != nil {
		return "", fmt.Errorf("@odata.nextLink %q: %w", link, err)
	}
	root := strings.TrimRight(c.base.Path, "/")
	rest, ok := strings.CutPrefix(u.EscapedPath(), root+"/")
	if !ok {
		return "", fmt.Errorf("@odata.nextLink %q is not below %s", link, root)
	}
	if u.RawQuery != "" {
		rest += "?" + u.RawQuery
	}
	return "/" + rest, nil
}

// subError classifies a failed sub-response exactly as classify does the SDK's error for a request
// of its own: the OData error body read through the SDK's model, the status, request-id and
// Retry-After from its headers, the permission named on a 403.
func subError(op, perm string, a batchResponse, attempts int) error {
	headers := abstractions.NewResponseHeaders()
	h := http.Header{}
	for k, v := range a.Headers {
		headers.Add(k, v)
		h.Set(k, v)
	}
	var err error
	var oe *odataerrors.ODataError
	if node, perr := jsonser.NewJsonParseNode(a.Body); perr == nil && len(bytes.TrimSpace(a.Body)) > 0 {
		if v, perr := node.GetObjectValue(odataerrors.CreateODataErrorFromDiscriminatorValue); perr == nil {
			oe, _ = v.(*odataerrors.ODataError)
		}
	}
	if oe != nil && oe.GetErrorEscaped() != nil {
		oe.ResponseStatusCode = a.Status
		oe.ResponseHeaders = headers
		err = oe
	} else {
		ae := abstractions.NewApiError()
		ae.ResponseStatusCode = a.Status
		ae.ResponseHeaders = headers
		err = ae
	}
	cl := &call{op: op, perm: perm}
	cl.status, cl.header, cl.attempts = a.Status, h, attempts
	return classify(op, perm, err, cl)
}

// asOp is err with its operation renamed, for a failure shared by every read of a batch.
func asOp(err error, op string) error {
	ge, ok := err.(*Error)
	if !ok {
		return err
	}
	cp := *ge
	cp.Op = op
	return &cp
}

// header finds a sub-response header whatever its case: Graph writes them as the services do.
func header(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func pathOf(rel string) string {
	p, _, _ := strings.Cut(rel, "?")
	return p
}
