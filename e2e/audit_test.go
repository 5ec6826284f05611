package e2e_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/e2e/harness"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// The reliability tests of the audit log (DESIGN §6, issue 5): events are
// never lost, never doubled, never made up, stay in order, verify as a
// hash chain, and never hold a value. They run the four services as
// separate processes (harness.StartServices) so that one can be stopped or
// killed while the others serve, and drive the load with gRPC clients
// through the gateway, one x-request-id per operation, by which every
// event is matched to the operation that caused it.

// canaryPrefix starts every value planted by these tests: a value, or any
// text holding one, contains it; its length is a multiple of 3, so the
// base64 of every value starts with the base64 of the prefix.
const canaryPrefix = "ozcanaryval-"

// auditParents are the chains the fixture's events go to.
var auditParents = []string{"system", "teams/acme", "teams/beta"}

// startServices starts the system service by service in a fresh data
// directory and stops it when the test ends.
func startServices(t *testing.T) *harness.Services {
	t.Helper()
	svc, err := harness.StartServices(binDir, filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatalf("start services: %v", err)
	}
	t.Cleanup(func() {
		if err := svc.Stop(); err != nil {
			t.Errorf("stop services: %v", err)
		}
	})
	return svc
}

// auditFixture is newTeam on separately started services, plus a runner
// of acme, two team secrets and an environment listing them, and gRPC
// clients for the load.
type auditFixture struct {
	svc    *harness.Services
	sys    *harness.System
	tm     team
	runner string
	cron   string // the token of the integration that starts runs
	conn   *grpc.ClientConn

	secrets   secretsv1.SecretServiceClient
	agents    scopev1.AgentServiceClient
	envs      scopev1.EnvironmentServiceClient
	tokens    scopev1.TokenServiceClient
	runs      scopev1.RunServiceClient
	audit     auditv1.AuditServiceClient
	recipient *scopev1.RecipientKey

	plantedMu sync.Mutex
	planted   []string
}

