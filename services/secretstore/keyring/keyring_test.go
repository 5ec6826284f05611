package keyring_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/services/secretstore/keyring"
)

func generate(t *testing.T) *keyring.Keyring {
	t.Helper()
	k, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func seal(t *testing.T, k *keyring.Keyring, pt, ad string) keyring.Envelope {
	t.Helper()
	e, err := k.Seal([]byte(pt), []byte(ad))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return e
}

func TestSealOpen(t *testing.T) {
	k := generate(t)
	for _, tc := range []struct{ name, pt string }{
		{"Short", "x"},
		{"MultiLine", "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"},
		{"JSON", `{"type":"service_account","private_key":"…"}`},
		{"64KiB", strings.Repeat("a", 64<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := seal(t, k, tc.pt, "ad")
			if e.KEKID != k.Primary() {
				t.Errorf("KEKID: got %q, want the primary %q", e.KEKID, k.Primary())
			}
			if len(tc.pt) > 8 && (bytes.Contains(e.Ciphertext, []byte(tc.pt)) || bytes.Contains(e.WrappedKey, []byte(tc.pt))) {
				t.Error("the envelope contains the plaintext")
			}
			got, err := k.Open(e, []byte("ad"))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if string(got) != tc.pt {
				t.Fatalf("Open: got %d bytes, want the %d sealed", len(got), len(tc.pt))
			}
		})
	}
}

func TestEverySealHasItsOwnDataKey(t *testing.T) {
	k := generate(t)
	a, b := seal(t, k, "same", "ad"), seal(t, k, "same", "ad")
	if bytes.Equal(a.Ciphertext, b.Ciphertext) || bytes.Equal(a.WrappedKey, b.WrappedKey) {
		t.Fatal("two seals of the same value share a ciphertext or a wrapped key")
	}
	// The data key of one does not open the other's ciphertext.
	mixed := keyring.Envelope{KEKID: a.KEKID, WrappedKey: a.WrappedKey, Ciphertext: b.Ciphertext}
	if _, err := k.Open(mixed, []byte("ad")); !errors.Is(err, keyring.ErrOpen) {
		t.Fatalf("Open with another seal's data key: got %v, want ErrOpen", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	k := generate(t)
	other := generate(t)
	e := seal(t, k, "value", "teams/acme|API_KEY|1")
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 1
		return c
	}
	for _, tc := range []struct {
		name string
		k    *keyring.Keyring
		e    keyring.Envelope
		ad   string
	}{
		{"OtherAD", k, e, "teams/acme|API_KEY|2"},
		{"EmptyAD", k, e, ""},
		{"OtherKeyring", other, e, "teams/acme|API_KEY|1"},
		{"CiphertextFlipped", k, keyring.Envelope{KEKID: e.KEKID, WrappedKey: e.WrappedKey, Ciphertext: flip(e.Ciphertext, len(e.Ciphertext)-1)}, "teams/acme|API_KEY|1"},
		{"NonceFlipped", k, keyring.Envelope{KEKID: e.KEKID, WrappedKey: e.WrappedKey, Ciphertext: flip(e.Ciphertext, 0)}, "teams/acme|API_KEY|1"},
		{"WrappedKeyFlipped", k, keyring.Envelope{KEKID: e.KEKID, WrappedKey: flip(e.WrappedKey, 20), Ciphertext: e.Ciphertext}, "teams/acme|API_KEY|1"},
		{"Truncated", k, keyring.Envelope{KEKID: e.KEKID, WrappedKey: e.WrappedKey, Ciphertext: e.Ciphertext[:10]}, "teams/acme|API_KEY|1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.k.Open(tc.e, []byte(tc.ad)); !errors.Is(err, keyring.ErrOpen) {
				t.Fatalf("Open: got %v, want ErrOpen", err)
			}
		})
	}
	t.Run("UnknownKEK", func(t *testing.T) {
		bad := e
		bad.KEKID = "k9"
		if _, err := k.Open(bad, []byte("teams/acme|API_KEY|1")); err == nil || !strings.Contains(err.Error(), "k9") {
			t.Fatalf("Open: got %v, want an error naming key k9", err)
		}
	})
	t.Run("OtherKEKID", func(t *testing.T) {
		// The KEK id is bound too: relabelling the wrapped key fails.
		if _, err := k.Rotate(); err != nil {
			t.Fatal(err)
		}
		bad := e
		bad.KEKID = k.Primary()
		if _, err := k.Open(bad, []byte("teams/acme|API_KEY|1")); !errors.Is(err, keyring.ErrOpen) {
			t.Fatalf("Open: got %v, want ErrOpen", err)
		}
	})
}

