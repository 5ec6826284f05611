// Package sealing is the secretstore's side of client-side sealing (DESIGN
// §4): the HPKE (RFC 9180) key pairs that browsers and the CLI seal a
// secret's value to, so that nothing between the client and the secretstore
// (the gateway, a proxy, a log) sees it.
//
// There is always one current key pair per KEM of KEMs: DHKEM(X25519,
// HKDF-SHA256) for browsers (WebCrypto has X25519) and the post-quantum
// hybrid ML-KEM-768+X25519 for the CLI, both with HKDF-SHA256 and
// AES-256-GCM (package sealwire). A client seals single-shot (base mode)
// with
//
//	hpke.Seal(pub, sealwire.KDF(), sealwire.AEAD(), sealwire.SecretInfo(owner, name), value)
//
// and sends the key id and the result (the encapsulated key followed by the
// ciphertext). The info binds the blob to one secret, so that it does not
// open when replayed into another.
//
// Private keys are stored wrapped by the key-encryption keyring (package
// keyring), bound to their KEM and public key, and kept unwrapped in memory
// only. Rotate makes new current keys; the previous ones keep opening values
// for a grace period (values sealed just before a rotation still arrive),
// are listed as not current meanwhile, and are then dropped.
package sealing

import (
	"context"
	"crypto/hpke"
	"fmt"
	"regexp"
	"time"

	"github.com/ozsecrets/oz/lib/sealwire"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
)

// KEMs are the KEMs there is one current key of, in the order keys are
// listed; the suite, KDF and AEAD included, is package sealwire's.
var KEMs = []uint16{sealwire.KEMMLKEM768X25519, sealwire.KEMX25519}

// kemName names a KEM in key ids.
func kemName(kem uint16) string {
	switch kem {
	case sealwire.KEMX25519:
		return "x25519"
	case sealwire.KEMMLKEM768X25519:
		return "mlkem768x25519"
	}
	return fmt.Sprintf("kem%04x", kem)
}

// keyIDRE is the shape of key ids: "<kem>-<generation>", "x25519-3".
var keyIDRE = regexp.MustCompile(`^[a-z0-9]{1,32}-[1-9][0-9]{0,18}$`)

// ValidKeyID reports whether id has the shape of a key id. Ids of another
// shape are never echoed back in errors: they are caller input of unknown
// content.
func ValidKeyID(id string) bool { return keyIDRE.MatchString(id) }

// Key is a stored sealing key pair.
type Key struct {
	// ID is "<kem>-<generation>": "mlkem768x25519-1", "x25519-1". The
	// generation counts rotations; the keys made together share it.
	ID         string
	KEMID      uint16
	PublicKey  []byte
	CreateTime time.Time
	// RetireTime is when a rotation replaced the key; zero while it is
	// current. A retired key opens values until RetireTime plus the grace.
	RetireTime time.Time
	// Private is the serialized private key (RFC 9180
	// SerializePrivateKey), sealed by the keyring with additional data
	// privateAD(KEMID, PublicKey). Never plaintext.
	Private keyring.Envelope
}

// Current reports whether k is the key clients should seal to.
func (k *Key) Current() bool { return k.RetireTime.IsZero() }

// Clone returns a deep copy of k.
func (k *Key) Clone() *Key {
	c := *k
	c.PublicKey = append([]byte(nil), k.PublicKey...)
	c.Private = k.Private.Clone()
	return &c
}

// public returns a copy of k without the wrapped private key.
func (k *Key) public() *Key {
	c := k.Clone()
	c.Private = keyring.Envelope{}
	return c
}

// privateAD binds a wrapped private key to its KEM and public key, so that
// it does not open when moved to another record.
func privateAD(kem uint16, pub []byte) []byte {
	return fmt.Appendf(nil, "oz.sealing-key.v1\x00%04x\x00%s", kem, pub)
}

// Store keeps sealing keys. Implementations are safe for concurrent use.
// Records passed in and returned are copies. Errors: as said below;
// anything else (I/O, a corrupt record, a cancelled ctx, an invalid event)
// is internal.
//
// Every change commits together with its audit event, into the store's
// outbox (Outbox), as secretstore.Store's changes do: a nil event, or one
// audit.ValidateEvent refuses, is an error and nothing changes.
type Store interface {
	// SealingKeys returns every stored key, in no particular order.
	SealingKeys(ctx context.Context) ([]*Key, error)

	// SealingKey returns the key with id, or an errs.KindNotFound error.
	SealingKey(ctx context.Context, id string) (*Key, error)

	// UpdateSealingKeys calls fn with every stored key and replaces them
	// all with the keys fn returns, and stores the event fn returns with
	// them, atomically. fn may be called more than once: it must have no
	// effects outside its results (the event of its last call is the one
	// stored). When fn returns an error, nothing changes and
	// UpdateSealingKeys returns that error as is. Ids in fn's result are
	// unique. It returns the stored keys.
	UpdateSealingKeys(ctx context.Context, fn func(keys []*Key) ([]*Key, *auditv1.Event, error)) ([]*Key, error)

	// Outbox is the store's audit outbox, which its changes write their
	// events into.
	Outbox() outbox.Source
}

// newKEM returns the KEM of id, one of KEMs.
func newKEM(id uint16) (hpke.KEM, error) {
	kem, err := hpke.NewKEM(id)
	if err != nil {
		return nil, fmt.Errorf("sealing: KEM 0x%04x: %w", id, err)
	}
	return kem, nil
}

// MaxOverhead is the most sealing adds to a value: the largest
// encapsulated key of KEMs (ML-KEM-768+X25519: 1120 bytes) and the
// AES-256-GCM tag (16).
const MaxOverhead = 1120 + 16

// MaxCiphertextLen is the longest ciphertext of a value of at most
// maxValue bytes.
func MaxCiphertextLen(maxValue int) int { return maxValue + MaxOverhead }
