package outbox

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// Etcd is an outbox in etcd, under the emitting service's namespace, for a
// service that keeps its data in etcd: the service's own transaction puts
// a change and its event together (Put), so that they commit together.
// Several replicas of a service may share one outbox, each with its own
// Etcd and Shipper: event ids are unique across them, and the audit
// service skips what two shippers both deliver. It implements Source and
// Counter.
//
// # Layout
//
// The keys mirror the bbolt outbox (Bolt), bucket B and key K being the etcd
// key <namespace>B/K with the same value bytes, so that a copy of every
// key between a bbolt file and etcd gives a working outbox:
//
//	<namespace>outbox/<8 bytes, big-endian>  uvarint(len(id)) + id + the Event (protobuf, without Id)
//	<namespace>outbox_meta/epoch             the store's epoch: 16 hex digits, drawn once
//	<namespace>outbox_meta/instance          the last instance number handed out (decimal)
//
// Each Etcd takes a new instance number at open (a compare-and-swap
// increment of outbox_meta/instance). The key of an event is the
// microsecond (Unix time) it was put at, strictly increasing within an
// instance, times 4096, plus the instance number modulo 4096: key order is
// the order events were written in, across replicas up to the skew of
// their clocks. (It holds until the year 2112.) A put also requires its key
// to be absent, so that two instances never overwrite each other's event;
// a transaction that loses that compare is retried with a new key.
//
// The id of an event is stored with it: "{emitter}-{epoch}.{instance}-{key
// in 16 hex digits}", unique across instances and replicas, and never one
// a bbolt outbox with the same epoch assigns (those have no dot). A record
// without a stored id (one copied from a bbolt outbox) has the id the
// bbolt outbox gave it, "{emitter}-{epoch}-{key}", as Bolt reads it.
type Etcd struct {
	cli      *clientv3.Client
	emitter  string
	prefix   string // <namespace>outbox/
	epoch    string // the store's epoch (outbox_meta/epoch)
	instance uint64
	idEpoch  string // "{epoch}.{instance}": the epoch of the ids this instance assigns

	mu   sync.Mutex
	last uint64 // the last key handed out, or the greatest seen at open

	cursor Cursor // where Pending reads from

	// keys are the keys of the events the last Pending returned, by id,
	// so that Ack deletes them without a read.
	keysMu sync.Mutex
	keys   map[string]string

	notify atomic.Pointer[func()]
}

var (
	_ Source  = (*Etcd)(nil)
	_ Counter = (*Etcd)(nil)
)

// Keys of the etcd outbox, under the namespace (see Etcd).
const (
	etcdOutbox   = "outbox/"
	etcdEpoch    = "outbox_meta/epoch"
	etcdInstance = "outbox_meta/instance"
)

// instanceBits is how many low bits of a key hold the instance number.
const instanceBits = 12

// etcdPage bounds the entries of one etcd range read by Ack, and the
// operations of one transaction (etcd's default --max-txn-ops).
const (
	etcdPage   = 512
	etcdMaxOps = 128
)

