package grpcapi_test

import (
	"bytes"
	"context"
	"crypto/hpke"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/ozsecrets/oz/lib/sealwire"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/secretstore"
)

func (e *testEnv) sealingKeys(t testing.TB) secretsv1.SealingKeyServiceClient {
	t.Helper()
	return secretsv1.NewSealingKeyServiceClient(e.dial(t, "gateway"))
}

func (e *testEnv) listKeys(t testing.TB) []*secretsv1.SealingKey {
	t.Helper()
	resp, err := e.sealingKeys(t).ListSealingKeys(as("member"), &secretsv1.ListSealingKeysRequest{})
	if err != nil {
		t.Fatalf("ListSealingKeys: %v", err)
	}
	return resp.GetKeys()
}

// currentKey returns the current key of kem in keys.
func currentKey(t testing.TB, keys []*secretsv1.SealingKey, kem uint16) *secretsv1.SealingKey {
	t.Helper()
	for _, k := range keys {
		if k.GetCurrent() && k.GetKemId() == uint32(kem) {
			return k
		}
	}
	t.Fatalf("no current key of KEM 0x%04x in %v", kem, keys)
	return nil
}

// sealWith seals value to key for the secret name of owner, as a client
// does: single-shot HPKE, info "oz-secret-v1|owner/secrets/name", no AAD.
func sealWith(t testing.TB, key *secretsv1.SealingKey, owner, name, value string) *secretsv1.SealedValue {
	t.Helper()
	kem, err := hpke.NewKEM(uint16(key.GetKemId()))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kem.NewPublicKey(key.GetPublicKey())
	if err != nil {
		t.Fatal(err)
	}
	ct, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte("oz-secret-v1|"+owner+"/secrets/"+name), []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return &secretsv1.SealedValue{KeyId: key.GetKeyId(), Ciphertext: ct}
}

// sealFor seals value to the current key of kem.
func (e *testEnv) sealFor(t testing.TB, kem uint16, owner, name, value string) *secretsv1.SealedValue {
	t.Helper()
	return sealWith(t, currentKey(t, e.listKeys(t), kem), owner, name, value)
}

// stored returns the stored value of one secret, through the internal path
// run resolution uses.
func (e *testEnv) stored(t testing.TB, owner secretstore.Owner, name string) (string, int64) {
	t.Helper()
	vals, missing, err := e.svc.UnsealValues(context.Background(), owner, []string{name})
	if err != nil || len(missing) > 0 || len(vals) != 1 {
		t.Fatalf("UnsealValues %s/%s: got %v, missing %v, %v", owner, name, vals, missing, err)
	}
	return string(vals[0].Value.Bytes()), vals[0].ValueVersion
}

var kems = []struct {
	name string
	id   uint16
}{{"MLKEM768X25519", sealwire.KEMMLKEM768X25519}, {"X25519", sealwire.KEMX25519}}

