// Package outbox delivers a service's audit events to the audit service
// without ever losing one (DESIGN §6): the event is written into the
// emitting service's own store (kv.Store, on bbolt or etcd) in the same
// atomic write as the change it records (KV), and a Shipper delivers the
// outbox, in order, with AppendEvents, deleting events only once the
// audit service has acknowledged them. The audit service appends
// idempotently by event id, so a delivery repeated after a lost
// acknowledgement (or a crash between delivery and deletion) appends
// nothing twice.
//
// # Wiring a service in
//
// 1. At open, make the outbox in the service's kv.Store, beside its
// records (under the keys outbox/…). The emitter name must be the
// service's certificate name: the audit service accepts only event ids
// that start with the caller's name.
//
//	ob := outbox.NewKV(store, "secretstore")
//
// 2. Make every mutation one ob.Apply: the change's conditions and writes,
// as the service would pass them to store.Apply, and its event, so that a
// change is never written without its event, nor an event without its
// change:
//
//	err := ob.Apply(ctx,
//		[]kv.Cond{kv.Absent(secretKey)},
//		[]kv.Write{kv.Put(secretKey, rec)},
//		auditevent.New(ctx, auditevent.Secretstore, principal, now, audit.ActionSecretCreate,
//			"teams/acme/secrets/API_KEY", "acme", map[string]string{audit.DetailValueVersion: "1"}))
//
// Apply writes a copy of each event (the one passed in is not modified)
// with an id of its own, "{emitter}-{epoch}-{nanoseconds}", which replaces
// any Id set; an empty Time becomes the current time, and the chain fields
// are cleared. The events, conditions and writes of one Apply count
// together against the store's limit (128 on etcd). Apply validates each
// event by the audit service's rules (audit.ValidateEvent): an invalid
// one (or a nil one) is an internal error and nothing is written, so no
// event the audit service would refuse can block the outbox. When a
// condition does not hold, Apply writes nothing and returns the store's
// *kv.ConflictError, with the failed condition's position in conds: the
// caller may read again and retry with the same event. Never put a
// value, or anything derived from one, in an event. For run resolution,
// commit the run record and its run.resolve event together before any
// value is returned; if that fails, return nothing. A store behind an
// interface takes the event as an argument of the method that makes the
// change (Create(ctx, rec, ev)) and passes it to the Apply of that change.
//
// Replicas of a service that share one store (one etcd namespace) each
// make their own KV and run their own Shipper: ids never collide (every
// KV draws its epoch), and the audit service skips what two shippers
// both deliver.
//
// 3. In main, dial the audit service with the service's client certificate
// and run a Shipper until shutdown; wake it after every Apply that wrote
// events:
//
//	conn, err := server.Dial(auditAddr, clientTLS)
//	sh := outbox.New(outbox.Config{
//		Source:     ob,
//		Client:     internalapiv1.NewAuditIngestServiceClient(conn),
//		Emitter:    "secretstore",
//		Logger:     log,
//		Registerer: registry, // the service's /metrics registry
//	})
//	ob.OnCommit(sh.Notify)
//	go sh.Run(ctx)
//
// Run retries with backoff while the audit service is down; events wait in
// the outbox meanwhile (the backlog metric shows them) and survive
// restarts. At shutdown, stop serving first, then cancel Run's context;
// Flush (with a deadline) may deliver what is left.
//
// 4. Serve the outbox's witnesses to the audit service (witness.go): add
// {WitnessService: WitnessRule} to the service's access rules and
// register the server:
//
//	outbox.RegisterWitnesses(srv, ob)
//
// # Witnesses
//
// A KV also keeps, beside the outbox, the audit service's answer to its
// last delivery to each chain (Witnessed): the seq and hash of its last
// event there. Each delivery carries them, and VerifyChain asks for them
// (AuditWitnessService), so that an audit log that went backwards —
// restored from an older copy, or replaced by a shorter log that itself
// verifies — does not verify: it no longer holds those events. See
// witness.go.
//
// # Metrics
//
// Every metric has the label emitter="{Config.Emitter}":
//
//	oz_audit_outbox_backlog                   gauge: events waiting in the outbox
//	oz_audit_outbox_oldest_event_age_seconds  gauge: age of the oldest waiting event (0 when none)
//	oz_audit_outbox_delivery_lag_seconds      histogram: event time to acknowledged delivery
//	oz_audit_outbox_delivered_total           counter: events acknowledged by the audit service
//	oz_audit_outbox_delivery_failures_total   counter: AppendEvents calls that failed
//
// The gauges are updated whenever the shipper looks at the outbox: at least
// every Config.PollInterval, and on every retry.
package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
)

