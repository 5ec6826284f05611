// Package kvstore is the audit log's record layout on the services'
// storage interface, kv.Store: the one implementation of audit.Store, on a
// bbolt file (kv/boltkv) as on etcd (kv/etcdkv), proved on both by the
// conformance suite audit/storetest.
//
// # Layout 2
//
// Each chain is named by its parent name, {chain}: "teams/{team}", or
// "system" for the events of no team (auditchain.Name). Team ids and event
// ids hold no "/", so every key below is unambiguous and a prefix ending
// in "/" scans exactly one chain.
//
//	meta/layout             "audit/2": the store holds an audit log of this layout
//	events/{chain}/{seq}    the Event, deterministic protobuf, chain fields included;
//	                        {seq} is 20 decimal digits, so keys sort by seq
//	ids/{event id}          {chain}/{seq}, the seq in decimal digits: where the event
//	                        with that id is (a short value: one is written per event)
//	heads/{chain}           the chain's head: seq (8 bytes, big-endian) + hash
//
// A head is kept apart from the events, so that events removed from a
// chain's end are noticed by VerifyChain. Layout 1 (bbolt buckets events,
// ids and heads; etcd keys <namespace>events/…, ids/…, heads/…) is that of
// the stores before this one: OpenBoltKV upgrades a bbolt file in place,
// `ozauditd upgrade` (UpgradeEtcd) an etcd namespace (upgrade.go).
//
// # Appends
//
// A chain's head advances by compare-and-swap: each Apply holds, for each
// chain it extends, the condition that the head is the one its events were
// linked from (Equal, or Absent for an empty chain), and conditions that
// the ids it stores are not stored yet (append.go). So two writers — two
// goroutines, two processes on one etcd — never fork a chain, and an event
// id is stored once in the whole log, whichever writer got it, even for
// two chains. When a condition fails, the writer reads again what it named
// (the heads, or the ids: those now stored are skipped as duplicates) and
// links again. The Store remembers the heads it last wrote or read, so an
// uncontended Apply needs no read of a head before it.
//
// Concurrent Append calls of one Store are combined, as bbolt's group
// commit would: one goroutine writes the events of every waiting call, in
// call order, so that the calls of one process never contend for a head,
// and share Applies (on bbolt, one transaction and one fsync).
//
// One Apply holds at most Options.MaxOps conditions and writes and
// Options.MaxBytes bytes. With kv.Store's portable bound of 128 (etcd's
// default --max-txn-ops), an Apply holds about 60 events (40 when each id
// needs a condition of its own). A larger Append is split into several
// Applies, in order, each a valid extension of the chains it touches,
// atomic and durable. Append then gives prefix atomicity: when it fails
// part-way, a prefix of its new events (in its order) is stored and
// chained, and none of the rest. Since appends are idempotent by event id,
// a retry of the same call (what an outbox shipper does after any error)
// stores exactly the rest, and the log ends as if the first call had been
// all-or-nothing. On a store that takes any Apply (boltkv: BoltOptions),
// an Append is one Apply, all or nothing.
package kvstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// Keys of the layout (see the package doc).
const (
	keyLayout    = "meta/layout"
	layout       = "audit/2"
	prefixEvents = "events/"
	prefixIDs    = "ids/"
	prefixHeads  = "heads/"
)

// chain returns the key segment of team's chain: its parent name.
func chain(team string) string { return auditchain.Name(team) }

func chainPrefix(team string) string { return prefixEvents + chain(team) + "/" }

// eventKey is the key of team's event seq: 20 decimal digits, zero-padded.
func eventKey(team string, seq int64) string {
	p := chainPrefix(team)
	b := make([]byte, 0, len(p)+20)
	b = append(b, p...)
	d := strconv.AppendUint(nil, uint64(seq), 10)
	for range 20 - len(d) {
		b = append(b, '0')
	}
	return string(append(b, d...))
}

func idKey(id string) string { return prefixIDs + id }

// idValue is the value of an id's key: where its event is.
func idValue(team string, seq int64) []byte {
	return strconv.AppendInt(append([]byte(chain(team)), '/'), seq, 10)
}

func headKey(team string) string { return prefixHeads + chain(team) }

func encodeHead(h auditchain.Head) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(h.Hash)), uint64(h.Seq)), h.Hash...)
}

