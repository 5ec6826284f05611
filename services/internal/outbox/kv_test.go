package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/etcdtest"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/audit/audittest"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
	"github.com/ozsecrets/oz/services/internal/outbox"
)

// store is a kv.Store under test, and how to open its data again.
type store struct {
	kv.Store
	// restart closes the store and opens its data again, as a restarted
	// process does.
	restart func(t *testing.T) kv.Store
	// replica returns a store over the same data, open beside this one, as
	// another replica's: on etcd, another client on the same namespace; on
	// bbolt, whose file one process holds, this store itself.
	replica func(t *testing.T) kv.Store
}

// backend makes the stores of one kv.Store implementation.
type backend struct {
	name string
	open func(t *testing.T) *store // a new, empty store
}

func openBolt(t *testing.T, path string) kv.Store {
	t.Helper()
	s, err := boltkv.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newBoltStore(t *testing.T) *store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kv.db")
	st := &store{Store: openBolt(t, path)}
	st.restart = func(t *testing.T) kv.Store {
		st.Close()
		st.Store = openBolt(t, path)
		return st.Store
	}
	st.replica = func(*testing.T) kv.Store { return st.Store }
	return st
}

func openEtcd(t *testing.T, srv *etcdtest.Cluster, ns string) kv.Store {
	t.Helper()
	s, err := etcdkv.New(context.Background(), srv.Client(t), ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newEtcdStore(t *testing.T, srv *etcdtest.Cluster) *store {
	t.Helper()
	ns := etcdtest.Prefix()
	st := &store{Store: openEtcd(t, srv, ns)}
	st.restart = func(t *testing.T) kv.Store {
		st.Close()
		st.Store = openEtcd(t, srv, ns)
		return st.Store
	}
	st.replica = func(t *testing.T) kv.Store { return openEtcd(t, srv, ns) }
	return st
}

// newBoltKV returns the outbox of emitter in a new bbolt store.
func newBoltKV(t *testing.T, emitter string) *outbox.KV {
	t.Helper()
	return outbox.NewKV(newBoltStore(t), emitter)
}

// TestKV runs the outbox's tests on boltkv and on etcdkv (one embedded
// etcd, each test under its own namespace).
func TestKV(t *testing.T) {
	srv := etcdtest.Start(t)
	backends := []backend{
		{"bolt", newBoltStore},
		{"etcd", func(t *testing.T) *store { return newEtcdStore(t, srv) }},
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, st *store)
	}{
		{"OrderAndAck", testKVOrderAndAck},
		{"ApplyKeepsInput", testKVApplyKeepsInput},
		{"FailedApplyLeavesNothing", testKVFailedApply},
		{"RefusesInvalidEvent", testKVRefusesInvalid},
		{"ConcurrentWritersAndReplicas", testKVConcurrent},
		{"BacklogAndAckPastOnePage", testKVBacklogPages},
		{"SurvivesRestart", testKVRestart},
		{"LateEventFoundBySweep", testKVLateEvent},
		{"ShippersOfTwoReplicas", testKVShippers},
		{"Witnesses", testKVWitnesses},
		{"WitnessesOfManyChains", testKVWitnessesMany},
		{"WitnessOfALogThatWentBackwards", testKVWitnessLogWentBackwards},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, b.open(t)) })
			}
		})
	}
}

// event returns a valid event without an id: the outbox assigns it.
func event(team string, i int) *auditv1.Event {
	return &auditv1.Event{
		Time:     timestamppb.New(time.Now()),
		Actor:    &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/alice", Client: "cli"},
		Action:   "secret.create",
		Resource: fmt.Sprintf("teams/%s/secrets/S%d", team, i),
		Team:     team,
		Outcome:  auditv1.Outcome_OUTCOME_OK,
		Details:  map[string]string{"n": fmt.Sprint(i)},
	}
}

// add writes evs into ob in one Apply that changes nothing else.
func add(t *testing.T, ob *outbox.KV, evs ...*auditv1.Event) {
	t.Helper()
	if err := ob.Apply(context.Background(), nil, nil, evs...); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func pending(t *testing.T, src outbox.Source, max int) []*auditv1.Event {
	t.Helper()
	evs, err := src.Pending(context.Background(), max)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return evs
}

func ack(t *testing.T, src outbox.Source, evs ...*auditv1.Event) {
	t.Helper()
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.GetId()
	}
	if err := src.Ack(context.Background(), ids); err != nil {
		t.Fatalf("Ack: %v", err)
	}
}

func backlog(t *testing.T, c outbox.Counter) int {
	t.Helper()
	n, err := c.Backlog(context.Background())
	if err != nil {
		t.Fatalf("Backlog: %v", err)
	}
	return n
}

func details(evs []*auditv1.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.GetDetails()["n"])
	}
	return out
}

// epochOf returns the epoch of an id "{emitter}-{epoch}-{nanoseconds}".
func epochOf(id string) string { return strings.Split(id, "-")[1] }

// present reports whether key holds a value in s.
func present(t *testing.T, s kv.Store, key string) bool {
	t.Helper()
	_, err := s.Get(context.Background(), key)
	if err != nil && !errors.Is(err, errs.NotFound) {
		t.Fatalf("Get %s: %v", key, err)
	}
	return err == nil
}

// testKVOrderAndAck: events read in the order written, with increasing ids
// "{emitter}-…"; Ack deletes by id and ignores ids not in the outbox;
// Backlog counts what is left.
func testKVOrderAndAck(t *testing.T, st *store) {
	ob := outbox.NewKV(st, "resolver")
	for i := 1; i <= 5; i++ {
		add(t, ob, event("acme", i))
	}
	first := pending(t, ob, 3)
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
	if n := backlog(t, ob); n != 5 {
		t.Errorf("Backlog: got %d, want 5", n)
	}
	unknown := []string{
		"resolver-unknown",                                   // not an id the outbox makes
		"resolver-0badc0de-0000000000000001",                 // one it could make, never written
		"secretstore-" + first[2].GetId()[len("resolver-"):], // another emitter's
	}
	if err := ob.Ack(context.Background(), append([]string{first[0].GetId(), first[1].GetId()}, unknown...)); err != nil {
		t.Fatal(err)
	}
	if got := details(pending(t, ob, 10)); !slices.Equal(got, []string{"3", "4", "5"}) {
		t.Errorf("after Ack: got %v, want 3 4 5", got)
	}
	if n := backlog(t, ob); n != 3 {
		t.Errorf("Backlog: got %d, want 3", n)
	}
	// Acknowledging again what is gone changes nothing.
	ack(t, ob, first[:2]...)
	if n := backlog(t, ob); n != 3 {
		t.Errorf("Backlog after a repeated Ack: got %d, want 3", n)
	}
}

// testKVApplyKeepsInput: Apply does not modify the events passed in; what
// it writes is a copy with an id of its own (any given one is replaced),
// a time when it had none, and no chain fields.
func testKVApplyKeepsInput(t *testing.T, st *store) {
	ob := outbox.NewKV(st, "secretstore")
	ev := event("acme", 1)
	ev.Seq, ev.Hash, ev.PrevHash = 5, []byte("x"), []byte("y")
	before := proto.Clone(ev)
	add(t, ob, ev)
	if !proto.Equal(ev, before) {
		t.Errorf("Apply changed its argument")
	}
	own := event("acme", 2)
	own.Id = "secretstore-custom-1"
	own.Time = nil
	add(t, ob, own)
	got := pending(t, ob, 10)
	if len(got) != 2 {
		t.Fatalf("got %d events, want 2", len(got))
	}
	want := proto.Clone(ev).(*auditv1.Event)
	want.Id, want.Seq, want.Hash, want.PrevHash = got[0].GetId(), 0, nil, nil
	if !proto.Equal(got[0], want) {
		t.Errorf("got %v, want %v", got[0], want)
	}
	for _, e := range got {
		// "{emitter}-{8 hex digits}-{16 hex digits}"
		parts := strings.Split(e.GetId(), "-")
		if len(parts) != 3 || parts[0] != "secretstore" || len(parts[1]) != 8 || len(parts[2]) != 16 {
			t.Errorf("id %q: want secretstore-{epoch}-{nanoseconds}", e.GetId())
		}
	}
	if got[1].GetId() == own.Id || got[1].GetTime() == nil {
		t.Errorf("got id %q time %v, want an assigned id and a time", got[1].GetId(), got[1].GetTime())
	}
}

