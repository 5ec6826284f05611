package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/lib/etcdtest"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/idempotency"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
	"github.com/ozsecrets/oz/services/internal/suite"
)

var (
	ctx = context.Background()
	t0  = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
)

func TestBolt(t *testing.T) {
	run(t, func(t *testing.T) kv.Store {
		s, err := boltkv.Open(filepath.Join(t.TempDir(), "kv.db"), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestEtcd(t *testing.T) {
	cli := etcdtest.Start(t).Client(t)
	run(t, func(t *testing.T) kv.Store {
		s, err := etcdkv.New(ctx, cli, etcdtest.Prefix())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// run runs the tests every kv.Store passes.
func run(t *testing.T, open func(t *testing.T) kv.Store) {
	suite.Run(t, open, testClaimCommitsWithWrite, testNothingWithoutWrite, testRaceLost, testCallerConflictIndexed,
		testOtherRequest, testSweep, testHandleReplays, testHandleInProgress, testHandleFailedReleases, testHandleWithheld,
		testHandleWithoutKey)
}

var scope = idempotency.Scope{Principal: "users/alice", Method: "thing.create", Key: "key-1"}

// apply is a service's Apply: the claim of ctx attached.
func apply(ctx context.Context, s kv.Store, conds []kv.Cond, writes []kv.Write) error {
	conds, writes, c := idempotency.Attach(ctx, conds, writes)
	return c.Settle(ctx, s.Apply(ctx, conds, writes))
}

func begin(t *testing.T, r *idempotency.Records, now time.Time, request string) (*idempotency.Claim, *idempotency.Replay) {
	t.Helper()
	c, rep, err := r.Begin(ctx, now, idempotency.Plain, scope, []byte(request))
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	return c, rep
}

// testClaimCommitsWithWrite: the record commits with the write, and the
// key then answers with the outcome.
func testClaimCommitsWithWrite(t *testing.T, s kv.Store) {
	r := idempotency.NewRecords(s)
	c, rep := begin(t, r, t0, "req")
	if c == nil || rep != nil {
		t.Fatalf("Begin of a new key: claim %v, replay %v; want a claim", c, rep)
	}
	c.SetOutcome([]byte("answer"))
	if err := apply(idempotency.WithClaim(ctx, c), s, []kv.Cond{kv.Absent("things/a")}, []kv.Write{kv.Put("things/a", []byte("1"))}); err != nil {
		t.Fatal(err)
	}
	if !c.Committed() {
		t.Error("Committed after the Apply: false")
	}
	c2, rep := begin(t, r, t0.Add(time.Hour), "req")
	if c2 != nil || rep == nil || string(rep.Outcome) != "answer" {
		t.Fatalf("Begin again: claim %v, replay %v; want the replay of %q", c2, rep, "answer")
	}
	// A second Apply of the same request (a write of several) commits no
	// second record.
	if err := apply(idempotency.WithClaim(ctx, c), s, nil, []kv.Write{kv.Put("things/b", []byte("1"))}); err != nil {
		t.Errorf("a later Apply of the same write: %v", err)
	}
}

// testNothingWithoutWrite: a write that fails, or an Apply without writes
// (an audit event of a refusal), commits no record.
func testNothingWithoutWrite(t *testing.T, s kv.Store) {
	r := idempotency.NewRecords(s)
	if err := s.Apply(ctx, nil, []kv.Write{kv.Put("things/a", []byte("0"))}); err != nil {
		t.Fatal(err)
	}
	c, _ := begin(t, r, t0, "req")
	cctx := idempotency.WithClaim(ctx, c)
	err := apply(cctx, s, []kv.Cond{kv.Absent("things/a")}, []kv.Write{kv.Put("things/a", []byte("1"))})
	if ce, ok := errors.AsType[*kv.ConflictError](err); !ok || ce.Index != 0 {
		t.Fatalf("a write whose condition fails: %v, want the caller's ConflictError at index 0", err)
	}
	if err := apply(cctx, s, nil, nil); err != nil {
		t.Fatal(err)
	}
	if c.Committed() {
		t.Error("Committed: true, want false")
	}
	if c2, rep := begin(t, r, t0, "req"); c2 == nil || rep != nil {
		t.Errorf("Begin after no commit: claim %v replay %v, want a claim", c2, rep)
	}
}

// testRaceLost: two writes with one key, both begun before either
// committed: the second writes nothing, is Lost, and Begin then answers
// with the first's outcome.
func testRaceLost(t *testing.T, s kv.Store) {
	r := idempotency.NewRecords(s)
	c1, _ := begin(t, r, t0, "req")
	c2, _ := begin(t, r, t0, "req")
	c1.SetOutcome([]byte("first"))
	c2.SetOutcome([]byte("second"))
	if err := apply(idempotency.WithClaim(ctx, c1), s, nil, []kv.Write{kv.Put("things/a", []byte("1"))}); err != nil {
		t.Fatal(err)
	}
	err := apply(idempotency.WithClaim(ctx, c2), s, nil, []kv.Write{kv.Put("things/b", []byte("2"))})
	if !errors.Is(err, idempotency.ErrClaimed) || !c2.Lost() {
		t.Fatalf("the second write: %v (lost %v), want ErrClaimed and Lost", err, c2.Lost())
	}
	if errs.KindOf(err) != errs.KindUnavailable {
		t.Errorf("ErrClaimed's kind: %v, want unavailable (to retry)", errs.KindOf(err))
	}
	if _, err := s.Get(ctx, "things/b"); !errors.Is(err, errs.NotFound) {
		t.Errorf("the lost write's change: %v, want not stored", err)
	}
	if _, rep := begin(t, r, t0, "req"); rep == nil || string(rep.Outcome) != "first" {
		t.Errorf("Begin after the race: %v, want the first outcome", rep)
	}
}

// testCallerConflictIndexed: the caller's conditions keep their indexes
// in a ConflictError, the claim's prepended.
func testCallerConflictIndexed(t *testing.T, s kv.Store) {
	r := idempotency.NewRecords(s)
	if err := s.Apply(ctx, nil, []kv.Write{kv.Put("things/b", []byte("0"))}); err != nil {
		t.Fatal(err)
	}
	c, _ := begin(t, r, t0, "req")
	err := apply(idempotency.WithClaim(ctx, c), s,
		[]kv.Cond{kv.Absent("things/a"), kv.Absent("things/b")}, []kv.Write{kv.Put("things/a", []byte("1"))})
	ce, ok := errors.AsType[*kv.ConflictError](err)
	if !ok || ce.Index != 1 || ce.Cond.Key != "things/b" {
		t.Fatalf("got %v, want the ConflictError of the caller's condition 1", err)
	}
}

// testOtherRequest: the key sent with another request is refused, naming
// the field; a malformed key too.
func testOtherRequest(t *testing.T, s kv.Store) {
	r := idempotency.NewRecords(s)
	c, _ := begin(t, r, t0, "req")
	c.SetOutcome(nil)
	if err := apply(idempotency.WithClaim(ctx, c), s, nil, []kv.Write{kv.Put("things/a", []byte("1"))}); err != nil {
		t.Fatal(err)
	}
	_, _, err := r.Begin(ctx, t0, idempotency.Plain, scope, []byte("another"))
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.KindInvalid || e.Field != idempotency.Field {
		t.Fatalf("another request: %v, want an invalid-argument error naming %s", err, idempotency.Field)
	}
	for _, sc := range []idempotency.Scope{{Principal: "users/bob", Method: scope.Method, Key: scope.Key}, {Principal: scope.Principal, Method: "thing.delete", Key: scope.Key}} {
		if c, rep, err := r.Begin(ctx, t0, idempotency.Plain, sc, []byte("another")); err != nil || c == nil || rep != nil {
			t.Errorf("the key in scope %+v: %v, %v, %v; want a claim of its own", sc, c, rep, err)
		}
	}
	bad := scope
	bad.Key = "bad key"
	if _, _, err := r.Begin(ctx, t0, idempotency.Plain, bad, nil); !errors.As(err, &e) || e.Field != idempotency.Field {
		t.Errorf("a malformed key: %v, want an error naming %s", err, idempotency.Field)
	}
}

// testSweep: records older than the TTL go, with their expiry entries;
// younger ones and a key reused after the TTL stay.
func testSweep(t *testing.T, s kv.Store) {
	r := idempotency.NewRecords(s)
	commit := func(key string, at time.Time) {
		t.Helper()
		sc := scope
		sc.Key = key
		c, _, err := r.Begin(ctx, at, idempotency.Plain, sc, []byte("req"))
		if err != nil || c == nil {
			t.Fatalf("Begin %s: %v, %v", key, c, err)
		}
		c.SetOutcome([]byte(key))
		if err := apply(idempotency.WithClaim(ctx, c), s, nil, []kv.Write{kv.Put("things/"+key, []byte("1"))}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40 {
		commit(fmt.Sprintf("old-%d", i), t0.Add(time.Duration(i)*time.Second))
	}
	commit("reused", t0)
	commit("young", t0.Add(20*time.Hour))
	count := func(prefix string) int {
		kvs, err := s.Scan(ctx, prefix, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(kvs)
	}
	if n := count(idempotency.Prefix); n != 42 {
		t.Fatalf("records before the TTL: %d, want 42", n)
	}
	// The key reused after the TTL: a new record, its old expiry entry
	// gone; and a commit sweeps (one batch).
	commit("reused", t0.Add(idempotency.TTL+time.Hour))
	if n := count(idempotency.Prefix); n >= 42 {
		t.Errorf("records after a commit past the TTL: %d, want some swept", n)
	}
	now := t0.Add(idempotency.TTL + 2*time.Hour)
	for {
		full, err := idempotency.Sweep(ctx, s, now)
		if err != nil {
			t.Fatal(err)
		}
		if !full {
			break
		}
	}
	if n := count(idempotency.Prefix); n != 2 {
		t.Errorf("records after the sweep: %d, want 2 (young, reused)", n)
	}
	if n := count(idempotency.PrefixExpiry); n != 2 {
		t.Errorf("expiry entries after the sweep: %d, want 2", n)
	}
	for _, key := range []string{"young", "reused"} {
		sc := scope
		sc.Key = key
		if _, rep, err := r.Begin(ctx, now, idempotency.Plain, sc, []byte("req")); err != nil || rep == nil || string(rep.Outcome) != key {
			t.Errorf("%s after the sweep: %v, %v; want its answer", key, rep, err)
		}
	}
}

// Handle, around a handler whose answer comes after its Apply.

func handlerCtx(key string) context.Context {
	ctx := auth.WithPrincipal(context.Background(), &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice"})
	if key != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("idempotency-key", key))
	}
	return ctx
}

// createTeam is a handler: one Apply, then its response.
func createTeam(s kv.Store, calls *int) func(context.Context) (*scopev1.CreateTeamResponse, error) {
	return func(ctx context.Context) (*scopev1.CreateTeamResponse, error) {
		*calls++
		id := fmt.Sprintf("team-%d", *calls)
		if err := apply(ctx, s, nil, []kv.Write{kv.Put("teams/"+id, []byte("{}"))}); err != nil {
			return nil, err
		}
		return &scopev1.CreateTeamResponse{Team: &scopev1.Team{Name: "teams/" + id, TeamId: "made"}}, nil
	}
}

func testHandleReplays(t *testing.T, s kv.Store) {
	r := idempotency.NewRecords(s)
	req := &scopev1.CreateTeamRequest{TeamId: "acme"}
	calls := 0
	first, err := idempotency.Handle(handlerCtx("k1"), r, t0, req, idempotency.KeepAnswer, createTeam(s, &calls))
	if err != nil {
		t.Fatal(err)
	}
	again, err := idempotency.Handle(handlerCtx("k1"), r, t0.Add(time.Second), req, idempotency.KeepAnswer, createTeam(s, &calls))
	if err != nil || !proto.Equal(again, first) || calls != 1 {
		t.Fatalf("sent again: %v, %v (handler ran %d times); want %v, once", again, err, calls, first)
	}
	_, err = idempotency.Handle(handlerCtx("k1"), r, t0, &scopev1.CreateTeamRequest{TeamId: "beta"}, idempotency.KeepAnswer, createTeam(s, &calls))
	if e, ok := errors.AsType[*errs.Error](err); !ok || e.Field != idempotency.Field || calls != 1 {
		t.Errorf("the key with another request: %v (handler ran %d times), want an error naming %s", err, calls, idempotency.Field)
	}
}

// testHandleInProgress: a record committed without its answer yet (or
// whose answer was lost) answers Unavailable, then FailedPrecondition.
func testHandleInProgress(t *testing.T, s kv.Store) {
	r := idempotency.NewRecords(s)
	req := &scopev1.CreateTeamRequest{TeamId: "acme"}
	// The handler's Apply commits, then the process stops before the
	// answer is recorded: the handler never returns.
	stop := errors.New("stopped")
	func() {
		defer func() {
			if p := recover(); p != stop {
				panic(p)
			}
		}()
		_, _ = idempotency.Handle(handlerCtx("k1"), r, t0, req, idempotency.KeepAnswer, func(ctx context.Context) (*scopev1.CreateTeamResponse, error) {
			if err := apply(ctx, s, nil, []kv.Write{kv.Put("teams/acme", []byte("{}"))}); err != nil {
				return nil, err
			}
			panic(stop)
		})
	}()
	calls := 0
	_, err := idempotency.Handle(handlerCtx("k1"), r, t0.Add(time.Second), req, idempotency.KeepAnswer, createTeam(s, &calls))
	if errs.KindOf(err) != errs.KindUnavailable || calls != 0 {
		t.Errorf("sent again at once: %v (handler ran %d times), want Unavailable", err, calls)
	}
	_, err = idempotency.Handle(handlerCtx("k1"), r, t0.Add(idempotency.InProgressFor), req, idempotency.KeepAnswer, createTeam(s, &calls))
	if errs.KindOf(err) != errs.KindFailedPrecondition || calls != 0 {
		t.Errorf("sent again later: %v (handler ran %d times), want FailedPrecondition", err, calls)
	}
}

// testHandleFailedReleases: a handler that fails after its first Apply
// committed leaves no record: the key sent again runs it again (to
// resume).
func testHandleFailedReleases(t *testing.T, s kv.Store) {
	r := idempotency.NewRecords(s)
	req := &scopev1.CreateTeamRequest{TeamId: "acme"}
	_, err := idempotency.Handle(handlerCtx("k1"), r, t0, req, idempotency.KeepAnswer, func(ctx context.Context) (*scopev1.CreateTeamResponse, error) {
		if err := apply(ctx, s, nil, []kv.Write{kv.Put("teams/acme-part", []byte("{}"))}); err != nil {
			return nil, err
		}
		return nil, errs.E(errs.KindUnavailable, "the second part failed")
	})
	if errs.KindOf(err) != errs.KindUnavailable {
		t.Fatalf("the failing handler: %v, want its error", err)
	}
	calls := 0
	if _, err := idempotency.Handle(handlerCtx("k1"), r, t0, req, idempotency.KeepAnswer, createTeam(s, &calls)); err != nil || calls != 1 {
		t.Errorf("sent again: %v (handler ran %d times), want it run again", err, calls)
	}
}

// testHandleWithheld: an answer holding a credential is not kept: the key
// sent again is refused, saying so, and nothing is made twice.
func testHandleWithheld(t *testing.T, s kv.Store) {
	r := idempotency.NewRecords(s)
	req := &scopev1.CreateTeamRequest{TeamId: "acme"}
	calls := 0
	if _, err := idempotency.Handle(handlerCtx("k1"), r, t0, req, idempotency.WithholdAnswer, createTeam(s, &calls)); err != nil {
		t.Fatal(err)
	}
	_, err := idempotency.Handle(handlerCtx("k1"), r, t0, req, idempotency.WithholdAnswer, createTeam(s, &calls))
	if errs.KindOf(err) != errs.KindFailedPrecondition || calls != 1 {
		t.Errorf("sent again: %v (handler ran %d times), want FailedPrecondition, once", err, calls)
	}
	kvs, err := s.Scan(ctx, idempotency.Prefix, "", 0)
	if err != nil || len(kvs) != 1 {
		t.Fatalf("records: %v, %v", kvs, err)
	}
	if got := string(kvs[0].Value); strings.Contains(got, "made") {
		t.Errorf("the record holds the answer: %s", got)
	}
}

func testHandleWithoutKey(t *testing.T, s kv.Store) {
	r := idempotency.NewRecords(s)
	req := &scopev1.CreateTeamRequest{TeamId: "acme"}
	calls := 0
	for range 2 {
		if _, err := idempotency.Handle(handlerCtx(""), r, t0, req, idempotency.KeepAnswer, createTeam(s, &calls)); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 2 {
		t.Errorf("without a key: handler ran %d times, want 2", calls)
	}
	ctx := metadata.NewIncomingContext(handlerCtx(""), metadata.Pairs("idempotency-key", "a", "idempotency-key", "b"))
	if _, err := idempotency.Handle(ctx, r, t0, req, idempotency.KeepAnswer, createTeam(s, &calls)); errs.KindOf(err) != errs.KindInvalid {
		t.Errorf("two keys: %v, want invalid", err)
	}
}
