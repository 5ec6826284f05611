// Package etcdkv implements kv.Store on etcd v3, for deployments
// that run several resolver replicas on a replicated store.
//
// The store keeps its keys under a namespace ("/oz/resolver/"), so that
// several services share one etcd cluster: records at
// <namespace>records/<key>, the schema version at <namespace>meta/schema.
// Apply is one etcd transaction whose compares are the conditions; Get and
// Scan are linearizable reads. A write is durable when etcd acknowledges
// it: committed to the raft log of a quorum of members, each fsynced.
//
// Reads with a kv.ReadSet in their context are serializable instead:
// served by whichever member the client asks, without a quorum round, and
// possibly behind the cluster. They record the mod revision of every key
// they saw (0: absent) and, for a Scan, the range it covered and the
// member's revision; IfUnchanged turns that into compares — each key still
// at its mod revision, no key in a scanned range modified after the
// revision it was read at — checked by the transaction itself, after raft
// has ordered it. A read that was stale, or a change made since, fails
// them.
package etcdkv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/etcdns"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// Namespace is the resolver's namespace in a shared etcd.
const Namespace = "/oz/resolver/"

// MaxOps bounds the conditions and writes of one Apply together: the
// Store's documented limit, and etcd's default --max-txn-ops.
const MaxOps = 128

// OpenTimeout bounds Open's first exchange with etcd when ctx has no
// deadline: an unreachable cluster fails the start instead of hanging it.
const OpenTimeout = etcdns.OpenTimeout

// scanPage is how many entries one etcd range of a Scan returns at most.
const scanPage = 512

var (
	schemaVersion = "1"
	errClosed     = errors.New("store: closed")
)

// Store is a kv.Store in etcd. It is safe for concurrent use.
type Store struct {
	cli     *clientv3.Client
	owned   bool   // Close closes cli
	records string // key prefix of the records
	batch   batcher
	closed  atomic.Bool
}

var _ kv.Store = (*Store)(nil)

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
	if err := etcdns.Claim(ctx, cli, namespace, "meta/schema", schemaVersion); err != nil {
		return nil, err
	}
	return &Store{cli: cli, records: namespace + "records/"}, nil
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

// Get implements kv.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	rs := kv.ReadSetFrom(ctx)
	var opts []clientv3.OpOption
	if rs != nil {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := s.cli.Get(ctx, s.records+key, opts...)
	if err != nil {
		return nil, storeErr("get", err)
	}
	var modRev int64
	if len(resp.Kvs) > 0 {
		modRev = resp.Kvs[0].ModRevision
	}
	if rs != nil {
		rs.Add(readKey{key: s.records + key, modRev: modRev})
	}
	if len(resp.Kvs) == 0 {
		return nil, errs.E(errs.KindNotFound, "not found")
	}
	return resp.Kvs[0].Value, nil // freshly decoded: the caller's
}

// GetMany implements kv.Store: one transaction of gets per kv.MaxGetMany
// keys, each after the first at the revision of the first, so that all are
// read in one snapshot. Transactions are linearizable reads, with a
// ReadSet in ctx too.
func (s *Store) GetMany(ctx context.Context, keys []string) ([][]byte, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	rs := kv.ReadSetFrom(ctx)
	out := make([][]byte, len(keys))
	var rev int64 // of the first transaction
	for start := 0; start < len(keys); start += kv.MaxGetMany {
		chunk := keys[start:min(start+kv.MaxGetMany, len(keys))]
		ops := make([]clientv3.Op, len(chunk))
		for i, k := range chunk {
			ops[i] = clientv3.OpGet(s.records+k, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, storeErr("get", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for i, r := range resp.Responses {
			kvs := r.GetResponseRange().GetKvs()
			var modRev int64
			if len(kvs) > 0 {
				out[start+i], modRev = kvs[0].Value, kvs[0].ModRevision
			}
			if rs != nil {
				rs.Add(readKey{key: s.records + chunk[i], modRev: modRev})
			}
		}
	}
	return out, nil
}

// ScanPrefixes implements kv.Store: one transaction of range reads per
// kv.MaxGetMany prefixes, each after the first at the revision of the
// first.
func (s *Store) ScanPrefixes(ctx context.Context, prefixes []string) ([][]kv.KV, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	rs := kv.ReadSetFrom(ctx)
	out := make([][]kv.KV, len(prefixes))
	var rev int64 // of the first transaction
	for start := 0; start < len(prefixes); start += kv.MaxGetMany {
		chunk := prefixes[start:min(start+kv.MaxGetMany, len(prefixes))]
		ops := make([]clientv3.Op, len(chunk))
		for i, p := range chunk {
			ops[i] = clientv3.OpGet(s.records+p, clientv3.WithPrefix(),
				clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithRev(rev))
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, storeErr("scan", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for i, r := range resp.Responses {
			kvs := []kv.KV{}
			for _, e := range r.GetResponseRange().GetKvs() {
				kvs = append(kvs, kv.KV{Key: string(e.Key[len(s.records):]), Value: e.Value})
				if rs != nil {
					rs.Add(readKey{key: string(e.Key), modRev: e.ModRevision})
				}
			}
			out[start+i] = kvs
			if rs != nil {
				p := s.records + chunk[i]
				rs.Add(readRange{start: p, end: clientv3.GetPrefixRangeEnd(p), rev: rev})
			}
		}
	}
	return out, nil
}

// readKey is a Get, or a key a Scan returned, recorded in a ReadSet:
// modRev 0 when the key was absent.
type readKey struct {
	key    string
	modRev int64
}

// readRange is the range [start, end) a Scan covered, recorded in a
// ReadSet with the revision it was read at.
type readRange struct {
	start, end string
	rev        int64
}

// unchangedCmps returns the compares that hold when nothing read into rs
// has changed, or false when they would be more than max.
func unchangedCmps(rs *kv.ReadSet, max int) ([]clientv3.Cmp, bool) {
	items := rs.Items()
	if len(items) > max {
		return nil, false
	}
	cmps := make([]clientv3.Cmp, 0, len(items))
	for _, item := range items {
		switch r := item.(type) {
		case readKey:
			if r.modRev == 0 {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(r.key), "=", 0))
			} else {
				// Changed or deleted (mod revision 0) since: differs.
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(r.key), "=", r.modRev))
			}
		case readRange:
			// Every key of the range, present now, last modified at or
			// before the read: none appeared or changed since (a deleted
			// one fails its own readKey compare).
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(r.start), "<", r.rev+1).WithRange(r.end))
		default: // recorded by another store
			return nil, false
		}
	}
	return cmps, true
}

