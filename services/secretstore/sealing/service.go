package sealing

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hpke"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ozsecrets/oz/lib/sealwire"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/auditevent"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
)

// Audit events of the sealing keys (DESIGN §6), on the system chain
// (system admins rotate the keys, and they are no team's), with resource
// EventResource. Details name key ids, comma-separated; never key
// material.
const (
	ActionCreate = "sealing_key.create" // Init made keys (created; dropped, when any)
	ActionDelete = "sealing_key.delete" // Init dropped keys past their grace (dropped)
	ActionRotate = "sealing_key.rotate" // Rotate (created, retired; dropped, when any)
	ActionRewrap = "sealing_key.rewrap" // Rewrap (rewrapped, kek_id)

	DetailCreated   = "created"
	DetailRetired   = "retired"
	DetailDropped   = "dropped"
	DetailRewrapped = "rewrapped"
	DetailKEKID     = "kek_id" // the key-encryption key now wrapping them

	// EventResource is the resource of the sealing keys' events: the
	// collection (GET /v1/sealingKeys).
	EventResource = "sealingKeys"
)

// errUnchanged stops an UpdateSealingKeys whose fn found nothing to do
// (another process did it meanwhile): nothing is written, no event.
var errUnchanged = errors.New("sealing keys unchanged")

// event is the event of a change to the sealing keys at now, by the
// caller of ctx (the service itself when there is none).
func (s *Service) event(ctx context.Context, now time.Time, action string, details map[string]string) *auditv1.Event {
	return auditevent.New(ctx, auditevent.Secretstore, nil, now, action, EventResource, "", details)
}

// setIDs records ids under key, sorted and comma-separated; nothing for
// no ids.
func setIDs(details map[string]string, key string, ids []string) {
	if len(ids) > 0 {
		details[key] = strings.Join(slices.Sorted(slices.Values(ids)), ",")
	}
}

// droppedIDs returns the ids of old not in kept.
func droppedIDs(old, kept []*Key) []string {
	var out []string
	for _, k := range old {
		if findKey(kept, k.ID) == nil {
			out = append(out, k.ID)
		}
	}
	return out
}

// DefaultGrace is how long a previous key keeps opening values after a
// rotation, unless configured otherwise: long enough for a browser tab or a
// script that fetched the keys before the rotation.
const DefaultGrace = 24 * time.Hour

// Request fields the errors of Open name.
const (
	FieldKeyID      = "sealed_value.key_id"
	FieldCiphertext = "sealed_value.ciphertext"
)

// Config configures a Service.
type Config struct {
	Store   Store            // required
	Keyring *keyring.Keyring // required: wraps the private keys
	// Grace is how long a key replaced by a rotation still opens values
	// (and is listed, as not current). Zero: not at all.
	Grace  time.Duration
	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default: discard
}

// Service manages the sealing keys over a Store: it makes them (Init,
// Rotate), publishes their public halves (List) and opens sealed values
// (Open). Private keys are unwrapped once and cached in memory. It is safe
// for concurrent use.
type Service struct {
	store Store
	kr    *keyring.Keyring
	grace time.Duration
	now   func() time.Time
	log   *slog.Logger

	mu    sync.Mutex
	cache map[string]hpke.PrivateKey // key id → unwrapped private key
}

