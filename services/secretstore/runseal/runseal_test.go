package runseal_test

import (
	"bytes"
	"crypto/hpke"
	"errors"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/lib/hostbind"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/secretstore/runseal"
)

const (
	canary = "CANARY-runseal-77d2"
	info   = "oz-run-v1|teams/acme/runs/r1"
)

func generate(t *testing.T, id uint16) hpke.PrivateKey {
	t.Helper()
	kem, err := hpke.NewKEM(id)
	if err != nil {
		t.Fatalf("NewKEM(0x%04x): %v", id, err)
	}
	priv, err := kem.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func wantField(t *testing.T, what string, err error, field string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.KindInvalid || e.Field != field {
		t.Fatalf("%s: got %v, want an invalid-argument error for %s", what, err, field)
	}
}

// kems are every KEM of Go's crypto/hpke: those a runner may use are the
// resolver's rule, and a subset.
var kems = []uint16{0x0010, 0x0011, 0x0012, 0x0020, 0x0041, 0x0042, 0x0050, 0x0051, 0x647a}

func TestSealOpenEveryKEM(t *testing.T) {
	vars := []runseal.Var{
		{Name: "ZED", Value: []byte("z-" + canary)},
		{Name: "ALPHA", Value: []byte("a-" + canary)},
		{Name: "alpha", Value: []byte("lower-" + canary)},
	}
	for _, id := range kems {
		t.Run(fmt.Sprintf("kem=0x%04x", id), func(t *testing.T) {
			priv := generate(t, id)
			r, err := runseal.ParseRecipient(uint32(id), priv.PublicKey().Bytes())
			if err != nil {
				t.Fatalf("ParseRecipient: %v", err)
			}
			if r.KEMID() != id {
				t.Fatalf("KEMID: got 0x%04x, want 0x%04x", r.KEMID(), id)
			}
			sealed, err := runseal.Seal(r, []byte(info), vars)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if sealed.GetKemId() != uint32(id) || sealed.GetKdfId() != 0x0001 || sealed.GetAeadId() != 0x0002 || string(sealed.GetInfo()) != info {
				t.Fatalf("suite: got kem 0x%04x kdf 0x%04x aead 0x%04x info %q", sealed.GetKemId(), sealed.GetKdfId(), sealed.GetAeadId(), sealed.GetInfo())
			}
			if bytes.Contains(sealed.GetCiphertext(), []byte(canary)) {
				t.Fatal("the ciphertext contains a value in clear")
			}
			pt, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(info), sealed.GetCiphertext())
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			var env scopev1.RunEnvironment
			if err := proto.Unmarshal(pt, &env); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range env.GetVars() {
				got = append(got, v.GetName()+"="+string(v.GetValue()))
			}
			want := []string{"ALPHA=a-" + canary, "ZED=z-" + canary, "alpha=lower-" + canary} // sorted by name
			if !slices.Equal(got, want) {
				t.Fatalf("opened: got %v, want %v", got, want)
			}
			if _, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(info+"x"), sealed.GetCiphertext()); err == nil {
				t.Fatal("Open with another info: got nil error")
			}
			if _, err := hpke.Open(generate(t, id), hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(info), sealed.GetCiphertext()); err == nil {
				t.Fatal("Open with another key: got nil error")
			}
		})
	}
}

// TestSealBound: a var bound to hosts is sealed into the environment's
// bound, with its binding, never into vars (which a runner unaware of
// bindings would hand the agent); each list is sorted by name.
func TestSealBound(t *testing.T) {
	priv := generate(t, 0x0020)
	r, err := runseal.ParseRecipient(0x0020, priv.PublicKey().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	openai := &hostbind.Binding{Hosts: []string{"api.openai.com"}}
	metabase := &hostbind.Binding{Hosts: []string{"*.metabase.example.com", "metabase.example.com"}, AllowQuery: true, AllowBody: true}
	sealed, err := runseal.Seal(r, []byte(info), []runseal.Var{
		{Name: "ZED", Value: []byte("z-" + canary)},
		{Name: "OPENAI_API_KEY", Value: []byte("o-" + canary), Binding: openai},
		{Name: "ALPHA", Value: []byte("a-" + canary)},
		{Name: "METABASE_KEY", Value: []byte("m-" + canary), Binding: metabase},
	})
	if err != nil {
		t.Fatal(err)
	}
	pt, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(info), sealed.GetCiphertext())
	if err != nil {
		t.Fatal(err)
	}
	var env scopev1.RunEnvironment
	if err := proto.Unmarshal(pt, &env); err != nil {
		t.Fatal(err)
	}
	var vars []string
	for _, v := range env.GetVars() {
		vars = append(vars, v.GetName()+"="+string(v.GetValue()))
	}
	if want := []string{"ALPHA=a-" + canary, "ZED=z-" + canary}; !slices.Equal(vars, want) {
		t.Errorf("vars: got %v, want %v", vars, want)
	}
	want := []*scopev1.BoundVar{
		{Name: "METABASE_KEY", Value: []byte("m-" + canary), Binding: metabase.Proto()},
		{Name: "OPENAI_API_KEY", Value: []byte("o-" + canary), Binding: openai.Proto()},
	}
	if got := env.GetBound(); !slices.EqualFunc(got, want, func(a, b *scopev1.BoundVar) bool { return proto.Equal(a, b) }) {
		t.Errorf("bound: got %v, want %v", got, want)
	}
}

