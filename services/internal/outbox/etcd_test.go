package outbox_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/lib/etcdtest"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/audit/audittest"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/outbox"
)

// TestEtcd runs the etcd outbox's tests against one embedded etcd, each
// under its own namespace.
func TestEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, cli *clientv3.Client, ns string)
	}{
		{"OrderAndAck", testEtcdOrderAndAck},
		{"AddKeepsInputAndIDs", testEtcdAddKeepsInput},
		{"FailedTxnLeavesNothing", testEtcdFailedTxn},
		{"RefusesInvalidEvent", testEtcdRefusesInvalid},
		{"IDsUniqueAcrossInstances", testEtcdIDsUnique},
		{"EpochAndInstances", testEtcdEpoch},
		{"ReadsBoltRecords", testEtcdReadsBoltRecords},
		{"ShippersOfTwoReplicas", testEtcdShippers},
		{"LateEventFoundBySweep", testEtcdLateEvent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, cli, etcdtest.Prefix()) })
	}
}

func newEtcd(t *testing.T, cli *clientv3.Client, ns, emitter string) *outbox.Etcd {
	t.Helper()
	ob, err := outbox.NewEtcd(context.Background(), cli, ns, emitter)
	if err != nil {
		t.Fatalf("NewEtcd: %v", err)
	}
	return ob
}

func addEtcd(t *testing.T, ob *outbox.Etcd, evs ...*auditv1.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := ob.Add(context.Background(), ev); err != nil {
			t.Fatalf("Add: %v", err)
		}
	}
}

func pendingOf(t *testing.T, src outbox.Source, max int) []*auditv1.Event {
	t.Helper()
	evs, err := src.Pending(context.Background(), max)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return evs
}

func testEtcdOrderAndAck(t *testing.T, cli *clientv3.Client, ns string) {
	ob := newEtcd(t, cli, ns, "resolver")
	for i := 1; i <= 5; i++ {
		addEtcd(t, ob, event("acme", i))
	}
	first := pendingOf(t, ob, 3)
	if got := details(first); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("Pending(3): got %v, want 1 2 3", got)
	}
	var prev string
	for _, ev := range first {
		if !strings.HasPrefix(ev.GetId(), "resolver-") || ev.GetId() <= prev {
			t.Errorf("id %q after %q: want increasing ids starting with resolver-", ev.GetId(), prev)
		}
		prev = ev.GetId()
	}
	if n, _ := ob.Backlog(context.Background()); n != 5 {
		t.Errorf("Backlog: got %d, want 5", n)
	}
	if err := ob.Ack(context.Background(), []string{first[0].GetId(), first[1].GetId(), "resolver-unknown"}); err != nil {
		t.Fatal(err)
	}
	if got := details(pendingOf(t, ob, 10)); !slices.Equal(got, []string{"3", "4", "5"}) {
		t.Errorf("after Ack: got %v, want 3 4 5", got)
	}
	if n, _ := ob.Backlog(context.Background()); n != 3 {
		t.Errorf("Backlog: got %d, want 3", n)
	}
	// The layout mirrors bbolt's: 8-byte keys under <ns>outbox/.
	resp, err := cli.Get(context.Background(), ns+"outbox/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if k := kv.Key[len(ns+"outbox/"):]; len(k) != 8 {
			t.Errorf("outbox key %q: want 8 bytes after the prefix", kv.Key)
		}
	}
}

func testEtcdAddKeepsInput(t *testing.T, cli *clientv3.Client, ns string) {
	ob := newEtcd(t, cli, ns, "secretstore")
	ev := event("acme", 1)
	ev.Seq, ev.Hash = 5, []byte("x")
	before := proto.Clone(ev)
	addEtcd(t, ob, ev)
	if !proto.Equal(ev, before) {
		t.Errorf("Add changed its argument")
	}
	own := event("acme", 2)
	own.Id = "secretstore-custom-1"
	own.Time = nil
	addEtcd(t, ob, own)
	got := pendingOf(t, ob, 10)
	if got[0].GetSeq() != 0 || got[0].GetHash() != nil {
		t.Errorf("chain fields kept: %v", got[0])
	}
	if got[1].GetId() != "secretstore-custom-1" || got[1].GetTime() == nil {
		t.Errorf("got id %q time %v, want the given id and a time", got[1].GetId(), got[1].GetTime())
	}
}

