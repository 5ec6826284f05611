package secretstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ozsecrets/oz/lib/hostbind"
	"github.com/ozsecrets/oz/lib/sealwire"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
)

// Config configures a Service.
type Config struct {
	Store   Store            // required
	Keyring *keyring.Keyring // required
	Now     func() time.Time // default time.Now
	Limits  Limits           // zero fields: defaults
	Logger  *slog.Logger     // default: discard

	// Sealing opens values sealed on the client (sealing.Service). Nil:
	// sealed values are refused.
	Sealing Opener
	// RequireSealed refuses plain values: every value must arrive sealed.
	RequireSealed bool
}

// Opener opens values sealed on the client to one of the store's sealing
// keys (sealing.Service.Open). Errors are errs.Field errors naming
// sealing.FieldKeyID or sealing.FieldCiphertext; they never contain the
// ciphertext or the plaintext.
type Opener interface {
	Open(ctx context.Context, keyID string, ciphertext, info []byte) ([]byte, error)
}

// SealedValue is a value sealed on the client: the id of the sealing key
// and the HPKE encapsulated key followed by the ciphertext, sealed with
// info sealwire.SecretInfo(owner, name) of the secret it is for.
type SealedValue struct {
	KeyID      string
	Ciphertext []byte
}

// Service applies the rules of secrets (DESIGN §3, §4) over a Store: who
// may do what, what a valid secret is, how values are sealed. Its methods
// take the caller's principal (auth.PrincipalFrom of the request). It is
// safe for concurrent use.
//
// Errors are errs kinds, with caller-safe messages that never contain a
// value: KindInvalid (with the request field), KindUnauthenticated,
// KindPermissionDenied (always decided before existence), KindNotFound,
// KindAlreadyExists, KindFailedPrecondition (etag mismatch).
//
// Every change is an audit event, committed by the Store with the change
// (see events.go): secret.create, secret.update, secret.delete, by the
// principal, with the client and request id of ctx. A request refused or
// failed (invalid, not found, a conflict, an etag mismatch) changes
// nothing and writes no event; refusals are recorded as request.denied by
// RecordDenied, which the server calls for every refused request
// (auditevent.OnDenied).
type Service struct {
	locks         keyedMutex // serialises value updates of one secret in this process
	store         Store
	keys          *keyring.Keyring
	now           func() time.Time
	limits        Limits
	log           *slog.Logger
	sealing       Opener
	requireSealed bool
}

