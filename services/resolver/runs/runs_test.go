package runs_test

import (
	"bytes"
	"context"
	"crypto/hpke"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/runrules"
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

// runCanary is in every planted value; it must never reach a record, an
// error or anything but the sealed values.
const runCanary = "CANARY-resolver-runs-5b1e"

func runValue(owner, name string) string { return runCanary + "|" + owner + "/" + name }

// runsFixture is a resolver with run resolution over a real secretstore
// (its Service and RunSecretsServer, in-process), both on bbolt files:
//
//   - team acme: alice (admin), bob (member); team beta: carol (admin);
//   - acme's secrets DEPLOY_TOKEN, PAGERDUTY_API_KEY, OTHER_KEY,
//     RESTRICTED_KEY and GITHUB_TOKEN; alice's personal GITHUB_TOKEN and
//     ALICE_ONLY; bob's BOB_ONLY; beta's BETA_KEY;
//   - acme's identity deployer referencing RESTRICTED_KEY, and environment
//     ops-tools listing DEPLOY_TOKEN, PAGERDUTY_API_KEY and MISSING_KEY;
//     beta's identity beta-bot and environment beta-env;
//   - runner-a granted acme, runner-b granted beta.
type runsFixture struct {
	store  *boltkv.Store
	dbPath string
	clk    *resolvertest.Clock
	dir    *directory.Directory
	runs   *runs.Service
	svc    *secretstore.Service
	ssdb   *sskv.Store
	kr     *keyring.Keyring

	sys, alice, bob, carol     context.Context
	aliceP, bobP, carolP       *auth.Principal
	aliceToken, bobToken       string
	runnerA, runnerB, deployer context.Context
	priv                       hpke.PrivateKey
}

func newRunsFixture(t testing.TB) *runsFixture {
	t.Helper()
	ctx := context.Background()
	f := &runsFixture{dbPath: filepath.Join(t.TempDir(), "resolver.db")}
	store, err := boltkv.Open(f.dbPath, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f.store = store
	f.clk = resolvertest.NewClock(resolvertest.Start)
	f.dir = directory.New(resolver.NewStore(store, f.clk.Now))
	_, admin, err := f.dir.BootstrapAdmin(ctx, "admin")
	check(t, err)
	f.sys = f.login(t, admin)

	for _, team := range []string{"acme", "beta"} {
		_, err := f.dir.CreateTeam(f.sys, team)
		check(t, err)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		_, err := f.dir.CreateUser(f.sys, u, false)
		check(t, err)
	}
	for _, m := range []struct {
		team, user string
		role       auth.Role
	}{{"acme", "alice", auth.RoleAdmin}, {"acme", "bob", auth.RoleMember}, {"beta", "carol", auth.RoleAdmin}} {
		_, err := f.dir.CreateMembership(f.sys, m.team, m.user, m.role)
		check(t, err)
	}
	token := func(user string) string {
		_, bearer, err := f.dir.CreateToken(f.sys, resolver.UserPrincipal(user), 0, "")
		check(t, err)
		return bearer
	}
	f.aliceToken, f.bobToken = token("alice"), token("bob")
	f.alice, f.bob, f.carol = f.login(t, f.aliceToken), f.login(t, f.bobToken), f.login(t, token("carol"))
	f.aliceP, f.bobP, f.carolP = auth.PrincipalFrom(f.alice), auth.PrincipalFrom(f.bob), auth.PrincipalFrom(f.carol)

	check(t, runs.RunsTestPutAgent(ctx, store, "acme", resolver.DefaultAgentID, nil))
	check(t, runs.RunsTestPutAgent(ctx, store, "acme", "deployer", []string{"RESTRICTED_KEY"}))
	check(t, runs.RunsTestPutAgent(ctx, store, "beta", "beta-bot", []string{"BETA_KEY"}))
	check(t, runs.RunsTestPutEnvironment(ctx, store, "acme", "ops-tools", []string{"DEPLOY_TOKEN", "PAGERDUTY_API_KEY", "MISSING_KEY"}))
	check(t, runs.RunsTestPutEnvironment(ctx, store, "beta", "beta-env", []string{"BETA_KEY"}))

	// The secretstore.
	ssdb, err := sskv.OpenBolt(context.Background(), filepath.Join(t.TempDir(), "secretstore.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ssdb.Close() })
	kr, err := keyring.Generate()
	check(t, err)
	f.svc = secretstore.NewService(secretstore.Config{Store: ssdb, Keyring: kr})
	f.ssdb, f.kr = ssdb, kr
	f.runs = runs.New(f.dir, rsgrpc.SecretStoreOf(ssgrpc.NewRunSecrets(f.svc)))
	for _, pl := range []struct {
		p      *auth.Principal
		parent string
		names  []string
	}{
		{f.aliceP, "teams/acme", []string{"DEPLOY_TOKEN", "PAGERDUTY_API_KEY", "OTHER_KEY", "RESTRICTED_KEY", "GITHUB_TOKEN"}},
		{f.aliceP, "users/alice", []string{"GITHUB_TOKEN", "ALICE_ONLY"}},
		{f.bobP, "users/bob", []string{"BOB_ONLY"}},
		{f.carolP, "teams/beta", []string{"BETA_KEY"}},
	} {
		for _, n := range pl.names {
			f.plant(t, pl.p, pl.parent, n, runValue(pl.parent, n))
		}
	}

	runner := func(id string, teams ...string) context.Context {
		p := &auth.Principal{Kind: auth.KindRunner, Name: resolver.RunnerName(id), ID: id, Teams: map[string]auth.Role{}}
		for _, tm := range teams {
			p.Teams[tm] = auth.RoleMember
		}
		return auth.WithPrincipal(ctx, p)
	}
	f.runnerA, f.runnerB = runner("runner-a", "acme"), runner("runner-b", "beta")
	f.deployer = auth.WithPrincipal(ctx, &auth.Principal{Kind: auth.KindAgent, Name: resolver.AgentName("acme", "deployer"),
		ID: "deployer", Teams: map[string]auth.Role{"acme": auth.RoleMember}})

	kem, err := hpke.NewKEM(0x0020) // DHKEM(X25519)
	check(t, err)
	f.priv, err = kem.GenerateKey()
	check(t, err)
	return f
}

func check(t tb, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (f *runsFixture) login(t testing.TB, bearer string) context.Context {
	t.Helper()
	p, err := f.dir.Authenticate(context.Background(), bearer)
	check(t, err)
	return auth.WithPrincipal(context.Background(), p)
}

func (f *runsFixture) plant(t testing.TB, p *auth.Principal, parent, name, value string) {
	t.Helper()
	if _, err := f.svc.Create(context.Background(), p, secretstore.CreateRequest{Parent: parent, SecretID: name, Value: []byte(value)}); err != nil {
		t.Fatalf("create %s/%s: %v", parent, name, err)
	}
}

func (f *runsFixture) recipient() runs.Recipient {
	return runs.Recipient{KEMID: uint32(f.priv.KEM().ID()), PublicKey: f.priv.PublicKey().Bytes()}
}

func (f *runsFixture) resolve(ctx context.Context, team string, rc runs.RunContext, runID string) (runs.Resolution, error) {
	return runs.RunsTestResolve(ctx, f.runs, team, rc, runID, f.recipient())
}

// tb is what open needs of a *testing.T or a *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// open opens the sealed values as the runner would: NAME → value.
func (f *runsFixture) open(t tb, res runs.Resolution) map[string]string {
	t.Helper()
	s := res.Sealed
	if s == nil {
		t.Fatal("no sealed values")
	}
	info := "oz-run-v1|" + res.Run.Name()
	if string(s.Info) != info || s.KEMID != 0x0020 || s.KDFID != 1 || s.AEADID != 2 {
		t.Fatalf("sealed: info %q, suite %#x/%#x/%#x; want info %q, X25519/HKDF-SHA256/AES-256-GCM", s.Info, s.KEMID, s.KDFID, s.AEADID, info)
	}
	pt, err := hpke.Open(f.priv, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(info), s.Ciphertext)
	if err != nil {
		t.Fatalf("hpke.Open: %v", err)
	}
	var env scopev1.RunEnvironment
	check(t, proto.Unmarshal(pt, &env))
	out := map[string]string{}
	for _, v := range env.GetVars() {
		out[v.GetName()] = string(v.GetValue())
	}
	return out
}

// runCount is the number of run records and index entries of team.
func (f *runsFixture) runCount(t testing.TB, team string) (int, int) {
	t.Helper()
	recs, byTime := resolver.RunsPrefix(team), resolver.RunsByTimePrefix(team)
	a, err := f.store.Scan(context.Background(), recs, "", 0)
	check(t, err)
	b, err := f.store.Scan(context.Background(), byTime, "", 0)
	check(t, err)
	return len(a), len(b)
}

func injectedOf(run runs.Run) []string {
	var out []string
	for _, s := range run.Injected {
		out = append(out, s.Owner+":"+s.Name)
	}
	slices.Sort(out)
	return out
}

func unresolvedOf(us []runs.UnresolvedReference) []string {
	var out []string
	for _, u := range us {
		r := map[runrules.Reason]string{runrules.NotFound: "not_found", runrules.Restricted: "restricted", runrules.Reserved: "reserved"}[u.Reason]
		out = append(out, u.Name+":"+r)
	}
	return out
}

func wantField(t testing.TB, err error, field string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.KindInvalid || e.Field != field {
		t.Fatalf("got %v, want an invalid-argument error for %s", err, field)
	}
}

func noCanary(t testing.TB, what string, b []byte) {
	t.Helper()
	if bytes.Contains(b, []byte(runCanary)) {
		t.Fatalf("%s holds a planted value", what)
	}
}

var (
	acme  = "teams/acme"
	alice = "users/alice"
)

// TestResolveRunExamples drives the examples of DESIGN §5 through
// ResolveRun, opens the sealed values with the runner's key and checks
// that they are exactly the injected ones.
func TestResolveRunExamples(t *testing.T) {
	f := newRunsFixture(t)
	tests := []struct {
		name           string
		rc             runs.RunContext
		wantSource     runrules.AllowlistSource
		wantInjected   []string // owner:name
		wantOverride   []string // names of personal secrets overriding a team secret
		wantUnresolved []string // name:reason
		wantOutcome    runs.Outcome
	}{
		{
			name:           "OpsToolsEnvironment",
			rc:             runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "ops-tools"},
			wantSource:     runrules.AllowlistEnvironment,
			wantInjected:   []string{acme + ":DEPLOY_TOKEN", acme + ":PAGERDUTY_API_KEY"},
			wantUnresolved: []string{"MISSING_KEY:not_found"},
		},
		{
			name:           "RunListNamesMissingSecret",
			rc:             runs.RunContext{Trigger: resolver.TriggerAPI, User: "bob", Secrets: []string{"OTHER_KEY", "NOPE_KEY"}},
			wantSource:     runrules.AllowlistRun,
			wantInjected:   []string{acme + ":OTHER_KEY"},
			wantUnresolved: []string{"NOPE_KEY:not_found"},
		},
		{
			name:       "RunListBeatsEnvironment",
			rc:         runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "ops-tools", Secrets: []string{"OTHER_KEY"}},
			wantSource: runrules.AllowlistRun, wantInjected: []string{acme + ":OTHER_KEY"},
		},
		{
			name:       "PersonalOverridesTeam",
			rc:         runs.RunContext{Trigger: resolver.TriggerCLI, User: "users/alice"},
			wantSource: runrules.AllowlistNone,
			wantInjected: []string{acme + ":DEPLOY_TOKEN", acme + ":OTHER_KEY", acme + ":PAGERDUTY_API_KEY",
				alice + ":ALICE_ONLY", alice + ":GITHUB_TOKEN"},
			wantOverride: []string{"GITHUB_TOKEN"},
		},
		{
			name:           "UserlessTriggerGetsNoPersonal",
			rc:             runs.RunContext{Trigger: resolver.TriggerSchedule, Secrets: []string{"GITHUB_TOKEN", "ALICE_ONLY"}},
			wantSource:     runrules.AllowlistRun,
			wantInjected:   []string{acme + ":GITHUB_TOKEN"},
			wantUnresolved: []string{"ALICE_ONLY:not_found"},
		},
		{
			name:         "RestrictedReachesItsIdentity",
			rc:           runs.RunContext{Trigger: resolver.TriggerIntegration, Agent: "deployer", Secrets: []string{"RESTRICTED_KEY"}},
			wantSource:   runrules.AllowlistRun,
			wantInjected: []string{acme + ":RESTRICTED_KEY"},
		},
		{
			name:           "RestrictedOtherwise",
			rc:             runs.RunContext{Trigger: resolver.TriggerSchedule, Secrets: []string{"RESTRICTED_KEY"}},
			wantSource:     runrules.AllowlistRun,
			wantUnresolved: []string{"RESTRICTED_KEY:restricted"},
		},
		{
			name:       "EmptyRunListInjectsNothing",
			rc:         runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "ops-tools", Secrets: []string{}},
			wantSource: runrules.AllowlistRun,
		},
		{
			name:           "StrictWithUnresolvedFails",
			rc:             runs.RunContext{Trigger: resolver.TriggerAPI, User: "bob", Secrets: []string{"OTHER_KEY", "NOPE_KEY"}, Strict: true},
			wantSource:     runrules.AllowlistRun,
			wantUnresolved: []string{"NOPE_KEY:not_found"},
			wantOutcome:    runs.OutcomeFailedStrict,
		},
		{
			name:         "StrictAllResolved",
			rc:           runs.RunContext{Trigger: resolver.TriggerWeb, User: "bob", Secrets: []string{"OTHER_KEY", "BOB_ONLY"}, Strict: true},
			wantSource:   runrules.AllowlistRun,
			wantInjected: []string{acme + ":OTHER_KEY", "users/bob:BOB_ONLY"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runID := "run-" + strings.ToLower(tt.name)
			res, err := f.resolve(f.runnerA, "acme", tt.rc, runID)
			if err != nil {
				t.Fatalf("ResolveRun: %v", err)
			}
			run := res.Run
			if want := tt.wantOutcome; want == 0 && run.Outcome != runs.OutcomeResolved || want != 0 && run.Outcome != want {
				t.Errorf("outcome: got %v, want %v", run.Outcome, tt.wantOutcome)
			}
			if got := injectedOf(run); !slices.Equal(got, tt.wantInjected) {
				t.Errorf("injected: got %v, want %v", got, tt.wantInjected)
			}
			var overrides []string
			for _, s := range run.Injected {
				if s.OverridesTeamSecret {
					overrides = append(overrides, s.Name)
				}
				if s.Version != 1 || s.Redacted {
					t.Errorf("injected %s: version %d, redacted %v; want version 1, not redacted", s.Name, s.Version, s.Redacted)
				}
			}
			if !slices.Equal(overrides, tt.wantOverride) {
				t.Errorf("overrides: got %v, want %v", overrides, tt.wantOverride)
			}
			if got := unresolvedOf(run.Unresolved); !slices.Equal(got, tt.wantUnresolved) {
				t.Errorf("unresolved: got %v, want %v", got, tt.wantUnresolved)
			}
			if run.AllowlistSource != tt.wantSource {
				t.Errorf("allowlist source: got %v, want %v", run.AllowlistSource, tt.wantSource)
			}
			if run.ID != runID || run.Team != "acme" || run.ResolvedBy != "runners/runner-a" || !run.CreateTime.Equal(f.clk.Now()) {
				t.Errorf("record: got id %q team %q by %q at %v", run.ID, run.Team, run.ResolvedBy, run.CreateTime)
			}
			if tt.wantOutcome == runs.OutcomeFailedStrict {
				if res.Sealed != nil {
					t.Errorf("a failed strict run returned sealed values")
				}
			} else {
				// The sealed values are exactly the injected ones.
				got := f.open(t, res)
				want := map[string]string{}
				for _, s := range run.Injected {
					want[s.Name] = runValue(s.Owner, s.Name)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("opened values: got %d %v, want %d %v", len(got), keys(got), len(want), keys(want))
				}
			}
			// Recorded, as returned.
			viewer := f.alice // the triggering user sees the record unredacted
			if strings.TrimPrefix(tt.rc.User, "users/") == "bob" {
				viewer = f.bob
			}
			stored, err := f.runs.GetRun(viewer, "acme", runID)
			if err != nil {
				t.Fatalf("GetRun: %v", err)
			}
			if fmt.Sprintf("%+v", stored) != fmt.Sprintf("%+v", run) {
				t.Errorf("stored record:\n got %+v\nwant %+v", stored, run)
			}
		})
	}
	t.Run("ExplicitEmptyRunListIsKept", func(t *testing.T) {
		run, err := f.runs.GetRun(f.bob, "acme", "run-emptyrunlistinjectsnothing")
		check(t, err)
		if run.Context.Secrets == nil || len(run.Context.Secrets) != 0 {
			t.Errorf("context.secrets: got %#v, want present and empty", run.Context.Secrets)
		}
		run, err = f.runs.GetRun(f.bob, "acme", "run-opstoolsenvironment")
		check(t, err)
		if run.Context.Secrets != nil {
			t.Errorf("context.secrets: got %#v, want absent", run.Context.Secrets)
		}
	})
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestResolveRunRecreatedSecret: references are by name, resolved at run
// start: a secret deleted and created again still reaches the run through
// the environment, with its new value.
func TestResolveRunRecreatedSecret(t *testing.T) {
	f := newRunsFixture(t)
	if err := f.svc.Delete(context.Background(), f.aliceP, secretstore.DeleteRequest{Name: "teams/acme/secrets/DEPLOY_TOKEN"}); err != nil {
		t.Fatal(err)
	}
	res, err := f.resolve(f.runnerA, "acme", runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "ops-tools"}, "")
	check(t, err)
	if got := injectedOf(res.Run); !slices.Equal(got, []string{acme + ":PAGERDUTY_API_KEY"}) {
		t.Errorf("after delete: injected %v", got)
	}
	if got := unresolvedOf(res.Run.Unresolved); !slices.Equal(got, []string{"DEPLOY_TOKEN:not_found", "MISSING_KEY:not_found"}) {
		t.Errorf("after delete: unresolved %v", got)
	}
	recreated := runCanary + "|recreated"
	f.plant(t, f.aliceP, "teams/acme", "DEPLOY_TOKEN", recreated)
	res, err = f.resolve(f.runnerA, "acme", runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "ops-tools"}, "")
	check(t, err)
	if got := f.open(t, res); got["DEPLOY_TOKEN"] != recreated || len(got) != 2 {
		t.Errorf("after recreate: got %v", keys(got))
	}
}

// hookStore is a runs.SecretStore that runs hook before the first listing
// only (a change made after a resolution read its inputs and before it
// records its decision), and counts the calls.
type hookStore struct {
	inner        runs.SecretStore
	hook         func()
	lists, seals int
	names        [][]string // of each listing
}

func (h *hookStore) Candidates(ctx context.Context, owners, names []string) ([]runrules.Secret, error) {
	h.names = append(h.names, names)
	if h.lists++; h.lists == 1 && h.hook != nil {
		h.hook()
	}
	return h.inner.Candidates(ctx, owners, names)
}

func (h *hookStore) Seal(ctx context.Context, secrets []runrules.Secret, to runs.Recipient, info []byte) (runs.Sealed, error) {
	h.seals++
	return h.inner.Seal(ctx, secrets, to, info)
}

// TestResolveRunInputsChangedBeforeRecord: a change to what the decision
// read, made between the reads and the record's write, fails the write's
// Unchanged condition; the resolution is made again and the recorded (and
// returned) decision is the one the store holds when it is recorded. The
// values are sealed again only when the decision changed.
func TestResolveRunInputsChangedBeforeRecord(t *testing.T) {
	f := newRunsFixture(t)
	rc := runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "ops-tools"}
	before, err := f.resolve(f.runnerA, "acme", rc, "")
	check(t, err)
	if got := f.open(t, before); got["DEPLOY_TOKEN"] == "" {
		t.Fatalf("before the change: DEPLOY_TOKEN not injected (%v)", keys(got))
	}
	for _, tc := range []struct {
		name string
		// refs is what the new identity references.
		refs      []string
		wantSeals int
		injected  bool // DEPLOY_TOKEN still injected
	}{
		// DEPLOY_TOKEN becomes restricted to the new identity: the
		// decision changes, and the values are sealed again.
		{"DecisionChanged", []string{"DEPLOY_TOKEN"}, 2, false},
		// The identity references an allowlisted name no candidate has
		// (a name outside the allowlist is not read at all: the decision
		// reads the restrictions of its names only): the record is
		// written again, the sealed values are the first attempt's.
		{"DecisionSame", []string{"MISSING_KEY"}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bot := "bot-" + strings.ToLower(tc.name)
			hs := &hookStore{inner: rsgrpc.SecretStoreOf(ssgrpc.NewRunSecrets(f.svc)), hook: func() {
				check(t, runs.RunsTestPutAgent(context.Background(), f.store, "acme", bot, tc.refs))
			}}
			t.Cleanup(func() { check(t, runs.RunsTestDeleteAgent(context.Background(), f.store, "acme", bot)) })
			all, _ := f.runCount(t, "acme")
			res, err := runs.RunsTestResolve(f.runnerA, runs.New(f.dir, hs), "acme", rc, "", f.recipient())
			check(t, err)
			if hs.lists != 2 || hs.seals != tc.wantSeals {
				t.Errorf("listed %d times, sealed %d; want 2 and %d (the first decision is refused at its write, then made again)", hs.lists, hs.seals, tc.wantSeals)
			}
			if got := f.open(t, res)["DEPLOY_TOKEN"] != ""; got != tc.injected {
				t.Errorf("DEPLOY_TOKEN injected: got %v, want %v (%v)", got, tc.injected, keys(f.open(t, res)))
			}
			if got := unresolvedOf(res.Run.Unresolved); slices.Contains(got, "DEPLOY_TOKEN:restricted") == tc.injected {
				t.Errorf("unresolved %v", got)
			}
			stored, err := f.runs.GetRun(f.runnerA, "acme", res.Run.ID)
			check(t, err)
			if got := injectedOf(stored); slices.Contains(got, acme+":DEPLOY_TOKEN") != tc.injected {
				t.Errorf("recorded run injected %v", got)
			}
			if got := injectedOf(stored); !slices.Equal(got, injectedOf(res.Run)) {
				t.Errorf("recorded %v, returned %v", got, injectedOf(res.Run))
			}
			if now, _ := f.runCount(t, "acme"); now != all+1 {
				t.Errorf("%d runs recorded, want %d (the refused write records nothing)", now, all+1)
			}
		})
	}
}

