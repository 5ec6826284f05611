package kvstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// maxConflicts bounds how many times in a row one Apply of an append
// finds its conditions broken by other writers before Append gives up.
const maxConflicts = 100

// readers bounds the concurrent Gets of ids after a conflict.
const readers = 16

// call is one Append waiting for the writer.
type call struct {
	ctx    context.Context
	events []*auditv1.Event
	now    *timestamppb.Timestamp
	res    audit.AppendResult
	err    error
	done   chan struct{}
}

// Append implements audit.Store (see the package doc for its atomicity).
// An Append whose context ends while it waits returns the context's
// error, and its events may still be stored: a retry counts them as
// duplicates.
func (s *Store) Append(ctx context.Context, events []*auditv1.Event, now time.Time) (audit.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return audit.AppendResult{}, err
	}
	if len(events) == 0 {
		return audit.AppendResult{}, nil
	}
	c := &call{ctx: ctx, events: events, now: timestamppb.New(now), done: make(chan struct{})}
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
			if err := c.ctx.Err(); err != nil {
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
	size int  // bytes it adds to an Apply, at most
	dup  bool // found stored: skipped
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
				c.res.Duplicates++ // a repeat: skipped, as the first's duplicate would be
				continue
			}
			seen[ev.GetId()] = true
			size := 0
			if s.maxBytes != unbounded {
				// The event, its key twice, its id twice, the head and
				// the chain fields.
				size = proto.Size(ev) + 2*len(ev.GetId()) + 3*len(eventKey(ev.GetTeam(), 0)) + 192
			}
			items = append(items, item{ev: ev, c: c, size: size})
			left[c]++
		}
	}
	var err error
	validate := true  // until the ids' lookups cost more than they save
	var ahead *lookup // of the ids of the next chunk, made during an Apply
	for len(items) > 0 && err == nil {
		var n int
		n, ahead, err = s.appendChunk(ctx, items, &validate, ahead)
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

// mergedContext is done when every call's context is; it carries the
// first call's values (its trace, for the store's spans).
func mergedContext(calls []*call) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(calls[0].ctx))
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

// How an Apply makes sure that the ids it stores are not stored yet.
//
// Validated, when the events left take more than one Apply per id (below):
// before the Apply, the ids are looked up in the index
// by Scans with a kv.ReadSet, one for each run of ids with a common prefix
// (an emitter's ids, "{emitter}-{epoch}-{n}", sort together), and those
// found are skipped as duplicates; the Apply holds the condition Unchanged
// — nothing those Scans read has changed, no id appeared in the ranges
// they covered — which costs one compare per Scan and per id found,
// instead of one per event: with kv's portable 128, an Apply takes about
// 60 events instead of 40. (On etcd the Scans are serializable reads, of
// any member, without a quorum round.) When that condition fails (a stale
// read, an id stored meanwhile) or would cost more than the events it
// saves, the chunk is made per id: the Apply holds a condition Absent for
// each id it stores, and after a conflict on one the ids are read again.

// fit returns how many of items, from the first, one Apply takes when an
// event costs perEvent conditions and writes, each chain it extends two
// more, and reserve are taken already: no more than s.maxOps nor
// s.maxBytes. Items found stored cost nothing. It returns 0 when not even
// the first item fits.
func (s *Store) fit(items []item, perEvent, reserve int) int {
	chains := map[string]bool{}
	ops, size := reserve, 0
	for i, it := range items {
		if it.dup {
			continue
		}
		cost := perEvent
		if !chains[it.ev.GetTeam()] {
			cost += opsPerChain
		}
		if ops+cost > s.maxOps || i > 0 && size+it.size > s.maxBytes {
			return i
		}
		chains[it.ev.GetTeam()] = true
		ops, size = ops+cost, size+it.size
	}
	return len(items)
}