// Source is an emitting service's outbox. Implementations must be safe
// for concurrent use with the service's writers. One that is also
// Witnessed keeps the witnesses of its deliveries: the Shipper sends them
// with each delivery and keeps the new ones with Source's Ack
// (AckWitnessed).
type Source interface {
	// Pending returns up to max undelivered events, oldest first (the
	// order they were committed in), with their ids set. It does not
	// remove them.
	Pending(ctx context.Context, max int) ([]*auditv1.Event, error)
	// Ack deletes delivered events by id, durably. Ids not in the outbox
	// are ignored.
	Ack(ctx context.Context, ids []string) error
}

// Counter is an optional capability of a Source: counting its backlog.
// Without it, the backlog gauge counts at most one batch.

// countEvery is how often, at most, the shipper counts a backlog of more
// than a batch with Counter.
const countEvery = time.Second

type Counter interface {
	Backlog(ctx context.Context) (int, error)
}

// Defaults for the zero values of Config.
const (
	DefaultBatchSize     = 256
	DefaultMaxBatchBytes = 1 << 20 // well under the audit service's 4 MiB message limit
	DefaultMinBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff    = 10 * time.Second
	DefaultPollInterval  = 5 * time.Second
	DefaultCallTimeout   = 10 * time.Second
	DefaultLinger        = 10 * time.Millisecond
)

// Config configures a Shipper.
type Config struct {
	Source Source                                 // required
	Client internalapiv1.AuditIngestServiceClient // required
	// Emitter names the emitting service in logs and metrics.
	Emitter string
	// BatchSize is the most events per AppendEvents call (at most
	// 1000, the audit service's limit).
	BatchSize int
	// MaxBatchBytes bounds the encoded size of one call's events; a batch
	// always holds at least one event.
	MaxBatchBytes int
	// MinBackoff and MaxBackoff bound the wait between failed attempts;
	// it doubles from one to the other, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// PollInterval is how often the outbox is looked at without a
	// Notify (events written by another process, a missed wake-up).
	PollInterval time.Duration
	// CallTimeout bounds one AppendEvents call.
	CallTimeout time.Duration
	// Linger is how long the shipper waits, once woken, for more events
	// to join the batch. Without it a service committing a few hundred
	// lone writes a second (run resolutions one by one) would make as
	// many AppendEvents calls, audit commits and outbox deletions, each
	// with its fsync; 10ms of delivery lag makes them one. Negative: none.
	Linger time.Duration
	Logger *slog.Logger
	// Registerer receives the metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Now is the clock of the lag metrics; time.Now when nil.
	Now func() time.Time
}

// Shipper delivers a Source's events to the audit service. Create it with
// New and run it with Run.
type Shipper struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}

	mu      sync.Mutex // one delivery at a time (Run and Flush)
	failing bool       // the last attempt failed (for logging transitions)
	counted time.Time  // when the backlog was last counted in full
	// backwards are the chains whose witness the audit service said it
	// does not hold, once logged.
	backwards map[string]bool

	backlog   prometheus.Gauge
	oldestAge prometheus.Gauge
	lag       prometheus.Histogram
	delivered prometheus.Counter
	failures  prometheus.Counter
}

// New returns a Shipper for cfg. It panics when Source or Client is nil,
// or when the metrics cannot be registered (a programming error).
func New(cfg Config) *Shipper {
	if cfg.Source == nil || cfg.Client == nil {
		panic("outbox: Config.Source and Config.Client are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	cfg.BatchSize = min(cfg.BatchSize, 1000)
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.Linger == 0 {
		cfg.Linger = DefaultLinger
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	labels := prometheus.Labels{"emitter": cfg.Emitter}
	s := &Shipper{
		cfg:       cfg,
		log:       log.With("component", "audit-outbox"),
		wake:      make(chan struct{}, 1),
		backwards: map[string]bool{},
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "oz_audit_outbox_backlog", ConstLabels: labels,
			Help: "Audit events waiting in the outbox for delivery to the audit service.",
		}),
		oldestAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "oz_audit_outbox_oldest_event_age_seconds", ConstLabels: labels,
			Help: "Age of the oldest audit event waiting in the outbox; 0 when none waits.",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "oz_audit_outbox_delivery_lag_seconds", ConstLabels: labels,
			Help:    "Time from an audit event to its acknowledged delivery.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oz_audit_outbox_delivered_total", ConstLabels: labels,
			Help: "Audit events acknowledged by the audit service.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oz_audit_outbox_delivery_failures_total", ConstLabels: labels,
			Help: "AppendEvents calls to the audit service that failed.",
		}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(s.backlog, s.oldestAge, s.lag, s.delivered, s.failures)
	}
	return s
}