func decodeHead(team string, v []byte) (auditchain.Head, error) {
	if len(v) != 8+auditchain.HashSize {
		return auditchain.Head{}, fmt.Errorf("head of chain %s: corrupt record", chain(team))
	}
	return auditchain.Head{Seq: int64(binary.BigEndian.Uint64(v)), Hash: slices.Clone(v[8:])}, nil
}

var marshal = proto.MarshalOptions{Deterministic: true}

func decode(key string, v []byte) (*auditv1.Event, error) {
	ev := &auditv1.Event{}
	if err := proto.Unmarshal(v, ev); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	return ev, nil
}

// Options tune a Store. The zero value suits every kv.Store.
type Options struct {
	// MaxOps bounds the conditions and writes of one Apply: 0 is 128,
	// what every kv.Store takes; Unbounded is no bound, for a store that
	// takes any number (boltkv). At least 5 (one event).
	MaxOps int
	// MaxBytes bounds the bytes of the keys and values one Apply writes
	// (an event alone over it still goes, alone): 0 is 1 MiB, under
	// etcd's default request limit (1.5 MiB); Unbounded is no bound.
	MaxBytes int
}

// Unbounded, as Options.MaxOps or Options.MaxBytes, is no bound.
const Unbounded = -1

// BoltOptions are the Options of a Store on boltkv, which takes an Apply of
// any size: an Append is one transaction and one fsync.
var BoltOptions = Options{MaxOps: Unbounded, MaxBytes: Unbounded}

const (
	unbounded       = int(^uint(0) >> 1)
	defaultMaxOps   = 128
	defaultMaxBytes = 1 << 20
	// What an Apply's conditions and writes cost (append.go): an event,
	// when its id has a condition of its own (opsPerEvent) or not
	// (writesPerEvent: the event and its id); and each chain it extends
	// (the head's condition and write).
	opsPerEvent    = 3
	writesPerEvent = 2
	opsPerChain    = 2
)

// Store is an audit.Store over a kv.Store. It is safe for concurrent use,
// by several goroutines and by several Stores (replicas) on one kv.Store
// (one etcd namespace).
type Store struct {
	kv       kv.Store
	maxOps   int
	maxBytes int

	mu      sync.Mutex
	pending []*call // Append calls waiting for the writer
	writing bool    // a writer goroutine runs

	// heads caches, for the writer alone, each chain's head value as it
	// last wrote or read it (nil: no head, an empty chain): a guess,
	// which the Apply's conditions check.
	heads map[string][]byte
}

var _ audit.Store = (*Store)(nil)

// New returns the audit log kept in s (opened by OpenBoltKV or OpenEtcdKV,
// which upgrade or refuse layout 1, and usually wrapped by kv.Instrument),
// whose Apply takes what opts say. On a store that holds nothing it
// records the layout; it refuses a store that holds records but not the
// audit log's layout 2 (another service's store, or one a newer build
// wrote), naming what it found. It returns s's errors when s cannot be
// read. The Store does not own s: close s after the Store's last call.
func New(ctx context.Context, s kv.Store, opts Options) (*Store, error) {
	st := &Store{kv: s, maxOps: opts.MaxOps, maxBytes: opts.MaxBytes, heads: map[string][]byte{}}
	switch {
	case st.maxOps == 0:
		st.maxOps = defaultMaxOps
	case st.maxOps == Unbounded:
		st.maxOps = unbounded
	case st.maxOps < opsPerEvent+opsPerChain:
		return nil, fmt.Errorf("audit store: MaxOps %d: at least %d", opts.MaxOps, opsPerEvent+opsPerChain)
	}
	switch {
	case st.maxBytes == 0:
		st.maxBytes = defaultMaxBytes
	case st.maxBytes == Unbounded:
		st.maxBytes = unbounded
	}
	if err := claim(ctx, s); err != nil {
		return nil, err
	}
	return st, nil
}

// claim checks the layout of s, recording it on an empty store.
func claim(ctx context.Context, s kv.Store) error {
	for range 2 {
		v, err := s.Get(ctx, keyLayout)
		switch {
		case err == nil && string(v) == layout:
			return nil
		case err == nil:
			return fmt.Errorf("audit store: layout %q, this build reads %q", v, layout)
		case !errors.Is(err, errs.NotFound):
			return fmt.Errorf("audit store: read layout: %w", err)
		}
		some, err := s.Scan(ctx, "", "", 1)
		if err != nil {
			return fmt.Errorf("audit store: %w", err)
		}
		if len(some) > 0 {
			return fmt.Errorf("audit store: holds records (%q…) but no audit log layout (%s): not an audit log", some[0].Key, keyLayout)
		}
		err = s.Apply(ctx, []kv.Cond{kv.Absent(keyLayout)}, []kv.Write{kv.Put(keyLayout, []byte(layout))})
		if _, lost := errors.AsType[*kv.ConflictError](err); !lost {
			if err != nil {
				return fmt.Errorf("audit store: record layout: %w", err)
			}
			return nil
		}
		// Another replica recorded it first: read it.
	}
	return errors.New("audit store: layout recorded and gone again")
}

