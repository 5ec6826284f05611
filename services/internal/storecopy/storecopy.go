// Package storecopy copies a service's data between its two kinds of
// store, a bbolt file and a namespace of an etcd cluster, for migrating a
// deployment from one to the other (services/cmd/ozmigrate).
//
// The etcd stores mirror the bbolt ones key for key: bbolt top-level
// bucket B, key K, value V is etcd key <namespace>B/K with value V, the
// same bytes. So a copy decodes nothing: values stay the opaque bytes they
// are (a secret's value stays the ciphertext it is stored as), and no
// value ever appears in an error.
//
// A copy reads its source in one consistent snapshot (one bbolt read
// transaction; every etcd page at the revision of the first), refuses a
// destination that holds anything, writes etcd in transactions of at most
// MaxTxnOps writes and bbolt in batches, and then reads the destination
// back and compares its Result (counts and a digest of every pair) with
// the source's.
//
// Only flat stores are copied: a bucket nested in a bucket, a bucket name
// that is empty or holds "/", or an etcd key under the namespace that is
// not B/K is refused (ErrLayout). An empty bbolt bucket has no etcd form:
// it is counted (Result.EmptyBuckets) but not copied; the services create
// their buckets when they open a file.
//
// Nor has a bbolt bucket's sequence (NextSequence), which no service uses:
// it is not copied.
package storecopy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// MaxTxnOps bounds the writes (and, separately, the compares) of one etcd
// transaction: etcd's default --max-txn-ops.
const MaxTxnOps = 128

const (
	// maxTxnBytes bounds the keys and values of one etcd transaction,
	// under etcd's default --max-request-bytes (1.5 MiB). A pair larger
	// than that goes alone.
	maxTxnBytes = 1 << 20
	// etcdPage is how many keys one etcd range returns at most.
	etcdPage = 512
	// boltBatchKeys and boltBatchBytes bound one bbolt write transaction.
	boltBatchKeys  = 1024
	boltBatchBytes = 8 << 20
)

var (
	// ErrNotEmpty is returned when the destination holds a key under the
	// namespace (etcd) or a bucket (bbolt). Nothing is written.
	ErrNotEmpty = errors.New("destination not empty")
	// ErrLayout is returned for a source that is not a flat store of
	// buckets (a nested bucket, a bucket name that is empty or holds "/",
	// an etcd key that is not <namespace>B/K).
	ErrLayout = errors.New("not a flat store of buckets")
	// ErrMismatch is returned when the destination, read back after the
	// copy, does not match the source.
	ErrMismatch = errors.New("the copy does not match the source")
)

// Result summarises a store's contents, as a copy read or wrote them.
type Result struct {
	Buckets int   // buckets holding at least one key
	Keys    int   // keys, all buckets together
	Bytes   int64 // lengths of the keys (within their bucket) and values, summed

	// Digest is the SHA-256 of every (bucket, key, value), in the order
	// of the etcd keys (buckets ordered by name+"/", then keys in byte
	// order), each field preceded by its length as a uvarint. It is the
	// same for a bbolt file and the etcd namespace it was copied to.
	Digest [sha256.Size]byte

	// EmptyBuckets counts the bbolt buckets without keys, which are not
	// copied (etcd has no form for them). Always 0 for etcd.
	EmptyBuckets int
}

// Same reports whether r and o describe the same contents (EmptyBuckets
// aside).
func (r Result) Same(o Result) bool {
	return r.Buckets == o.Buckets && r.Keys == o.Keys && r.Bytes == o.Bytes && r.Digest == o.Digest
}

func (r Result) String() string {
	return fmt.Sprintf("%d keys in %d buckets (%d bytes), digest sha256:%x", r.Keys, r.Buckets, r.Bytes, r.Digest)
}

// summer builds a Result from the pairs it is given in order.
type summer struct {
	h      hash.Hash
	r      Result
	bucket []byte // of the last pair
	buf    []byte
}

func newSummer() *summer { return &summer{h: sha256.New()} }