// NewEtcd opens the outbox under namespace (which ends with "/", as the
// service's store's) on cli, which the caller closes after the outbox.
// emitter is the service's certificate name. On first use it draws the
// store's epoch (64 random bits, as a bbolt outbox does); every call takes
// a new instance number. It fails when etcd does not answer within ctx.
func NewEtcd(ctx context.Context, cli *clientv3.Client, namespace, emitter string) (*Etcd, error) {
	if emitter == "" {
		return nil, errors.New("outbox: emitter name required")
	}
	if namespace == "" || !strings.HasSuffix(namespace, "/") {
		return nil, fmt.Errorf("outbox: namespace %q: must be non-empty and end with \"/\"", namespace)
	}
	o := &Etcd{cli: cli, emitter: emitter, prefix: namespace + etcdOutbox,
		cursor: Cursor{Margin: uint64(LateCommit.Microseconds()) << instanceBits, SweepEvery: SweepEvery}}
	epochKey, instKey := namespace+etcdEpoch, namespace+etcdInstance
	for {
		resp, err := cli.Txn(ctx).Then(clientv3.OpGet(epochKey), clientv3.OpGet(instKey)).Commit()
		if err != nil {
			return nil, fmt.Errorf("outbox: read %s: %w", namespace+"outbox_meta/", etcdErr(err))
		}
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
			o.epoch = string(kvs[0].Value)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(epochKey), "=", kvs[0].ModRevision))
		} else {
			var rnd [8]byte
			if _, err := rand.Read(rnd[:]); err != nil {
				return nil, err
			}
			o.epoch = hex.EncodeToString(rnd[:])
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(epochKey), "=", 0))
			ops = append(ops, clientv3.OpPut(epochKey, o.epoch))
		}
		var n, rev int64
		if kvs := resp.Responses[1].GetResponseRange().GetKvs(); len(kvs) == 1 {
			if n, err = strconv.ParseInt(string(kvs[0].Value), 10, 64); err != nil || n < 0 {
				return nil, fmt.Errorf("outbox: %s holds %q, not a count", instKey, kvs[0].Value)
			}
			rev = kvs[0].ModRevision
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(instKey), "=", rev))
		ops = append(ops, clientv3.OpPut(instKey, strconv.FormatInt(n+1, 10)))
		put, err := cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("outbox: take an instance number: %w", etcdErr(err))
		}
		if put.Succeeded {
			o.instance = uint64(n + 1)
			break
		}
		// Another replica opened meanwhile: read again.
	}
	o.idEpoch = o.epoch + "." + strconv.FormatUint(o.instance, 10)
	// Go on after the greatest key in the outbox, so that a clock behind
	// the other replicas' (or behind this one's before a restart) does not
	// put new events before older ones.
	resp, err := cli.Get(ctx, o.prefix, clientv3.WithRange(clientv3.GetPrefixRangeEnd(o.prefix)),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("outbox: read %s: %w", o.prefix, etcdErr(err))
	}
	if len(resp.Kvs) == 1 {
		if k := resp.Kvs[0].Key[len(o.prefix):]; len(k) == 8 {
			o.last = binary.BigEndian.Uint64(k) >> instanceBits
		}
	}
	return o, nil
}

// Instance returns the instance number this outbox took at open.
func (o *Etcd) Instance() uint64 { return o.instance }

// OnCommit sets fn (typically Shipper.Notify) to run when Committed is
// called. Set it before the first Put.
func (o *Etcd) OnCommit(fn func()) { o.notify.Store(&fn) }

// Committed runs the OnCommit function: call it after every transaction
// that committed events (Add does).
func (o *Etcd) Committed() {
	if fn := o.notify.Load(); fn != nil {
		(*fn)()
	}
}

// EtcdPrepared is an event made ready by Etcd.Prepare for Etcd.Put:
// copied, completed, validated and encoded. It is immutable, and only the
// Etcd that prepared it puts it.
type EtcdPrepared struct {
	o      *Etcd
	given  string // the event's own id, "" for one assigned by Put
	body   []byte // the Event without its id
	action string // names the event in errors
}

// Prepare copies ev (ev is not modified), gives it the current time when it
// has none, clears the chain fields and validates it with
// audit.ValidateEvent, with the id Put assigns when it has none, as
// Bolt.Prepare does. A given Id must start with "{emitter}-". It returns an
// errs.KindInvalid error for an invalid event.
func (o *Etcd) Prepare(ev *auditv1.Event) (*EtcdPrepared, error) {
	if ev == nil {
		return nil, errs.Field("audit event", "is required")
	}
	e := proto.Clone(ev).(*auditv1.Event)
	given := e.Id
	if given != "" && !strings.HasPrefix(given, o.emitter+"-") {
		return nil, errs.Field("audit event.id", "must start with %q (the emitter's name); leave it empty to have one assigned", o.emitter+"-")
	}
	if e.Time == nil {
		e.Time = timestamppb.New(time.Now())
	}
	e.Seq, e.PrevHash, e.Hash, e.AppendTime = 0, nil, nil, nil
	if given == "" {
		// Assigned ids differ from this one only in their hex digits.
		e.Id = o.id(0)
	}
	if err := audit.ValidateEvent("audit event", e); err != nil {
		return nil, err
	}
	e.Id = ""
	body, err := proto.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("outbox: marshal event: %w", err)
	}
	return &EtcdPrepared{o: o, given: given, body: body, action: e.GetAction()}, nil
}

