package outbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// KV is an emitting service's audit outbox kept in its kv.Store, so that it
// works on any store (bbolt, etcd): a service writes its events with the
// change they record, in one Apply (KV.Apply), and a Shipper delivers them.
// It implements Source, Counter and Witnessed (witness.go). It is safe
// for concurrent use.
//
// The outbox is a range of store keys, and its witnesses another:
//
//	outbox/{16 hex digits: Unix nanoseconds}-{8 hex digits: epoch}  auditv1.Event (protobuf)
//	auditwitness/{chain}   the witness of chain "teams/{team}" or "system": seq (8 bytes, big-endian) + hash
//
// The nanoseconds are the wall clock made strictly increasing within the
// KV (one per process), and the epoch is drawn at random when it is made:
// keys sort in the order the events were made and never collide, across
// restarts and across processes sharing a store. The event id is
// "{emitter}-{epoch}-{nanoseconds}" (the audit service accepts from an
// emitter only ids starting with its name), so an id names its key.
// Concurrent changes may commit in another order than their keys; Pending
// reads from a little before the newest delivered key (Cursor), and from
// the first key every SweepEvery, so that an event committed behind one
// already delivered is delivered next, never skipped.
type KV struct {
	store   kv.Store
	emitter string
	epoch   string // 8 hex digits
	last    atomic.Int64
	cursor  Cursor // where Pending reads from
	notify  atomic.Pointer[func()]
	// discard drops every event instead of writing it (DiscardEvents).
	discard bool
}

var (
	_ Source  = (*KV)(nil)
	_ Counter = (*KV)(nil)
)

const prefixKV = "outbox/"

// maxApplyOps is kv.Store's limit on one Apply: conditions and writes
// together.
const maxApplyOps = 128

// maxBacklogCount bounds the entries Backlog counts.
const maxBacklogCount = 100_000

// NewKV returns the outbox of emitter (its certificate's name: "resolver")
// in store.
func NewKV(store kv.Store, emitter string) *KV {
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	return &KV{store: store, emitter: emitter, epoch: hex.EncodeToString(b[:]),
		cursor: Cursor{Margin: uint64(LateCommit.Nanoseconds()), SweepEvery: SweepEvery}}
}

// DiscardEvents makes Apply drop every event instead of writing it. It
// exists for the benchmarks that compare changes with and without
// auditing, and must never be called otherwise.
func (o *KV) DiscardEvents() { o.discard = true }

// OnCommit sets fn (typically Shipper.Notify) to run after every Apply
// that wrote events. Set it before serving.
func (o *KV) OnCommit(fn func()) { o.notify.Store(&fn) }

// Apply is store.Apply with evs added to the outbox in the same write.
// conds keep their positions, so a *kv.ConflictError means what it would
// without events. An event the audit service would refuse is an internal
// error, and nothing is written.
func (o *KV) Apply(ctx context.Context, conds []kv.Cond, writes []kv.Write, evs ...*auditv1.Event) error {
	if o.discard {
		evs = nil
	}
	ews, err := o.writes(evs)
	if err != nil {
		return err
	}
	all := make([]kv.Write, 0, len(writes)+len(ews))
	all = append(append(all, writes...), ews...)
	if err := o.store.Apply(ctx, conds, all); err != nil {
		return err
	}
	if len(ews) > 0 {
		if fn := o.notify.Load(); fn != nil {
			(*fn)()
		}
	}
	return nil
}

// next returns the wall clock in Unix nanoseconds, made strictly
// increasing.
func (o *KV) next() int64 {
	for {
		last := o.last.Load()
		n := max(time.Now().UnixNano(), last+1)
		if o.last.CompareAndSwap(last, n) {
			return n
		}
	}
}

func kvKey(n uint64, epoch string) string {
	return fmt.Sprintf("%s%016x-%s", prefixKV, n, epoch)
}

// kvKeyTime returns the time (Unix nanoseconds) an outbox key was taken
// at.
func kvKeyTime(key string) (uint64, bool) {
	hexTime, _, ok := strings.Cut(strings.TrimPrefix(key, prefixKV), "-")
	if !ok || len(hexTime) != 16 {
		return 0, false
	}
	t, err := strconv.ParseUint(hexTime, 16, 64)
	return t, err == nil
}

// ID returns the id of the event at n (nanoseconds) of epoch.
func (o *KV) id(n uint64) string { return fmt.Sprintf("%s-%s-%016x", o.emitter, o.epoch, n) }

