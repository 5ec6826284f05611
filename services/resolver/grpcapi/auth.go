package grpcapi

import (
	"context"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/resolver/directory"
)

// AuthServer implements internalapiv1.AuthServiceServer.
type AuthServer struct {
	internalapiv1.UnimplementedAuthServiceServer
	Dir *directory.Directory
}

// Authenticate resolves a bearer token for another service. Every token
// that does not authenticate gets the same Unauthenticated answer.
func (s *AuthServer) Authenticate(ctx context.Context, req *internalapiv1.AuthenticateRequest) (*internalapiv1.AuthenticateResponse, error) {
	p, err := s.Dir.Authenticate(ctx, req.GetBearerToken())
	if err != nil {
		return nil, err
	}
	return &internalapiv1.AuthenticateResponse{Principal: principalProto(p)}, nil
}

// WatchRevocations streams revocation notices to another service's
// authentication cache (auth.FollowRevocations), for as long as it
// listens.
func (s *AuthServer) WatchRevocations(stream internalapiv1.AuthService_WatchRevocationsServer) error {
	return s.Dir.Notices().Serve(stream)
}
