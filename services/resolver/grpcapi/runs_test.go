package grpcapi_test

import (
	"context"
	"crypto/hpke"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	"github.com/ozsecrets/oz/services/resolver/grpcapi"
	"github.com/ozsecrets/oz/services/resolver/runs"
	"github.com/ozsecrets/oz/services/secretstore"
	ssgrpc "github.com/ozsecrets/oz/services/secretstore/grpcapi"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	sskv "github.com/ozsecrets/oz/services/secretstore/kvstore"
)

const runsCanary = "CANARY-grpcapi-runs-e41c"

// Runner tokens of the run tests: the resolver's authenticator maps them
// to runner principals and hands every other token to the Directory.
const (
	runnerAToken = "runner-a-token"
	runnerBToken = "runner-b-token"
)

type authFunc func(ctx context.Context, token string) (*auth.Principal, error)

func (f authFunc) Authenticate(ctx context.Context, token string) (*auth.Principal, error) {
	return f(ctx, token)
}

var _ auth.Authenticator = authFunc(nil)

// runsEnv is a secretstore serving its internal RunSecretsService and a
// resolver serving RunService, both over loopback with mutual TLS from one
// development CA; the resolver dials the secretstore with its own
// certificate, as ozresolverd does.
type runsEnv struct {
	pki        pki.Dir
	svc        *secretstore.Service
	dir        *directory.Directory
	store      *boltkv.Store
	ssAddr     string
	addr       string
	tokens     map[string]string // user → bearer token
	principals map[string]*auth.Principal
	logs       *syncBuffer
}

