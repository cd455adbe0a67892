package azfunc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caguard/caguard/handler/logctx"
)

// MaxBodyBytes bounds an invocation's request body. The largest legal Event Hub batch is
// maxEventBatchSize (100 in host.json) events of at most 1 MB each; the host's double encoding of
// JSON event bodies roughly doubles that, so 256 MiB admits it with room to spare.
const MaxBodyBytes = 256 << 20

// invocationIDHeader carries the host's invocation id.
const invocationIDHeader = "X-Azure-Functions-InvocationId"

// Invocation is one call from the host to a function.
type Invocation struct {
	ID       string // the host's invocation id, carried into every log line
	Function string
	Data     map[string]Value
	Metadata map[string]Value
	Log      *zap.Logger // scoped to this invocation

	mu   sync.Mutex
	logs []string
}

// Binding returns the named Data value; binding names are matched exactly, then ignoring case.
func (inv *Invocation) Binding(name string) (Value, bool) {
	if v, ok := inv.Data[name]; ok {
		return v, true
	}
	for k, v := range inv.Data {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return Value{}, false
}

// Logf records a line for the host's invocation log (the answer's Logs, shown as Information traces
// of this invocation) and writes it to the process log too.
func (inv *Invocation) Logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	inv.mu.Lock()
	inv.logs = append(inv.logs, line)
	inv.mu.Unlock()
	inv.Log.Info(line)
}

// Result is what a function returns to the host. Outputs keys are output binding names.
type Result struct {
	Outputs     map[string]any
	ReturnValue any
}

// Function is one function the host can invoke. HTTPOutput names the http output binding of an
// HTTP-triggered function: its errors become HTTP answers to the caller rather than failed invocations.
type Function struct {
	Name       string
	HTTPOutput string
	Handle     func(ctx context.Context, inv *Invocation) (*Result, error)
	// ScanString, when set, is offered every string value of Data before it is decoded, to read
	// it in place (see StringScanner). A value it answers for is decoded only if Handle asks for
	// its content; Handle finds the verdict in Value.Verdict.
	ScanString func(ctx context.Context, binding string, b []byte) (n int, verdict any)
}

// Server routes the host's requests to functions. It is an http.Handler.
type Server struct {
	Log       *zap.Logger
	Timeout   time.Duration // per invocation; zero means none beyond the request's own context
	MaxBody   int64         // request body limit; NewServer sets MaxBodyBytes
	functions map[string]Function
	// bodies holds request body buffers between invocations. A batch of events is read whole, and
	// allocating (and zeroing) a fresh buffer of its size for every invocation cost about as much
	// as answering a batch of noise. Only buffers up to maxPooledBody are kept.
	bodies sync.Pool
}

const maxPooledBody = 8 << 20

// NewServer returns a server for the given functions.
func NewServer(log *zap.Logger, timeout time.Duration, fns ...Function) *Server {
	s := &Server{Log: log, Timeout: timeout, MaxBody: MaxBodyBytes, functions: map[string]Function{}}
	for _, f := range fns {
		s.functions[f.Name] = f
	}
	return s
}

// response is the envelope the host reads back: {Outputs, Logs, ReturnValue}.
type response struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
	Error       string         `json:"error,omitempty"` // read by people and tests; the host ignores it
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" {
		// The host polls GET / until it answers, then pings it for health: answer at once.
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	fn, ok := s.functions[name]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no function at " + pathForError(r.URL.Path)})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "functions are invoked with POST"})
		return
	}
	s.invoke(w, r, fn)
}