// TestResolveRunSecretRotatedBeforeSealing: a value rotated between the
// listing of the candidates and their sealing is never sealed under the
// version listed: the resolution lists and decides again, and records and
// seals the new version.
func TestResolveRunSecretRotatedBeforeSealing(t *testing.T) {
	f := newRunsFixture(t)
	rotated := runCanary + "|rotated"
	hs := &hookStore{inner: &rotateOnce{SecretStore: rsgrpc.SecretStoreOf(ssgrpc.NewRunSecrets(f.svc)), rotate: func() {
		if _, err := f.svc.Update(context.Background(), f.aliceP, secretstore.UpdateRequest{
			Name: "teams/acme/secrets/DEPLOY_TOKEN", Value: []byte(rotated), UpdateMask: []string{"value"},
		}); err != nil {
			t.Error(err)
		}
	}}}
	res, err := runs.RunsTestResolve(f.runnerA, runs.New(f.dir, hs), "acme", runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "ops-tools"}, "", f.recipient())
	check(t, err)
	if hs.lists != 2 || hs.seals != 2 {
		t.Errorf("listed %d times, sealed %d times; want 2 and 2 (the first sealing refused)", hs.lists, hs.seals)
	}
	if got := f.open(t, res)["DEPLOY_TOKEN"]; got != rotated {
		t.Errorf("DEPLOY_TOKEN: got %q, want the rotated value", got)
	}
	for _, s := range res.Run.Injected {
		if s.Name == "DEPLOY_TOKEN" && s.Version != 2 {
			t.Errorf("recorded DEPLOY_TOKEN at version %d, want 2", s.Version)
		}
	}
}

