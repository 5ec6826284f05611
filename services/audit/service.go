package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// Page sizes (AIP-158) and scan bounds.
const (
	DefaultPageSize       = 100
	MaxPageSize           = 1000
	DefaultExportPageSize = 500
	// DefaultScanLimit is how many events one ListEvents call examines at
	// most; a page may then hold fewer matches than asked, with a token
	// to go on.
	DefaultScanLimit = 10000
	// rangePage is how many events Verify and GetSecretUsage read per
	// store call.
	rangePage = 1000
)

// Config configures a Service.
type Config struct {
	Store  Store
	Logger *slog.Logger
	// Now is the clock of append times; time.Now when nil.
	Now func() time.Time
	// ScanLimit bounds the events one List call examines; DefaultScanLimit
	// when zero.
	ScanLimit int
	// Registerer receives the service's metrics; nil leaves them
	// unregistered.
	Registerer prometheus.Registerer
	// Inventory reads the secrets, identities and environments an access
	// review covers (Review); nil: reviews are Unavailable.
	Inventory Inventory
	// Witnesses asks the emitting services what they saw of a chain
	// (Verify); nil: the Inventory's, when it is one, else none.
	Witnesses Witnesses
}

// Service is the audit log's logic: ingestion (for services) and reads
// (for team admins and system admins). Its errors are errs kinds;
// KindPermissionDenied is always decided before anything is read.
type Service struct {
	store     Store
	log       *slog.Logger
	now       func() time.Time
	scanLimit int
	inventory Inventory
	witnesses Witnesses

	appended        prometheus.Counter
	duplicates      prometheus.Counter
	witnessFailures *prometheus.CounterVec
	backwardsLogged sync.Map // witnesses a delivery carried that the log does not hold, once logged
}

// NewService returns a Service over cfg.Store.
func NewService(cfg Config) *Service {
	s := &Service{store: cfg.Store, log: cfg.Logger, now: cfg.Now, scanLimit: cfg.ScanLimit, inventory: cfg.Inventory,
		witnesses: cfg.Witnesses}
	if w, ok := cfg.Inventory.(Witnesses); ok && s.witnesses == nil {
		// The inventory client reaches every emitting service already.
		s.witnesses = w
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.scanLimit <= 0 {
		s.scanLimit = DefaultScanLimit
	}
	s.appended = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "oz_audit_events_appended_total",
		Help: "Audit events appended to the log.",
	})
	s.duplicates = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "oz_audit_events_duplicate_total",
		Help: "Audit events delivered again (their id was in the log already) and skipped.",
	})
	s.witnessFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oz_audit_witness_failures_total",
		Help: "Deliveries whose emitter's witness the log does not hold: the log went backwards (restored from an older copy, or replaced).",
	}, []string{"emitter"})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(s.appended, s.duplicates, s.witnessFailures)
	}
	return s
}

// Append validates events and appends them in order (Store.Append).
// service is the calling service (its certificate's name), which must be
// every event's emitter: the id, which names the emitter, must start with
// service + "-", so that no service can append another's events, nor
// claim, and so suppress, their ids. Which services may call it at all
// is grpcapi.IngestServices. Invalid input appends nothing.
//
// witnesses are what service saw of the chains it delivers to (see
// witness.go): each is checked before the events are appended, and those
// the log does not hold are logged, counted and returned in
// AppendResult.Unheld; the events are appended all the same.
func (s *Service) Append(ctx context.Context, service string, events []*auditv1.Event, witnesses ...Witness) (AppendResult, error) {
	if len(events) > MaxBatch {
		return AppendResult{}, errs.Field("events", "at most %d events per call", MaxBatch)
	}
	if service == "" {
		return AppendResult{}, errs.E(errs.KindPermissionDenied, "only services append audit events")
	}
	for i, ev := range events {
		field := fmt.Sprintf("events[%d]", i)
		if err := ValidateEvent(field, ev); err != nil {
			return AppendResult{}, err
		}
		if !strings.HasPrefix(ev.GetId(), service+"-") {
			return AppendResult{}, errs.E(errs.KindPermissionDenied, "%s.id: must start with %q: a service appends only its own events", field, service+"-")
		}
	}
	if err := validateWitnesses(witnesses); err != nil {
		return AppendResult{}, err
	}
	if len(events) == 0 {
		return AppendResult{}, nil
	}
	unheld, err := s.checkDelivery(ctx, service, witnesses)
	if err != nil {
		return AppendResult{}, fmt.Errorf("check audit witnesses: %w", err)
	}
	res, err := s.store.Append(ctx, events, s.now())
	if err != nil {
		return AppendResult{}, fmt.Errorf("append audit events: %w", err)
	}
	res.Unheld = unheld
	s.appended.Add(float64(res.Appended))
	s.duplicates.Add(float64(res.Duplicates))
	return res, nil
}