func TestListSealingKeys(t *testing.T) {
	e := newTestEnv(t)
	c := e.sealingKeys(t)
	var first *secretsv1.ListSealingKeysResponse
	for _, token := range []string{"admin", "member", "outsider", "sysadmin", "runner", "agent"} {
		resp, err := c.ListSealingKeys(as(token), &secretsv1.ListSealingKeysRequest{})
		if err != nil {
			t.Fatalf("as %s: %v", token, err)
		}
		if first == nil {
			first = resp
		} else if !proto.Equal(resp, first) {
			t.Errorf("as %s: got %v, want what everyone gets, %v", token, resp, first)
		}
	}
	for _, token := range []string{"", "no-such-token"} {
		if _, err := c.ListSealingKeys(as(token), &secretsv1.ListSealingKeysRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("token %q: got %v, want Unauthenticated", token, err)
		}
	}
	keys := first.GetKeys()
	if len(keys) != 2 {
		t.Fatalf("got %d keys, want 2: %v", len(keys), keys)
	}
	for i, want := range []struct {
		id  string
		kem uint32
	}{{"mlkem768x25519-1", 0x647a}, {"x25519-1", 0x0020}} {
		k := keys[i]
		if k.GetKeyId() != want.id || k.GetKemId() != want.kem || k.GetKdfId() != 1 || k.GetAeadId() != 2 || !k.GetCurrent() ||
			!k.GetCreateTime().AsTime().Equal(e.clock.Now()) || k.GetExpireTime() != nil {
			t.Errorf("keys[%d]: got %v, want %s, KEM 0x%04x, HKDF-SHA256, AES-256-GCM, current", i, k, want.id, want.kem)
		}
		kem, err := hpke.NewKEM(uint16(k.GetKemId()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kem.NewPublicKey(k.GetPublicKey()); err != nil {
			t.Errorf("keys[%d]: public key does not parse: %v", i, err)
		}
	}

	// The REST shape the browser reads (protojson, as the gateway writes).
	b, err := protojson.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"keyId", "kemId", "kdfId", "aeadId", "publicKey", "createTime", "current"} {
		if _, ok := doc.Keys[1][field]; !ok {
			t.Errorf("JSON key %s: missing in %s", field, b)
		}
	}
	if got := doc.Keys[1]["kemId"]; got != float64(32) {
		t.Errorf("JSON kemId of the X25519 key: got %v, want 32", got)
	}
}

func TestSealedCreateAndUpdate(t *testing.T) {
	for _, kem := range kems {
		for _, owner := range []struct {
			token, parent string
			owner         secretstore.Owner
		}{
			{"admin", "teams/acme", secretstore.Team("acme")},
			{"member", "users/me", secretstore.User("bob")},
			{"admin", "users/alice", secretstore.User("alice")},
		} {
			t.Run(kem.name+"/"+strings.ReplaceAll(owner.parent, "/", "_"), func(t *testing.T) {
				e := newTestEnv(t)
				c := e.client(t, "gateway")
				value := "multi\nline value for " + kem.name + " =="
				resp, err := c.CreateSecret(as(owner.token), &secretsv1.CreateSecretRequest{
					Parent: owner.parent, SecretId: "API_KEY", Description: "sealed",
					SealedValue: e.sealFor(t, kem.id, owner.owner.String(), "API_KEY", value),
				})
				if err != nil {
					t.Fatalf("CreateSecret: %v", err)
				}
				if got := resp.GetSecret(); got.GetName() != owner.owner.String()+"/secrets/API_KEY" || got.GetValueVersion() != 1 || got.GetDescription() != "sealed" {
					t.Errorf("CreateSecret: got %v", got)
				}
				if got, v := e.stored(t, owner.owner, "API_KEY"); got != value || v != 1 {
					t.Errorf("stored value: got %q version %d, want %q version 1", got, v, value)
				}

				for i, mask := range [][]string{nil, {"value"}, {"*"}} {
					next := fmt.Sprintf("rotated-%d", i)
					req := &secretsv1.UpdateSecretRequest{Name: owner.parent + "/secrets/API_KEY",
						SealedValue: e.sealFor(t, kem.id, owner.owner.String(), "API_KEY", next)}
					if mask != nil {
						req.UpdateMask = &fieldmaskpb.FieldMask{Paths: mask}
						req.Description = "sealed"
					}
					up, err := c.UpdateSecret(as(owner.token), req)
					if err != nil {
						t.Fatalf("UpdateSecret mask %v: %v", mask, err)
					}
					if got, v := e.stored(t, owner.owner, "API_KEY"); got != next || v != int64(i+2) || up.GetSecret().GetValueVersion() != v {
						t.Errorf("after update mask %v: got %q version %d (response %d), want %q version %d", mask, got, v, up.GetSecret().GetValueVersion(), next, i+2)
					}
				}
			})
		}
	}
}

// TestSealedValueRefused checks every way a sealed value can be wrong: each
// is InvalidArgument naming the field, carries none of the bytes sent, and
// changes nothing.
func TestSealedValueRefused(t *testing.T) {
	e := newTestEnv(t)
	c := e.client(t, "gateway")
	const canary = "CANARY-sealed-refused-77"
	mustCreate(t, c, "admin", "teams/acme", "B", "b-value")
	mustCreate(t, c, "outsider", "teams/beta", "A", "beta-value")

	keys := e.listKeys(t)
	hybrid, x25519 := currentKey(t, keys, sealwire.KEMMLKEM768X25519), currentKey(t, keys, sealwire.KEMX25519)
	forA := sealWith(t, hybrid, "teams/acme", "A", canary)
	forAX := sealWith(t, x25519, "teams/acme", "A", canary)
	tampered := proto.Clone(forA).(*secretsv1.SealedValue)
	tampered.Ciphertext[len(tampered.Ciphertext)-1] ^= 1
	truncated := &secretsv1.SealedValue{KeyId: forA.GetKeyId(), Ciphertext: forA.GetCiphertext()[:40]}
	swappedKey := &secretsv1.SealedValue{KeyId: x25519.GetKeyId(), Ciphertext: forA.GetCiphertext()}
	nul := sealWith(t, hybrid, "teams/acme", "A", canary+"\x00tail")
	big := sealWith(t, x25519, "teams/acme", "A", canary+strings.Repeat("x", 65537-len(canary)))
	empty := sealWith(t, hybrid, "teams/acme", "A", "")

	create := func(token, parent, id string, sv *secretsv1.SealedValue, value []byte) func() error {
		return func() error {
			_, err := c.CreateSecret(as(token), &secretsv1.CreateSecretRequest{Parent: parent, SecretId: id, SealedValue: sv, Value: value})
			return err
		}
	}
	update := func(token, name string, sv *secretsv1.SealedValue) func() error {
		return func() error {
			_, err := c.UpdateSecret(as(token), &secretsv1.UpdateSecretRequest{Name: name, SealedValue: sv})
			return err
		}
	}
	const (
		keyID = "sealed_value.key_id"
		ct    = "sealed_value.ciphertext"
	)
	for _, tc := range []struct {
		name  string
		call  func() error
		field string
		rule  string
	}{
		{"ReplayedIntoOtherName", create("admin", "teams/acme", "B2", forA, nil), ct, "does not open with key mlkem768x25519-1 for this secret"},
		{"ReplayedIntoOtherNameX25519", create("admin", "teams/acme", "B2", forAX, nil), ct, "does not open with key x25519-1"},
		{"ReplayedIntoUpdateOfOther", update("admin", "teams/acme/secrets/B", forA), ct, "does not open"},
		{"ReplayedIntoOtherTeam", create("outsider", "teams/beta", "A2", forA, nil), ct, "does not open"},
		{"ReplayedIntoOtherTeamSameName", update("outsider", "teams/beta/secrets/A", forA), ct, "does not open"},
		{"ReplayedIntoPersonal", create("admin", "users/me", "A", forA, nil), ct, "does not open"},
		{"OtherCase", create("admin", "teams/acme", "a", forA, nil), ct, "does not open"},
		{"SealedForUsersMe", create("admin", "users/me", "A", sealWith(t, hybrid, "users/me", "A", canary), nil), ct, `"oz-secret-v1|users/alice/secrets/A"`},
		{"Tampered", create("admin", "teams/acme", "A", tampered, nil), ct, "does not open"},
		{"Truncated", create("admin", "teams/acme", "A", truncated, nil), ct, "does not open"},
		{"OtherKeysID", create("admin", "teams/acme", "A", swappedKey, nil), ct, "does not open with key x25519-1"},
		{"EmptyCiphertext", create("admin", "teams/acme", "A", &secretsv1.SealedValue{KeyId: hybrid.GetKeyId()}, nil), ct, "is required"},
		{"TooLong", create("admin", "teams/acme", "A", &secretsv1.SealedValue{KeyId: hybrid.GetKeyId(), Ciphertext: bytes.Repeat([]byte(canary), 4200)}, nil), ct, "must be at most 66672 bytes"},
		{"UnknownKey", create("admin", "teams/acme", "A", &secretsv1.SealedValue{KeyId: "x25519-99", Ciphertext: forAX.GetCiphertext()}, nil), keyID, "unknown or expired sealing key x25519-99"},
		{"MalformedKeyID", create("admin", "teams/acme", "A", &secretsv1.SealedValue{KeyId: canary, Ciphertext: forA.GetCiphertext()}, nil), keyID, "is not a sealing key id"},
		{"NoKeyID", create("admin", "teams/acme", "A", &secretsv1.SealedValue{Ciphertext: forA.GetCiphertext()}, nil), keyID, "is required"},
		{"EmptySealedValue", create("admin", "teams/acme", "A", &secretsv1.SealedValue{}, nil), keyID, "is required"},
		{"BothValueAndSealed", create("admin", "teams/acme", "A", forA, []byte(canary)), "value", "must not be set together with sealed_value"},
		{"SealedNUL", create("admin", "teams/acme", "A", nul, nil), "sealed_value", "must not contain a NUL byte"},
		{"SealedOver64KiB", create("admin", "teams/acme", "A", big, nil), "sealed_value", "must be at most 65536 bytes"},
		{"SealedEmpty", create("admin", "teams/acme", "A", empty, nil), "sealed_value", "is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("code: got %v (%v), want InvalidArgument", st.Code(), err)
			}
			if got := fieldOf(err); got != tc.field {
				t.Errorf("BadRequest field: got %q, want %q", got, tc.field)
			}
			if !strings.HasPrefix(st.Message(), tc.field+": ") || !strings.Contains(st.Message(), tc.rule) {
				t.Errorf("message: got %q, want the field %s and %q", st.Message(), tc.field, tc.rule)
			}
			raw, _ := proto.Marshal(st.Proto())
			if bytes.Contains(raw, []byte("CANARY")) || bytes.Contains(raw, forA.GetCiphertext()[:32]) {
				t.Errorf("the status echoes what was sent: %v", st.Proto())
			}
		})
	}
	if got := listNames(t, c, "admin", "teams/acme"); !slices.Equal(got, []string{"B"}) {
		t.Errorf("acme's secrets after refused calls: got %v, want [B]", got)
	}
	if got, v := e.stored(t, secretstore.Team("acme"), "B"); got != "b-value" || v != 1 {
		t.Errorf("B after refused updates: got %q version %d", got, v)
	}
	if got, v := e.stored(t, secretstore.Team("beta"), "A"); got != "beta-value" || v != 1 {
		t.Errorf("beta's A after refused updates: got %q version %d", got, v)
	}
	// The blob opens where it was sealed for.
	if err := create("admin", "teams/acme", "A", forA, nil)(); err != nil {
		t.Fatalf("the blob, where it belongs: %v", err)
	}
	if got, _ := e.stored(t, secretstore.Team("acme"), "A"); got != canary {
		t.Fatalf("stored: got %q, want the canary", got)
	}
}