// rotateOnce runs rotate before its first sealing only.
type rotateOnce struct {
	runs.SecretStore
	rotate func()
}

func (r *rotateOnce) Seal(ctx context.Context, secrets []runrules.Secret, to runs.Recipient, info []byte) (runs.Sealed, error) {
	if r.rotate != nil {
		r.rotate()
		r.rotate = nil
	}
	return r.SecretStore.Seal(ctx, secrets, to, info)
}

// TestStartRunContextRefusals: a context that is malformed, or names
// what is not there, is refused when the run is started, naming the field;
// nothing is recorded.
func TestStartRunContextRefusals(t *testing.T) {
	f := newRunsFixture(t)
	sched := runs.RunContext{Trigger: resolver.TriggerSchedule}
	with := func(mod func(*runs.RunContext)) runs.RunContext {
		rc := sched
		mod(&rc)
		return rc
	}
	tests := []struct {
		name      string
		team      string
		rc        runs.RunContext
		wantKind  errs.Kind
		wantField string
	}{
		{"NoTrigger", "acme", runs.RunContext{}, errs.KindInvalid, "context.trigger"},
		{"UnknownTrigger", "acme", runs.RunContext{Trigger: 99}, errs.KindInvalid, "context.trigger"},
		{"UserInitiatedWithoutUser", "acme", runs.RunContext{Trigger: resolver.TriggerSlack}, errs.KindInvalid, "context.user"},
		{"ScheduleWithUser", "acme", with(func(rc *runs.RunContext) { rc.User = "alice" }), errs.KindInvalid, "context.user"},
		{"BadUser", "acme", runs.RunContext{Trigger: resolver.TriggerCLI, User: "users/Alice"}, errs.KindInvalid, "context.user"},
		{"UserMe", "acme", runs.RunContext{Trigger: resolver.TriggerCLI, User: "users/me"}, errs.KindInvalid, "context.user"},
		{"UserNotInTeam", "acme", runs.RunContext{Trigger: resolver.TriggerCLI, User: "carol"}, errs.KindPermissionDenied, ""},
		{"UnknownUser", "acme", runs.RunContext{Trigger: resolver.TriggerCLI, User: "ghost"}, errs.KindPermissionDenied, ""},
		{"IdentityOfAnotherTeam", "acme", with(func(rc *runs.RunContext) { rc.Agent = "beta-bot" }), errs.KindInvalid, "context.agent"},
		{"BadIdentity", "acme", with(func(rc *runs.RunContext) { rc.Agent = "Bad_Bot" }), errs.KindInvalid, "context.agent"},
		{"EnvironmentOfAnotherTeam", "acme", with(func(rc *runs.RunContext) { rc.Environment = "beta-env" }), errs.KindInvalid, "context.environment"},
		{"BadSecretName", "acme", with(func(rc *runs.RunContext) { rc.Secrets = []string{"OK", "1BAD"} }), errs.KindInvalid, "context.secrets.names"},
		{"ReservedSecretName", "acme", with(func(rc *runs.RunContext) { rc.Secrets = []string{"LD_PRELOAD"} }), errs.KindInvalid, "context.secrets.names"},
		{"ReservedInterpreterName", "acme", with(func(rc *runs.RunContext) { rc.Secrets = []string{"NODE_OPTIONS"} }), errs.KindInvalid, "context.secrets.names"},
		{"TooManySecretNames", "acme", with(func(rc *runs.RunContext) { rc.Secrets = slices.Repeat([]string{"A"}, resolver.MaxSecretNames+1) }), errs.KindInvalid, "context.secrets.names"},
		{"MissingTeam", "ghost", sched, errs.KindNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runs.RunsTestStart(f.runnerA, f.runs, tt.team, tt.rc, "")
			if errs.KindOf(err) != tt.wantKind {
				t.Fatalf("got %v (kind %v), want kind %v", err, errs.KindOf(err), tt.wantKind)
			}
			if tt.wantField != "" {
				wantField(t, err, tt.wantField)
			}
		})
	}
	if a, b := f.runCount(t, "acme"); a != 0 || b != 0 {
		t.Errorf("refused runs were recorded: %d records, %d index entries", a, b)
	}
}