// NewService returns a Service. It panics when cfg lacks a Store or a
// Keyring (a wiring mistake).
func NewService(cfg Config) *Service {
	if cfg.Store == nil || cfg.Keyring == nil {
		panic("secretstore.NewService: Store and Keyring are required")
	}
	s := &Service{store: cfg.Store, keys: cfg.Keyring, now: cfg.Now, limits: cfg.Limits.withDefaults(), log: cfg.Logger,
		sealing: cfg.Sealing, requireSealed: cfg.RequireSealed}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Outbox is the store's audit outbox (Store.Outbox), for serving its
// audit witnesses.
func (s *Service) Outbox() outbox.Source { return s.store.Outbox() }

// Limits returns the limits in force.
func (s *Service) Limits() Limits { return s.limits }

// CreateRequest is the input of Create.
type CreateRequest struct {
	Parent      string // "teams/{team}" or "users/{user}" ("users/me": the caller)
	SecretID    string // the name
	Value       []byte
	Sealed      *SealedValue // instead of Value: the value sealed on the client
	Description string
	// Binding binds the secret to hosts, as the caller sent it
	// (ValidateBinding); nil, or no hosts: not bound.
	Binding *hostbind.Binding
	// IdempotencyKey, when set, names this write for its retries: see
	// idempotency.go.
	IdempotencyKey string
}

// Create stores a new secret with value version 1. Team secrets: admins of
// the team. Personal secrets: their owner. Exactly one of Value and Sealed
// is set; a sealed value is opened (for this owner and name only) and then
// meets the same rules as a plain one. A bound secret's value must also
// meet hostbind.ValidateValue (field "value", whether it arrived plain or
// sealed). Returns KindAlreadyExists (field secret_id, naming the existing
// secret) when the owner has a secret of that name without regard to
// case. With an IdempotencyKey, the same request sent again answers as the
// first time (idempotency.go).
func (s *Service) Create(ctx context.Context, p *auth.Principal, req CreateRequest) (*Secret, error) {
	if err := checkCaller(p); err != nil {
		return nil, err
	}
	owner, err := resolveOwner(p, "parent", req.Parent)
	if err != nil {
		return nil, err
	}
	if err := authorize(p, owner, write, "create"); err != nil {
		return nil, err
	}
	if err := s.limits.ValidateName("secret_id", req.SecretID); err != nil {
		return nil, err
	}
	if err := s.limits.ValidateDescription("description", req.Description); err != nil {
		return nil, err
	}
	binding, err := ValidateBinding("binding", req.Binding)
	if err != nil {
		return nil, err
	}
	k, replay, err := s.begin(ctx, p, opCreate, req.IdempotencyKey, req.fingerprint())
	if err != nil || replay != nil {
		return s.answer(ctx, replay, err)
	}
	// Cheap checks first: opening a sealed value is the costly one.
	value, done, err := s.valueOf(ctx, owner, req.SecretID, req.Value, req.Sealed)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := checkBoundValue(binding, value); err != nil {
		return nil, err
	}
	const version = 1
	env, err := s.keys.Seal(value, ValueAD(owner, req.SecretID, version))
	if err != nil {
		return nil, fmt.Errorf("seal value: %w", err)
	}
	now := s.now().UTC()
	sec := &Secret{
		Owner:           owner,
		Name:            req.SecretID,
		Description:     req.Description,
		ValueVersion:    version,
		CreateTime:      now,
		UpdateTime:      now,
		ValueUpdateTime: now,
		CreateBy:        p.Name,
		UpdateBy:        p.Name,
		Etag:            newEtag(),
		Binding:         binding,
		Value:           env,
	}
	details := map[string]string{}
	if req.Sealed != nil {
		details[DetailSealed] = "true"
	}
	bindingDetails(details, binding)
	ev := secretEvent(ctx, p, now, audit.ActionSecretCreate, sec, details)
	k.setOutcome(sec.metadata())
	if err := s.store.Create(k.carry(ctx), sec, ev); err != nil {
		if k.lost() {
			return s.again(ctx, k)
		}
		var e *errs.Error
		if errors.As(err, &e) && e.Kind == errs.KindAlreadyExists {
			return nil, &errs.Error{Kind: errs.KindAlreadyExists, Field: "secret_id", Message: e.Message}
		}
		return nil, fmt.Errorf("create secret: %w", err)
	}
	s.log.InfoContext(ctx, "secret created", "secret", sec.ResourceName(), "value_version", sec.ValueVersion,
		"sealed", req.Sealed != nil, "bound", binding != nil, "by", p.Name)
	return sec.metadata(), nil
}

// Get returns a secret's metadata (no value). Team secrets: members of the
// team. Personal secrets: their owner.
func (s *Service) Get(ctx context.Context, p *auth.Principal, name string) (*Secret, error) {
	if err := checkCaller(p); err != nil {
		return nil, err
	}
	owner, id, err := resolveName(p, "name", name)
	if err != nil {
		return nil, err
	}
	if err := authorize(p, owner, read, "read"); err != nil {
		return nil, err
	}
	sec, err := s.store.Get(ctx, owner, id)
	if err != nil {
		return nil, notFound(err, owner, id)
	}
	return sec.metadata(), nil
}

// ListRequest is the input of List.
type ListRequest struct {
	Parent    string // "teams/{team}" or "users/{user}" ("users/me": the caller)
	PageSize  int    // 0: DefaultPageSize; at most MaxPageSize
	PageToken string
}

// List returns one page of an owner's secrets (metadata only), ordered by
// name without regard to case. Team secrets: members of the team. Personal
// secrets: their owner.
func (s *Service) List(ctx context.Context, p *auth.Principal, req ListRequest) (*Page, error) {
	if err := checkCaller(p); err != nil {
		return nil, err
	}
	owner, err := resolveOwner(p, "parent", req.Parent)
	if err != nil {
		return nil, err
	}
	if err := authorize(p, owner, read, "list"); err != nil {
		return nil, err
	}
	size, err := pageSize(req.PageSize)
	if err != nil {
		return nil, err
	}
	tok, err := decodePageToken(req.PageToken, "list")
	if err != nil {
		return nil, err
	}
	if req.PageToken != "" && tok.Owner != owner.String() {
		return nil, errPageToken()
	}
	return s.page(ctx, "list", []Owner{owner}, tok, size)
}

// ListAvailableRequest is the input of ListAvailable.
type ListAvailableRequest struct {
	PageSize  int
	PageToken string
}

// ListAvailable returns one page of every secret the caller may see: those
// of all the caller's teams and the caller's personal ones, ordered by name
// without regard to case, then (for one name) team secrets before the
// caller's own and teams by name: the order `oz secret list` prints, so
// that it prints each page as it comes.
func (s *Service) ListAvailable(ctx context.Context, p *auth.Principal, req ListAvailableRequest) (*Page, error) {
	if err := checkCaller(p); err != nil {
		return nil, err
	}
	size, err := pageSize(req.PageSize)
	if err != nil {
		return nil, err
	}
	tok, err := decodePageToken(req.PageToken, "available-by-name")
	if err != nil {
		return nil, err
	}
	var owners []Owner
	for _, t := range p.TeamIDs() {
		if p.IsMember(t) {
			owners = append(owners, Team(t))
		}
	}
	if p.ID != "" {
		owners = append(owners, User(p.ID))
	}
	slices.SortFunc(owners, func(a, b Owner) int { return strings.Compare(a.String(), b.String()) })
	return s.page(ctx, "available-by-name", owners, tok, size)
}

// page collects up to size secrets of owners (sorted by resource name)
// from where tok says, in the order `oz secret list` prints them, so that
// the CLI can print each page as it arrives: by FoldName, and for one
// folded name, by owner resource name (teams/… before users/…, so a team's
// secret before the caller's own, and teams by name). tok names the last
// secret returned; the next page starts after it in that order.
//
// It reads at most size+1 secrets of each owner (one store.List each),
// whatever the number of secrets: a caller's owners are their teams and
// themselves, a handful.
func (s *Service) page(ctx context.Context, list string, owners []Owner, tok pageToken, size int) (*Page, error) {
	heads := make([][]*Secret, len(owners))
	for i, o := range owners {
		after := tok.After
		if tok.Owner != "" && o.String() > tok.Owner {
			// This owner comes after the last one returned among
			// secrets of the same folded name: its secret of that
			// name, if any, is still to come.
			after = justBefore(FoldName(tok.After))
		}
		// One more than needed tells whether another page follows: a
		// shorter answer means this owner has no more.
		got, err := s.store.List(ctx, o, after, size+1)
		if err != nil {
			return nil, fmt.Errorf("list secrets of %s: %w", o, err)
		}
		heads[i] = got
	}
	folded := make([]string, len(owners)) // FoldName of each head's first
	for i, h := range heads {
		if len(h) > 0 {
			folded[i] = FoldName(h[0].Name)
		}
	}
	out := make([]*Secret, 0, size)
	for {
		// owners are few: a linear pick of the smallest head is cheaper
		// than a heap.
		best := -1
		for i, h := range heads {
			// Owners are in order, so a tie keeps the earlier one.
			if len(h) > 0 && (best < 0 || folded[i] < folded[best]) {
				best = i
			}
		}
		if best < 0 {
			return &Page{Secrets: metadataOf(out)}, nil
		}
		if len(out) == size {
			last := out[size-1]
			return &Page{Secrets: metadataOf(out), NextPageToken: pageToken{List: list, Owner: last.Owner.String(), After: last.Name}.encode()}, nil
		}
		out = append(out, heads[best][0])
		if heads[best] = heads[best][1:]; len(heads[best]) > 0 {
			folded[best] = FoldName(heads[best][0].Name)
		}
	}
}

// justBefore returns a bound that Store.List's after (exclusive) turns
// into "from folded, inclusive": the names sorting after it are exactly
// those at or after folded. folded is a folded name (letters A–Z, digits,
// _), so nothing sorts between its prefix followed by its last byte less
// one and then 0x7f (above every byte a name holds), and folded itself.
func justBefore(folded string) string {
	n := len(folded)
	return folded[:n-1] + string([]byte{folded[n-1] - 1, 0x7f})
}

func metadataOf(secs []*Secret) []*Secret {
	out := make([]*Secret, len(secs))
	for i, sec := range secs {
		out[i] = sec.metadata()
	}
	return out
}

// UpdateRequest is the input of Update.
type UpdateRequest struct {
	Name        string // "teams/{team}/secrets/{secret}" or "users/{user}/secrets/{secret}"
	Value       []byte
	Sealed      *SealedValue // instead of Value: the value sealed on the client
	Description string
	// Binding is the new binding to hosts, as the caller sent it
	// (ValidateBinding), when "binding" is in UpdateMask; nil, or no
	// hosts: no longer bound.
	Binding *hostbind.Binding
	// UpdateMask lists the fields to replace: "value" (given as Value or
	// Sealed), "description", "binding" (replaced whole; "*": all three).
	// Empty: the fields that are set (a non-empty Value or a Sealed, a
	// non-empty description, a Binding with hosts).
	UpdateMask []string
	Etag       string // when set, the update is refused unless it matches
	// IdempotencyKey, when set, names this write for its retries: see
	// idempotency.go.
	IdempotencyKey string
}

// maxUpdateAttempts bounds the retries of an update that raced with another
// value update of the same secret.
const maxUpdateAttempts = 8

// Update replaces the value, the description and/or the binding to hosts;
// name and owner never change. A value change bumps ValueVersion and
// ValueUpdateTime; any change sets UpdateTime, UpdateBy and a new Etag. A
// secret bound after the update must hold a value that meets
// hostbind.ValidateValue (field "value"): the new one, or when only the
// binding changes, the current one, opened in memory to be checked. Team
// secrets: admins of the team. Personal secrets: their owner. Returns
// KindFailedPrecondition ("etag mismatch") when Etag is set and does not
// match. With an IdempotencyKey, the same request sent again answers as
// the first time (idempotency.go), even though the etag it names has
// changed since.
func (s *Service) Update(ctx context.Context, p *auth.Principal, req UpdateRequest) (*Secret, error) {
	if err := checkCaller(p); err != nil {
		return nil, err
	}
	owner, id, err := resolveName(p, "name", req.Name)
	if err != nil {
		return nil, err
	}
	if err := authorize(p, owner, write, "update"); err != nil {
		return nil, err
	}
	setValue, setDesc, setBinding, err := updateFields(req)
	if err != nil {
		return nil, err
	}
	if setDesc {
		if err := s.limits.ValidateDescription("description", req.Description); err != nil {
			return nil, err
		}
	}
	var binding *hostbind.Binding
	if setBinding {
		if binding, err = ValidateBinding("binding", req.Binding); err != nil {
			return nil, err
		}
	}
	if err := validateEtag(req.Etag); err != nil {
		return nil, err
	}
	k, replay, err := s.begin(ctx, p, opUpdate, req.IdempotencyKey, req.fingerprint())
	if err != nil || replay != nil {
		return s.answer(ctx, replay, err)
	}
	var value []byte
	if setValue {
		var done func()
		if value, done, err = s.valueOf(ctx, owner, id, req.Value, req.Sealed); err != nil {
			return nil, err
		}
		defer done()
	}

	// Value and binding updates of one secret take turns here, so that
	// the check below of what they were decided on rarely fails within
	// one process; it still guards against other processes sharing a
	// replicated store.
	if setValue || setBinding {
		unlock := s.locks.lock(owner.String() + "\x00" + FoldName(id))
		defer unlock()
	}
	for attempt := 1; ; attempt++ {
		cur, err := s.store.Get(ctx, owner, id)
		if err != nil {
			return nil, notFound(err, owner, id)
		}
		if req.Etag != "" && cur.Etag != req.Etag {
			return nil, errEtagMismatch()
		}
		if err := s.checkUpdatedValue(cur, setValue, setBinding, binding, value); err != nil {
			return nil, err
		}
		// Seal before the store's transaction, so that fn stays pure; fn
		// checks that the version it was sealed for is still the next one.
		var env keyring.Envelope
		if setValue {
			env, err = s.keys.Seal(value, ValueAD(owner, id, cur.ValueVersion+1))
			if err != nil {
				return nil, fmt.Errorf("seal value: %w", err)
			}
		}
		now, etag := s.now().UTC(), newEtag()
		updated, err := s.store.Update(k.carry(ctx), owner, id, func(sec *Secret) (*auditv1.Event, error) {
			if req.Etag != "" && sec.Etag != req.Etag {
				return nil, errEtagMismatch()
			}
			details := map[string]string{}
			// The value was checked against the binding of cur, or the
			// binding against cur's value: both must still be cur's.
			if (setValue || setBinding) && (sec.ValueVersion != cur.ValueVersion || !sec.Binding.Equal(cur.Binding)) {
				return nil, errRaced
			}
			if setValue {
				sec.Value = env
				sec.ValueVersion++
				sec.ValueUpdateTime = now
				details[audit.DetailValueChanged] = "true"
				if req.Sealed != nil {
					details[DetailSealed] = "true"
				}
			}
			if setDesc {
				if sec.Description != req.Description {
					details[DetailDescriptionChanged] = "true"
				}
				sec.Description = req.Description
			}
			if setBinding {
				if !binding.Equal(sec.Binding) {
					details[DetailBindingChanged] = "true"
				}
				sec.Binding = cloneBinding(binding)
			}
			bindingDetails(details, sec.Binding)
			sec.UpdateTime = now
			sec.UpdateBy = p.Name
			sec.Etag = etag
			k.setOutcome(sec.metadata())
			return secretEvent(ctx, p, now, audit.ActionSecretUpdate, sec, details), nil
		})
		switch {
		case err != nil && k.lost():
			return s.again(ctx, k)
		case errors.Is(err, errRaced) && attempt < maxUpdateAttempts:
			continue
		case errors.Is(err, errRaced):
			return nil, errs.E(errs.KindUnavailable, "too many concurrent updates of %s; try again", cur.ResourceName())
		case err != nil:
			return nil, notFound(err, owner, id)
		}
		s.log.InfoContext(ctx, "secret updated", "secret", updated.ResourceName(), "value_changed", setValue,
			"sealed", setValue && req.Sealed != nil, "description_changed", setDesc, "binding_set", setBinding, "bound", updated.Binding != nil,
			"value_version", updated.ValueVersion, "by", p.Name)
		return updated.metadata(), nil
	}
}

var errRaced = errors.New("value version or binding changed during update")

// checkBoundValue checks value, as a secret bound by b (nil: not bound)
// must hold it. The error names the field "value", however the value
// arrived, and never holds it.
func checkBoundValue(b *hostbind.Binding, value []byte) error {
	if b == nil {
		return nil
	}
	if err := hostbind.ValidateValue(value); err != nil {
		return errs.Field("value", "%s", err)
	}
	return nil
}

// checkUpdatedValue checks that the secret cur is about to become holds a
// value it may: when it is bound after the update, the new value (value,
// when setValue) or else, when the binding is what changes, the current
// one, opened here and cleared once checked. A value-only update of a
// bound secret checks the new value against the binding it keeps.
func (s *Service) checkUpdatedValue(cur *Secret, setValue, setBinding bool, binding *hostbind.Binding, value []byte) error {
	after := cur.Binding
	if setBinding {
		after = binding
	}
	switch {
	case after == nil:
		return nil
	case setValue:
		return checkBoundValue(after, value)
	case !setBinding:
		return nil // the value and the binding stay as they are
	}
	v, err := s.openValue(cur)
	if err != nil {
		return err
	}
	defer v.wipe()
	if err := hostbind.ValidateValue(v.Bytes()); err != nil {
		return errs.Field("value", "the current value %s: send a new value with the binding", err)
	}
	return nil
}

// valueOf returns the value a request carries: value as is, or
// sealed_value opened for the secret name of owner; either must meet the
// value rules. done clears an opened value; call it once the value is
// sealed for storage. Errors name the field: "value", "sealed_value" or
// one of its fields.
func (s *Service) valueOf(ctx context.Context, owner Owner, name string, plain []byte, sealed *SealedValue) (value []byte, done func(), err error) {
	nothing := func() {}
	switch {
	case sealed != nil && len(plain) > 0:
		return nil, nil, errs.Field("value", "must not be set together with sealed_value: send the value once, sealed")
	case sealed != nil:
		if s.sealing == nil {
			return nil, nil, errs.Field("sealed_value", "this server does not accept sealed values")
		}
		if max := sealing.MaxCiphertextLen(s.limits.MaxValueBytes); len(sealed.Ciphertext) > max {
			return nil, nil, errs.Field(sealing.FieldCiphertext, "must be at most %d bytes: a value of at most %d bytes, sealed (got %d)",
				max, s.limits.MaxValueBytes, len(sealed.Ciphertext))
		}
		v, err := s.sealing.Open(ctx, sealed.KeyID, sealed.Ciphertext, sealwire.SecretInfo(owner.String(), name))
		if err != nil {
			return nil, nil, err
		}
		if err := s.limits.ValidateValue("sealed_value", v); err != nil {
			clear(v)
			return nil, nil, err
		}
		return v, func() { clear(v) }, nil
	case s.requireSealed && len(plain) > 0:
		return nil, nil, errs.Field("value", "this server accepts sealed values only: seal the value (`oz secret seal`, or HPKE to a key from GET /v1/sealingKeys) and send it as sealed_value")
	case len(plain) == 0 && s.requireSealed:
		return nil, nil, errs.Field("sealed_value", "is required (this server accepts sealed values only: `oz secret seal`)")
	case len(plain) == 0:
		return nil, nil, errs.Field("value", "is required (a non-empty value, or a sealed_value)")
	}
	if err := s.limits.ValidateValue("value", plain); err != nil {
		return nil, nil, err
	}
	return plain, nothing, nil
}

func errEtagMismatch() error {
	return errs.E(errs.KindFailedPrecondition, "etag mismatch: the secret changed since that etag was read; get it again and retry")
}

func validateEtag(etag string) error {
	if len(etag) > 128 {
		return errs.Field("etag", "must be at most 128 characters (pass back the etag of a secret unchanged)")
	}
	return nil
}

// updateFields decides what an update replaces: the mask's paths, or
// with no mask, the fields set. Without a mask, a binding with flags but no
// hosts counts as set, so that ValidateBinding refuses it rather than the
// flags being dropped unseen.
func updateFields(req UpdateRequest) (setValue, setDesc, setBinding bool, err error) {
	if len(req.UpdateMask) == 0 {
		setValue, setDesc = len(req.Value) > 0 || req.Sealed != nil, req.Description != ""
		b := req.Binding
		setBinding = b != nil && (len(b.Hosts) > 0 || b.AllowQuery || b.AllowBody)
		if !setValue && !setDesc && !setBinding {
			return false, false, false, errs.Field("update_mask", "nothing to update: set a value (value or sealed_value), a description or a binding with hosts, or name the fields to replace in update_mask (value, description, binding)")
		}
		return setValue, setDesc, setBinding, nil
	}
	for i, path := range req.UpdateMask {
		switch path {
		case "value":
			setValue = true
		case "description":
			setDesc = true
		case "binding":
			setBinding = true
		case "*":
			setValue, setDesc, setBinding = true, true, true
		default:
			// The path is not echoed: it is caller input of unknown content.
			return false, false, false, errs.Field("update_mask", "paths[%d] is not an updatable field (allowed: value, description, binding)", i)
		}
	}
	return setValue, setDesc, setBinding, nil
}

// DeleteRequest is the input of Delete.
type DeleteRequest struct {
	Name string
	Etag string // when set, the delete is refused unless it matches
	// IdempotencyKey, when set, names this write for its retries: see
	// idempotency.go.
	IdempotencyKey string
}

// Delete removes a secret and its value. Team secrets: admins of the team.
// Personal secrets: their owner. Returns KindFailedPrecondition ("etag
// mismatch") when Etag is set and does not match. With an IdempotencyKey,
// the same request sent again succeeds as the first time did, although
// the secret is gone (idempotency.go).
func (s *Service) Delete(ctx context.Context, p *auth.Principal, req DeleteRequest) error {
	if err := checkCaller(p); err != nil {
		return err
	}
	owner, id, err := resolveName(p, "name", req.Name)
	if err != nil {
		return err
	}
	if err := authorize(p, owner, write, "delete"); err != nil {
		return err
	}
	if err := validateEtag(req.Etag); err != nil {
		return err
	}
	k, replay, err := s.begin(ctx, p, opDelete, req.IdempotencyKey, req.fingerprint())
	if err != nil || replay != nil {
		_, err := s.answer(ctx, replay, err)
		return err
	}
	k.setOutcome(nil)
	now := s.now().UTC()
	err = s.store.Delete(k.carry(ctx), owner, id, func(sec *Secret) (*auditv1.Event, error) {
		if req.Etag != "" && sec.Etag != req.Etag {
			return nil, errEtagMismatch()
		}
		return secretEvent(ctx, p, now, audit.ActionSecretDelete, sec, nil), nil
	})
	if err != nil && k.lost() {
		_, err = s.again(ctx, k)
		return err
	}
	if err != nil {
		return notFound(err, owner, id)
	}
	s.log.InfoContext(ctx, "secret deleted", "secret", owner.String()+"/secrets/"+id, "by", p.Name)
	return nil
}

// UnsealedValue is the decrypted current value of one secret.
type UnsealedValue struct {
	Owner        Owner
	Name         string
	ValueVersion int64
	Value        Plaintext
}

// UnsealValues returns the decrypted current values of the secrets of
// owner named (exactly) names, in the order of names, and the names that
// have no secret in missing.
//
// INTERNAL: it is for run resolution only (DESIGN §5), behind an internal,
// mutual-TLS-only API whose caller has decided that the run may receive
// these values. It checks no principal. Nothing user-facing may call it.
// It writes no audit event: the resolver records what a run received
// (run.resolve).
func (s *Service) UnsealValues(ctx context.Context, owner Owner, names []string) (values []UnsealedValue, missing []string, err error) {
	for _, name := range names {
		sec, err := s.store.Get(ctx, owner, name)
		if errors.Is(err, errs.NotFound) {
			missing = append(missing, name)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("get %s/secrets/%s: %w", owner, name, err)
		}
		v, err := s.openValue(sec)
		if err != nil {
			return nil, nil, err
		}
		values = append(values, UnsealedValue{Owner: owner, Name: sec.Name, ValueVersion: sec.ValueVersion, Value: v})
	}
	return values, missing, nil
}

// openValue decrypts the current value of sec. It is the only path from a
// stored secret to its plaintext.
func (s *Service) openValue(sec *Secret) (Plaintext, error) {
	b, err := s.keys.Open(sec.Value, ValueAD(sec.Owner, sec.Name, sec.ValueVersion))
	if err != nil {
		return Plaintext{}, fmt.Errorf("open value of %s version %d: %w", sec.ResourceName(), sec.ValueVersion, err)
	}
	return Plaintext{b: b}, nil
}

// RewrapResult counts what Rewrap did.
type RewrapResult struct {
	Scanned   int // secrets looked at
	Rewrapped int // data keys moved to the primary key-encryption key
}

// Rewrap wraps every stored data key that is not wrapped by the keyring's
// primary key-encryption key with it (after Keyring.Rotate). Values'
// ciphertexts, versions, etags and times do not change. Each rewrapped
// secret is a secret.rewrap event, by the caller of ctx (the service
// itself when there is none: `ozsecretstored keyring rewrap`). It needs a
// Store that is a Scanner.
func (s *Service) Rewrap(ctx context.Context) (RewrapResult, error) {
	var res RewrapResult
	sc, ok := s.store.(Scanner)
	if !ok {
		return res, errors.New("rewrap: the store cannot list all secrets (not a secretstore.Scanner)")
	}
	primary := s.keys.Primary()
	now := s.now().UTC()
	var afterOwner Owner
	var afterName string
	for {
		batch, err := sc.Scan(ctx, afterOwner, afterName, 100)
		if err != nil {
			return res, fmt.Errorf("rewrap: scan: %w", err)
		}
		for _, sec := range batch {
			res.Scanned++
			if sec.Value.KEKID == primary {
				continue
			}
			env, changed, err := s.keys.Rewrap(sec.Value, ValueAD(sec.Owner, sec.Name, sec.ValueVersion))
			if err != nil {
				return res, fmt.Errorf("rewrap %s: %w", sec.ResourceName(), err)
			}
			if !changed {
				continue
			}
			_, err = s.store.Update(ctx, sec.Owner, sec.Name, func(cur *Secret) (*auditv1.Event, error) {
				if cur.ValueVersion != sec.ValueVersion || cur.Value.KEKID != sec.Value.KEKID ||
					!bytes.Equal(cur.Value.WrappedKey, sec.Value.WrappedKey) {
					return nil, errSkip // changed meanwhile: sealed anew, with the primary
				}
				cur.Value = env.Clone()
				return secretEvent(ctx, nil, now, ActionSecretRewrap, cur, map[string]string{DetailKEKID: env.KEKID}), nil
			})
			switch {
			case err == nil:
				res.Rewrapped++
			case errors.Is(err, errSkip), errors.Is(err, errs.NotFound):
			default:
				return res, fmt.Errorf("rewrap %s: %w", sec.ResourceName(), err)
			}
		}
		if len(batch) < 100 {
			return res, nil
		}
		last := batch[len(batch)-1]
		afterOwner, afterName = last.Owner, last.Name
	}
}

var errSkip = errors.New("skip")

// Authorization.

type access int

const (
	read access = iota
	write
)

// checkCaller admits people only: runners and agent identities receive
// values through run resolution, never through SecretService.
func checkCaller(p *auth.Principal) error {
	if p == nil {
		return errs.E(errs.KindUnauthenticated, "no authenticated caller")
	}
	if p.Kind != auth.KindUser {
		return errs.E(errs.KindPermissionDenied, "only people manage secrets; a %s cannot", p.Kind)
	}
	return nil
}

// authorize decides whether p may read or write the secrets of owner. It
// does not look at any secret, so the answer is the same whether or not
// the secret asked for exists.
func authorize(p *auth.Principal, owner Owner, a access, verb string) error {
	switch owner.Kind {
	case OwnerTeam:
		if a == write && !p.IsAdmin(owner.ID) {
			return errs.E(errs.KindPermissionDenied, "only admins of team %s may %s its secrets", owner.ID, verb)
		}
		if a == read && !p.IsMember(owner.ID) {
			return errs.E(errs.KindPermissionDenied, "only members of team %s may %s its secrets", owner.ID, verb)
		}
		return nil
	case OwnerUser:
		if p.ID == "" || owner.ID != p.ID {
			return errs.E(errs.KindPermissionDenied, "personal secrets are available to their owner only; %s may not %s those of %s", p.Name, verb, owner)
		}
		return nil
	}
	return errs.E(errs.KindPermissionDenied, "no access")
}

func resolveOwner(p *auth.Principal, field, s string) (Owner, error) {
	if s == "users/me" {
		return User(p.ID), nil
	}
	o, err := ParseOwner(s)
	if err != nil {
		return Owner{}, errs.Field(field, "%s", err.(*errs.Error).Message)
	}
	return o, nil
}

func resolveName(p *auth.Principal, field, name string) (Owner, string, error) {
	o, id, err := ParseName(field, name)
	if err != nil {
		return Owner{}, "", err
	}
	if o == User("me") {
		o = User(p.ID)
	}
	return o, id, nil
}

// notFound gives a store's NotFound the secret's resource name; other
// errors pass through with context.
func notFound(err error, owner Owner, id string) error {
	if errors.Is(err, errs.NotFound) {
		return errs.E(errs.KindNotFound, "secret %s/secrets/%s not found (names are matched exactly)", owner, id)
	}
	var e *errs.Error
	if errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("%s/secrets/%s: %w", owner, id, err)
}

func newEtag() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
