package idempotency

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ozsecrets/oz/services/internal/kv"
)

// Expired records are read as absent (Begin), so sweeping them is only
// about space. A write that commits a claim then sweeps, in Applies of
// their own: at most sweepBatch records per sweep, a sweep at most every
// sweepEvery unless the last one found a full batch expired — so that the
// sweeping keeps pace with any rate of keyed writes, and costs one short
// Scan a minute when there is nothing to sweep. Each record is deleted on
// the condition that it is still the one its expiry entry was written
// for: a key reused (after TTL) by a write meanwhile keeps its new record.
const (
	sweepBatch   = 32 // 32 conditions and 64 deletions: within one Apply's 128
	sweepEvery   = time.Minute
	sweepTimeout = 5 * time.Second
)

type sweeper struct {
	mu      sync.Mutex
	next    time.Time // no sweep before
	running bool
}

// after sweeps when it is time (now is the committed claim's time). Its
// failures wait for the next sweep: they cannot change the write's
// answer.
func (s *sweeper) after(_ context.Context, store kv.Store, now time.Time) {
	s.mu.Lock()
	if s.running || now.Before(s.next) {
		s.mu.Unlock()
		return
	}
	s.running = true
	s.mu.Unlock()
	// A context of its own: not the request's (which may end, and may
	// carry a ReadSet or a claim that the sweep must not touch).
	ctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
	full, err := Sweep(ctx, store, now)
	cancel()
	s.mu.Lock()
	s.running = false
	s.next = now.Add(sweepEvery)
	if full && err == nil {
		s.next = time.Time{}
	}
	s.mu.Unlock()
}

// Sweep deletes up to sweepBatch records of store older than TTL at now,
// oldest first, with their expiry entries. full reports that it found a
// whole batch expired, so that more may wait.
func Sweep(ctx context.Context, store kv.Store, now time.Time) (full bool, err error) {
	entries, err := store.Scan(ctx, PrefixExpiry, "", sweepBatch)
	if err != nil {
		return false, err
	}
	cutoff := now.Add(-TTL).UnixNano()
	type expired struct {
		entry, id string
		nanos     int64
	}
	var old []expired
	for _, e := range entries {
		rest := strings.TrimPrefix(e.Key, PrefixExpiry)
		hexTime, id, ok := strings.Cut(rest, "/")
		n, perr := strconv.ParseUint(hexTime, 16, 64)
		if !ok || perr != nil {
			old = append(old, expired{entry: e.Key}) // not ours to keep
			continue
		}
		if int64(n) >= cutoff {
			break // sorted by time: the rest are younger
		}
		old = append(old, expired{entry: e.Key, id: id, nanos: int64(n)})
	}
	if len(old) == 0 {
		return false, nil
	}
	keys := make([]string, len(old))
	for i, e := range old {
		keys[i] = recordKey(e.id)
	}
	raws, err := store.GetMany(ctx, keys)
	if err != nil {
		return false, err
	}
	var conds []kv.Cond
	var writes []kv.Write
	for i, e := range old {
		writes = append(writes, kv.Delete(e.entry))
		if e.id == "" || raws[i] == nil {
			continue
		}
		var rec record
		if json.Unmarshal(raws[i], &rec) != nil || rec.Time.UnixNano() != e.nanos {
			continue // rewritten since (a key reused after TTL): its own entry stays
		}
		conds = append(conds, kv.Equal(keys[i], raws[i]))
		writes = append(writes, kv.Delete(keys[i]))
	}
	if err := store.Apply(ctx, conds, writes); err != nil {
		return false, err // a record rewritten meanwhile: the next sweep sees it
	}
	return len(old) == sweepBatch, nil
}
