package resolver

import (
	"context"
	"fmt"
)

// Store is where the resolver keeps its records: an ordered key-value store
// with atomic, conditional writes. The Directory (and run resolution, later)
// encodes its records and their indexes on top of it, so the interface stays
// small and maps directly onto bbolt (one bucket, cursors, Batch) and onto
// etcd (Range, and Txn with compares).
//
// Keys are non-empty strings of "/"-separated segments and sort bytewise.
// Values are non-empty byte slices, opaque to the store. Implementations are
// safe for concurrent use, never retain or modify the slices passed in, and
// return slices the caller owns. A cancelled ctx may stop a call before it
// starts; a call that has started completes or fails atomically.
//
// Every implementation must pass storetest.Run.
type Store interface {
	// Get returns the value stored at key. It returns an error of kind
	// errs.KindNotFound (errors.Is(err, errs.NotFound)) when key is absent.
	Get(ctx context.Context, key string) ([]byte, error)

	// Scan returns, in key order, the entries whose key starts with prefix
	// and sorts strictly after the key after (when after is not empty), at
	// most limit of them (limit <= 0: all). It returns an empty slice, not an
	// error, when nothing matches.
	Scan(ctx context.Context, prefix, after string, limit int) ([]KV, error)

	// Apply atomically checks conds and, when every one holds, performs
	// writes in order. When a condition does not hold it writes nothing and
	// returns a *ConflictError naming the first condition that failed. When
	// it returns nil the writes are durable (on disk, fsynced) and visible to
	// every later call. Implementations may group concurrent calls into one
	// transaction and may limit a call to 128 conditions and writes together.
	Apply(ctx context.Context, conds []Cond, writes []Write) error

	// Close releases the store. Calls after Close return errors.
	Close() error
}

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
)

// Cond is a condition on one key, checked by Apply.
type Cond struct {
	Key   string
	Op    CondOp
	Value []byte // for IfEqual
}

// Absent is the condition "key has no value".
func Absent(key string) Cond { return Cond{Key: key, Op: IfAbsent} }

// Present is the condition "key has a value".
func Present(key string) Cond { return Cond{Key: key, Op: IfPresent} }

// Equal is the condition "key holds exactly value".
func Equal(key string, value []byte) Cond { return Cond{Key: key, Op: IfEqual, Value: value} }

// Holds reports whether c holds for a key whose current value is value
// (nil: absent). Stores use it so that every one reads conditions alike.
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
