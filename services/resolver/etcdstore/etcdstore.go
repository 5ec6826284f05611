// Package etcdstore implements resolver.Store on etcd v3, for deployments
// that run several resolver replicas on a replicated store.
//
// The store keeps its keys under a namespace ("/oz/resolver/"), so that
// several services share one etcd cluster: records at
// <namespace>records/<key>, the schema version at <namespace>meta/schema.
// Apply is one etcd transaction whose compares are the conditions; Get and
// Scan are linearizable reads. A write is durable when etcd acknowledges
// it: committed to the raft log of a quorum of members, each fsynced.
package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/resolver"
)

// Namespace is the resolver's namespace in a shared etcd.
const Namespace = "/oz/resolver/"

// MaxOps bounds the conditions and writes of one Apply together: the
// Store's documented limit, and etcd's default --max-txn-ops.
const MaxOps = 128

// OpenTimeout bounds Open's first exchange with etcd when ctx has no
// deadline: an unreachable cluster fails the start instead of hanging it.
const OpenTimeout = 10 * time.Second

// scanPage is how many entries one etcd range of a Scan returns at most.
const scanPage = 512

var (
	schemaVersion = "1"
	errClosed     = errors.New("store: closed")
)

// Store is a resolver.Store in etcd. It is safe for concurrent use.
type Store struct {
	cli     *clientv3.Client
	owned   bool   // Close closes cli
	records string // key prefix of the records
	closed  atomic.Bool
}

var _ resolver.Store = (*Store)(nil)

// Open connects to the etcd cluster of cfg and opens the store under
// namespace (see New). Close closes the connection.
func Open(ctx context.Context, cfg clientv3.Config, namespace string) (*Store, error) {
	if err := checkNamespace(namespace); err != nil {
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
	if err := checkNamespace(namespace); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, OpenTimeout)
		defer cancel()
	}
	key := namespace + "meta/schema"
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, schemaVersion)).
		Else(clientv3.OpGet(key)).
		Commit()
	if errors.Is(err, context.DeadlineExceeded) {
		// The client keeps why it could not connect to itself: say where
		// to look.
		return nil, fmt.Errorf("open etcd store %s: no answer from %s in time: is etcd running there, "+
			"and does it accept this client's TLS (scheme, CA, client certificate)? %w",
			namespace, strings.Join(cli.Endpoints(), ","), err)
	}
	if err != nil {
		return nil, fmt.Errorf("open etcd store %s: %w", namespace, storeErr("schema", err))
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) != 1 || string(kvs[0].Value) != schemaVersion {
			var got []byte
			if len(kvs) == 1 {
				got = kvs[0].Value
			}
			return nil, fmt.Errorf("open etcd store %s: schema version %q, this build reads %q", namespace, got, schemaVersion)
		}
	}
	return &Store{cli: cli, records: namespace + "records/"}, nil
}

func checkNamespace(ns string) error {
	if ns == "" || ns[len(ns)-1] != '/' {
		return fmt.Errorf("etcd store: namespace %q: must be non-empty and end with \"/\"", ns)
	}
	return nil
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

// Get implements resolver.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	resp, err := s.cli.Get(ctx, s.records+key)
	if err != nil {
		return nil, storeErr("get", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, errs.E(errs.KindNotFound, "not found")
	}
	return resp.Kvs[0].Value, nil // freshly decoded: the caller's
}

// Scan implements resolver.Store. Its pages are read at one revision, so
// it sees the store as it was at one moment, however many entries match.
func (s *Store) Scan(ctx context.Context, prefix, after string, limit int) ([]resolver.KV, error) {
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

func (s *Store) scan(ctx context.Context, prefix, after string, limit int) ([]resolver.KV, error) {
	out := []resolver.KV{}
	start, end := s.records+prefix, clientv3.GetPrefixRangeEnd(s.records+prefix)
	if after != "" {
		start = max(start, s.records+after+"\x00")
	}
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
		resp, err := s.cli.Get(ctx, start, opts...)
		if err != nil {
			return nil, err
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			out = append(out, resolver.KV{Key: string(kv.Key[len(s.records):]), Value: kv.Value})
		}
		if !resp.More || len(resp.Kvs) == 0 || limit > 0 && len(out) >= limit {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	return out, nil
}

// Apply implements resolver.Store with one etcd transaction: conditions
// are its compares, writes its operations (the last write to a key decides,
// since etcd takes one per key). When a compare fails, the transaction
// reads the conditions' keys instead, at the same revision, and Apply
// reports the first condition those values fail.
//
// An error other than a *ConflictError (etcd unreachable, ctx done while
// waiting for etcd) may leave the writes made or not; conditions make a
// retry safe.
func (s *Store) Apply(ctx context.Context, conds []resolver.Cond, writes []resolver.Write) error {
	if n := len(conds) + len(writes); n > MaxOps {
		return fmt.Errorf("store: %d conditions and writes in one Apply, more than %d", n, MaxOps)
	}
	cmps := make([]clientv3.Cmp, 0, len(conds))
	var reads []clientv3.Op // the Else branch: each conditioned key once
	read := map[string]bool{}
	for _, c := range conds {
		if c.Key == "" {
			return errors.New("store: condition on an empty key")
		}
		key := s.records + c.Key
		switch c.Op {
		case resolver.IfAbsent:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		case resolver.IfPresent:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), ">", 0))
		case resolver.IfEqual:
			// etcd fails a value compare on an absent key, as Holds does.
			cmps = append(cmps, clientv3.Compare(clientv3.Value(key), "=", string(c.Value)))
		default:
			return fmt.Errorf("store: condition on key %q: unknown op %d", c.Key, c.Op)
		}
		if !read[c.Key] {
			read[c.Key] = true
			reads = append(reads, clientv3.OpGet(key))
		}
	}
	last := map[string]int{} // key → index of its last write
	for i, w := range writes {
		if w.Key == "" || !w.Delete && len(w.Value) == 0 {
			return fmt.Errorf("store: write of key %q: empty key or value", w.Key)
		}
		last[w.Key] = i
	}
	ops := make([]clientv3.Op, 0, len(last))
	for i, w := range writes {
		switch {
		case last[w.Key] != i:
		case w.Delete:
			ops = append(ops, clientv3.OpDelete(s.records+w.Key))
		default:
			ops = append(ops, clientv3.OpPut(s.records+w.Key, string(w.Value)))
		}
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(reads...).Commit()
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
	for i, c := range conds {
		if !c.Holds(values[c.Key]) {
			return &resolver.ConflictError{Index: i, Cond: c}
		}
	}
	return errors.New("store: etcd refused the conditions, yet each holds at the revision it read")
}

// storeErr makes an etcd error the Store's: context errors stay as they
// are (errors.Is matches them); a cluster that cannot be reached or has no
// leader is errs.KindUnavailable; anything else is an internal error. etcd's
// gRPC status is flattened into text, so that it never reaches a caller as
// the resolver's own (etcd's PermissionDenied is not the caller's).
func storeErr(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("etcd %s: %w", op, err)
	}
	code := codes.Unknown
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	}
	flat := fmt.Errorf("etcd %s: %v", op, err)
	if code == codes.Unavailable || code == codes.DeadlineExceeded {
		return &errs.Error{Kind: errs.KindUnavailable, Message: "store unavailable", Err: flat}
	}
	return flat
}