func (s *summer) add(bucket, key, value []byte) {
	if s.r.Keys == 0 || !bytes.Equal(bucket, s.bucket) {
		s.r.Buckets++
		s.bucket = append(s.bucket[:0], bucket...)
	}
	s.r.Keys++
	s.r.Bytes += int64(len(key) + len(value))
	s.buf = s.buf[:0]
	for _, f := range [][]byte{bucket, key, value} {
		s.buf = binary.AppendUvarint(s.buf, uint64(len(f)))
		s.buf = append(s.buf, f...)
	}
	s.h.Write(s.buf)
}

func (s *summer) result() Result {
	r := s.r
	s.h.Sum(r.Digest[:0])
	return r
}

func checkNamespace(ns string) error {
	if ns == "" || ns[len(ns)-1] != '/' {
		return fmt.Errorf("namespace %q: must be non-empty and end with \"/\"", ns)
	}
	return nil
}

// eachBolt calls fn with every pair of tx in Digest order, and returns the
// number of empty buckets. The slices fn gets are valid until tx ends.
func eachBolt(tx *bolt.Tx, fn func(bucket, key, value []byte) error) (empty int, err error) {
	var names [][]byte
	err = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if len(name) == 0 || bytes.IndexByte(name, '/') >= 0 {
			return fmt.Errorf("%w: bucket %q: a bucket name must be non-empty and hold no \"/\"", ErrLayout, name)
		}
		names = append(names, name)
		return nil
	})
	if err != nil {
		return 0, err
	}
	// In etcd, "outbox/…" sorts before "outbox_meta/…" but "a!/…"
	// before "a/…": order the buckets as their etcd prefixes.
	slices.SortFunc(names, func(a, b []byte) int {
		return bytes.Compare(append(slices.Clip(a), '/'), append(slices.Clip(b), '/'))
	})
	for _, name := range names {
		b := tx.Bucket(name)
		c := b.Cursor()
		k, v := c.First()
		if k == nil {
			empty++
			continue
		}
		for ; k != nil; k, v = c.Next() {
			if v == nil && b.Bucket(k) != nil {
				return 0, fmt.Errorf("%w: bucket %q holds a nested bucket %q: only flat buckets can be copied", ErrLayout, name, k)
			}
			if err := fn(name, k, v); err != nil {
				return 0, err
			}
		}
	}
	return empty, nil
}

// eachEtcd calls fn with every pair under namespace, in key order, reading
// every page at the revision of the first.
func eachEtcd(ctx context.Context, cli *clientv3.Client, ns string, fn func(bucket, key, value []byte) error) error {
	start, end := ns, clientv3.GetPrefixRangeEnd(ns)
	var rev int64 // of the first page, for every other one
	for {
		resp, err := cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithLimit(etcdPage),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithRev(rev))
		if errors.Is(err, rpctypes.ErrCompacted) {
			return fmt.Errorf("etcd read %s: revision %d was compacted during the copy: retry: %w", ns, rev, err)
		}
		if err != nil {
			return fmt.Errorf("etcd read %s: %w", ns, err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			rel := kv.Key[len(ns):]
			i := bytes.IndexByte(rel, '/')
			if i <= 0 || i == len(rel)-1 {
				return fmt.Errorf("%w: etcd key %q is not %sBUCKET/KEY", ErrLayout, kv.Key, ns)
			}
			if err := fn(rel[:i], rel[i+1:], kv.Value); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// SummarizeBolt reads db in one transaction and returns what a copy of it
// would copy.
func SummarizeBolt(db *bolt.DB) (Result, error) {
	s := newSummer()
	var empty int
	err := db.View(func(tx *bolt.Tx) error {
		var err error
		empty, err = eachBolt(tx, func(b, k, v []byte) error { s.add(b, k, v); return nil })
		return err
	})
	if err != nil {
		return Result{}, err
	}
	r := s.result()
	r.EmptyBuckets = empty
	return r, nil
}

// SummarizeEtcd reads namespace at one revision and returns what a copy
// of it would copy.
func SummarizeEtcd(ctx context.Context, cli *clientv3.Client, namespace string) (Result, error) {
	if err := checkNamespace(namespace); err != nil {
		return Result{}, err
	}
	s := newSummer()
	err := eachEtcd(ctx, cli, namespace, func(b, k, v []byte) error { s.add(b, k, v); return nil })
	if err != nil {
		return Result{}, err
	}
	return s.result(), nil
}

// CheckBoltEmpty returns an ErrNotEmpty error when db holds a bucket.
func CheckBoltEmpty(db *bolt.DB) error {
	var n int
	err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func([]byte, *bolt.Bucket) error { n++; return nil })
	})
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%w: %s holds %d buckets; copy into a new file", ErrNotEmpty, db.Path(), n)
	}
	return nil
}

