package etcdkv

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/services/internal/kv"
)

// Concurrent Applies share etcd transactions.
//
// Every transaction costs etcd a fixed price beyond its operations — a
// gRPC request, a raft entry, an apply with its checks on every member —
// and under load (many run resolutions at once, each one small write) that
// price is most of the work. As with bbolt's group commit, an Apply that
// finds no transaction of this store committing starts one at once, alone;
// Applies that arrive meanwhile queue, and the next transaction takes all
// of them that fit. A lone Apply never waits.
//
// Sharing is safe because the members of a transaction touch disjoint
// keys: no two write the same key, and none writes a key (or into a range)
// that another's conditions read. Every member's conditions are then
// checked against the state before all of them, and the result is the one
// of making them one after another in any order. When a shared transaction
// is refused (some member's condition fails), every member is made again
// alone, so that each gets its own answer and its own *ConflictError.

const (
	// maxInFlight bounds the transactions of one store committing at
	// once. One keeps batches full: measured with ozbench at 64 runners on
	// three members, 1 gave 0.13 transactions per resolution and 0.61–0.65
	// of bbolt's throughput, 2 gave 0.20 and 0.55; with more, an Apply
	// mostly finds room and goes alone.
	maxInFlight = 1
	// maxBatchBytes bounds the keys and values of one shared transaction,
	// under etcd's default request limit (--max-request-bytes, 1.5 MiB).
	maxBatchBytes = 1 << 20
	// sharedTimeout bounds a shared transaction of members none of which
	// has a deadline.
	sharedTimeout = 30 * time.Second
)

// txn is one Apply's transaction.
type txn struct {
	ctx       context.Context
	conds     []kv.Cond
	unchanged int // index of the IfUnchanged condition, -1 when none
	cmps      []clientv3.Cmp
	ops       []clientv3.Op
	reads     []clientv3.Op // when alone: the Else branch, each conditioned key once

	writeKeys  []string    // full etcd keys
	condKeys   []string    // full etcd keys the conditions read
	condRanges [][2]string // [start, end) ranges IfUnchanged reads
	bytes      int

	// Set by the batcher before done is closed:
	done   chan struct{}
	shared bool                  // t was committed with others (err nil), or refused with them
	resp   *clientv3.TxnResponse // alone: its transaction's response
	err    error                 // the transaction failed so (it may have been applied)
}

// batcher queues Applies for shared transactions. The zero value is ready.
type batcher struct {
	mu       sync.Mutex
	queue    []*txn
	inflight int

	sharedTxns atomic.Int64 // shared transactions made, for tests
}

// commit commits t, alone or in a transaction shared with other queued
// Applies, and sets t's results (see txn).
func (b *batcher) commit(ctx context.Context, cli *clientv3.Client, t *txn) {
	t.ctx, t.done = ctx, make(chan struct{})
	b.mu.Lock()
	b.queue = append(b.queue, t)
	lead := b.inflight < maxInFlight
	if lead {
		b.inflight++
	}
	b.mu.Unlock()
	if lead {
		b.lead(cli)
	}
	<-t.done
}

// lead commits one batch, then hands on to a new goroutine while Applies
// are queued, so that no caller serves others indefinitely.
func (b *batcher) lead(cli *clientv3.Client) {
	b.mu.Lock()
	batch := b.take()
	b.mu.Unlock()
	b.run(cli, batch)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) > 0 {
		go b.lead(cli)
		return
	}
	b.inflight--
}

// take removes from the queue, in order, the Applies that fit one
// transaction together: the first, and each later one whose keys are
// disjoint from those taken, within etcd's limits. b.mu is held.
func (b *batcher) take() []*txn {
	var (
		batch      []*txn
		rest       []*txn
		writes     = map[string]bool{}
		conds      = map[string]bool{}
		ranges     [][2]string
		nCmps, nOp int
		bytes      int
	)
	for _, t := range b.queue {
		fits := len(batch) == 0 ||
			nCmps+len(t.cmps) <= MaxOps && nOp+len(t.ops) <= MaxOps && bytes+t.bytes <= maxBatchBytes &&
				disjoint(t, writes, conds, ranges)
		if !fits {
			rest = append(rest, t)
			continue
		}
		batch = append(batch, t)
		nCmps, nOp, bytes = nCmps+len(t.cmps), nOp+len(t.ops), bytes+t.bytes
		for _, k := range t.writeKeys {
			writes[k] = true
		}
		for _, k := range t.condKeys {
			conds[k] = true
		}
		ranges = append(ranges, t.condRanges...)
	}
	b.queue = rest
	return batch
}

// disjoint reports whether t may share a transaction with Applies that
// write writes and read conds and ranges: neither side writes what the
// other writes or reads.
func disjoint(t *txn, writes, conds map[string]bool, ranges [][2]string) bool {
	for _, k := range t.writeKeys {
		if writes[k] || conds[k] || inRanges(k, ranges) {
			return false
		}
	}
	for _, k := range t.condKeys {
		if writes[k] {
			return false
		}
	}
	for w := range writes {
		if inRanges(w, t.condRanges) {
			return false
		}
	}
	return true
}

func inRanges(k string, ranges [][2]string) bool {
	for _, r := range ranges {
		if r[0] <= k && k < r[1] {
			return true
		}
	}
	return false
}

// run commits batch. A lone Apply is made with its own context and the
// reads that name a failed condition.
func (b *batcher) run(cli *clientv3.Client, batch []*txn) {
	if len(batch) == 1 {
		t := batch[0]
		t.resp, t.err = cli.Txn(t.ctx).If(t.cmps...).Then(t.ops...).Else(t.reads...).Commit()
		close(t.done)
		return
	}
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for _, t := range batch {
		cmps, ops = append(cmps, t.cmps...), append(ops, t.ops...)
	}
	b.sharedTxns.Add(1)
	ctx, cancel := sharedContext(batch)
	resp, err := cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	cancel()
	for _, t := range batch {
		t.shared, t.err = true, err
		if err == nil && !resp.Succeeded {
			t.err = errRefused
		}
		close(t.done)
	}
}

// errRefused: a shared transaction's conditions did not all hold.
var errRefused = errors.New("shared transaction refused")

// sharedContext is the context of a shared transaction: no member's
// cancellation stops it (it is every member's write), and it ends at the
// latest of the members' deadlines, or after sharedTimeout.
func sharedContext(batch []*txn) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, t := range batch {
		d, ok := t.ctx.Deadline()
		if !ok {
			return context.WithTimeout(context.Background(), sharedTimeout)
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.Background(), latest)
}