// NewService returns a Service. It panics when cfg lacks a Store or a
// Keyring (a wiring mistake). Call Init before serving.
func NewService(cfg Config) *Service {
	if cfg.Store == nil || cfg.Keyring == nil {
		panic("sealing.NewService: Store and Keyring are required")
	}
	s := &Service{store: cfg.Store, kr: cfg.Keyring, grace: max(cfg.Grace, 0), now: cfg.Now, log: cfg.Logger,
		cache: map[string]hpke.PrivateKey{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Grace returns how long a replaced key still opens values.
func (s *Service) Grace() time.Duration { return s.grace }

// ExpireTime returns when k stops opening values: zero for a current key.
func (s *Service) ExpireTime(k *Key) time.Time {
	if k.Current() {
		return time.Time{}
	}
	return k.RetireTime.Add(s.grace)
}

// usable reports whether k still opens values at now.
func (s *Service) usable(k *Key, now time.Time) bool {
	return k.Current() || now.Before(s.ExpireTime(k))
}

// Init makes sure there is a current key of every KEM of KEMs, making the
// missing ones (all of them at first start), drops the keys whose grace has
// passed, and unwraps the usable ones, so that a keyring that cannot
// unwrap them fails now rather than at the first sealed value. A change is
// a sealing_key.create event (keys made, and any dropped) or a
// sealing_key.delete event (keys dropped only), by the service itself
// unless ctx has a caller. It returns the keys as List does.
func (s *Service) Init(ctx context.Context) ([]*Key, error) {
	keys, err := s.store.SealingKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("sealing keys: %w", err)
	}
	now := s.now().UTC()
	if missing := missingKEMs(keys); len(missing) > 0 || slices.ContainsFunc(keys, func(k *Key) bool { return !s.usable(k, now) }) {
		fresh, err := s.generate(missing, now)
		if err != nil {
			return nil, err
		}
		keys, err = s.store.UpdateSealingKeys(ctx, func(old []*Key) ([]*Key, *auditv1.Event, error) {
			out := s.unexpired(old, now)
			// Another process may have made some meanwhile: add only
			// what is still missing.
			gen := nextGeneration(old)
			var created []string
			for _, f := range fresh {
				if slices.Contains(missingKEMs(out), f.KEMID) {
					k := withID(f, gen)
					out = append(out, k)
					created = append(created, k.ID)
				}
			}
			dropped := droppedIDs(old, out)
			if len(created) == 0 && len(dropped) == 0 {
				return nil, nil, errUnchanged
			}
			details := map[string]string{}
			setIDs(details, DetailCreated, created)
			setIDs(details, DetailDropped, dropped)
			action := ActionDelete
			if len(created) > 0 {
				action = ActionCreate
			}
			return out, s.event(ctx, now, action, details), nil
		})
		if errors.Is(err, errUnchanged) {
			keys, err = s.store.SealingKeys(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("sealing keys: %w", err)
		}
		if len(fresh) > 0 {
			s.log.InfoContext(ctx, "sealing keys created", "keys", idsOf(keys, (*Key).Current))
		}
	}
	s.forgetAllBut(keys)
	listed := s.listed(keys, now)
	for _, k := range listed {
		full := findKey(keys, k.ID)
		if _, err := s.privateKey(full); err != nil {
			return nil, err
		}
	}
	return listed, nil
}

// List returns the public halves of the usable keys: the current ones (in
// the order of KEMs), then the previous ones still in their grace, newest
// first. They are public: any authenticated caller may have them.
func (s *Service) List(ctx context.Context) ([]*Key, error) {
	keys, err := s.store.SealingKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("sealing keys: %w", err)
	}
	return s.listed(keys, s.now().UTC()), nil
}

// Rotate makes a new current key of every KEM; the previous current keys
// keep opening values for the grace period. Keys whose grace has passed
// are dropped. by names who asked, for the log; CheckRotate decides who may.
// The rotation is a sealing_key.rotate event by the caller of ctx. It
// returns the keys as List does.
func (s *Service) Rotate(ctx context.Context, by string) ([]*Key, error) {
	now := s.now().UTC()
	fresh, err := s.generate(KEMs, now)
	if err != nil {
		return nil, err
	}
	var retired []string
	keys, err := s.store.UpdateSealingKeys(ctx, func(old []*Key) ([]*Key, *auditv1.Event, error) {
		retired = retired[:0]
		out := s.unexpired(old, now)
		for _, k := range out {
			if k.Current() {
				k.RetireTime = now
				retired = append(retired, k.ID)
			}
		}
		dropped := droppedIDs(old, out)
		gen := nextGeneration(old)
		var created []string
		for _, f := range fresh {
			k := withID(f, gen)
			out = append(out, k)
			created = append(created, k.ID)
		}
		details := map[string]string{}
		setIDs(details, DetailCreated, created)
		setIDs(details, DetailRetired, retired)
		setIDs(details, DetailDropped, dropped)
		return out, s.event(ctx, now, ActionRotate, details), nil
	})
	if err != nil {
		return nil, fmt.Errorf("rotate sealing keys: %w", err)
	}
	s.forgetAllBut(keys)
	s.log.InfoContext(ctx, "sealing keys rotated", "current", idsOf(keys, (*Key).Current), "retired", retired,
		"retired_open_until", now.Add(s.grace), "by", by)
	return s.listed(keys, now), nil
}

// CheckRotate decides whether p may rotate the sealing keys: system admins
// only. Returns KindUnauthenticated or KindPermissionDenied errors.
func CheckRotate(p *auth.Principal) error {
	if p == nil {
		return errs.E(errs.KindUnauthenticated, "no authenticated caller")
	}
	if p.Kind != auth.KindUser || !p.SystemAdmin {
		return errs.E(errs.KindPermissionDenied, "only system admins may rotate sealing keys")
	}
	return nil
}

// Open opens a value sealed to the key keyID with the HPKE info info.
// Errors are errs.Field errors: FieldKeyID when the key is unknown or its
// grace has passed, FieldCiphertext when the ciphertext is missing or does
// not open with that key and info (sealed for another secret, or
// tampered). They never contain the ciphertext. The caller owns (and
// should clear) the result.
func (s *Service) Open(ctx context.Context, keyID string, ciphertext, info []byte) ([]byte, error) {
	const seal = "seal the value to a current key from ListSealingKeys (GET /v1/sealingKeys)"
	switch {
	case keyID == "":
		return nil, errs.Field(FieldKeyID, "is required: %s", seal)
	case !ValidKeyID(keyID):
		return nil, errs.Field(FieldKeyID, "is not a sealing key id: %s", seal)
	}
	k, err := s.store.SealingKey(ctx, keyID)
	if errors.Is(err, errs.NotFound) {
		s.forget(keyID)
		return nil, errs.Field(FieldKeyID, "unknown or expired sealing key %s: %s", keyID, seal)
	}
	if err != nil {
		return nil, fmt.Errorf("sealing key %s: %w", keyID, err)
	}
	if !s.usable(k, s.now()) {
		s.forget(keyID)
		return nil, errs.Field(FieldKeyID, "unknown or expired sealing key %s (replaced at %s, usable until %s): %s",
			keyID, k.RetireTime.Format(time.RFC3339), s.ExpireTime(k).Format(time.RFC3339), seal)
	}
	if len(ciphertext) == 0 {
		return nil, errs.Field(FieldCiphertext, "is required: the HPKE encapsulated key followed by the ciphertext")
	}
	priv, err := s.privateKey(k)
	if err != nil {
		return nil, err
	}
	plain, err := hpke.Open(priv, sealwire.KDF(), sealwire.AEAD(), info, ciphertext)
	if err != nil {
		return nil, errs.Field(FieldCiphertext, "does not open with key %s for this secret: seal it to that key with HPKE info %q and no additional data (a value sealed for another secret does not open)", keyID, info)
	}
	return plain, nil
}

// Rewrap wraps every stored private key that is not wrapped by the
// keyring's primary key-encryption key with it (after Keyring.Rotate), so
// that older key-encryption keys can be retired. It returns how many it
// rewrapped, recorded as one sealing_key.rewrap event.
func (s *Service) Rewrap(ctx context.Context) (int, error) {
	keys, err := s.store.SealingKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("sealing keys: %w", err)
	}
	primary := s.kr.Primary()
	rewrapped := map[string]keyring.Envelope{}
	for _, k := range keys {
		if k.Private.KEKID == primary {
			continue
		}
		env, changed, err := s.kr.Rewrap(k.Private, privateAD(k.KEMID, k.PublicKey))
		if err != nil {
			return 0, fmt.Errorf("rewrap sealing key %s: %w", k.ID, err)
		}
		if changed {
			rewrapped[k.ID] = env
		}
	}
	if len(rewrapped) == 0 {
		return 0, nil
	}
	n := 0
	now := s.now().UTC()
	_, err = s.store.UpdateSealingKeys(ctx, func(old []*Key) ([]*Key, *auditv1.Event, error) {
		var ids []string
		out := make([]*Key, len(old))
		for i, k := range old {
			out[i] = k.Clone()
			if env, ok := rewrapped[k.ID]; ok && k.Private.KEKID != primary {
				out[i].Private = env.Clone()
				ids = append(ids, k.ID)
			}
		}
		n = len(ids)
		if n == 0 {
			return nil, nil, errUnchanged
		}
		details := map[string]string{DetailKEKID: primary}
		setIDs(details, DetailRewrapped, ids)
		return out, s.event(ctx, now, ActionRewrap, details), nil
	})
	if errors.Is(err, errUnchanged) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("rewrap sealing keys: %w", err)
	}
	return n, nil
}

