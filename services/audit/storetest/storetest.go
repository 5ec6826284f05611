// Package storetest is the conformance suite of audit.Store: its
// implementation (package kvstore, on a bbolt file and on etcd) runs it
// from its tests with
//
//	storetest.Run(t, func(t *testing.T) audit.Store { return openMine(t) })
//
// open must return a new, empty store each time, and close it with
// t.Cleanup.
package storetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ozsecrets/oz/services/internal/suite"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
)

// Run runs the conformance suite against stores made by open.
func Run(t *testing.T, open func(t *testing.T) audit.Store) {
	suite.Run(t, open,
		testAppendChains, testAppendInput, testAppendIdempotent, testAppendRepeatInBatch,
		testAppendOrder, testConcurrentAppends, testLargeAppend, testLargeEvents, testPrefixChains,
		testListPages, testListFilters, testListScanLimit, testListEmpty, testRange, testHeadEmpty,
		testCopies, testCanceled, testAppendHeads, testConcurrentHeads, testEventsAt,
	)
}

var (
	t0  = time.Date(2026, 3, 4, 5, 6, 7, 890123456, time.UTC)
	now = t0.Add(time.Hour)
)

// NewEvent returns a valid event of team for tests, the i-th of its
// emitter: id "secretstore-test-{i}", time t0 + i seconds.
func NewEvent(team string, i int) *auditv1.Event {
	return &auditv1.Event{
		Id:        fmt.Sprintf("secretstore-test-%06d", i),
		Time:      timestamppb.New(t0.Add(time.Duration(i) * time.Second)),
		Actor:     &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/alice", Client: "cli"},
		Action:    audit.ActionSecretCreate,
		Resource:  fmt.Sprintf("teams/%s/secrets/S%d", team, i),
		Team:      team,
		Outcome:   auditv1.Outcome_OUTCOME_OK,
		RequestId: fmt.Sprintf("req-%d", i),
		Details:   map[string]string{audit.DetailValueVersion: "1"},
	}
}

func events(team string, from, n int) []*auditv1.Event {
	out := make([]*auditv1.Event, n)
	for i := range out {
		out[i] = NewEvent(team, from+i)
	}
	return out
}

func mustAppend(t *testing.T, s audit.Store, evs []*auditv1.Event) audit.AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), evs, now)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return res
}

// All returns every event of team's chain, seq ascending.
func All(t *testing.T, s audit.Store, team string) []*auditv1.Event {
	t.Helper()
	var out []*auditv1.Event
	for from := int64(1); ; {
		evs, err := s.Range(context.Background(), team, from, 7)
		if err != nil {
			t.Fatalf("Range: %v", err)
		}
		out = append(out, evs...)
		if len(evs) < 7 {
			return out
		}
		from = evs[len(evs)-1].GetSeq() + 1
	}
}

// Verify checks team's chain end to end and against its head.
func Verify(t *testing.T, s audit.Store, team string) []*auditv1.Event {
	t.Helper()
	all := All(t, s, team)
	v := auditchain.NewVerifier()
	for _, ev := range all {
		if err := v.Check(ev); err != nil {
			t.Fatalf("chain %s: %v", auditchain.Name(team), err)
		}
	}
	head, err := s.Head(context.Background(), team)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if head.Seq != v.Head().Seq || !bytes.Equal(head.Hash, v.Head().Hash) {
		t.Fatalf("chain %s: head %v, want the last event's %v", auditchain.Name(team), head, v.Head())
	}
	return all
}

func ids(evs []*auditv1.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.GetId()
	}
	return out
}

func seqs(evs []*auditv1.Event) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.GetSeq()
	}
	return out
}

