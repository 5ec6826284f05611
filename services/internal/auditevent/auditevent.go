// Package auditevent builds the audit events of the three services
// (DESIGN §6), the one way: who asked (the actor, from the request's
// principal, else the calling service, with the client), under which
// request id, cleaned so that the audit service accepts them. New builds
// the event of a change; OnDenied is the server.Config.OnDenied hook of
// every service, turning a refused request into a request.denied event
// that the service records where it keeps its events (Recorder). What
// each event records, and on which chain, is decided by the service.
// Events never hold a secret value, a bearer token or a token's hash.
package auditevent

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/server"
)

// Emitters: the services' names as audit event emitters, the names of
// their certificates, with which the audit service identifies them (their
// event ids start with the name and "-").
const (
	Resolver    = "resolver"
	Secretstore = "secretstore"
)

// New returns the event of a change made at now by p (the request's
// principal, taken from ctx when nil), OUTCOME_OK. A change made with no
// caller at all — at startup, by a command of the daemon — is the
// service's own: actor kind SERVICE, name emitter. details may be nil.
// The id is the outbox's to set.
func New(ctx context.Context, emitter string, p *auth.Principal, now time.Time, action, resource, team string, details map[string]string) *auditv1.Event {
	actor := Actor(ctx, p)
	if actor.GetName() == "" {
		actor.Kind, actor.Name = auditv1.ActorKind_ACTOR_KIND_SERVICE, emitter
	}
	return &auditv1.Event{
		Time:      timestamppb.New(now),
		Actor:     actor,
		Action:    action,
		Resource:  resource,
		Team:      team,
		Outcome:   auditv1.Outcome_OUTCOME_OK,
		RequestId: RequestID(ctx),
		Details:   details,
	}
}

// Actor is who made the request of ctx: p, else the principal of ctx,
// else the service that called (by its certificate), else nobody known
// (an empty name). The client is the one auth.RequestClient decided when
// the request came in: "runner" for a runner's token, "rest" from the
// gateway's REST, "cli" or "web" as claimed, else "grpc"; "" for a call
// made in process.
func Actor(ctx context.Context, p *auth.Principal) *auditv1.Actor {
	client := Clean(auth.ClientFrom(ctx), audit.MaxShortLength)
	if client == "" {
		if _, ok := metadata.FromIncomingContext(ctx); ok {
			client = "grpc"
		}
	}
	if p == nil {
		p = auth.PrincipalFrom(ctx)
	}
	a := &auditv1.Actor{Client: client}
	switch {
	case p != nil:
		a.Kind, a.Name = actorKind(p.Kind), Clean(p.Name, audit.MaxNameLength)
	case auth.ServiceFrom(ctx) != "":
		a.Kind, a.Name = auditv1.ActorKind_ACTOR_KIND_SERVICE, Clean(auth.ServiceFrom(ctx), audit.MaxNameLength)
	}
	return a
}

func actorKind(k auth.Kind) auditv1.ActorKind {
	switch k {
	case auth.KindUser:
		return auditv1.ActorKind_ACTOR_KIND_USER
	case auth.KindRunner:
		return auditv1.ActorKind_ACTOR_KIND_RUNNER
	case auth.KindAgent:
		return auditv1.ActorKind_ACTOR_KIND_AGENT
	case auth.KindIntegration:
		return auditv1.ActorKind_ACTOR_KIND_INTEGRATION
	}
	return auditv1.ActorKind_ACTOR_KIND_UNSPECIFIED
}

// RequestID is the request's id (server.RequestID: the client's when
// valid, else one generated for the request), cleaned so that an event can
// hold it.
func RequestID(ctx context.Context) string {
	return Clean(server.RequestID(ctx), audit.MaxShortLength)
}

// Clean returns s as an event's text field may hold it: valid UTF-8
// without control characters, at most max bytes. Headers come from
// clients, and an event the audit service would refuse must never be what
// stops a change (or the record of a refusal).
func Clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	for len(s) > max {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}
