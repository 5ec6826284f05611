package outbox_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/outbox"
)

func openDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newBolt(t *testing.T, emitter string) (*bolt.DB, *outbox.Bolt) {
	t.Helper()
	db := openDB(t, filepath.Join(t.TempDir(), "svc.db"))
	ob, err := outbox.NewBolt(db, emitter)
	if err != nil {
		t.Fatal(err)
	}
	return db, ob
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

func add(t *testing.T, db *bolt.DB, ob *outbox.Bolt, evs ...*auditv1.Event) {
	t.Helper()
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, ev := range evs {
			if err := ob.Add(tx, ev); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("Add: %v", err)
	}
}

func pending(t *testing.T, ob *outbox.Bolt, max int) []*auditv1.Event {
	t.Helper()
	evs, err := ob.Pending(context.Background(), max)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return evs
}

func details(evs []*auditv1.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.GetDetails()["n"])
	}
	return out
}

func TestBoltOrderAndAck(t *testing.T) {
	db, ob := newBolt(t, "resolver")
	for i := 1; i <= 5; i++ {
		add(t, db, ob, event("acme", i))
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
	if n, _ := ob.Backlog(context.Background()); n != 5 {
		t.Errorf("Backlog: got %d, want 5", n)
	}
	if err := ob.Ack(context.Background(), []string{first[0].GetId(), first[1].GetId(), "resolver-unknown"}); err != nil {
		t.Fatal(err)
	}
	if got := details(pending(t, ob, 10)); !slices.Equal(got, []string{"3", "4", "5"}) {
		t.Errorf("after Ack: got %v, want 3 4 5", got)
	}
	if n, _ := ob.Backlog(context.Background()); n != 3 {
		t.Errorf("Backlog: got %d, want 3", n)
	}
}

func TestBoltAddKeepsInputAndIDs(t *testing.T) {
	db, ob := newBolt(t, "secretstore")
	ev := event("acme", 1)
	ev.Seq, ev.Hash = 5, []byte("x")
	before := proto.Clone(ev)
	add(t, db, ob, ev)
	if !proto.Equal(ev, before) {
		t.Errorf("Add changed its argument")
	}
	own := event("acme", 2)
	own.Id = "secretstore-custom-1"
	own.Time = nil
	add(t, db, ob, own)
	got := pending(t, ob, 10)
	if got[0].GetSeq() != 0 || got[0].GetHash() != nil {
		t.Errorf("chain fields kept: %v", got[0])
	}
	if got[1].GetId() != "secretstore-custom-1" || got[1].GetTime() == nil {
		t.Errorf("got id %q time %v, want the given id and a time", got[1].GetId(), got[1].GetTime())
	}
}

func TestBoltRollbackLeavesNothing(t *testing.T) {
	db, ob := newBolt(t, "resolver")
	var notified atomic.Int32
	ob.OnCommit(func() { notified.Add(1) })
	boom := errors.New("the change failed")
	err := db.Update(func(tx *bolt.Tx) error {
		if err := ob.Add(tx, event("acme", 1)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the change's error", err)
	}
	if evs := pending(t, ob, 10); len(evs) != 0 || notified.Load() != 0 {
		t.Errorf("rolled back: got %d events and %d notifications, want none", len(evs), notified.Load())
	}
	add(t, db, ob, event("acme", 2), event("acme", 3))
	if notified.Load() == 0 {
		t.Errorf("commit: got no notification, want one")
	}
}

func TestBoltRefusesInvalidEvent(t *testing.T) {
	db, ob := newBolt(t, "resolver")
	bad := event("acme", 1)
	bad.Action = ""
	err := db.Update(func(tx *bolt.Tx) error { return ob.Add(tx, bad) })
	if !errors.Is(err, errs.Invalid) {
		t.Errorf("got %v, want an invalid-argument error", err)
	}
	foreign := event("acme", 2)
	foreign.Id = "secretstore-x-1" // the audit service would refuse it from the resolver
	if err := db.Update(func(tx *bolt.Tx) error { return ob.Add(tx, foreign) }); !errors.Is(err, errs.Invalid) {
		t.Errorf("another emitter's id: got %v, want an invalid-argument error", err)
	}
	if evs := pending(t, ob, 10); len(evs) != 0 {
		t.Errorf("got %d events, want none", len(evs))
	}
}

func TestBoltEpochSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.NewBolt(db, "resolver")
	if err != nil {
		t.Fatal(err)
	}
	add(t, db, ob, event("acme", 1))
	id1 := pending(t, ob, 1)[0].GetId()
	_ = ob.Ack(context.Background(), []string{id1})
	db.Close()

	db = openDB(t, path)
	ob, err = outbox.NewBolt(db, "resolver")
	if err != nil {
		t.Fatal(err)
	}
	add(t, db, ob, event("acme", 2))
	id2 := pending(t, ob, 1)[0].GetId()
	epoch := func(id string) string { return strings.Split(id, "-")[1] }
	if epoch(id1) != epoch(id2) || id2 <= id1 {
		t.Errorf("after reopen: ids %q then %q, want the same epoch and a later sequence", id1, id2)
	}

	// Another database (a replaced one) draws another epoch.
	db3, other := newBolt(t, "resolver")
	add(t, db3, other, event("acme", 1))
	if id3 := pending(t, other, 1)[0].GetId(); epoch(id3) == epoch(id1) {
		t.Errorf("a new outbox reused epoch %s", epoch(id1))
	}
}

func TestBoltConcurrentBatches(t *testing.T) {
	db, ob := newBolt(t, "resolver")
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				ev := event("acme", w*100+i)
				if err := db.Batch(func(tx *bolt.Tx) error { return ob.Add(tx, ev) }); err != nil {
					t.Errorf("Batch: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	evs := pending(t, ob, 1000)
	if len(evs) != writers*each {
		t.Fatalf("got %d events, want %d", len(evs), writers*each)
	}
	seen := map[string]bool{}
	last := map[int]int{}
	for _, ev := range evs {
		if seen[ev.GetId()] {
			t.Fatalf("id %s twice", ev.GetId())
		}
		seen[ev.GetId()] = true
		var n int
		fmt.Sscan(ev.GetDetails()["n"], &n)
		if p, ok := last[n/100]; ok && n <= p {
			t.Fatalf("writer %d: event %d after %d, want commit order", n/100, n, p)
		}
		last[n/100] = n
	}
}

func TestBoltPrepared(t *testing.T) {
	db, ob := newBolt(t, "secretstore")
	ev := event("acme", 1)
	before := proto.Clone(ev)
	p, err := ob.Prepare(ev)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if !proto.Equal(ev, before) {
		t.Errorf("Prepare changed its argument")
	}
	// One Prepared in two transactions: the first rolled back (as a
	// db.Batch function that runs again), the second committed.
	boom := errors.New("rolled back")
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := ob.AddPrepared(tx, p); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the change's error", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return ob.AddPrepared(tx, p) }); err != nil {
		t.Fatalf("AddPrepared: %v", err)
	}
	add(t, db, ob, event("acme", 2))
	got := pending(t, ob, 10)
	if d := details(got); !slices.Equal(d, []string{"1", "2"}) {
		t.Fatalf("got %v, want 1 2", d)
	}
	if !strings.HasPrefix(got[0].GetId(), "secretstore-") || got[0].GetId() >= got[1].GetId() {
		t.Errorf("ids %q, %q: want increasing ids starting with secretstore-", got[0].GetId(), got[1].GetId())
	}
	want := proto.Clone(ev).(*auditv1.Event)
	want.Id = got[0].GetId()
	if !proto.Equal(got[0], want) {
		t.Errorf("got %v, want %v", got[0], want)
	}

	_, other := newBolt(t, "secretstore")
	if err := db.Update(func(tx *bolt.Tx) error { return other.AddPrepared(tx, p) }); err == nil {
		t.Errorf("AddPrepared of another outbox's event: got no error")
	}
	for name, ev := range map[string]*auditv1.Event{
		"Invalid": func() *auditv1.Event { e := event("acme", 3); e.Action = ""; return e }(),
		"ForeignID": func() *auditv1.Event {
			e := event("acme", 3)
			e.Id = "resolver-x-1"
			return e
		}(),
		"Nil": nil,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ob.Prepare(ev); !errors.Is(err, errs.Invalid) {
				t.Errorf("got %v, want an invalid-argument error", err)
			}
		})
	}
}

// TestBoltBatchRunsTwice makes bbolt run a Batch function again (another
// function of its batch fails) and checks the event is added once.
func TestBoltBatchRunsTwice(t *testing.T) {
	db, ob := newBolt(t, "resolver")
	db.MaxBatchSize, db.MaxBatchDelay = 2, 10*time.Second // both calls in one batch
	p, err := ob.Prepare(event("acme", 1))
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	first := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.Batch(func(tx *bolt.Tx) error {
			if calls.Add(1) == 1 {
				close(first)
			}
			return ob.AddPrepared(tx, p)
		})
	}()
	boom := errors.New("another change failed")
	go func() {
		time.Sleep(50 * time.Millisecond) // after the first joined the batch
		_ = db.Batch(func(*bolt.Tx) error { return boom })
	}()
	if err := <-done; err != nil {
		t.Fatalf("Batch: %v", err)
	}
	<-first
	if n := calls.Load(); n != 2 {
		t.Logf("the function ran %d times, not twice (scheduling): the test proves less", n)
	}
	if evs := pending(t, ob, 10); len(evs) != 1 {
		t.Errorf("got %d events, want 1", len(evs))
	}
}

