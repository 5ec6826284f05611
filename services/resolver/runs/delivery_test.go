package runs_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/audit/audittest"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	rsgrpc "github.com/ozsecrets/oz/services/resolver/grpcapi"
	"github.com/ozsecrets/oz/services/resolver/runs"
	ssgrpc "github.com/ozsecrets/oz/services/secretstore/grpcapi"
)

// shipping is an outbox.Shipper running over a Directory's outbox.
type shipping struct {
	reg  *prometheus.Registry
	stop func()
}

func ship(t *testing.T, d storer, a *audittest.Server) *shipping {
	t.Helper()
	s := &shipping{reg: prometheus.NewRegistry()}
	sh := outbox.New(outbox.Config{
		Source:       d.Store().Outbox(),
		Client:       internalapiv1.NewAuditIngestServiceClient(a.Dial(t, "resolver")),
		Emitter:      resolver.Emitter,
		MinBackoff:   10 * time.Millisecond,
		MaxBackoff:   100 * time.Millisecond,
		PollInterval: 50 * time.Millisecond,
		CallTimeout:  2 * time.Second,
		Registerer:   s.reg,
	})
	d.Store().Outbox().OnCommit(sh.Notify)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sh.Run(ctx)
	}()
	stopped := false
	s.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(s.stop)
	return s
}

func waitBacklog(t *testing.T, d storer, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := backlog(t, d)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog: got %d, want %d", n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// chain returns every event of a chain ("system", "teams/acme"), in
// chain order, and checks that it verifies.
func chain(t *testing.T, a *audittest.Server, parent string) []*auditv1.Event {
	t.Helper()
	ctx := context.Background()
	root := audittest.Principals["sysadmin"]
	v, err := a.Service().Verify(ctx, root, parent)
	if err != nil {
		t.Fatalf("Verify %s: %v", parent, err)
	}
	if !v.Valid {
		t.Fatalf("Verify %s: broken at %+v", parent, v.Break)
	}
	var out []*auditv1.Event
	token := ""
	for {
		page, err := a.Service().Export(ctx, root, parent, 1000, token)
		if err != nil {
			t.Fatalf("Export %s: %v", parent, err)
		}
		out = append(out, page.Events...)
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	if int64(len(out)) != v.Verified {
		t.Fatalf("%s: exported %d events, verified %d", parent, len(out), v.Verified)
	}
	return out
}

// TestDeliveryWhileAuditIsDown: with the audit service stopped, changes
// and run resolutions go on and their events wait in the outbox, also
// across a restart of the resolver; once the audit service is back, every
// event arrives exactly once, each chain in the order the events were
// made, and every chain verifies.
func TestDeliveryWhileAuditIsDown(t *testing.T) {
	f := newRunsFixture(t)
	a := audittest.Start(t, audittest.Options{})
	s1 := ship(t, f.dir, a)
	waitBacklog(t, f.dir, 0) // the fixture's events
	before := map[string]int{}
	for _, parent := range []string{"system", "teams/acme", "teams/beta"} {
		before[parent] = len(chain(t, a, parent))
	}
	if before["system"] == 0 || before["teams/acme"] == 0 {
		t.Fatalf("fixture events: got %v, want some in the system chain and acme's", before)
	}

	a.Stop()
	rs := f.runs
	dir := both{Directory: f.dir, Service: rs}
	ops := func(round, n int) {
		for i := range n {
			id := fmt.Sprintf("r%d-%d", round, i)
			check(t, firstErr(dir.CreateUser(f.sys, "u-"+id, false)))
			check(t, firstErr(dir.CreateMembership(f.sys, "acme", "u-"+id, auth.RoleMember)))
			check(t, firstErr(dir.CreateEnvironment(f.alice, runs.Environment{Team: "acme", ID: "env-" + id, SecretNames: []string{"DEPLOY_TOKEN"}})))
			if _, err := runs.RunsTestResolve(f.runnerA, rs, "acme",
				runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "env-" + id}, "", f.recipient()); err != nil {
				t.Fatal(err)
			}
			tok, _, err := dir.CreateToken(f.sys, resolver.UserPrincipal("u-"+id), 0, "")
			check(t, err)
			check(t, firstErr(dir.RevokeToken(f.sys, tok.ID)))
			check(t, dir.DeleteEnvironment(f.alice, "acme", "env-"+id, ""))
			check(t, firstErr(dir.CreateAgent(f.carol, runs.Agent{Team: "beta", ID: "bot-" + id})))
		}
	}
	const perRound = 9 // events per op round (the run: run.start and run.resolve)
	ops(1, 20)
	if n := backlog(t, f.dir); n != 20*perRound {
		t.Fatalf("backlog while the audit service is down: got %d, want %d", n, 20*perRound)
	}
	// The shipper saw the backlog (it looks at every retry).
	deadline := time.Now().Add(10 * time.Second)
	for gaugeValue(t, s1.reg, "oz_audit_outbox_backlog") != 20*perRound {
		if time.Now().After(deadline) {
			t.Fatalf("backlog gauge: got %v, want %d", gaugeValue(t, s1.reg, "oz_audit_outbox_backlog"), 20*perRound)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The resolver restarts (a new Directory on the same store, a new
	// epoch) and goes on while the audit service is still down.
	s1.stop()
	d2 := directory.New(resolver.NewStore(f.store, f.clk.Now))
	rs = runs.New(d2, rsgrpc.SecretStoreOf(ssgrpc.NewRunSecrets(f.svc)))
	dir = both{Directory: d2, Service: rs}
	ops(2, 20)
	pending, err := dir.Store().Outbox().Pending(context.Background(), 100000)
	check(t, err)
	if len(pending) != 40*perRound {
		t.Fatalf("outbox after the restart: got %d events, want %d", len(pending), 40*perRound)
	}

	a.Restart()
	ship(t, dir, a)
	waitBacklog(t, dir, 0)

	// Exactly once, in order, per chain.
	byChain := map[string][]string{}
	for _, ev := range pending {
		parent := "system"
		if ev.GetTeam() != "" {
			parent = "teams/" + ev.GetTeam()
		}
		byChain[parent] = append(byChain[parent], ev.GetId())
	}
	for _, parent := range []string{"system", "teams/acme", "teams/beta"} {
		evs := chain(t, a, parent)
		var got []string
		for _, ev := range evs[before[parent]:] {
			got = append(got, ev.GetId())
		}
		if !slices.Equal(got, byChain[parent]) {
			t.Errorf("%s: got %d events after the outage, want the %d of the outbox in its order", parent, len(got), len(byChain[parent]))
		}
		for _, ev := range evs {
			noCanary(t, "audit event "+ev.GetId(), []byte(ev.String()))
			if strings.Contains(ev.String(), f.aliceToken) {
				t.Fatalf("audit event %s holds a token", ev.GetId())
			}
		}
	}
	resolves := 0
	for _, id := range byChain["teams/acme"] {
		for _, ev := range pending {
			if ev.GetId() == id && ev.GetAction() == "run.resolve" {
				resolves++
			}
		}
	}
	if resolves != 40 {
		t.Errorf("got %d run.resolve events in acme's chain, want 40", resolves)
	}
}

func firstErr[T any](_ T, err error) error { return err }

// gaugeValue is the value of the gauge name in reg (-1 when absent).
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}
