package sealwire_test

import (
	"crypto/ecdh"
	"crypto/hpke"
	"testing"

	"github.com/ozsecrets/oz/lib/sealwire"
)

// TestWire pins the bytes: a change here is a change of the wire, which
// every sealed value and every client in the field depends on.
func TestWire(t *testing.T) {
	ids := []struct {
		name      string
		got, want uint16
	}{
		{"KEMX25519", sealwire.KEMX25519, hpke.DHKEM(ecdh.X25519()).ID()},
		{"KEMMLKEM768X25519", sealwire.KEMMLKEM768X25519, hpke.MLKEM768X25519().ID()},
		{"KDFID", sealwire.KDFID, hpke.HKDFSHA256().ID()},
		{"KDF", sealwire.KDF().ID(), 0x0001},
		{"AEADID", sealwire.AEADID, hpke.AES256GCM().ID()},
		{"AEAD", sealwire.AEAD().ID(), 0x0002},
	}
	for _, tt := range ids {
		if tt.got != tt.want {
			t.Errorf("%s: got %#04x, want %#04x", tt.name, tt.got, tt.want)
		}
	}
	if got, want := string(sealwire.SecretInfo("teams/acme", "API_KEY")), "oz-secret-v1|teams/acme/secrets/API_KEY"; got != want {
		t.Errorf("SecretInfo: got %q, want %q", got, want)
	}
	if got, want := string(sealwire.RunInfo("teams/acme/runs/r1")), "oz-run-v1|teams/acme/runs/r1"; got != want {
		t.Errorf("RunInfo: got %q, want %q", got, want)
	}
}

// TestRoundTrip: what is sealed with the suite and an info opens with the
// same and not with another info.
func TestRoundTrip(t *testing.T) {
	for _, id := range []uint16{sealwire.KEMX25519, sealwire.KEMMLKEM768X25519} {
		kem, err := hpke.NewKEM(id)
		if err != nil {
			t.Fatal(err)
		}
		priv, err := kem.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		info := sealwire.SecretInfo("users/alice", "K")
		ct, err := hpke.Seal(priv.PublicKey(), sealwire.KDF(), sealwire.AEAD(), info, []byte("v"))
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := hpke.Open(priv, sealwire.KDF(), sealwire.AEAD(), info, ct); err != nil || string(pt) != "v" {
			t.Errorf("KEM %#04x: got %q, %v; want v", id, pt, err)
		}
		if _, err := hpke.Open(priv, sealwire.KDF(), sealwire.AEAD(), sealwire.SecretInfo("users/alice", "L"), ct); err == nil {
			t.Errorf("KEM %#04x: opened with another secret's info", id)
		}
	}
}