// ParseParent parses a chain's parent name: "teams/{team}" or "system"
// (team ""). field names the request field in errors.
func ParseParent(field, parent string) (team string, err error) {
	if parent == auditchain.SystemChain {
		return "", nil
	}
	id, ok := strings.CutPrefix(parent, "teams/")
	if !ok || !ValidTeamID(id) {
		return "", errs.Field(field, `must be "teams/{team}" or "system"`)
	}
	return id, nil
}

// authorize lets p read team's chain: system admins any chain, team
// admins their team's. Only people read the audit log.
func authorize(p *auth.Principal, team string) error {
	switch {
	case p == nil:
		return errs.E(errs.KindUnauthenticated, "a bearer token is required")
	case !p.IsHuman():
		return errs.E(errs.KindPermissionDenied, "only people read the audit log; a %s cannot", p.Kind)
	case p.SystemAdmin:
		return nil
	case team == "":
		return errs.E(errs.KindPermissionDenied, "only system admins read the system chain")
	case !p.IsAdmin(team):
		return errs.E(errs.KindPermissionDenied, "only admins of team %s read its audit events", team)
	}
	return nil
}

// ListRequest is the input of List.
type ListRequest struct {
	Parent    string
	Filter    Filter
	PageSize  int
	PageToken string
}

// ListPage is one page of List.
type ListPage struct {
	Events        []*auditv1.Event // newest first
	NextPageToken string
}

// List returns a chain's events that match req.Filter, newest first.
func (s *Service) List(ctx context.Context, p *auth.Principal, req ListRequest) (*ListPage, error) {
	team, err := ParseParent("parent", req.Parent)
	if err != nil {
		return nil, err
	}
	if err := authorize(p, team); err != nil {
		return nil, err
	}
	f := req.Filter
	if !f.Start.IsZero() && !f.End.IsZero() && !f.End.After(f.Start) {
		return nil, errs.Field("end_time", "must be after start_time")
	}
	if a := f.Action; a != "" && !validActionFilter(a) {
		return nil, errs.Field("action", `must be an action ("secret.create") or a prefix ending in ".*" ("secret.*")`)
	}
	size, err := pageSize(req.PageSize, DefaultPageSize)
	if err != nil {
		return nil, err
	}
	tok, err := decodeToken(req.PageToken, tokenList, req.Parent, f.fingerprint())
	if err != nil {
		return nil, err
	}
	page, err := s.store.List(ctx, Query{Team: team, Filter: f, BeforeSeq: tok.Seq, Limit: size, ScanLimit: s.scanLimit})
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	out := &ListPage{Events: page.Events}
	if page.NextBeforeSeq > 0 {
		out.NextPageToken = pageToken{List: tokenList, Parent: req.Parent, Filter: f.fingerprint(), Seq: page.NextBeforeSeq}.encode()
	}
	return out, nil
}

func validActionFilter(a string) bool {
	if prefix, ok := strings.CutSuffix(a, ".*"); ok {
		a = prefix + ".x"
	}
	return checkAction("filter", "action", a) == nil
}