// TestResolveRunRefusals: a runner gets values only for an unused,
// unexpired ticket of a team it is granted, with a context that agrees
// with the ticket's; every refusal changes nothing, and none echoes the
// ticket, a token or a value.
func TestResolveRunRefusals(t *testing.T) {
	f := newRunsFixture(t)
	sched := runs.RunContext{Trigger: resolver.TriggerSchedule, Secrets: []string{"DEPLOY_TOKEN", "OTHER_KEY"}}
	ticket, err := runs.RunsTestStart(f.runnerA, f.runs, "acme", sched, "run-1")
	check(t, err)
	rcpt := new(f.recipient())
	ctxOf := func(mod func(*runs.RunContext)) *runs.RunContext {
		var rc runs.RunContext
		mod(&rc)
		return &rc
	}
	_, unknown := resolver.NewOpaque(runs.TicketPrefix)
	tests := []struct {
		name      string
		ctx       context.Context
		req       runs.ResolveRequest
		wantKind  errs.Kind
		wantField string
	}{
		{"NoTicket", f.runnerA, runs.ResolveRequest{Team: "acme", Recipient: rcpt}, errs.KindPermissionDenied, ""},
		{"GarbageTicket", f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: "ozt_" + runCanary, Recipient: rcpt}, errs.KindPermissionDenied, ""},
		{"TokenAsTicket", f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: f.aliceToken, Recipient: rcpt}, errs.KindPermissionDenied, ""},
		{"UnknownTicket", f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: unknown, Recipient: rcpt}, errs.KindPermissionDenied, ""},
		{"AlteredTicket", f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket[:len(ticket)-1] + flip(ticket[len(ticket)-1]), Recipient: rcpt}, errs.KindPermissionDenied, ""},
		{"OtherTeam", f.runnerA, runs.ResolveRequest{Team: "beta", Ticket: ticket, Recipient: rcpt}, errs.KindPermissionDenied, ""},
		{"RunnerNotGranted", f.runnerB, runs.ResolveRequest{Team: runs.AnyTeam, Ticket: ticket, Recipient: rcpt}, errs.KindPermissionDenied, ""},
		{"Person", f.alice, runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: rcpt}, errs.KindPermissionDenied, ""},
		{"SystemAdmin", f.sys, runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: rcpt}, errs.KindPermissionDenied, ""},
		{"AgentToken", f.deployer, runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: rcpt}, errs.KindPermissionDenied, ""},
		{"NoCaller", context.Background(), runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: rcpt}, errs.KindUnauthenticated, ""},
		{"OtherRunID", f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket, RunID: "run-2", Recipient: rcpt}, errs.KindPermissionDenied, ""},
		{"BadRunID", f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket, RunID: "Run_1", Recipient: rcpt}, errs.KindInvalid, "run_id"},
		{"BadTeam", f.runnerA, runs.ResolveRequest{Team: "ACME", Ticket: ticket, Recipient: rcpt}, errs.KindInvalid, "team_id"},
		{"NoRecipient", f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket}, errs.KindInvalid, "recipient"},
		{"BadKEM", f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: &runs.Recipient{KEMID: 0x9999, PublicKey: rcpt.PublicKey}}, errs.KindInvalid, "recipient.kem_id"},
		{"BadPublicKey", f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: &runs.Recipient{KEMID: 0x0020, PublicKey: []byte("short")}}, errs.KindInvalid, "recipient.public_key"},
		// The runner may narrow the ticket's context, never change it.
		{"OtherTrigger", f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: rcpt, Context: ctxOf(func(rc *runs.RunContext) { rc.Trigger = resolver.TriggerIntegration })}, errs.KindPermissionDenied, ""},
		{"AddUser", f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: rcpt, Context: ctxOf(func(rc *runs.RunContext) { rc.User = "alice" })}, errs.KindPermissionDenied, ""},
		{"OtherAgent", f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: rcpt, Context: ctxOf(func(rc *runs.RunContext) { rc.Agent = "deployer" })}, errs.KindPermissionDenied, ""},
		{"OtherEnvironment", f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: rcpt, Context: ctxOf(func(rc *runs.RunContext) { rc.Environment = "ops-tools" })}, errs.KindPermissionDenied, ""},
		{"WiderList", f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: rcpt, Context: ctxOf(func(rc *runs.RunContext) { rc.Secrets = []string{"DEPLOY_TOKEN", "RESTRICTED_KEY"} })}, errs.KindPermissionDenied, ""},
		{"StartToken", f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: rcpt, Context: ctxOf(func(rc *runs.RunContext) { rc.StartToken = f.aliceToken })}, errs.KindInvalid, "context.start_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.runs.ResolveRun(tt.ctx, tt.req)
			if errs.KindOf(err) != tt.wantKind {
				t.Fatalf("got %v (kind %v), want kind %v", err, errs.KindOf(err), tt.wantKind)
			}
			if tt.wantField != "" {
				wantField(t, err, tt.wantField)
			}
			for _, secret := range []string{runCanary, f.aliceToken, f.bobToken, ticket, ticket[len(ticket)-43:]} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q echoes a value, a token or the ticket", err)
				}
			}
		})
	}
	run, err := f.runs.GetRun(f.bob, "acme", "run-1")
	check(t, err)
	if run.State != runs.RunStarted {
		t.Fatalf("after refusals the run is %v, want started", run.State)
	}

	// Narrowed, it resolves, once.
	res, err := f.runs.ResolveRun(f.runnerA, runs.ResolveRequest{Team: runs.AnyTeam, Ticket: ticket, Recipient: rcpt,
		Context: ctxOf(func(rc *runs.RunContext) {
			rc.Trigger, rc.Secrets, rc.Strict = resolver.TriggerSchedule, []string{"OTHER_KEY"}, true
		})})
	check(t, err)
	if got := injectedOf(res.Run); !slices.Equal(got, []string{acme + ":OTHER_KEY"}) || !res.Run.Context.Strict {
		t.Errorf("narrowed run: injected %v, strict %v; want only OTHER_KEY, strict", got, res.Run.Context.Strict)
	}
	_, err = f.runs.ResolveRun(f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: rcpt})
	wantKind(t, err, errs.KindPermissionDenied)

	// An expired ticket is refused, and the run reads as expired.
	late, err := runs.RunsTestStart(f.runnerA, f.runs, "acme", sched, "run-late")
	check(t, err)
	f.clk.Advance(runs.DefaultTicketTTL)
	_, err = f.runs.ResolveRun(f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: late, Recipient: rcpt})
	wantKind(t, err, errs.KindPermissionDenied)
	if run, err := f.runs.GetRun(f.bob, "acme", "run-late"); err != nil || run.State != runs.RunExpired {
		t.Errorf("an expired ticket's run: %v, %v; want expired", run.State, err)
	}
}