func TestSealKeepsNoReference(t *testing.T) {
	priv := generate(t, 0x0020)
	r, err := runseal.ParseRecipient(0x0020, priv.PublicKey().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	inf := []byte(info)
	sealed, err := runseal.Seal(r, inf, nil)
	if err != nil {
		t.Fatal(err)
	}
	inf[0] = 'X'
	if string(sealed.GetInfo()) != info {
		t.Fatalf("info: got %q after the caller changed its copy", sealed.GetInfo())
	}
	pt, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(info), sealed.GetCiphertext())
	if err != nil {
		t.Fatal(err)
	}
	if len(pt) != 0 {
		t.Fatalf("empty environment: got %d bytes of plaintext", len(pt))
	}
}

func TestParseRecipientRefuses(t *testing.T) {
	x := generate(t, 0x0020).PublicKey().Bytes()
	p256 := generate(t, 0x0010).PublicKey().Bytes()
	for _, tc := range []struct {
		name  string
		kem   uint32
		key   []byte
		field string
	}{
		{"KEMZero", 0, x, "recipient.kem_id"},
		{"KEMUnknown", 0x0021, x, "recipient.kem_id"},
		{"KEMUnknownHigh", 0x6479, x, "recipient.kem_id"},
		{"KEMAbove16Bits", 0x10020, x, "recipient.kem_id"},
		{"KeyMissing", 0x0020, nil, "recipient.public_key"},
		{"KeyTruncated", 0x0020, x[:31], "recipient.public_key"},
		{"KeyOfAnotherKEM", 0x0020, p256, "recipient.public_key"},
		{"P256KeyNotOnCurve", 0x0010, append([]byte{4}, make([]byte, 64)...), "recipient.public_key"},
		{"HybridKeyTooShort", 0x647a, x, "recipient.public_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runseal.ParseRecipient(tc.kem, tc.key)
			wantField(t, "ParseRecipient", err, tc.field)
		})
	}
}

func TestSealLowOrderKey(t *testing.T) {
	// An all-zero X25519 key parses but cannot be encapsulated to.
	r, err := runseal.ParseRecipient(0x0020, make([]byte, 32))
	if err != nil {
		t.Skipf("ParseRecipient refuses it already: %v", err)
	}
	_, err = runseal.Seal(r, []byte(info), []runseal.Var{{Name: "A", Value: []byte(canary)}})
	wantField(t, "Seal to a low-order key", err, "recipient.public_key")
	if bytes.Contains([]byte(err.Error()), []byte(canary)) {
		t.Fatal("the error contains the value")
	}
}

func TestSealZeroRecipient(t *testing.T) {
	if _, err := runseal.Seal(runseal.Recipient{}, []byte(info), nil); err == nil {
		t.Fatal("Seal to the zero Recipient: got nil error")
	}
}

func TestCheckInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		info []byte
		ok   bool
	}{
		{"Run", []byte(info), true},
		{"OneByte", []byte("x"), true},
		{"AtMost", bytes.Repeat([]byte("i"), runseal.MaxInfoLen), true},
		{"Empty", nil, false},
		{"TooLong", bytes.Repeat([]byte("i"), runseal.MaxInfoLen+1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runseal.CheckInfo(tc.info)
			if tc.ok {
				if err != nil {
					t.Fatalf("CheckInfo: got %v, want nil", err)
				}
				return
			}
			wantField(t, "CheckInfo", err, "info")
		})
	}
}
