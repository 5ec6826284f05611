// Package kv is the storage interface of the services: an ordered
// key-value store with atomic, conditional writes (Store), one conformance
// suite every implementation passes (kvtest), one implementation on a
// bbolt file (boltkv) and one on etcd (etcdkv), and one decorator that
// traces and times the calls (Instrument). Each service encodes its
// records and indexes on top of it (docs/ARCHITECTURE.md shows where).
package kv

import (
	"context"
	"fmt"
	"sync"
)

// Store is where a service keeps its records: an ordered key-value store
// with atomic, conditional writes. A service encodes its records and its
// indexes on top of it, so the interface stays
// small and maps directly onto bbolt (one bucket, cursors, Batch) and onto
// etcd (Range, and Txn with compares).
//
// Keys are non-empty strings of "/"-separated segments and sort bytewise.
// Values are non-empty byte slices, opaque to the store. Implementations are
// safe for concurrent use, never retain or modify the slices passed in, and
// return slices the caller owns. A cancelled ctx may stop a call before it
// starts; a call that has started completes or fails atomically.
//
// Every implementation must pass kvtest.Run.
type Store interface {
	// Get returns the value stored at key. It returns an error of kind
	// errs.KindNotFound (errors.Is(err, errs.NotFound)) when key is absent.
	// When ctx carries a ReadSet (WithReadSet), Get and Scan record what
	// they read in it and may answer from a copy that lags behind.
	Get(ctx context.Context, key string) ([]byte, error)

	// GetMany returns the values stored at keys, read in one consistent
	// snapshot: values[i] is that of keys[i], nil when it is absent. It is
	// one read of the store (on etcd, one round trip for up to MaxGetMany
	// keys; more are read at the revision of the first), so that reading a
	// known set of keys costs no more than one Get. With a ReadSet in ctx
	// it records each key as Get does.
	GetMany(ctx context.Context, keys []string) ([][]byte, error)

	// ScanPrefixes returns every entry under each of prefixes, read in one
	// consistent snapshot: out[i] holds those under prefixes[i], in key
	// order. It is one read of the store (on etcd, one round trip for up to
	// MaxGetMany prefixes; more are read at the revision of the first), for
	// reading a few small ranges together, as run resolution reads a
	// team's and a user's secrets; it does not page, so a range too large
	// for one response fails: use Scan for those. With a ReadSet in ctx it
	// records each range as Scan does.
	ScanPrefixes(ctx context.Context, prefixes []string) ([][]KV, error)

	// Scan returns, in key order, the entries whose key starts with prefix
	// and sorts strictly after the key after (when after is not empty), at
	// most limit of them (limit <= 0: all). It returns an empty slice, not an
	// error, when nothing matches.
	Scan(ctx context.Context, prefix, after string, limit int) ([]KV, error)

	// Apply atomically checks conds and, when every one holds, performs
	// writes in order. When a condition does not hold it writes nothing and
	// returns a *ConflictError naming the first condition that failed
	// (conditions on keys are checked before IfUnchanged). When there is
	// no room for the writes (a full disk, etcd's space quota) it writes
	// nothing and returns DiskFull (errs.KindResourceExhausted); reads go
	// on meanwhile, and writes succeed again once there is room. When it
	// returns nil the writes are durable (on disk, fsynced) and visible to
	// every later call. Implementations may group concurrent calls into one
	// transaction and may limit a call to 128 conditions and writes
	// together; a store may also report an IfUnchanged over more reads than
	// it can check in one transaction as not holding (the caller then reads
	// again without a ReadSet).
	Apply(ctx context.Context, conds []Cond, writes []Write) error

	// Close releases the store. Calls after Close return errors.
	Close() error
}

// MaxGetMany is how many keys (or prefixes) one GetMany (ScanPrefixes)
// reads in one etcd transaction: etcd's default --max-txn-ops.
const MaxGetMany = 128

// KV is one entry of a Scan.
type KV struct {
	Key   string
	Value []byte
}

// CondOp is what a Cond checks.
type CondOp int

