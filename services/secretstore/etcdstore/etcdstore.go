// Package etcdstore is the etcd v3 implementation of secretstore.Store
// (and secretstore.Scanner and secretstore.OwnersLister), and of
// sealing.Store (sealingkeys.go), for deployments that run several
// secretstore replicas on a replicated store.
//
// Layout: the keys mirror the bbolt store's (package boltstore), bucket B
// and key K being the etcd key <namespace>B/K, with the same value bytes,
// so that copying every key of every bucket from one to the other gives a
// working store. Under the namespace ("/oz/secretstore/"):
//
//	secrets/<owner resource name> 0x00 <FoldName(name)>   the secret: JSON, as boltstore's
//	sealing_keys/<key id>                                 a sealing key pair: JSON, as boltstore's
//	meta/schema                                           "1"
//	outbox/<8 bytes>, outbox_meta/…                       the audit outbox (outbox.Etcd)
//
// Values hold metadata, the wrapped data key and the value's ciphertext —
// never plaintext.
//
// Every write is one etcd transaction holding the change and its audit
// event's outbox put, so that they commit together. Conditional writes
// are compares: create-if-absent on the key's create revision (names that
// differ only in case are one key, so case-insensitive uniqueness is a key
// clash), read-modify-write (Update, Delete, UpdateSealingKeys) on the mod
// revisions of what was read. A transaction that loses a compare to a
// concurrent writer reads again and retries, calling fn again (the Store
// contract allows it). Reads are linearizable. A write is durable when
// etcd acknowledges it: committed to the raft log of a quorum of members,
// each fsynced.
package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/etcdns"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
)

// Namespace is the secretstore's namespace in a shared etcd.
const Namespace = "/oz/secretstore/"

// OpenTimeout bounds New's first exchanges with etcd when ctx has no
// deadline: an unreachable cluster fails the start instead of hanging it.
const OpenTimeout = etcdns.OpenTimeout

// Buckets of the bbolt store, each a key prefix under the namespace.
const (
	bucketSecrets     = "secrets/"
	bucketSealingKeys = "sealing_keys/"
	keySchema         = "meta/schema"
	schemaVersion     = "1"
)

// scanPage is how many entries one etcd range of ListOwners or SealingKeys
// returns at most.
const scanPage = 512

var errClosed = errors.New("etcdstore: closed")

// Store is a secretstore.Store and a sealing.Store in etcd. It is safe for
// concurrent use.
type Store struct {
	cli     *clientv3.Client
	owned   bool   // Close closes cli
	ns      string // the namespace
	secrets string // key prefix of the secrets
	sealing string // key prefix of the sealing keys
	ob      *outbox.Etcd
	closed  atomic.Bool
	// noEvents skips the outbox writes. It exists for BenchmarkCreate's
	// comparison of creates with and without auditing, and is never set
	// anywhere else.
	noEvents bool
}

var (
	_ secretstore.Store        = (*Store)(nil)
	_ secretstore.Scanner      = (*Store)(nil)
	_ secretstore.OwnersLister = (*Store)(nil)
	_ sealing.Store            = (*Store)(nil)
)