// testEtcdFailedTxn: a transaction whose other compare fails puts no
// event; Committed runs the OnCommit function.
func testEtcdFailedTxn(t *testing.T, cli *clientv3.Client, ns string) {
	ctx := context.Background()
	ob := newEtcd(t, cli, ns, "resolver")
	var notified atomic.Int32
	ob.OnCommit(func() { notified.Add(1) })
	p, err := ob.Prepare(event("acme", 1))
	if err != nil {
		t.Fatal(err)
	}
	cmp, put := ob.Put(p)
	resp, err := cli.Txn(ctx).If(cmp, clientv3.Compare(clientv3.CreateRevision(ns+"gate"), ">", 0)).Then(put).Commit()
	if err != nil || resp.Succeeded {
		t.Fatalf("Txn: got succeeded=%v, %v; want a failed compare", resp != nil && resp.Succeeded, err)
	}
	if evs := pendingOf(t, ob, 10); len(evs) != 0 || notified.Load() != 0 {
		t.Errorf("failed txn: got %d events and %d notifications, want none", len(evs), notified.Load())
	}
	cmp, put = ob.Put(p)
	if resp, err := cli.Txn(ctx).If(cmp).Then(put, clientv3.OpPut(ns+"change", "x")).Commit(); err != nil || !resp.Succeeded {
		t.Fatalf("Txn: %v", err)
	}
	ob.Committed()
	if evs := pendingOf(t, ob, 10); len(evs) != 1 || notified.Load() != 1 {
		t.Errorf("committed txn: got %d events and %d notifications, want 1 and 1", len(evs), notified.Load())
	}
}

func testEtcdRefusesInvalid(t *testing.T, cli *clientv3.Client, ns string) {
	ob := newEtcd(t, cli, ns, "resolver")
	bad := event("acme", 1)
	bad.Action = ""
	if err := ob.Add(context.Background(), bad); !errors.Is(err, errs.Invalid) {
		t.Errorf("got %v, want an invalid-argument error", err)
	}
	foreign := event("acme", 2)
	foreign.Id = "secretstore-x-1"
	if _, err := ob.Prepare(foreign); !errors.Is(err, errs.Invalid) {
		t.Errorf("another emitter's id: got %v, want an invalid-argument error", err)
	}
	if evs := pendingOf(t, ob, 10); len(evs) != 0 {
		t.Errorf("got %d events, want none", len(evs))
	}
}

