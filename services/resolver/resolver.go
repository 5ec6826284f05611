// Package resolver is the domain of the resolver service: the directory of
// teams, users, memberships and bearer tokens (DESIGN §3), and, next to it,
// run resolution (agent identities, environments, runners and ResolveRun,
// DESIGN §5), all kept in one kv.Store.
//
// The Directory applies the authorization rules of every operation to the
// principal carried by the context (auth.PrincipalFrom): permission is
// checked before existence, so a caller without access gets
// PermissionDenied whether or not the thing exists. Errors are errs kinds
// with messages safe to return to callers; none ever contains a token.
//
// Every change and every run resolution writes its audit event into the
// store's outbox (outbox.KV) in the same Apply as the change (events.go);
// refused requests are recorded by RecordDenied. The outbox is what a
// shipper delivers to the audit service.
//
// The store is any kv.Store (kv/boltkv, kv/etcdkv); grpcapi serves the
// domain over gRPC.
package resolver

import (
	"context"
	"time"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/outbox"
)

// Directory holds teams, users, memberships and tokens, and authenticates
// bearer tokens. It is safe for concurrent use.
type Directory struct {
	store  kv.Store
	now    func() time.Time
	outbox *outbox.KV
}

// NewDirectory returns a Directory keeping its records, and the audit
// events of its changes (see Outbox), in store. now is the clock (token
// expiry, creation times, event times); nil means time.Now.
func NewDirectory(store kv.Store, now func() time.Time) *Directory {
	if now == nil {
		now = time.Now
	}
	return &Directory{store: store, now: now, outbox: outbox.NewKV(store, Emitter)}
}

// Outbox returns the audit outbox the Directory (and the Runs over it)
// write their events into, for a shipper to deliver.
func (d *Directory) Outbox() *outbox.KV { return d.outbox }

var _ auth.Authenticator = (*Directory)(nil)

func (d *Directory) clock() time.Time { return d.now().UTC() }

// caller returns the authenticated principal of the request.
func caller(ctx context.Context) (*auth.Principal, error) {
	p := auth.PrincipalFrom(ctx)
	if p == nil {
		return nil, errs.E(errs.KindUnauthenticated, "not authenticated")
	}
	return p, nil
}

// person returns the caller if it is a person: only people change the
// directory or manage tokens, never runners or agent identities.
func person(ctx context.Context) (*auth.Principal, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if !p.IsHuman() {
		return nil, errs.E(errs.KindPermissionDenied, "only people may do this")
	}
	return p, nil
}

// requireSystemAdmin returns the caller if it is a system admin.
func requireSystemAdmin(ctx context.Context) (*auth.Principal, error) {
	p, err := person(ctx)
	if err != nil {
		return nil, err
	}
	if !p.SystemAdmin {
		return nil, errs.E(errs.KindPermissionDenied, "only system admins may do this")
	}
	return p, nil
}

func denied(format string, args ...any) error {
	return errs.E(errs.KindPermissionDenied, format, args...)
}