// TestSealedValueNeedsPermissionFirst checks that a caller who may not
// write the secret learns nothing about the blob: permission is decided
// before anything is opened.
func TestSealedValueNeedsPermissionFirst(t *testing.T) {
	e := newTestEnv(t)
	c := e.client(t, "gateway")
	for _, sv := range []*secretsv1.SealedValue{
		e.sealFor(t, sealwire.KEMX25519, "teams/acme", "A", "v"),
		{KeyId: "x25519-99", Ciphertext: []byte("junk")},
	} {
		_, err := c.CreateSecret(as("member"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "A", SealedValue: sv})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("as a member, key %s: got %v, want PermissionDenied", sv.GetKeyId(), err)
		}
	}
}

func TestRotateSealingKeys(t *testing.T) {
	e := newTestEnv(t)
	c, kc := e.client(t, "gateway"), e.sealingKeys(t)
	before := e.listKeys(t)
	old := sealWith(t, currentKey(t, before, sealwire.KEMMLKEM768X25519), "teams/acme", "API_KEY", "sealed-before")
	oldX := sealWith(t, currentKey(t, before, sealwire.KEMX25519), "teams/acme", "API_KEY", "sealed-before-x")

	for _, token := range []string{"admin", "member", "outsider", "runner", "agent"} {
		if _, err := kc.RotateSealingKeys(as(token), &secretsv1.RotateSealingKeysRequest{}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("RotateSealingKeys as %s: got %v, want PermissionDenied", token, err)
		}
	}
	if _, err := kc.RotateSealingKeys(as(""), &secretsv1.RotateSealingKeysRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("RotateSealingKeys without a token: got %v, want Unauthenticated", err)
	}
	if got := e.listKeys(t); !slices.EqualFunc(got, before, func(a, b *secretsv1.SealingKey) bool { return proto.Equal(a, b) }) {
		t.Fatalf("refused rotations changed the keys: got %v", got)
	}

	e.clock.Advance(time.Minute)
	rotatedAt := e.clock.Now()
	resp, err := kc.RotateSealingKeys(as("sysadmin"), &secretsv1.RotateSealingKeysRequest{})
	if err != nil {
		t.Fatalf("RotateSealingKeys as a system admin: %v", err)
	}
	var got []string
	for _, k := range resp.GetKeys() {
		state := "current"
		if !k.GetCurrent() {
			state = "until " + k.GetExpireTime().AsTime().Sub(rotatedAt).String()
		}
		got = append(got, k.GetKeyId()+" "+state)
	}
	want := []string{"mlkem768x25519-2 current", "x25519-2 current", "mlkem768x25519-1 until 1h0m0s", "x25519-1 until 1h0m0s"}
	if !slices.Equal(got, want) {
		t.Fatalf("keys after a rotation: got %v, want %v", got, want)
	}
	if list := e.listKeys(t); !slices.EqualFunc(list, resp.GetKeys(), func(a, b *secretsv1.SealingKey) bool { return proto.Equal(a, b) }) {
		t.Errorf("ListSealingKeys after a rotation: got %v, want what RotateSealingKeys returned", list)
	}

	// Within the grace, a value sealed to a previous key still opens.
	e.clock.Advance(sealingGrace - time.Second)
	if _, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "API_KEY", SealedValue: old}); err != nil {
		t.Fatalf("a value sealed just before the rotation: %v", err)
	}
	if v, _ := e.stored(t, secretstore.Team("acme"), "API_KEY"); v != "sealed-before" {
		t.Fatalf("stored: got %q", v)
	}
	// Once it has passed, the previous keys neither open nor are listed.
	e.clock.Advance(time.Second)
	_, err = c.UpdateSecret(as("admin"), &secretsv1.UpdateSecretRequest{Name: "teams/acme/secrets/API_KEY", SealedValue: oldX})
	if fieldOf(err) != "sealed_value.key_id" || !strings.Contains(status.Convert(err).Message(), "unknown or expired sealing key x25519-1") {
		t.Fatalf("a value sealed to a key past its grace: got %v, want sealed_value.key_id unknown or expired", err)
	}
	if list := e.listKeys(t); len(list) != 2 || list[0].GetKeyId() != "mlkem768x25519-2" || list[1].GetKeyId() != "x25519-2" {
		t.Fatalf("keys after the grace: got %v, want the two current ones", list)
	}
	// The next rotation drops them from storage; ids keep counting.
	if _, err := kc.RotateSealingKeys(as("sysadmin"), &secretsv1.RotateSealingKeysRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.seal.Open(context.Background(), "x25519-1", oldX.GetCiphertext(), nil); fieldOfErr(err) != "sealed_value.key_id" {
		t.Fatalf("Open with a dropped key: got %v", err)
	}
	if list := e.listKeys(t); len(list) != 4 || list[0].GetKeyId() != "mlkem768x25519-3" {
		t.Fatalf("keys after the second rotation: got %v", list)
	}
}

