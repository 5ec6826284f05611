// Package secretstore is the domain of the secret store (DESIGN §4): the
// Secret record, its owner, the validation and authorization rules, and the
// Service that applies them over a Store.
//
// Values are write-only. They are sealed (keyring) before they reach a
// Store, and no read path of the Service returns them; the ways back to
// plaintext are OpenRunSecrets and UnsealValues, for run resolution only.
//
// Every change is an audit event that the Store commits with the change,
// into its outbox, and every refused request a request.denied event
// (events.go); neither ever holds a value.
//
// Adapters live beside it: kvstore (the Store, and sealing.Store, on
// kv.Store: a bbolt file or an etcd namespace), grpcapi (the
// oz.secrets.v1.SecretService server and the internal
// oz.internalapi.v1.RunSecretsService server), storetest (the Store
// conformance suite), keyring (envelope encryption), runseal (HPKE sealing
// of a run's values to the runner's key), sealing (the HPKE keys clients
// seal values to before sending them, and opening what they sealed).
// docs/ARCHITECTURE.md follows a secret's create through them.
package secretstore

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ozsecrets/oz/lib/hostbind"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/idempotency"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
)

// OwnerKind says whether a secret belongs to a team or to one user.
type OwnerKind uint8

const (
	OwnerTeam OwnerKind = iota + 1
	OwnerUser
)

// Owner is who a secret belongs to: a team ("teams/acme") or a user
// ("users/alice"). The zero Owner is no owner.
type Owner struct {
	Kind OwnerKind
	ID   string
}

// Team returns the owner "teams/{id}".
func Team(id string) Owner { return Owner{Kind: OwnerTeam, ID: id} }

// User returns the owner "users/{id}".
func User(id string) Owner { return Owner{Kind: OwnerUser, ID: id} }

// IsZero reports whether o is the zero Owner.
func (o Owner) IsZero() bool { return o == Owner{} }

// String returns the owner's resource name: "teams/acme", "users/alice".
func (o Owner) String() string {
	switch o.Kind {
	case OwnerTeam:
		return "teams/" + o.ID
	case OwnerUser:
		return "users/" + o.ID
	}
	return ""
}

// ownerIDRE is the shape of team and user ids (oz.scope.v1).
var ownerIDRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// ParseOwner parses "teams/{team}" or "users/{user}". It does not resolve
// "users/me": that needs the caller (Service does it). Errors are
// errs.KindInvalid without a field; callers add theirs.
func ParseOwner(s string) (Owner, error) {
	coll, id, ok := strings.Cut(s, "/")
	if !ok || strings.Contains(id, "/") {
		return Owner{}, errs.E(errs.KindInvalid, "must be teams/{team} or users/{user}")
	}
	var o Owner
	switch coll {
	case "teams":
		o = Team(id)
	case "users":
		o = User(id)
	default:
		return Owner{}, errs.E(errs.KindInvalid, "must be teams/{team} or users/{user}")
	}
	if !ownerIDRE.MatchString(id) {
		return Owner{}, errs.E(errs.KindInvalid, "the %s id must match [a-z][a-z0-9-]*, at most 63 characters", strings.TrimSuffix(coll, "s"))
	}
	return o, nil
}

// Secret is a stored secret: its metadata and the sealed current value
// version. Secrets returned by the Service's read paths have Value cleared.
type Secret struct {
	Owner       Owner
	Name        string // the environment variable it becomes; case kept
	Description string

	ValueVersion    int64 // starts at 1; bumped by every value change
	CreateTime      time.Time
	UpdateTime      time.Time // last change of anything
	ValueUpdateTime time.Time // last change of the value
	CreateBy        string    // resource name of the creator: "users/alice"
	UpdateBy        string

	// Etag changes with every update; callers pass it back for
	// conditional updates and deletes.
	Etag string

	// Binding is the secret's binding to hosts (DESIGN §5.6), validated
	// and normalised (hostbind.Normalize); nil: not bound. A run receives
	// a bound secret as a placeholder, and the runner's egress proxy swaps
	// the value in on requests to these hosts only.
	Binding *hostbind.Binding

	// Value is the current value version, sealed with additional data
	// ValueAD(Owner, Name, ValueVersion). Never plaintext.
	Value keyring.Envelope
}

// ResourceName returns "teams/{team}/secrets/{name}" or
// "users/{user}/secrets/{name}".
func (s *Secret) ResourceName() string { return s.Owner.String() + "/secrets/" + s.Name }

// Clone returns a deep copy of s.
func (s *Secret) Clone() *Secret {
	c := *s
	c.Binding = cloneBinding(s.Binding)
	c.Value = s.Value.Clone()
	return &c
}

// metadata returns a copy of s without the sealed value.
func (s *Secret) metadata() *Secret {
	c := *s
	c.Binding = cloneBinding(s.Binding)
	c.Value = keyring.Envelope{}
	return &c
}

// cloneBinding returns a deep copy of b (nil for nil).
func cloneBinding(b *hostbind.Binding) *hostbind.Binding {
	if b == nil {
		return nil
	}
	c := *b
	c.Hosts = slices.Clone(b.Hosts)
	return &c
}

// ValueAD is the additional data a value version is sealed with: it binds
// the ciphertext to its owner, exact name and version, so that it does not
// open when moved to another record or version.
func ValueAD(o Owner, name string, version int64) []byte {
	return fmt.Appendf(nil, "oz.secret.v1\x00%s\x00%s\x00%d", o, name, version)
}