// Notify wakes the shipper: call it after committing events. It never
// blocks; wake-ups while the shipper is busy merge into one.
func (s *Shipper) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run delivers events until ctx is done, then returns nil. It waits for
// Notify (or PollInterval) when the outbox is empty and backs off while
// deliveries fail.
func (s *Shipper) Run(ctx context.Context) error {
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	var backoff time.Duration
	for {
		_, more, err := s.shipOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil:
			backoff = s.nextBackoff(backoff)
			// Notify does not cut a backoff short: a busy service would
			// otherwise hammer an audit service that is down.
			if !sleep(ctx, backoff) {
				return nil
			}
		case more:
			backoff = 0 // a full batch: more may be waiting, go on at once
		default:
			// The outbox was emptied (up to what was committed during the
			// delivery, whose Notify is already waiting in s.wake).
			backoff = 0
			select {
			case <-ctx.Done():
				return nil
			case <-s.wake:
				if s.cfg.Linger > 0 && !sleep(ctx, s.cfg.Linger) {
					return nil
				}
			case <-poll.C:
			}
		}
	}
}

// Flush delivers until the outbox is empty, returning the first error (or
// ctx's). Use it at shutdown with a deadline, after Run has returned.
func (s *Shipper) Flush(ctx context.Context) error {
	for {
		n, _, err := s.shipOnce(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// shipOnce delivers one batch: it returns how many events were delivered
// (0 when the outbox is empty), and whether more may be waiting (the batch
// was full, or cut to MaxBatchBytes).
func (s *Shipper) shipOnce(ctx context.Context) (n int, more bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs, err := s.cfg.Source.Pending(ctx, s.cfg.BatchSize)
	if err != nil {
		return 0, false, s.fail(fmt.Errorf("read the outbox: %w", err))
	}
	s.observeBacklog(ctx, evs)
	if len(evs) == 0 {
		s.recovered()
		return 0, false, nil
	}
	more = len(evs) >= s.cfg.BatchSize
	if cut := s.cut(evs); len(cut) < len(evs) {
		evs, more = cut, true
	}
	req := &internalapiv1.AppendEventsRequest{Events: evs}
	keeper, witnessed := s.cfg.Source.(Witnessed)
	if witnessed {
		ws, err := keeper.Witnesses(ctx, chainsOf(evs))
		if err != nil {
			return 0, false, s.fail(err)
		}
		req.Witnesses = witnessesProto(ws)
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	resp, err := s.cfg.Client.AppendEvents(cctx, req)
	cancel()
	if err != nil {
		s.failures.Inc()
		return 0, false, s.fail(fmt.Errorf("deliver %d audit events: %w", len(evs), err))
	}
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.GetId()
	}
	if witnessed {
		err = keeper.AckWitnessed(ctx, ids, s.newWitnesses(ctx, evs, resp))
	} else {
		err = s.cfg.Source.Ack(ctx, ids)
	}
	if err != nil {
		// Delivered but still in the outbox: the next attempt delivers
		// them again, and the audit service skips them as duplicates.
		return 0, false, s.fail(fmt.Errorf("delete %d delivered audit events from the outbox: %w", len(ids), err))
	}
	now := s.cfg.Now()
	for _, ev := range evs {
		s.lag.Observe(max(now.Sub(ev.GetTime().AsTime()).Seconds(), 0))
	}
	s.delivered.Add(float64(len(evs)))
	s.recovered()
	s.log.DebugContext(ctx, "audit events delivered", "emitter", s.cfg.Emitter, "events", len(evs),
		"appended", resp.GetAppended(), "duplicates", resp.GetDuplicates())
	return len(evs), more, nil
}

// chainsOf returns the chains of evs, each once.
func chainsOf(evs []*auditv1.Event) []string {
	var chains []string
	seen := map[string]bool{}
	for _, ev := range evs {
		if c := auditchain.Name(ev.GetTeam()); !seen[c] {
			seen[c] = true
			chains = append(chains, c)
		}
	}
	return chains
}

// witnessesProto returns ws for a request, in chain order.
func witnessesProto(ws map[string]Witness) []*internalapiv1.AuditWitness {
	out := make([]*internalapiv1.AuditWitness, 0, len(ws))
	for _, c := range slices.Sorted(maps.Keys(ws)) {
		out = append(out, witnessProto(ws[c]))
	}
	return out
}

// newWitnesses returns the witnesses to keep after the delivery of evs:
// the heads the audit service answered for the chains of evs, but for the
// chains whose witness it does not hold. Those keep their witness, so that
// VerifyChain goes on reporting that the log went backwards; the first
// time, it is logged here too.
func (s *Shipper) newWitnesses(ctx context.Context, evs []*auditv1.Event, resp *internalapiv1.AppendEventsResponse) []Witness {
	failed := map[string]bool{}
	for _, c := range resp.GetWitnessFailures() {
		failed[c] = true
		if s.backwards[c] {
			continue
		}
		s.backwards[c] = true
		s.log.ErrorContext(ctx, "the audit log went backwards: it no longer holds the last event of a chain it acknowledged to this service "+
			"(restored from an older copy, or replaced); the new events were appended all the same, and the witness is kept, "+
			"so that `oz audit verify` reports it until the log's latest backup is restored",
			"emitter", s.cfg.Emitter, "chain", c)
	}
	ours := map[string]bool{}
	for _, c := range chainsOf(evs) {
		ours[c] = true
	}
	var out []Witness
	for _, h := range resp.GetHeads() {
		w := Witness{Chain: h.GetChain(), Seq: h.GetSeq(), Hash: h.GetHash()}
		if ours[w.Chain] && !failed[w.Chain] && w.Valid() {
			out = append(out, w)
		}
	}
	return out
}

// cut keeps the longest prefix of evs within MaxBatchBytes (at least one
// event).
func (s *Shipper) cut(evs []*auditv1.Event) []*auditv1.Event {
	total := 0
	for i, ev := range evs {
		total += proto.Size(ev) + 8
		if i > 0 && total > s.cfg.MaxBatchBytes {
			return evs[:i]
		}
	}
	return evs
}

// A read that returned less than a batch saw the whole backlog; a full
// batch may hide more, and then the Counter counts them, at most once per
// countEvery: counting walks the whole outbox (on etcd, every deleted key
// since the last compaction too), and the shipper reads many times a
// second under load.
func (s *Shipper) observeBacklog(ctx context.Context, pending []*auditv1.Event) {
	n := len(pending)
	c, ok := s.cfg.Source.(Counter)
	switch {
	case n < s.cfg.BatchSize || !ok:
		s.backlog.Set(float64(n))
	case s.cfg.Now().Sub(s.counted) >= countEvery:
		s.counted = s.cfg.Now()
		if total, err := c.Backlog(ctx); err == nil {
			n = total
		}
		s.backlog.Set(float64(n))
	}
	if len(pending) == 0 {
		s.oldestAge.Set(0)
		return
	}
	s.oldestAge.Set(max(s.cfg.Now().Sub(pending[0].GetTime().AsTime()).Seconds(), 0))
}

// fail logs the first failure of a run of failures as a warning (the rest
// at debug level) and returns err.
func (s *Shipper) fail(err error) error {
	if !s.failing {
		s.failing = true
		s.log.Warn("audit events wait in the outbox: delivery failed; retrying with backoff", "emitter", s.cfg.Emitter, "err", err.Error())
	} else {
		s.log.Debug("audit delivery failed again", "emitter", s.cfg.Emitter, "err", err.Error())
	}
	return err
}

func (s *Shipper) recovered() {
	if s.failing {
		s.failing = false
		s.log.Info("audit delivery recovered", "emitter", s.cfg.Emitter)
	}
}

func (s *Shipper) nextBackoff(prev time.Duration) time.Duration {
	next := min(max(prev*2, s.cfg.MinBackoff), s.cfg.MaxBackoff)
	// ±20% jitter, so that restarted services do not retry in step.
	return time.Duration(float64(next) * (0.8 + 0.4*rand.Float64()))
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