// appendChunk stores a first chunk of items in one Apply, conditioned on
// the heads it moves and the ids it stores, and returns how many items it
// stored or skipped as duplicates (all of the chunk, or none on an
// error). It validates the ids (see above) when *validate is set, and
// clears it when that costs more than it saves; with the lookup ahead,
// made for items, when there is one, and it returns the lookup it made of
// the next chunk's ids while its Apply was under way.
func (s *Store) appendChunk(ctx context.Context, items []item, validate *bool, ahead *lookup) (int, *lookup, error) {
	// Validated only when the events left take more than one Apply per id:
	// for fewer, the Scans would cost a round trip and save none.
	validated := *validate && s.fit(items, opsPerEvent, 0) < len(items)
	var chunk []item
	for conflicts := 0; ; conflicts++ {
		if conflicts > maxConflicts {
			return 0, nil, &errs.Error{Kind: errs.KindUnavailable, Message: "store busy",
				Err: fmt.Errorf("append: lost %d compare-and-swaps in a row to other writers", conflicts-1)}
		}
		if err := ctx.Err(); err != nil {
			return 0, nil, err
		}
		var reads *kv.ReadSet
		if validated {
			l := ahead
			if l == nil || l.first != &items[0] {
				l = s.lookup(ctx, items)
				<-l.done
			}
			ahead = nil // used once: after a conflict, look again
			if l.err != nil {
				return 0, nil, l.err
			}
			window := items[:l.n]
			if chunk, reads = window[:s.fit(window, writesPerEvent, l.compares)], l.reads; !l.ok || len(chunk) == 0 {
				// The ids interleave with many stored ones: per id is
				// cheaper, for this chunk and the next.
				validated, *validate, chunk = false, false, nil
				continue
			}
		} else if chunk == nil {
			// Fixed across conflicts: the ids found stored shrink it.
			chunk = items[:s.fit(items, opsPerEvent, 0)]
		}
		w, err := s.link(ctx, chunk)
		if err != nil {
			return 0, nil, err
		}
		if len(w.stored) == 0 { // every event is stored already
			countDuplicates(chunk)
			return len(chunk), nil, nil
		}
		conds := w.conds
		if validated {
			conds = append(conds, kv.Unchanged(reads))
		} else {
			for _, i := range w.stored {
				conds = append(conds, kv.Absent(idKey(chunk[i].ev.GetId())))
			}
		}
		// The next chunk's ids are looked up while this one is written
		// (the lookup only reads, and only the items after chunk).
		var next *lookup
		if rest := items[len(chunk):]; *validate && len(rest) > 0 && s.fit(rest, opsPerEvent, 0) < len(rest) {
			next = s.lookup(ctx, rest)
		}
		err = s.kv.Apply(ctx, conds, w.writes)
		if next != nil {
			<-next.done
		}
		if err == nil {
			maps.Copy(s.heads, w.heads)
			for j, i := range w.stored {
				res := &chunk[i].c.res
				res.Appended++
				if res.Heads == nil {
					res.Heads = map[string]auditchain.Head{}
				}
				res.Heads[chunk[i].ev.GetTeam()] = w.linked[j] // in chain order: the last stays
			}
			countDuplicates(chunk)
			return len(chunk), next, nil
		}
		ce, ok := errors.AsType[*kv.ConflictError](err)
		switch {
		case !ok:
			// The Apply may have been made: forget the heads.
			for team := range w.heads {
				delete(s.heads, team)
			}
			return 0, nil, err
		case ce.Index < len(w.conds):
			// Another writer moved a head: read the heads again. (It may
			// have stored some of these ids too: their conditions will
			// say so.)
			for team := range w.heads {
				delete(s.heads, team)
			}
		case validated:
			validated, chunk = false, nil
		default:
			// Every head held, but an id is stored: learn which.
			if err := s.markStored(ctx, chunk); err != nil {
				return 0, nil, err
			}
		}
	}
}

// write is one Apply of an append, but for the conditions on ids.
type write struct {
	conds  []kv.Cond         // on the heads moved
	writes []kv.Write        // the events, their ids, the heads
	heads  map[string][]byte // team → its head after the Apply
	stored []int             // indexes in the chunk of the events written
	linked []auditchain.Head // the seq and hash each of them got
}

// link links the events of chunk not found stored to their chains, each
// chain from its head as the Store last saw it, and returns the Apply that
// stores them.
func (s *Store) link(ctx context.Context, chunk []item) (*write, error) {
	w := &write{
		conds:  make([]kv.Cond, 0, len(chunk)+4),
		writes: make([]kv.Write, 0, 2*len(chunk)+4),
		heads:  map[string][]byte{},
		stored: make([]int, 0, len(chunk)),
	}
	heads := map[string]auditchain.Head{} // team → its head after the chunk
	var teams []string                    // the chains moved, in first-event order
	for i, it := range chunk {
		if it.dup {
			continue
		}
		team := it.ev.GetTeam()
		head, ok := heads[team]
		if !ok {
			v, err := s.head(ctx, team)
			if err != nil {
				return nil, err
			}
			if v == nil {
				w.conds = append(w.conds, kv.Absent(headKey(team)))
			} else if head, err = decodeHead(team, v); err != nil {
				return nil, err
			} else {
				w.conds = append(w.conds, kv.Equal(headKey(team), v))
			}
			teams = append(teams, team)
		}
		ev := proto.Clone(it.ev).(*auditv1.Event)
		ev.AppendTime = it.c.now
		heads[team] = head.Link(ev)
		b, err := marshal.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("marshal event %s: %w", ev.GetId(), err)
		}
		key := eventKey(team, ev.GetSeq())
		w.writes = append(w.writes, kv.Put(key, b), kv.Put(idKey(ev.GetId()), idValue(team, ev.GetSeq())))
		w.stored = append(w.stored, i)
		w.linked = append(w.linked, heads[team])
	}
	for _, team := range teams {
		v := encodeHead(heads[team])
		w.heads[team] = v
		w.writes = append(w.writes, kv.Put(headKey(team), v))
	}
	return w, nil
}

