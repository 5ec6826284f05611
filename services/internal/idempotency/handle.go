package idempotency

import (
	"context"
	"encoding/json"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// Answer says what the record of a write made through Handle keeps.
type Answer int

const (
	// KeepAnswer keeps the handler's response, for the key sent again.
	KeepAnswer Answer = iota
	// WithholdAnswer keeps nothing of it: the response holds a credential
	// (a bearer token, a start ticket) that is shown once. The key sent
	// again is refused with a FailedPrecondition error saying so, instead
	// of making a second one.
	WithholdAnswer
)

// completeTimeout bounds the Apply that records a handler's answer.
const completeTimeout = 5 * time.Second

// Handle runs write, the body of a gRPC handler of a write, under the
// idempotency key its request carries (FromContext), for the caller of ctx
// (auth.PrincipalFrom). Without a key or a caller it just runs write.
// With one: the same request sent before with the key gets the first
// response (or an error: see Records.Begin), and write does not run; else
// write runs with a claim in its context, which the service's Apply
// commits with the write's first Apply, and a duplicate that lost the race
// gets the winner's response.
//
// The handler's response is only known once write has returned, after
// its Apply: so the claim commits as "pending" (with the request's
// fingerprint), and the response is recorded in a second Apply right
// after. The same key sent between the two gets Unavailable (retry);
// should the process die between them, it gets a FailedPrecondition that
// says the request committed and its answer was lost. (The secretstore's
// writes, whose answer is known before their Apply, record it in the same
// Apply: Claim.SetOutcome.)
//
// A handler that fails after its claim committed (a write of several
// Applies, failing in a later one) gets its record removed, so that the
// key sent again runs it again: the resolver's writes of several Applies
// (deletes that revoke a principal's tokens in batches) resume where they
// stopped.
//
// now is the service's clock; req is the request, fingerprinted as its
// deterministic wire form with Plain: Handle is for requests that carry no
// secret value.
func Handle[Resp proto.Message](ctx context.Context, r *Records, now time.Time, req proto.Message, answer Answer,
	write func(context.Context) (Resp, error)) (Resp, error) {
	var zero Resp
	key, err := FromContext(ctx)
	if err != nil {
		return zero, err
	}
	p := auth.PrincipalFrom(ctx)
	if key == "" || p == nil {
		return write(ctx)
	}
	request, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return zero, err
	}
	scope := Scope{Principal: p.Name, Method: string(proto.MessageName(req)), Key: key}
	for attempt := 0; ; attempt++ {
		claim, replay, err := r.Begin(ctx, now, Plain, scope, request)
		if err != nil {
			return zero, err
		}
		if replay != nil {
			resp := zero.ProtoReflect().New().Interface().(Resp)
			if err := proto.Unmarshal(replay.Outcome, resp); err != nil {
				return zero, err
			}
			return resp, nil
		}
		if answer == WithholdAnswer {
			claim.Withhold()
		}
		resp, err := write(WithClaim(ctx, claim))
		if claim.Lost() && attempt == 0 {
			continue // a duplicate committed first: Begin finds its answer
		}
		if err != nil {
			if claim.Committed() {
				r.release(ctx, claim)
			}
			return zero, err
		}
		if answer == KeepAnswer && claim.Committed() {
			r.complete(ctx, claim, resp)
		}
		return resp, nil
	}
}

// complete records resp as the answer of the committed claim c. It runs
// even when the client has gone (the very case a retry is for); when it
// fails, the record stays pending and says so to a retry (Begin).
func (r *Records) complete(ctx context.Context, c *Claim, resp proto.Message) {
	out, err := proto.Marshal(resp)
	if err != nil {
		return
	}
	c.mu.Lock()
	committed := c.committed
	rec := c.rec
	c.mu.Unlock()
	var was record
	if json.Unmarshal(committed, &was) != nil || was.State != statePending {
		return
	}
	rec.State, rec.Outcome = stateDone, out
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), completeTimeout)
	defer cancel()
	key := recordKey(c.id)
	_ = r.kv.Apply(ctx, []kv.Cond{kv.Equal(key, committed)}, []kv.Write{kv.Put(key, rec.encode())})
}

// release removes the record of the committed claim c, still pending, of a
// handler that failed after it committed: the key sent again runs the
// handler again.
func (r *Records) release(ctx context.Context, c *Claim) {
	c.mu.Lock()
	committed := c.committed
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), completeTimeout)
	defer cancel()
	key := recordKey(c.id)
	_ = r.kv.Apply(ctx, []kv.Cond{kv.Equal(key, committed)},
		[]kv.Write{kv.Delete(key), kv.Delete(expiryKey(c.rec.Time, c.id))})
}