func newAuditFixture(t *testing.T) *auditFixture {
	t.Helper()
	svc := startServices(t)
	f := &auditFixture{svc: svc, sys: svc.System}
	f.tm = newTeam(t, f.sys)
	f.runner = newRunner(t, f.sys, "runner-a", "acme")
	conn, err := f.sys.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f.conn = conn
	f.secrets = secretsv1.NewSecretServiceClient(conn)
	f.agents = scopev1.NewAgentServiceClient(conn)
	f.envs = scopev1.NewEnvironmentServiceClient(conn)
	f.tokens = scopev1.NewTokenServiceClient(conn)
	f.runs = scopev1.NewRunServiceClient(conn)
	f.audit = auditv1.NewAuditServiceClient(conn)
	f.addScheduler(t)

	priv, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f.recipient = &scopev1.RecipientKey{KemId: 0x0020, PublicKey: priv.PublicKey().Bytes()}

	ctx := harness.WithToken(context.Background(), f.tm.alice)
	for _, name := range []string{"FIXED_A", "FIXED_B"} {
		if _, err := f.secrets.CreateSecret(ctx, &secretsv1.CreateSecretRequest{
			Parent: "teams/acme", SecretId: name, Value: []byte(f.plant()),
		}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	if _, err := f.envs.CreateEnvironment(ctx, &scopev1.CreateEnvironmentRequest{
		Parent: "teams/acme", EnvironmentId: "ops", SecretNames: []string{"FIXED_A", "FIXED_B", "NOT_THERE"},
	}); err != nil {
		t.Fatalf("create environment: %v", err)
	}
	return f
}

// plant returns a fresh value to store, and remembers it.
func (f *auditFixture) plant() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	v := canaryPrefix + hex.EncodeToString(b[:])
	f.plantedMu.Lock()
	f.planted = append(f.planted, v)
	f.plantedMu.Unlock()
	return v
}

// op is one operation of the load and what the log must say about it.
type op struct {
	worker, n int
	kind      string // what was done, for reports: "secret.create", "denied.secret", …
	reqID     string
	// What the event says when the operation succeeds (or, for a denied
	// one, is refused): its action, chain (team id, "" for the system
	// chain, "?" when not checked), resource ("" when not checked) and
	// outcome.
	action   string
	team     string
	resource string
	runID    string
	outcome  auditv1.Outcome
	denied   bool // the operation is meant to be refused
	// exists, for an operation that creates one resource under a name
	// used once, tells whether that resource exists now (whether the
	// operation committed).
	exists func() (bool, error)

	start, end time.Time
	code       codes.Code
	msg        string
}

// wantEvent reports whether the operation's answer acknowledges an event.
func (o *op) wantEvent() bool {
	if o.denied {
		return o.code == codes.PermissionDenied || o.code == codes.Unauthenticated
	}
	return o.code == codes.OK
}

// ownEvent reports whether the operation has an event of its own, under
// its request id: every acknowledged one but the refusal of an unknown
// token, which is counted with the others from its source, without a
// request id (TestAuditAnonymousCounted).
func (o *op) ownEvent() bool {
	return o.wantEvent() && !(o.denied && o.code == codes.Unauthenticated)
}

// loadWorker runs operations one after another, keeping track of what it
// made so that every operation it tries is meant to succeed (or, for the
// denied kinds, to be refused).
type loadWorker struct {
	f      *auditFixture
	id     int
	prefix string // of request ids and names: one per test
	rng    *mrand.Rand
	n      int
	ops    []*op

	secrets, personal, agents, envs []string // ids
	agentTokens                     [][2]string
	userTokens                      []string // token ids
}

type ctxs struct{ alice, bob, runner, cron, bad context.Context }

// call runs fn with the request id of o and records its answer.
func (w *loadWorker) call(o *op, ctx context.Context, fn func(context.Context) error) error {
	ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", o.reqID)
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	o.start = time.Now()
	err := fn(ctx)
	o.end = time.Now()
	st := status.Convert(err)
	o.code, o.msg = st.Code(), st.Message()
	return err
}

func remove[T comparable](s []T, i int) []T {
	s[i] = s[len(s)-1]
	return s[:len(s)-1]
}

// step runs one operation, chosen at random.
func (w *loadWorker) step(c ctxs) {
	w.n++
	o := &op{worker: w.id, n: w.n, reqID: fmt.Sprintf("%s-w%02d-%05d", w.prefix, w.id, w.n), team: "acme", outcome: auditv1.Outcome_OUTCOME_OK}
	w.ops = append(w.ops, o)
	f := w.f
	suffix := fmt.Sprintf("%s-w%02d-%05d", w.prefix, w.id, w.n)
	upper := strings.ToUpper(strings.ReplaceAll(suffix, "-", "_"))
	r := w.rng.IntN(100)
	switch {
	case r < 26 && len(w.secrets) > 0 && r >= 16: // team secret update
		i := w.rng.IntN(len(w.secrets))
		name := "teams/acme/secrets/" + w.secrets[i]
		o.kind, o.action, o.resource = "secret.update", "secret.update", name
		if w.call(o, c.alice, func(ctx context.Context) error {
			_, err := f.secrets.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: name, Value: []byte(f.plant())})
			return err
		}) != nil {
			w.secrets = remove(w.secrets, i)
		}
	case r < 31 && len(w.secrets) > 0 && r >= 26: // team secret delete
		i := w.rng.IntN(len(w.secrets))
		name := "teams/acme/secrets/" + w.secrets[i]
		o.kind, o.action, o.resource = "secret.delete", "secret.delete", name
		_ = w.call(o, c.alice, func(ctx context.Context) error {
			_, err := f.secrets.DeleteSecret(ctx, &secretsv1.DeleteSecretRequest{Name: name})
			return err
		})
		w.secrets = remove(w.secrets, i)
	case r < 31: // team secret create
		id := "S_" + upper
		name := "teams/acme/secrets/" + id
		o.kind, o.action, o.resource = "secret.create", "secret.create", name
		o.exists = f.exists(c.alice, func(ctx context.Context) error {
			_, err := f.secrets.GetSecret(ctx, &secretsv1.GetSecretRequest{Name: name})
			return err
		})
		if w.call(o, c.alice, func(ctx context.Context) error {
			_, err := f.secrets.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: id, Value: []byte(f.plant())})
			return err
		}) == nil {
			w.secrets = append(w.secrets, id)
		}
	case r < 43 && len(w.personal) > 0 && r >= 38: // personal secret update
		i := w.rng.IntN(len(w.personal))
		name := "users/bob/secrets/" + w.personal[i]
		o.kind, o.action, o.resource, o.team = "personal.update", "secret.update", name, ""
		if w.call(o, c.bob, func(ctx context.Context) error {
			_, err := f.secrets.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: "users/me/secrets/" + w.personal[i], Value: []byte(f.plant())})
			return err
		}) != nil {
			w.personal = remove(w.personal, i)
		}
	case r < 46 && len(w.personal) > 0 && r >= 43: // personal secret delete
		i := w.rng.IntN(len(w.personal))
		name := "users/bob/secrets/" + w.personal[i]
		o.kind, o.action, o.resource, o.team = "personal.delete", "secret.delete", name, ""
		_ = w.call(o, c.bob, func(ctx context.Context) error {
			_, err := f.secrets.DeleteSecret(ctx, &secretsv1.DeleteSecretRequest{Name: name})
			return err
		})
		w.personal = remove(w.personal, i)
	case r < 46: // personal secret create
		id := "P_" + upper
		name := "users/bob/secrets/" + id
		o.kind, o.action, o.resource, o.team = "personal.create", "secret.create", name, ""
		o.exists = f.exists(c.bob, func(ctx context.Context) error {
			_, err := f.secrets.GetSecret(ctx, &secretsv1.GetSecretRequest{Name: name})
			return err
		})
		if w.call(o, c.bob, func(ctx context.Context) error {
			_, err := f.secrets.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: "users/me", SecretId: id, Value: []byte(f.plant())})
			return err
		}) == nil {
			w.personal = append(w.personal, id)
		}
	case r < 54 && len(w.agents) > 0 && r >= 50: // agent update
		i := w.rng.IntN(len(w.agents))
		name := "teams/acme/agents/" + w.agents[i]
		o.kind, o.action, o.resource = "agent.update", "agent.update", name
		if w.call(o, c.alice, func(ctx context.Context) error {
			_, err := f.agents.UpdateAgent(ctx, &scopev1.UpdateAgentRequest{Name: name, AddSecretNames: []string{"EXTRA_" + upper}})
			return err
		}) != nil {
			w.dropAgent(i)
		}
	case r < 56 && len(w.agents) > 0 && r >= 54: // agent delete
		i := w.rng.IntN(len(w.agents))
		name := "teams/acme/agents/" + w.agents[i]
		o.kind, o.action, o.resource = "agent.delete", "agent.delete", name
		_ = w.call(o, c.alice, func(ctx context.Context) error {
			_, err := f.agents.DeleteAgent(ctx, &scopev1.DeleteAgentRequest{Name: name})
			return err
		})
		w.dropAgent(i)
	case r < 56: // agent create
		id := "a-" + suffix
		name := "teams/acme/agents/" + id
		o.kind, o.action, o.resource = "agent.create", "agent.create", name
		o.exists = f.exists(c.alice, func(ctx context.Context) error {
			_, err := f.agents.GetAgent(ctx, &scopev1.GetAgentRequest{Name: name})
			return err
		})
		if w.call(o, c.alice, func(ctx context.Context) error {
			_, err := f.agents.CreateAgent(ctx, &scopev1.CreateAgentRequest{Parent: "teams/acme", AgentId: id, SecretNames: []string{"AGENT_ONLY_" + upper}})
			return err
		}) == nil {
			w.agents = append(w.agents, id)
		}
	case r < 64 && len(w.envs) > 0 && r >= 60: // environment update
		i := w.rng.IntN(len(w.envs))
		name := "teams/acme/environments/" + w.envs[i]
		o.kind, o.action, o.resource = "environment.update", "environment.update", name
		if w.call(o, c.alice, func(ctx context.Context) error {
			_, err := f.envs.UpdateEnvironment(ctx, &scopev1.UpdateEnvironmentRequest{Name: name, AddSecretNames: []string{"EXTRA_" + upper}})
			return err
		}) != nil {
			w.envs = remove(w.envs, i)
		}
	case r < 66 && len(w.envs) > 0 && r >= 64: // environment delete
		i := w.rng.IntN(len(w.envs))
		name := "teams/acme/environments/" + w.envs[i]
		o.kind, o.action, o.resource = "environment.delete", "environment.delete", name
		_ = w.call(o, c.alice, func(ctx context.Context) error {
			_, err := f.envs.DeleteEnvironment(ctx, &scopev1.DeleteEnvironmentRequest{Name: name})
			return err
		})
		w.envs = remove(w.envs, i)
	case r < 66: // environment create
		id := "e-" + suffix
		name := "teams/acme/environments/" + id
		o.kind, o.action, o.resource = "environment.create", "environment.create", name
		o.exists = f.exists(c.alice, func(ctx context.Context) error {
			_, err := f.envs.GetEnvironment(ctx, &scopev1.GetEnvironmentRequest{Name: name})
			return err
		})
		if w.call(o, c.alice, func(ctx context.Context) error {
			_, err := f.envs.CreateEnvironment(ctx, &scopev1.CreateEnvironmentRequest{Parent: "teams/acme", EnvironmentId: id, SecretNames: []string{"FIXED_A"}})
			return err
		}) == nil {
			w.envs = append(w.envs, id)
		}
	case r < 71 && len(w.agentTokens) > 0 && r >= 69: // agent token revoke
		i := w.rng.IntN(len(w.agentTokens))
		name := "tokens/" + w.agentTokens[i][0]
		o.kind, o.action, o.resource = "agent-token.revoke", "token.revoke", name
		_ = w.call(o, c.alice, func(ctx context.Context) error {
			_, err := f.tokens.RevokeToken(ctx, &scopev1.RevokeTokenRequest{Name: name})
			return err
		})
		w.agentTokens = remove(w.agentTokens, i)
	case r < 71 && len(w.agents) > 0: // agent token create
		agent := w.agents[w.rng.IntN(len(w.agents))]
		o.kind, o.action = "agent-token.create", "token.create"
		var resp *scopev1.CreateTokenResponse
		if w.call(o, c.alice, func(ctx context.Context) (err error) {
			resp, err = f.tokens.CreateToken(ctx, &scopev1.CreateTokenRequest{Principal: "teams/acme/agents/" + agent})
			return err
		}) == nil {
			o.resource = resp.GetToken().GetName()
			w.agentTokens = append(w.agentTokens, [2]string{resp.GetToken().GetTokenId(), agent})
		}
	case r < 76 && len(w.userTokens) > 0 && r >= 74: // user token revoke
		i := w.rng.IntN(len(w.userTokens))
		name := "tokens/" + w.userTokens[i]
		o.kind, o.action, o.resource, o.team = "user-token.revoke", "token.revoke", name, ""
		_ = w.call(o, c.bob, func(ctx context.Context) error {
			_, err := f.tokens.RevokeToken(ctx, &scopev1.RevokeTokenRequest{Name: name})
			return err
		})
		w.userTokens = remove(w.userTokens, i)
	case r < 76: // user token create
		o.kind, o.action, o.team = "user-token.create", "token.create", ""
		var resp *scopev1.CreateTokenResponse
		if w.call(o, c.bob, func(ctx context.Context) (err error) {
			resp, err = f.tokens.CreateToken(ctx, &scopev1.CreateTokenRequest{Principal: "users/me", Description: "load " + suffix})
			return err
		}) == nil {
			o.resource = resp.GetToken().GetName()
			w.userTokens = append(w.userTokens, resp.GetToken().GetTokenId())
		}
	case r < 92: // run resolution; one in eight strict with a missing name
		runID := "r-" + suffix
		o.kind, o.action, o.resource, o.runID = "run.resolve", "run.resolve", "teams/acme/runs/"+runID, runID
		rc := &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_SCHEDULE}
		switch {
		case r >= 90:
			o.kind, o.outcome = "run.resolve-strict", auditv1.Outcome_OUTCOME_FAILED
			rc.Secrets, rc.Strict = &scopev1.SecretNameList{Names: []string{"FIXED_A", "NO_SUCH_" + upper}}, true
		case r%2 == 0:
			rc.Environment = "ops"
		default:
			names := []string{"FIXED_A", "FIXED_B"}
			if len(w.secrets) > 0 {
				names = append(names, w.secrets[w.rng.IntN(len(w.secrets))])
			}
			rc.Secrets = &scopev1.SecretNameList{Names: names}
		}
		// The scheduler starts the run (an operation of its own), the
		// runner redeems the ticket.
		ticket, ok := f.startRun(&w.ops, o, c, rc)
		if !ok {
			return
		}
		o.exists = f.exists(c.alice, resolvedRun(f.runs, o.resource))
		_ = w.call(o, c.runner, func(ctx context.Context) error {
			resp, err := f.runs.ResolveRun(ctx, &scopev1.ResolveRunRequest{Parent: "teams/acme", Ticket: ticket, Recipient: f.recipient})
			if err == nil && (resp.GetRun().GetOutcome() == scopev1.RunOutcome_RUN_OUTCOME_FAILED_STRICT) != rc.Strict {
				return status.Errorf(codes.Unknown, "run %s: outcome %v, strict %v", runID, resp.GetRun().GetOutcome(), rc.Strict)
			}
			return err
		})
	case r < 94: // a member creating a team secret: refused by the secretstore
		o.kind, o.action, o.denied, o.outcome = "denied.secret", "request.denied", true, auditv1.Outcome_OUTCOME_DENIED
		_ = w.call(o, c.bob, func(ctx context.Context) error {
			_, err := f.secrets.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "D_" + upper, Value: []byte(f.plant())})
			return err
		})
	case r < 96: // a member creating an agent identity: refused by the resolver
		o.kind, o.action, o.denied, o.outcome = "denied.agent", "request.denied", true, auditv1.Outcome_OUTCOME_DENIED
		_ = w.call(o, c.bob, func(ctx context.Context) error {
			_, err := f.agents.CreateAgent(ctx, &scopev1.CreateAgentRequest{Parent: "teams/acme", AgentId: "d-" + suffix})
			return err
		})
	case r < 98: // an unknown token: refused by the secretstore
		o.kind, o.action, o.denied, o.outcome, o.team = "unauthenticated.secret", "request.denied", true, auditv1.Outcome_OUTCOME_DENIED, "?"
		_ = w.call(o, c.bad, func(ctx context.Context) error {
			_, err := f.secrets.ListSecrets(ctx, &secretsv1.ListSecretsRequest{Parent: "teams/acme"})
			return err
		})
	default: // an unknown token: refused by the resolver
		o.kind, o.action, o.denied, o.outcome = "unauthenticated.agent", "request.denied", true, auditv1.Outcome_OUTCOME_DENIED
		_ = w.call(o, c.bad, func(ctx context.Context) error {
			_, err := f.agents.ListAgents(ctx, &scopev1.ListAgentsRequest{Parent: "teams/acme"})
			return err
		})
	}
}