// Head implements audit.Store.
func (s *Store) Head(ctx context.Context, team string) (auditchain.Head, error) {
	v, err := s.kv.Get(ctx, headKey(team))
	if errors.Is(err, errs.NotFound) {
		return auditchain.Head{}, nil
	}
	if err != nil {
		return auditchain.Head{}, err
	}
	return decodeHead(team, v)
}

// Range implements audit.Store.
func (s *Store) Range(ctx context.Context, team string, from int64, limit int) ([]*auditv1.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	after := ""
	if from > 1 {
		after = eventKey(team, from-1)
	}
	kvs, err := s.kv.Scan(ctx, chainPrefix(team), after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]*auditv1.Event, 0, len(kvs))
	for _, e := range kvs {
		ev, err := decode(e.Key, e.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

var _ audit.EventReader = (*Store)(nil)

// EventsAt implements audit.EventReader: one GetMany of the events' keys
// per kv.MaxGetMany places.
func (s *Store) EventsAt(ctx context.Context, at []audit.Place) ([]*auditv1.Event, error) {
	out := make([]*auditv1.Event, 0, len(at))
	for rest := at; len(rest) > 0; {
		n := min(len(rest), kv.MaxGetMany)
		keys := make([]string, n)
		for i, p := range rest[:n] {
			keys[i] = eventKey(p.Team, p.Seq)
		}
		vals, err := s.kv.GetMany(ctx, keys)
		if err != nil {
			return nil, err
		}
		for i, v := range vals {
			if v == nil {
				out = append(out, nil)
				continue
			}
			ev, err := decode(keys[i], v)
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
		rest = rest[n:]
	}
	return out, nil
}

// listWindow bounds the seqs one Scan of List covers.
const (
	minListWindow = 16
	maxListWindow = 1000
)

// List implements audit.Store. kv.Store scans in key order only, so List
// reads the chain downwards in windows of seqs below the head, each one
// ascending Scan, and examines each window's events newest first. A seq
// with no event (one removed from the chain) counts as examined.
func (s *Store) List(ctx context.Context, q audit.Query) (*audit.Page, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 || q.ScanLimit <= 0 {
		return nil, errors.New("list: Limit and ScanLimit must be positive")
	}
	head, err := s.Head(ctx, q.Team)
	if err != nil {
		return nil, err
	}
	top := head.Seq
	if q.BeforeSeq > 0 {
		top = min(top, q.BeforeSeq-1)
	}
	page := &audit.Page{}
	prefix := chainPrefix(q.Team)
	for hi := top; hi >= 1; {
		// Wide enough for the matches still wanted, unfiltered; within
		// the scan budget.
		n := min(max(2*(q.Limit-len(page.Events)), minListWindow), maxListWindow, q.ScanLimit-int(top-hi), int(hi))
		lo := hi - int64(n) + 1
		after := ""
		if lo > 1 {
			after = eventKey(q.Team, lo-1)
		}
		kvs, err := s.kv.Scan(ctx, prefix, after, n)
		if err != nil {
			return nil, err
		}
		for i := len(kvs) - 1; i >= 0; i-- {
			ev, err := decode(kvs[i].Key, kvs[i].Value)
			if err != nil {
				return nil, err
			}
			seq := ev.GetSeq()
			if seq > hi || seq < lo {
				continue // past a gap: another window's
			}
			if q.Filter.Match(ev) {
				page.Events = append(page.Events, ev)
			}
			if len(page.Events) >= q.Limit {
				if seq > 1 {
					page.NextBeforeSeq = seq
				}
				return page, nil
			}
		}
		if int(top-lo+1) >= q.ScanLimit {
			// Go on below the last seq examined, unless it was the first.
			if lo > 1 {
				page.NextBeforeSeq = lo
			}
			return page, nil
		}
		hi = lo - 1
	}
	return page, nil
}
