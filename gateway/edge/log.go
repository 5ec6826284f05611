package edge

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Request logs are one line per request: what was called, how it ended, how
// long it took, and the request id that ties it to the backends' logs. Never
// a header value (tokens), a query string (page tokens) or a body (secret
// values): only the fields listed here are logged.

// logHTTP assigns the request id and logs each REST/HTTP request.
func (s *Server) logHTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := requestID(r.Header.Get(requestIDKey))
		w.Header().Set(requestIDKey, id)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r.WithContext(withRequestID(r.Context(), id)))
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("request_id", id),
			slog.String("remote", r.RemoteAddr),
		)
	})
}

// statusRecorder remembers the status code and size of a response.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Flush keeps streaming responses streaming through the recorder.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// grpcRequestID returns ctx carrying the call's request id (the caller's, or
// a new one), and sends the id back to the caller in the response headers.
func grpcRequestID(ctx context.Context, setHeader func(metadata.MD) error) (context.Context, string) {
	md, _ := metadata.FromIncomingContext(ctx)
	var fromCaller string
	if v := md.Get(requestIDKey); len(v) > 0 {
		fromCaller = v[0]
	}
	id := requestID(fromCaller)
	_ = setHeader(metadata.Pairs(requestIDKey, id)) // fails only once headers are sent
	return withRequestID(ctx, id), id
}

// streamInterceptor covers proxied calls (the unknown service handler is a
// stream handler) and the gateway's own streaming services.
func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	ctx, id := grpcRequestID(ss.Context(), ss.SetHeader)
	err := handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	s.logGRPC(ctx, info.FullMethod, id, start, err)
	return err
}

// unaryInterceptor covers the gateway's own unary methods (health checks).
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	ctx, id := grpcRequestID(ctx, func(md metadata.MD) error { return grpc.SetHeader(ctx, md) })
	resp, err := handler(ctx, req)
	s.logGRPC(ctx, info.FullMethod, id, start, err)
	return resp, err
}

// logGRPC logs a finished call with its code, not its status message: the
// message comes from a backend and is the caller's business.
func (s *Server) logGRPC(ctx context.Context, method, id string, start time.Time, err error) {
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("code", status.Code(err).String()),
		slog.Duration("duration", time.Since(start)),
		slog.String("request_id", id),
	}
	if b := backendFor(method); b != "" && !isInternal(method) {
		attrs = append(attrs, slog.String("backend", b))
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("remote", p.Addr.String()))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "grpc request", attrs...)
}

// ctxStream replaces a ServerStream's context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }
