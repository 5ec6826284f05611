// Package etcdstore implements audit.Store on etcd v3, for deployments that
// run several audit replicas on a replicated store.
//
// # Layout
//
// The keys live under a namespace ("/oz/audit/") and mirror the bbolt
// store's (package boltstore) one for one: bbolt bucket B, key K is etcd key
// <namespace>B/K, with the same value bytes, so that copying every bucket's
// keys between the two gives a working store of the other kind:
//
//	<ns>events/ team 0x00 seq (8 bytes, big-endian) → the Event, protobuf (deterministic)
//	<ns>ids/    event id → team 0x00 seq
//	<ns>heads/  team 0x00 → seq (8 bytes, big-endian) + hash
//	<ns>meta/schema → "1"
//
// # Appends
//
// Several replicas append to one etcd, so a chain's head is advanced by
// compare-and-swap: each transaction compares the mod revision of every
// head it moves with the one it linked from (0: no head yet), and the
// create revision of every id it stores with 0 (not stored). When a
// compare fails, the same transaction reads those heads and ids instead,
// at its revision; the events whose ids are now stored are skipped as
// duplicates, the others are linked again from the new heads, and the
// transaction is retried. So two replicas never fork a chain, and an
// event id is stored once in the whole log, whichever replica got it.
// The store remembers the heads it last wrote (and their revisions), so
// that an uncontended append is one etcd round trip.
//
// Concurrent Append calls of one Store are combined (as bbolt's db.Batch
// does): one goroutine writes the events of every waiting call, in call
// order, so that the calls of one process do not contend for a head.
//
// # Atomicity
//
// etcd takes at most 128 operations per transaction branch (its default
// --max-txn-ops) and 1.5 MiB per request. An event costs two writes (the
// event, its id) and a compare, and each chain it moves one write and a
// compare, so a transaction holds at most about 40 events (fewer when they
// are large: maxTxnBytes). A larger Append is split into several
// transactions, in order, each atomic and durable. Append therefore gives
// prefix atomicity, not all-or-nothing: when it fails part-way, a prefix of
// its new events (in its order) is stored and chained, and none of the
// rest. Since appends are idempotent by event id, a retry of the same call
// (what an outbox shipper does after any error) stores exactly the rest,
// and the log ends as if the first call had been all-or-nothing. An Append
// whose context ends while it waits returns the context's error, and its
// events may still be stored (as with any request etcd received): the
// retry counts them as duplicates.
//
// Reads (List, Range, Head) are linearizable; a List or Range that takes
// several etcd ranges reads them all at the first one's revision.
// A write is durable when etcd acknowledges it: committed to the raft log
// of a quorum of members, each fsynced.
package etcdstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/etcdns"
)

// Namespace is the audit service's namespace in a shared etcd.
const Namespace = "/oz/audit/"

// MaxOps is the most operations (and compares) one etcd transaction
// branch holds: etcd's default --max-txn-ops.
const MaxOps = 128

// maxTxnBytes bounds the keys and values one append transaction writes,
// under etcd's default --max-request-bytes (1.5 MiB). An event alone over
// it (events are at most audit.MaxEventBytes) still goes, alone.
const maxTxnBytes = 1 << 20

// maxConflicts bounds how many times in a row one transaction of an
// Append loses its compares to other writers before Append gives up.
const maxConflicts = 100

// OpenTimeout bounds Open's first exchange with etcd when ctx has no
// deadline: an unreachable cluster fails the start instead of hanging it.
const OpenTimeout = etcdns.OpenTimeout

// readPage is how many events one etcd range of a List or Range returns
// at most.
const readPage = 256

// Buckets of the bbolt store, which are key prefixes here.
const (
	bucketEvents = "events/"
	bucketIDs    = "ids/"
	bucketHeads  = "heads/"
	bucketMeta   = "meta/"
	keySchema    = bucketMeta + "schema"
)

var (
	schemaVersion = "1"
	errClosed     = errors.New("audit store: closed")
	marshal       = proto.MarshalOptions{Deterministic: true}
)

// Store is an audit.Store in etcd. It is safe for concurrent use, by
// several goroutines and by several Stores (replicas) on one namespace.
type Store struct {
	cli    *clientv3.Client
	owned  bool // Close closes cli
	ns     string
	closed atomic.Bool

	mu      sync.Mutex
	pending []*call // Append calls waiting for the writer
	writing bool    // a writer goroutine runs

	// heads caches, for the writer alone, the heads it last wrote or
	// read, with their mod revisions: a guess, which compares check.
	heads map[string]cachedHead
}

