// Package grpcapi serves oz.secrets.v1.SecretService over the
// secretstore.Service, oz.secrets.v1.SealingKeyService over the
// sealing.Service (sealingkeys.go), and the internal
// oz.internalapi.v1.RunSecretsService (runsecrets.go). It only translates:
// requests into the services' inputs (with the caller's principal from the
// context), records into secretsv1.Secret — a message with no field that
// could carry a value — and leaves errors as errs kinds for the server
// plumbing to turn into statuses. The writes of SecretService take the
// idempotency key their request carries (idempotency.FromContext) to the
// service, which answers a write sent again as the first time.
package grpcapi

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/hostbind"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/idempotency"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/secretstore"
)

// Rules are the access rules of SecretService and SealingKeyService: every
// method needs a bearer token; the services decide the rest (people only,
// team roles, owners, system admins). AuditWitnessService admits the audit
// service alone.
var Rules = auth.Rules{
	"/" + secretsv1.SecretService_ServiceDesc.ServiceName + "/":     {Access: auth.Token},
	"/" + secretsv1.SealingKeyService_ServiceDesc.ServiceName + "/": {Access: auth.Token},
	// The audit service asks for the outbox's audit witnesses.
	outbox.WitnessService: outbox.WitnessRule,
}

// Server implements secretsv1.SecretServiceServer.
type Server struct {
	secretsv1.UnimplementedSecretServiceServer
	svc *secretstore.Service
}

var _ secretsv1.SecretServiceServer = (*Server)(nil)

// New returns a Server over svc.
func New(svc *secretstore.Service) *Server { return &Server{svc: svc} }

// Register registers a Server over svc on r, and the internal
// AuditWitnessService of its store's outbox.
func Register(r grpc.ServiceRegistrar, svc *secretstore.Service) {
	secretsv1.RegisterSecretServiceServer(r, New(svc))
	outbox.RegisterWitnesses(r, svc.Outbox())
}

// CreateSecret implements secretsv1.SecretServiceServer.
func (s *Server) CreateSecret(ctx context.Context, req *secretsv1.CreateSecretRequest) (*secretsv1.CreateSecretResponse, error) {
	key, err := idempotency.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	sec, err := s.svc.Create(ctx, auth.PrincipalFrom(ctx), secretstore.CreateRequest{
		Parent:         req.GetParent(),
		SecretID:       req.GetSecretId(),
		Value:          req.GetValue(),
		Sealed:         sealedFromProto(req.GetSealedValue()),
		Description:    req.GetDescription(),
		Binding:        bindingFromProto(req.GetBinding()),
		IdempotencyKey: key,
	})
	if err != nil {
		return nil, err
	}
	return &secretsv1.CreateSecretResponse{Secret: ToProto(sec)}, nil
}

// GetSecret implements secretsv1.SecretServiceServer.
func (s *Server) GetSecret(ctx context.Context, req *secretsv1.GetSecretRequest) (*secretsv1.GetSecretResponse, error) {
	sec, err := s.svc.Get(ctx, auth.PrincipalFrom(ctx), req.GetName())
	if err != nil {
		return nil, err
	}
	return &secretsv1.GetSecretResponse{Secret: ToProto(sec)}, nil
}

