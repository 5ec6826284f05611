package grpcapi_test

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/audit/grpcapi"
	"github.com/ozsecrets/oz/services/audit/inventory"
	auditkv "github.com/ozsecrets/oz/services/audit/kvstore"
	"github.com/ozsecrets/oz/services/internal/auditevent"
	"github.com/ozsecrets/oz/services/internal/auth"
	resolverbolt "github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	rsgrpc "github.com/ozsecrets/oz/services/resolver/grpcapi"
	"github.com/ozsecrets/oz/services/resolver/resolvertest"
	"github.com/ozsecrets/oz/services/resolver/runs"
	"github.com/ozsecrets/oz/services/secretstore"
	ssgrpc "github.com/ozsecrets/oz/services/secretstore/grpcapi"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	sskv "github.com/ozsecrets/oz/services/secretstore/kvstore"
)

// testClock is the clock every service of a reviewFixture shares.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// t0 is when the fixture's story starts; day(n) is n days later.
var t0 = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

func day(n int) time.Time { return t0.Add(time.Duration(n) * 24 * time.Hour) }

// reviewFixture runs the real resolver, secretstore and audit service,
// each on its own loopback port with its own certificate (mutual TLS), on
// bbolt files, authenticating bearer tokens through the resolver — the
// audit service reaches the other two as it does in production.
type reviewFixture struct {
	clk     *testClock
	dir     *directory.Directory
	runs    *runs.Service
	secrets *secretstore.Service
	audit   *audit.Service
	client  auditv1.AuditServiceClient // as the gateway

	tokens map[string]string // user → bearer token
	users  map[string]*auth.Principal
	sys    context.Context
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
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return lis.Addr().String()
}