func testAppendChains(t *testing.T, s audit.Store) {
	batch := []*auditv1.Event{NewEvent("acme", 1), NewEvent("beta", 2), NewEvent("", 3), NewEvent("acme", 4), NewEvent("acme", 5)}
	res := mustAppend(t, s, batch)
	if res.Appended != 5 || res.Duplicates != 0 {
		t.Errorf("got %+v, want 5 appended", res)
	}
	for _, tc := range []struct {
		team string
		want []string
	}{
		{"acme", []string{batch[0].Id, batch[3].Id, batch[4].Id}},
		{"beta", []string{batch[1].Id}},
		{"", []string{batch[2].Id}},
	} {
		all := Verify(t, s, tc.team)
		if !slices.Equal(ids(all), tc.want) {
			t.Errorf("chain %s: got %v, want %v", auditchain.Name(tc.team), ids(all), tc.want)
		}
		for i, ev := range all {
			if ev.GetSeq() != int64(i+1) {
				t.Errorf("chain %s event %d: got seq %d, want %d", auditchain.Name(tc.team), i, ev.GetSeq(), i+1)
			}
			if !ev.GetAppendTime().AsTime().Equal(now) {
				t.Errorf("append_time: got %v, want %v", ev.GetAppendTime().AsTime(), now)
			}
		}
	}
	// The content survived unchanged but for the chain fields.
	got := All(t, s, "acme")[1]
	want := proto.Clone(batch[3]).(*auditv1.Event)
	want.Seq, want.PrevHash, want.Hash, want.AppendTime = got.Seq, got.PrevHash, got.Hash, got.AppendTime
	if !proto.Equal(got, want) {
		t.Errorf("stored event:\n got %v\nwant %v", got, want)
	}
}

func testAppendInput(t *testing.T, s audit.Store) {
	ev := NewEvent("acme", 1)
	ev.Seq, ev.Hash, ev.PrevHash = 99, []byte("forged"), []byte("forged")
	before := proto.Clone(ev)
	mustAppend(t, s, []*auditv1.Event{ev})
	if !proto.Equal(ev, before) {
		t.Errorf("Append modified its input")
	}
	all := Verify(t, s, "acme")
	if all[0].GetSeq() != 1 || len(all[0].GetPrevHash()) != 0 {
		t.Errorf("chain fields sent by the caller were kept: seq %d prev %q", all[0].GetSeq(), all[0].GetPrevHash())
	}
}

func testAppendIdempotent(t *testing.T, s audit.Store) {
	first := events("acme", 1, 4)
	mustAppend(t, s, first)
	headBefore, _ := s.Head(context.Background(), "acme")

	res := mustAppend(t, s, first)
	if res.Appended != 0 || res.Duplicates != 4 {
		t.Errorf("same batch again: got %+v, want 0 appended, 4 duplicates", res)
	}
	headAfter, _ := s.Head(context.Background(), "acme")
	if headAfter.Seq != headBefore.Seq || !bytes.Equal(headAfter.Hash, headBefore.Hash) {
		t.Errorf("head moved on a redelivery: %v → %v", headBefore, headAfter)
	}

	// A redelivery that overlaps new events: only the new ones are chained,
	// in their order.
	mixed := []*auditv1.Event{first[2], NewEvent("acme", 5), first[3], NewEvent("acme", 6)}
	res = mustAppend(t, s, mixed)
	if res.Appended != 2 || res.Duplicates != 2 {
		t.Errorf("overlapping batch: got %+v, want 2 appended, 2 duplicates", res)
	}
	all := Verify(t, s, "acme")
	want := append(ids(first), mixed[1].Id, mixed[3].Id)
	if !slices.Equal(ids(all), want) {
		t.Errorf("got %v, want %v", ids(all), want)
	}
	// The same id in another team's event is still a duplicate: ids are
	// unique across the log.
	other := NewEvent("beta", 1)
	if res := mustAppend(t, s, []*auditv1.Event{other}); res.Duplicates != 1 {
		t.Errorf("id reused in another team: got %+v, want a duplicate", res)
	}
}

// wantHead checks that res.Heads holds team's event with id last: the
// last event the call appended to the chain.
func wantHead(t *testing.T, s audit.Store, res audit.AppendResult, team, last string) {
	t.Helper()
	h, ok := res.Heads[team]
	if !ok {
		t.Errorf("chain %s: no head in the result", auditchain.Name(team))
		return
	}
	evs, err := s.Range(context.Background(), team, h.Seq, 1)
	if err != nil {
		t.Fatalf("Range: %v", err)
	}
	if len(evs) != 1 || evs[0].GetSeq() != h.Seq || evs[0].GetId() != last || !bytes.Equal(evs[0].GetHash(), h.Hash) {
		t.Errorf("chain %s: head of the result %v is not event %s", auditchain.Name(team), h, last)
	}
}