// flip changes one base64 character into another.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// TestResolveRunID: ids are generated, sortable and unique; a given id
// is used once.
func TestResolveRunID(t *testing.T) {
	f := newRunsFixture(t)
	sched := runs.RunContext{Trigger: resolver.TriggerSchedule, Secrets: []string{"OTHER_KEY"}}
	first, err := f.resolve(f.runnerA, "acme", sched, "")
	check(t, err)
	f.clk.Advance(time.Millisecond)
	second, err := f.resolve(f.runnerA, "acme", sched, "")
	check(t, err)
	for _, id := range []string{first.Run.ID, second.Run.ID} {
		if !resolver.ValidRunID(id) || !strings.HasPrefix(id, "run-") || len(id) != 27 {
			t.Errorf("generated id %q: want run-<12 hex>-<10 hex>", id)
		}
	}
	if !(first.Run.ID < second.Run.ID) {
		t.Errorf("generated ids do not sort by time: %q then %q", first.Run.ID, second.Run.ID)
	}

	_, err = f.resolve(f.runnerA, "acme", sched, "run-42")
	check(t, err)
	before, err := f.runs.GetRun(f.bob, "acme", "run-42")
	check(t, err)
	_, err = f.resolve(f.runnerA, "acme", runs.RunContext{Trigger: resolver.TriggerCLI, User: "alice"}, "run-42")
	wantKind(t, err, errs.KindAlreadyExists)
	after, err := f.runs.GetRun(f.bob, "acme", "run-42")
	check(t, err)
	if fmt.Sprintf("%+v", before) != fmt.Sprintf("%+v", after) {
		t.Errorf("reusing a run id changed its record:\n%+v\n%+v", before, after)
	}
	// The same id in another team is another run.
	if _, err := f.resolve(f.runnerB, "beta", sched, "run-42"); err != nil {
		t.Errorf("run-42 in beta: %v", err)
	}
	if a, b := f.runCount(t, "acme"); a != 3 || b != 3 {
		t.Errorf("acme: %d records, %d index entries; want 3 and 3", a, b)
	}
}