// Scan implements kv.Store. Its pages are read at one revision, so
// it sees the store as it was at one moment, however many entries match.
func (s *Store) Scan(ctx context.Context, prefix, after string, limit int) ([]kv.KV, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	// A revision may be compacted away between two pages: start again,
	// at a new one.
	for attempt := 0; ; attempt++ {
		kvs, err := s.scan(ctx, prefix, after, limit)
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < 2 {
			continue
		}
		if err != nil {
			return nil, storeErr("scan", err)
		}
		return kvs, nil
	}
}

func (s *Store) scan(ctx context.Context, prefix, after string, limit int) ([]kv.KV, error) {
	out := []kv.KV{}
	start, end := s.records+prefix, clientv3.GetPrefixRangeEnd(s.records+prefix)
	if after != "" {
		start = max(start, s.records+after+"\x00")
	}
	rs := kv.ReadSetFrom(ctx)
	var reads []any // for rs: the keys seen, then the range covered
	from := start
	var rev int64 // of the first page, for every other one
	for start < end {
		n := scanPage
		if limit > 0 {
			n = min(n, limit-len(out))
		}
		opts := []clientv3.OpOption{
			clientv3.WithRange(end), clientv3.WithLimit(int64(n)),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithRev(rev),
		}
		if rs != nil {
			opts = append(opts, clientv3.WithSerializable())
		}
		resp, err := s.cli.Get(ctx, start, opts...)
		if rs != nil && errors.Is(err, rpctypes.ErrFutureRev) {
			// A later page from a member behind the first page's: a
			// linearizable read waits for it to catch up.
			resp, err = s.cli.Get(ctx, start, opts[:len(opts)-1]...)
		}
		if err != nil {
			return nil, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, e := range resp.Kvs {
			out = append(out, kv.KV{Key: string(e.Key[len(s.records):]), Value: e.Value})
			if rs != nil {
				reads = append(reads, readKey{key: string(e.Key), modRev: e.ModRevision})
			}
		}
		if !resp.More || len(resp.Kvs) == 0 || limit > 0 && len(out) >= limit {
			if resp.More && len(resp.Kvs) > 0 {
				end = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00" // the limit stopped it: covered up to here
			}
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	if rs != nil {
		for _, r := range append(reads, readRange{start: from, end: end, rev: rev}) {
			rs.Add(r)
		}
	}
	return out, nil
}

// Apply implements kv.Store with one etcd transaction: conditions
// are its compares, writes its operations (the last write to a key decides,
// since etcd takes one per key). When a compare fails, the transaction
// reads the conditions' keys instead, at the same revision, and Apply
// reports the first condition those values fail.
//
// Concurrent Applies that touch disjoint keys share one transaction (see
// batch.go); one whose conditions fail is then made again alone.
//
// An error other than a *ConflictError (etcd unreachable, ctx done while
// waiting for etcd) may leave the writes made or not; conditions make a
// retry safe.
func (s *Store) Apply(ctx context.Context, conds []kv.Cond, writes []kv.Write) error {
	t, err := s.txnOf(conds, writes)
	if err != nil {
		return err
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	s.batch.commit(ctx, s.cli, t)
	switch {
	case t.shared && t.err == nil:
		return nil
	case errors.Is(t.err, errRefused):
		// Some member's condition failed: each is made alone, for its own
		// answer.
		resp, err := s.cli.Txn(ctx).If(t.cmps...).Then(t.ops...).Else(t.reads...).Commit()
		return s.outcome(t, resp, err)
	}
	return s.outcome(t, t.resp, t.err)
}

// txnOf makes the transaction of one Apply.
func (s *Store) txnOf(conds []kv.Cond, writes []kv.Write) (*txn, error) {
	if n := len(conds) + len(writes); n > MaxOps {
		return nil, fmt.Errorf("store: %d conditions and writes in one Apply, more than %d", n, MaxOps)
	}
	t := &txn{conds: conds, unchanged: -1, cmps: make([]clientv3.Cmp, 0, len(conds))}
	read := map[string]bool{}
	for i, c := range conds {
		if c.Op == kv.IfUnchanged {
			if c.Reads == nil || t.unchanged >= 0 {
				return nil, errors.New("store: IfUnchanged without a ReadSet, or twice")
			}
			t.unchanged = i
			continue
		}
		if c.Key == "" {
			return nil, errors.New("store: condition on an empty key")
		}
		key := s.records + c.Key
		switch c.Op {
		case kv.IfAbsent:
			t.cmps = append(t.cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		case kv.IfPresent:
			t.cmps = append(t.cmps, clientv3.Compare(clientv3.CreateRevision(key), ">", 0))
		case kv.IfEqual:
			// etcd fails a value compare on an absent key, as Holds does.
			t.cmps = append(t.cmps, clientv3.Compare(clientv3.Value(key), "=", string(c.Value)))
		default:
			return nil, fmt.Errorf("store: condition on key %q: unknown op %d", c.Key, c.Op)
		}
		t.condKeys = append(t.condKeys, key)
		if !read[c.Key] {
			read[c.Key] = true
			t.reads = append(t.reads, clientv3.OpGet(key))
		}
	}
	last := map[string]int{} // key → index of its last write
	for i, w := range writes {
		if w.Key == "" || !w.Delete && len(w.Value) == 0 {
			return nil, fmt.Errorf("store: write of key %q: empty key or value", w.Key)
		}
		last[w.Key] = i
	}
	t.ops = make([]clientv3.Op, 0, len(last))
	for i, w := range writes {
		if last[w.Key] != i {
			continue
		}
		key := s.records + w.Key
		t.writeKeys = append(t.writeKeys, key)
		t.bytes += len(key) + len(w.Value)
		if w.Delete {
			t.ops = append(t.ops, clientv3.OpDelete(key))
		} else {
			t.ops = append(t.ops, clientv3.OpPut(key, string(w.Value)))
		}
	}
	if t.unchanged >= 0 {
		rs := conds[t.unchanged].Reads
		more, ok := unchangedCmps(rs, MaxOps-len(t.cmps)-len(t.ops))
		if !ok {
			return nil, &kv.ConflictError{Index: t.unchanged, Cond: conds[t.unchanged]}
		}
		t.cmps = append(t.cmps, more...)
		for _, item := range rs.Items() {
			switch r := item.(type) {
			case readKey:
				t.condKeys = append(t.condKeys, r.key)
			case readRange:
				t.condRanges = append(t.condRanges, [2]string{r.start, r.end})
			}
		}
	}
	return t, nil
}

// outcome is Apply's result from the response of t's own transaction
// (with its Else reads): a failed compare is named.
func (s *Store) outcome(t *txn, resp *clientv3.TxnResponse, err error) error {
	if noSpace(err) {
		return kv.DiskFull(s.where(), storeErr("apply", err))
	}
	if err != nil {
		return storeErr("apply", err)
	}
	if resp.Succeeded {
		return nil
	}
	values := map[string][]byte{}
	for _, r := range resp.Responses {
		if kvs := r.GetResponseRange().GetKvs(); len(kvs) == 1 {
			values[string(kvs[0].Key[len(s.records):])] = append([]byte{}, kvs[0].Value...) // non-nil: present
		}
	}
	for i, c := range t.conds {
		if c.Op != kv.IfUnchanged && !c.Holds(values[c.Key]) {
			return &kv.ConflictError{Index: i, Cond: c}
		}
	}
	if t.unchanged >= 0 { // every condition on a key holds: this one failed
		return &kv.ConflictError{Index: t.unchanged, Cond: t.conds[t.unchanged]}
	}
	return errors.New("store: etcd refused the conditions, yet each holds at the revision it read")
}

// storeErr makes an etcd error the Store's (see etcdns.Err).
var storeErr = etcdns.Err

// noSpace reports whether err is etcd refusing a write because its NOSPACE
// alarm is raised: a member's database reached its quota
// (--quota-backend-bytes). Reads go on; writes stay refused until an
// operator compacts, defragments and disarms the alarm (etcdctl alarm
// disarm), and then succeed with no restart of ours.
func noSpace(err error) bool {
	return errors.Is(err, rpctypes.ErrNoSpace) || errors.Is(err, rpctypes.ErrGRPCNoSpace)
}

// where names the store in the operator's log: the cluster and the
// namespace.
func (s *Store) where() string {
	return fmt.Sprintf("etcd %s namespace %s", strings.Join(s.cli.Endpoints(), ","), strings.TrimSuffix(s.records, "records/"))
}