// VerifyResult is the outcome of Verify.
type VerifyResult struct {
	Valid    bool
	Verified int64
	Head     auditchain.Head   // as stored
	Break    *auditchain.Break // nil when valid
	// Witnesses compare the chain with what each emitting service saw.
	Witnesses []WitnessCheck
}

// Verify recomputes a chain from seq 1 to the head it had when Verify
// started (events appended meanwhile are left for the next run), and
// checks that the stored head is the chain's last event — so events
// removed from the end are found too — and that the chain holds every
// emitting service's witness — so a log that went backwards as a whole
// (restored from an older copy, or replaced by a shorter one) is found
// too. When the links verify but a witness is not held, the Break is at
// the witness's seq and names the emitter.
func (s *Service) Verify(ctx context.Context, p *auth.Principal, parent string) (*VerifyResult, error) {
	team, err := ParseParent("parent", parent)
	if err != nil {
		return nil, err
	}
	if err := authorize(p, team); err != nil {
		return nil, err
	}
	// The witnesses first: each is an event appended before it was read,
	// so a chain read after it holds it, unless the log went backwards.
	var witnesses []EmitterWitness
	if s.witnesses != nil {
		witnesses = s.witnesses.Witnesses(ctx, parent)
	}
	head, err := s.store.Head(ctx, team)
	if err != nil {
		return nil, fmt.Errorf("verify: head: %w", err)
	}
	start := time.Now()
	res, err := s.verifyLinks(ctx, team, head)
	if err != nil {
		return nil, err
	}
	// The rate the store and the hashing allow, without the network: an
	// operator compares it with what `oz audit verify` reports.
	took := time.Since(start)
	s.log.InfoContext(ctx, "audit chain links verified", "chain", parent, "valid", res.Valid, "events", res.Verified,
		"seconds", took.Seconds(), "events_per_second", float64(res.Verified)/max(took.Seconds(), 1e-9))
	if res.Witnesses, err = s.checkAll(ctx, team, witnesses); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if res.Valid {
		// The greatest witness not held: it shows the most that was lost.
		var worst *WitnessCheck
		for i, c := range res.Witnesses {
			if c.Failed() && (worst == nil || c.Head.Seq > worst.Head.Seq) {
				worst = &res.Witnesses[i]
			}
		}
		if worst != nil {
			res.Valid = false
			res.Break = &auditchain.Break{Seq: worst.Head.Seq, Reason: worst.Reason}
		}
	}
	return res, nil
}

// verifyLinks recomputes team's chain from seq 1 to head, rangePage
// events at a time. A reader goroutine reads the next page while this one
// hashes the last (reading and decoding is half the time), so at most
// three pages are held, whatever the chain's length: memory does not grow
// with it (TestVerifyAndExportConstantMemory).
func (s *Service) verifyLinks(ctx context.Context, team string, head auditchain.Head) (*VerifyResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the reader when a break ends the verification early
	pages := s.readPages(ctx, team, head.Seq)
	v := auditchain.NewVerifier()
	res := &VerifyResult{Head: head}
	for p := range pages {
		if p.err != nil {
			return nil, fmt.Errorf("verify: %w", p.err)
		}
		for _, ev := range p.events {
			if ev.GetSeq() > head.Seq {
				break
			}
			if err := v.Check(ev); err != nil {
				res.Verified, res.Break = v.Count(), v.Break()
				return res, nil
			}
		}
	}
	res.Verified = v.Count()
	got := v.Head()
	switch {
	case got.Seq < head.Seq:
		res.Break = &auditchain.Break{Seq: got.Seq + 1, Reason: fmt.Sprintf("the chain ends at seq %d but its stored head is seq %d: events were removed from its end", got.Seq, head.Seq)}
	case string(got.Hash) != string(head.Hash):
		res.Break = &auditchain.Break{Seq: head.Seq, Reason: "the stored head's hash is not the hash of the chain's last event"}
	default:
		res.Valid = true
	}
	return res, nil
}

// page is one Range of readPages, or its error (the last page sent).
type page struct {
	events []*auditv1.Event
	err    error
}

