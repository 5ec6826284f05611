package edge

import (
	"bytes"
	"io"
	"net/http"
)

// observeREST calls fn, when set, with each request and its body (at most
// max+1 bytes are read, so limitBody still refuses an oversized one), then
// hands the request on with the body restored. Tests only: see
// Config.ObserveREST.
func observeREST(fn func(*http.Request, []byte), max int64, next http.Handler) http.Handler {
	if fn == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
		if err != nil {
			http.Error(w, "read request body", http.StatusBadRequest)
			return
		}
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		fn(r, bytes.Clone(body))
		next.ServeHTTP(w, r)
	})
}