// TestRunRecordsHoldNoValue: planted values never reach the run records,
// the resolver's database file, or an error.
func TestRunRecordsHoldNoValue(t *testing.T) {
	f := newRunsFixture(t)
	for i, rc := range []runs.RunContext{
		{Trigger: resolver.TriggerCLI, User: "alice"},
		{Trigger: resolver.TriggerSchedule, Agent: "deployer"},
		{Trigger: resolver.TriggerSchedule, Environment: "ops-tools", Strict: true},
		{Trigger: resolver.TriggerAPI, User: "bob", Secrets: []string{"BOB_ONLY", "GITHUB_TOKEN"}},
	} {
		res, err := f.resolve(f.runnerA, "acme", rc, fmt.Sprintf("run-%d", i))
		check(t, err)
		noCanary(t, "the run record", []byte(fmt.Sprintf("%#v", res.Run)))
		if res.Sealed != nil {
			noCanary(t, "the sealed values", res.Sealed.Ciphertext)
		}
		ex, err := f.runs.ExplainRun(f.alice, "acme", rc)
		check(t, err)
		noCanary(t, "the explanation", []byte(fmt.Sprintf("%#v", ex)))
	}
	_, err := f.resolve(f.runnerA, "acme", runs.RunContext{Trigger: resolver.TriggerSchedule, Secrets: []string{"X"}}, "run-0")
	noCanary(t, "an error", []byte(err.Error()))
	recs, _ := resolver.RunsPrefix("acme"), resolver.RunsByTimePrefix("acme")
	kvs, err := f.store.Scan(context.Background(), recs, "", 0)
	check(t, err)
	if len(kvs) != 4 {
		t.Fatalf("%d run records, want 4", len(kvs))
	}
	for _, kv := range kvs {
		noCanary(t, kv.Key, kv.Value)
	}
	check(t, f.store.Close())
	raw, err := os.ReadFile(f.dbPath)
	check(t, err)
	noCanary(t, "the resolver's database file", raw)
	if !bytes.Contains(raw, []byte("PAGERDUTY_API_KEY")) {
		t.Fatal("the database file does not hold the run records in clear: the scan would prove nothing")
	}
}