// readPages reads team's chain from seq 1 up to seq last (and the rest
// of the page holding it), rangePage events a Range, into the channel it
// returns, one page ahead of the reader, until the chain ends or ctx is
// done; then it closes the channel.
func (s *Service) readPages(ctx context.Context, team string, last int64) <-chan page {
	pages := make(chan page, 1)
	go func() {
		defer close(pages)
		for from := int64(1); from <= last; {
			evs, err := s.store.Range(ctx, team, from, rangePage)
			select {
			case pages <- page{events: evs, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(evs) < rangePage {
				return
			}
			from = evs[len(evs)-1].GetSeq() + 1
		}
	}()
	return pages
}

// ExportPage is one page of Export.
type ExportPage struct {
	Events        []*auditv1.Event // seq ascending
	NextPageToken string
	Head          auditchain.Head
}

// Export returns a chain's events in chain order, one page at a time.
func (s *Service) Export(ctx context.Context, p *auth.Principal, parent string, size int, token string) (*ExportPage, error) {
	team, err := ParseParent("parent", parent)
	if err != nil {
		return nil, err
	}
	if err := authorize(p, team); err != nil {
		return nil, err
	}
	size, err = pageSize(size, DefaultExportPageSize)
	if err != nil {
		return nil, err
	}
	tok, err := decodeToken(token, tokenExport, parent, "")
	if err != nil {
		return nil, err
	}
	from := max(tok.Seq, 1)
	evs, err := s.store.Range(ctx, team, from, size)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	// The head is read after the events, so it is never behind them.
	head, err := s.store.Head(ctx, team)
	if err != nil {
		return nil, fmt.Errorf("export: head: %w", err)
	}
	out := &ExportPage{Events: evs, Head: head}
	if n := len(evs); n > 0 && evs[n-1].GetSeq() < head.Seq {
		out.NextPageToken = pageToken{List: tokenExport, Parent: parent, Seq: evs[n-1].GetSeq() + 1}.encode()
	}
	return out, nil
}

// Emitter is the audit service's name as the emitter of its own events
// (request.denied): their ids start with "audit-".
const Emitter = "audit"

// Now is the service's clock: the time of the events it emits itself.
func (s *Service) Now() time.Time { return s.now() }

// RecordDenied completes ev, the request.denied event of a request the
// audit service refused (auditevent.OnDenied, its server.Config.OnDenied
// through grpcapi.OnDenied), and appends it to the log itself: the audit
// service is the log, so it has no outbox. The id is Emitter, "-" and 128
// random bits, unique, so that no two refusals are taken for one
// delivery.
//
// resource is what the request named, recorded only when it is a chain
// ("system", "teams/{team}") or a secret's usage
// ("teams/{team}/secrets/{secret}/usage"), so that nothing else a client
// sent — a token — is ever recorded. The chain is the team's when that
// team is known — the caller is one of its members, or its chain has
// events — so that a refused request cannot start chains for names it
// made up; else the system chain. runID is not recorded (ListEvents'
// run_id is a filter, not the run the request was about).
func (s *Service) RecordDenied(ctx context.Context, ev *auditv1.Event, resource, _ string) error {
	team := ""
	switch t, err := ParseParent("parent", resource); {
	case err == nil:
		team = t
	default:
		if t, _, err := parseUsageName(resource); err == nil {
			team = t
		} else {
			resource = ""
		}
	}
	if team != "" && !auth.PrincipalFrom(ctx).IsMember(team) {
		head, err := s.store.Head(ctx, team)
		if err != nil {
			return fmt.Errorf("record denied request: %w", err)
		}
		if head.Seq == 0 {
			team = ""
		}
	}
	var rnd [16]byte
	_, _ = rand.Read(rnd[:])
	ev.Id = Emitter + "-" + hex.EncodeToString(rnd[:])
	ev.Resource, ev.Team = resource, team
	if _, err := s.Append(ctx, Emitter, []*auditv1.Event{ev}); err != nil {
		return fmt.Errorf("record denied request: %w", err)
	}
	return nil
}