type cachedHead struct {
	head auditchain.Head
	rev  int64 // mod revision of the head key; 0: absent
}

var _ audit.Store = (*Store)(nil)

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
// by a build with another schema. It fails when etcd does not answer
// within ctx (OpenTimeout if ctx has no deadline).
func New(ctx context.Context, cli *clientv3.Client, namespace string) (*Store, error) {
	if err := etcdns.Check(namespace); err != nil {
		return nil, err
	}
	ctx, cancel := etcdns.WithOpenTimeout(ctx)
	defer cancel()
	if err := etcdns.Claim(ctx, cli, namespace, keySchema, schemaVersion); err != nil {
		return nil, err
	}
	return &Store{cli: cli, ns: namespace, heads: map[string]cachedHead{}}, nil
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

// Keys, as the bbolt store's keys under their bucket's prefix.

func chainPrefix(team string) string { return team + "\x00" }

func (s *Store) eventKey(team string, seq int64) string {
	return s.ns + bucketEvents + string(binary.BigEndian.AppendUint64([]byte(chainPrefix(team)), uint64(seq)))
}

func (s *Store) chainRange(team string) (start, end string) {
	p := s.ns + bucketEvents + chainPrefix(team)
	return p, clientv3.GetPrefixRangeEnd(p)
}

func (s *Store) idKey(id string) string     { return s.ns + bucketIDs + id }
func (s *Store) headKey(team string) string { return s.ns + bucketHeads + chainPrefix(team) }

func encodeHead(h auditchain.Head) string {
	return string(append(binary.BigEndian.AppendUint64(nil, uint64(h.Seq)), h.Hash...))
}

func decodeHead(team string, v []byte) (auditchain.Head, error) {
	if len(v) != 8+auditchain.HashSize {
		return auditchain.Head{}, fmt.Errorf("head of chain %s: corrupt record", auditchain.Name(team))
	}
	return auditchain.Head{Seq: int64(binary.BigEndian.Uint64(v)), Hash: bytes.Clone(v[8:])}, nil
}

func decode(v []byte) (*auditv1.Event, error) {
	ev := &auditv1.Event{}
	if err := proto.Unmarshal(v, ev); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	return ev, nil
}

// call is one Append waiting for the writer.
type call struct {
	ctx    context.Context
	events []*auditv1.Event
	now    time.Time
	res    audit.AppendResult
	err    error
	done   chan struct{}
}

// Append implements audit.Store (see the package doc for its atomicity).
func (s *Store) Append(ctx context.Context, events []*auditv1.Event, now time.Time) (audit.AppendResult, error) {
	if err := s.ready(ctx); err != nil {
		return audit.AppendResult{}, err
	}
	if len(events) == 0 {
		return audit.AppendResult{}, nil
	}
	c := &call{ctx: ctx, events: events, now: now, done: make(chan struct{})}
	s.mu.Lock()
	s.pending = append(s.pending, c)
	if !s.writing {
		s.writing = true
		go s.write()
	}
	s.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return audit.AppendResult{}, ctx.Err()
	}
}

