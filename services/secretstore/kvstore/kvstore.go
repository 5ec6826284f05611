// Package kvstore is the secretstore's record layout on kv.Store, the
// services' one storage interface: the one implementation of
// secretstore.Store (with secretstore.Scanner and
// secretstore.OwnersLister) and of sealing.Store, whichever store is
// underneath — a bbolt file (kv/boltkv) or a namespace of an etcd cluster
// (kv/etcdkv) — with the audit outbox (outbox.KV) among the records, so
// that every change and its event are one kv.Store.Apply.
//
// # Layout
//
// Keys of the kv.Store (values are never plaintext):
//
//	layout                                the layout's name: "oz.secretstore.v2"
//	secrets/{owner}\x00{FOLDED NAME}      a secret: storagev1.SecretRecord (older: JSON), metadata and the sealed value
//	sealing_keys/{key id}                 a sealing key pair: JSON (sealingKeyRecord), its private key sealed
//	sealing_keys_version                  a counter every UpdateSealingKeys conditions on and bumps
//	outbox/…                              the audit outbox (outbox.KV)
//	auditwitness/{chain}                  the last event of each audit chain the audit service acknowledged (outbox.KV witnesses)
//	upgraded_outbox/{16 hex digits}       events an upgrade carried over, undelivered (upgrade.go)
//	idempotency/…, idempotency_expiry/…   what writes sent with an idempotency key answered (package idempotency)
//
// {owner} is the owner's resource name ("teams/acme", "users/alice") and
// {FOLDED NAME} is secretstore.FoldName of the name, so that two names that
// differ only in case are one key: the case-insensitive uniqueness of names
// is the condition kv.Absent on that key. 0x00 sorts before every byte of
// an owner id, so keys sort by owner resource name and then folded name,
// the orders List and Scan promise ("teams/acme" before "teams/acme-2").
// These keys and values are those the secretstore kept before it stood on
// kv.Store (in bbolt buckets, or etcd prefixes, named as the key prefixes
// above), which is what makes the upgrade a copy (upgrade.go).
//
// Writes are one Apply each: the change, its conditions (the key absent
// for a Create; the record as it was read for an Update or a Delete; the
// version of the sealing keys), its audit event, and, for a write sent
// with an idempotency key, the record of its answer (idempotency.Attach). A write whose
// condition fails because another writer came first reads again and calls
// its fn again, as the Store contracts allow.
//
// The layout key claims a kv.Store for the secretstore: Open writes it on
// an empty store and refuses a store that holds records without it (the
// resolver's, the audit log's) or another layout's.
//
// # Opening
//
// OpenBoltKV and OpenEtcdKV open the kv.Store of a bbolt file or of an etcd
// namespace, after checking it for the layout of an earlier version: a
// bbolt file is upgraded in place, an etcd namespace refused until
// UpgradeEtcd (upgrade.go). The caller may wrap the kv.Store (kv.Instrument:
// spans and metrics of every call) before Open opens the records on it.
package kvstore

import (
	"context"
	"errors"
	"fmt"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/idempotency"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
)

// Namespace is the secretstore's namespace in a shared etcd (etcdkv keeps
// its records under <Namespace>records/).
const Namespace = "/oz/secretstore/"

// Keys of the layout (see the package documentation).
const (
	keyLayout            = "layout"
	layoutName           = "oz.secretstore.v2"
	prefixSecrets        = "secrets/"
	prefixSealingKeys    = "sealing_keys/"
	keySealingVersion    = "sealing_keys_version"
	prefixUpgradedOutbox = "upgraded_outbox/"
)

// maxApplyOps is kv.Store's limit on one Apply: conditions and writes
// together.
const maxApplyOps = 128

