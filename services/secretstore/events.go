package secretstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ozsecrets/oz/lib/hostbind"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auditevent"
	"github.com/ozsecrets/oz/services/internal/auth"
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
//	               sealed by the client; the binding (below) when bound
//	secret.update  value_version (after the update); value_changed "true"
//	               when a value was written (a new value version, whether
//	               or not it equals the old one: values are never
//	               compared); sealed; description_changed "true" when the
//	               description was replaced by a different one;
//	               binding_changed "true" when the binding to hosts was
//	               replaced by a different one (bound, unbound or other
//	               hosts or flags); the binding after the update (below)
//	               when bound, absent when not
//	secret.delete  value_version (the last one)
//	secret.rewrap  value_version, kek_id (the key-encryption key the data
//	               key is wrapped with now): `ozsecretstored keyring rewrap`
//	request.denied method, code, reason; peer_service when unauthenticated
//
// A bound secret's binding (DESIGN §5.6) is metadata, recorded as is:
// bound_hosts, its host patterns joined by commas (a pattern holds none);
// allow_query "true" and allow_body "true" when it allows substitution
// there.
//
// Chains: a team secret's events are on its team's chain, which the
// team's admins read. A personal secret's events are on the system chain
// (read by system admins only), never on a team's: nobody learns another
// user's personal secrets, not even their names, from a team's log. The
// sealing keys' events (package sealing) are on the system chain too.
//
// Run resolution (OpenRunSecrets, UnsealValues) writes no event of its
// own: the resolver decides what a run receives and records it, with the
// value versions injected, as run.resolve, in the same write as the run
// record and before any value is returned.

// Emitter is the secretstore's name as an audit event emitter: the name of
// its certificate, with which the audit service identifies it.
const Emitter = auditevent.Secretstore

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
	DetailBoundHosts         = "bound_hosts"         // secret.create, secret.update: the host patterns of the binding, comma-separated; absent: not bound
	DetailAllowQuery         = "allow_query"         // secret.create, secret.update: "true" when the binding substitutes in the query string
	DetailAllowBody          = "allow_body"          // secret.create, secret.update: "true" when the binding substitutes in the body
	DetailBindingChanged     = "binding_changed"     // secret.update: "true" when the binding was replaced by a different one
)

// bindingDetails records b, a secret's binding (nil: not bound), in
// details. It is metadata: hosts and flags, nothing of the value.
func bindingDetails(details map[string]string, b *hostbind.Binding) {
	if b == nil {
		return
	}
	details[DetailBoundHosts] = strings.Join(b.Hosts, ",")
	if b.AllowQuery {
		details[DetailAllowQuery] = "true"
	}
	if b.AllowBody {
		details[DetailAllowBody] = "true"
	}
}

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
	return auditevent.New(ctx, Emitter, p, now, action, sec.ResourceName(), sec.Owner.auditTeam(), details)
}

// Now is the service's clock: the time of its events.
func (s *Service) Now() time.Time { return s.now() }

// RecordDenied completes ev, the request.denied event of a refused
// request (auditevent.OnDenied, the secretstore's server.Config.OnDenied
// through grpcapi.OnDenied), and writes it alone (Store.Record). resource
// is what the request named: a secret ("teams/acme/secrets/API_KEY",
// "users/me/secrets/X") or an owner ("teams/acme"); it is recorded only
// when well formed (a secret's name, an owner), "users/me" as the caller.
// The secretstore records no run id.
//
// The chain: a team's when the resource is the team's or one of its
// secrets and the team is known to exist — the caller is one of its
// members, or it has secrets here — so that a refused request cannot make
// the audit service start chains for names it made up; else the system
// chain. A request about personal secrets is on the system chain.
func (s *Service) RecordDenied(ctx context.Context, ev *auditv1.Event, resource, _ string) error {
	p := auth.PrincipalFrom(ctx)
	owner, resource := deniedResource(p, resource)
	team := ""
	if owner.Kind == OwnerTeam {
		switch known, err := s.teamKnown(ctx, p, owner); {
		case err != nil:
			return fmt.Errorf("record denied request: %w", err)
		case known:
			team = owner.ID
		}
	}
	ev.Resource, ev.Team = resource, team
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