// dropAgent forgets agent i and its tokens (which deleting it revokes).
func (w *loadWorker) dropAgent(i int) {
	agent := w.agents[i]
	w.agents = remove(w.agents, i)
	w.agentTokens = slices.DeleteFunc(w.agentTokens, func(t [2]string) bool { return t[1] == agent })
}

// exists makes an operation's existence check: get, with ctx's token,
// tells whether the resource exists (OK) or not (NotFound).
func (f *auditFixture) exists(ctx context.Context, get func(context.Context) error) func() (bool, error) {
	return func() (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		switch err := get(ctx); status.Code(err) {
		case codes.OK:
			return true, nil
		case codes.NotFound:
			return false, nil
		default:
			return false, err
		}
	}
}

// startRun starts the run that resolution o resolves, as the scheduler
// (c.cron), as an operation of its own, which it inserts before o in ops;
// it returns its ticket, or false when the start failed (o is then taken
// out: it is not made).
func (f *auditFixture) startRun(ops *[]*op, o *op, c ctxs, rc *scopev1.RunContext) (string, bool) {
	s := &op{worker: o.worker, n: o.n, reqID: o.reqID + "-start", team: "acme", outcome: auditv1.Outcome_OUTCOME_OK,
		kind: "run.start", action: "run.start", resource: o.resource, runID: o.runID}
	*ops = append((*ops)[:len(*ops)-1], s, o) // before o, the last
	s.exists = f.exists(c.alice, func(ctx context.Context) error {
		_, err := f.runs.GetRun(ctx, &scopev1.GetRunRequest{Name: o.resource})
		return err
	})
	var ticket string
	err := (&loadWorker{}).call(s, c.cron, func(ctx context.Context) error {
		resp, err := f.runs.StartRun(ctx, &scopev1.StartRunRequest{Parent: "teams/acme", Context: rc, RunId: o.runID})
		ticket = resp.GetTicket()
		return err
	})
	if err != nil {
		*ops = (*ops)[:len(*ops)-1]
		return "", false
	}
	return ticket, true
}