// Store is the secretstore's records in a kv.Store: a secretstore.Store,
// secretstore.Scanner, secretstore.OwnersLister and sealing.Store. It is
// safe for concurrent use, also by several processes sharing one kv.Store
// (replicas on etcd). Records passed in and returned are copies.
type Store struct {
	kv     kv.Store
	ob     *outbox.KV
	events *events // the Source: ob's events, after any an upgrade carried over
	idem   *idempotency.Records
}

var (
	_ secretstore.Store        = (*Store)(nil)
	_ secretstore.Scanner      = (*Store)(nil)
	_ secretstore.OwnersLister = (*Store)(nil)
	_ sealing.Store            = (*Store)(nil)
)

// Open returns the secretstore's records in s, which Close closes. On an
// empty s it records the layout; it refuses (with an error naming what it
// found) a store whose records are not the secretstore's: another layout,
// or records without one (another service's store). It fails when s does.
func Open(ctx context.Context, s kv.Store) (*Store, error) {
	if err := claim(ctx, s); err != nil {
		return nil, err
	}
	ob := outbox.NewKV(s, secretstore.Emitter)
	return &Store{kv: s, ob: ob, events: newEvents(s, ob), idem: idempotency.NewRecords(s)}, nil
}

// claim checks the layout key of s, writing it on an empty store.
func claim(ctx context.Context, s kv.Store) error {
	for {
		v, err := s.Get(ctx, keyLayout)
		switch {
		case err == nil && string(v) == layoutName:
			return nil
		case err == nil:
			return fmt.Errorf("secretstore: the store holds records of layout %q; this build reads %q", v, layoutName)
		case !errors.Is(err, errs.NotFound):
			return fmt.Errorf("secretstore: read the layout: %w", err)
		}
		kvs, err := s.Scan(ctx, "", "", 1)
		if err != nil {
			return fmt.Errorf("secretstore: read the store: %w", err)
		}
		if len(kvs) > 0 && kvs[0].Key == keyLayout {
			continue // another process claimed it since the Get
		}
		if len(kvs) > 0 {
			return errors.New("secretstore: the store holds records but not the secretstore's (no layout key): " +
				"is it another service's store?")
		}
		err = s.Apply(ctx, []kv.Cond{kv.Absent(keyLayout)}, []kv.Write{kv.Put(keyLayout, []byte(layoutName))})
		if _, ok := errors.AsType[*kv.ConflictError](err); ok {
			continue // another process claimed it meanwhile: check what it wrote
		}
		if err != nil {
			return fmt.Errorf("secretstore: record the layout: %w", err)
		}
		return nil
	}
}

// Close closes the kv.Store.
func (s *Store) Close() error { return s.kv.Close() }

// Outbox implements secretstore.Store and sealing.Store: the audit outbox
// among the records (an outbox.Source and outbox.Counter). It delivers the
// events an upgrade carried over before the others.
func (s *Store) Outbox() outbox.Source { return s.events }

// OnCommit sets fn (typically outbox.Shipper.Notify) to run after every
// write that stored audit events. Set it before serving.
func (s *Store) OnCommit(fn func()) { s.ob.OnCommit(fn) }

// errNoEvent is returned for a change without its audit event: a bug of
// the caller, so without a kind (internal).
var errNoEvent = errors.New("secretstore: a change without its audit event")

// Idempotency implements secretstore.Store.
func (s *Store) Idempotency() *idempotency.Records { return s.idem }

// apply is s.ob.Apply of a change and its event ev (required), with the
// record of the idempotency claim ctx carries, if any: every write of the
// secretstore passes here.
func (s *Store) apply(ctx context.Context, conds []kv.Cond, writes []kv.Write, ev *auditv1.Event) error {
	if ev == nil {
		return errNoEvent
	}
	conds, writes, claim := idempotency.Attach(ctx, conds, writes)
	return claim.Settle(ctx, s.ob.Apply(ctx, conds, writes, ev))
}

// conflicted reports whether err is a condition of Apply that did not
// hold.
func conflicted(err error) bool {
	_, ok := errors.AsType[*kv.ConflictError](err)
	return ok
}