func TestRotateAndRewrap(t *testing.T) {
	k := generate(t)
	if got := k.Primary(); got != "k1" {
		t.Fatalf("primary of a new keyring: got %q, want k1", got)
	}
	old := seal(t, k, "value", "ad")
	id, err := k.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if id != "k2" || k.Primary() != "k2" {
		t.Fatalf("after Rotate: got id %q, primary %q, want k2", id, k.Primary())
	}
	if got := strings.Join(k.IDs(), ","); got != "k1,k2" {
		t.Fatalf("IDs: got %s, want k1,k2", got)
	}
	if got, err := k.Open(old, []byte("ad")); err != nil || string(got) != "value" {
		t.Fatalf("Open of a value wrapped by the old key: got %q, %v", got, err)
	}
	if e := seal(t, k, "new", "ad"); e.KEKID != "k2" {
		t.Fatalf("new seal: KEKID got %q, want k2", e.KEKID)
	}

	re, changed, err := k.Rewrap(old, []byte("ad"))
	if err != nil || !changed {
		t.Fatalf("Rewrap: got changed=%v, %v", changed, err)
	}
	if re.KEKID != "k2" {
		t.Errorf("rewrapped KEKID: got %q, want k2", re.KEKID)
	}
	if !bytes.Equal(re.Ciphertext, old.Ciphertext) {
		t.Error("Rewrap changed the value's ciphertext")
	}
	if bytes.Equal(re.WrappedKey, old.WrappedKey) {
		t.Error("Rewrap did not change the wrapped key")
	}
	if _, changed, err := k.Rewrap(re, []byte("ad")); err != nil || changed {
		t.Errorf("second Rewrap: got changed=%v, %v, want false, nil", changed, err)
	}
	if _, _, err := k.Rewrap(old, []byte("other")); !errors.Is(err, keyring.ErrOpen) {
		t.Errorf("Rewrap with other additional data: got %v, want ErrOpen", err)
	}

	// Without k1, the rewrapped envelope still opens: it needs k2 only.
	only2 := onlyKey(t, k, "k2")
	if got, err := only2.Open(re, []byte("ad")); err != nil || string(got) != "value" {
		t.Fatalf("Open with only k2: got %q, %v", got, err)
	}
	if _, err := only2.Open(old, []byte("ad")); err == nil {
		t.Fatal("Open of a k1-wrapped envelope without k1: got no error")
	}
}

// onlyKey returns a keyring holding only key id of k.
func onlyKey(t *testing.T, k *keyring.Keyring, id string) *keyring.Keyring {
	t.Helper()
	data, err := k.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Primary string            `json:"primary"`
		Keys    map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	out, err := keyring.Parse(fmtKeyring(id, f.Keys[id]))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fmtKeyring(primary string, keys ...string) []byte {
	m := map[string]string{}
	for i := 0; i+1 < len(keys); i += 2 {
		m[keys[i]] = keys[i+1]
	}
	if len(keys) == 1 {
		m[primary] = keys[0]
	}
	b, _ := json.Marshal(map[string]any{"primary": primary, "keys": m})
	return b
}

func TestParse(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 16))
	for _, tc := range []struct {
		name, in, wantErr string
	}{
		{"Valid", `{"primary":"k1","keys":{"k1":"` + key + `"}}`, ""},
		{"TwoKeys", `{"primary":"k2","keys":{"k1":"` + key + `","k2":"` + key + `"}}`, ""},
		{"NotJSON", `primary=k1`, "not valid JSON"},
		{"UnknownField", `{"primary":"k1","keys":{"k1":"` + key + `"},"extra":1}`, "not valid JSON"},
		{"NoKeys", `{"primary":"k1","keys":{}}`, "no keys"},
		{"NoPrimary", `{"keys":{"k1":"` + key + `"}}`, "no primary"},
		{"PrimaryMissing", `{"primary":"k2","keys":{"k1":"` + key + `"}}`, `primary key "k2" is not in keys`},
		{"BadBase64", `{"primary":"k1","keys":{"k1":"%%%"}}`, "not standard base64"},
		{"ShortKey", `{"primary":"k1","keys":{"k1":"` + short + `"}}`, "must be 32 bytes, got 16"},
		{"BadID", `{"primary":"k 1","keys":{"k 1":"` + key + `"}}`, "key id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := keyring.Parse([]byte(tc.in))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if _, err := k.Open(seal(t, k, "v", "ad"), []byte("ad")); err != nil {
					t.Fatalf("round trip: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Parse: got %v, want an error containing %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), short) {
				t.Fatalf("Parse error %q contains key material", err)
			}
		})
	}
}