// keyOfID returns the outbox key of event id, false for an id the
// emitter did not make.
func (o *KV) keyOfID(id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, o.emitter+"-")
	if !ok {
		return "", false
	}
	epoch, ns, ok := strings.Cut(rest, "-")
	if !ok || len(epoch) != 8 || len(ns) != 16 || !isLowerHex(epoch) || !isLowerHex(ns) {
		return "", false
	}
	return prefixKV + ns + "-" + epoch, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// writes returns the Puts that add evs to the outbox, in order. Each
// event is copied, given a fresh id (and a time, when it has none),
// cleared of chain fields, and validated by the audit service's rules: an
// event it would refuse (which would block the outbox), or a nil one, is
// an internal error here, so that the change is not made.
func (o *KV) writes(evs []*auditv1.Event) ([]kv.Write, error) {
	out := make([]kv.Write, 0, len(evs))
	for _, ev := range evs {
		if ev == nil {
			return nil, errors.New("a nil audit event")
		}
		e := proto.Clone(ev).(*auditv1.Event)
		n := uint64(o.next())
		e.Id = o.id(n)
		if e.Time == nil {
			e.Time = timestamppb.Now()
		}
		e.Seq, e.PrevHash, e.Hash, e.AppendTime = 0, nil, nil, nil
		if err := audit.ValidateEvent("audit event", e); err != nil {
			// Not the caller's fault: no kind, so it is reported as internal.
			return nil, fmt.Errorf("audit event %s: %v", e.GetAction(), err)
		}
		b, err := proto.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("encode audit event: %w", err)
		}
		out = append(out, kv.Put(kvKey(n, o.epoch), b))
	}
	return out, nil
}

// Pending implements Source: the oldest max events, in key order.
func (o *KV) Pending(ctx context.Context, max int) ([]*auditv1.Event, error) {
	after := ""
	if from, sweep := o.cursor.From(time.Now()); !sweep {
		after = fmt.Sprintf("%s%016x", prefixKV, from) // before every key of time from on
	}
	kvs, err := o.store.Scan(ctx, prefixKV, after, max)
	if err != nil {
		return nil, fmt.Errorf("read the audit outbox: %w", err)
	}
	var first uint64
	if len(kvs) > 0 {
		first, _ = kvKeyTime(kvs[0].Key)
	}
	o.cursor.Read(first, len(kvs))
	out := make([]*auditv1.Event, 0, len(kvs))
	for _, e := range kvs {
		ev := &auditv1.Event{}
		if err := proto.Unmarshal(e.Value, ev); err != nil {
			return nil, fmt.Errorf("decode audit event %s: %w", e.Key, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// Ack implements Source: it deletes the events by id, in Applies of at
// most maxApplyOps deletions. Ids the emitter did not make, and events
// already deleted, are ignored.
func (o *KV) Ack(ctx context.Context, ids []string) error {
	return o.applyDeletions(ctx, o.deletions(ids))
}

// deletions returns the deletions of the events with ids from the outbox;
// ids the emitter did not make have none.
func (o *KV) deletions(ids []string) []kv.Write {
	var ws []kv.Write
	for _, id := range ids {
		if key, ok := o.keyOfID(id); ok {
			ws = append(ws, kv.Delete(key))
		}
	}
	return ws
}

// applyDeletions applies dels in Applies of at most maxApplyOps.
func (o *KV) applyDeletions(ctx context.Context, dels []kv.Write) error {
	for len(dels) > 0 {
		n := min(len(dels), maxApplyOps)
		if err := o.store.Apply(ctx, nil, dels[:n]); err != nil {
			return fmt.Errorf("delete delivered audit events: %w", err)
		}
		o.ackedDeletions(dels[:n])
		dels = dels[n:]
	}
	return nil
}

// ackedDeletions tells the cursor that the events of dels were delivered
// and deleted.
func (o *KV) ackedDeletions(dels []kv.Write) {
	for _, w := range dels {
		if t, ok := kvKeyTime(w.Key); ok {
			o.cursor.Acked(t)
		}
	}
}

// Backlog implements Counter: the events in the outbox, counted up to
// maxBacklogCount (a longer backlog reports that many).
func (o *KV) Backlog(ctx context.Context) (int, error) {
	const page = 1000
	n, after := 0, ""
	for n < maxBacklogCount {
		kvs, err := o.store.Scan(ctx, prefixKV, after, page)
		if err != nil {
			return 0, fmt.Errorf("count the audit outbox: %w", err)
		}
		n += len(kvs)
		if len(kvs) < page {
			break
		}
		after = kvs[len(kvs)-1].Key
	}
	return min(n, maxBacklogCount), nil
}