// addScheduler creates the integration that starts acme's runs (its
// token in f.cron).
func (f *auditFixture) addScheduler(t *testing.T) {
	t.Helper()
	integ, err := scopev1.NewIntegrationServiceClient(f.conn).CreateIntegration(harness.WithToken(context.Background(), f.tm.alice),
		&scopev1.CreateIntegrationRequest{Parent: "teams/acme", IntegrationId: "cron", Trigger: scopev1.Trigger_TRIGGER_SCHEDULE})
	if err != nil {
		t.Fatalf("create the scheduler integration: %v", err)
	}
	f.cron = integ.GetBearerToken()
}

// countKind counts the operations of kind.
func countKind(ops []*op, kind string) int {
	n := 0
	for _, o := range ops {
		if o.kind == kind {
			n++
		}
	}
	return n
}

// resolvedRun tells whether run name was resolved (as opposed to only
// started): NotFound while it is not.
func resolvedRun(runs scopev1.RunServiceClient, name string) func(context.Context) error {
	return func(ctx context.Context) error {
		resp, err := runs.GetRun(ctx, &scopev1.GetRunRequest{Name: name})
		if err == nil && resp.GetRun().GetState() == scopev1.RunState_RUN_STATE_STARTED {
			return status.Error(codes.NotFound, "started, not resolved")
		}
		return err
	}
}

// runLoad runs workers until total operations were started or stop is
// closed, and returns every operation in the order each worker ran them.
func runLoad(f *auditFixture, prefix string, workers, total int, stop <-chan struct{}) []*op {
	c := ctxs{
		alice:  harness.WithToken(context.Background(), f.tm.alice),
		bob:    harness.WithToken(context.Background(), f.tm.bob),
		runner: harness.WithToken(context.Background(), f.runner),
		cron:   harness.WithToken(context.Background(), f.cron),
		bad:    harness.WithToken(context.Background(), "oz_notavalidtoken0000000000000000"),
	}
	var started atomic.Int64
	ws := make([]*loadWorker, workers)
	var wg sync.WaitGroup
	for i := range ws {
		ws[i] = &loadWorker{f: f, id: i, prefix: prefix, rng: mrand.New(mrand.NewPCG(uint64(i), 42))}
		wg.Add(1)
		go func(w *loadWorker) {
			defer wg.Done()
			for started.Add(1) <= int64(total) {
				select {
				case <-stop:
					return
				default:
				}
				w.step(c)
			}
		}(ws[i])
	}
	wg.Wait()
	var ops []*op
	for _, w := range ws {
		ops = append(ops, w.ops...)
	}
	return ops
}