// testKVFailedApply: an Apply whose condition fails writes neither the
// change nor its event, and reports the condition at its own position; a
// committed one writes both and runs the OnCommit function.
func testKVFailedApply(t *testing.T, st *store) {
	ctx := context.Background()
	ob := outbox.NewKV(st, "resolver")
	var notified atomic.Int32
	ob.OnCommit(func() { notified.Add(1) })
	if err := st.Apply(ctx, nil, []kv.Write{kv.Put("things/a", []byte("1"))}); err != nil {
		t.Fatal(err)
	}
	change := []kv.Write{kv.Put("things/b", []byte("1"))}
	err := ob.Apply(ctx, []kv.Cond{kv.Present("things/a"), kv.Present("gate")}, change, event("acme", 1))
	var ce *kv.ConflictError
	if !errors.As(err, &ce) || ce.Index != 1 || ce.Cond.Key != "gate" {
		t.Fatalf("got %v, want a *kv.ConflictError on condition 1 (gate)", err)
	}
	if n := backlog(t, ob); n != 0 || notified.Load() != 0 || present(t, st, "things/b") {
		t.Errorf("failed Apply: got %d events, %d notifications, change written %v; want none",
			n, notified.Load(), present(t, st, "things/b"))
	}
	if err := ob.Apply(ctx, []kv.Cond{kv.Present("things/a")}, change); err != nil {
		t.Fatal(err)
	}
	if notified.Load() != 0 {
		t.Errorf("an Apply without events: got %d notifications, want none", notified.Load())
	}
	if err := ob.Apply(ctx, []kv.Cond{kv.Present("things/a")}, []kv.Write{kv.Put("things/c", []byte("1"))},
		event("acme", 2), event("acme", 3)); err != nil {
		t.Fatal(err)
	}
	if got := details(pending(t, ob, 10)); !slices.Equal(got, []string{"2", "3"}) || notified.Load() != 1 || !present(t, st, "things/c") {
		t.Errorf("committed Apply: got events %v, %d notifications, change written %v; want 2 3, 1, true",
			got, notified.Load(), present(t, st, "things/c"))
	}
}

// testKVRefusesInvalid: an event the audit service would refuse fails the
// Apply (an internal error: not the caller's fault), and nothing of it is
// written — neither the change nor the other events.
func testKVRefusesInvalid(t *testing.T, st *store) {
	ctx := context.Background()
	ob := outbox.NewKV(st, "resolver")
	bad := event("acme", 2)
	bad.Action = ""
	huge := event("acme", 3)
	huge.Resource = strings.Repeat("x", 2000) // over audit.MaxNameLength
	for name, ev := range map[string]*auditv1.Event{"NoAction": bad, "TooLong": huge, "Nil": nil} {
		t.Run(name, func(t *testing.T) {
			err := ob.Apply(ctx, nil, []kv.Write{kv.Put("things/x", []byte("1"))}, event("acme", 1), ev)
			if err == nil {
				t.Fatal("Apply with an invalid event: no error")
			}
			if errors.Is(err, errs.Invalid) {
				t.Errorf("got %v, want an internal error (no kind)", err)
			}
			if n := backlog(t, ob); n != 0 || present(t, st, "things/x") {
				t.Errorf("got %d events, change written %v; want none", n, present(t, st, "things/x"))
			}
		})
	}
}

