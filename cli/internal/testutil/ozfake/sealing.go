package ozfake

import (
	"context"
	"crypto/hpke"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/sealwire"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// Sealer holds real HPKE key pairs in memory, as the secretstore's sealing
// keys are: one current key per KEM (hybrid first), ids
// "<kem>-<generation>", the previous keys opening values for a day after a
// rotation. Its Fake serves them, and Open opens what a client sealed with
// the suite and info of package sealwire, which the secretstore opens with
// too: tests check the CLI's sealing against the wire's one definition.
type Sealer struct {
	mu   sync.Mutex
	gens []*generation // newest first
}

// generation is the keys one rotation made.
type generation struct {
	n       int
	created time.Time
	retired time.Time // zero while current
	keys    []sealerKey
}

type sealerKey struct {
	kem  uint16
	priv hpke.PrivateKey
}

// sealerGrace is how long a replaced key still opens values (the
// secretstore's default).
const sealerGrace = 24 * time.Hour

// NewSealer returns a Sealer with fresh keys, one current key per KEM.
func NewSealer(t testing.TB) *Sealer {
	t.Helper()
	s := &Sealer{}
	if err := s.rotate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// rotate makes a new current key per KEM and retires the previous ones.
func (s *Sealer) rotate() error {
	now := time.Now().UTC()
	g := &generation{n: 1, created: now}
	for _, id := range []uint16{sealwire.KEMMLKEM768X25519, sealwire.KEMX25519} {
		kem, err := hpke.NewKEM(id)
		if err != nil {
			return err
		}
		priv, err := kem.GenerateKey()
		if err != nil {
			return err
		}
		g.keys = append(g.keys, sealerKey{kem: id, priv: priv})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.gens) > 0 {
		s.gens[0].retired = now
		g.n = s.gens[0].n + 1
	}
	s.gens = append([]*generation{g}, s.gens...)
	return nil
}

// Fake returns a SealingKeyService serving s's keys. RotateSealingKeys
// rotates them for any caller.
func (s *Sealer) Fake() *SealingKeys {
	return &SealingKeys{
		ListSealingKeysFunc: func(context.Context, *secretsv1.ListSealingKeysRequest) (*secretsv1.ListSealingKeysResponse, error) {
			return &secretsv1.ListSealingKeysResponse{Keys: s.list()}, nil
		},
		RotateSealingKeysFunc: func(context.Context, *secretsv1.RotateSealingKeysRequest) (*secretsv1.RotateSealingKeysResponse, error) {
			if err := s.rotate(); err != nil {
				return nil, err
			}
			return &secretsv1.RotateSealingKeysResponse{Keys: s.list()}, nil
		},
	}
}

// Keys returns the keys as ListSealingKeys does.
func (s *Sealer) Keys(t testing.TB) []*secretsv1.SealingKey {
	t.Helper()
	return s.list()
}

// Open opens sv for the secret name of owner (canonical: "teams/acme",
// "users/alice"), as the secretstore does: with the key sv names, if it is
// current or in its grace, and the info sealwire.SecretInfo(owner, name).
func (s *Sealer) Open(sv *secretsv1.SealedValue, owner, name string) ([]byte, error) {
	priv, ok := s.key(sv.GetKeyId(), time.Now())
	if !ok {
		return nil, fmt.Errorf("unknown or expired sealing key %q", sv.GetKeyId())
	}
	v, err := hpke.Open(priv, sealwire.KDF(), sealwire.AEAD(), sealwire.SecretInfo(owner, name), sv.GetCiphertext())
	if err != nil {
		return nil, fmt.Errorf("does not open with key %s for %s/secrets/%s", sv.GetKeyId(), owner, name)
	}
	return v, nil
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

func keyID(kem uint16, gen int) string {
	name := "x25519"
	if kem == sealwire.KEMMLKEM768X25519 {
		name = "mlkem768x25519"
	}
	return fmt.Sprintf("%s-%d", name, gen)
}

// key returns the private key of id when it opens values at now.
func (s *Sealer) key(id string, now time.Time) (hpke.PrivateKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.gens {
		if !g.retired.IsZero() && !now.Before(g.retired.Add(sealerGrace)) {
			continue
		}
		for _, k := range g.keys {
			if keyID(k.kem, g.n) == id {
				return k.priv, true
			}
		}
	}
	return nil, false
}

// list returns the usable keys as the secretstore lists them: the current
// ones, then the previous ones in their grace, newest first.
func (s *Sealer) list() []*secretsv1.SealingKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var out []*secretsv1.SealingKey
	for _, g := range s.gens {
		var expire time.Time
		if !g.retired.IsZero() {
			if expire = g.retired.Add(sealerGrace); !now.Before(expire) {
				continue
			}
		}
		for _, k := range g.keys {
			out = append(out, &secretsv1.SealingKey{
				KeyId: keyID(k.kem, g.n), KemId: uint32(k.kem), KdfId: uint32(sealwire.KDFID), AeadId: uint32(sealwire.AEADID),
				PublicKey: k.priv.PublicKey().Bytes(), CreateTime: timestamppb.New(g.created), Current: g.retired.IsZero(),
				ExpireTime: ts(expire),
			})
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