const (
	// IfAbsent holds when the key has no value.
	IfAbsent CondOp = iota + 1
	// IfPresent holds when the key has a value.
	IfPresent
	// IfEqual holds when the key has a value equal, byte for byte, to
	// Cond.Value.
	IfEqual
	// IfUnchanged holds when nothing read into Cond.Reads (see WithReadSet)
	// differs in the store: no key read has changed, appeared or gone, and
	// no key has appeared in a range a Scan read (a key rewritten with the
	// value it had may count as changed). It has no Key; the store that
	// served the reads checks it.
	IfUnchanged
)

// Cond is a condition on one key, checked by Apply.
type Cond struct {
	Key   string
	Op    CondOp
	Value []byte   // for IfEqual
	Reads *ReadSet // for IfUnchanged
}

// Absent is the condition "key has no value".
func Absent(key string) Cond { return Cond{Key: key, Op: IfAbsent} }

// Present is the condition "key has a value".
func Present(key string) Cond { return Cond{Key: key, Op: IfPresent} }

// Equal is the condition "key holds exactly value".
func Equal(key string, value []byte) Cond { return Cond{Key: key, Op: IfEqual, Value: value} }

// Unchanged is the condition "nothing read into rs has changed".
func Unchanged(rs *ReadSet) Cond { return Cond{Op: IfUnchanged, Reads: rs} }

// Holds reports whether c holds for a key whose current value is value
// (nil: absent). Stores use it so that every one reads conditions alike.
// It is false for IfUnchanged, which is not about one key.
func (c Cond) Holds(value []byte) bool {
	switch c.Op {
	case IfAbsent:
		return value == nil
	case IfPresent:
		return value != nil
	case IfEqual:
		return value != nil && string(value) == string(c.Value)
	}
	return false
}

// Write is one change made by Apply: it stores Value at Key, or, when
// Delete is set, removes Key (removing an absent key is not an error).
type Write struct {
	Key    string
	Value  []byte
	Delete bool
}

// Put is the write "store value at key".
func Put(key string, value []byte) Write { return Write{Key: key, Value: value} }

// Delete is the write "remove key".
func Delete(key string) Write { return Write{Key: key, Delete: true} }

// ConflictError is returned by Apply when a condition does not hold.
type ConflictError struct {
	Index int  // position of the failed condition in conds
	Cond  Cond // the failed condition
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("store: condition %d on key %q does not hold", e.Index, e.Cond.Key)
}

// Validated reads.
//
// A store may serve reads more cheaply when they are checked afterwards:
// etcd serves a serializable read from whichever member the client asks,
// with no quorum round (a linearizable read's ReadIndex), but that member
// may lag behind the cluster. Run resolution reads what its decision
// depends on that way, and makes "none of it has changed" a condition of
// the one write that records the decision (Unchanged). A stale read then
// fails that write, and the resolution is made again with ordinary reads:
// a recorded decision is exactly what the store held when it was
// recorded — on bbolt as on etcd, and stricter than reading each input
// current at its own moment, which misses a change made between the read
// and the write.

// ReadSet collects what the reads of one request saw, in a form private to
// the store that served them, for the condition Unchanged. It is safe for
// concurrent use.
type ReadSet struct {
	mu    sync.Mutex
	items []any
}

// Add records one read. Stores call it.
func (rs *ReadSet) Add(item any) {
	rs.mu.Lock()
	rs.items = append(rs.items, item)
	rs.mu.Unlock()
}

// Items returns the reads recorded so far, in order. Stores call it.
func (rs *ReadSet) Items() []any {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]any(nil), rs.items...)
}

type readSetKey struct{}

// WithReadSet returns a context whose reads (Get, Scan) are recorded in a
// new ReadSet, and may be served by the store from a copy that lags behind
// it; the request checks them with Unchanged(rs) in its Apply.
func WithReadSet(ctx context.Context) (context.Context, *ReadSet) {
	rs := &ReadSet{}
	return context.WithValue(ctx, readSetKey{}, rs), rs
}

// ReadSetFrom returns the ReadSet of ctx, or nil. Stores call it.
func ReadSetFrom(ctx context.Context) *ReadSet {
	rs, _ := ctx.Value(readSetKey{}).(*ReadSet)
	return rs
}
