// Package sourcelimit limits what one source address may do at the gateway:
// how many failed authentications it may make (Failures, a token bucket per
// source) and how many connections it may hold open at once (Listen).
//
// A source is the TCP peer's address (Key). Behind a proxy or a load
// balancer that is the proxy's address: every caller behind it shares one
// source. X-Forwarded-For is not trusted here, because any caller can send
// one.
package sourcelimit

import (
	"math"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Key returns the source of a connection from remoteAddr ("host:port" or a
// bare host): its IP address, and for IPv6 its /64 network, which is what
// one host or one customer is normally given, so that stepping through
// addresses of one's own /64 does not make new sources. An unparsable
// address is its own key.
func Key(remoteAddr string) string {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// Failures is a token bucket per source: each source may fail Burst times
// in a row, then once per 1/PerMinute minute. It is safe for concurrent use.
// Memory is bounded by the sources seen recently: a bucket that has filled
// up again is forgotten.
type Failures struct {
	perSecond float64
	burst     float64

	mu      sync.Mutex
	buckets map[string]*bucket
	sweepAt int // sweep when the map grows to this size
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

// NewFailures returns a limiter allowing burst failures in a row and
// perMinute a minute after that. Both must be positive.
func NewFailures(perMinute, burst int) *Failures {
	return &Failures{
		perSecond: float64(perMinute) / 60,
		burst:     float64(burst),
		buckets:   make(map[string]*bucket),
		sweepAt:   1024,
	}
}

// refill brings b up to date at now.
func (f *Failures) refill(b *bucket, now time.Time) {
	if elapsed := now.Sub(b.at).Seconds(); elapsed > 0 {
		b.tokens = math.Min(f.burst, b.tokens+elapsed*f.perSecond)
	}
	b.at = now
}

func (f *Failures) get(key string, now time.Time) *bucket {
	b, ok := f.buckets[key]
	if !ok {
		f.sweep(now)
		b = &bucket{tokens: f.burst, at: now}
		f.buckets[key] = b
	}
	f.refill(b, now)
	return b
}

// sweep forgets the buckets that are full again, once the map has doubled
// since the last sweep: amortised constant time per new source.
func (f *Failures) sweep(now time.Time) {
	if len(f.buckets) < f.sweepAt {
		return
	}
	for k, b := range f.buckets {
		f.refill(b, now)
		if b.tokens >= f.burst {
			delete(f.buckets, k)
		}
	}
	f.sweepAt = max(1024, 2*len(f.buckets))
}

// Take reserves one failure for key at now. It returns false, and how long
// until a failure is allowed again, when key has none left.
func (f *Failures) Take(key string, now time.Time) (ok bool, wait time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.get(key, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / f.perSecond * float64(time.Second))
}

// Charge counts a failure for key at now whether or not it had one left
// (a request let through without a reservation that failed).
func (f *Failures) Charge(key string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.get(key, now)
	b.tokens = math.Max(0, b.tokens-1)
}

// Refund gives back a failure reserved with Take: the request did not fail.
func (f *Failures) Refund(key string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.get(key, now)
	b.tokens = math.Min(f.burst, b.tokens+1)
}

// Listen returns a listener that accepts at most max connections open at
// once from each source of l. A connection beyond that is closed as soon
// as it is accepted, before anything is read from it, and refused is called
// with its source (for logging; it may be nil). max must be positive.
func Listen(l net.Listener, max int, refused func(source string)) net.Listener {
	return &listener{Listener: l, max: max, refused: refused, open: make(map[string]int)}
}

type listener struct {
	net.Listener
	max     int
	refused func(string)

	mu   sync.Mutex
	open map[string]int // connections open, by source
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := Key(c.RemoteAddr().String())
		l.mu.Lock()
		ok := l.open[key] < l.max
		if ok {
			l.open[key]++
		}
		l.mu.Unlock()
		if ok {
			return &conn{Conn: c, release: func() { l.release(key) }}, nil
		}
		_ = c.Close()
		if l.refused != nil {
			l.refused(key)
		}
	}
}

func (l *listener) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// conn gives its source's slot back when closed, once.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