// fieldOfErr returns the field of an errs.Error, "" for other errors.
func fieldOfErr(err error) string {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

func TestRequireSealed(t *testing.T) {
	e := newTestEnvWith(t, func(c *secretstore.Config) { c.RequireSealed = true })
	c := e.client(t, "gateway")
	const canary = "CANARY-require-sealed-19"
	for _, tc := range []struct {
		name  string
		call  func() error
		field string
		rule  string
	}{
		{"CreatePlain", func() error {
			_, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "A", Value: []byte(canary)})
			return err
		}, "value", "accepts sealed values only: seal the value (`oz secret seal`"},
		{"CreateNothing", func() error {
			_, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "A"})
			return err
		}, "sealed_value", "is required"},
		{"UpdatePlain", func() error {
			_, err := c.UpdateSecret(as("admin"), &secretsv1.UpdateSecretRequest{Name: "teams/acme/secrets/B", Value: []byte(canary)})
			return err
		}, "value", "oz secret seal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument || fieldOf(err) != tc.field || !strings.Contains(st.Message(), tc.rule) {
				t.Fatalf("got %v (field %q), want InvalidArgument naming %s and %q", err, fieldOf(err), tc.field, tc.rule)
			}
			if strings.Contains(st.Message(), canary) {
				t.Errorf("the message echoes the value: %q", st.Message())
			}
		})
	}
	if _, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "A",
		SealedValue: e.sealFor(t, sealwire.KEMX25519, "teams/acme", "A", "sealed")}); err != nil {
		t.Fatalf("a sealed value with --require-sealed: %v", err)
	}
	if _, err := c.UpdateSecret(as("admin"), &secretsv1.UpdateSecretRequest{Name: "teams/acme/secrets/A", Description: "no value"}); err != nil {
		t.Fatalf("a description update with --require-sealed: %v", err)
	}
	if got, _ := e.stored(t, secretstore.Team("acme"), "A"); got != "sealed" {
		t.Fatalf("stored: got %q", got)
	}
}

