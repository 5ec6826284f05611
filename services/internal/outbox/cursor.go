package outbox

import (
	"sync"
	"time"
)

// Cursor is where an outbox's Pending starts reading, so that a read does
// not walk every event delivered since etcd last compacted. etcd keeps a
// deleted key (a tombstone) in its index until compaction, and a range
// read visits each one in its range: measured on one member, a read of the
// first 100 keys of a prefix costs ~0.4 ms when it is empty and ~9 ms
// after 100,000 keys were put and deleted there — every delivered event
// leaves one, and the shipper reads many times a second.
//
// Outbox keys grow with the time they are taken at. Once events have been
// acknowledged, a read starts Margin (in key units) below the greatest
// acknowledged key, or at the first key the previous read returned if
// that is lower (an event read but not acknowledged is read again): an
// event whose key was taken earlier but that committed later (a slow
// transaction, another replica's clock behind this one's) is still found
// if it is at most that late. Every SweepEvery, a read starts at the first
// key and finds any other. So no event is ever missed; one that commits
// more than Margin late is delivered up to SweepEvery late.
//
// On bbolt, which keeps no tombstones, the cursor costs nothing and saves
// nothing. It is safe for concurrent use.
type Cursor struct {
	// Margin is LateCommit in the outbox's key units.
	Margin uint64
	// SweepEvery is how often a read starts at the first key.
	SweepEvery time.Duration

	mu    sync.Mutex
	acked uint64    // greatest key acknowledged
	first uint64    // first key the last read returned; 0: it returned none
	swept time.Time // last read from the first key
}

// Defaults of a Cursor.
const (
	// LateCommit is how late after taking its key an event may commit and
	// still be found by the next read.
	LateCommit = 2 * time.Second
	// SweepEvery is how often a read starts at the first key: the
	// shipper's DefaultPollInterval.
	SweepEvery = DefaultPollInterval
)

// From returns the key the read at now starts at; 0 (and true) for a read
// from the first key.
func (c *Cursor) From(now time.Time) (key uint64, sweep bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acked <= c.Margin || now.Sub(c.swept) >= c.SweepEvery {
		c.swept = now
		return 0, true
	}
	from := c.acked - c.Margin
	if c.first > 0 && c.first < from {
		from = c.first
	}
	return from, false
}

// Read records the first key a read returned (it returned n events).
func (c *Cursor) Read(first uint64, n int) {
	c.mu.Lock()
	c.first = 0
	if n > 0 {
		c.first = first
	}
	c.mu.Unlock()
}

// Acked records that the event under key was delivered and deleted.
func (c *Cursor) Acked(key uint64) {
	c.mu.Lock()
	c.acked = max(c.acked, key)
	c.mu.Unlock()
}