// testAppendHeads: AppendResult.Heads holds, for each chain the call
// appended to, its last event appended now (the emitter's witness); a
// chain whose events were all duplicates has none.
func testAppendHeads(t *testing.T, s audit.Store) {
	batch := []*auditv1.Event{NewEvent("acme", 1), NewEvent("", 2), NewEvent("acme", 3), NewEvent("beta", 4)}
	res := mustAppend(t, s, batch)
	for team, last := range map[string]string{"acme": batch[2].Id, "": batch[1].Id, "beta": batch[3].Id} {
		wantHead(t, s, res, team, last)
	}
	if len(res.Heads) != 3 {
		t.Errorf("got heads of %d chains, want 3", len(res.Heads))
	}
	res = mustAppend(t, s, []*auditv1.Event{batch[0], NewEvent("acme", 5), batch[1], batch[3]})
	wantHead(t, s, res, "acme", NewEvent("acme", 5).Id)
	if len(res.Heads) != 1 {
		t.Errorf("a redelivery with one new event: got heads %v, want acme's alone", res.Heads)
	}
	if res := mustAppend(t, s, batch); len(res.Heads) != 0 {
		t.Errorf("duplicates only: got heads %v, want none", res.Heads)
	}
}

// testEventsAt: a Store that is an audit.EventReader reads events by
// chain and seq, in order, nil where a chain has none.
func testEventsAt(t *testing.T, s audit.Store) {
	r, ok := s.(audit.EventReader)
	if !ok {
		t.Skip("not an audit.EventReader")
	}
	mustAppend(t, s, []*auditv1.Event{NewEvent("acme", 1), NewEvent("", 2), NewEvent("acme", 3)})
	at := []audit.Place{{Team: "acme", Seq: 2}, {Team: "beta", Seq: 1}, {Team: "", Seq: 1}, {Team: "acme", Seq: 3}, {Team: "acme", Seq: 1}}
	for i := range 200 { // more than one read of etcd takes
		at = append(at, audit.Place{Team: "acme", Seq: int64(4 + i)})
	}
	evs, err := r.EventsAt(context.Background(), at)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(at) {
		t.Fatalf("got %d events, want %d", len(evs), len(at))
	}
	want := []string{NewEvent("acme", 3).Id, "", NewEvent("", 2).Id, "", NewEvent("acme", 1).Id}
	for i, ev := range evs {
		w := "" // none
		if i < len(want) {
			w = want[i]
		}
		if ev.GetId() != w {
			t.Errorf("event at %+v: got %q, want %q", at[i], ev.GetId(), w)
		}
	}
	all := All(t, s, "acme")
	if evs[0].GetSeq() != 2 || !bytes.Equal(evs[0].GetHash(), all[1].GetHash()) {
		t.Errorf("event at acme 2: got seq %d hash %x, want the chain's", evs[0].GetSeq(), evs[0].GetHash())
	}
}

// testConcurrentHeads: concurrent calls, whose events share Applies and
// chains, each get the heads of their own last events.
func testConcurrentHeads(t *testing.T, s audit.Store) {
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10 {
				n := 1000*w + 10*i
				batch := []*auditv1.Event{NewEvent("acme", n), NewEvent("", n+1), NewEvent("acme", n+2)}
				res, err := s.Append(context.Background(), batch, now)
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				wantHead(t, s, res, "acme", batch[2].Id)
				wantHead(t, s, res, "", batch[1].Id)
			}
		})
	}
	wg.Wait()
}

func testAppendRepeatInBatch(t *testing.T, s audit.Store) {
	a := NewEvent("acme", 1)
	res := mustAppend(t, s, []*auditv1.Event{a, NewEvent("acme", 2), a})
	if res.Appended != 2 || res.Duplicates != 1 {
		t.Errorf("got %+v, want 2 appended, 1 duplicate", res)
	}
	if all := Verify(t, s, "acme"); len(all) != 2 {
		t.Errorf("got %d events, want 2", len(all))
	}
}