// ListSecrets implements secretsv1.SecretServiceServer.
func (s *Server) ListSecrets(ctx context.Context, req *secretsv1.ListSecretsRequest) (*secretsv1.ListSecretsResponse, error) {
	page, err := s.svc.List(ctx, auth.PrincipalFrom(ctx), secretstore.ListRequest{
		Parent:    req.GetParent(),
		PageSize:  int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, err
	}
	return &secretsv1.ListSecretsResponse{Secrets: toProtos(page.Secrets), NextPageToken: page.NextPageToken}, nil
}

// UpdateSecret implements secretsv1.SecretServiceServer.
func (s *Server) UpdateSecret(ctx context.Context, req *secretsv1.UpdateSecretRequest) (*secretsv1.UpdateSecretResponse, error) {
	key, err := idempotency.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	sec, err := s.svc.Update(ctx, auth.PrincipalFrom(ctx), secretstore.UpdateRequest{
		Name:           req.GetName(),
		Value:          req.GetValue(),
		Sealed:         sealedFromProto(req.GetSealedValue()),
		Description:    req.GetDescription(),
		Binding:        bindingFromProto(req.GetBinding()),
		UpdateMask:     req.GetUpdateMask().GetPaths(),
		Etag:           req.GetEtag(),
		IdempotencyKey: key,
	})
	if err != nil {
		return nil, err
	}
	return &secretsv1.UpdateSecretResponse{Secret: ToProto(sec)}, nil
}

// DeleteSecret implements secretsv1.SecretServiceServer.
func (s *Server) DeleteSecret(ctx context.Context, req *secretsv1.DeleteSecretRequest) (*secretsv1.DeleteSecretResponse, error) {
	key, err := idempotency.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	err = s.svc.Delete(ctx, auth.PrincipalFrom(ctx), secretstore.DeleteRequest{Name: req.GetName(), Etag: req.GetEtag(), IdempotencyKey: key})
	if err != nil {
		return nil, err
	}
	return &secretsv1.DeleteSecretResponse{}, nil
}

// ListAvailableSecrets implements secretsv1.SecretServiceServer.
func (s *Server) ListAvailableSecrets(ctx context.Context, req *secretsv1.ListAvailableSecretsRequest) (*secretsv1.ListAvailableSecretsResponse, error) {
	page, err := s.svc.ListAvailable(ctx, auth.PrincipalFrom(ctx), secretstore.ListAvailableRequest{
		PageSize:  int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, err
	}
	return &secretsv1.ListAvailableSecretsResponse{Secrets: toProtos(page.Secrets), NextPageToken: page.NextPageToken}, nil
}

// sealedFromProto returns nil when sv is absent: present, even empty, it is
// a sealed value to check.
func sealedFromProto(sv *secretsv1.SealedValue) *secretstore.SealedValue {
	if sv == nil {
		return nil
	}
	return &secretstore.SealedValue{KeyID: sv.GetKeyId(), Ciphertext: sv.GetCiphertext()}
}

// bindingFromProto is a binding as the caller sent it, for the service to
// validate (secretstore.ValidateBinding): nil when absent or empty, which
// mean the same (not bound). Unlike hostbind.FromProto it keeps flags
// sent without hosts, which the service refuses rather than drops.
func bindingFromProto(b *secretsv1.HostBinding) *hostbind.Binding {
	if len(b.GetHosts()) == 0 && !b.GetAllowQuery() && !b.GetAllowBody() {
		return nil
	}
	return &hostbind.Binding{Hosts: b.GetHosts(), AllowQuery: b.GetAllowQuery(), AllowBody: b.GetAllowBody()}
}

// ToProto converts a secret's metadata for the wire. There is no value
// field to fill.
func ToProto(s *secretstore.Secret) *secretsv1.Secret {
	scope := secretsv1.Scope_SCOPE_UNSPECIFIED
	switch s.Owner.Kind {
	case secretstore.OwnerTeam:
		scope = secretsv1.Scope_SCOPE_TEAM
	case secretstore.OwnerUser:
		scope = secretsv1.Scope_SCOPE_PERSONAL
	}
	return &secretsv1.Secret{
		Name:            s.ResourceName(),
		SecretId:        s.Name,
		Scope:           scope,
		Owner:           s.Owner.String(),
		Description:     s.Description,
		ValueVersion:    s.ValueVersion,
		CreateTime:      timestamp(s.CreateTime),
		UpdateTime:      timestamp(s.UpdateTime),
		ValueUpdateTime: timestamp(s.ValueUpdateTime),
		CreateBy:        s.CreateBy,
		UpdateBy:        s.UpdateBy,
		Etag:            s.Etag,
		Binding:         s.Binding.Proto(),
	}
}

func toProtos(secs []*secretstore.Secret) []*secretsv1.Secret {
	out := make([]*secretsv1.Secret, len(secs))
	for i, s := range secs {
		out[i] = ToProto(s)
	}
	return out
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
