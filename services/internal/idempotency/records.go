package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// States of a record.
const (
	stateDone     = "done"     // Outcome is the first answer
	statePending  = "pending"  // committed; the answer is recorded right after (Handle)
	stateWithheld = "withheld" // committed; the answer held a credential and is not kept
)

// record is the stored form of what a key answered. It never holds a
// secret value or a credential (see the package documentation).
type record struct {
	Time        time.Time `json:"time"` // when the write committed (its claim was made)
	MACKey      string    `json:"mac_key,omitempty"`
	Fingerprint []byte    `json:"fingerprint"`
	State       string    `json:"state"`
	Outcome     []byte    `json:"outcome,omitempty"`
}

func (r *record) encode() []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("idempotency: encode record: %v", err)) // times, strings and bytes only
	}
	return b
}

// Records are a service's idempotency records in its kv.Store. They are
// safe for concurrent use.
type Records struct {
	kv    kv.Store
	sweep sweeper
}

// NewRecords returns the records kept in s, which holds the service's
// other records too (so that a write and its record are one Apply).
func NewRecords(s kv.Store) *Records { return &Records{kv: s} }

// Replay is the first answer of a write sent again with its key.
type Replay struct {
	// Outcome is what the first write's claim recorded (SetOutcome; empty
	// for a write that answers nothing, such as a delete).
	Outcome []byte
}

// ErrClaimed is returned by Settle (and so by the write) when a write with
// the same key committed first: nothing was written, and Begin now finds
// the winner's answer. It is Unavailable, so that a caller that lets it
// through tells the client to retry, which then gets that answer.
var ErrClaimed = &errs.Error{Kind: errs.KindUnavailable,
	Message: "a request with the same idempotency-key committed meanwhile; retry to get its answer"}

// Begin looks up what scope's key holds, at now, for a write whose
// canonical request (Request) is request, fingerprinted with mac. It
// returns:
//
//   - a Claim, when no write of scope committed within TTL: the write
//     carries it (WithClaim) and commits its record;
//   - a Replay, when one did with the same request: answer with it and
//     write nothing;
//   - an errs.Field error naming Field when scope.Key is malformed, or
//     when the key was used for another request (the fingerprints
//     differ); an Unavailable error while the first request is still
//     being answered (Handle); a FailedPrecondition error when the first
//     answer is not kept (a credential, Withhold) or was lost (Handle).
//
// Other errors are the store's.
func (r *Records) Begin(ctx context.Context, now time.Time, mac MAC, scope Scope, request []byte) (*Claim, *Replay, error) {
	if err := CheckKey(scope.Key); err != nil {
		return nil, nil, err
	}
	id := scope.id()
	raw, err := r.kv.Get(ctx, recordKey(id))
	var rec *record
	switch {
	case errors.Is(err, errs.NotFound):
		raw = nil
	case err != nil:
		return nil, nil, fmt.Errorf("read idempotency record: %w", err)
	default:
		rec = new(record)
		if err := json.Unmarshal(raw, rec); err != nil {
			return nil, nil, fmt.Errorf("decode idempotency record: %w", err)
		}
	}
	if rec == nil || now.Sub(rec.Time) >= TTL {
		keyID, sum, err := mac.Sum(request)
		if err != nil {
			return nil, nil, fmt.Errorf("fingerprint request: %w", err)
		}
		c := &Claim{records: r, id: id, prev: raw,
			rec: record{Time: now, MACKey: keyID, Fingerprint: sum, State: statePending}}
		if rec != nil {
			c.prevTime = rec.Time
		}
		return c, nil, nil
	}
	same, err := mac.Verify(rec.MACKey, request, rec.Fingerprint)
	if err != nil {
		return nil, nil, fmt.Errorf("check the request against the idempotency record: %w", err)
	}
	if !same {
		return nil, nil, errs.Field(Field, "was sent with a different request within the last %s; "+
			"a key names one request and its retries: send a new key for a new request", ttlText)
	}
	switch rec.State {
	case stateDone:
		return nil, &Replay{Outcome: rec.Outcome}, nil
	case stateWithheld:
		return nil, nil, errs.E(errs.KindFailedPrecondition, "%s: the request sent with this key committed, and what it returned "+
			"(a bearer token or a start ticket) is shown once and not kept: if that answer was lost, send a new request with a new key "+
			"(and revoke the token the first one made; a start ticket expires unused)", Field)
	case statePending:
		if now.Sub(rec.Time) < InProgressFor {
			return nil, nil, errs.E(errs.KindUnavailable, "the request sent with this %s is still in progress; retry in a moment", Field)
		}
		return nil, nil, errs.E(errs.KindFailedPrecondition, "%s: the request sent with this key committed, but its answer was not recorded "+
			"(the service stopped in between): read the resource to see the result", Field)
	}
	return nil, nil, fmt.Errorf("idempotency record in unknown state %q", rec.State)
}

