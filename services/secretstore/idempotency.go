package secretstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ozsecrets/oz/lib/hostbind"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/idempotency"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
)

// Writes sent again (issue 15). A create, update or delete may carry an
// idempotency key (CreateRequest.IdempotencyKey, …): the client's name for
// one logical write, sent again with each retry. The first write commits
// its answer with it, in the same Store write (idempotency.Claim); the key
// sent again by the same caller for the same kind of write gets that
// answer — the same metadata, etag and value version — and changes
// nothing, with no second audit event. The key sent with another request
// is refused (the field "idempotency-key"). Keys are remembered for
// idempotency.TTL.
//
// What is remembered is the answer — a secret's metadata, or nothing for
// a delete — never the value; requests are told apart by a MAC under a
// key derived from the keyring (keyringMAC), so that the fingerprint of a
// request carrying a plain value reveals nothing of it to someone who has
// the store but not the keyring.

// Kinds of write, the Method of an idempotency.Scope.
const (
	opCreate = "secret.create"
	opUpdate = "secret.update"
	opDelete = "secret.delete"
)

// keyringMAC fingerprints requests under the keyring (keyring.MAC).
type keyringMAC struct{ k *keyring.Keyring }

func (m keyringMAC) Sum(data []byte) (string, []byte, error) { return m.k.MAC(data) }
func (m keyringMAC) Verify(kekID string, data, sum []byte) (bool, error) {
	return m.k.CheckMAC(kekID, data, sum)
}

// keyed is a write's idempotency: its key, scope and request, and the
// claim its Store write carries (nil without a key).
type keyed struct {
	scope   idempotency.Scope
	request []byte
	claim   *idempotency.Claim
}

// begin looks up what key holds for the write op of p (none: a keyed
// without a claim, nothing to remember). It returns the write's claim, to
// carry to the Store's write, or the first write's answer to give again.
func (s *Service) begin(ctx context.Context, p *auth.Principal, op, key string, request []byte) (*keyed, *idempotency.Replay, error) {
	if key == "" {
		return &keyed{}, nil, nil
	}
	k := &keyed{scope: idempotency.Scope{Principal: p.Name, Method: op, Key: key}, request: request}
	claim, replay, err := s.store.Idempotency().Begin(ctx, s.now().UTC(), keyringMAC{s.keys}, k.scope, request)
	if err != nil || replay != nil {
		return nil, replay, err
	}
	k.claim = claim
	return k, nil, nil
}

// carry returns ctx carrying the claim, for the Store's write (only
// there: no other write of the request may commit it).
func (k *keyed) carry(ctx context.Context) context.Context {
	return idempotency.WithClaim(ctx, k.claim)
}

// setOutcome records sec (its metadata) as the answer of the keyed write.
func (k *keyed) setOutcome(sec *Secret) {
	if k.claim == nil {
		return
	}
	if sec == nil {
		k.claim.SetOutcome(nil)
		return
	}
	k.claim.SetOutcome(encodeOutcome(sec))
}

// lost reports whether a write with the same key committed before this
// one, which then wrote nothing.
func (k *keyed) lost() bool { return k.claim != nil && k.claim.Lost() }

// again answers a write that lost the race to its key: with the winner's
// answer when it was the same request.
func (s *Service) again(ctx context.Context, k *keyed) (*Secret, error) {
	_, replay, err := s.store.Idempotency().Begin(ctx, s.now().UTC(), keyringMAC{s.keys}, k.scope, k.request)
	if err != nil {
		return nil, err
	}
	if replay == nil {
		// Gone again within a moment (the TTL cannot pass so fast): tell
		// the client to retry rather than guess.
		return nil, idempotency.ErrClaimed
	}
	return s.replayed(ctx, replay)
}

// replayed decodes the answer a key holds: a secret's metadata, or nil
// for a delete.
func (s *Service) replayed(ctx context.Context, r *idempotency.Replay) (*Secret, error) {
	if len(r.Outcome) == 0 {
		return nil, nil
	}
	sec, err := decodeOutcome(r.Outcome)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "write sent again: answered as the first time", "secret", sec.ResourceName())
	return sec, nil
}

// outcome is the answer of a create or update as its record keeps it: the
// secret's metadata, no value.
type outcome struct {
	Owner           string    `json:"owner"`
	Name            string    `json:"name"`
	Description     string    `json:"description,omitempty"`
	ValueVersion    int64     `json:"value_version"`
	CreateTime      time.Time `json:"create_time"`
	UpdateTime      time.Time `json:"update_time"`
	ValueUpdateTime time.Time `json:"value_update_time"`
	CreateBy        string    `json:"create_by"`
	UpdateBy        string    `json:"update_by"`
	Etag            string    `json:"etag"`
	// Binding is absent when not bound (and in answers kept before
	// bindings were).
	Binding *outcomeBinding `json:"binding,omitempty"`
}

