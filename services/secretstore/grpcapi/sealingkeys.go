package grpcapi

import (
	"context"

	"google.golang.org/grpc"

	"github.com/ozsecrets/oz/lib/sealwire"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
)

// SealingKeysServer implements secretsv1.SealingKeyServiceServer: the
// public halves of the sealing keys, and their rotation. Serve it with
// Rules.
type SealingKeysServer struct {
	secretsv1.UnimplementedSealingKeyServiceServer
	svc *sealing.Service
}

var _ secretsv1.SealingKeyServiceServer = (*SealingKeysServer)(nil)

// NewSealingKeys returns a SealingKeysServer over svc.
func NewSealingKeys(svc *sealing.Service) *SealingKeysServer { return &SealingKeysServer{svc: svc} }

// RegisterSealingKeys registers a SealingKeysServer over svc on r.
func RegisterSealingKeys(r grpc.ServiceRegistrar, svc *sealing.Service) {
	secretsv1.RegisterSealingKeyServiceServer(r, NewSealingKeys(svc))
}

// ListSealingKeys implements secretsv1.SealingKeyServiceServer.
func (s *SealingKeysServer) ListSealingKeys(ctx context.Context, _ *secretsv1.ListSealingKeysRequest) (*secretsv1.ListSealingKeysResponse, error) {
	// Public keys: any caller the interceptor let in (Rules: a token).
	keys, err := s.svc.List(ctx)
	if err != nil {
		return nil, err
	}
	return &secretsv1.ListSealingKeysResponse{Keys: s.sealingKeys(keys)}, nil
}

// RotateSealingKeys implements secretsv1.SealingKeyServiceServer.
func (s *SealingKeysServer) RotateSealingKeys(ctx context.Context, _ *secretsv1.RotateSealingKeysRequest) (*secretsv1.RotateSealingKeysResponse, error) {
	p := auth.PrincipalFrom(ctx)
	if err := sealing.CheckRotate(p); err != nil {
		return nil, err
	}
	keys, err := s.svc.Rotate(ctx, p.Name)
	if err != nil {
		return nil, err
	}
	return &secretsv1.RotateSealingKeysResponse{Keys: s.sealingKeys(keys)}, nil
}

// sealingKeys converts public keys for the wire; a Key's private half is
// never copied.
func (s *SealingKeysServer) sealingKeys(keys []*sealing.Key) []*secretsv1.SealingKey {
	out := make([]*secretsv1.SealingKey, len(keys))
	for i, k := range keys {
		out[i] = &secretsv1.SealingKey{
			KeyId:      k.ID,
			KemId:      uint32(k.KEMID),
			KdfId:      uint32(sealwire.KDFID),
			AeadId:     uint32(sealwire.AEADID),
			PublicKey:  k.PublicKey,
			CreateTime: timestamp(k.CreateTime),
			Current:    k.Current(),
			ExpireTime: timestamp(s.svc.ExpireTime(k)),
		}
	}
	return out
}
