package edge

import (
	"context"

	"github.com/ozsecrets/oz/lib/reqmeta"
)

// requestIDKey is the metadata key (and, canonicalised, the HTTP header) that
// carries the request id to the backends and back to the caller.
const requestIDKey = reqmeta.RequestID

type requestIDCtxKey struct{}

// withRequestID returns ctx carrying id.
func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDCtxKey{}, id)
}

// requestIDFrom returns the request id stored by withRequestID, or "".
func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDCtxKey{}).(string)
	return id
}

// requestID keeps the caller's id when it is valid and generates one
// otherwise, by the rule the services apply too (reqmeta.ValidRequestID:
// 1–128 of [A-Za-z0-9._:-], nothing of a token's shape), so that the id
// the caller gets back is the one in the services' logs and audit events.
func requestID(fromCaller string) string { return reqmeta.RequestIDOr(fromCaller) }
