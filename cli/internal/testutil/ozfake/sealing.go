package ozfake

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
)

// SealingKeys is a SealingKeyService whose methods call the func fields; an
// unset field answers Unimplemented.
type SealingKeys struct {
	secretsv1.UnimplementedSealingKeyServiceServer

	ListSealingKeysFunc   func(context.Context, *secretsv1.ListSealingKeysRequest) (*secretsv1.ListSealingKeysResponse, error)
	RotateSealingKeysFunc func(context.Context, *secretsv1.RotateSealingKeysRequest) (*secretsv1.RotateSealingKeysResponse, error)
}

var _ secretsv1.SealingKeyServiceServer = (*SealingKeys)(nil)

func (f *SealingKeys) ListSealingKeys(ctx context.Context, r *secretsv1.ListSealingKeysRequest) (*secretsv1.ListSealingKeysResponse, error) {
	if f.ListSealingKeysFunc == nil {
		return nil, unimplemented("ListSealingKeys")
	}
	return f.ListSealingKeysFunc(ctx, r)
}

func (f *SealingKeys) RotateSealingKeys(ctx context.Context, r *secretsv1.RotateSealingKeysRequest) (*secretsv1.RotateSealingKeysResponse, error) {
	if f.RotateSealingKeysFunc == nil {
		return nil, unimplemented("RotateSealingKeys")
	}
	return f.RotateSealingKeysFunc(ctx, r)
}

// Sealer holds real sealing keys: the secretstore's own sealing.Service,
// over keys in memory. Its Fake serves them, and Open opens what a client
// sealed exactly as the secretstore does, so tests check the CLI's sealing
// against the server's code.
type Sealer struct {
	svc *sealing.Service
}

// NewSealer returns a Sealer with fresh keys, one current key per KEM.
func NewSealer(t testing.TB) *Sealer {
	t.Helper()
	kr, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s := &Sealer{svc: sealing.NewService(sealing.Config{Store: &sealing.MemStore{}, Keyring: kr, Grace: sealing.DefaultGrace})}
	if _, err := s.svc.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// Fake returns a SealingKeyService serving s's keys. RotateSealingKeys
// rotates them for any caller.
func (s *Sealer) Fake() *SealingKeys {
	return &SealingKeys{
		ListSealingKeysFunc: func(ctx context.Context, _ *secretsv1.ListSealingKeysRequest) (*secretsv1.ListSealingKeysResponse, error) {
			keys, err := s.svc.List(ctx)
			if err != nil {
				return nil, err
			}
			return &secretsv1.ListSealingKeysResponse{Keys: s.toProto(keys)}, nil
		},
		RotateSealingKeysFunc: func(ctx context.Context, _ *secretsv1.RotateSealingKeysRequest) (*secretsv1.RotateSealingKeysResponse, error) {
			keys, err := s.svc.Rotate(ctx, "ozfake")
			if err != nil {
				return nil, err
			}
			return &secretsv1.RotateSealingKeysResponse{Keys: s.toProto(keys)}, nil
		},
	}
}

// Keys returns the keys as ListSealingKeys does.
func (s *Sealer) Keys(t testing.TB) []*secretsv1.SealingKey {
	t.Helper()
	keys, err := s.svc.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.toProto(keys)
}

// Open opens sv as the secretstore does for the secret name of owner
// (canonical: "teams/acme", "users/alice"). The error is the one the
// secretstore would return.
func (s *Sealer) Open(sv *secretsv1.SealedValue, owner, name string) ([]byte, error) {
	return s.svc.Open(context.Background(), sv.GetKeyId(), sv.GetCiphertext(), sealing.Info(owner, name))
}

// MustOpen is Open failing the test on error.
func (s *Sealer) MustOpen(t testing.TB, sv *secretsv1.SealedValue, owner, name string) string {
	t.Helper()
	if sv == nil {
		t.Fatalf("no sealed value for %s/secrets/%s", owner, name)
	}
	v, err := s.Open(sv, owner, name)
	if err != nil {
		t.Fatalf("open the sealed value for %s/secrets/%s: %v", owner, name, err)
	}
	return string(v)
}

func (s *Sealer) toProto(keys []*sealing.Key) []*secretsv1.SealingKey {
	out := make([]*secretsv1.SealingKey, len(keys))
	for i, k := range keys {
		out[i] = &secretsv1.SealingKey{
			KeyId: k.ID, KemId: uint32(k.KEMID), KdfId: uint32(sealing.KDFID), AeadId: uint32(sealing.AEADID),
			PublicKey: k.PublicKey, CreateTime: timestamppb.New(k.CreateTime), Current: k.Current(),
			ExpireTime: ts(s.svc.ExpireTime(k)),
		}
	}
	return out
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