// Open connects to the etcd cluster of cfg and opens the store under
// namespace (see New). Close closes the connection.
func Open(ctx context.Context, cfg clientv3.Config, namespace string) (*Store, error) {
	if err := etcdns.Check(namespace); err != nil {
		return nil, err
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	s, err := New(ctx, cli, namespace)
	if err != nil {
		cli.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// New opens the store under namespace on an existing client, which the
// caller closes after the store. namespace must end with "/"; on first use
// New records the schema version there, and it refuses a namespace written
// by a build with another schema. It opens the outbox (a new instance of
// it: see outbox.Etcd). It fails when etcd does not answer within ctx
// (OpenTimeout if ctx has no deadline).
func New(ctx context.Context, cli *clientv3.Client, namespace string) (*Store, error) {
	if err := etcdns.Check(namespace); err != nil {
		return nil, err
	}
	ctx, cancel := etcdns.WithOpenTimeout(ctx)
	defer cancel()
	if err := etcdns.Claim(ctx, cli, namespace, keySchema, schemaVersion); err != nil {
		return nil, err
	}
	ob, err := outbox.NewEtcd(ctx, cli, namespace, secretstore.Emitter)
	if err != nil {
		return nil, fmt.Errorf("open etcd store %s: %w", namespace, err)
	}
	return &Store{
		cli:     cli,
		ns:      namespace,
		secrets: namespace + bucketSecrets,
		sealing: namespace + bucketSealingKeys,
		ob:      ob,
	}, nil
}

// Close releases the store and, when Open made it, its client. Calls after
// Close return errors.
func (s *Store) Close() error {
	if s.closed.Swap(true) || !s.owned {
		return nil
	}
	return s.cli.Close()
}

func (s *Store) ready(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	return ctx.Err()
}

// Outbox implements secretstore.Store: the audit outbox in the same
// namespace (an outbox.Etcd, with a Backlog).
func (s *Store) Outbox() outbox.Source { return s.ob }

// OnCommit sets fn (typically outbox.Shipper.Notify) to run after every
// commit that wrote audit events. Set it before serving.
func (s *Store) OnCommit(fn func()) { s.ob.OnCommit(fn) }

// prepareEvent copies, validates and encodes ev (outbox.Etcd.Prepare). A
// nil or invalid event is an error without a kind (internal: not the
// caller's fault), so that the change is not made.
func (s *Store) prepareEvent(ev *auditv1.Event) (*outbox.EtcdPrepared, error) {
	if ev == nil {
		return nil, errors.New("etcdstore: a change without its audit event")
	}
	if s.noEvents {
		return nil, nil
	}
	p, err := s.ob.Prepare(ev)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: audit event %s: %v", ev.GetAction(), err)
	}
	return p, nil
}

// txn commits, in one transaction, cmps and ops with the outbox put of p,
// and reports whether every compare held. On success it runs the outbox's
// OnCommit function. els are the transaction's Else operations.
func (s *Store) txn(ctx context.Context, op string, p *outbox.EtcdPrepared, cmps []clientv3.Cmp, ops []clientv3.Op, els ...clientv3.Op) (*clientv3.TxnResponse, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	if !s.noEvents {
		cmp, put := s.ob.Put(p)
		cmps = append(cmps, cmp)
		ops = append(ops, put)
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(els...).Commit()
	if err != nil {
		return nil, storeErr(op, err)
	}
	if resp.Succeeded && !s.noEvents {
		s.ob.Committed()
	}
	return resp, nil
}

// Record implements secretstore.Store.
func (s *Store) Record(ctx context.Context, ev *auditv1.Event) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	p, err := s.prepareEvent(ev)
	if err != nil {
		return err
	}
	for {
		resp, err := s.txn(ctx, "record", p, nil, nil)
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
	}
}

// record is the stored form of a secret: boltstore's, field for field.
type record struct {
	Owner           string    `json:"owner"`
	Name            string    `json:"name"`
	Description     string    `json:"description,omitempty"`
	ValueVersion    int64     `json:"value_version"`
	CreateTime      time.Time `json:"create_time"`
	UpdateTime      time.Time `json:"update_time"`
	ValueUpdateTime time.Time `json:"value_update_time"`
	CreateBy        string    `json:"create_by"`
	UpdateBy        string    `json:"update_by"`
	Etag            string    `json:"etag"`
	KEKID           string    `json:"kek_id"`
	WrappedKey      []byte    `json:"wrapped_key"`
	Ciphertext      []byte    `json:"ciphertext"`
}

func encode(s *secretstore.Secret) (string, error) {
	b, err := json.Marshal(record{
		Owner:           s.Owner.String(),
		Name:            s.Name,
		Description:     s.Description,
		ValueVersion:    s.ValueVersion,
		CreateTime:      s.CreateTime,
		UpdateTime:      s.UpdateTime,
		ValueUpdateTime: s.ValueUpdateTime,
		CreateBy:        s.CreateBy,
		UpdateBy:        s.UpdateBy,
		Etag:            s.Etag,
		KEKID:           s.Value.KEKID,
		WrappedKey:      s.Value.WrappedKey,
		Ciphertext:      s.Value.Ciphertext,
	})
	return string(b), err
}

// decode parses a stored record. The error never holds the record's bytes.
func decode(data []byte) (*secretstore.Secret, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode secret record: %w", err)
	}
	owner, err := secretstore.ParseOwner(r.Owner)
	if err != nil {
		return nil, fmt.Errorf("decode secret record: bad owner: %w", err)
	}
	return &secretstore.Secret{
		Owner:           owner,
		Name:            r.Name,
		Description:     r.Description,
		ValueVersion:    r.ValueVersion,
		CreateTime:      r.CreateTime,
		UpdateTime:      r.UpdateTime,
		ValueUpdateTime: r.ValueUpdateTime,
		CreateBy:        r.CreateBy,
		UpdateBy:        r.UpdateBy,
		Etag:            r.Etag,
		Value:           keyring.Envelope{KEKID: r.KEKID, WrappedKey: r.WrappedKey, Ciphertext: r.Ciphertext},
	}, nil
}

// ownerPrefix is the key prefix of owner's secrets: boltstore's key under
// the secrets prefix.
func (s *Store) ownerPrefix(o secretstore.Owner) string {
	return s.secrets + o.String() + "\x00"
}

func (s *Store) key(o secretstore.Owner, name string) string {
	return s.ownerPrefix(o) + secretstore.FoldName(name)
}

func errNotFound(o secretstore.Owner, name string) error {
	return errs.E(errs.KindNotFound, "secret %s/secrets/%s not found", o, name)
}

// Create implements secretstore.Store: a transaction putting the secret if
// its key is absent.
func (s *Store) Create(ctx context.Context, sec *secretstore.Secret, ev *auditv1.Event) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	if sec.Owner.IsZero() || sec.Name == "" {
		return errors.New("etcdstore: create: owner and name are required")
	}
	k := s.key(sec.Owner, sec.Name)
	v, err := encode(sec)
	if err != nil {
		return err
	}
	p, err := s.prepareEvent(ev)
	if err != nil {
		return err
	}
	for {
		resp, err := s.txn(ctx, "create",
			p, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)},
			[]clientv3.Op{clientv3.OpPut(k, v)},
			clientv3.OpGet(k))
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
			existing := "another secret"
			if o, err := decode(kvs[0].Value); err == nil {
				existing = o.Name
			}
			return errs.E(errs.KindAlreadyExists, "%s already has a secret named %s (names are unique without regard to case)", sec.Owner, existing)
		}
		// Only the outbox key was taken (by another replica): again.
	}
}