func (s *Server) invoke(w http.ResponseWriter, r *http.Request, fn Function) {
	start := time.Now()
	inv := &Invocation{ID: r.Header.Get(invocationIDHeader), Function: fn.Name}
	inv.Log = s.Log.With(zap.String("invocationId", inv.ID), zap.String("function", fn.Name))

	ctx := logctx.With(r.Context(), inv.Log)
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}

	var (
		res *Result
		err error
	)
	body := http.MaxBytesReader(w, r.Body, s.MaxBody)
	var scan StringScanner
	if fn.ScanString != nil {
		scan = func(binding string, b []byte) (n int, verdict any) {
			// A scanner that panics declines: the value is then decoded as usual.
			defer func() {
				if p := recover(); p != nil {
					inv.Log.Error("string scanner panicked", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
					n, verdict = 0, nil
				}
			}()
			return fn.ScanString(ctx, binding, b)
		}
	}
	buf, _ := s.bodies.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	// The invocation's values alias buf: it goes back to the pool only once the answer is written
	// and the function has returned.
	defer func() {
		if buf.Cap() <= maxPooledBody {
			buf.Reset()
			s.bodies.Put(buf)
		}
	}()
	inv.Data, inv.Metadata, err = decodeEnvelopeInto(buf, body, r.ContentLength, scan)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = Permanent(fmt.Sprintf("the invocation body exceeds %d bytes", s.MaxBody), err)
		} else {
			err = Permanent("the invocation envelope is not valid JSON of the shape {\"Data\":…,\"Metadata\":…}", err)
		}
	} else {
		res, err = s.call(ctx, inv, fn)
	}
	status, out := s.answer(inv, fn, res, err)
	inv.Log.Info("invocation done",
		zap.Int("status", status), zap.Duration("elapsed", time.Since(start)), zap.Bool("failed", err != nil))
	writeJSON(w, status, out)
}

// call runs the function, turning a panic into an error so that one bad input cannot take down the
// process and every other invocation in flight.
func (s *Server) call(ctx context.Context, inv *Invocation, fn Function) (res *Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			inv.Log.Error("function panicked", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			res, err = nil, errors.New("internal error")
		}
	}()
	return fn.Handle(ctx, inv)
}

// answer maps a function's outcome to the host's status and envelope; this is the one place where
// errors become responses.
//   - HTTP-triggered functions always answer 2xx to the host, with the error in the http output, so the
//     caller gets a meaningful status; the host has no retry policy for HTTP triggers anyway.
//   - Other functions answer non-2xx only for errors a retry can fix (Graph throttling or outage), so
//     the host retries under the function's retry policy; other errors are logged and acknowledged,
//     because retrying the same bytes cannot help.
func (s *Server) answer(inv *Invocation, fn Function, res *Result, err error) (int, response) {
	out := response{Outputs: map[string]any{}}
	if res != nil {
		if res.Outputs != nil {
			out.Outputs = res.Outputs
		}
		out.ReturnValue = res.ReturnValue
	}
	status := http.StatusOK
	if err != nil {
		retry := IsRetriable(err)
		public := PublicMessage(err)
		fields := []zap.Field{zap.Error(err), zap.Bool("retriable", retry)}
		if retry {
			inv.Log.Warn("invocation failed, a retry may help", fields...)
		} else {
			inv.Log.Error("invocation failed", fields...)
		}
		inv.Logf("failed: %s (retriable: %t)", public, retry)
		switch {
		case fn.HTTPOutput != "":
			code := http.StatusInternalServerError
			if retry {
				code = http.StatusServiceUnavailable
			} else if sc := statusOf(err); sc != 0 {
				code = sc
			}
			out.Outputs[fn.HTTPOutput] = JSONResponse(code, map[string]string{"error": public, "invocationId": inv.ID})
		case retry:
			status = http.StatusInternalServerError
			out.Error = public
		default:
			out.Error = public
		}
	}
	inv.mu.Lock()
	out.Logs = append([]string{}, inv.logs...)
	inv.mu.Unlock()
	return status, out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"response could not be encoded"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// pathForError bounds what of a caller's path is echoed.
func pathForError(p string) string {
	if len(p) > 64 {
		p = p[:64] + "…"
	}
	b, _ := json.Marshal(p)
	return string(b)
}
