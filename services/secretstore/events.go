package secretstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/secretstore/internal/auditevent"
)

// Audit events (DESIGN §6). Every change to a secret is an event, written
// by the Store into its outbox in the same transaction as the change (see
// Store); every refused request is a request.denied event, written alone
// (RecordDenied). A shipper (outbox.Shipper over Store.Outbox) delivers
// them to the audit service. Events name secrets and count versions; they
// never hold a value, nor anything derived from one (a hash, a length,
// whether it equals the previous value).
//
//	secret.create  value_version "1"; sealed "true" when the value arrived
//	               sealed by the client
//	secret.update  value_version (after the update); value_changed "true"
//	               when a value was written (a new value version, whether
//	               or not it equals the old one: values are never
//	               compared); sealed; description_changed "true" when the
//	               description was replaced by a different one
//	secret.delete  value_version (the last one)
//	secret.rewrap  value_version, kek_id (the key-encryption key the data
//	               key is wrapped with now): `ozsecretstored keyring rewrap`
//	request.denied method, code, reason; peer_service when unauthenticated
//
// Chains: a team secret's events are on its team's chain, which the
// team's admins read. A personal secret's events are on the system chain
// (read by system admins only), never on a team's: nobody learns another
// user's personal secrets, not even their names, from a team's log. The
// sealing keys' events (package sealing) are on the system chain too.
//
// Run resolution (SelectRun, OpenRun, UnsealValues) writes no event of its
// own: the resolver decides what a run receives and records it, with the
// value versions injected, as run.resolve, in the same write as the run
// record and before any value is returned.

// Emitter is the secretstore's name as an audit event emitter: the name of
// its certificate, with which the audit service identifies it.
const Emitter = auditevent.Emitter

// Actions the secretstore emits beside audit.ActionSecretCreate,
// audit.ActionSecretUpdate, audit.ActionSecretDelete and
// audit.ActionRequestDenied.
const (
	ActionSecretRewrap = "secret.rewrap"
)

// Detail keys the secretstore sets beside those of package audit.
const (
	DetailDescriptionChanged = "description_changed" // secret.update: "true"
	DetailSealed             = "sealed"              // secret.create, secret.update: "true" when the value arrived sealed
	DetailKEKID              = "kek_id"              // secret.rewrap: the key-encryption key now wrapping the data key
	DetailPeerService        = "peer_service"        // request.denied, unauthenticated: the service that relayed it
)

// maxReasonLength bounds the refusal message a request.denied records.
const maxReasonLength = 1024

// auditTeam returns the team whose audit chain records events about o's
// secrets: the team's id for a team, "" (the system chain) for a user.
func (o Owner) auditTeam() string {
	if o.Kind == OwnerTeam {
		return o.ID
	}
	return ""
}

// secretEvent is the event of a change to sec by p at now.
func secretEvent(ctx context.Context, p *auth.Principal, now time.Time, action string, sec *Secret, details map[string]string) *auditv1.Event {
	if details == nil {
		details = map[string]string{}
	}
	details[audit.DetailValueVersion] = strconv.FormatInt(sec.ValueVersion, 10)
	return auditevent.New(ctx, p, now, action, sec.ResourceName(), sec.Owner.auditTeam(), details)
}

// DeniedRequest is a request refused with PermissionDenied or
// Unauthenticated, for RecordDenied.
type DeniedRequest struct {
	Method string // the full gRPC method
	Code   string // "PERMISSION_DENIED" or "UNAUTHENTICATED"
	Reason string // the refusal's message, as the caller received it
	// Resource is what the request named: a secret
	// ("teams/acme/secrets/API_KEY", "users/me/secrets/X") or an owner
	// ("teams/acme"); "" when none. It is recorded only when well formed
	// (a secret's name, an owner), "users/me" as the caller.
	Resource string
}

// RecordDenied writes a request.denied event for r, alone (Store.Record).
// The caller is taken from ctx: auth.PrincipalFrom, else the calling
// service (auth.ServiceFrom), with auth.ClientFrom and the request id. An
// unauthenticated request has no known actor: the service that relayed it
// is recorded as DetailPeerService instead.
//
// The chain: a team's when the resource is the team's or one of its
// secrets and the team is known to exist — the caller is one of its
// members, or it has secrets here — so that a refused request cannot make
// the audit service start chains for names it made up; else the system
// chain. A request about personal secrets is on the system chain.
func (s *Service) RecordDenied(ctx context.Context, r DeniedRequest) error {
	p := auth.PrincipalFrom(ctx)
	owner, resource := deniedResource(p, r.Resource)
	team := ""
	if owner.Kind == OwnerTeam {
		switch known, err := s.teamKnown(ctx, p, owner); {
		case err != nil:
			return fmt.Errorf("record denied request: %w", err)
		case known:
			team = owner.ID
		}
	}
	details := map[string]string{
		audit.DetailMethod: auditevent.Clean(r.Method, audit.MaxNameLength),
		audit.DetailCode:   auditevent.Clean(r.Code, audit.MaxShortLength),
		audit.DetailReason: auditevent.Clean(r.Reason, maxReasonLength),
	}
	actor := auditevent.Actor(ctx, p)
	if p == nil && r.Code == "UNAUTHENTICATED" && actor.GetKind() == auditv1.ActorKind_ACTOR_KIND_SERVICE {
		// Who sent it is unknown; the service that relayed it (the
		// gateway) is not the actor.
		details[DetailPeerService] = actor.GetName()
		actor.Kind, actor.Name = auditv1.ActorKind_ACTOR_KIND_UNSPECIFIED, ""
	}
	ev := &auditv1.Event{
		Time:      timestamppb.New(s.now()),
		Actor:     actor,
		Action:    audit.ActionRequestDenied,
		Resource:  resource,
		Team:      team,
		Outcome:   auditv1.Outcome_OUTCOME_DENIED,
		RequestId: auditevent.RequestID(ctx),
		Details:   details,
	}
	if err := s.store.Record(ctx, ev); err != nil {
		return fmt.Errorf("record denied request: %w", err)
	}
	return nil
}

// deniedResource parses what a refused request named: a secret's name or
// an owner, with "users/me" as p. Anything else is not recorded.
func deniedResource(p *auth.Principal, name string) (Owner, string) {
	me := func(o Owner) (Owner, bool) {
		if o != User("me") {
			return o, true
		}
		if p == nil || p.ID == "" || !ownerIDRE.MatchString(p.ID) {
			return Owner{}, false
		}
		return User(p.ID), true
	}
	if strings.Count(name, "/") == 3 {
		if o, id, err := ParseName("name", name); err == nil {
			if o, ok := me(o); ok {
				return o, o.String() + "/secrets/" + id
			}
		}
		return Owner{}, ""
	}
	if o, err := ParseOwner(name); err == nil {
		if o, ok := me(o); ok {
			return o, o.String()
		}
	}
	return Owner{}, ""
}

// teamKnown reports whether team owner exists as far as the secretstore
// can tell: p is one of its members, or it has secrets.
func (s *Service) teamKnown(ctx context.Context, p *auth.Principal, owner Owner) (bool, error) {
	if p != nil && p.IsMember(owner.ID) {
		return true, nil
	}
	secs, err := s.store.List(ctx, owner, "", 1)
	if err != nil {
		return false, err
	}
	return len(secs) > 0, nil
}
