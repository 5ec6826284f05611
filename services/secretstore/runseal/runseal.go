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

	"github.com/ozsecrets/oz/lib/sealwire"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// MaxInfoLen bounds the info string, in bytes.
const MaxInfoLen = 1024

// KEMs are the HPKE KEM ids a recipient key may use: every KEM of Go's
// crypto/hpke, listed rather than taken from hpke.NewKEM so that a KEM
// added to the standard library is not accepted unreviewed.
var KEMs = []uint16{
	0x0010, // DHKEM(P-256, HKDF-SHA256)
	0x0011, // DHKEM(P-384, HKDF-SHA384)
	0x0012, // DHKEM(P-521, HKDF-SHA512)
	0x0020, // DHKEM(X25519, HKDF-SHA256)
	0x0041, // ML-KEM-768
	0x0042, // ML-KEM-1024
	0x0050, // ML-KEM-768 + P-256
	0x0051, // ML-KEM-1024 + P-384
	0x647a, // ML-KEM-768 + X25519 (X-Wing)
}

// Recipient is a validated recipient key. The zero Recipient is not valid.
type Recipient struct {
	pk hpke.PublicKey
}

// KEMID returns the recipient key's HPKE KEM id.
func (r Recipient) KEMID() uint16 { return r.pk.KEM().ID() }

// ParseRecipient checks a recipient key from the wire: kemID is one of
// KEMs and publicKey is a serialized public key of that KEM. Errors are
// errs.Field errors for "recipient.kem_id" or "recipient.public_key".
func ParseRecipient(kemID uint32, publicKey []byte) (Recipient, error) {
	if kemID > 0xffff || !slices.Contains(KEMs, uint16(kemID)) {
		return Recipient{}, errs.Field("recipient.kem_id", "must be a supported HPKE KEM id (%s), got 0x%04x", kemList(), kemID)
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

// Var is one environment variable of a run: a secret's name and value.
type Var struct {
	Name  string
	Value []byte
}

// Seal seals vars, as a RunEnvironment sorted by name, to r under info,
// with one HPKE encapsulation. It keeps no reference to the values, and
// the only copy of them it makes, the serialized plaintext, is zeroed once
// sealed (best effort: see below); the caller zeroes its own. A recipient
// key that cannot be encapsulated to (an X25519 key of low order, which
// ParseRecipient cannot tell) gives an errs.Field error for
// "recipient.public_key".
func Seal(r Recipient, info []byte, vars []Var) (*scopev1.SealedValues, error) {
	if r.pk == nil {
		return nil, fmt.Errorf("runseal: zero Recipient")
	}
	env := &scopev1.RunEnvironment{Vars: make([]*scopev1.EnvVar, len(vars))}
	for i, v := range vars {
		env.Vars[i] = &scopev1.EnvVar{Name: v.Name, Value: v.Value} // shares the caller's memory
	}
	slices.SortFunc(env.Vars, func(a, b *scopev1.EnvVar) int { return strings.Compare(a.Name, b.Name) })

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

func kemList() string {
	ids := make([]string, len(KEMs))
	for i, id := range KEMs {
		ids[i] = fmt.Sprintf("0x%04x", id)
	}
	return strings.Join(ids, ", ")
}
