package secret

import (
	"context"
	"crypto/hpke"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/lib/sealwire"
)

// Values are sealed on this side (secrets.proto SealedValue): single-shot
// HPKE to one of the secretstore's sealing keys, with the suite and the
// info string sealwire.SecretInfo(owner, name) and no additional data, so
// that the plaintext never leaves the CLI and a sealed value opens only for
// the secret it was sealed for.
const (
	kemHybrid = uint32(sealwire.KEMMLKEM768X25519) // preferred, post-quantum
	kemX25519 = uint32(sealwire.KEMX25519)         // when there is no hybrid key
)

// sealer seals values of one owner's secrets to one sealing key.
type sealer struct {
	owner string // canonical: "teams/acme", "users/alice"
	keyID string
	pub   hpke.PublicKey
}

// newSealer finds the canonical owner of scope (asking who the caller is
// for a personal secret: sealed values name "users/{id}", never
// "users/me") and the sealing key to use.
func newSealer(ctx context.Context, conn *client.Conn, scope cmdutil.Scope, team string) (*sealer, error) {
	owner := "teams/" + team
	if scope == cmdutil.ScopePersonal {
		resp, err := conn.Directory.GetCaller(ctx, &scopev1.GetCallerRequest{})
		if err != nil {
			return nil, err
		}
		owner = resp.GetPrincipal().GetName()
		if !strings.HasPrefix(owner, "users/") || strings.Count(owner, "/") != 1 {
			return nil, status.Errorf(codes.PermissionDenied, "personal secrets belong to people; this token is %s's", owner)
		}
	}
	resp, err := conn.SealingKeys.ListSealingKeys(ctx, &secretsv1.ListSealingKeysRequest{})
	if status.Code(err) == codes.Unimplemented {
		return nil, status.Errorf(codes.Unimplemented, "the server publishes no sealing keys, and oz sends values sealed only (is the server older than this oz?): %s", status.Convert(err).Message())
	}
	if err != nil {
		return nil, err
	}
	key := pickKey(resp.GetKeys())
	if key == nil {
		return nil, fmt.Errorf("the server publishes no sealing key this oz can use (ML-KEM-768+X25519 or X25519, with HKDF-SHA256 and AES-256-GCM)")
	}
	kem, err := hpke.NewKEM(uint16(key.GetKemId()))
	if err != nil {
		return nil, fmt.Errorf("sealing key %s: %w", key.GetKeyId(), err)
	}
	pub, err := kem.NewPublicKey(key.GetPublicKey())
	if err != nil {
		return nil, fmt.Errorf("sealing key %s: not a valid public key: %w", key.GetKeyId(), err)
	}
	return &sealer{owner: owner, keyID: key.GetKeyId(), pub: pub}, nil
}

// pickKey returns the current hybrid key, else the current X25519 key,
// else nil.
func pickKey(keys []*secretsv1.SealingKey) *secretsv1.SealingKey {
	for _, kem := range []uint32{kemHybrid, kemX25519} {
		for _, k := range keys {
			if k.GetCurrent() && k.GetKemId() == kem && k.GetKdfId() == uint32(sealwire.KDFID) && k.GetAeadId() == uint32(sealwire.AEADID) {
				return k
			}
		}
	}
	return nil
}

// seal seals value for the secret name. The error never contains value.
func (s *sealer) seal(name string, value []byte) (*secretsv1.SealedValue, error) {
	ct, err := hpke.Seal(s.pub, sealwire.KDF(), sealwire.AEAD(), sealwire.SecretInfo(s.owner, name), value)
	if err != nil {
		return nil, fmt.Errorf("seal the value to key %s: %w", s.keyID, err)
	}
	return &secretsv1.SealedValue{KeyId: s.keyID, Ciphertext: ct}, nil
}