func dialAs(t *testing.T, p pki.Dir, cert, addr string) *grpc.ClientConn {
	t.Helper()
	tlsCfg, err := pki.ClientConfig(p.For(cert), p.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := server.Dial(addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func serverTLS(t *testing.T, p pki.Dir, name string) *server.Config {
	t.Helper()
	tlsCfg, err := pki.ServerConfig(p.For(name), p.CA())
	if err != nil {
		t.Fatal(err)
	}
	return &server.Config{Name: name, TLS: tlsCfg, Logger: slog.New(slog.DiscardHandler)}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newReviewFixture(t *testing.T) *reviewFixture {
	t.Helper()
	tmp := t.TempDir()
	p := pki.Dir(filepath.Join(tmp, "pki"))
	must(t, pki.EnsureDev(p))
	f := &reviewFixture{clk: &testClock{now: t0}, tokens: map[string]string{}, users: map[string]*auth.Principal{}}

	// The resolver: directory, identities, environments, token
	// authentication.
	rstore, err := resolverbolt.Open(filepath.Join(tmp, "resolver.db"), time.Second)
	must(t, err)
	t.Cleanup(func() { rstore.Close() })
	f.dir = directory.New(resolver.NewStore(rstore, f.clk.Now))
	// The fixture's clock runs 200 days ahead; its tokens must outlive it.
	must(t, f.dir.SetTokenPolicy(directory.TokenPolicy{MaxLifetime: 10 * 365 * 24 * time.Hour}))
	f.runs = runs.New(f.dir, resolvertest.NoSecrets{}) // identities and environments only: nothing is resolved
	cfg := serverTLS(t, p, "resolver")
	cfg.Rules, cfg.Auth = rsgrpc.Rules, f.dir
	rsrv := server.New(*cfg)
	rsgrpc.Register(rsrv, f.dir)
	rsgrpc.RegisterRuns(rsrv, f.runs)
	resolverAddr := serveOn(t, rsrv)

	// The secretstore, authenticating through the resolver.
	sstore, err := sskv.OpenBolt(context.Background(), filepath.Join(tmp, "secretstore.db"), 0)
	must(t, err)
	t.Cleanup(func() { sstore.Close() })
	kr, err := keyring.Generate()
	must(t, err)
	f.secrets = secretstore.NewService(secretstore.Config{Store: sstore, Keyring: kr, Now: f.clk.Now})
	cfg = serverTLS(t, p, "secretstore")
	cfg.Rules, cfg.Auth = ssgrpc.Rules, auth.NewRemote(dialAs(t, p, "secretstore", resolverAddr))
	ssrv := server.New(*cfg)
	ssgrpc.Register(ssrv, f.secrets)
	secretstoreAddr := serveOn(t, ssrv)

	// The audit service, as ozauditd wires it.
	akv, _, err := auditkv.OpenBoltKV(filepath.Join(tmp, "audit.db"), 0)
	must(t, err)
	t.Cleanup(func() { akv.Close() })
	astore, err := auditkv.New(context.Background(), akv, auditkv.BoltOptions)
	must(t, err)
	resolverConn := dialAs(t, p, "audit", resolverAddr)
	f.audit = audit.NewService(audit.Config{
		Store: astore, Now: f.clk.Now,
		Inventory: inventory.New(dialAs(t, p, "audit", secretstoreAddr), resolverConn),
	})
	cfg = serverTLS(t, p, "audit")
	cfg.Rules, cfg.Auth = grpcapi.Rules, auth.NewRemote(resolverConn)
	cfg.OnDenied = grpcapi.OnDenied(f.audit, nil)
	asrv := server.New(*cfg)
	grpcapi.Register(asrv, f.audit)
	f.client = auditv1.NewAuditServiceClient(dialAs(t, p, "gateway", serveOn(t, asrv)))

	// The directory: acme with alice and dave (admins) and bob (member);
	// beta with carol (admin); root, a system admin in no team.
	ctx := context.Background()
	_, rootToken, err := f.dir.BootstrapAdmin(ctx, "root")
	must(t, err)
	f.sys = f.login(t, "root", rootToken)
	for _, team := range []string{"acme", "beta"} {
		_, err := f.dir.CreateTeam(f.sys, team)
		must(t, err)
	}
	for _, m := range []struct {
		team, user string
		role       auth.Role
	}{{"acme", "alice", auth.RoleAdmin}, {"acme", "dave", auth.RoleAdmin}, {"acme", "bob", auth.RoleMember}, {"beta", "carol", auth.RoleAdmin}} {
		_, err := f.dir.CreateUser(f.sys, m.user, false)
		must(t, err)
		_, err = f.dir.CreateMembership(f.sys, m.team, m.user, m.role)
		must(t, err)
		_, tok, err := f.dir.CreateToken(f.sys, resolver.UserPrincipal(m.user), 0, "")
		must(t, err)
		f.login(t, m.user, tok)
	}
	return f
}

// login authenticates user's token and keeps both.
func (f *reviewFixture) login(t *testing.T, user, token string) context.Context {
	t.Helper()
	p, err := f.dir.Authenticate(context.Background(), token)
	must(t, err)
	f.tokens[user], f.users[user] = token, p
	return auth.WithPrincipal(context.Background(), p)
}

func (f *reviewFixture) as(user string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+f.tokens[user], "x-oz-client", "cli")
}

// create stores a secret at day n, as user.
func (f *reviewFixture) create(t *testing.T, n int, user, parent, name string) {
	t.Helper()
	f.clk.set(day(n))
	_, err := f.secrets.Create(context.Background(), f.users[user], secretstore.CreateRequest{Parent: parent, SecretID: name, Value: []byte("v-" + name)})
	must(t, err)
}

// resolved appends a run.resolve of team at day n (the audit clock set to
// the same time), injecting the given team secrets at version 1.
func (f *reviewFixture) resolved(t *testing.T, n int, team, runID string, outcome auditv1.Outcome, names ...string) {
	t.Helper()
	f.clk.set(day(n))
	details := map[string]string{audit.DetailInjectedPersonalCount: "1", audit.DetailTrigger: "cli", audit.DetailAgent: "default"}
	for _, name := range names {
		details[audit.DetailInjectedPrefix+name] = "1"
	}
	_, err := f.audit.Append(context.Background(), "resolver", []*auditv1.Event{{
		Id: "resolver-test-" + runID, Time: timestamppb.New(day(n)),
		Actor:  &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_RUNNER, Name: "runners/ci", Client: "runner"},
		Action: audit.ActionRunResolve, Resource: "teams/" + team + "/runs/" + runID, Team: team,
		Outcome: outcome, RunId: runID, Details: details,
	}})
	must(t, err)
}

// filler appends n events of no interest to acme's chain at day d, so a
// scan must cross page boundaries.
func (f *reviewFixture) filler(t *testing.T, d, n int) {
	t.Helper()
	f.clk.set(day(d))
	for start := 0; start < n; start += audit.MaxBatch {
		var evs []*auditv1.Event
		for i := start; i < min(n, start+audit.MaxBatch); i++ {
			evs = append(evs, &auditv1.Event{
				Id: fmt.Sprintf("secretstore-filler-%d-%d", d, i), Time: timestamppb.New(day(d)),
				Actor:  &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/alice", Client: "cli"},
				Action: "agent.update", Resource: "teams/acme/agents/default", Team: "acme", Outcome: auditv1.Outcome_OUTCOME_OK,
			})
		}
		_, err := f.audit.Append(context.Background(), "secretstore", evs)
		must(t, err)
	}
}

// row is what a test checks of a SecretReview.
type row struct {
	name         string // "SCOPE/ID": "team/API_KEY", "personal/SSH_KEY"
	lastInjected time.Time
	lastRun      string
	refs         string // agents then environments, by id
	flags        string
}

func rowOf(r *auditv1.SecretReview) row {
	scope := map[secretsv1.Scope]string{secretsv1.Scope_SCOPE_TEAM: "team", secretsv1.Scope_SCOPE_PERSONAL: "personal"}[r.GetScope()]
	out := row{name: scope + "/" + r.GetSecretId(), lastRun: r.GetLastInjectRunId()}
	if r.GetLastInjectTime() != nil {
		out.lastInjected = r.GetLastInjectTime().AsTime()
	}
	var refs []string
	for _, a := range r.GetAgents() {
		refs = append(refs, "agent:"+a[strings.LastIndexByte(a, '/')+1:])
	}
	for _, e := range r.GetEnvironments() {
		refs = append(refs, "env:"+e[strings.LastIndexByte(e, '/')+1:])
	}
	out.refs = strings.Join(refs, ",")
	var flags []string
	for _, fl := range r.GetFlags() {
		flags = append(flags, strings.ToLower(strings.TrimPrefix(fl.String(), "REVIEW_FLAG_")))
	}
	out.flags = strings.Join(flags, ",")
	return out
}

func TestReviewSecrets(t *testing.T) {
	f := newReviewFixture(t)
	alice, dave := f.as("alice"), f.as("dave")
	ctx := auth.WithPrincipal(context.Background(), f.users["alice"])

	// Day 0: team secrets, personal secrets, an identity and an
	// environment referencing names of which some do not exist.
	for _, name := range []string{"OLD_UNUSED", "STALE_USED", "ROTATED", "RESTRICTED_KEY", "RECREATED", "GITHUB_TOKEN"} {
		f.create(t, 0, "alice", "teams/acme", name)
	}
	f.create(t, 0, "alice", "users/alice", "GITHUB_TOKEN")
	f.create(t, 0, "alice", "users/alice", "ALICE_ONLY")
	f.create(t, 0, "bob", "users/bob", "BOB_ONLY")
	f.create(t, 0, "dave", "users/dave", "DAVE_KEY")
	f.create(t, 0, "carol", "teams/beta", "BETA_KEY")
	_, err := f.runs.CreateAgent(ctx, runs.Agent{Team: "acme", ID: "deployer", SecretNames: []string{"RESTRICTED_KEY", "GHOST"}})
	must(t, err)
	_, err = f.runs.CreateEnvironment(ctx, runs.Environment{Team: "acme", ID: "ops-tools", SecretNames: []string{"STALE_USED", "MISSING_KEY", "GITHUB_TOKEN"}})
	must(t, err)

	// Day 10: a run receives RECREATED (which is then deleted and created
	// again) and RESTRICTED_KEY. Then enough events to cross scan pages.
	f.resolved(t, 10, "acme", "r-old", auditv1.Outcome_OUTCOME_OK, "RECREATED", "RESTRICTED_KEY")
	f.filler(t, 100, 2500)
	f.create(t, 150, "alice", "teams/acme", "IDLE")
	f.resolved(t, 160, "acme", "r-idle", auditv1.Outcome_OUTCOME_OK, "IDLE")
	f.clk.set(day(190))
	must(t, f.secrets.Delete(context.Background(), f.users["alice"], secretstore.DeleteRequest{Name: "teams/acme/secrets/RECREATED"}))
	f.create(t, 190, "alice", "teams/acme", "RECREATED")
	f.clk.set(day(195))
	_, err = f.secrets.Update(context.Background(), f.users["alice"], secretstore.UpdateRequest{Name: "teams/acme/secrets/ROTATED", Value: []byte("v2")})
	must(t, err)
	f.create(t, 196, "alice", "teams/acme", "NEW")
	// Day 199: a run receives three team secrets (and a personal one, by
	// count); a failed run and another team's run name OLD_UNUSED.
	f.resolved(t, 199, "acme", "r-recent", auditv1.Outcome_OUTCOME_OK, "STALE_USED", "ROTATED", "GITHUB_TOKEN")
	f.resolved(t, 199, "acme", "r-failed", auditv1.Outcome_OUTCOME_FAILED, "OLD_UNUSED")
	f.resolved(t, 199, "beta", "r-beta", auditv1.Outcome_OUTCOME_OK, "OLD_UNUSED")
	f.clk.set(day(200))

	// Defaults: stale after 90 days (before day 110), unused after 30
	// (before day 170).
	teamRows := []row{
		{name: "team/GHOST", refs: "agent:deployer", flags: "dangling"},
		{name: "team/GITHUB_TOKEN", lastInjected: day(199), lastRun: "r-recent", refs: "env:ops-tools", flags: "stale"},
		{name: "team/IDLE", lastInjected: day(160), lastRun: "r-idle", flags: "unused"},
		{name: "team/MISSING_KEY", refs: "env:ops-tools", flags: "dangling"},
		{name: "team/NEW"},
		{name: "team/OLD_UNUSED", flags: "stale,unused"},
		{name: "team/RECREATED"}, // r-old received the one deleted
		{name: "team/RESTRICTED_KEY", lastInjected: day(10), lastRun: "r-old", refs: "agent:deployer", flags: "stale,unused,restricted"},
		{name: "team/ROTATED", lastInjected: day(199), lastRun: "r-recent"},
		{name: "team/STALE_USED", lastInjected: day(199), lastRun: "r-recent", refs: "env:ops-tools", flags: "stale"},
	}
	withPersonal := func(personal ...row) []row {
		out := slices.Clone(teamRows)
		for _, p := range personal {
			i := slices.IndexFunc(out, func(r row) bool {
				return strings.ToUpper(strings.SplitN(r.name, "/", 2)[1]) > strings.ToUpper(strings.SplitN(p.name, "/", 2)[1])
			})
			if i < 0 {
				i = len(out)
			}
			out = slices.Insert(out, i, p)
		}
		return out
	}
	tests := []struct {
		name string
		ctx  context.Context
		req  *auditv1.ReviewSecretsRequest
		want []row
	}{
		{"AliceDefaults", alice, &auditv1.ReviewSecretsRequest{Parent: "teams/acme"}, withPersonal(
			row{name: "personal/ALICE_ONLY", flags: "stale"},
			row{name: "personal/GITHUB_TOKEN", refs: "env:ops-tools", flags: "stale"},
		)},
		// dave sees the team's secrets and his own, never alice's.
		{"DaveDefaults", dave, &auditv1.ReviewSecretsRequest{Parent: "teams/acme"}, withPersonal(
			row{name: "personal/DAVE_KEY", flags: "stale"},
		)},
		// Nothing is stale after 1000 days; unused after 5 days: before day 195.
		{"Thresholds", dave, &auditv1.ReviewSecretsRequest{Parent: "teams/acme", StaleDays: 1000, UnusedDays: 5}, []row{
			{name: "personal/DAVE_KEY"},
			{name: "team/GHOST", refs: "agent:deployer", flags: "dangling"},
			{name: "team/GITHUB_TOKEN", lastInjected: day(199), lastRun: "r-recent", refs: "env:ops-tools"},
			{name: "team/IDLE", lastInjected: day(160), lastRun: "r-idle", flags: "unused"},
			{name: "team/MISSING_KEY", refs: "env:ops-tools", flags: "dangling"},
			{name: "team/NEW"},
			{name: "team/OLD_UNUSED", flags: "unused"},
			{name: "team/RECREATED", flags: "unused"},
			{name: "team/RESTRICTED_KEY", lastInjected: day(10), lastRun: "r-old", refs: "agent:deployer", flags: "unused,restricted"},
			{name: "team/ROTATED", lastInjected: day(199), lastRun: "r-recent"},
			{name: "team/STALE_USED", lastInjected: day(199), lastRun: "r-recent", refs: "env:ops-tools"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := f.client.ReviewSecrets(tt.ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			var got []row
			for _, r := range resp.GetSecrets() {
				got = append(got, rowOf(r))
			}
			if !slices.EqualFunc(got, tt.want, func(a, b row) bool { return a == b && a.lastInjected.Equal(b.lastInjected) }) {
				t.Errorf("got\n%s\nwant\n%s", rowsText(got), rowsText(tt.want))
			}
			wantStale, wantUnused := cmp.Or(tt.req.GetStaleDays(), 90), cmp.Or(tt.req.GetUnusedDays(), 30)
			if resp.GetStaleDays() != wantStale || resp.GetUnusedDays() != wantUnused || !resp.GetReviewTime().AsTime().Equal(day(200)) {
				t.Errorf("thresholds: got %d, %d at %v; want %d, %d at %v", resp.GetStaleDays(), resp.GetUnusedDays(),
					resp.GetReviewTime().AsTime(), wantStale, wantUnused, day(200))
			}
			for _, r := range resp.GetSecrets() {
				personal := r.GetScope() == secretsv1.Scope_SCOPE_PERSONAL
				dangling := slices.Contains(r.GetFlags(), auditv1.ReviewFlag_REVIEW_FLAG_DANGLING)
				if r.GetInjectionsTracked() != (!personal && !dangling) {
					t.Errorf("%s: injections_tracked %v", r.GetName(), r.GetInjectionsTracked())
				}
				if !dangling && (r.GetValueVersion() < 1 || r.GetCreateTime() == nil || r.GetValueUpdateTime() == nil) {
					t.Errorf("%s: metadata missing: %v", r.GetName(), r)
				}
			}
		})
	}

	// Values, times and names of the row's secret as stored.
	resp, err := f.client.ReviewSecrets(alice, &auditv1.ReviewSecretsRequest{Parent: "teams/acme"})
	must(t, err)
	for _, r := range resp.GetSecrets() {
		switch r.GetName() {
		case "teams/acme/secrets/ROTATED":
			if r.GetValueVersion() != 2 || !r.GetValueUpdateTime().AsTime().Equal(day(195)) || !r.GetCreateTime().AsTime().Equal(day(0)) {
				t.Errorf("ROTATED: got %v", r)
			}
		case "users/bob/secrets/BOB_ONLY", "users/dave/secrets/DAVE_KEY":
			t.Errorf("alice's review holds %s", r.GetName())
		}
	}
}

func rowsText(rows []row) string {
	var b strings.Builder
	for _, r := range rows {
		last := "-"
		if !r.lastInjected.IsZero() {
			last = r.lastInjected.Format(time.DateOnly)
		}
		fmt.Fprintf(&b, "  %-22s last=%s run=%s refs=%s flags=%s\n", r.name, last, r.lastRun, r.refs, r.flags)
	}
	return b.String()
}

func TestReviewSecretsRefusals(t *testing.T) {
	f := newReviewFixture(t)
	f.create(t, 0, "alice", "teams/acme", "API_KEY")
	tests := []struct {
		name string
		ctx  context.Context
		req  *auditv1.ReviewSecretsRequest
		want codes.Code
	}{
		{"Member", f.as("bob"), &auditv1.ReviewSecretsRequest{Parent: "teams/acme"}, codes.PermissionDenied},
		{"OtherTeamsAdmin", f.as("carol"), &auditv1.ReviewSecretsRequest{Parent: "teams/acme"}, codes.PermissionDenied},
		// A system admin passes the audit service's check, but the
		// secretstore lets only members list a team's secrets: its rule
		// applies, to the caller's own token.
		{"SystemAdminNotMember", f.as("root"), &auditv1.ReviewSecretsRequest{Parent: "teams/acme"}, codes.PermissionDenied},
		{"NoToken", context.Background(), &auditv1.ReviewSecretsRequest{Parent: "teams/acme"}, codes.Unauthenticated},
		{"SystemChain", f.as("alice"), &auditv1.ReviewSecretsRequest{Parent: "system"}, codes.InvalidArgument},
		{"NegativeDays", f.as("alice"), &auditv1.ReviewSecretsRequest{Parent: "teams/acme", StaleDays: -1}, codes.InvalidArgument},
		{"TooManyDays", f.as("alice"), &auditv1.ReviewSecretsRequest{Parent: "teams/acme", UnusedDays: audit.MaxReviewDays + 1}, codes.InvalidArgument},
		// Not a member: refused before anyone looks for the team.
		{"NoSuchTeam", f.as("alice"), &auditv1.ReviewSecretsRequest{Parent: "teams/nope"}, codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.client.ReviewSecrets(tt.ctx, tt.req)
			wantCode(t, err, tt.want)
		})
	}

	// Each refusal is itself an audit event of the team's chain; the
	// request without a token names no actor, only the service that
	// relayed it.
	resp, err := f.client.ListEvents(f.as("alice"), &auditv1.ListEventsRequest{Parent: "teams/acme", Action: audit.ActionRequestDenied})
	must(t, err)
	var who []string
	for _, ev := range resp.GetEvents() {
		if d := ev.GetDetails(); d[audit.DetailMethod] == auditv1.AuditService_ReviewSecrets_FullMethodName {
			name := ev.GetActor().GetName()
			if name == "" && d[audit.DetailCode] == "UNAUTHENTICATED" {
				name = "relayed by " + d[auditevent.DetailPeerService]
			}
			who = append(who, name)
		}
	}
	slices.Sort(who)
	if want := []string{"relayed by gateway", "users/bob", "users/carol", "users/root"}; !slices.Equal(who, want) {
		t.Errorf("request.denied events of ReviewSecrets: got %v, want %v", who, want)
	}
}
