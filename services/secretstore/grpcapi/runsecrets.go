package grpcapi

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/runseal"
)

// RunSecretsRules are the access rules of the internal RunSecretsService:
// only the resolver, by its mutual-TLS certificate; a request carrying a
// bearer token is refused.
var RunSecretsRules = auth.Rules{
	"/" + internalapiv1.RunSecretsService_ServiceDesc.ServiceName + "/": {Access: auth.Internal, Services: []string{"resolver"}},
}

// RunSecretsServer implements internalapiv1.RunSecretsServiceServer: the
// secretstore's side of run resolution. The resolver decides; this reads,
// selects mechanically (secretstore.Service.SelectRun/OpenRun) and seals
// (runseal), so the resolver never holds plaintext.
type RunSecretsServer struct {
	internalapiv1.UnimplementedRunSecretsServiceServer
	svc *secretstore.Service
}

var _ internalapiv1.RunSecretsServiceServer = (*RunSecretsServer)(nil)

// NewRunSecrets returns a RunSecretsServer over svc.
func NewRunSecrets(svc *secretstore.Service) *RunSecretsServer { return &RunSecretsServer{svc: svc} }

// RegisterRunSecrets registers a RunSecretsServer over svc on r. Serve it
// with RunSecretsRules.
func RegisterRunSecrets(r grpc.ServiceRegistrar, svc *secretstore.Service) {
	internalapiv1.RegisterRunSecretsServiceServer(r, NewRunSecrets(svc))
}

// SealRunSecrets implements internalapiv1.RunSecretsServiceServer. Without
// a recipient it returns metadata only and opens nothing. With one, it
// seals exactly the selected values, as one RunEnvironment, with one HPKE
// encapsulation. The response never holds a value in clear. It writes no
// audit event: the resolver, which decided, records the resolution
// (run.resolve); a refused call is a request.denied (OnDenied).
func (s *RunSecretsServer) SealRunSecrets(ctx context.Context, req *internalapiv1.SealRunSecretsRequest) (*internalapiv1.SealRunSecretsResponse, error) {
	// Everything is checked, in the order of the request's fields, before
	// anything is read.
	sel := selectionFromProto(req.GetSelection())
	if _, err := secretstore.ValidateRunSelection(sel); err != nil {
		return nil, err
	}
	if req.GetRecipient() == nil {
		if len(req.GetInfo()) > runseal.MaxInfoLen {
			return nil, errs.Field("info", "must be at most %d bytes (got %d)", runseal.MaxInfoLen, len(req.GetInfo()))
		}
		rs, err := s.svc.SelectRun(ctx, sel)
		if err != nil {
			return nil, err
		}
		return runSecretsResponse(rs, nil), nil
	}
	rcpt, err := runseal.ParseRecipient(req.GetRecipient().GetKemId(), req.GetRecipient().GetPublicKey())
	if err != nil {
		return nil, err
	}
	if err := runseal.CheckInfo(req.GetInfo()); err != nil {
		return nil, err
	}
	var sealed *scopev1.SealedValues
	rs, err := s.svc.OpenRun(ctx, sel, func(_ *secretstore.RunSecrets, values []secretstore.UnsealedValue) error {
		vars := make([]runseal.Var, len(values))
		for i, v := range values {
			// Shares the plaintext's memory, which OpenRun zeroes when
			// this returns.
			vars[i] = runseal.Var{Name: v.Name, Value: v.Value.Bytes()}
		}
		var err error
		sealed, err = runseal.Seal(rcpt, req.GetInfo(), vars)
		return err
	})
	if err != nil {
		return nil, err
	}
	return runSecretsResponse(rs, sealed), nil
}

func selectionFromProto(p *internalapiv1.Selection) runrules.Selection {
	sel := runrules.Selection{Owners: p.GetOwners()}
	for _, e := range p.GetExcluded() {
		sel.Excluded = append(sel.Excluded, runrules.Secret{Owner: e.GetOwner(), Name: e.GetName()})
	}
	if p.GetAllowlist() != nil { // present, maybe empty: nothing outside it
		sel.Allowlist = append([]string{}, p.GetAllowlist().GetNames()...)
	}
	return sel
}

func runSecretsResponse(rs *secretstore.RunSecrets, sealed *scopev1.SealedValues) *internalapiv1.SealRunSecretsResponse {
	return &internalapiv1.SealRunSecretsResponse{
		Candidates: secretRefs(rs.Candidates),
		Selected:   secretRefs(rs.Selected),
		Sealed:     sealed,
	}
}

func secretRefs(secs []runrules.Secret) []*internalapiv1.SecretRef {
	out := make([]*internalapiv1.SecretRef, len(secs))
	for i, s := range secs {
		out[i] = &internalapiv1.SecretRef{Owner: s.Owner, Name: s.Name, ValueVersion: s.Version, CreateTime: timestamppb.New(s.Created)}
	}
	return out
}