// write appends the events of waiting calls, all the calls waiting at
// once together, until none waits.
func (s *Store) write() {
	for {
		s.mu.Lock()
		calls := s.pending
		s.pending = nil
		if len(calls) == 0 {
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		live := calls[:0]
		for _, c := range calls {
			if err := s.ready(c.ctx); err != nil {
				c.err = err
				close(c.done)
				continue
			}
			live = append(live, c)
		}
		if len(live) > 0 {
			s.appendCalls(live)
		}
	}
}

// item is one event to append, of call c.
type item struct {
	ev   *auditv1.Event // the caller's: cloned before linking
	c    *call
	size int // bytes it adds to a transaction, at most
}

// appendCalls appends the events of calls, in order, and completes every
// call. The work goes on while any caller waits.
func (s *Store) appendCalls(calls []*call) {
	ctx, cancel := mergedContext(calls)
	defer cancel()

	left := map[*call]int{} // events of the call not yet stored or skipped
	var items []item
	seen := map[string]bool{}
	for _, c := range calls {
		for _, ev := range c.events {
			if seen[ev.GetId()] {
				c.res.Duplicates++ // a repeat: skipped, as by the first's duplicate check
				continue
			}
			seen[ev.GetId()] = true
			items = append(items, item{ev: ev, c: c, size: proto.Size(ev) + 3*len(ev.GetId()) + 3*len(ev.GetTeam()) + 256})
			left[c]++
		}
	}
	var err error
	for len(items) > 0 && err == nil {
		var n int
		n, err = s.appendChunk(ctx, items)
		for _, it := range items[:n] {
			left[it.c]--
		}
		items = items[n:]
	}
	for _, c := range calls {
		if left[c] > 0 {
			c.res, c.err = audit.AppendResult{}, err
		}
		close(c.done)
	}
}

// mergedContext is done when every call's context is.
func mergedContext(calls []*call) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	var live atomic.Int64
	live.Store(int64(len(calls)))
	stops := make([]func() bool, 0, len(calls))
	for _, c := range calls {
		stops = append(stops, context.AfterFunc(c.ctx, func() {
			if live.Add(-1) == 0 {
				cancel()
			}
		}))
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// chunk returns how many of items, from the first, one transaction takes:
// at least one, and no more than MaxOps writes, compares or reads, nor
// maxTxnBytes.
func chunk(items []item) int {
	teams := map[string]bool{}
	bytes := 0
	for i, it := range items {
		t := len(teams)
		if !teams[it.ev.GetTeam()] {
			t++
		}
		// Writes: 2 per event + 1 per head; compares and reads: 1 + 1.
		if i > 0 && (2*(i+1)+t > MaxOps || bytes+it.size > maxTxnBytes) {
			return i
		}
		teams[it.ev.GetTeam()] = true
		bytes += it.size
	}
	return len(items)
}

// appendChunk stores a first chunk of items in one transaction,
// compare-and-swapping the heads it moves, and returns how many items it
// stored or skipped as duplicates (all of the chunk, or none on an
// error).
func (s *Store) appendChunk(ctx context.Context, items []item) (int, error) {
	n := chunk(items)
	chunkItems := items[:n]
	dup := make([]bool, n)
	for conflicts := 0; ; conflicts++ {
		if conflicts > maxConflicts {
			return 0, &errs.Error{Kind: errs.KindUnavailable, Message: "store busy",
				Err: fmt.Errorf("append: lost %d compare-and-swaps in a row to other writers", conflicts-1)}
		}
		if err := s.ready(ctx); err != nil {
			return 0, err
		}
		var (
			cmps   []clientv3.Cmp
			writes []clientv3.Op
			reads  []clientv3.Op
			linked = map[string]cachedHead{}      // team → its head before the chunk
			heads  = map[string]auditchain.Head{} // team → its head after
			order  []string                       // teams, in first-event order
			stored []int                          // indexes of the events written
		)
		for i, it := range chunkItems {
			if dup[i] {
				continue
			}
			team := it.ev.GetTeam()
			head, ok := heads[team]
			if !ok {
				ch := s.heads[team] // absent: guess an empty chain
				linked[team], head = ch, ch.head
				order = append(order, team)
			}
			ev := proto.Clone(it.ev).(*auditv1.Event)
			ev.AppendTime = timestamppb.New(it.c.now)
			heads[team] = head.Link(ev)
			b, err := marshal.Marshal(ev)
			if err != nil {
				return 0, fmt.Errorf("marshal event %s: %w", ev.GetId(), err)
			}
			ek, ik := s.eventKey(team, ev.GetSeq()), s.idKey(ev.GetId())
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(ik), "=", 0))
			writes = append(writes, clientv3.OpPut(ek, string(b)), clientv3.OpPut(ik, ek[len(s.ns)+len(bucketEvents):]))
			reads = append(reads, clientv3.OpGet(ik, clientv3.WithKeysOnly()))
			stored = append(stored, i)
		}
		if len(stored) == 0 { // every event was stored by another writer
			countDuplicates(chunkItems, dup)
			return n, nil
		}
		for _, team := range order {
			hk := s.headKey(team)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(hk), "=", linked[team].rev))
			writes = append(writes, clientv3.OpPut(hk, encodeHead(heads[team])))
			reads = append(reads, clientv3.OpGet(hk))
		}
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(writes...).Else(reads...).Commit()
		if err != nil {
			// The transaction may have been applied: forget the heads.
			for _, team := range order {
				delete(s.heads, team)
			}
			return 0, storeErr("append", err)
		}
		if resp.Succeeded {
			for _, team := range order {
				s.heads[team] = cachedHead{head: heads[team], rev: resp.Header.Revision}
			}
			for _, i := range stored {
				chunkItems[i].c.res.Appended++
			}
			countDuplicates(chunkItems, dup)
			return n, nil
		}
		// Lost to another writer: learn the ids it stored and the heads
		// it moved, at the transaction's revision, and link again.
		for k, r := range resp.Responses {
			kvs := r.GetResponseRange().GetKvs()
			if k < len(stored) {
				if len(kvs) > 0 {
					dup[stored[k]] = true
				}
				continue
			}
			team := order[k-len(stored)]
			if len(kvs) == 0 {
				s.heads[team] = cachedHead{}
				continue
			}
			h, err := decodeHead(team, kvs[0].Value)
			if err != nil {
				return 0, err
			}
			s.heads[team] = cachedHead{head: h, rev: kvs[0].ModRevision}
		}
	}
}