func testAppendOrder(t *testing.T, s audit.Store) {
	var want []string
	for i := 0; i < 5; i++ {
		batch := events("acme", i*10, 10)
		slices.Reverse(batch) // the given order, not the ids' order, counts
		mustAppend(t, s, batch)
		want = append(want, ids(batch)...)
	}
	if got := ids(Verify(t, s, "acme")); !slices.Equal(got, want) {
		t.Errorf("got order %v, want %v", got, want)
	}
}

func testConcurrentAppends(t *testing.T, s audit.Store) {
	const writers, perWriter = 8, 40
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i += 4 {
				batch := events("acme", w*1000+i, 4)
				if _, err := s.Append(context.Background(), batch, now); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("Append: %v", err)
	}
	all := Verify(t, s, "acme")
	if len(all) != writers*perWriter {
		t.Fatalf("got %d events, want %d", len(all), writers*perWriter)
	}
	last := make(map[int]int)
	for _, ev := range all {
		var n int
		fmt.Sscanf(ev.GetId(), "secretstore-test-%d", &n)
		w := n / 1000
		if prev, ok := last[w]; ok && n <= prev {
			t.Fatalf("writer %d: event %d after %d, want its order kept", w, n, prev)
		}
		last[w] = n
	}
}

// testLargeAppend: one Append of audit.MaxBatch events over many chains
// (more than one etcd transaction takes) stores every event, in order.
func testLargeAppend(t *testing.T, s audit.Store) {
	var batch []*auditv1.Event
	per := map[string][]string{}
	for i := range audit.MaxBatch {
		team := fmt.Sprintf("team-%02d", i%50)
		if i%3 == 0 {
			team = "acme" // a long chain too
		}
		ev := NewEvent(team, i)
		batch = append(batch, ev)
		per[team] = append(per[team], ev.GetId())
	}
	batch = append(batch, batch[3]) // a repeat, far from the first
	res := mustAppend(t, s, batch)
	if res.Appended != audit.MaxBatch || res.Duplicates != 1 {
		t.Errorf("got %+v, want %d appended, 1 duplicate", res, audit.MaxBatch)
	}
	for team, want := range per {
		if got := ids(Verify(t, s, team)); !slices.Equal(got, want) {
			t.Fatalf("chain %s: got %v, want %v", team, got, want)
		}
		wantHead(t, s, res, team, want[len(want)-1])
	}
	if len(res.Heads) != len(per) {
		t.Errorf("got heads of %d chains, want %d", len(res.Heads), len(per))
	}
	// Again, with new events between: only those are appended.
	again := slices.Clone(batch)
	again = slices.Insert(again, 500, NewEvent("acme", 5000), NewEvent("beta", 5001))
	if res := mustAppend(t, s, again); res.Appended != 2 || res.Duplicates != len(batch) {
		t.Errorf("again: got %+v; want 2 appended, %d duplicates", res, len(batch))
	}
	if all := Verify(t, s, "acme"); all[len(all)-1].GetId() != NewEvent("", 5000).GetId() {
		t.Errorf("acme ends with %s, want the new event", all[len(all)-1].GetId())
	}
}

// testLargeEvents: events whose sizes add up to far more than one etcd
// request takes are all stored.
func testLargeEvents(t *testing.T, s audit.Store) {
	var batch []*auditv1.Event
	for i := range 40 {
		ev := NewEvent("acme", i)
		ev.Details["big"] = strings.Repeat("x", audit.MaxEventBytes-2048)
		batch = append(batch, ev)
	}
	if res := mustAppend(t, s, batch); res.Appended != len(batch) {
		t.Fatalf("got %+v; want %d appended", res, len(batch))
	}
	if all := Verify(t, s, "acme"); len(all) != len(batch) {
		t.Errorf("got %d events, want %d", len(all), len(batch))
	}
}