// Put returns what a transaction adds p to the outbox with: a compare that
// its key is absent, for the transaction's If, and the put, for its Then.
// Every call takes the instance's next key, so a transaction retried after
// a lost compare calls Put again. After the transaction commits, call
// Committed. Put panics on an event Prepare of another outbox made.
func (o *Etcd) Put(p *EtcdPrepared) (clientv3.Cmp, clientv3.Op) {
	if p == nil || p.o != o {
		panic("outbox: Put of an event not prepared by this outbox")
	}
	k := o.nextKey()
	id := p.given
	if id == "" {
		id = o.id(k)
	}
	v := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(id)+len(p.body)), uint64(len(id)))
	v = append(append(v, id...), p.body...)
	key := o.prefix + string(binary.BigEndian.AppendUint64(make([]byte, 0, 8), k))
	return clientv3.Compare(clientv3.CreateRevision(key), "=", 0), clientv3.OpPut(key, string(v))
}

// nextKey is the key of the next event put by this instance.
func (o *Etcd) nextKey() uint64 {
	now := uint64(time.Now().UnixMicro())
	o.mu.Lock()
	ts := max(now, o.last+1)
	o.last = ts
	o.mu.Unlock()
	return ts<<instanceBits | o.instance&(1<<instanceBits-1)
}

// id is the assigned id of this instance's event under key k.
func (o *Etcd) id(k uint64) string {
	return fmt.Sprintf("%s-%s-%016x", o.emitter, o.idEpoch, k)
}

// Add writes ev into the outbox in a transaction of its own (the event of
// something that changed nothing): Prepare, then Put, retried while
// another instance holds the key. It returns Prepare's errors.
func (o *Etcd) Add(ctx context.Context, ev *auditv1.Event) error {
	p, err := o.Prepare(ev)
	if err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		cmp, put := o.Put(p)
		resp, err := o.cli.Txn(ctx).If(cmp).Then(put).Commit()
		if err != nil {
			return fmt.Errorf("outbox: %s event: %w", p.action, etcdErr(err))
		}
		if resp.Succeeded {
			o.Committed()
			return nil
		}
	}
}

// splitValue returns the id and the encoded event of the record under k
// (the key without the prefix), as Bolt.splitValue does.
func (o *Etcd) splitValue(k, v []byte) (id string, body []byte, err error) {
	n, w := binary.Uvarint(v)
	if w <= 0 || uint64(len(v)-w) < n || len(k) != 8 {
		return "", nil, errors.New("outbox: corrupt record")
	}
	if n == 0 {
		return fmt.Sprintf("%s-%s-%016x", o.emitter, o.epoch, binary.BigEndian.Uint64(k)), v[w:], nil
	}
	return string(v[w : w+int(n)]), v[w+int(n):], nil
}

