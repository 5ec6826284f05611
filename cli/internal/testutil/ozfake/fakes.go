package ozfake

import (
	"context"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// Secrets is a SecretService whose methods call the func fields; an unset
// field answers Unimplemented.
type Secrets struct {
	secretsv1.UnimplementedSecretServiceServer

	CreateSecretFunc         func(context.Context, *secretsv1.CreateSecretRequest) (*secretsv1.CreateSecretResponse, error)
	GetSecretFunc            func(context.Context, *secretsv1.GetSecretRequest) (*secretsv1.GetSecretResponse, error)
	ListSecretsFunc          func(context.Context, *secretsv1.ListSecretsRequest) (*secretsv1.ListSecretsResponse, error)
	UpdateSecretFunc         func(context.Context, *secretsv1.UpdateSecretRequest) (*secretsv1.UpdateSecretResponse, error)
	DeleteSecretFunc         func(context.Context, *secretsv1.DeleteSecretRequest) (*secretsv1.DeleteSecretResponse, error)
	ListAvailableSecretsFunc func(context.Context, *secretsv1.ListAvailableSecretsRequest) (*secretsv1.ListAvailableSecretsResponse, error)
}

var _ secretsv1.SecretServiceServer = (*Secrets)(nil)

func (f *Secrets) CreateSecret(ctx context.Context, r *secretsv1.CreateSecretRequest) (*secretsv1.CreateSecretResponse, error) {
	if f.CreateSecretFunc == nil {
		return nil, unimplemented("CreateSecret")
	}
	return f.CreateSecretFunc(ctx, r)
}

func (f *Secrets) GetSecret(ctx context.Context, r *secretsv1.GetSecretRequest) (*secretsv1.GetSecretResponse, error) {
	if f.GetSecretFunc == nil {
		return nil, unimplemented("GetSecret")
	}
	return f.GetSecretFunc(ctx, r)
}

func (f *Secrets) ListSecrets(ctx context.Context, r *secretsv1.ListSecretsRequest) (*secretsv1.ListSecretsResponse, error) {
	if f.ListSecretsFunc == nil {
		return nil, unimplemented("ListSecrets")
	}
	return f.ListSecretsFunc(ctx, r)
}

func (f *Secrets) UpdateSecret(ctx context.Context, r *secretsv1.UpdateSecretRequest) (*secretsv1.UpdateSecretResponse, error) {
	if f.UpdateSecretFunc == nil {
		return nil, unimplemented("UpdateSecret")
	}
	return f.UpdateSecretFunc(ctx, r)
}

func (f *Secrets) DeleteSecret(ctx context.Context, r *secretsv1.DeleteSecretRequest) (*secretsv1.DeleteSecretResponse, error) {
	if f.DeleteSecretFunc == nil {
		return nil, unimplemented("DeleteSecret")
	}
	return f.DeleteSecretFunc(ctx, r)
}

func (f *Secrets) ListAvailableSecrets(ctx context.Context, r *secretsv1.ListAvailableSecretsRequest) (*secretsv1.ListAvailableSecretsResponse, error) {
	if f.ListAvailableSecretsFunc == nil {
		return nil, unimplemented("ListAvailableSecrets")
	}
	return f.ListAvailableSecretsFunc(ctx, r)
}

// Directory is a DirectoryService whose methods call the func fields.
type Directory struct {
	scopev1.UnimplementedDirectoryServiceServer

	CreateTeamFunc       func(context.Context, *scopev1.CreateTeamRequest) (*scopev1.CreateTeamResponse, error)
	CreateUserFunc       func(context.Context, *scopev1.CreateUserRequest) (*scopev1.CreateUserResponse, error)
	CreateMembershipFunc func(context.Context, *scopev1.CreateMembershipRequest) (*scopev1.CreateMembershipResponse, error)
	GetCallerFunc        func(context.Context, *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error)
}

var _ scopev1.DirectoryServiceServer = (*Directory)(nil)

func (f *Directory) CreateTeam(ctx context.Context, r *scopev1.CreateTeamRequest) (*scopev1.CreateTeamResponse, error) {
	if f.CreateTeamFunc == nil {
		return nil, unimplemented("CreateTeam")
	}
	return f.CreateTeamFunc(ctx, r)
}

func (f *Directory) CreateUser(ctx context.Context, r *scopev1.CreateUserRequest) (*scopev1.CreateUserResponse, error) {
	if f.CreateUserFunc == nil {
		return nil, unimplemented("CreateUser")
	}
	return f.CreateUserFunc(ctx, r)
}

func (f *Directory) CreateMembership(ctx context.Context, r *scopev1.CreateMembershipRequest) (*scopev1.CreateMembershipResponse, error) {
	if f.CreateMembershipFunc == nil {
		return nil, unimplemented("CreateMembership")
	}
	return f.CreateMembershipFunc(ctx, r)
}

func (f *Directory) GetCaller(ctx context.Context, r *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error) {
	if f.GetCallerFunc == nil {
		return nil, unimplemented("GetCaller")
	}
	return f.GetCallerFunc(ctx, r)
}

// Tokens is a TokenService whose methods call the func fields.
type Tokens struct {
	scopev1.UnimplementedTokenServiceServer

	CreateTokenFunc func(context.Context, *scopev1.CreateTokenRequest) (*scopev1.CreateTokenResponse, error)
	ListTokensFunc  func(context.Context, *scopev1.ListTokensRequest) (*scopev1.ListTokensResponse, error)
	RevokeTokenFunc func(context.Context, *scopev1.RevokeTokenRequest) (*scopev1.RevokeTokenResponse, error)
}

var _ scopev1.TokenServiceServer = (*Tokens)(nil)

func (f *Tokens) CreateToken(ctx context.Context, r *scopev1.CreateTokenRequest) (*scopev1.CreateTokenResponse, error) {
	if f.CreateTokenFunc == nil {
		return nil, unimplemented("CreateToken")
	}
	return f.CreateTokenFunc(ctx, r)
}

func (f *Tokens) ListTokens(ctx context.Context, r *scopev1.ListTokensRequest) (*scopev1.ListTokensResponse, error) {
	if f.ListTokensFunc == nil {
		return nil, unimplemented("ListTokens")
	}
	return f.ListTokensFunc(ctx, r)
}

func (f *Tokens) RevokeToken(ctx context.Context, r *scopev1.RevokeTokenRequest) (*scopev1.RevokeTokenResponse, error) {
	if f.RevokeTokenFunc == nil {
		return nil, unimplemented("RevokeToken")
	}
	return f.RevokeTokenFunc(ctx, r)
}

// Caller answers GetCaller with user users/{user} in teams (all as admin).
func Caller(user string, teams ...string) func(context.Context, *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error) {
	p := &scopev1.Principal{Kind: scopev1.PrincipalKind_PRINCIPAL_KIND_USER, Name: "users/" + user, TokenId: "tok1"}
	for _, t := range teams {
		p.Teams = append(p.Teams, &scopev1.TeamRole{Team: t, Role: scopev1.Role_ROLE_ADMIN})
	}
	return func(context.Context, *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error) {
		return &scopev1.GetCallerResponse{Principal: p}, nil
	}
}
