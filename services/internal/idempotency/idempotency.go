// Package idempotency makes the services' writes safe to retry (issue 15).
//
// A client cannot tell a write that committed but whose answer was lost
// from one that never reached the store: both look like Unavailable. So a
// client names each logical write with an idempotency key (gRPC metadata
// "idempotency-key", REST header Idempotency-Key; reqmeta.IdempotencyKey)
// and sends the same key with every retry of it. The service remembers
// what the write answered under that key, in the same kv.Store.Apply as
// the write itself, and answers the key sent again with that first
// answer, changing nothing and recording no second audit event.
//
// The pieces:
//
//   - Scope: a key counts for one caller (the principal's resource name)
//     and one kind of write, so one caller's key never answers
//     another's, nor a create a delete.
//   - Records.Begin: before the write, read what the key holds. Nothing
//     (or a record older than TTL): a Claim, for the write to carry. A
//     record of the same request (compared by a fingerprint, a MAC of the
//     request: MAC): a Replay of the first answer. A record of another
//     request: an invalid-argument error naming the field
//     "idempotency-key" and the rule.
//   - WithClaim, Attach, Claim.Settle: the claim rides in the write's
//     context down to the one place a service applies its writes, which
//     adds the claim's condition (the key is still free) and its record
//     to that Apply. The record commits with the write or not at all: no
//     crash can leave one without the other. A duplicate that lost the
//     race to the same key gets ErrClaimed, and answers from the winner's
//     record (Begin again).
//   - Handle: the whole of it around a gRPC handler whose answer is only
//     known once the handler has returned (the resolver's writes); see
//     there for how its record gets the answer.
//
// Records are kept for TTL (24 hours) after their write, then read as
// absent; expired ones are swept after later keyed writes (sweep.go).
// Only writes that commit are remembered: a refused request (invalid,
// denied, a conflict) stores nothing, and the same key sent again is
// decided afresh.
//
// A record never holds a secret value, a bearer token or a start ticket:
// its answer is what the write returned (secret metadata, a resource), and
// a write whose answer holds a credential is remembered without it
// (Claim.Withhold). Its fingerprint is a MAC of the request under a key the
// caller chooses: the secretstore's comes from its keyring, so a
// fingerprint of a request carrying a value is no oracle for that value to
// someone holding only the store.
package idempotency

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/ozsecrets/oz/lib/reqmeta"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// Field is how errors name the key: the metadata key, and the REST header
// Idempotency-Key.
const Field = reqmeta.IdempotencyKey

// TTL is how long a key is remembered after its write committed. A retry
// later than that is a new request.
const TTL = 24 * time.Hour

// InProgressFor is how long a record still waiting for its answer (Handle)
// is taken for a request in progress: the same key sent again then gets
// Unavailable, to retry. Older, the answer was lost with the process that
// wrote it.
const InProgressFor = time.Minute

// Keys of the records, in the store of the service that made them.
//
//	idempotency/{scope id}                             the record (JSON)
//	idempotency_expiry/{16 hex unix nanos}/{scope id}  marker: when the record was written, for the sweep
//
// {scope id} is the hex SHA-256 of the Scope: no key, principal or method
// in clear, and a fixed length.
const (
	Prefix       = "idempotency/"
	PrefixExpiry = "idempotency_expiry/"
)

// FromContext returns the idempotency key the request of ctx carries (gRPC
// metadata reqmeta.IdempotencyKey), "" when there is none. It does not
// check the key (Begin does); it refuses a key sent more than once.
func FromContext(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(reqmeta.IdempotencyKey)
	switch {
	case len(v) == 0:
		return "", nil
	case len(v) > 1:
		return "", errs.Field(Field, "must be sent once (got %d values)", len(v))
	}
	if v[0] == "" {
		return "", errs.Field(Field, "%s", reqmeta.IdempotencyKeyRule)
	}
	return v[0], nil
}

// CheckKey returns an errs.Field error naming Field when key is not a
// valid idempotency key. The key is never echoed: it is caller input.
func CheckKey(key string) error {
	if !reqmeta.ValidIdempotencyKey(key) {
		return errs.Field(Field, "%s", reqmeta.IdempotencyKeyRule)
	}
	return nil
}

// Scope is what a key counts for: one caller and one kind of write.
type Scope struct {
	Principal string // the caller's resource name: "users/alice"
	Method    string // the kind of write: "secret.create", "oz.scope.v1.CreateAgentRequest"
	Key       string // the client's idempotency key
}

// id is the scope's part of the record keys.
func (s Scope) id() string {
	h := sha256.New()
	for _, part := range []string{s.Principal, s.Method, s.Key} {
		fmt.Fprintf(h, "%d:%s\x00", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func recordKey(id string) string { return Prefix + id }

func expiryKey(t time.Time, id string) string {
	return fmt.Sprintf("%s%016x/%s", PrefixExpiry, uint64(t.UnixNano()), id)
}

// MAC makes and checks the fingerprints of requests.
type MAC interface {
	// Sum returns the MAC of data and the id of the key that made it.
	Sum(data []byte) (keyID string, sum []byte, err error)
	// Verify reports whether sum is the MAC of data under the key keyID.
	// It returns an error when it cannot tell (the key is gone).
	Verify(keyID string, data, sum []byte) (bool, error)
}

// Plain is the MAC without a key, SHA-256, for requests that carry no
// secret value (the resolver's: names, ids, lists of names). A request that
// may carry a value must use a keyed MAC.
var Plain MAC = plain{}

type plain struct{}

func (plain) Sum(data []byte) (string, []byte, error) {
	s := sha256.Sum256(data)
	return "", s[:], nil
}

func (plain) Verify(keyID string, data, sum []byte) (bool, error) {
	if keyID != "" {
		return false, fmt.Errorf("idempotency: a fingerprint made with key %q, checked without a key", keyID)
	}
	s := sha256.Sum256(data)
	return hmac.Equal(s[:], sum), nil
}

// Request is a request's canonical form for its fingerprint: each part
// with its length, so that no two different requests give the same bytes.
func Request(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = fmt.Appendf(b, "%d:", len(p))
		b = append(b, p...)
	}
	return b
}
