package runs

import (
	"crypto/hpke"
	"errors"
	"slices"
	"testing"

	"github.com/ozsecrets/oz/services/internal/errs"
)

func TestRequiredKEMsAreAccepted(t *testing.T) {
	for _, id := range []uint16{0x0020, 0x0010, 0x647a} {
		if !slices.Contains(KEMs, id) {
			t.Errorf("KEM 0x%04x: not in KEMs %v", id, KEMs)
		}
	}
	for _, id := range KEMs {
		kem, err := hpke.NewKEM(id)
		if err != nil {
			t.Fatalf("NewKEM(0x%04x): %v", id, err)
		}
		priv, err := kem.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := (Recipient{KEMID: uint32(id), PublicKey: priv.PublicKey().Bytes()}).check(); err != nil {
			t.Errorf("a key of KEM 0x%04x: %v", id, err)
		}
	}
}

func TestRecipientRefused(t *testing.T) {
	key := func(id uint16) []byte {
		kem, err := hpke.NewKEM(id)
		if err != nil {
			t.Fatal(err)
		}
		priv, err := kem.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		return priv.PublicKey().Bytes()
	}
	x, p256 := key(0x0020), key(0x0010)
	for _, tc := range []struct {
		name  string
		kem   uint32
		key   []byte
		field string
	}{
		{"KEMZero", 0, x, "recipient.kem_id"},
		{"KEMUnknown", 0x0021, x, "recipient.kem_id"},
		{"KEMAbove16Bits", 0x10020, x, "recipient.kem_id"},
		{"KeyMissing", 0x0020, nil, "recipient.public_key"},
		{"KeyTruncated", 0x0020, x[:31], "recipient.public_key"},
		{"KeyOfAnotherKEM", 0x0020, p256, "recipient.public_key"},
		{"P256KeyNotOnCurve", 0x0010, append([]byte{4}, make([]byte, 64)...), "recipient.public_key"},
		{"HybridKeyTooShort", 0x647a, x, "recipient.public_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Recipient{KEMID: tc.kem, PublicKey: tc.key}.check()
			var e *errs.Error
			if !errors.As(err, &e) || e.Kind != errs.KindInvalid || e.Field != tc.field {
				t.Fatalf("got %v, want an invalid-argument error for %s", err, tc.field)
			}
		})
	}
}