// testKVConcurrent: writers on two outboxes over one store's data (two
// replicas of a service, on etcd two stores on one namespace) never lose
// or duplicate an event: each has its own id (the outboxes' epochs
// differ), and each writer's events are read in the order it wrote them,
// with the change each recorded.
func testKVConcurrent(t *testing.T, st *store) {
	obs := []*outbox.KV{outbox.NewKV(st, "secretstore"), outbox.NewKV(st.replica(t), "secretstore")}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				n := w*each + i
				if err := obs[w%2].Apply(context.Background(), nil,
					[]kv.Write{kv.Put(fmt.Sprintf("things/%d", n), []byte("1"))}, event("acme", n)); err != nil {
					t.Errorf("Apply: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := pending(t, obs[0], 10_000)
	if len(got) != writers*each {
		t.Fatalf("got %d events, want %d", len(got), writers*each)
	}
	if n := backlog(t, obs[1]); n != writers*each {
		t.Errorf("Backlog: got %d, want %d", n, writers*each)
	}
	ids := map[string]bool{}
	epochs := map[string]bool{}
	last := map[int]int{}
	for _, ev := range got {
		if ids[ev.GetId()] {
			t.Fatalf("id %s twice", ev.GetId())
		}
		ids[ev.GetId()] = true
		epochs[epochOf(ev.GetId())] = true
		var n int
		fmt.Sscan(ev.GetDetails()["n"], &n)
		w := n / each
		if p, ok := last[w]; ok && n <= p {
			t.Errorf("writer %d: event %d after %d", w, n, p)
		}
		last[w] = n
		if !present(t, st, fmt.Sprintf("things/%d", n)) {
			t.Errorf("event %d without its change", n)
		}
	}
	if len(epochs) != 2 {
		t.Errorf("epochs of the ids: got %v, want one per outbox", epochs)
	}
	// Either outbox acknowledges the other's events.
	ack(t, obs[1], got...)
	if n := backlog(t, obs[0]); n != 0 {
		t.Errorf("after Ack: backlog %d, want 0", n)
	}
}

// testKVBacklogPages: Backlog counts past one page of the store, and Ack
// deletes more events than one Apply may.
func testKVBacklogPages(t *testing.T, st *store) {
	ob := outbox.NewKV(st, "resolver")
	const n = 1100
	for i := 0; i < n; i += 100 {
		evs := make([]*auditv1.Event, 100)
		for j := range evs {
			evs[j] = event("acme", i+j)
		}
		add(t, ob, evs...)
	}
	if got := backlog(t, ob); got != n {
		t.Errorf("Backlog: got %d, want %d", got, n)
	}
	evs := pending(t, ob, 1000)
	if len(evs) != 1000 {
		t.Fatalf("Pending(1000): got %d events", len(evs))
	}
	ack(t, ob, evs...)
	if got := backlog(t, ob); got != n-1000 {
		t.Errorf("Backlog after acknowledging 1000: got %d, want %d", got, n-1000)
	}
	if got := details(pending(t, ob, 1)); !slices.Equal(got, []string{"1000"}) {
		t.Errorf("first event left: got %v, want 1000", got)
	}
}

// testKVRestart: events wait in the store across a restart; the restarted
// service's outbox (another epoch) reads them with their ids, writes its
// own after them, and acknowledges both.
func testKVRestart(t *testing.T, st *store) {
	ob := outbox.NewKV(st, "resolver")
	add(t, ob, event("acme", 1), event("acme", 2))
	before := pending(t, ob, 10)

	ob = outbox.NewKV(st.restart(t), "resolver")
	add(t, ob, event("acme", 3))
	got := pending(t, ob, 10)
	if d := details(got); !slices.Equal(d, []string{"1", "2", "3"}) {
		t.Fatalf("after restart: got %v, want 1 2 3", d)
	}
	if got[0].GetId() != before[0].GetId() || got[1].GetId() != before[1].GetId() {
		t.Errorf("ids changed across the restart: %q %q, then %q %q",
			before[0].GetId(), before[1].GetId(), got[0].GetId(), got[1].GetId())
	}
	if epochOf(got[2].GetId()) == epochOf(got[0].GetId()) {
		t.Errorf("the restarted outbox reused epoch %s", epochOf(got[0].GetId()))
	}
	ack(t, ob, got[0], got[2])
	if d := details(pending(t, ob, 10)); !slices.Equal(d, []string{"2"}) {
		t.Errorf("after Ack: got %v, want 2", d)
	}
}

// testKVLateEvent: once events are acknowledged, Pending reads from near
// the newest of them, and an event that commits with a key taken long
// before (a replica whose clock is an hour behind) is still delivered: the
// next read from the first key, every SweepEvery, finds it.
func testKVLateEvent(t *testing.T, st *store) {
	ob := outbox.NewKV(st, "resolver")
	outbox.SetKVSweepEvery(ob, 300*time.Millisecond)
	ctx := context.Background()
	add(t, ob, event("acme", 1))
	evs := pending(t, ob, 10) // delivered and acknowledged; its copy comes back late
	ack(t, ob, evs...)
	if len(evs) != 1 {
		t.Fatalf("drained %d events, want 1", len(evs))
	}
	if err := outbox.PutKVAt(ctx, ob, evs[0], time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	add(t, ob, event("acme", 2))
	if got := details(pending(t, ob, 10)); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("read after acknowledgements: got %v, want 2 (the late event waits for a sweep)", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for got := details(pending(t, ob, 10)); !slices.Equal(got, []string{"1", "2"}); got = details(pending(t, ob, 10)) {
		if time.Now().After(deadline) {
			t.Fatalf("the late event was never read: got %v, want 1 2", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testKVShippers: two replicas, each with its outbox and shipper over the
// one outbox, deliver every event once, in order.
func testKVShippers(t *testing.T, st *store) {
	srv := audittest.Start(t, audittest.Options{})
	var obs []*outbox.KV
	for i := range 2 {
		s := st.Store
		if i > 0 {
			s = st.replica(t)
		}
		ob := outbox.NewKV(s, "secretstore")
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
		add(t, obs[i%2], event(teams[i%len(teams)], i))
	}
	eventually(t, 20*time.Second, "outbox drained", func() bool {
		left, err := obs[0].Backlog(context.Background())
		return err == nil && left == 0
	})
	checkDelivered(t, srv, teams, n)
}
