package secretstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/secretstore"
)

// fakeOpener is a secretstore.Opener whose Open calls OpenFunc.
type fakeOpener struct {
	OpenFunc func(ctx context.Context, keyID string, ciphertext, info []byte) ([]byte, error)
}

var _ secretstore.Opener = (*fakeOpener)(nil)

func (f *fakeOpener) Open(ctx context.Context, keyID string, ciphertext, info []byte) ([]byte, error) {
	return f.OpenFunc(ctx, keyID, ciphertext, info)
}

func wantFieldErr(t *testing.T, err error, field string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.KindInvalid || e.Field != field {
		t.Fatalf("got %v, want an invalid-argument error for %s", err, field)
	}
}

// TestSealedValueRules checks the Service's side of sealed values: what it
// asks the Opener (the canonical owner's info), and the rules on what it
// gets back, whose buffer it clears once stored.
func TestSealedValueRules(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sealed := &secretstore.SealedValue{KeyID: "x25519-1", Ciphertext: []byte("ct")}

	// Without an Opener, sealed values are refused.
	_, err := e.svc.Create(ctx, alice, secretstore.CreateRequest{Parent: "teams/acme", SecretID: "A", Sealed: sealed})
	wantFieldErr(t, err, "sealed_value")

	var infos []string
	var buffers [][]byte
	plain := map[string]string{"x25519-1": canary, "nul": "a\x00b"}
	svc := secretstore.NewService(secretstore.Config{Store: e.store, Keyring: e.keys, Now: e.clock.Now,
		Sealing: &fakeOpener{OpenFunc: func(_ context.Context, keyID string, _, info []byte) ([]byte, error) {
			infos = append(infos, string(info))
			b := []byte(plain[keyID])
			buffers = append(buffers, b)
			return b, nil
		}}})
	if _, err := svc.Create(ctx, alice, secretstore.CreateRequest{Parent: "users/me", SecretID: "MINE", Sealed: sealed}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Update(ctx, alice, secretstore.UpdateRequest{Name: "users/me/secrets/MINE", Sealed: sealed}); err != nil {
		t.Fatal(err)
	}
	want := "oz-secret-v1|users/alice/secrets/MINE"
	if len(infos) != 2 || infos[0] != want || infos[1] != want {
		t.Fatalf("infos asked: got %q, want %q twice (canonical owner, never users/me)", infos, want)
	}
	for i, b := range buffers {
		if len(b) != len(canary) || strings.Trim(string(b), "\x00") != "" {
			t.Errorf("opened buffer %d was not cleared after use", i)
		}
	}
	vals, _, err := svc.UnsealValues(ctx, secretstore.User("alice"), []string{"MINE"})
	if err != nil || len(vals) != 1 || string(vals[0].Value.Bytes()) != canary || vals[0].ValueVersion != 2 {
		t.Fatalf("stored: got %v, %v", vals, err)
	}

	_, err = svc.Create(ctx, alice, secretstore.CreateRequest{Parent: "teams/acme", SecretID: "N", Sealed: &secretstore.SealedValue{KeyID: "nul", Ciphertext: []byte("x")}})
	wantFieldErr(t, err, "sealed_value")
	_, err = svc.Create(ctx, alice, secretstore.CreateRequest{Parent: "teams/acme", SecretID: "N", Sealed: sealed, Value: []byte("v")})
	wantFieldErr(t, err, "value")
	// Refused before opening: the caller may not write there.
	n := len(infos)
	if _, err := svc.Create(ctx, bob, secretstore.CreateRequest{Parent: "teams/acme", SecretID: "N", Sealed: sealed}); errs.KindOf(err) != errs.KindPermissionDenied {
		t.Fatalf("as a member: got %v, want PermissionDenied", err)
	}
	if len(infos) != n {
		t.Errorf("a sealed value was opened for a caller without permission")
	}
}