// exportAll reads every event of the chains, in chain order, as a system
// admin.
func (f *auditFixture) exportAll(t *testing.T) map[string][]*auditv1.Event {
	t.Helper()
	ctx := harness.WithToken(context.Background(), f.sys.AdminToken)
	out := map[string][]*auditv1.Event{}
	for _, parent := range auditParents {
		req := &auditv1.ExportEventsRequest{Parent: parent, PageSize: 1000}
		for {
			resp, err := f.audit.ExportEvents(ctx, req)
			if err != nil {
				t.Fatalf("export %s: %v", parent, err)
			}
			out[parent] = append(out[parent], resp.GetEvents()...)
			if resp.GetNextPageToken() == "" {
				break
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
	return out
}

// heads returns the chains' head seqs.
func (f *auditFixture) heads(t *testing.T) map[string]int64 {
	t.Helper()
	ctx := harness.WithToken(context.Background(), f.sys.AdminToken)
	out := map[string]int64{}
	for _, parent := range auditParents {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := f.audit.ExportEvents(ctx, &auditv1.ExportEventsRequest{Parent: parent, PageSize: 1})
		cancel()
		if err != nil {
			t.Fatalf("head of %s: %v", parent, err)
		}
		out[parent] = resp.GetHead().GetSeq()
	}
	return out
}

// waitDelivered waits until every event ready says is there is in the
// log and the chains have stopped growing, and returns the chains and
// when they were first seen as they are (delivery ended before).
func (f *auditFixture) waitDelivered(t *testing.T, prefix string, ready func(byReq map[string][]*auditv1.Event) bool) (map[string][]*auditv1.Event, time.Time) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last map[string]int64
	var since time.Time
	steady := 0
	for {
		h := f.heads(t)
		if fmt.Sprint(h) == fmt.Sprint(last) {
			steady++
		} else {
			steady, since = 0, time.Now()
		}
		last = h
		// Export only once the heads have not moved for two looks a
		// second apart: delivery may resume seconds after the audit
		// service is back (the emitters' reconnection backoff).
		if steady >= 2 {
			chains := f.exportAll(t)
			if ready(byRequest(chains, prefix)) {
				return chains, since
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("events still missing after 90s; heads %v", h)
		}
		time.Sleep(time.Second)
	}
}

// byRequest indexes the events of the load (request ids with prefix).
func byRequest(chains map[string][]*auditv1.Event, prefix string) map[string][]*auditv1.Event {
	out := map[string][]*auditv1.Event{}
	for _, evs := range chains {
		for _, ev := range evs {
			if strings.HasPrefix(ev.GetRequestId(), prefix+"-") {
				out[ev.GetRequestId()] = append(out[ev.GetRequestId()], ev)
			}
		}
	}
	return out
}

// window is when a killed service was not serving: from the signal to
// healthy again. An operation that overlaps one and failed may or may not
// have committed.
type window struct {
	name       string
	from, till time.Time
}

// checkOps checks the log against the operations: one event for every
// acknowledged operation (success, or refusal of the denied kinds),
// saying what happened; none for every operation that failed outside the
// windows; for one that failed inside a window, at most one, and exactly
// one when the resource it creates exists. It returns the expected and
// found events per action.
func checkOps(t *testing.T, ops []*op, byReq map[string][]*auditv1.Event, windows []window) (want, got map[string]int) {
	t.Helper()
	want, got = map[string]int{}, map[string]int{}
	seen := map[string]bool{}
	errorsLeft := 30
	errf := func(format string, args ...any) {
		t.Helper()
		if errorsLeft > 0 {
			t.Errorf(format, args...)
		} else if errorsLeft == 0 {
			t.Errorf("… more errors not shown")
		}
		errorsLeft--
	}
	for _, o := range ops {
		seen[o.reqID] = true
		evs := byReq[o.reqID]
		for _, ev := range evs {
			got[ev.GetAction()]++
		}
		inWindow := false
		for _, w := range windows {
			if o.start.Before(w.till) && o.end.After(w.from) {
				inWindow = true
			}
		}
		switch {
		case o.ownEvent():
			want[o.action]++
			if len(evs) != 1 {
				errf("%s %s (%s): acknowledged, %d events, want 1", o.kind, o.reqID, o.code, len(evs))
				continue
			}
		case inWindow:
			if len(evs) > 1 {
				errf("%s %s failed in flight (%s: %s): %d events, want at most 1", o.kind, o.reqID, o.code, o.msg, len(evs))
				continue
			}
			if o.exists != nil {
				committed, err := o.exists()
				if err != nil {
					errf("%s %s: does what it creates exist? %v", o.kind, o.reqID, err)
					continue
				}
				if n := map[bool]int{false: 0, true: 1}[committed]; len(evs) != n {
					errf("%s %s failed in flight (%s: %s); it created its resource: %v, and has %d events, want %d",
						o.kind, o.reqID, o.code, o.msg, committed, len(evs), n)
					continue
				}
			}
			if len(evs) == 1 {
				want[o.action]++
			}
		default:
			if len(evs) != 0 {
				errf("%s %s failed (%s: %s) outside any kill: %d events, want none: %v", o.kind, o.reqID, o.code, o.msg, len(evs), evs[0])
			}
			continue
		}
		if len(evs) == 0 {
			continue
		}
		ev := evs[0]
		switch {
		case ev.GetAction() != o.action:
			errf("%s %s: event action %q, want %q", o.kind, o.reqID, ev.GetAction(), o.action)
		case o.team != "?" && ev.GetTeam() != o.team:
			errf("%s %s: event on chain of team %q, want %q", o.kind, o.reqID, ev.GetTeam(), o.team)
		case o.resource != "" && ev.GetResource() != o.resource:
			errf("%s %s: event resource %q, want %q", o.kind, o.reqID, ev.GetResource(), o.resource)
		case ev.GetRunId() != o.runID:
			errf("%s %s: event run id %q, want %q", o.kind, o.reqID, ev.GetRunId(), o.runID)
		case ev.GetOutcome() != o.outcome:
			errf("%s %s: event outcome %v, want %v", o.kind, o.reqID, ev.GetOutcome(), o.outcome)
		}
	}
	for id, evs := range byReq {
		if !seen[id] {
			errf("%d events with request id %s of no operation: %v", len(evs), id, evs[0])
		}
	}
	return want, got
}

// emitterOf splits an event id "{emitter}-{epoch}-{sequence}".
func emitterOf(id string) (emitter, epoch, seq string) {
	parts := strings.SplitN(id, "-", 3)
	if len(parts) != 3 {
		return id, "", ""
	}
	return parts[0], parts[1], parts[2]
}

// checkIDOrder checks that, in every chain, the events of each emitter
// (one epoch of its outbox) follow their outbox sequence, and that no
// event id appears twice in the log. It returns the events per emitter.
func checkIDOrder(t *testing.T, chains map[string][]*auditv1.Event, emitters ...string) map[string]int {
	t.Helper()
	ids := map[string]string{}
	perEmitter := map[string]int{}
	for parent, evs := range chains {
		last := map[string]string{}
		lastID := map[string]string{}
		for _, ev := range evs {
			if where, dup := ids[ev.GetId()]; dup {
				t.Errorf("event %s appears twice: %s and %s seq %d", ev.GetId(), where, parent, ev.GetSeq())
			}
			ids[ev.GetId()] = fmt.Sprintf("%s seq %d", parent, ev.GetSeq())
			emitter, epoch, seq := emitterOf(ev.GetId())
			perEmitter[emitter]++
			if !slices.Contains(emitters, emitter) {
				continue
			}
			key := emitter + "-" + epoch
			if prev, ok := last[key]; ok && !(len(seq) == len(prev) && seq > prev) {
				t.Errorf("%s seq %d: event %s comes after %s: out of its emitter's order", parent, ev.GetSeq(), ev.GetId(), lastID[key])
			}
			last[key], lastID[key] = seq, ev.GetId()
		}
	}
	return perEmitter
}

// checkWorkerOrder checks that the events of one worker's operations,
// which it ran one after another, are in that order in every chain, for
// each emitter: whatever an emitter commits later is appended later.
func checkWorkerOrder(t *testing.T, ops []*op, byReq map[string][]*auditv1.Event) {
	t.Helper()
	type key struct {
		worker          int
		team, emitterID string
	}
	last := map[key]*auditv1.Event{}
	bad := 0
	for _, o := range ops { // each worker's operations in order
		for _, ev := range byReq[o.reqID] {
			emitter, _, _ := emitterOf(ev.GetId())
			k := key{o.worker, ev.GetTeam(), emitter}
			if prev := last[k]; prev != nil && ev.GetSeq() <= prev.GetSeq() {
				if bad++; bad <= 10 {
					t.Errorf("chain %q: event %s (seq %d, request %s) is before %s (seq %d, request %s), which its worker caused earlier",
						ev.GetTeam(), ev.GetId(), ev.GetSeq(), ev.GetRequestId(), prev.GetId(), prev.GetSeq(), prev.GetRequestId())
				}
			}
			last[k] = ev
		}
	}
}

// chainFlag is the oz audit flag that selects parent, and the token of
// someone who may read it.
func (f *auditFixture) chainFlag(parent string) (string, []string) {
	switch parent {
	case "teams/acme":
		return f.tm.alice, []string{"--team", "acme"}
	case "teams/beta":
		return f.tm.carol, []string{"--team", "beta"}
	}
	return f.sys.AdminToken, []string{"--system"}
}

// verifyWithCLI runs `oz audit verify` on every chain (server side), then
// `oz audit export` and `oz audit verify --file` on the export, checks
// that the export holds exactly the events of chains, and returns the
// export files.
func (f *auditFixture) verifyWithCLI(t *testing.T, chains map[string][]*auditv1.Event) []string {
	t.Helper()
	dir := t.TempDir()
	var files []string
	for _, parent := range auditParents {
		token, flags := f.chainFlag(parent)
		n := len(chains[parent])
		res := ozOK(t, f.sys, token, "", append([]string{"audit", "verify"}, flags...)...)
		if want := fmt.Sprintf("%s: %d events verified\n", parent, n); !strings.HasPrefix(res.Stdout, want) {
			t.Errorf("oz audit verify %v: got %q, want it to start with %q", flags, res.Stdout, want)
		}
		file := filepath.Join(dir, strings.ReplaceAll(parent, "/", "-")+".jsonl")
		ozOK(t, f.sys, token, "", append([]string{"audit", "export", "-O", file}, flags...)...)
		files = append(files, file)
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(lines) != n {
			t.Errorf("export of %s: %d lines, want %d events", parent, len(lines), n)
		}
		for i, line := range lines {
			var ev struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil || i >= n || ev.ID != chains[parent][i].GetId() {
				t.Errorf("export of %s, line %d: id %q (%v), want the chain's event %d", parent, i+1, ev.ID, err, i+1)
				break
			}
		}
		res = ozOK(t, f.sys, token, "", "audit", "verify", "--file", file, "--output", "json")
		var rep struct {
			Chain          string `json:"chain"`
			Valid          bool   `json:"valid"`
			VerifiedEvents int    `json:"verified_events"`
		}
		if err := json.Unmarshal([]byte(res.Stdout), &rep); err != nil || !rep.Valid || rep.VerifiedEvents != n || rep.Chain != parent {
			t.Errorf("oz audit verify --file (%s): %s (%v), want %s valid with %d events", parent, res.Stdout, err, parent, n)
		}
	}
	return files
}

// checkNoPlanted searches the files for any planted value, its base64 or
// hex, and the SHA-256 of any (hex or base64); and every file of the data
// directory for the values, their base64 and hex.
func checkNoPlanted(t *testing.T, sys *harness.System, planted []string, files []string) {
	t.Helper()
	// Every value starts with canaryPrefix: search for it, and for what
	// any encoding of a value must contain whatever its alignment.
	needles := map[string][]byte{"value": []byte(canaryPrefix), "hex": []byte(hex.EncodeToString([]byte(canaryPrefix)))}
	for k := range 3 {
		in := append(make([]byte, k), canaryPrefix...)
		from, to := 0, 4*((k+len(canaryPrefix))/3)
		if k > 0 {
			from = 4
		}
		needles[fmt.Sprintf("base64@%d", k)] = []byte(base64.StdEncoding.EncodeToString(in)[from:to])
		needles[fmt.Sprintf("base64url@%d", k)] = []byte(base64.URLEncoding.EncodeToString(in)[from:to])
	}
	digests := map[string]bool{}
	for _, v := range planted {
		s := sha256.Sum256([]byte(v))
		digests[hex.EncodeToString(s[:])] = true
		digests[base64.StdEncoding.EncodeToString(s[:])] = true
		digests[base64.RawURLEncoding.EncodeToString(s[:])] = true
	}
	digestRE := regexp.MustCompile(`[0-9a-f]{64}|[A-Za-z0-9+/]{43}=|[A-Za-z0-9_-]{43}`)
	scanned := 0
	scan := func(path string, withDigests bool) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("read %s: %v", path, err)
			return
		}
		scanned++
		for what, n := range needles {
			if i := bytes.Index(b, n); i >= 0 {
				t.Errorf("%s holds a planted value (%s) at byte %d", path, what, i)
			}
		}
		if withDigests {
			for _, m := range digestRE.FindAll(b, -1) {
				if digests[string(m)] {
					t.Errorf("%s holds the SHA-256 of a planted value", path)
				}
			}
		}
	}
	for _, file := range files {
		scan(file, true)
	}
	scan(filepath.Join(sys.DataDir, "audit.db"), true)
	err := filepath.Walk(sys.DataDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		scan(path, false)
		return nil
	})
	if err != nil {
		t.Errorf("scan %s: %v", sys.DataDir, err)
	}
	if scanned < len(files)+6 {
		t.Errorf("scanned %d files, want the exports, the databases, the logs and the keys", scanned)
	}
	t.Logf("no planted value (of %d), nor its base64, hex or SHA-256, in %d exports, audit.db or the %d files of the data directory",
		len(planted), len(files), scanned-len(files)-1)
}

