// Package groupcommit commits concurrent bbolt writes together, in one
// transaction and one fsync, without waiting for company.
//
// bbolt's DB.Batch groups writes too, but a batch starts only when it is
// full or when DB.MaxBatchDelay has passed since its first write: a lone
// write (one run resolution, one secret created) waits the whole delay for
// writers that never come. Here the first writer commits at once, alone;
// writers that arrive while a commit is in progress queue, and the next
// commit takes all of them. The batch is as large as the load makes it and
// no write waits for more than the commit before its own.
//
// The semantics are DB.Batch's, so a store can switch between them: fn may
// be called more than once and must be idempotent in effect (its writes are
// rolled back with the transaction when another fn of the batch fails, and
// it is called again); a fn that returns an error is retried alone, in a
// transaction of its own, and that result is the caller's.
package groupcommit

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MaxBatch bounds how many writes one transaction holds (bbolt's default
// MaxBatchSize), so that a burst does not make one huge transaction.
const MaxBatch = 1000

// Committer groups the writes of one database. It is safe for concurrent
// use; the zero value is not usable: use New.
type Committer struct {
	db *bolt.DB

	mu        sync.Mutex
	queue     []*call
	running   bool        // a leader is committing; new calls only queue
	contended atomic.Bool // the last batch had company and more came meanwhile
}

// gatherDelay is how long a commit under contention waits for more writes.
const gatherDelay = 200 * time.Microsecond

type call struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// New returns a Committer for db.
func New(db *bolt.DB) *Committer { return &Committer{db: db} }

// Do runs fn in a read-write transaction, possibly with other calls' fns,
// and returns once that transaction is durably committed (nil) or failed.
func (c *Committer) Do(fn func(*bolt.Tx) error) error {
	cl := &call{fn: fn, done: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, cl)
	lead := !c.running
	c.running = true
	c.mu.Unlock()
	if lead {
		c.lead()
	}
	return <-cl.done
}

// lead commits the queue as it stands, then hands on to a new leader when
// calls queued meanwhile, so that no caller serves others indefinitely.
func (c *Committer) lead() {
	if c.contended.Load() {
		// Writers are queueing faster than commits complete: give the
		// batch a moment to fill, so the fixed cost of a commit (its
		// fsync, the pages of every bucket it touches) is shared by more
		// writes. A lone writer never waits.
		time.Sleep(gatherDelay)
	}
	c.mu.Lock()
	n := min(len(c.queue), MaxBatch)
	batch := c.queue[:n:n]
	c.queue = c.queue[n:]
	c.mu.Unlock()

	c.commit(batch)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.contended.Store(len(c.queue) > 0 && len(batch) > 1)
	if len(c.queue) > 0 {
		go c.lead()
		return
	}
	c.running = false
	c.queue = nil // drop the backing array of a burst
}

// commit runs batch in one transaction. A fn that fails is taken out and
// the others are committed without it; then each failed fn runs again,
// alone, after them (as DB.Batch has its caller do), and that result is
// its caller's. Running it after, not before, matters: a write refused
// because of an earlier write of its batch (a create of a name taken
// there) must see that write committed, not rolled back.
func (c *Committer) commit(batch []*call) {
	var failed []*call
	for len(batch) > 0 {
		at := -1
		err := c.db.Update(func(tx *bolt.Tx) error {
			for i, cl := range batch {
				if err := safeCall(cl.fn, tx); err != nil {
					at = i
					return err
				}
			}
			return nil
		})
		if at < 0 {
			// Committed, or the commit itself failed: same answer for all.
			for _, cl := range batch {
				cl.done <- err
			}
			break
		}
		failed = append(failed, batch[at])
		batch = append(batch[:at:at], batch[at+1:]...)
	}
	for _, cl := range failed {
		cl.done <- c.db.Update(func(tx *bolt.Tx) error { return safeCall(cl.fn, tx) })
	}
}

// errPanic wraps a panic of fn, which fails its call like an error would
// rather than the committer.
var errPanic = errors.New("groupcommit: write function panicked")

func safeCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errPanic, p)
		}
	}()
	return fn(tx)
}
