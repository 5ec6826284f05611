// Package reqmeta is the request metadata the gateway passes on to the
// services with every request it relays, and the one rule both sides
// apply to a request id. The gateway sets these keys, replacing whatever a
// caller sent under them; the services believe x-oz-peer (and a "rest"
// x-oz-client) only from the gateway's certificate (services/internal/auth).
package reqmeta

import (
	"crypto/rand"
	"regexp"
)

// Metadata keys.
const (
	// RequestID is the request's id: the caller's when valid
	// (ValidRequestID), else one the gateway or the service generated.
	RequestID = "x-request-id"
	// Client is the client the caller says it is ("cli", "web"); the
	// gateway says "rest" for the requests it translated from REST.
	Client = "x-oz-client"
	// Peer is the address the gateway saw the request come from (the TCP
	// peer's host, "203.0.113.7"): the source of a relayed request.
	Peer = "x-oz-peer"
)

// MaxRequestIDLength bounds a request id: it is logged, forwarded and
// recorded in audit events.
const MaxRequestIDLength = 128

// requestIDRE is what a request id may hold: letters, digits and
// "-_.:" — enough for UUIDs, ULIDs and "job-42:step.3"; nothing that can
// break a log line, a header or a query.
var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// credentialRE matches the shape of a bearer token or a start ticket
// ("oz_" or "ozt_", a 16-hex-digit id, "_").
var credentialRE = regexp.MustCompile(`oz[a-z]*_[0-9a-f]{16}_`)

// ValidRequestID reports whether id may be kept as a request id: 1 to
// MaxRequestIDLength characters of [A-Za-z0-9._:-], and nothing of a
// token's shape (a token pasted there would be logged and recorded).
func ValidRequestID(id string) bool {
	return requestIDRE.MatchString(id) && !credentialRE.MatchString(id)
}

// NewRequestID returns a fresh request id: 128 random bits in base32,
// which never collide and always pass ValidRequestID.
func NewRequestID() string { return rand.Text() }

// RequestIDOr returns fromCaller when it is a valid request id, else a
// new one: an invalid id is replaced whole, never kept in part.
func RequestIDOr(fromCaller string) string {
	if ValidRequestID(fromCaller) {
		return fromCaller
	}
	return NewRequestID()
}
