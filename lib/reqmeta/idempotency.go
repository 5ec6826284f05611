package reqmeta

// IdempotencyKey is the metadata key (and, canonicalised, the REST header
// Idempotency-Key) of a write's idempotency key: a name the client gives
// one logical write, sent again with every retry of it, so that a retry of
// a write that committed gets the first answer instead of making a second
// change. The gateway passes it on; the services remember what a key
// answered for 24 hours (services/internal/idempotency).
const IdempotencyKey = "idempotency-key"

// MaxIdempotencyKeyLength bounds an idempotency key.
const MaxIdempotencyKeyLength = MaxRequestIDLength

// ValidIdempotencyKey reports whether key may be used as an idempotency
// key: the rule of request ids (ValidRequestID: 1 to 128 characters of
// [A-Za-z0-9._:-], nothing of a token's shape), which UUIDs and the keys
// of NewIdempotencyKey meet.
func ValidIdempotencyKey(key string) bool { return ValidRequestID(key) }

// IdempotencyKeyRule says what ValidIdempotencyKey accepts, for error
// messages.
const IdempotencyKeyRule = "must be 1 to 128 characters of A-Z a-z 0-9 . _ : - (a UUID, for example), and must not look like a bearer token"

// NewIdempotencyKey returns a fresh idempotency key: 128 random bits, as a
// new request id.
func NewIdempotencyKey() string { return NewRequestID() }