// plantLegacy stores a secret as the secretstore did before its name was
// reserved: straight into its store, sealed as the Service seals.
func (f *runsFixture) plantLegacy(t testing.TB, owner secretstore.Owner, name, value string) {
	t.Helper()
	env, err := f.kr.Seal([]byte(value), secretstore.ValueAD(owner, name, 1))
	check(t, err)
	now := f.clk.Now()
	sec := &secretstore.Secret{Owner: owner, Name: name, ValueVersion: 1, CreateTime: now, UpdateTime: now, ValueUpdateTime: now,
		CreateBy: "users/alice", UpdateBy: "users/alice", Etag: "legacy", Value: env}
	check(t, f.ssdb.Create(context.Background(), sec, &auditv1.Event{Action: "secret.create", Time: timestamppb.Now(), Actor: &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/alice"}, Resource: owner.String() + "/secrets/" + name, Outcome: auditv1.Outcome_OUTCOME_OK}))
}

// TestReservedNamesNeverInjected: a secret made before its name was
// reserved (NODE_OPTIONS, http_proxy) keeps existing, but no run receives
// it, whatever asks for it; explain says why, and a run that lists it
// has it unresolved as reserved.
func TestReservedNamesNeverInjected(t *testing.T) {
	f := newRunsFixture(t)
	f.plantLegacy(t, secretstore.Team("acme"), "NODE_OPTIONS", runValue("teams/acme", "NODE_OPTIONS"))
	f.plantLegacy(t, secretstore.User("alice"), "http_proxy", runValue("users/alice", "http_proxy"))
	// A legacy environment lists it too.
	check(t, runs.RunsTestPutEnvironment(context.Background(), f.store, "acme", "legacy-env", []string{"NODE_OPTIONS", "OTHER_KEY"}))

	res, err := f.resolve(f.runnerA, "acme", runs.RunContext{Trigger: resolver.TriggerCLI, User: "alice"}, "")
	check(t, err)
	for _, s := range res.Run.Injected {
		if s.Name == "NODE_OPTIONS" || s.Name == "http_proxy" {
			t.Errorf("a reserved name was injected: %s", s.Name)
		}
	}
	if vals := f.open(t, res); vals["NODE_OPTIONS"] != "" || vals["http_proxy"] != "" {
		t.Errorf("a reserved name's value was sealed to the runner")
	}
	res, err = f.resolve(f.runnerA, "acme", runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "legacy-env"}, "")
	check(t, err)
	if got := unresolvedOf(res.Run.Unresolved); !slices.Equal(got, []string{"NODE_OPTIONS:reserved"}) {
		t.Errorf("unresolved: %v, want NODE_OPTIONS reserved", got)
	}
	if got := injectedOf(res.Run); !slices.Equal(got, []string{acme + ":OTHER_KEY"}) {
		t.Errorf("injected: %v", got)
	}
	ex, err := f.runs.ExplainRun(f.alice, "acme", runs.RunContext{Trigger: resolver.TriggerCLI, User: "alice"})
	check(t, err)
	found := 0
	for _, c := range ex.Candidates {
		if c.Name == "NODE_OPTIONS" || c.Name == "http_proxy" {
			found++
			if c.Decision != runrules.ExcludedReserved || !strings.Contains(c.Detail, "is reserved") {
				t.Errorf("explain %s: %v %q", c.Name, c.Decision, c.Detail)
			}
		}
	}
	if found != 2 {
		t.Errorf("explain lists %d of the 2 reserved secrets", found)
	}
}

// TestResolveRunReadsOnlyAllowlisted: with an allowlist, a resolution asks
// the secretstore for the listed names alone (issue 19: its cost follows
// the run, not the team); with none, for every secret of the owners; with
// an empty one, for nothing.
func TestResolveRunReadsOnlyAllowlisted(t *testing.T) {
	f := newRunsFixture(t)
	for _, tc := range []struct {
		name      string
		list      []string
		wantNames [][]string
	}{
		{"allowlist", []string{"DEPLOY_TOKEN", "NOT_THERE", "DEPLOY_TOKEN"}, [][]string{{"DEPLOY_TOKEN", "NOT_THERE"}}},
		{"no allowlist", nil, [][]string{nil}},
		{"empty allowlist", []string{}, [][]string{{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := &hookStore{inner: rsgrpc.SecretStoreOf(ssgrpc.NewRunSecrets(f.svc))}
			res, err := runs.RunsTestResolve(f.runnerA, runs.New(f.dir, hs), "acme", runs.RunContext{Trigger: resolver.TriggerSchedule, Secrets: tc.list}, "", f.recipient())
			check(t, err)
			if !reflect.DeepEqual(hs.names, tc.wantNames) {
				t.Errorf("the secretstore was asked for names %q, want %q", hs.names, tc.wantNames)
			}
			injected := keys(f.open(t, res))
			switch {
			case tc.list == nil && len(injected) < 2,
				tc.list != nil && len(tc.list) == 0 && len(injected) != 0,
				len(tc.list) > 0 && !slices.Equal(injected, []string{"DEPLOY_TOKEN"}):
				t.Errorf("injected %v", injected)
			}
		})
	}
}