// Pending implements Source: one linearizable range read, in key order,
// from where the Cursor says.
func (o *Etcd) Pending(ctx context.Context, max int) ([]*auditv1.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if max <= 0 {
		return nil, nil
	}
	start := o.prefix
	if from, sweep := o.cursor.From(time.Now()); !sweep {
		start = o.prefix + string(binary.BigEndian.AppendUint64(nil, from))
	}
	resp, err := o.cli.Get(ctx, start, clientv3.WithRange(clientv3.GetPrefixRangeEnd(o.prefix)),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(int64(max)))
	if err != nil {
		return nil, fmt.Errorf("outbox: read: %w", etcdErr(err))
	}
	out := make([]*auditv1.Event, 0, len(resp.Kvs))
	keys := make(map[string]string, len(resp.Kvs))
	defer func() {
		o.keysMu.Lock()
		o.keys = keys
		o.keysMu.Unlock()
		var first uint64
		if len(resp.Kvs) > 0 && len(resp.Kvs[0].Key) == len(o.prefix)+8 {
			first = binary.BigEndian.Uint64(resp.Kvs[0].Key[len(o.prefix):])
		}
		o.cursor.Read(first, len(out))
	}()
	for _, kv := range resp.Kvs {
		id, body, err := o.splitValue(kv.Key[len(o.prefix):], kv.Value)
		if err != nil {
			return nil, err
		}
		ev := &auditv1.Event{}
		if err := proto.Unmarshal(body, ev); err != nil {
			return nil, fmt.Errorf("outbox: decode event: %w", err)
		}
		ev.Id = id
		out = append(out, ev)
		keys[id] = string(kv.Key)
	}
	return out, nil
}

// Ack implements Source. The events the last Pending returned are deleted
// by the keys it read them at; for any other id (Ack's callers need not
// have called Pending), it reads from the first key, a page at a time,
// until every id is found. Keys are deleted one by one: an event put
// meanwhile between them stays.
func (o *Etcd) Ack(ctx context.Context, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	var keys []string
	want := make(map[string]bool, len(ids))
	o.keysMu.Lock()
	for _, id := range ids {
		if k, ok := o.keys[id]; ok {
			keys = append(keys, k)
		} else {
			want[id] = true
		}
	}
	o.keysMu.Unlock()
	if len(want) > 0 {
		found, err := o.find(ctx, want)
		if err != nil {
			return err
		}
		keys = append(keys, found...)
	}
	for len(keys) > 0 {
		n := min(len(keys), etcdMaxOps)
		ops := make([]clientv3.Op, n)
		for i, k := range keys[:n] {
			ops[i] = clientv3.OpDelete(k)
		}
		if _, err := o.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("outbox: delete delivered events: %w", etcdErr(err))
		}
		for _, k := range keys[:n] {
			if b := k[len(o.prefix):]; len(b) == 8 {
				o.cursor.Acked(binary.BigEndian.Uint64([]byte(b)))
			}
		}
		keys = keys[n:]
	}
	return nil
}

// find returns the keys of the events with the ids of want, reading from
// the first key until every one is found.
func (o *Etcd) find(ctx context.Context, want map[string]bool) ([]string, error) {
	var keys []string
	start, end := o.prefix, clientv3.GetPrefixRangeEnd(o.prefix)
	var rev int64
	for len(keys) < len(want) {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(etcdPage),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithRev(rev)}
		resp, err := o.cli.Get(ctx, start, opts...)
		if errors.Is(err, rpctypes.ErrCompacted) {
			rev = 0 // read on at the current revision: ids are found all the same
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("outbox: read: %w", etcdErr(err))
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			id, _, err := o.splitValue(kv.Key[len(o.prefix):], kv.Value)
			if err != nil {
				return nil, err
			}
			if want[id] {
				keys = append(keys, string(kv.Key))
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	return keys, nil
}

// Backlog implements Counter.
func (o *Etcd) Backlog(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	resp, err := o.cli.Get(ctx, o.prefix, clientv3.WithRange(clientv3.GetPrefixRangeEnd(o.prefix)), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("outbox: count: %w", etcdErr(err))
	}
	return int(resp.Count), nil
}

// etcdErr flattens an etcd error into text, so that etcd's gRPC status
// never reaches a caller as the service's own; context errors stay
// matchable, and an unreachable cluster is errs.KindUnavailable.
func etcdErr(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	code := codes.Unknown
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	}
	flat := fmt.Errorf("etcd: %v", err)
	if code == codes.Unavailable || code == codes.DeadlineExceeded {
		return &errs.Error{Kind: errs.KindUnavailable, Message: "store unavailable", Err: flat}
	}
	return flat
}