// get reads the secret of owner named exactly name, with its etcd entry.
func (s *Store) get(ctx context.Context, owner secretstore.Owner, name string) (*secretstore.Secret, *mvccpb.KeyValue, error) {
	resp, err := s.cli.Get(ctx, s.key(owner, name))
	if err != nil {
		return nil, nil, storeErr("get", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil, errNotFound(owner, name)
	}
	sec, err := decode(resp.Kvs[0].Value)
	if err != nil {
		return nil, nil, err
	}
	if sec.Name != name {
		return nil, nil, errNotFound(owner, name)
	}
	return sec, resp.Kvs[0], nil
}

// Get implements secretstore.Store.
func (s *Store) Get(ctx context.Context, owner secretstore.Owner, name string) (*secretstore.Secret, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	sec, _, err := s.get(ctx, owner, name)
	return sec, err
}

// List implements secretstore.Store: one range read.
func (s *Store) List(ctx context.Context, owner secretstore.Owner, after string, limit int) ([]*secretstore.Secret, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("etcdstore: list: limit must be positive, got %d", limit)
	}
	prefix := s.ownerPrefix(owner)
	start := prefix
	if after != "" {
		start = s.key(owner, after) + "\x00" // the first key after it
	}
	kvs, err := s.rangeRead(ctx, start, clientv3.GetPrefixRangeEnd(prefix), limit)
	if err != nil {
		return nil, storeErr("list", err)
	}
	return s.decodeAll(kvs)
}

// ListOwners implements secretstore.OwnersLister: one prefix range per
// owner, all read at one revision.
func (s *Store) ListOwners(ctx context.Context, owners []secretstore.Owner) ([]*secretstore.Secret, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	// A revision may be compacted away between two reads: start again, at
	// a new one.
	for attempt := 0; ; attempt++ {
		var all []*mvccpb.KeyValue
		var rev int64
		var err error
		for _, owner := range owners {
			prefix := s.ownerPrefix(owner)
			var kvs []*mvccpb.KeyValue
			kvs, rev, err = s.rangeAt(ctx, prefix, clientv3.GetPrefixRangeEnd(prefix), 0, rev)
			if err != nil {
				break
			}
			all = append(all, kvs...)
		}
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < 2 {
			continue
		}
		if err != nil {
			return nil, storeErr("list owners", err)
		}
		return s.decodeAll(all)
	}
}