// FoldName is the case-folded form of a secret name that uniqueness is
// decided on: ASCII upper case (names are ASCII).
func FoldName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

// Store keeps secrets. Implementations are safe for concurrent use. Within
// one owner, names are unique without regard to case (FoldName); lookups
// are by exact name. Records passed in and returned are copies: changing
// them does not change what is stored. A Store never sees plaintext.
//
// Every change commits together with its audit event (DESIGN §6): the
// store writes the event into its outbox (Outbox) in the same transaction
// as the change, so that no change is stored without its event and no
// event exists for a change that was not stored. The event of each
// mutating method comes with it: Create takes it; Update and Delete take
// it from their fn, which builds it from the record as it will be stored,
// so that it describes the change that commits even when fn runs more than
// once. Events are added as the outbox adds them (outbox.KV.Apply: an id
// assigned, a time when empty, validated by audit.ValidateEvent); a nil
// event, or one the audit service would refuse, is an internal error and
// nothing is stored.
//
// Errors are errs kinds: errs.NotFound and errs.AlreadyExists as said
// below; anything else (I/O, a corrupt record, a cancelled ctx, an invalid
// event) is an internal error.
type Store interface {
	// Create stores s, a new secret, and its event ev. It returns an
	// errs.KindAlreadyExists error whose message names the existing
	// secret when s.Owner already has a secret whose name equals s.Name
	// without regard to case; then neither is stored.
	Create(ctx context.Context, s *Secret, ev *auditv1.Event) error

	// Get returns the secret of owner named exactly name, or an
	// errs.KindNotFound error (also when only a name differing in case
	// exists).
	Get(ctx context.Context, owner Owner, name string) (*Secret, error)

	// List returns at most limit (> 0) secrets of owner, ordered by
	// FoldName, starting with the first whose folded name sorts after
	// FoldName(after) ("" for the beginning). Fewer than limit means there
	// are no more. A missing owner has no secrets: the result is empty.
	List(ctx context.Context, owner Owner, after string, limit int) ([]*Secret, error)

	// Update calls fn with the stored secret of owner named exactly name
	// and stores what fn left in it, with the event fn returns,
	// atomically. fn may be called more than once (writes are batched):
	// it must be pure, with no effects outside its argument and its
	// result; the event of its last call is the one stored. When fn
	// returns an error, nothing is stored and Update returns that error as
	// is. fn must not change Owner or Name. Update returns the stored
	// result, or an errs.KindNotFound error when there is no such secret
	// (fn is not called).
	Update(ctx context.Context, owner Owner, name string, fn func(*Secret) (*auditv1.Event, error)) (*Secret, error)

	// Delete calls fn with the stored secret of owner named exactly name;
	// fn approves its removal by returning its event, which is stored as
	// the secret is removed. fn may be called more than once and must be
	// pure. When fn returns an error, nothing changes and Delete returns
	// that error as is. Delete returns an errs.KindNotFound error when
	// there is no such secret (fn is not called).
	Delete(ctx context.Context, owner Owner, name string, fn func(*Secret) (*auditv1.Event, error)) error

	// Record stores ev alone, in a transaction of its own: the event of
	// something that changed nothing, such as a refused request.
	Record(ctx context.Context, ev *auditv1.Event) error

	// Outbox is the store's audit outbox, which its changes write their
	// events into: the Source an outbox.Shipper delivers to the audit
	// service. Events wait there, across restarts, until acknowledged.
	Outbox() outbox.Source

	// Idempotency is where the store remembers what writes sent with an
	// idempotency key answered (idempotency.go). When the ctx of Create,
	// Update or Delete carries a claim (idempotency.WithClaim), the store
	// commits the claim's record in the same transaction as the change,
	// with the outcome last set on it (Update's and Delete's fn may set
	// it; the last call's is stored) — and when a write with the same key
	// committed first, it stores nothing and returns
	// idempotency.ErrClaimed (the claim is then Lost). Record never
	// commits a claim.
	Idempotency() *idempotency.Records
}

// OwnersLister is an optional capability of a Store, for run resolution
// (DESIGN §5): it reads every secret of a few owners at once.
type OwnersLister interface {
	// ListOwners returns every secret of each of owners, read in one
	// consistent snapshot: grouped by owner in the order given, each
	// owner's ordered by FoldName. An owner without secrets contributes
	// nothing; owners are distinct.
	ListOwners(ctx context.Context, owners []Owner) ([]*Secret, error)
}

// ManyGetter is an optional capability of a Store, for run resolution: it
// reads a run's secrets, named exactly, in one read of the store.
type ManyGetter interface {
	// GetMany returns the secret of owners[i] named exactly names[i], for
	// each i, read in one consistent snapshot: nil where there is none.
	GetMany(ctx context.Context, owners []Owner, names []string) ([]*Secret, error)
}

// Scanner is an optional capability of a Store, for maintenance (rewrapping
// data keys): it lists the secrets of every owner.
type Scanner interface {
	// Scan returns at most limit (> 0) secrets of all owners, ordered by
	// owner resource name and then FoldName, starting after the secret
	// (afterOwner, afterName); a zero afterOwner starts at the beginning.
	Scan(ctx context.Context, afterOwner Owner, afterName string, limit int) ([]*Secret, error)
}