func testPrefixChains(t *testing.T, s audit.Store) {
	mustAppend(t, s, events("acme", 1, 3))
	mustAppend(t, s, events("acme-2", 10, 2))
	mustAppend(t, s, events("a", 20, 1))
	mustAppend(t, s, events("", 30, 2))
	for team, want := range map[string]int{"acme": 3, "acme-2": 2, "a": 1, "": 2} {
		all := Verify(t, s, team)
		if len(all) != want {
			t.Errorf("chain %s: got %d events, want %d", auditchain.Name(team), len(all), want)
		}
		page, err := s.List(context.Background(), audit.Query{Team: team, Limit: 100, ScanLimit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) != want {
			t.Errorf("List %s: got %d events, want %d", auditchain.Name(team), len(page.Events), want)
		}
		for _, ev := range page.Events {
			if ev.GetTeam() != team {
				t.Errorf("List %s: got an event of %q", auditchain.Name(team), ev.GetTeam())
			}
		}
	}
}

func list(t *testing.T, s audit.Store, q audit.Query) *audit.Page {
	t.Helper()
	page, err := s.List(context.Background(), q)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return page
}

func testListPages(t *testing.T, s audit.Store) {
	mustAppend(t, s, events("acme", 1, 25))
	mustAppend(t, s, events("beta", 100, 3))
	var got []int64
	q := audit.Query{Team: "acme", Limit: 10, ScanLimit: 1000}
	var pages int
	for {
		page := list(t, s, q)
		pages++
		got = append(got, seqs(page.Events)...)
		if page.NextBeforeSeq == 0 {
			break
		}
		if page.NextBeforeSeq != page.Events[len(page.Events)-1].GetSeq() {
			t.Errorf("NextBeforeSeq: got %d, want the last event's seq %d", page.NextBeforeSeq, page.Events[len(page.Events)-1].GetSeq())
		}
		q.BeforeSeq = page.NextBeforeSeq
	}
	var want []int64
	for i := int64(25); i >= 1; i-- {
		want = append(want, i)
	}
	if !slices.Equal(got, want) || pages != 3 {
		t.Errorf("got %v in %d pages, want %v in 3", got, pages, want)
	}
	// A page that ends exactly at the first event has no next page.
	page := list(t, s, audit.Query{Team: "acme", BeforeSeq: 11, Limit: 10, ScanLimit: 1000})
	if len(page.Events) != 10 || page.NextBeforeSeq != 0 {
		t.Errorf("last full page: got %d events, next %d; want 10, 0", len(page.Events), page.NextBeforeSeq)
	}
}

func testListFilters(t *testing.T, s audit.Store) {
	evs := events("acme", 1, 6)
	evs[1].Actor = &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_RUNNER, Name: "runners/ci", Client: "runner"}
	evs[1].Action, evs[1].RunId, evs[1].Resource = audit.ActionRunResolve, "run-7", "teams/acme/runs/run-7"
	evs[2].Action, evs[2].Outcome = audit.ActionRequestDenied, auditv1.Outcome_OUTCOME_DENIED
	evs[3].Action = "agent.delete"
	evs[4].Action = audit.ActionSecretUpdate
	mustAppend(t, s, evs)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	tests := []struct {
		name   string
		filter audit.Filter
		want   []string // ids, newest first
	}{
		{"None", audit.Filter{}, ids(reversed(evs))},
		{"ActorName", audit.Filter{Actor: "runners/ci"}, []string{evs[1].Id}},
		{"ActorID", audit.Filter{Actor: "ci"}, []string{evs[1].Id}},
		{"Action", audit.Filter{Action: "agent.delete"}, []string{evs[3].Id}},
		{"ActionPrefix", audit.Filter{Action: "secret.*"}, []string{evs[5].Id, evs[4].Id, evs[0].Id}},
		{"Resource", audit.Filter{Resource: "teams/acme/secrets/S6"}, []string{evs[5].Id}},
		{"RunID", audit.Filter{RunID: "run-7"}, []string{evs[1].Id}},
		{"Outcome", audit.Filter{Outcome: auditv1.Outcome_OUTCOME_DENIED}, []string{evs[2].Id}},
		{"StartInclusive", audit.Filter{Start: at(5)}, []string{evs[5].Id, evs[4].Id}},
		{"EndExclusive", audit.Filter{End: at(3)}, []string{evs[1].Id, evs[0].Id}},
		{"TimeRange", audit.Filter{Start: at(2), End: at(4)}, []string{evs[2].Id, evs[1].Id}},
		{"Combined", audit.Filter{Actor: "alice", Action: "secret.*", Start: at(2)}, []string{evs[5].Id, evs[4].Id}},
		{"NoMatch", audit.Filter{Actor: "bob"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := list(t, s, audit.Query{Team: "acme", Filter: tt.filter, Limit: 100, ScanLimit: 100})
			if got := ids(page.Events); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if page.NextBeforeSeq != 0 {
				t.Errorf("NextBeforeSeq: got %d, want 0", page.NextBeforeSeq)
			}
		})
	}
}

