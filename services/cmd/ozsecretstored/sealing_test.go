package main

import (
	"bytes"
	"crypto/hpke"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/lib/sealwire"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
)

func dialSealingKeys(t *testing.T, dir pki.Dir, addr string) secretsv1.SealingKeyServiceClient {
	t.Helper()
	tlsCfg, err := pki.ClientConfig(dir.For("gateway"), dir.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := server.Dial(addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return secretsv1.NewSealingKeyServiceClient(conn)
}

// sealTo seals value to the current key of kem in keys for the secret
// name of owner, as a client does.
func sealTo(t *testing.T, keys []*secretsv1.SealingKey, kem uint16, owner, name, value string) *secretsv1.SealedValue {
	t.Helper()
	for _, k := range keys {
		if k.GetCurrent() && k.GetKemId() == uint32(kem) {
			h, err := hpke.NewKEM(kem)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := h.NewPublicKey(k.GetPublicKey())
			if err != nil {
				t.Fatal(err)
			}
			ct, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), sealwire.SecretInfo(owner, name), []byte(value))
			if err != nil {
				t.Fatal(err)
			}
			return &secretsv1.SealedValue{KeyId: k.GetKeyId(), Ciphertext: ct}
		}
	}
	t.Fatalf("no current key of KEM 0x%04x in %v", kem, keys)
	return nil
}

// TestServeSealing runs the service with --require-sealed: it makes its
// sealing keys at first start and keeps them across restarts, opens values
// sealed to them, refuses plain ones, and rotates for a system admin only.
func TestServeSealing(t *testing.T) {
	data := t.TempDir()
	dir := pki.Dir(filepath.Join(data, "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	args := []string{"--dev", "--data-dir", data, "--resolver-addr", startResolver(t, dir), "--require-sealed", "--sealing-key-grace", "1h"}
	d := startDaemon(t, args, nil)
	keysClient := dialSealingKeys(t, dir, d.addr)
	c := dial(t, dir, d.addr)

	list, err := keysClient.ListSealingKeys(as("tok-bob"), &secretsv1.ListSealingKeysRequest{})
	if err != nil {
		t.Fatalf("ListSealingKeys: %v", err)
	}
	var kems []uint32
	for _, k := range list.GetKeys() {
		if !k.GetCurrent() || k.GetKdfId() != 1 || k.GetAeadId() != 2 || k.GetCreateTime() == nil || k.GetExpireTime() != nil {
			t.Errorf("key %v: want current, HKDF-SHA256, AES-256-GCM, a create time and no expire time", k)
		}
		kems = append(kems, k.GetKemId())
	}
	if len(kems) != 2 || kems[0] != 0x647a || kems[1] != 0x0020 {
		t.Fatalf("KEMs of the listed keys: got %#x, want [0x647a 0x20]", kems)
	}

	sealed := sealTo(t, list.GetKeys(), sealwire.KEMMLKEM768X25519, "teams/acme", "API_KEY", canary)
	if _, err := c.CreateSecret(as("tok-alice"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "API_KEY", SealedValue: sealed}); err != nil {
		t.Fatalf("CreateSecret sealed: %v", err)
	}
	_, err = c.CreateSecret(as("tok-alice"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "PLAIN", Value: []byte(canary)})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "value: ") || !strings.Contains(st.Message(), "oz secret seal") {
		t.Fatalf("CreateSecret plain with --require-sealed: got %v, want InvalidArgument naming value and oz secret seal", err)
	}
	if _, err := keysClient.RotateSealingKeys(as("tok-alice"), &secretsv1.RotateSealingKeysRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("RotateSealingKeys as a team admin: got %v, want PermissionDenied", err)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}

	// Restart: the same keys; a value sealed before still opens.
	d2 := startDaemon(t, args, nil)
	keysClient = dialSealingKeys(t, dir, d2.addr)
	c = dial(t, dir, d2.addr)
	again, err := keysClient.ListSealingKeys(as("tok-bob"), &secretsv1.ListSealingKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(again, list) {
		t.Fatalf("keys after restart: got %v, want %v", again, list)
	}
	update := sealTo(t, list.GetKeys(), sealwire.KEMX25519, "teams/acme", "API_KEY", canary+"-v2")
	rotated, err := keysClient.RotateSealingKeys(as("tok-root"), &secretsv1.RotateSealingKeysRequest{})
	if err != nil {
		t.Fatalf("RotateSealingKeys as a system admin: %v", err)
	}
	if n := len(rotated.GetKeys()); n != 4 || !rotated.GetKeys()[0].GetCurrent() || rotated.GetKeys()[3].GetCurrent() {
		t.Fatalf("keys after a rotation: got %v, want 2 current and 2 previous", rotated.GetKeys())
	}
	if _, err := c.UpdateSecret(as("tok-alice"), &secretsv1.UpdateSecretRequest{Name: "teams/acme/secrets/API_KEY", SealedValue: update}); err != nil {
		t.Fatalf("UpdateSecret sealed to the previous key, within the grace: %v", err)
	}
	if err := d2.stop(); err != nil {
		t.Fatal(err)
	}

	db := filepath.Join(data, "secretstore.db")
	if v := unseal(t, db, filepath.Join(data, "keyring.json"), "API_KEY"); v != canary+"-v2" {
		t.Fatalf("stored value: got %q, want the canary", v)
	}
	raw, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{raw, []byte(d.logs.String()), []byte(d2.logs.String())} {
		if bytes.Contains(b, []byte("CANARY")) {
			t.Fatal("the value is in the database file or the logs")
		}
	}
	if !strings.Contains(d2.logs.String(), `"msg":"sealing keys rotated"`) {
		t.Errorf("logs do not record the rotation: %s", d2.logs)
	}
}