// TestBoltReadsStoredIDs reads an outbox written before ids were derived
// from keys: every record then stored its id.
func TestBoltReadsStoredIDs(t *testing.T) {
	db, ob := newBolt(t, "resolver")
	old := event("acme", 1)
	old.Id = "resolver-0123456789abcdef-0000000000000001"
	body, err := proto.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("outbox"))
		seq, err := bk.NextSequence()
		if err != nil {
			return err
		}
		v := binary.AppendUvarint(nil, uint64(len(old.Id)))
		return bk.Put(binary.BigEndian.AppendUint64(nil, seq), append(append(v, old.Id...), body...))
	}); err != nil {
		t.Fatal(err)
	}
	add(t, db, ob, event("acme", 2))
	got := pending(t, ob, 10)
	if d := details(got); !slices.Equal(d, []string{"1", "2"}) || got[0].GetId() != old.Id {
		t.Fatalf("got %v, first id %q; want 1 2, first id %q", d, got[0].GetId(), old.Id)
	}
	if err := ob.Ack(context.Background(), []string{got[1].GetId(), old.Id}); err != nil {
		t.Fatal(err)
	}
	if n, _ := ob.Backlog(context.Background()); n != 0 {
		t.Errorf("after Ack: backlog %d, want 0", n)
	}
}