// TestNoCanaryAnywhereSealed plants values through the sealed path, and
// refused sealed calls, and looks for them in every response, error, log
// line and the database file.
func TestNoCanaryAnywhereSealed(t *testing.T) {
	e := newTestEnv(t)
	c := e.client(t, "gateway")
	const canary = "CANARY-9d41e0-sealed-never-shown"
	var seen [][]byte
	record := func(m proto.Message, err error) {
		t.Helper()
		if err != nil {
			b, _ := proto.Marshal(status.Convert(err).Proto())
			seen = append(seen, b, []byte(err.Error()))
			return
		}
		b, _ := proto.Marshal(m)
		seen = append(seen, b, []byte(fmt.Sprint(m)))
	}
	for _, kem := range kems {
		for _, p := range []struct{ parent, owner string }{{"teams/acme", "teams/acme"}, {"users/me", "users/alice"}} {
			name := "PLANTED_" + kem.name
			r1, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{Parent: p.parent, SecretId: name,
				SealedValue: e.sealFor(t, kem.id, p.owner, name, canary)})
			record(r1, err)
			r2, err := c.UpdateSecret(as("admin"), &secretsv1.UpdateSecretRequest{Name: r1.GetSecret().GetName(),
				SealedValue: e.sealFor(t, kem.id, p.owner, name, canary+"-v2")})
			record(r2, err)
			r3, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{Parent: p.parent, SecretId: name + "_REPLAY",
				SealedValue: e.sealFor(t, kem.id, p.owner, name, canary)})
			record(r3, err)
			r4, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{Parent: p.parent, SecretId: name + "_NUL",
				SealedValue: e.sealFor(t, kem.id, p.owner, name+"_NUL", canary+"\x00")})
			record(r4, err)
		}
	}
	if got, _ := e.stored(t, secretstore.Team("acme"), "PLANTED_X25519"); got != canary+"-v2" {
		t.Fatalf("stored: got %q", got)
	}
	e.stop()
	raw, err := os.ReadFile(e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"sealed":true`) {
		t.Fatalf("no sealed-create logs captured: %s", logs)
	}
	seen = append(seen, raw, []byte(logs))
	for i, b := range seen {
		if bytes.Contains(b, []byte("CANARY-9d41e0")) {
			t.Errorf("recorded output %d contains the canary: %q", i, b)
		}
	}
}

// TestSealingKeyResponsesCarryPublicKeysOnly guards the API: the only
// bytes a SealingKeyService response holds are public keys.
func TestSealingKeyResponsesCarryPublicKeysOnly(t *testing.T) {
	sd := secretsv1.File_oz_secrets_v1_secrets_proto.Services().ByName("SealingKeyService")
	for i := range sd.Methods().Len() {
		var walk func(md protoreflect.MessageDescriptor)
		walk = func(md protoreflect.MessageDescriptor) {
			for j := range md.Fields().Len() {
				f := md.Fields().Get(j)
				if f.Kind() == protoreflect.BytesKind && f.FullName() != "oz.secrets.v1.SealingKey.public_key" {
					t.Errorf("%s could carry more than a public key", f.FullName())
				}
				if f.Message() != nil && f.Message().FullName() != md.FullName() {
					walk(f.Message())
				}
			}
		}
		walk(sd.Methods().Get(i).Output())
	}
}