func reversed(evs []*auditv1.Event) []*auditv1.Event {
	out := slices.Clone(evs)
	slices.Reverse(out)
	return out
}

func testListScanLimit(t *testing.T, s audit.Store) {
	evs := events("acme", 1, 25)
	evs[2].Action = "agent.create" // seq 3: the only match
	mustAppend(t, s, evs)
	q := audit.Query{Team: "acme", Filter: audit.Filter{Action: "agent.create"}, Limit: 5, ScanLimit: 10}
	var nexts []int64
	var found []string
	for {
		page := list(t, s, q)
		found = append(found, ids(page.Events)...)
		nexts = append(nexts, page.NextBeforeSeq)
		if page.NextBeforeSeq == 0 {
			break
		}
		q.BeforeSeq = page.NextBeforeSeq
	}
	if !slices.Equal(nexts, []int64{16, 6, 0}) || !slices.Equal(found, []string{evs[2].Id}) {
		t.Errorf("got pages ending %v finding %v, want [16 6 0] finding %s", nexts, found, evs[2].Id)
	}
}

func testListEmpty(t *testing.T, s audit.Store) {
	mustAppend(t, s, events("beta", 1, 2))
	page := list(t, s, audit.Query{Team: "acme", Limit: 10, ScanLimit: 10})
	if len(page.Events) != 0 || page.NextBeforeSeq != 0 {
		t.Errorf("got %d events, next %d; want none", len(page.Events), page.NextBeforeSeq)
	}
}

func testRange(t *testing.T, s audit.Store) {
	mustAppend(t, s, events("acme", 1, 10))
	mustAppend(t, s, events("acme-2", 20, 3))
	tests := []struct {
		from int64
		max  int
		want []int64
	}{
		{1, 3, []int64{1, 2, 3}},
		{0, 2, []int64{1, 2}},
		{8, 10, []int64{8, 9, 10}},
		{11, 10, nil},
	}
	for _, tt := range tests {
		evs, err := s.Range(context.Background(), "acme", tt.from, tt.max)
		if err != nil {
			t.Fatal(err)
		}
		if got := seqs(evs); !slices.Equal(got, tt.want) {
			t.Errorf("Range(%d, %d): got %v, want %v", tt.from, tt.max, got, tt.want)
		}
	}
}

func testHeadEmpty(t *testing.T, s audit.Store) {
	h, err := s.Head(context.Background(), "acme")
	if err != nil || h.Seq != 0 || len(h.Hash) != 0 {
		t.Errorf("got %v, %v; want the zero head", h, err)
	}
}

func testCopies(t *testing.T, s audit.Store) {
	mustAppend(t, s, events("acme", 1, 1))
	a := All(t, s, "acme")[0]
	a.Action = "changed"
	a.Details["x"] = "y"
	if b := All(t, s, "acme")[0]; b.GetAction() == "changed" || b.GetDetails()["x"] == "y" {
		t.Errorf("changing a returned event changed the store")
	}
}

func testCanceled(t *testing.T, s audit.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, events("acme", 1, 1), now); err == nil {
		t.Errorf("Append with a canceled context: got nil, want an error")
	}
	if h, _ := s.Head(context.Background(), "acme"); h.Seq != 0 {
		t.Errorf("canceled Append appended")
	}
}