// testEtcdIDsUnique: two outboxes on one namespace (two replicas) adding
// at once give every event its own key and id.
func testEtcdIDsUnique(t *testing.T, cli *clientv3.Client, ns string) {
	obs := []*outbox.Etcd{newEtcd(t, cli, ns, "secretstore"), newEtcd(t, cli, ns, "secretstore")}
	if obs[0].Instance() == obs[1].Instance() {
		t.Fatalf("two outboxes took instance %d", obs[0].Instance())
	}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := obs[w%2].Add(context.Background(), event("acme", w*each+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := pendingOf(t, obs[0], 10_000)
	if len(got) != writers*each {
		t.Fatalf("got %d events, want %d", len(got), writers*each)
	}
	ids := map[string]bool{}
	epochs := map[string]bool{}
	for _, ev := range got {
		if ids[ev.GetId()] {
			t.Fatalf("id %s twice", ev.GetId())
		}
		ids[ev.GetId()] = true
		epochs[strings.Split(ev.GetId(), "-")[1]] = true
	}
	if len(epochs) != 2 {
		t.Errorf("epochs of the ids: got %v, want one per instance", epochs)
	}
	// Each writer's events are in the order it wrote them.
	last := map[int]int{}
	for _, ev := range got {
		var n int
		fmt.Sscan(ev.GetDetails()["n"], &n)
		w := n / each
		if prev, ok := last[w]; ok && n <= prev {
			t.Errorf("writer %d: event %d after %d", w, n, prev)
		}
		last[w] = n
	}
}

// testEtcdEpoch: the store's epoch is drawn once and kept; every open takes
// the next instance number.
func testEtcdEpoch(t *testing.T, cli *clientv3.Client, ns string) {
	a := newEtcd(t, cli, ns, "resolver")
	addEtcd(t, a, event("acme", 1))
	b := newEtcd(t, cli, ns, "resolver")
	addEtcd(t, b, event("acme", 2))
	got := pendingOf(t, b, 10)
	epoch := func(id string) (string, string) {
		e, inst, _ := strings.Cut(strings.Split(id, "-")[1], ".")
		return e, inst
	}
	e1, i1 := epoch(got[0].GetId())
	e2, i2 := epoch(got[1].GetId())
	if e1 != e2 || len(e1) != 16 || i1 == i2 {
		t.Errorf("ids %q and %q: want one epoch of 16 hex digits, two instances", got[0].GetId(), got[1].GetId())
	}
	resp, err := cli.Get(context.Background(), ns+"outbox_meta/epoch")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != e1 {
		t.Errorf("outbox_meta/epoch: got %v, %v; want %q", resp, err, e1)
	}
	if other := newEtcd(t, cli, etcdtest.Prefix(), "resolver"); other.Instance() != 1 {
		t.Errorf("a new namespace: instance %d, want 1", other.Instance())
	}
}

// testEtcdReadsBoltRecords: records as a bbolt outbox writes them (copied
// key for key: sequence keys, no stored id) read with the ids bbolt gave
// them, before the outbox's own, and are acknowledged by them.
func testEtcdReadsBoltRecords(t *testing.T, cli *clientv3.Client, ns string) {
	ctx := context.Background()
	const epoch = "0123456789abcdef"
	if _, err := cli.Put(ctx, ns+"outbox_meta/epoch", epoch); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 2; seq++ {
		body, err := proto.Marshal(event("acme", int(seq)))
		if err != nil {
			t.Fatal(err)
		}
		v := append(binary.AppendUvarint(nil, 0), body...)
		if _, err := cli.Put(ctx, ns+"outbox/"+string(binary.BigEndian.AppendUint64(nil, seq)), string(v)); err != nil {
			t.Fatal(err)
		}
	}
	ob := newEtcd(t, cli, ns, "resolver")
	addEtcd(t, ob, event("acme", 3))
	got := pendingOf(t, ob, 10)
	if d := details(got); !slices.Equal(d, []string{"1", "2", "3"}) {
		t.Fatalf("got %v, want 1 2 3", d)
	}
	if want := "resolver-" + epoch + "-0000000000000001"; got[0].GetId() != want {
		t.Errorf("id of a bbolt record: got %q, want %q", got[0].GetId(), want)
	}
	if !strings.HasPrefix(got[2].GetId(), "resolver-"+epoch+".") {
		t.Errorf("id of the outbox's own event: got %q, want the epoch %s and an instance", got[2].GetId(), epoch)
	}
	if err := ob.Ack(ctx, []string{got[0].GetId(), got[2].GetId()}); err != nil {
		t.Fatal(err)
	}
	if d := details(pendingOf(t, ob, 10)); !slices.Equal(d, []string{"2"}) {
		t.Errorf("after Ack: got %v, want 2", d)
	}
}

// testEtcdShippers: two replicas, each with its outbox instance and
// shipper over the one outbox, deliver every event once, in order.
func testEtcdShippers(t *testing.T, cli *clientv3.Client, ns string) {
	srv := audittest.Start(t, audittest.Options{})
	var obs []*outbox.Etcd
	for range 2 {
		ob := newEtcd(t, cli, ns, "secretstore")
		sh := outbox.New(outbox.Config{
			Source:       ob,
			Client:       internalapiv1.NewAuditIngestServiceClient(srv.Dial(t, "secretstore")),
			Emitter:      "secretstore",
			BatchSize:    16,
			MinBackoff:   5 * time.Millisecond,
			MaxBackoff:   50 * time.Millisecond,
			PollInterval: 50 * time.Millisecond,
		})
		ob.OnCommit(sh.Notify)
		run(t, sh)
		obs = append(obs, ob)
	}
	teams := []string{"acme", "beta"}
	const n = 100
	for i := range n {
		addEtcd(t, obs[i%2], event(teams[i%len(teams)], i))
	}
	eventually(t, 20*time.Second, "outbox drained", func() bool {
		left, err := obs[0].Backlog(context.Background())
		return err == nil && left == 0
	})
	checkDelivered(t, srv, teams, n)
}

// testEtcdLateEvent: after events are acknowledged, Pending reads from
// near the last of them (not through every deleted key since the first);
// an event that commits with a key far below that (a replica whose clock
// is an hour behind) is not lost: the next read from the first key, every
// SweepEvery, returns it.
func testEtcdLateEvent(t *testing.T, cli *clientv3.Client, ns string) {
	ctx := context.Background()
	ob := newEtcd(t, cli, ns, "resolver")
	outbox.SetSweepEvery(ob, 300*time.Millisecond)
	addEtcd(t, ob, event("acme", 1), event("acme", 2))
	got := pendingOf(t, ob, 10)
	if err := ob.Ack(ctx, []string{got[0].GetId(), got[1].GetId()}); err != nil {
		t.Fatal(err)
	}
	body, err := proto.Marshal(event("acme", 3))
	if err != nil {
		t.Fatal(err)
	}
	const id = "resolver-late.9-0000000000000001"
	late := uint64(time.Now().Add(-time.Hour).UnixMicro())<<12 | 9
	v := append(binary.AppendUvarint(nil, uint64(len(id))), id...)
	if _, err := cli.Put(ctx, ns+"outbox/"+string(binary.BigEndian.AppendUint64(nil, late)), string(append(v, body...))); err != nil {
		t.Fatal(err)
	}
	addEtcd(t, ob, event("acme", 4))
	if d := details(pendingOf(t, ob, 10)); !slices.Equal(d, []string{"4"}) {
		t.Fatalf("read after acknowledgements: got %v, want 4 (the late event waits for a sweep)", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		d := details(pendingOf(t, ob, 10))
		if slices.Equal(d, []string{"3", "4"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the late event was never read: got %v, want 3 4", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
