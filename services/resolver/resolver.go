// Package resolver is what the resolver service's two domains share: the
// Store (its records in one kv.Store, its clock and its audit outbox), the
// keys of every record and the records both domains read, ids and resource
// names, pages, secret-name lists and etags, and the audit events of
// changes and refused requests. The domains stand on it:
//
//   - directory: teams, users, memberships, bearer tokens
//     (Authenticate), runners and integrations (DESIGN §3);
//   - runs: agent identities, environments, start tickets, run
//     resolution, run records and their lifecycle (DESIGN §5);
//
// and grpcapi serves both over gRPC. See docs/ARCHITECTURE.md.
//
// Errors are errs kinds with messages safe to return to callers; none ever
// contains a token.
package resolver

import (
	"context"
	"time"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/idempotency"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/outbox"
)

// Store is the resolver's records in a kv.Store, with the clock and the
// audit outbox of every change (outbox.KV, in the same store). It is safe
// for concurrent use.
type Store struct {
	kv     kv.Store
	now    func() time.Time
	outbox *outbox.KV
	idem   *idempotency.Records
}

// NewStore returns the resolver's records in s. now is the clock (token
// expiry, creation times, event times); nil means time.Now.
func NewStore(s kv.Store, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{kv: s, now: now, outbox: outbox.NewKV(s, Emitter), idem: idempotency.NewRecords(s)}
}

// KV is the kv.Store the records are kept in.
func (s *Store) KV() kv.Store { return s.kv }

// Now is the clock's time, in UTC.
func (s *Store) Now() time.Time { return s.now().UTC() }

// Outbox returns the audit outbox every change writes its events into
// (Apply), for a shipper to deliver.
func (s *Store) Outbox() *outbox.KV { return s.outbox }

// Idempotency returns where the answers of writes sent with an
// idempotency key are remembered (grpcapi: idempotency.Handle); Apply
// commits their records.
func (s *Store) Idempotency() *idempotency.Records { return s.idem }

// Authorization helpers. Every operation applies its rules to the
// principal carried by the context (auth.PrincipalFrom), checking
// permission before existence: a caller without access gets
// PermissionDenied whether or not the thing exists.

// Caller returns the authenticated principal of the request.
func Caller(ctx context.Context) (*auth.Principal, error) {
	p := auth.PrincipalFrom(ctx)
	if p == nil {
		return nil, errs.E(errs.KindUnauthenticated, "not authenticated")
	}
	return p, nil
}

// Person returns the caller if it is a person: only people change the
// directory or manage tokens, identities and environments, never runners
// or agent identities.
func Person(ctx context.Context) (*auth.Principal, error) {
	p, err := Caller(ctx)
	if err != nil {
		return nil, err
	}
	if !p.IsHuman() {
		return nil, errs.E(errs.KindPermissionDenied, "only people may do this")
	}
	return p, nil
}

// RequireSystemAdmin returns the caller if it is a system admin.
func RequireSystemAdmin(ctx context.Context) (*auth.Principal, error) {
	p, err := Person(ctx)
	if err != nil {
		return nil, err
	}
	if !p.SystemAdmin {
		return nil, errs.E(errs.KindPermissionDenied, "only system admins may do this")
	}
	return p, nil
}

// MayReadTeam checks that the caller is a person who may read what team
// holds (its identities, environments, integrations): a member of the
// team or a system admin. Runners and agent identities are listed as
// members of their teams but are not people.
func MayReadTeam(ctx context.Context, team, what string) error {
	p, err := Person(ctx)
	if err != nil {
		return err
	}
	if !p.SystemAdmin && !p.IsMember(team) {
		return Denied("only members of team %q may see its %s", team, what)
	}
	return nil
}

// MayAdminTeam checks that the caller is a person who may change what team
// holds: an admin of the team or a system admin.
func MayAdminTeam(ctx context.Context, team, what string) error {
	p, err := Person(ctx)
	if err != nil {
		return err
	}
	if !p.SystemAdmin && !p.IsAdmin(team) {
		return Denied("only admins of team %q may manage its %s", team, what)
	}
	return nil
}

// Denied is a PermissionDenied error with a message for the caller.
func Denied(format string, args ...any) error {
	return errs.E(errs.KindPermissionDenied, format, args...)
}
