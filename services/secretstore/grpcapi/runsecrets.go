package grpcapi

import (
	"context"

	"google.golang.org/grpc"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/runrules/refwire"
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
// secretstore's side of run resolution. The resolver decides; this lists
// the candidates (secretstore.Service.RunCandidates) and seals exactly the
// secrets the resolver names (OpenRunSecrets, runseal), so the resolver
// never holds plaintext.
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

// ListRunSecrets implements internalapiv1.RunSecretsServiceServer: the
// metadata of every secret of the owners, or of those named when the
// request names some. It opens nothing.
func (s *RunSecretsServer) ListRunSecrets(ctx context.Context, req *internalapiv1.ListRunSecretsRequest) (*internalapiv1.ListRunSecretsResponse, error) {
	secs, err := s.svc.RunCandidatesNamed(ctx, req.GetOwners(), req.GetNames())
	if err != nil {
		return nil, err
	}
	// Each ref carries the secret's binding (refwire), which the resolver
	// passes back to SealRunSecrets.
	return &internalapiv1.ListRunSecretsResponse{Secrets: refwire.ToProto(secs)}, nil
}

// SealRunSecrets implements internalapiv1.RunSecretsServiceServer: it
// seals exactly the secrets named, each at the version named, as one
// RunEnvironment, with one HPKE encapsulation: host-bound secrets in its
// bound, the others in its vars. FailedPrecondition when one of them
// changed since it was listed, its binding to hosts included (the binding
// its SecretRef names, as ListRunSecrets gave it). The response never
// holds a value in clear. It writes no audit event: the resolver, which
// decided, records the resolution (run.resolve); a refused call is a
// request.denied (OnDenied).
func (s *RunSecretsServer) SealRunSecrets(ctx context.Context, req *internalapiv1.SealRunSecretsRequest) (*internalapiv1.SealRunSecretsResponse, error) {
	// The recipient and the info are checked here, the secrets by
	// OpenRunSecrets, all before anything is read.
	if req.GetSelection() != nil { //nolint:staticcheck // deprecated: read only to refuse it
		return nil, errs.Field("selection", "is no longer accepted: list the candidates with ListRunSecrets and name the secrets to seal")
	}
	if req.GetRecipient() == nil {
		return nil, errs.Field("recipient", "is required: the runner's HPKE public key the values are sealed to")
	}
	rcpt, err := runseal.ParseRecipient(req.GetRecipient().GetKemId(), req.GetRecipient().GetPublicKey())
	if err != nil {
		return nil, err
	}
	if err := runseal.CheckInfo(req.GetInfo()); err != nil {
		return nil, err
	}
	refs := refwire.FromProto(req.GetSecrets()) // bindings included
	var sealed *scopev1.SealedValues
	err = s.svc.OpenRunSecrets(ctx, refs, func(values []secretstore.Plaintext) error {
		vars := make([]runseal.Var, len(values))
		for i, v := range values {
			// Shares the plaintext's memory, which OpenRunSecrets zeroes
			// when this returns. The binding is the stored one:
			// OpenRunSecrets checked that it is the ref's.
			vars[i] = runseal.Var{Name: refs[i].Name, Value: v.Bytes(), Binding: refs[i].Binding}
		}
		var err error
		sealed, err = runseal.Seal(rcpt, req.GetInfo(), vars)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &internalapiv1.SealRunSecretsResponse{Sealed: sealed}, nil
}