// generate makes a key pair of each of kems, its private key wrapped. Ids
// are assigned when stored.
func (s *Service) generate(kems []uint16, now time.Time) ([]*Key, error) {
	out := make([]*Key, 0, len(kems))
	for _, id := range kems {
		kem, err := newKEM(id)
		if err != nil {
			return nil, err
		}
		priv, err := kem.GenerateKey()
		if err != nil {
			return nil, fmt.Errorf("sealing: generate a %s key: %w", kemName(id), err)
		}
		raw, err := priv.Bytes()
		if err != nil {
			return nil, fmt.Errorf("sealing: serialize a %s key: %w", kemName(id), err)
		}
		pub := priv.PublicKey().Bytes()
		env, err := s.kr.Seal(raw, privateAD(id, pub))
		clear(raw)
		if err != nil {
			return nil, fmt.Errorf("sealing: wrap a %s key: %w", kemName(id), err)
		}
		out = append(out, &Key{KEMID: id, PublicKey: pub, CreateTime: now, Private: env})
	}
	return out, nil
}

// privateKey returns k's private key, unwrapping it on first use.
func (s *Service) privateKey(k *Key) (hpke.PrivateKey, error) {
	s.mu.Lock()
	priv, ok := s.cache[k.ID]
	s.mu.Unlock()
	if ok {
		return priv, nil
	}
	raw, err := s.kr.Open(k.Private, privateAD(k.KEMID, k.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("sealing key %s does not unwrap with the keyring (was the keyring replaced?): %w", k.ID, err)
	}
	defer clear(raw)
	kem, err := newKEM(k.KEMID)
	if err != nil {
		return nil, err
	}
	priv, err = kem.NewPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("sealing key %s: %w", k.ID, err)
	}
	if !bytes.Equal(priv.PublicKey().Bytes(), k.PublicKey) {
		return nil, fmt.Errorf("sealing key %s: the private key does not match the public key", k.ID)
	}
	s.mu.Lock()
	s.cache[k.ID] = priv
	s.mu.Unlock()
	return priv, nil
}

