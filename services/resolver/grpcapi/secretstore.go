package grpcapi

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/internal/runrules/refwire"
	"github.com/ozsecrets/oz/services/resolver/runs"
)

// NewSecretStore returns the secretstore's internal RunSecretsService on cc
// (a connection authenticated by the resolver's certificate) as the
// runs.SecretStore run resolution uses.
func NewSecretStore(cc grpc.ClientConnInterface) runs.SecretStore {
	return secretStore{client{internalapiv1.NewRunSecretsServiceClient(cc)}}
}

// SecretStoreOf is the secretstore's RunSecretsService server, called in
// process (tests, benchmarks), as a runs.SecretStore.
func SecretStoreOf(srv internalapiv1.RunSecretsServiceServer) runs.SecretStore {
	return secretStore{srv}
}

// runSecrets is the RunSecretsService as its server implements it.
type runSecrets interface {
	ListRunSecrets(context.Context, *internalapiv1.ListRunSecretsRequest) (*internalapiv1.ListRunSecretsResponse, error)
	SealRunSecrets(context.Context, *internalapiv1.SealRunSecretsRequest) (*internalapiv1.SealRunSecretsResponse, error)
}

type client struct {
	c internalapiv1.RunSecretsServiceClient
}

func (c client) ListRunSecrets(ctx context.Context, req *internalapiv1.ListRunSecretsRequest) (*internalapiv1.ListRunSecretsResponse, error) {
	return c.c.ListRunSecrets(ctx, req)
}

func (c client) SealRunSecrets(ctx context.Context, req *internalapiv1.SealRunSecretsRequest) (*internalapiv1.SealRunSecretsResponse, error) {
	return c.c.SealRunSecrets(ctx, req)
}

// secretStore converts between runs.SecretStore and the wire.
type secretStore struct{ rs runSecrets }

var _ runs.SecretStore = secretStore{}

func (s secretStore) Candidates(ctx context.Context, owners, names []string) ([]runrules.Secret, error) {
	if names != nil && len(names) == 0 {
		return nil, nil // an empty allowlist: nothing is a candidate
	}
	resp, err := s.rs.ListRunSecrets(ctx, &internalapiv1.ListRunSecretsRequest{Owners: owners, Names: names})
	if err != nil {
		return nil, fromSecretStore(err)
	}
	return refwire.FromProto(resp.GetSecrets()), nil
}

func (s secretStore) Seal(ctx context.Context, secrets []runrules.Secret, to runs.Recipient, info []byte) (runs.Sealed, error) {
	resp, err := s.rs.SealRunSecrets(ctx, &internalapiv1.SealRunSecretsRequest{
		Secrets:   refwire.ToProto(secrets),
		Recipient: &scopev1.RecipientKey{KemId: to.KEMID, PublicKey: to.PublicKey},
		Info:      info,
	})
	if err != nil {
		return runs.Sealed{}, fromSecretStore(err)
	}
	sv := resp.GetSealed()
	if sv == nil {
		return runs.Sealed{}, errors.New("seal run secrets: the secret store sealed nothing")
	}
	return runs.Sealed{
		KEMID: uint16(sv.GetKemId()), KDFID: uint16(sv.GetKdfId()), AEADID: uint16(sv.GetAeadId()),
		Info: sv.GetInfo(), Ciphertext: sv.GetCiphertext(),
	}, nil
}

// fromSecretStore turns an error of the RunSecretsService into the
// domain's: FailedPrecondition (a secret changed since it was listed) is
// runs.ErrSecretsChanged; a status keeps its kind and, for
// InvalidArgument, its field (from its BadRequest detail).
func fromSecretStore(err error) error {
	if errs.Code(err) == codes.FailedPrecondition {
		return fmt.Errorf("%w: %v", runs.ErrSecretsChanged, err)
	}
	var e *errs.Error
	if errors.As(err, &e) { // in process
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			v := br.GetFieldViolations()[0]
			return errs.Field(v.GetField(), "%s", v.GetDescription())
		}
	}
	return errs.FromStatus(err)
}
