package graphfake

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// graphContentType is what Graph answers JSON with; the SDK keeps only the part before ';'.
const graphContentType = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "marshal: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", graphContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError answers an OData error {"error":{"code","message","innerError"}}.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	writeErrorBody(w, r, status, map[string]any{"code": code, "message": message})
}

func writeErrorBody(w http.ResponseWriter, r *http.Request, status int, errObj map[string]any) {
	reqID := newGUID()
	w.Header().Set("request-id", reqID)
	inner := map[string]any{
		"date":       time.Now().UTC().Format("2006-01-02T15:04:05"),
		"request-id": reqID,
	}
	if cr := r.Header.Get("client-request-id"); cr != "" {
		w.Header().Set("client-request-id", cr)
		inner["client-request-id"] = cr
	}
	errObj["innerError"] = inner
	writeJSON(w, status, map[string]any{"error": errObj})
}

// newGUID returns a random (version 4) GUID.
func newGUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