// Scan implements secretstore.Scanner: one range read.
func (s *Store) Scan(ctx context.Context, afterOwner secretstore.Owner, afterName string, limit int) ([]*secretstore.Secret, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("etcdstore: scan: limit must be positive, got %d", limit)
	}
	start := s.secrets
	if !afterOwner.IsZero() {
		start = s.key(afterOwner, afterName) + "\x00"
	}
	kvs, err := s.rangeRead(ctx, start, clientv3.GetPrefixRangeEnd(s.secrets), limit)
	if err != nil {
		return nil, storeErr("scan", err)
	}
	return s.decodeAll(kvs)
}

func (s *Store) decodeAll(kvs []*mvccpb.KeyValue) ([]*secretstore.Secret, error) {
	out := make([]*secretstore.Secret, 0, len(kvs))
	for _, kv := range kvs {
		sec, err := decode(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", kv.Key, err)
		}
		out = append(out, sec)
	}
	return out, nil
}

// rangeRead reads at most limit entries of [start, end) in key order, in
// one linearizable read.
func (s *Store) rangeRead(ctx context.Context, start, end string, limit int) ([]*mvccpb.KeyValue, error) {
	resp, err := s.cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithLimit(int64(limit)),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, err
	}
	return resp.Kvs, nil
}

// rangeAt reads the entries of [start, end) in key order, at most limit (0:
// all), a page at a time, every page at revision rev (0: the current one,
// which it returns).
func (s *Store) rangeAt(ctx context.Context, start, end string, limit int, rev int64) ([]*mvccpb.KeyValue, int64, error) {
	var out []*mvccpb.KeyValue
	for start < end {
		n := scanPage
		if limit > 0 {
			n = min(n, limit-len(out))
		}
		resp, err := s.cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithLimit(int64(n)),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithRev(rev))
		if err != nil {
			return nil, 0, err
		}
		rev = resp.Header.Revision
		out = append(out, resp.Kvs...)
		if !resp.More || len(resp.Kvs) == 0 || limit > 0 && len(out) >= limit {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	return out, rev, nil
}

// Update implements secretstore.Store: read, fn, and a transaction writing
// the result if the secret has not changed since the read; else again.
func (s *Store) Update(ctx context.Context, owner secretstore.Owner, name string, fn func(*secretstore.Secret) (*auditv1.Event, error)) (*secretstore.Secret, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	k := s.key(owner, name)
	for {
		sec, kv, err := s.get(ctx, owner, name)
		if err != nil {
			return nil, err
		}
		ev, err := fn(sec)
		if err != nil {
			return nil, err
		}
		if sec.Owner != owner || sec.Name != name {
			return nil, errors.New("etcdstore: update must not change a secret's owner or name")
		}
		v, err := encode(sec)
		if err != nil {
			return nil, err
		}
		p, err := s.prepareEvent(ev)
		if err != nil {
			return nil, err
		}
		resp, err := s.txn(ctx, "update", p,
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", kv.ModRevision)},
			[]clientv3.Op{clientv3.OpPut(k, v)})
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			return sec.Clone(), nil // fn's caller may keep sec; hand back our own copy
		}
	}
}

// Delete implements secretstore.Store: read, fn, and a transaction
// deleting the secret if it has not changed since the read; else again.
func (s *Store) Delete(ctx context.Context, owner secretstore.Owner, name string, fn func(*secretstore.Secret) (*auditv1.Event, error)) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	k := s.key(owner, name)
	for {
		sec, kv, err := s.get(ctx, owner, name)
		if err != nil {
			return err
		}
		ev, err := fn(sec)
		if err != nil {
			return err
		}
		p, err := s.prepareEvent(ev)
		if err != nil {
			return err
		}
		resp, err := s.txn(ctx, "delete", p,
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", kv.ModRevision)},
			[]clientv3.Op{clientv3.OpDelete(k)})
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
	}
}

// storeErr makes an etcd error the Store's (see etcdns.Err).
var storeErr = etcdns.Err