func TestSaveLoad(t *testing.T) {
	k := generate(t)
	if _, err := k.Rotate(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keyring.json")
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	assertMode(t, path, 0o600)
	loaded, err := keyring.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Primary() != "k2" || strings.Join(loaded.IDs(), ",") != "k1,k2" {
		t.Fatalf("loaded: got %s, want primary k2 of k1,k2", loaded)
	}
	e := seal(t, k, "v", "ad")
	if got, err := loaded.Open(e, []byte("ad")); err != nil || string(got) != "v" {
		t.Fatalf("Open with the loaded keyring: got %q, %v", got, err)
	}
	if got, want := k.String(), "keyring(primary=k2, keys=k1,k2)"; got != want {
		t.Errorf("String: got %q, want %q (ids only, no keys)", got, want)
	}
}

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	k1, created, err := keyring.LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreate: created=%v, %v", created, err)
	}
	assertMode(t, path, 0o600)
	k2, created, err := keyring.LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("second LoadOrCreate: created=%v, %v", created, err)
	}
	if got, err := k2.Open(seal(t, k1, "v", "ad"), []byte("ad")); err != nil || string(got) != "v" {
		t.Fatalf("the second load is not the same keyring: %q, %v", got, err)
	}

	bad := filepath.Join(t.TempDir(), "keyring.json")
	if err := os.WriteFile(bad, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := keyring.LoadOrCreate(bad); err == nil {
		t.Fatal("LoadOrCreate of an invalid file: got no error")
	}
	if data, _ := os.ReadFile(bad); string(data) != "{}" {
		t.Fatal("LoadOrCreate overwrote an invalid keyring file")
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := keyring.Load(filepath.Join(t.TempDir(), "nope.json"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file: got %v, want os.ErrNotExist", err)
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Fatalf("mode of %s: got %v, want %v", path, got, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"primary":"k1","keys":{"k1":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := keyring.Parse(data)
		if err != nil {
			return
		}
		if _, err := k.Open(seal(t, k, "v", "ad"), []byte("ad")); err != nil {
			t.Fatalf("a parsed keyring does not round-trip: %v", err)
		}
	})
}

func TestMAC(t *testing.T) {
	k, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("CANARY-value-to-fingerprint")
	id, sum, err := k.MAC(data)
	if err != nil || id != k.Primary() || len(sum) != sha256.Size {
		t.Fatalf("MAC: %q, %x, %v; want the primary's id and 32 bytes", id, sum, err)
	}
	if plain := sha256.Sum256(data); bytes.Equal(sum, plain[:]) {
		t.Fatal("MAC is the plain SHA-256 of the data")
	}
	if ok, err := k.CheckMAC(id, data, sum); !ok || err != nil {
		t.Errorf("CheckMAC of the same data: %v, %v; want true", ok, err)
	}
	if ok, _ := k.CheckMAC(id, []byte("other"), sum); ok {
		t.Error("CheckMAC of other data: true")
	}
	if _, err := k.Rotate(); err != nil {
		t.Fatal(err)
	}
	if ok, err := k.CheckMAC(id, data, sum); !ok || err != nil {
		t.Errorf("CheckMAC after a rotation: %v, %v; want true (the old key stays)", ok, err)
	}
	if _, err := k.CheckMAC("k99", data, sum); err == nil {
		t.Error("CheckMAC under a key the keyring lacks: no error")
	}
	other, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := other.CheckMAC(id, data, sum); ok {
		t.Error("another keyring's CheckMAC: true")
	}
}
