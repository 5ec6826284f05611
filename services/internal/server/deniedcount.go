package server

import (
	"context"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/services/internal/auth"
)

// Counting the refusals of requests without a valid credential (DESIGN
// §6, Config.DeniedInterval). Anyone who reaches the port can send them,
// as fast as they like: recorded one by one they would grow the audit log
// without bound. Counted, they cost one event per source address, method,
// code and reason per interval.

// DefaultDeniedInterval is how often counted refusals are recorded,
// unless --denied-count-interval says otherwise.
const DefaultDeniedInterval = time.Minute

// MaxDeniedKeys bounds the distinct source addresses (with method, code
// and reason) counted in one interval, and so the memory and the events
// one interval may take. Refusals from further sources are counted
// together under the source OtherSources.
const MaxDeniedKeys = 10000

// OtherSources is the source of the refusals counted beyond MaxDeniedKeys.
const OtherSources = "other"

// maxDeniedReason bounds the refusal message kept per count.
const maxDeniedReason = 1024

// DeniedCount is what OnDenied is told of counted refusals, through the
// ctx it is called with (DeniedCountFrom): how many requests were refused
// the same way from the same source (auth.SourceFrom), first and last
// when. Such a ctx has no principal and no request id; its auth.ServiceFrom
// is the service that relayed the requests (the gateway), if any.
type DeniedCount struct {
	Count       int64
	First, Last time.Time
}

type deniedCountKey struct{}

// DeniedCountFrom returns the count of refusals OnDenied is told of, or
// false when it is told of one request.
func DeniedCountFrom(ctx context.Context) (DeniedCount, bool) {
	c, ok := ctx.Value(deniedCountKey{}).(DeniedCount)
	return c, ok
}

type deniedKey struct {
	source, relay, method, reason string
	code                          codes.Code
}

// deniedCounter counts anonymous refusals and tells fn of each count once
// per interval, and at stop.
type deniedCounter struct {
	fn       Denied
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	tallies map[deniedKey]*DeniedCount

	flushMu sync.Mutex // one flush at a time
}

func newDeniedCounter(fn Denied, interval time.Duration, now func() time.Time) *deniedCounter {
	return &deniedCounter{fn: fn, interval: interval, now: now, tallies: map[deniedKey]*DeniedCount{}}
}

// add counts the refusal st of a request to method, in the context
// deniedContext made.
func (c *deniedCounter) add(ctx context.Context, method string, st *status.Status) {
	reason := st.Message()
	if len(reason) > maxDeniedReason {
		reason = reason[:maxDeniedReason] // the hook cleans it to valid UTF-8
	}
	k := deniedKey{source: auth.SourceFrom(ctx), relay: auth.ServiceFrom(ctx), method: method, reason: reason, code: st.Code()}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tallies[k]
	if !ok && len(c.tallies) >= MaxDeniedKeys {
		k.source = OtherSources
		t, ok = c.tallies[k]
	}
	if !ok {
		t = &DeniedCount{First: now}
		c.tallies[k] = t
	}
	t.Count++
	t.Last = now
}

// flush tells fn of every count so far, in a stable order, and starts
// counting afresh.
func (c *deniedCounter) flush() {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	tallies := c.tallies
	c.tallies = map[deniedKey]*DeniedCount{}
	c.mu.Unlock()
	keys := make([]deniedKey, 0, len(tallies))
	for k := range tallies {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return tallies[keys[i]].First.Before(tallies[keys[j]].First) })
	for _, k := range keys {
		ctx := context.WithValue(context.Background(), deniedCountKey{}, *tallies[k])
		ctx = auth.WithSource(ctx, k.source)
		if k.relay != "" {
			ctx = auth.WithService(ctx, k.relay)
		}
		c.fn(ctx, k.method, nil, status.Error(k.code, k.reason))
	}
}

// run flushes every interval until stop, which flushes a last time.
func (c *deniedCounter) run() (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(c.interval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				c.flush()
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		c.flush()
	}
}

// FlushDenied records now the refusals counted so far
// (Config.DeniedInterval) rather than at the end of the interval. Serve
// does it when it stops; tests call it.
func (s *Server) FlushDenied() {
	if s.denials != nil {
		s.denials.flush()
	}
}