// actionTable formats want and got per action.
func actionTable(want, got map[string]int) (string, bool) {
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	same := true
	for _, k := range keys {
		mark := ""
		if want[k] != got[k] {
			mark, same = "  MISMATCH", false
		}
		fmt.Fprintf(&b, "  %-20s ops %5d  events %5d%s\n", k, want[k], got[k], mark)
	}
	return b.String(), same
}

// TestAuditStoppedUnderLoad stops the audit service, runs 10,000 mixed
// operations, starts it again, and checks that every event arrives exactly
// once, in order, and that every chain verifies, on the server and as an
// export; and that no value planted by the load is in any event or in the
// audit service's database.
func TestAuditStoppedUnderLoad(t *testing.T) {
	f := newAuditFixture(t)
	const total, workers, prefix = 10000, 16, "al"
	audit := f.svc.Proc("audit")
	if err := audit.Stop(); err != nil {
		t.Fatalf("stop the audit service: %v", err)
	}
	start := time.Now()
	ops := runLoad(f, prefix, workers, total, nil)
	loadTime := time.Since(start)
	acked, owned, failed := 0, 0, 0
	for _, o := range ops {
		if o.ownEvent() {
			owned++
		}
		if o.wantEvent() {
			acked++
		} else if failed++; failed <= 20 {
			t.Errorf("%s %s: %s: %s (the audit service being down must not fail anything)", o.kind, o.reqID, o.code, o.msg)
		}
	}
	// Each run resolution is preceded by its start, an operation of its
	// own: total counts the steps.
	if steps := len(ops) - countKind(ops, "run.start"); steps != total {
		t.Fatalf("ran %d operations, want %d", steps, total)
	}
	if t.Failed() {
		t.FailNow()
	}

	start = time.Now()
	if err := audit.Start(); err != nil {
		t.Fatalf("start the audit service: %v", err)
	}
	chains, delivered := f.waitDelivered(t, prefix, func(byReq map[string][]*auditv1.Event) bool { return len(byReq) >= owned })
	deliveryTime := delivered.Sub(start)
	byReq := byRequest(chains, prefix)
	want, got := checkOps(t, ops, byReq, nil)
	table, same := actionTable(want, got)
	if !same {
		t.Errorf("events per action differ from the operations that succeeded:\n%s", table)
	}
	perEmitter := checkIDOrder(t, chains, "secretstore", "resolver")
	checkWorkerOrder(t, ops, byReq)
	files := f.verifyWithCLI(t, chains)
	checkNoPlanted(t, f.sys, f.planted, files)

	events := 0
	for _, evs := range byReq {
		events += len(evs)
	}
	t.Logf("%d operations by %d workers in %v (%.0f/s) with the audit service down; %d events delivered within %v of its start; chains: system %d, acme %d, beta %d events; by emitter %v\n%s",
		len(ops), workers, loadTime.Round(time.Millisecond), float64(len(ops))/loadTime.Seconds(), events,
		deliveryTime.Round(time.Millisecond), len(chains["system"]), len(chains["teams/acme"]), len(chains["teams/beta"]), perEmitter, table)
}

