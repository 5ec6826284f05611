// Package runseal seals a run's environment to the key the runner generated
// for the run (DESIGN §5): one single-shot HPKE encryption (RFC 9180, base
// mode) of a serialized oz.scope.v1.RunEnvironment, with HKDF-SHA256 and
// AES-256-GCM (package sealwire), to the runner's public key, under an
// info string that binds it to the run (sealwire.RunInfo). One encapsulation covers the whole run. Only the runner,
// holding the private key, can open it; the secretstore forgets the
// plaintext once sealed.
//
// The runner opens it with
//
//	hpke.Open(priv, sealwire.KDF(), sealwire.AEAD(), sealed.Info, sealed.Ciphertext)
//
// and unmarshals the result as a RunEnvironment.
package runseal

import (
	"crypto/hpke"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/lib/hostbind"
	"github.com/ozsecrets/oz/lib/sealwire"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// MaxInfoLen bounds the info string, in bytes.
const MaxInfoLen = 1024

// Recipient is a key to seal to. The zero Recipient is not valid.
type Recipient struct {
	pk hpke.PublicKey
}

// KEMID returns the recipient key's HPKE KEM id.
func (r Recipient) KEMID() uint16 { return r.pk.KEM().ID() }

// ParseRecipient makes a runner's key, as the resolver passes it on, one
// to seal to: kemID is an HPKE KEM of Go's crypto/hpke and publicKey a
// serialized public key of it. Which KEMs a runner may use is the
// resolver's rule, checked where the key arrives (ResolveRun); this only
// turns the key into one HPKE can use, and fails only for a key the
// resolver should have refused. Errors are errs.Field errors for
// "recipient.kem_id" or "recipient.public_key".
func ParseRecipient(kemID uint32, publicKey []byte) (Recipient, error) {
	if kemID > 0xffff {
		return Recipient{}, errs.Field("recipient.kem_id", "must be an HPKE KEM id, got 0x%x", kemID)
	}
	kem, err := hpke.NewKEM(uint16(kemID))
	if err != nil {
		return Recipient{}, errs.Field("recipient.kem_id", "HPKE KEM 0x%04x is not available", kemID)
	}
	if len(publicKey) == 0 {
		return Recipient{}, errs.Field("recipient.public_key", "is required")
	}
	pk, err := kem.NewPublicKey(publicKey)
	if err != nil {
		return Recipient{}, errs.Field("recipient.public_key", "is not a public key of HPKE KEM 0x%04x (%d bytes)", kemID, len(publicKey))
	}
	return Recipient{pk: pk}, nil
}

// CheckInfo checks the info string: non-empty, at most MaxInfoLen bytes.
// Errors are errs.Field errors for "info".
func CheckInfo(info []byte) error {
	switch {
	case len(info) == 0:
		return errs.Field("info", "is required with a recipient: the HPKE info string binding the values to the run (%steams/{team}/runs/{run})", sealwire.RunInfoPrefix)
	case len(info) > MaxInfoLen:
		return errs.Field("info", "must be at most %d bytes (got %d)", MaxInfoLen, len(info))
	}
	return nil
}

// Var is one environment variable of a run: a secret's name and value,
// and its binding to hosts (nil: not bound).
type Var struct {
	Name    string
	Value   []byte
	Binding *hostbind.Binding
}

// Seal seals vars, as a RunEnvironment, to r under info, with one HPKE
// encapsulation: the vars bound to hosts in its bound, the others in its
// vars, each sorted by name. A runner that does not know of bindings reads
// only vars, so a bound value never reaches an agent as a plain variable. It keeps no reference to the values, and
// the only copy of them it makes, the serialized plaintext, is zeroed once
// sealed (best effort: see below); the caller zeroes its own. A recipient
// key that cannot be encapsulated to (an X25519 key of low order, which
// ParseRecipient cannot tell) gives an errs.Field error for
// "recipient.public_key".
func Seal(r Recipient, info []byte, vars []Var) (*scopev1.SealedValues, error) {
	if r.pk == nil {
		return nil, fmt.Errorf("runseal: zero Recipient")
	}
	env := &scopev1.RunEnvironment{}
	for _, v := range vars {
		// The values share the caller's memory.
		if v.Binding != nil {
			env.Bound = append(env.Bound, &scopev1.BoundVar{Name: v.Name, Value: v.Value, Binding: v.Binding.Proto()})
		} else {
			env.Vars = append(env.Vars, &scopev1.EnvVar{Name: v.Name, Value: v.Value})
		}
	}
	slices.SortFunc(env.Vars, func(a, b *scopev1.EnvVar) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(env.Bound, func(a, b *scopev1.BoundVar) int { return strings.Compare(a.Name, b.Name) })

	// Serialize into a buffer of the exact size, so that no grown-out-of
	// copy is left behind, and zero it once sealed. Best effort: the
	// garbage collector does not move it, but nothing guarantees that the
	// HPKE and AES-GCM internals leave no plaintext in memory they free.
	buf := make([]byte, 0, proto.Size(env))
	plaintext, err := proto.MarshalOptions{}.MarshalAppend(buf, env)
	defer clear(plaintext)
	if err != nil {
		return nil, fmt.Errorf("runseal: serialize the run environment: %w", err)
	}
	ct, err := hpke.Seal(r.pk, sealwire.KDF(), sealwire.AEAD(), info, plaintext)
	if err != nil {
		return nil, errs.Field("recipient.public_key", "cannot be encapsulated to with HPKE KEM 0x%04x", r.KEMID())
	}
	return &scopev1.SealedValues{
		KemId:      uint32(r.KEMID()),
		KdfId:      uint32(sealwire.KDFID),
		AeadId:     uint32(sealwire.AEADID),
		Info:       slices.Clone(info),
		Ciphertext: ct,
	}, nil
}