func countDuplicates(items []item, dup []bool) {
	for i, it := range items {
		if dup[i] {
			it.c.res.Duplicates++
		}
	}
}

// List implements audit.Store.
func (s *Store) List(ctx context.Context, q audit.Query) (*audit.Page, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	if q.Limit <= 0 || q.ScanLimit <= 0 {
		return nil, errors.New("list: Limit and ScanLimit must be positive")
	}
	return retryCompacted(func() (*audit.Page, error) { return s.list(ctx, q) })
}

func (s *Store) list(ctx context.Context, q audit.Query) (*audit.Page, error) {
	page := &audit.Page{}
	start, end := s.chainRange(q.Team)
	if q.BeforeSeq > 0 {
		end = min(end, s.eventKey(q.Team, q.BeforeSeq))
	}
	var rev int64
	scanned := 0
	for {
		resp, err := s.cli.Get(ctx, start,
			clientv3.WithRange(end), clientv3.WithLimit(int64(min(readPage, q.ScanLimit-scanned))),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithRev(rev))
		if err != nil {
			return nil, err
		}
		rev = resp.Header.Revision
		for i, kv := range resp.Kvs {
			seq := int64(binary.BigEndian.Uint64(kv.Key[len(start):]))
			scanned++
			ev, err := decode(kv.Value)
			if err != nil {
				return nil, err
			}
			if q.Filter.Match(ev) {
				page.Events = append(page.Events, ev)
			}
			if len(page.Events) >= q.Limit || scanned >= q.ScanLimit {
				// Go on below the last event examined, unless it was the
				// chain's first.
				if seq > 1 && (i+1 < len(resp.Kvs) || resp.More) {
					page.NextBeforeSeq = seq
				}
				return page, nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return page, nil
		}
		end = string(resp.Kvs[len(resp.Kvs)-1].Key)
	}
}

// Range implements audit.Store.
func (s *Store) Range(ctx context.Context, team string, from int64, limit int) ([]*auditv1.Event, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	return retryCompacted(func() ([]*auditv1.Event, error) { return s.rangeEvents(ctx, team, from, limit) })
}

func (s *Store) rangeEvents(ctx context.Context, team string, from int64, limit int) ([]*auditv1.Event, error) {
	var out []*auditv1.Event
	_, end := s.chainRange(team)
	start := s.eventKey(team, max(from, 1))
	var rev int64
	for len(out) < limit {
		resp, err := s.cli.Get(ctx, start,
			clientv3.WithRange(end), clientv3.WithLimit(int64(min(readPage, limit-len(out)))),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithRev(rev))
		if err != nil {
			return nil, err
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			ev, err := decode(kv.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	return out, nil
}

// retryCompacted runs read, a read of several etcd ranges at one
// revision, again (at a new revision) when etcd compacted that revision
// away meanwhile; it makes its errors the Store's.
func retryCompacted[T any](read func() (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, err := read()
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < 2 {
			continue
		}
		if err != nil {
			var zero T
			return zero, storeErr("read", err)
		}
		return v, nil
	}
}

// Head implements audit.Store.
func (s *Store) Head(ctx context.Context, team string) (auditchain.Head, error) {
	if err := s.ready(ctx); err != nil {
		return auditchain.Head{}, err
	}
	resp, err := s.cli.Get(ctx, s.headKey(team))
	if err != nil {
		return auditchain.Head{}, storeErr("head", err)
	}
	if len(resp.Kvs) == 0 {
		return auditchain.Head{}, nil
	}
	return decodeHead(team, resp.Kvs[0].Value)
}

// storeErr makes an etcd error the Store's (see etcdns.Err).
var storeErr = etcdns.Err