func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
}

// forgetAllBut drops the cached private keys of keys no longer stored.
func (s *Service) forgetAllBut(keys []*Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.cache {
		if findKey(keys, id) == nil {
			delete(s.cache, id)
		}
	}
}

// unexpired returns copies of the keys still usable at now.
func (s *Service) unexpired(keys []*Key, now time.Time) []*Key {
	var out []*Key
	for _, k := range keys {
		if s.usable(k, now) {
			out = append(out, k.Clone())
		}
	}
	return out
}

// listed returns the public halves of the keys usable at now, in List's
// order.
func (s *Service) listed(keys []*Key, now time.Time) []*Key {
	var out []*Key
	for _, k := range keys {
		if s.usable(k, now) {
			out = append(out, k.public())
		}
	}
	slices.SortFunc(out, func(a, b *Key) int {
		if a.Current() != b.Current() {
			if a.Current() {
				return -1
			}
			return 1
		}
		if c := b.CreateTime.Compare(a.CreateTime); c != 0 {
			return c
		}
		if c := cmp.Compare(slices.Index(KEMs, a.KEMID), slices.Index(KEMs, b.KEMID)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// missingKEMs returns the KEMs of KEMs without a current key in keys.
func missingKEMs(keys []*Key) []uint16 {
	var out []uint16
	for _, kem := range KEMs {
		if !slices.ContainsFunc(keys, func(k *Key) bool { return k.KEMID == kem && k.Current() }) {
			out = append(out, kem)
		}
	}
	return out
}

// nextGeneration returns one more than the highest generation in keys' ids.
func nextGeneration(keys []*Key) uint64 {
	var n uint64
	for _, k := range keys {
		if i := strings.LastIndexByte(k.ID, '-'); i >= 0 {
			if g, err := strconv.ParseUint(k.ID[i+1:], 10, 64); err == nil && g > n {
				n = g
			}
		}
	}
	return n + 1
}

func withID(k *Key, gen uint64) *Key {
	c := k.Clone()
	c.ID = kemName(c.KEMID) + "-" + strconv.FormatUint(gen, 10)
	return c
}

func findKey(keys []*Key, id string) *Key {
	for _, k := range keys {
		if k.ID == id {
			return k
		}
	}
	return nil
}

func idsOf(keys []*Key, keep func(*Key) bool) []string {
	var out []string
	for _, k := range keys {
		if keep(k) {
			out = append(out, k.ID)
		}
	}
	slices.Sort(out)
	return out
}
