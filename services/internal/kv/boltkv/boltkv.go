// Package boltkv implements kv.Store on a bbolt file: one bucket
// of records in key order, plus a meta bucket with the schema version.
// Writes go through db.Batch, so concurrent writers share one fsync.
package boltkv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/groupcommit"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// DefaultTimeout is how long Open waits for the file lock.
const DefaultTimeout = 5 * time.Second

// The buckets, declared once and all created by Open.
var (
	bucketRecords = []byte("records")
	bucketMeta    = []byte("meta")
	buckets       = [][]byte{bucketRecords, bucketMeta}
)

var (
	keySchema     = []byte("schema")
	schemaVersion = []byte("1")
)

// Store is a kv.Store on a bbolt file. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string // for the operator, in a DiskFull error
	// commit groups concurrent writes into one transaction and fsync
	// without holding a lone write back (DB.Batch would, for its delay:
	// a run resolution is usually a lone write).
	commit *groupcommit.Committer
}

var _ kv.Store = (*Store)(nil)

// Open opens (creating it and its directory if needed) the database at
// path, waiting at most timeout (0: DefaultTimeout) for another process to
// release it.
func Open(path string, timeout time.Duration) (*Store, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: locked by another process (is a service or tool still running on it?): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range buckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keySchema); {
		case v == nil:
			return meta.Put(keySchema, schemaVersion)
		case !bytes.Equal(v, schemaVersion):
			return fmt.Errorf("schema version %q, this build reads %q", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &Store{db: db, path: path, commit: groupcommit.New(db)}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Get implements kv.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bucketRecords).Get([]byte(key))) // only valid inside the transaction
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rs := kv.ReadSetFrom(ctx); rs != nil {
		rs.Add(readGet{key: key, value: out})
	}
	if out == nil {
		return nil, errs.E(errs.KindNotFound, "not found")
	}
	return out, nil
}

// GetMany implements kv.Store: one read transaction.
func (s *Store) GetMany(ctx context.Context, keys []string) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		for i, k := range keys {
			out[i] = bytes.Clone(b.Get([]byte(k))) // only valid inside the transaction
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rs := kv.ReadSetFrom(ctx); rs != nil {
		for i, k := range keys {
			rs.Add(readGet{key: k, value: out[i]})
		}
	}
	return out, nil
}

// ScanPrefixes implements kv.Store: one read transaction.
func (s *Store) ScanPrefixes(ctx context.Context, prefixes []string) ([][]kv.KV, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([][]kv.KV, len(prefixes))
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		for i, p := range prefixes {
			out[i] = scanBucket(b, p, "", 0)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rs := kv.ReadSetFrom(ctx); rs != nil {
		for i, p := range prefixes {
			rs.Add(readScan{prefix: p, kvs: out[i]})
		}
	}
	return out, nil
}

// A bbolt store's reads are current when made; IfUnchanged reads them
// again inside the writing transaction and compares.

// readGet is a Get recorded in a ReadSet: value nil when key was absent.
type readGet struct {
	key   string
	value []byte
}

// readScan is a Scan recorded in a ReadSet.
type readScan struct {
	prefix, after string
	limit         int
	kvs           []kv.KV
}

// unchanged reports whether every read of rs sees the same in b.
func unchanged(b *bolt.Bucket, rs *kv.ReadSet) bool {
	for _, item := range rs.Items() {
		switch r := item.(type) {
		case readGet:
			if v := b.Get([]byte(r.key)); (v == nil) != (r.value == nil) || !bytes.Equal(v, r.value) {
				return false
			}
		case readScan:
			now := scanBucket(b, r.prefix, r.after, r.limit)
			if len(now) != len(r.kvs) {
				return false
			}
			for i := range now {
				if now[i].Key != r.kvs[i].Key || !bytes.Equal(now[i].Value, r.kvs[i].Value) {
					return false
				}
			}
		default: // recorded by another store
			return false
		}
	}
	return true
}

// Scan implements kv.Store.
func (s *Store) Scan(ctx context.Context, prefix, after string, limit int) ([]kv.KV, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []kv.KV
	err := s.db.View(func(tx *bolt.Tx) error {
		out = scanBucket(tx.Bucket(bucketRecords), prefix, after, limit)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rs := kv.ReadSetFrom(ctx); rs != nil {
		rs.Add(readScan{prefix: prefix, after: after, limit: limit, kvs: out})
	}
	return out, nil
}

// scanBucket is Scan inside a transaction; the entries are copies.
func scanBucket(b *bolt.Bucket, prefix, after string, limit int) []kv.KV {
	out := []kv.KV{}
	c := b.Cursor()
	k, v := c.Seek([]byte(max(prefix, after)))
	if after != "" && string(k) == after {
		k, v = c.Next()
	}
	for ; k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, kv.KV{Key: string(k), Value: bytes.Clone(v)})
	}
	return out
}

// Apply implements kv.Store. Concurrent calls are grouped into one
// transaction by db.Batch, which may run the function more than once: it
// only reads and writes inside the transaction, so that is harmless.
//
// A commit that fails for want of space (writing or syncing pages,
// growing the file) is kv.DiskFull. bbolt rolls such a transaction back
// and keeps the database open and sound: the pages it wrote were free
// ones, and the meta page that would have made them current was not
// written. So reads go on, and a later write succeeds once there is room
// (TestDiskFull). The exception is an fsync that fails after the meta
// page was written, which bbolt cannot take back: the write may then be
// there although it was reported failed. A full disk fails the page
// writes before that, on the usual file systems.
func (s *Store) Apply(ctx context.Context, conds []kv.Cond, writes []kv.Write) error {
	for _, c := range conds {
		if c.Key == "" && c.Op != kv.IfUnchanged || c.Op == kv.IfUnchanged && c.Reads == nil {
			return errors.New("store: condition on an empty key, or IfUnchanged without a ReadSet")
		}
	}
	for _, w := range writes {
		if w.Key == "" || !w.Delete && len(w.Value) == 0 {
			return fmt.Errorf("store: write of key %q: empty key or value", w.Key)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.commit.Do(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		for i, c := range conds {
			if c.Op != kv.IfUnchanged && !c.Holds(b.Get([]byte(c.Key))) {
				return &kv.ConflictError{Index: i, Cond: c}
			}
		}
		for i, c := range conds {
			if c.Op == kv.IfUnchanged && !unchanged(b, c.Reads) {
				return &kv.ConflictError{Index: i, Cond: c}
			}
		}
		for _, w := range writes {
			var err error
			if w.Delete {
				err = b.Delete([]byte(w.Key))
			} else {
				err = b.Put([]byte(w.Key), w.Value)
			}
			if err != nil {
				return fmt.Errorf("store: write %q: %w", w.Key, err)
			}
		}
		return nil
	})
	if kv.IsNoSpace(err) {
		return kv.DiskFull(s.path, err)
	}
	return err
}
