package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
)

// gateREST applies the auth gate (authgate.go) to REST requests: a source
// with no failed authentication left gets 429 with Retry-After, in
// grpc-gateway's error shape, and nothing is forwarded.
func (s *Server) gateREST(rest *runtime.ServeMux, next http.Handler) http.Handler {
	if s.gate == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		settle, retryAfter := s.gate.admit(r.RemoteAddr, r.Header.Get("Authorization"))
		if settle == nil {
			w.Header().Set("Retry-After", strconv.FormatInt(retryAfter, 10))
			_, out := runtime.MarshalerForRequest(rest, r)
			runtime.HTTPError(r.Context(), rest, out, w, r, refusal(retryAfter))
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			switch {
			case rec.status == http.StatusUnauthorized: // only Unauthenticated maps to 401
				settle(unauthenticated)
			case rec.status/100 == 2: // only a backend's OK is 2xx
				settle(authenticated)
			default:
				settle(neither)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// bodyDeadline bounds the time to receive a request body to d: a client
// trickling a body to hold a connection (and a handler) is cut off when it
// runs out. Reading then fails with "request body: not received within d",
// which the caller gets as a 400, and the connection is closed. Once the
// body has been read, the deadline is lifted, so that a slow backend does
// not time out the request.
func bodyDeadline(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if err := rc.SetReadDeadline(time.Now().Add(d)); err == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, limit: d}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts its read deadline when the body ends and names the
// deadline when it passes.
type deadlineBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	limit time.Duration
	once  sync.Once
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(func() { _ = b.rc.SetReadDeadline(time.Time{}) })
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("request body: not received within %s", b.limit)
		}
	}
	return n, err
}

// connRefused logs connections refused for their source's connection
// limit: once when a source starts being refused, then at most once a
// minute while it goes on, so that a flood of connections is not a flood
// of log lines.
func (s *Server) connRefused() func(source string) {
	var mu sync.Mutex
	last := make(map[string]time.Time)
	return func(source string) {
		now := time.Now()
		mu.Lock()
		if now.Sub(last[source]) < time.Minute {
			mu.Unlock()
			return
		}
		if len(last) > 10000 { // forget quiet sources
			for k, t := range last {
				if now.Sub(t) >= time.Minute {
					delete(last, k)
				}
			}
		}
		last[source] = now
		mu.Unlock()
		s.log.LogAttrs(context.Background(), slog.LevelWarn, "connections refused: too many open from one source",
			slog.String("source", source), slog.Int("max_conns_per_source", s.cfg.MaxConnsPerSource))
	}
}