// CheckEtcdEmpty returns an ErrNotEmpty error when etcd holds a key under
// namespace.
func CheckEtcdEmpty(ctx context.Context, cli *clientv3.Client, namespace string) error {
	if err := checkNamespace(namespace); err != nil {
		return err
	}
	resp, err := cli.Get(ctx, namespace, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("etcd count %s: %w", namespace, err)
	}
	if resp.Count > 0 {
		return fmt.Errorf("%w: etcd holds %d keys under %s; copy into an empty namespace", ErrNotEmpty, resp.Count, namespace)
	}
	return nil
}

// BoltToEtcd copies every pair of db into etcd under namespace, which must
// be empty, and verifies the copy. db is read in one read transaction,
// held for the whole copy.
//
// The first transaction also checks that namespace is still empty, and
// every later one that the keys it creates are absent, so that a copy
// never overwrites another writer's key. When a transaction fails after
// others succeeded, the keys written stay in etcd: the error says how
// many, and they must be removed (etcdctl del --prefix NAMESPACE) before
// a retry. Returns ErrNotEmpty, ErrLayout or ErrMismatch errors, and
// etcd's.
func BoltToEtcd(ctx context.Context, db *bolt.DB, cli *clientv3.Client, namespace string) (Result, error) {
	if err := CheckEtcdEmpty(ctx, cli, namespace); err != nil {
		return Result{}, err
	}
	w := &etcdWriter{cli: cli, ns: namespace}
	s := newSummer()
	var empty int
	err := db.View(func(tx *bolt.Tx) error {
		var err error
		empty, err = eachBolt(tx, func(b, k, v []byte) error {
			s.add(b, k, v)
			return w.put(ctx, b, k, v)
		})
		if err != nil {
			return err
		}
		return w.flush(ctx)
	})
	if err != nil {
		if w.written > 0 {
			return Result{}, fmt.Errorf("%w (%d keys were written under %s before the failure: remove them before retrying)", err, w.written, namespace)
		}
		return Result{}, err
	}
	src := s.result()
	src.EmptyBuckets = empty
	dst, err := SummarizeEtcd(ctx, cli, namespace)
	if err != nil {
		return Result{}, fmt.Errorf("verify: %w", err)
	}
	if !src.Same(dst) {
		return Result{}, fmt.Errorf("%w: bolt %s has %v; etcd %s has %v (another writer?)", ErrMismatch, db.Path(), src, namespace, dst)
	}
	return src, nil
}

// etcdWriter puts pairs into etcd, in transactions.
type etcdWriter struct {
	cli     *clientv3.Client
	ns      string
	cmps    []clientv3.Cmp
	ops     []clientv3.Op
	bytes   int
	written int // keys committed
}

func (w *etcdWriter) put(ctx context.Context, bucket, key, value []byte) error {
	k := w.ns + string(bucket) + "/" + string(key)
	n := 2*len(k) + len(value)
	if len(w.ops) == MaxTxnOps || len(w.ops) > 0 && w.bytes+n > maxTxnBytes {
		if err := w.flush(ctx); err != nil {
			return err
		}
	}
	if w.written > 0 {
		// The first transaction checks the whole namespace instead.
		w.cmps = append(w.cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
	}
	w.ops = append(w.ops, clientv3.OpPut(k, string(value)))
	w.bytes += n
	return nil
}

func (w *etcdWriter) flush(ctx context.Context) error {
	if len(w.ops) == 0 {
		return nil
	}
	cmps := w.cmps
	if w.written == 0 {
		// Every key under the namespace absent (a compare on an empty
		// range holds).
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(w.ns), "=", 0).WithPrefix())
	}
	resp, err := w.cli.Txn(ctx).If(cmps...).Then(w.ops...).Commit()
	switch {
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("etcd write %s: a transaction of %d keys and %d bytes is larger than etcd accepts (--max-request-bytes): %w",
			w.ns, len(w.ops), w.bytes, err)
	case err != nil:
		return fmt.Errorf("etcd write %s: %w", w.ns, err)
	case !resp.Succeeded && w.written == 0:
		return fmt.Errorf("%w: another writer added keys under %s as the copy began", ErrNotEmpty, w.ns)
	case !resp.Succeeded:
		return fmt.Errorf("etcd write %s: another writer created one of the keys being copied", w.ns)
	}
	w.written += len(w.ops)
	w.cmps, w.ops, w.bytes = w.cmps[:0], w.ops[:0], 0
	return nil
}