// serviceOf is the service that handles an operation kind.
func serviceOf(kind string) string {
	for _, p := range []string{"secret.", "personal.", "denied.secret", "unauthenticated.secret"} {
		if strings.HasPrefix(kind, p) {
			return "secretstore"
		}
	}
	return "resolver"
}

// TestAuditServiceKilledUnderLoad kills the secretstore, the resolver and
// the audit service with SIGKILL while operations run (the secretstore and
// the resolver twice), and restarts each at once: every
// acknowledged operation has its event, exactly once; an operation that
// failed has none, unless it was in flight when a service died, when it
// has at most one — exactly one when what it creates exists, none when it
// does not.
func TestAuditServiceKilledUnderLoad(t *testing.T) {
	f := newAuditFixture(t)
	const workers, prefix = 8, "ak"
	stop := make(chan struct{})
	done := make(chan []*op, 1)
	start := time.Now()
	go func() { done <- runLoad(f, prefix, workers, 1<<30, stop) }()
	var windows []window
	for _, name := range []string{"secretstore", "resolver", "audit", "secretstore", "resolver"} {
		time.Sleep(1200 * time.Millisecond)
		p := f.svc.Proc(name)
		from := time.Now()
		err := p.Kill()
		if err == nil {
			time.Sleep(200 * time.Millisecond)
			err = p.Start()
		}
		if err != nil {
			close(stop)
			<-done
			t.Fatalf("kill and restart %s: %v", name, err)
		}
		if name != "audit" { // which no operation waits for
			windows = append(windows, window{name, from, time.Now()})
		}
	}
	time.Sleep(2 * time.Second)
	close(stop)
	ops := <-done
	loadTime := time.Since(start)

	acked, inFlight, failed := 0, 0, 0
	after := map[string]int{} // acknowledged operations of the killed service after its restart
	for _, o := range ops {
		for _, w := range windows {
			if o.wantEvent() && serviceOf(o.kind) == w.name && o.start.After(w.till) {
				after[w.name]++
			}
		}
		switch {
		case o.wantEvent():
			acked++
		case slices.ContainsFunc(windows, func(w window) bool { return o.start.Before(w.till) && o.end.After(w.from) }):
			inFlight++
		default:
			failed++
		}
	}
	for _, w := range windows {
		if after[w.name] == 0 {
			t.Errorf("no operation on the %s succeeded after its restart: the test proves nothing about it", w.name)
		}
	}

	chains, _ := f.waitDelivered(t, prefix, func(byReq map[string][]*auditv1.Event) bool {
		n, owned := 0, 0
		for _, o := range ops {
			if o.ownEvent() {
				owned++
				if len(byReq[o.reqID]) > 0 {
					n++
				}
			}
		}
		return n == owned
	})
	byReq := byRequest(chains, prefix)
	want, got := checkOps(t, ops, byReq, windows)
	table, same := actionTable(want, got)
	if !same {
		t.Errorf("events per action differ from the operations that committed:\n%s", table)
	}
	// Both emitters' event ids follow their clocks (outbox.KV), and
	// concurrent commits may be appended in another order than their ids
	// (see services/internal/outbox/kv.go); each worker's operations, one
	// after another, are in order for both.
	perEmitter := checkIDOrder(t, chains)
	checkWorkerOrder(t, ops, byReq)
	f.verifyWithCLI(t, chains)

	committed := 0
	for _, o := range ops {
		if !o.wantEvent() && len(byReq[o.reqID]) > 0 {
			committed++
		}
	}
	var ws []string
	for _, w := range windows {
		ws = append(ws, fmt.Sprintf("%s down %v", w.name, w.till.Sub(w.from).Round(time.Millisecond)))
	}
	t.Logf("%d operations by %d workers in %v (%s): %d acknowledged, %d failed while a service was down or restarting (%d of them had committed, and have their event), %d failed otherwise (not reaching a restarted service yet); %d events of the load, by emitter %v\n%s",
		len(ops), workers, loadTime.Round(time.Millisecond), strings.Join(ws, ", "), acked, inFlight, committed, failed,
		len(byReq), perEmitter, table)
}

