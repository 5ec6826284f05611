package grpcapi

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
)

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func teamProto(t directory.Team) *scopev1.Team {
	return &scopev1.Team{Name: t.Name(), TeamId: t.ID, CreateTime: timestamp(t.CreateTime)}
}

func userProto(u directory.User) *scopev1.User {
	return &scopev1.User{Name: u.Name(), UserId: u.ID, SystemAdmin: u.SystemAdmin, CreateTime: timestamp(u.CreateTime)}
}

func membershipProto(m directory.Membership) *scopev1.Membership {
	return &scopev1.Membership{
		Name:       m.Name(),
		Team:       resolver.TeamName(m.Team),
		User:       resolver.UserName(m.User),
		Role:       auth.RoleToProto(m.Role),
		CreateTime: timestamp(m.CreateTime),
	}
}

func tokenProto(t directory.Token) *scopev1.Token {
	return &scopev1.Token{
		Name:          t.Name(),
		TokenId:       t.ID,
		Principal:     t.Principal.Name,
		PrincipalKind: kindProto(t.Principal.Kind),
		Description:   t.Description,
		CreateTime:    timestamp(t.CreateTime),
		ExpireTime:    timestamp(t.ExpireTime),
		RevokeTime:    timestamp(t.RevokeTime),
		CreateBy:      t.CreateBy,
	}
}

func kindProto(k auth.Kind) scopev1.PrincipalKind {
	switch k {
	case auth.KindUser:
		return scopev1.PrincipalKind_PRINCIPAL_KIND_USER
	case auth.KindRunner:
		return scopev1.PrincipalKind_PRINCIPAL_KIND_RUNNER
	case auth.KindAgent:
		return scopev1.PrincipalKind_PRINCIPAL_KIND_AGENT
	case auth.KindIntegration:
		return scopev1.PrincipalKind_PRINCIPAL_KIND_INTEGRATION
	}
	return scopev1.PrincipalKind_PRINCIPAL_KIND_UNSPECIFIED
}

// principalProto is the inverse of auth.FromProto.
func principalProto(p *auth.Principal) *scopev1.Principal {
	out := &scopev1.Principal{
		Kind:            kindProto(p.Kind),
		Name:            p.Name,
		SystemAdmin:     p.SystemAdmin,
		TokenId:         p.TokenID,
		TokenExpireTime: timestamp(p.TokenExpire),
	}
	for _, team := range p.TeamIDs() {
		out.Teams = append(out.Teams, &scopev1.TeamRole{Team: team, Role: auth.RoleToProto(p.Teams[team])})
	}
	return out
}