type outcomeBinding struct {
	Hosts      []string `json:"hosts"`
	AllowQuery bool     `json:"allow_query,omitempty"`
	AllowBody  bool     `json:"allow_body,omitempty"`
}

func encodeOutcome(s *Secret) []byte {
	o := outcome{
		Owner: s.Owner.String(), Name: s.Name, Description: s.Description, ValueVersion: s.ValueVersion,
		CreateTime: s.CreateTime, UpdateTime: s.UpdateTime, ValueUpdateTime: s.ValueUpdateTime,
		CreateBy: s.CreateBy, UpdateBy: s.UpdateBy, Etag: s.Etag,
	}
	if b := s.Binding; b != nil {
		o.Binding = &outcomeBinding{Hosts: b.Hosts, AllowQuery: b.AllowQuery, AllowBody: b.AllowBody}
	}
	b, err := json.Marshal(o)
	if err != nil {
		panic(fmt.Sprintf("secretstore: encode outcome: %v", err)) // strings, numbers and times
	}
	return b
}

func decodeOutcome(b []byte) (*Secret, error) {
	var o outcome
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("decode the answer an idempotency key holds: %w", err)
	}
	owner, err := ParseOwner(o.Owner)
	if err != nil {
		return nil, fmt.Errorf("decode the answer an idempotency key holds: %w", err)
	}
	sec := &Secret{
		Owner: owner, Name: o.Name, Description: o.Description, ValueVersion: o.ValueVersion,
		CreateTime: o.CreateTime, UpdateTime: o.UpdateTime, ValueUpdateTime: o.ValueUpdateTime,
		CreateBy: o.CreateBy, UpdateBy: o.UpdateBy, Etag: o.Etag,
	}
	if b := o.Binding; b != nil && len(b.Hosts) > 0 {
		sec.Binding = &hostbind.Binding{Hosts: b.Hosts, AllowQuery: b.AllowQuery, AllowBody: b.AllowBody}
	}
	return sec, nil
}

// The requests as fingerprinted: every field that changes what the write
// does, as the caller sent it.

func sealedParts(sv *SealedValue) [][]byte {
	if sv == nil {
		return [][]byte{nil, nil, nil}
	}
	return [][]byte{[]byte("sealed"), []byte(sv.KeyID), sv.Ciphertext}
}

// bindingParts is a binding as sent, to append last: nothing when there
// is none, so that a request without one fingerprints as it did before
// bindings (a key sent again across an upgrade still matches).
func bindingParts(b *hostbind.Binding) [][]byte {
	if b == nil {
		return nil
	}
	hosts := make([][]byte, len(b.Hosts))
	for i, h := range b.Hosts {
		hosts[i] = []byte(h)
	}
	return [][]byte{[]byte("binding"), idempotency.Request(hosts...), flag(b.AllowQuery), flag(b.AllowBody)}
}

func flag(v bool) []byte {
	if v {
		return []byte{1}
	}
	return []byte{0}
}

func (r CreateRequest) fingerprint() []byte {
	parts := append([][]byte{[]byte(r.Parent), []byte(r.SecretID), []byte(r.Description), r.Value}, sealedParts(r.Sealed)...)
	return idempotency.Request(append(parts, bindingParts(r.Binding)...)...)
}

func (r UpdateRequest) fingerprint() []byte {
	mask := make([][]byte, len(r.UpdateMask))
	for i, path := range r.UpdateMask {
		mask[i] = []byte(path)
	}
	parts := append([][]byte{[]byte(r.Name), []byte(r.Description), r.Value,
		idempotency.Request(mask...), []byte(r.Etag)}, sealedParts(r.Sealed)...)
	return idempotency.Request(append(parts, bindingParts(r.Binding)...)...)
}

func (r DeleteRequest) fingerprint() []byte {
	return idempotency.Request([]byte(r.Name), []byte(r.Etag))
}

// answer is what begin found instead of a claim: an error, or the first
// write's answer.
func (s *Service) answer(ctx context.Context, replay *idempotency.Replay, err error) (*Secret, error) {
	if err != nil {
		return nil, err
	}
	return s.replayed(ctx, replay)
}