// TestAuditTamperedExport changes, deletes and reorders events of an
// export: `oz audit verify --file` exits 8 and names the first broken
// link, offline.
func TestAuditTamperedExport(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)
	var planted []string
	for _, name := range []string{"ALPHA", "BRAVO", "CHARLIE"} {
		v := canaryPrefix + strings.ToLower(name) + "-tamper"
		planted = append(planted, v)
		ozOK(t, sys, tm.alice, v, "secret", "create", "--team", name)
	}
	v := canaryPrefix + "alpha-rotated"
	planted = append(planted, v)
	ozOK(t, sys, tm.alice, v, "secret", "update", "--team", "--value", "ALPHA")
	ozOK(t, sys, tm.alice, "", "environment", "create", "dev", "--secret", "ALPHA")
	ozOK(t, sys, tm.alice, "", "agent", "create", "bot", "--secret", "BRAVO")
	ozOK(t, sys, tm.alice, "", "secret", "delete", "--team", "--force", "CHARLIE")

	// Wait for the chain to hold them all (team.create, two memberships,
	// and the seven changes above) and to stop growing.
	type verifyJSON struct {
		Valid          bool  `json:"valid"`
		VerifiedEvents int64 `json:"verified_events"`
		FirstBreak     *struct {
			Seq     int64  `json:"seq"`
			EventID string `json:"event_id"`
			Reason  string `json:"reason"`
		} `json:"first_break"`
	}
	var last int64 = -1
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		var rep verifyJSON
		res := ozOK(t, sys, tm.alice, "", "audit", "verify", "--team", "acme", "--output", "json")
		if err := json.Unmarshal([]byte(res.Stdout), &rep); err != nil || !rep.Valid {
			t.Fatalf("oz audit verify: %s (%v)", res.Stdout, err)
		}
		if rep.VerifiedEvents >= 10 && rep.VerifiedEvents == last {
			break
		}
		last = rep.VerifiedEvents
		if time.Now().After(deadline) {
			t.Fatalf("acme's chain holds %d events after 30s, want at least 10", last)
		}
	}

	dir := t.TempDir()
	export := filepath.Join(dir, "acme.jsonl")
	ozOK(t, sys, tm.alice, "", "audit", "export", "--team", "acme", "-O", export)
	raw, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	n := len(lines)
	if int64(n) != last {
		t.Fatalf("export has %d lines, want the chain's %d events", n, last)
	}
	idOf := func(line string) string {
		var ev struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.ID == "" {
			t.Fatalf("export line %q: %v", line, err)
		}
		return ev.ID
	}
	// flip changes the byte just after the first occurrence of marker in
	// line, keeping the line valid JSON.
	flip := func(line, marker string) string {
		i := strings.Index(line, marker)
		if i < 0 {
			t.Fatalf("no %q in export line %q", marker, line)
		}
		i += len(marker)
		b := []byte(line)
		switch c := b[i]; {
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c == 'A':
			b[i] = 'B'
		default:
			b[i] = 'A'
		}
		return string(b)
	}
	// verify runs `oz audit verify --file` with no server to talk to.
	offline := []string{"OZ_ADDR=127.0.0.1:1"}
	verify := func(file string, args ...string) harness.CLIResult {
		t.Helper()
		res, err := sys.OZ(tm.alice, nil, offline, append([]string{"audit", "verify", "--file", file}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := verify(export); res.Code != 0 || !strings.Contains(res.Stdout, fmt.Sprintf("teams/acme: %d events verified", n)) {
		t.Fatalf("the export as written: exit %d, stdout %q, stderr %q; want it to verify", res.Code, res.Stdout, res.Stderr)
	}

	k := 4 // an event in the middle of the chain
	replace := func(i int, line string) []string {
		out := slices.Clone(lines)
		out[i] = line
		return out
	}
	for _, tc := range []struct {
		name     string
		lines    []string
		seq      int64
		id       string
		reason   string
		verified int64
	}{
		{"changed byte in an event's resource", replace(k-1, flip(lines[k-1], `"resource":"teams/acme/`)), int64(k), idOf(lines[k-1]), "hash does not match", int64(k - 1)},
		{"changed byte in an event's prev_hash", replace(k-1, flip(lines[k-1], `"prev_hash":"`)), int64(k), idOf(lines[k-1]), "prev_hash does not match", int64(k - 1)},
		{"changed byte in the last event's action", replace(n-1, flip(lines[n-1], `"action":"`)), int64(n), idOf(lines[n-1]), "hash does not match", int64(n - 1)},
		{"deleted event", slices.Delete(slices.Clone(lines), k-1, k), int64(k), idOf(lines[k]), "missing", int64(k - 1)},
		{"deleted first event", lines[1:], 1, idOf(lines[1]), "does not start here", 0},
		{"reordered pair", append(append(slices.Clone(lines[:k-1]), lines[k], lines[k-1]), lines[k+1:]...), int64(k), idOf(lines[k]), "out of order", int64(k - 1)},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".jsonl")
			if err := os.WriteFile(file, []byte(strings.Join(tc.lines, "")), 0o600); err != nil {
				t.Fatal(err)
			}
			res := verify(file, "--output", "json")
			if res.Code != 8 {
				t.Fatalf("exit %d, want 8 (broken chain); stdout %q stderr %q", res.Code, res.Stdout, res.Stderr)
			}
			var rep verifyJSON
			if err := json.Unmarshal([]byte(res.Stdout), &rep); err != nil {
				t.Fatalf("output %q: %v", res.Stdout, err)
			}
			if rep.Valid || rep.FirstBreak == nil || rep.FirstBreak.Seq != tc.seq || rep.FirstBreak.EventID != tc.id ||
				!strings.Contains(rep.FirstBreak.Reason, tc.reason) || rep.VerifiedEvents != tc.verified {
				t.Errorf("got %s\nwant the first break at seq %d (event %s: %q) after %d verified events", res.Stdout, tc.seq, tc.id, tc.reason, tc.verified)
			}
			where := fmt.Sprintf("broken at seq %d (event %s)", tc.seq, tc.id)
			if !strings.Contains(res.Stderr, where) {
				t.Errorf("stderr %q does not say %q", res.Stderr, where)
			}
			// The same in text.
			if res := verify(file); res.Code != 8 || !strings.Contains(res.Stdout, "BROKEN") || !strings.Contains(res.Stderr, where) {
				t.Errorf("text: exit %d, stdout %q, stderr %q; want 8, BROKEN and %q", res.Code, res.Stdout, res.Stderr, where)
			}
		})
	}
	checkNoPlanted(t, sys, planted, []string{export})
}