// EtcdToBolt copies every pair under namespace into db, which must hold no
// bucket, and verifies the copy. etcd is read at one revision: a copy that
// takes longer than etcd keeps that revision (it may be compacted) fails,
// and can be retried.
//
// db is written in batches; when one fails, or the verification does, the
// buckets written are deleted again (the file held none), leaving db as
// it was. Returns ErrNotEmpty, ErrLayout or ErrMismatch errors, and etcd's
// and bbolt's.
func EtcdToBolt(ctx context.Context, cli *clientv3.Client, namespace string, db *bolt.DB) (Result, error) {
	if err := checkNamespace(namespace); err != nil {
		return Result{}, err
	}
	if err := CheckBoltEmpty(db); err != nil {
		return Result{}, err
	}
	w := &boltWriter{db: db}
	s := newSummer()
	err := eachEtcd(ctx, cli, namespace, func(b, k, v []byte) error {
		if len(k) > bolt.MaxKeySize {
			return fmt.Errorf("%w: bucket %q: a key of %d bytes, longer than bbolt's limit (%d)", ErrLayout, b, len(k), bolt.MaxKeySize)
		}
		s.add(b, k, v)
		return w.put(b, k, v)
	})
	if err == nil {
		err = w.flush()
	}
	var src, dst Result
	if err == nil {
		src = s.result()
		dst, err = SummarizeBolt(db)
		if err == nil && !src.Same(dst) {
			err = fmt.Errorf("%w: etcd %s has %v; bolt %s has %v", ErrMismatch, namespace, src, db.Path(), dst)
		}
	}
	if err != nil {
		if w.written > 0 {
			if rerr := w.rollback(); rerr != nil {
				return Result{}, fmt.Errorf("%w; and removing the partial copy failed, %s holds it: %v", err, db.Path(), rerr)
			}
		}
		return Result{}, err
	}
	return src, nil
}

// boltWriter puts pairs into a bbolt file, in batches.
type boltWriter struct {
	db      *bolt.DB
	batch   []pair
	bytes   int
	written int
}

type pair struct{ bucket, key, value []byte }

func (w *boltWriter) put(bucket, key, value []byte) error {
	// etcd's response is decoded afresh for each page: the slices stay
	// valid.
	w.batch = append(w.batch, pair{bucket, key, value})
	w.bytes += len(key) + len(value)
	if len(w.batch) >= boltBatchKeys || w.bytes >= boltBatchBytes {
		return w.flush()
	}
	return nil
}

func (w *boltWriter) flush() error {
	if len(w.batch) == 0 {
		return nil
	}
	err := w.db.Update(func(tx *bolt.Tx) error {
		var b *bolt.Bucket
		var name []byte // of b
		for _, p := range w.batch {
			if b == nil || !bytes.Equal(p.bucket, name) {
				var err error
				if b, err = tx.CreateBucketIfNotExists(p.bucket); err != nil {
					return fmt.Errorf("create bucket %q: %w", p.bucket, err)
				}
				name = p.bucket
			}
			if err := b.Put(p.key, p.value); err != nil {
				return fmt.Errorf("bucket %q: put a key of %d bytes: %w", p.bucket, len(p.key), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bolt write %s: %w", w.db.Path(), err)
	}
	w.written += len(w.batch)
	w.batch, w.bytes = w.batch[:0], 0
	return nil
}

// rollback deletes every bucket of the file, which held none before the
// copy.
func (w *boltWriter) rollback() error {
	return w.db.Update(func(tx *bolt.Tx) error {
		var names [][]byte
		err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, bytes.Clone(name))
			return nil
		})
		if err != nil {
			return err
		}
		for _, name := range names {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
}
