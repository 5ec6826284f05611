// Package auditevent builds the secretstore's audit events (DESIGN §6):
// who asked (the actor, from the request's context), through which client,
// under which request id, cleaned so that the audit service accepts them.
// The secretstore (secrets) and its sealing package (sealing keys) share
// it; what each event records is decided there.
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

// Emitter is the secretstore's name as an audit event emitter: the name of
// its certificate, with which the audit service identifies it (event ids
// start with "secretstore-").
const Emitter = "secretstore"

// New returns the event of a change made at now by p (the request's
// principal, taken from ctx when nil), OUTCOME_OK. A change made with no
// caller at all — at startup, by an ozsecretstored command — is the
// service's own: actor kind SERVICE, name Emitter. details may be nil.
func New(ctx context.Context, p *auth.Principal, now time.Time, action, resource, team string, details map[string]string) *auditv1.Event {
	actor := Actor(ctx, p)
	if actor.GetName() == "" {
		actor.Kind, actor.Name = auditv1.ActorKind_ACTOR_KIND_SERVICE, Emitter
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
// (an empty name). The client is the x-oz-client header's ("cli",
// "rest", "runner"), "grpc" for a gRPC request without one, "" for a call
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
	if p != nil {
		a := audit.ActorOf(p, client)
		a.Name = Clean(a.Name, audit.MaxNameLength)
		return a
	}
	if svc := auth.ServiceFrom(ctx); svc != "" {
		return &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_SERVICE, Name: Clean(svc, audit.MaxNameLength), Client: client}
	}
	return &auditv1.Actor{Client: client}
}

// RequestID is the request's id (x-request-id) as the client sent it,
// cleaned so that an event can hold it.
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