func newRunsEnv(t *testing.T) *runsEnv {
	t.Helper()
	ctx := context.Background()
	e := &runsEnv{pki: newPKI(t), tokens: map[string]string{}, principals: map[string]*auth.Principal{}, logs: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// The secretstore.
	ssdb, err := sskv.OpenBolt(context.Background(), filepath.Join(t.TempDir(), "secretstore.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ssdb.Close() })
	kr, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	e.svc = secretstore.NewService(secretstore.Config{Store: ssdb, Keyring: kr, Logger: log})
	ssTLS, err := pki.ServerConfig(e.pki.For("secretstore"), e.pki.CA())
	if err != nil {
		t.Fatal(err)
	}
	ss := server.New(server.Config{Name: "secretstore", TLS: ssTLS, Rules: ssgrpc.RunSecretsRules, Logger: log,
		Auth: authFunc(func(context.Context, string) (*auth.Principal, error) {
			return nil, errs.E(errs.KindUnauthenticated, "no tokens here")
		})})
	ssgrpc.RegisterRunSecrets(ss, e.svc)
	e.ssAddr = serveOn(t, ss)

	// The resolver.
	store, err := boltkv.Open(filepath.Join(t.TempDir(), "resolver.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e.store = store
	e.dir = directory.New(resolver.NewStore(store, (&clock{now: t0}).Now))
	_, admin, err := e.dir.BootstrapAdmin(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	e.tokens["admin"] = admin
	sys := as(authenticate(t, e.dir, admin))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, team := range []string{"acme", "beta"} {
		_, err := e.dir.CreateTeam(sys, team)
		must(err)
	}
	for _, m := range []struct {
		team, user string
		role       auth.Role
	}{{"acme", "alice", auth.RoleAdmin}, {"acme", "bob", auth.RoleMember}, {"beta", "carol", auth.RoleAdmin}} {
		_, err := e.dir.CreateUser(sys, m.user, false)
		must(err)
		_, err = e.dir.CreateMembership(sys, m.team, m.user, m.role)
		must(err)
		_, tok, err := e.dir.CreateToken(sys, resolver.UserPrincipal(m.user), 0, "")
		must(err)
		e.tokens[m.user] = tok
		e.principals[m.user] = authenticate(t, e.dir, tok)
	}
	// Identities and environments as records (agents/{team}/{id},
	// environments/{team}/{id}).
	must(store.Apply(ctx, nil, []kv.Write{
		kv.Put("agents/acme/deployer", []byte(`{"team":"acme","id":"deployer","secret_names":["RESTRICTED_KEY"],"create_time":"2026-01-01T00:00:00Z","update_time":"2026-01-01T00:00:00Z"}`)),
		kv.Put("environments/acme/ops-tools", []byte(`{"team":"acme","id":"ops-tools","secret_names":["DEPLOY_TOKEN","PAGERDUTY_API_KEY","MISSING_KEY"],"create_time":"2026-01-01T00:00:00Z","update_time":"2026-01-01T00:00:00Z"}`)),
	}))
	for _, pl := range []struct {
		user, parent string
		names        []string
	}{
		{"alice", "teams/acme", []string{"DEPLOY_TOKEN", "PAGERDUTY_API_KEY", "OTHER_KEY", "RESTRICTED_KEY"}},
		{"alice", "users/alice", []string{"GITHUB_TOKEN"}},
		{"carol", "teams/beta", []string{"BETA_KEY"}},
	} {
		for _, n := range pl.names {
			_, err := e.svc.Create(ctx, e.principals[pl.user], secretstore.CreateRequest{Parent: pl.parent, SecretID: n, Value: []byte(runsValue(pl.parent, n))})
			must(err)
		}
	}
	// A scheduler: the integration that starts acme's user-less runs.
	_, cron, err := e.dir.CreateIntegration(as(e.principals["alice"]), directory.Integration{Team: "acme", ID: "cron", Trigger: resolver.TriggerSchedule})
	must(err)
	e.tokens["cron"] = cron
	e.addr = e.serveResolver(t, e.ssAddr, "resolver")
	return e
}

// start starts a run of acme with token (StartRun over gRPC) and returns
// its ticket.
func (e *runsEnv) start(t *testing.T, c scopev1.RunServiceClient, token string, rc *scopev1.RunContext, runID string) string {
	t.Helper()
	resp, err := c.StartRun(withToken(t, token), &scopev1.StartRunRequest{Parent: "teams/acme", Context: rc, RunId: runID})
	if err != nil {
		t.Fatalf("StartRun: %v", err)
	}
	if !strings.HasPrefix(resp.GetTicket(), runs.TicketPrefix) || resp.GetRun().GetState() != scopev1.RunState_RUN_STATE_STARTED {
		t.Fatalf("StartRun: ticket of %d characters, run %v", len(resp.GetTicket()), resp.GetRun())
	}
	return resp.GetTicket()
}

func runsValue(owner, name string) string { return runsCanary + "|" + owner + "/" + name }

// serveResolver serves RunService (and the Directory's services) with the
// sealer dialing ssAddr with the certificate of cert; it returns the
// address.
func (e *runsEnv) serveResolver(t *testing.T, ssAddr, cert string) string {
	t.Helper()
	clientTLS, err := pki.ClientConfig(e.pki.For(cert), e.pki.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := server.Dial(ssAddr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	tlsCfg, err := pki.ServerConfig(e.pki.For("resolver"), e.pki.CA())
	if err != nil {
		t.Fatal(err)
	}
	runners := map[string]*auth.Principal{
		runnerAToken: {Kind: auth.KindRunner, Name: "runners/runner-a", ID: "runner-a", Teams: map[string]auth.Role{"acme": auth.RoleMember}},
		runnerBToken: {Kind: auth.KindRunner, Name: "runners/runner-b", ID: "runner-b", Teams: map[string]auth.Role{"beta": auth.RoleMember}},
	}
	log := slog.New(slog.NewJSONHandler(e.logs, nil))
	srv := server.New(server.Config{Name: "resolver", TLS: tlsCfg, Rules: grpcapi.Rules,
		Logger: log, OnDenied: grpcapi.OnDenied(e.dir.Store(), log),
		Auth: authFunc(func(ctx context.Context, token string) (*auth.Principal, error) {
			if p, ok := runners[token]; ok {
				return p, nil
			}
			return e.dir.Authenticate(ctx, token)
		})})
	grpcapi.Register(srv, e.dir)
	grpcapi.RegisterRuns(srv, runs.New(e.dir, grpcapi.NewSecretStore(conn)))
	return serveOn(t, srv)
}

func serveOn(t *testing.T, srv *server.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	})
	return lis.Addr().String()
}

// runsClient is RunService at addr, as the gateway reaches it.
func (e *runsEnv) runsClient(t *testing.T, addr string) scopev1.RunServiceClient {
	t.Helper()
	tlsCfg, err := pki.ClientConfig(e.pki.For("gateway"), e.pki.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := server.Dial(addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return scopev1.NewRunServiceClient(conn)
}

// runnerKey is a key as oz exec makes it: ML-KEM-768 + X25519.
func runnerKey(t *testing.T) hpke.PrivateKey {
	t.Helper()
	priv, err := hpke.MLKEM768X25519().GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func recipientOf(priv hpke.PrivateKey) *scopev1.RecipientKey {
	return &scopev1.RecipientKey{KemId: uint32(priv.KEM().ID()), PublicKey: priv.PublicKey().Bytes()}
}

func openRun(t *testing.T, priv hpke.PrivateKey, resp *scopev1.ResolveRunResponse) map[string]string {
	t.Helper()
	s := resp.GetSealed()
	info := "oz-run-v1|" + resp.GetRun().GetName()
	if string(s.GetInfo()) != info {
		t.Fatalf("sealed info %q, want %q", s.GetInfo(), info)
	}
	pt, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), s.GetInfo(), s.GetCiphertext())
	if err != nil {
		t.Fatalf("hpke.Open: %v", err)
	}
	var env scopev1.RunEnvironment
	if err := proto.Unmarshal(pt, &env); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, v := range env.GetVars() {
		out[v.GetName()] = string(v.GetValue())
	}
	return out
}

func injectedNames(run *scopev1.Run) []string {
	var out []string
	for _, s := range run.GetInjected() {
		name := s.GetSecretName()
		if s.GetRedacted() {
			name = "(redacted " + s.GetScope().String() + ")"
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func TestRunService(t *testing.T) {
	e := newRunsEnv(t)
	c := e.runsClient(t, e.addr)
	priv := runnerKey(t)

	// The environment is the allowlist; MISSING_KEY is unresolved. The
	// scheduler starts the run; the runner redeems the ticket without
	// naming the team.
	ticket := e.start(t, c, e.tokens["cron"], &scopev1.RunContext{Environment: "ops-tools"}, "run-ops-1")
	resp, err := c.ResolveRun(withToken(t, runnerAToken), &scopev1.ResolveRunRequest{
		Parent:    "teams/-",
		Ticket:    ticket,
		Recipient: recipientOf(priv),
	})
	if err != nil {
		t.Fatalf("ResolveRun: %v", err)
	}
	run := resp.GetRun()
	if run.GetName() != "teams/acme/runs/run-ops-1" || run.GetResolvedBy() != "runners/runner-a" || run.GetAgent() != "default" ||
		run.GetOutcome() != scopev1.RunOutcome_RUN_OUTCOME_RESOLVED || run.GetAllowlistSource() != scopev1.AllowlistSource_ALLOWLIST_SOURCE_ENVIRONMENT ||
		run.GetState() != scopev1.RunState_RUN_STATE_RESOLVED || run.GetStartedBy() != "teams/acme/integrations/cron" ||
		run.GetContext().GetTrigger() != scopev1.Trigger_TRIGGER_SCHEDULE || run.GetResolveTime() == nil {
		t.Errorf("run: %v", run)
	}
	if got := injectedNames(run); !slices.Equal(got, []string{"DEPLOY_TOKEN", "PAGERDUTY_API_KEY"}) {
		t.Errorf("injected: %v", got)
	}
	if u := run.GetUnresolved(); len(u) != 1 || u[0].GetSecretName() != "MISSING_KEY" || u[0].GetReason() != scopev1.UnresolvedReason_UNRESOLVED_REASON_NOT_FOUND || u[0].GetDetail() == "" {
		t.Errorf("unresolved: %v", u)
	}
	want := map[string]string{"DEPLOY_TOKEN": runsValue("teams/acme", "DEPLOY_TOKEN"), "PAGERDUTY_API_KEY": runsValue("teams/acme", "PAGERDUTY_API_KEY")}
	if got := openRun(t, priv, resp); !maps.Equal(got, want) {
		t.Errorf("opened %d values for %v", len(got), slices.Sorted(maps.Keys(got)))
	}

	// alice's run, started by her: her personal secret, redacted for bob.
	ticket = e.start(t, c, e.tokens["alice"], &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_CLI, Secrets: &scopev1.SecretNameList{Names: []string{"GITHUB_TOKEN", "OTHER_KEY"}}}, "")
	resp, err = c.ResolveRun(withToken(t, runnerAToken), &scopev1.ResolveRunRequest{
		Parent:    "teams/acme",
		Ticket:    ticket,
		Context:   &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_CLI, User: "users/alice"}, // agrees with the ticket
		Recipient: recipientOf(priv),
	})
	if err != nil {
		t.Fatalf("ResolveRun: %v", err)
	}
	aliceRun := resp.GetRun().GetName()
	if got := openRun(t, priv, resp); got["GITHUB_TOKEN"] != runsValue("users/alice", "GITHUB_TOKEN") || len(got) != 2 {
		t.Errorf("alice's run opened %v", slices.Sorted(maps.Keys(got)))
	}
	bobsView, err := c.GetRun(withToken(t, e.tokens["bob"]), &scopev1.GetRunRequest{Name: aliceRun})
	if err != nil {
		t.Fatalf("GetRun: %v", err)
	}
	// bob is shown the decision on the team's secrets alone, the same
	// whether or not alice has a GITHUB_TOKEN (the team has none).
	if got := injectedNames(bobsView.GetRun()); !slices.Equal(got, []string{"OTHER_KEY"}) {
		t.Errorf("bob's view: %v", got)
	}
	if u := bobsView.GetRun().GetUnresolved(); len(u) != 1 || u[0].GetSecretName() != "GITHUB_TOKEN" || u[0].GetReason() != scopev1.UnresolvedReason_UNRESOLVED_REASON_NOT_FOUND {
		t.Errorf("bob's view of the unresolved: %v", u)
	}
	if got := bobsView.GetRun().GetContext().GetSecrets().GetNames(); !slices.Equal(got, []string{"GITHUB_TOKEN", "OTHER_KEY"}) {
		t.Errorf("bob's view of the context: %v", got)
	}
	alicesView, err := c.GetRun(withToken(t, e.tokens["alice"]), &scopev1.GetRunRequest{Name: aliceRun})
	if err != nil {
		t.Fatal(err)
	}
	if got := injectedNames(alicesView.GetRun()); !slices.Equal(got, []string{"GITHUB_TOKEN", "OTHER_KEY"}) {
		t.Errorf("alice's view: %v", got)
	}

	// Lists, newest first, with filters.
	list, err := c.ListRuns(withToken(t, e.tokens["bob"]), &scopev1.ListRunsRequest{Parent: "teams/acme"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetRuns()) != 2 || list.GetRuns()[1].GetRunId() != "run-ops-1" {
		t.Errorf("list: %v", list.GetRuns())
	}
	if b, _ := protojson.Marshal(list); strings.Contains(string(b), "GITHUB_TOKEN\",\"scope") || strings.Contains(string(b), `"owner":"users/alice"`) {
		t.Errorf("bob's list names alice's personal secret: %s", b)
	}
	list, err = c.ListRuns(withToken(t, e.tokens["bob"]), &scopev1.ListRunsRequest{Parent: "teams/acme", Trigger: scopev1.Trigger_TRIGGER_SCHEDULE})
	if err != nil || len(list.GetRuns()) != 1 || list.GetRuns()[0].GetRunId() != "run-ops-1" {
		t.Errorf("list --trigger schedule: %v, %v", list.GetRuns(), err)
	}

	// Explain, as bob, for alice: her personal secret is not named.
	ex, err := c.ExplainRun(withToken(t, e.tokens["bob"]), &scopev1.ExplainRunRequest{
		Parent:  "teams/acme",
		Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_CLI, User: "alice"},
	})
	if err != nil {
		t.Fatalf("ExplainRun: %v", err)
	}
	if b, _ := protojson.Marshal(ex); strings.Contains(string(b), "GITHUB_TOKEN") || !strings.Contains(string(b), "DECISION_EXCLUDED_RESTRICTED") {
		t.Errorf("bob's explanation: %s", b)
	}
	ex, err = c.ExplainRun(withToken(t, e.tokens["bob"]), &scopev1.ExplainRunRequest{
		Parent:  "teams/acme",
		Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_SCHEDULE, Agent: "deployer", Secrets: &scopev1.SecretNameList{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if x := ex.GetExplanation(); x.GetAgent() != "deployer" || x.GetAllowlistSource() != scopev1.AllowlistSource_ALLOWLIST_SOURCE_RUN ||
		x.GetContext().GetSecrets() == nil || len(x.GetAllowlist()) != 0 || x.GetWouldFailStrict() || len(x.GetNotes()) == 0 {
		t.Errorf("explanation with an empty run list: %v", x)
	}

	// A strict run with an unresolved reference: recorded, no values.
	ticket = e.start(t, c, e.tokens["cron"], &scopev1.RunContext{Strict: true, Secrets: &scopev1.SecretNameList{Names: []string{"OTHER_KEY", "NOPE"}}}, "")
	resp, err = c.ResolveRun(withToken(t, runnerAToken), &scopev1.ResolveRunRequest{
		Parent:    "teams/acme",
		Ticket:    ticket,
		Recipient: recipientOf(priv),
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSealed() != nil || resp.GetRun().GetOutcome() != scopev1.RunOutcome_RUN_OUTCOME_FAILED_STRICT || len(resp.GetRun().GetInjected()) != 0 ||
		resp.GetRun().GetState() != scopev1.RunState_RUN_STATE_FAILED {
		t.Errorf("strict run: %v", resp)
	}

	// In flight: the two resolved runs; a rotation flags the one holding
	// the previous value; each ends once, reported by its runner.
	inFlight := func() []string {
		t.Helper()
		list, err := c.ListRuns(withToken(t, e.tokens["bob"]), &scopev1.ListRunsRequest{Parent: "teams/acme", InFlight: true})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range list.GetRuns() {
			id := r.GetRunId()
			if r.GetHoldsStaleValues() {
				id += "(stale)"
			}
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return ids
	}
	aliceID := strings.TrimPrefix(aliceRun, "teams/acme/runs/")
	if got := inFlight(); !slices.Equal(got, []string{aliceID, "run-ops-1"}) {
		t.Errorf("in flight: %v", got)
	}
	if _, err := e.svc.Update(context.Background(), e.principals["alice"], secretstore.UpdateRequest{
		Name: "teams/acme/secrets/DEPLOY_TOKEN", Value: []byte(runsValue("teams/acme", "DEPLOY_TOKEN") + "-2"), UpdateMask: []string{"value"}}); err != nil {
		t.Fatal(err)
	}
	if got := inFlight(); !slices.Equal(got, []string{aliceID, "run-ops-1(stale)"}) {
		t.Errorf("in flight after rotating DEPLOY_TOKEN: %v", got)
	}
	ops, err := c.GetRun(withToken(t, e.tokens["bob"]), &scopev1.GetRunRequest{Name: "teams/acme/runs/run-ops-1"})
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]scopev1.InjectedValueState{}
	for _, s := range ops.GetRun().GetInjected() {
		states[s.GetSecretName()] = s.GetValueState()
	}
	if states["DEPLOY_TOKEN"] != scopev1.InjectedValueState_INJECTED_VALUE_STATE_ROTATED || states["PAGERDUTY_API_KEY"] != scopev1.InjectedValueState_INJECTED_VALUE_STATE_CURRENT {
		t.Errorf("value states of run-ops-1: %v", states)
	}
	end := &scopev1.EndRunRequest{Name: "teams/acme/runs/run-ops-1", ExitCode: 3, Duration: durationpb.New(1500 * time.Millisecond)}
	if _, err := c.EndRun(withToken(t, runnerBToken), end); status.Code(err) != codes.PermissionDenied {
		t.Errorf("EndRun by another team's runner: %v", err)
	}
	if _, err := c.EndRun(withToken(t, e.tokens["alice"]), end); status.Code(err) != codes.PermissionDenied {
		t.Errorf("EndRun by a person: %v", err)
	}
	ended, err := c.EndRun(withToken(t, runnerAToken), end)
	if err != nil {
		t.Fatal(err)
	}
	if r := ended.GetRun(); r.GetState() != scopev1.RunState_RUN_STATE_ENDED || r.GetEnd().GetExitCode() != 3 ||
		r.GetEnd().GetDuration().AsDuration() != 1500*time.Millisecond || r.GetEndTime() == nil {
		t.Errorf("ended run: %v", r)
	}
	if _, err := c.EndRun(withToken(t, runnerAToken), end); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("EndRun twice: %v", err)
	}
	if got := inFlight(); !slices.Equal(got, []string{aliceID}) {
		t.Errorf("in flight after run-ops-1 ended: %v", got)
	}

	for _, out := range []string{e.logs.String(), fmt.Sprint(list, ex, bobsView, alicesView)} {
		if strings.Contains(out, runsCanary) {
			t.Fatalf("a planted value appeared: %s", out)
		}
	}
}

func TestRunServiceRefusals(t *testing.T) {
	e := newRunsEnv(t)
	c := e.runsClient(t, e.addr)
	rcpt := recipientOf(runnerKey(t))
	sched := &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_SCHEDULE}
	ticket := e.start(t, c, e.tokens["cron"], sched, "run-refusals")
	resolve := func(token string, req *scopev1.ResolveRunRequest) error {
		_, err := c.ResolveRun(withToken(t, token), req)
		return err
	}
	start := func(token string, req *scopev1.StartRunRequest) error {
		_, err := c.StartRun(withToken(t, token), req)
		return err
	}
	zero := &scopev1.RecipientKey{KemId: 0x0020, PublicKey: make([]byte, 32)} // low order: cannot be encapsulated to
	tests := []struct {
		name  string
		err   error
		code  codes.Code
		field string
	}{
		{"NoToken", resolve("", &scopev1.ResolveRunRequest{Parent: "teams/acme", Ticket: ticket, Recipient: rcpt}), codes.Unauthenticated, ""},
		{"Person", resolve(e.tokens["alice"], &scopev1.ResolveRunRequest{Parent: "teams/acme", Ticket: ticket, Recipient: rcpt}), codes.PermissionDenied, ""},
		{"Integration", resolve(e.tokens["cron"], &scopev1.ResolveRunRequest{Parent: "teams/acme", Ticket: ticket, Recipient: rcpt}), codes.PermissionDenied, ""},
		{"RunnerOfAnotherTeam", resolve(runnerBToken, &scopev1.ResolveRunRequest{Parent: "teams/-", Ticket: ticket, Recipient: rcpt}), codes.PermissionDenied, ""},
		{"TicketOfAnotherTeam", resolve(runnerAToken, &scopev1.ResolveRunRequest{Parent: "teams/beta", Ticket: ticket, Recipient: rcpt}), codes.PermissionDenied, ""},
		{"NoTicket", resolve(runnerAToken, &scopev1.ResolveRunRequest{Parent: "teams/acme", Context: sched, Recipient: rcpt}), codes.PermissionDenied, ""},
		{"BadParent", resolve(runnerAToken, &scopev1.ResolveRunRequest{Parent: "acme", Ticket: ticket, Recipient: rcpt}), codes.InvalidArgument, "parent"},
		{"WidenedContext", resolve(runnerAToken, &scopev1.ResolveRunRequest{Parent: "teams/acme", Ticket: ticket, Context: &scopev1.RunContext{Agent: "deployer"}, Recipient: rcpt}), codes.PermissionDenied, ""},
		{"NoRecipient", resolve(runnerAToken, &scopev1.ResolveRunRequest{Parent: "teams/acme", Ticket: ticket}), codes.InvalidArgument, "recipient"},
		{"LowOrderRecipient", resolve(runnerAToken, &scopev1.ResolveRunRequest{Parent: "teams/acme", Ticket: ticket, Recipient: zero}), codes.InvalidArgument, "recipient.public_key"},
		{"StartAsRunner", start(runnerAToken, &scopev1.StartRunRequest{Parent: "teams/acme", Context: sched}), codes.PermissionDenied, ""},
		{"StartIntegrationOtherTrigger", start(e.tokens["cron"], &scopev1.StartRunRequest{Parent: "teams/acme", Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_INTEGRATION}}), codes.PermissionDenied, ""},
		{"StartUserInitiatedWithoutUser", start(e.tokens["cron"], &scopev1.StartRunRequest{Parent: "teams/acme", Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_SLACK}}), codes.InvalidArgument, "context.user"},
		{"StartPersonSlack", start(e.tokens["alice"], &scopev1.StartRunRequest{Parent: "teams/acme", Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_SLACK}}), codes.PermissionDenied, ""},
		{"StartForAnotherUser", start(e.tokens["alice"], &scopev1.StartRunRequest{Parent: "teams/acme", Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_CLI, User: "bob"}}), codes.PermissionDenied, ""},
		{"StartUnknownIdentity", start(e.tokens["cron"], &scopev1.StartRunRequest{Parent: "teams/acme", Context: &scopev1.RunContext{Agent: "ghost"}}), codes.InvalidArgument, "context.agent"},
		{"StartRestrictedIdentityAsMember", start(e.tokens["bob"], &scopev1.StartRunRequest{Parent: "teams/acme", Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_CLI, Agent: "deployer"}}), codes.PermissionDenied, ""},
		{"StartOtherTeam", start(e.tokens["carol"], &scopev1.StartRunRequest{Parent: "teams/acme", Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_CLI}}), codes.PermissionDenied, ""},
		{"StartLongTTL", start(e.tokens["alice"], &scopev1.StartRunRequest{Parent: "teams/acme", Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_CLI}, Ttl: durationpb.New(2 * time.Hour)}), codes.InvalidArgument, "ttl"},
		{"StartWithStartToken", start(e.tokens["alice"], &scopev1.StartRunRequest{Parent: "teams/acme", Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_CLI, StartToken: e.tokens["alice"]}}), codes.InvalidArgument, "context.start_token"},
		{"BadRunName", func() error {
			_, err := c.GetRun(withToken(t, e.tokens["bob"]), &scopev1.GetRunRequest{Name: "teams/acme/runs/"})
			return err
		}(), codes.InvalidArgument, "name"},
		{"GetRunOtherTeam", func() error {
			_, err := c.GetRun(withToken(t, e.tokens["carol"]), &scopev1.GetRunRequest{Name: "teams/acme/runs/nope"})
			return err
		}(), codes.PermissionDenied, ""},
		{"GetRunMissing", func() error {
			_, err := c.GetRun(withToken(t, e.tokens["bob"]), &scopev1.GetRunRequest{Name: "teams/acme/runs/nope"})
			return err
		}(), codes.NotFound, ""},
		{"ExplainAsRunner", func() error {
			_, err := c.ExplainRun(withToken(t, runnerAToken), &scopev1.ExplainRunRequest{Parent: "teams/acme", Context: sched})
			return err
		}(), codes.PermissionDenied, ""},
		{"ExplainWithStartToken", func() error {
			_, err := c.ExplainRun(withToken(t, e.tokens["alice"]), &scopev1.ExplainRunRequest{Parent: "teams/acme",
				Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_CLI, User: "alice", StartToken: e.tokens["alice"]}})
			return err
		}(), codes.InvalidArgument, "context.start_token"},
		{"ListBadTime", func() error {
			_, err := c.ListRuns(withToken(t, e.tokens["bob"]), &scopev1.ListRunsRequest{Parent: "teams/acme", StartTime: &timestamppb.Timestamp{Nanos: -1}})
			return err
		}(), codes.InvalidArgument, "start_time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.err, tt.code)
			if tt.field != "" && fieldOf(tt.err) != tt.field {
				t.Errorf("field: got %q, want %q", fieldOf(tt.err), tt.field)
			}
			if strings.Contains(tt.err.Error(), e.tokens["alice"]) || strings.Contains(tt.err.Error(), ticket) {
				t.Errorf("the error echoes a token or the ticket")
			}
		})
	}
	if kvs, _ := e.store.Scan(context.Background(), "runs/", "", 0); len(kvs) != 1 {
		t.Errorf("refused starts were recorded: %d runs, want the one started", len(kvs))
	}
	if r, err := c.GetRun(withToken(t, e.tokens["bob"]), &scopev1.GetRunRequest{Name: "teams/acme/runs/run-refusals"}); err != nil || r.GetRun().GetState() != scopev1.RunState_RUN_STATE_STARTED {
		t.Errorf("after refused redemptions the run is %v (%v), want still started", r.GetRun().GetState(), err)
	}
}

// TestRunServiceSecretstoreFailures: an unreachable secretstore is
// Unavailable; a secretstore refusing the resolver's connection is an
// internal error, never the secretstore's PermissionDenied passed on.
// Nothing is recorded either way.
func TestRunServiceSecretstoreFailures(t *testing.T) {
	e := newRunsEnv(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := lis.Addr().String()
	lis.Close()
	for _, tt := range []struct {
		name   string
		ssAddr string
		cert   string
		code   codes.Code
	}{
		{"Unreachable", closed, "resolver", codes.Unavailable},
		{"WrongCertificate", e.ssAddr, "gateway", codes.Internal},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := e.runsClient(t, e.serveResolver(t, tt.ssAddr, tt.cert))
			ctx, cancel := context.WithTimeout(withToken(t, runnerAToken), 5*time.Second)
			defer cancel()
			ticket := e.start(t, c, e.tokens["cron"], &scopev1.RunContext{}, "")
			_, err := c.ResolveRun(ctx, &scopev1.ResolveRunRequest{
				Parent: "teams/acme", Ticket: ticket, Recipient: recipientOf(runnerKey(t)),
			})
			wantCode(t, err, tt.code)
			_, err = c.ExplainRun(withToken(t, e.tokens["bob"]), &scopev1.ExplainRunRequest{
				Parent: "teams/acme", Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_SCHEDULE},
			})
			wantCode(t, err, tt.code)
		})
	}
	kvs, _ := e.store.Scan(context.Background(), "runs/", "", 0)
	for _, kv := range kvs {
		if !strings.Contains(string(kv.Value), `"state":"started"`) {
			t.Errorf("a failed resolution was recorded: %s", kv.Key)
		}
	}
}

// TestTriggerNumbers: the domain's triggers have the wire enum's numbers
// and names.
func TestTriggerNumbers(t *testing.T) {
	for _, tr := range resolver.Triggers {
		if got, want := scopev1.Trigger(tr).String(), "TRIGGER_"+strings.ToUpper(tr.String()); got != want {
			t.Errorf("trigger %d: wire %s, want %s", tr, got, want)
		}
	}
	if n := len(scopev1.Trigger_name); n != len(resolver.Triggers)+1 {
		t.Errorf("the wire has %d triggers, the domain %d", n-1, len(resolver.Triggers))
	}
}