var ttlText = fmt.Sprintf("%dh", int(TTL.Hours()))

// Claim is a write's hold on its key: the record its write commits. The
// write may be applied more than once (a condition failed, fn called
// again); the claim rides along until an Apply commits with it. Methods
// are safe for concurrent use.
type Claim struct {
	records  *Records
	id       string
	prev     []byte    // an expired record the claim replaces, nil: none
	prevTime time.Time // its time

	mu        sync.Mutex
	rec       record
	pending   []byte // the record as last attached to an Apply
	committed []byte // the record as committed; nil until then
	lost      bool   // a write with the same key committed first
}

// SetOutcome sets the answer the record holds: what the write returns,
// encoded by the caller, never a value or a credential. Set it before the
// Apply that commits the write (inside a Store's fn, which may run more
// than once: the last call's outcome is the one stored).
func (c *Claim) SetOutcome(outcome []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rec.State, c.rec.Outcome = stateDone, append([]byte(nil), outcome...)
}

// Withhold records that the write's answer is not kept: it holds a
// credential shown once. The key sent again is refused (Begin).
func (c *Claim) Withhold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rec.State, c.rec.Outcome = stateWithheld, nil
}

// Committed reports whether the claim's record has committed (with its
// write).
func (c *Claim) Committed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.committed != nil
}

// Lost reports whether a write with the same key committed first, so that
// this one wrote nothing (Settle returned ErrClaimed): the caller answers
// from Begin, whatever error its write returned.
func (c *Claim) Lost() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

type claimKey struct{}

// WithClaim returns ctx carrying c, for the Apply of the write to commit
// it (Attach). A nil c changes nothing.
func WithClaim(ctx context.Context, c *Claim) context.Context {
	if c == nil {
		return ctx
	}
	return context.WithValue(ctx, claimKey{}, c)
}

// Attach adds the claim ctx carries (WithClaim) to an Apply about to be
// made: its condition first (the key is as Begin saw it), then conds;
// writes, then its record. It adds nothing when ctx carries no claim, when
// the claim already committed (a write made of several Applies commits it
// with the first), or to an Apply without writes (an audit event alone: a
// refused request, which is not remembered). The caller applies what
// Attach returns, then calls Settle with the result.
//
// It is called in one place per service: where that service applies
// every write (the secretstore's kvstore, the resolver's Store.Apply).
func Attach(ctx context.Context, conds []kv.Cond, writes []kv.Write) ([]kv.Cond, []kv.Write, *Claim) {
	c, _ := ctx.Value(claimKey{}).(*Claim)
	if c == nil || len(writes) == 0 {
		return conds, writes, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.committed != nil {
		return conds, writes, nil
	}
	key := recordKey(c.id)
	cond := kv.Absent(key)
	if c.prev != nil {
		cond = kv.Equal(key, c.prev)
	}
	value := c.rec.encode()
	ws := make([]kv.Write, 0, len(writes)+3)
	ws = append(append(ws, writes...), kv.Put(key, value), kv.Put(expiryKey(c.rec.Time, c.id), marker))
	if c.prev != nil {
		ws = append(ws, kv.Delete(expiryKey(c.prevTime, c.id)))
	}
	c.pending = value
	return append([]kv.Cond{cond}, conds...), ws, c
}

// marker is the value of an expiry entry.
var marker = []byte("{}")

// Settle takes the result of an Apply that Attach added c to, and returns
// what the caller of that Apply is owed: nil when it committed (and the
// claim with it); ErrClaimed when the claim's condition failed (a write
// with the same key committed first, Lost); a *kv.ConflictError about the
// caller's own conditions, indexed as the caller gave them; any other
// error as is. A nil c returns err.
func (c *Claim) Settle(ctx context.Context, err error) error {
	if c == nil {
		return err
	}
	if err == nil {
		c.mu.Lock()
		c.committed = c.pending
		c.mu.Unlock()
		c.records.sweep.after(ctx, c.records.kv, c.rec.Time)
		return nil
	}
	ce, ok := errors.AsType[*kv.ConflictError](err)
	switch {
	case !ok:
		return err
	case ce.Index == 0:
		c.mu.Lock()
		c.lost = true
		c.mu.Unlock()
		return ErrClaimed
	default:
		return &kv.ConflictError{Index: ce.Index - 1, Cond: ce.Cond}
	}
}
