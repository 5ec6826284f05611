package edge

import (
	"context"
	"crypto/rand"
)

// requestIDKey is the metadata key (and, canonicalised, the HTTP header) that
// carries the request id to the backends and back to the caller.
const requestIDKey = "x-request-id"

// maxRequestIDLen bounds a caller-supplied request id: it is logged and
// forwarded, so it must stay short and printable.
const maxRequestIDLen = 128

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

// requestID keeps the caller's id when it is usable and generates one
// otherwise. A usable id is 1–128 characters of printable ASCII without
// spaces, so it cannot break a log line or a metadata value.
func requestID(fromCaller string) string {
	if validRequestID(fromCaller) {
		return fromCaller
	}
	// 128 random bits in base32: unguessable enough to never collide.
	return rand.Text()
}

func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}