// lookup is a findStored of the ids of a window of items (as many as one
// validated Apply may take), made in a goroutine of its own.
type lookup struct {
	first *item // the window's first item
	n     int   // the window's length
	done  chan struct{}
	// Set before done is closed:
	reads    *kv.ReadSet
	compares int
	ok       bool
	err      error
}

// lookup starts the lookup of the first window of items. Until it is
// done, it marks duplicates among those items: the caller reads none of
// them meanwhile.
func (s *Store) lookup(ctx context.Context, items []item) *lookup {
	l := &lookup{first: &items[0], n: s.fit(items, writesPerEvent, 1), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		rctx, rs := kv.WithReadSet(ctx)
		l.reads = rs
		l.compares, l.ok, l.err = s.findStored(rctx, items[:l.n], s.maxOps/3)
	}()
	return l
}

// findStored looks up the ids of items in the index, with Scans recorded in
// the kv.ReadSet of ctx, marks the items it finds as duplicates, and
// returns how many compares the ReadSet costs: one per Scan and per id
// found; false when they would be more than budget (it stops there). An
// id found is stored (ids are never removed), however stale the read; one
// missed is caught by the condition Unchanged.
func (s *Store) findStored(ctx context.Context, items []item, budget int) (int, bool, error) {
	byID := make(map[string]*item, len(items))
	runs := map[string][]string{} // common prefix → ids
	for i := range items {
		if items[i].dup {
			continue
		}
		id := items[i].ev.GetId()
		byID[idKey(id)] = &items[i]
		p := id[:strings.LastIndexByte(id, '-')+1]
		runs[p] = append(runs[p], id)
	}
	compares := 0
	for p, ids := range runs {
		slices.Sort(ids)
		first, last := idKey(ids[0]), idKey(ids[len(ids)-1])
		// The largest key below first that an id can have: ids end in
		// [A-Za-z0-9._:-].
		after := first[:len(first)-1] + string([]byte{first[len(first)-1] - 1}) + "\xff"
		for {
			kvs, err := s.kv.Scan(ctx, idKey(p), after, min(len(ids), budget)+1)
			if err != nil {
				return 0, false, err
			}
			if compares += 1 + len(kvs); compares > budget {
				return compares, false, nil
			}
			for _, e := range kvs {
				if it := byID[e.Key]; it != nil {
					it.dup = true
				}
			}
			if len(kvs) <= min(len(ids), budget) || kvs[len(kvs)-1].Key >= last {
				break
			}
			after = kvs[len(kvs)-1].Key
		}
	}
	return compares, true, nil
}

// head returns team's head value (nil: none), from the cache or read.
func (s *Store) head(ctx context.Context, team string) ([]byte, error) {
	if v, ok := s.heads[team]; ok {
		return v, nil
	}
	v, err := s.kv.Get(ctx, headKey(team))
	if errors.Is(err, errs.NotFound) {
		v, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.heads[team] = v
	return v, nil
}

// markStored marks the items of chunk whose ids are stored as duplicates,
// reading the ids concurrently.
func (s *Store) markStored(ctx context.Context, chunk []item) error {
	sem := make(chan struct{}, readers)
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	for i := range chunk {
		if chunk[i].dup {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(it *item) {
			defer func() { <-sem; wg.Done() }()
			_, err := s.kv.Get(ctx, idKey(it.ev.GetId()))
			switch {
			case err == nil:
				it.dup = true // each goroutine writes its own item
			case !errors.Is(err, errs.NotFound):
				select {
				case errc <- err:
				default:
				}
			}
		}(&chunk[i])
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func countDuplicates(chunk []item) {
	for _, it := range chunk {
		if it.dup {
			it.c.res.Duplicates++
		}
	}
}
