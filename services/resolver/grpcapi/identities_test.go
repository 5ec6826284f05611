package grpcapi_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	"github.com/ozsecrets/oz/services/resolver/resolvertest"
	"github.com/ozsecrets/oz/services/resolver/runs"
)

// Callers of the identity services beside those of the directory's matrix.
const (
	runnerToken = "RunnerToken" // runner r1, granted red
	agentToken  = "AgentToken"  // red's identity deployer
)

// newIDFixture extends the directory fixture: in red, the identity
// deployer (referencing DEPLOY_KEY) with a token and the environment prod;
// the runner r1, granted red, with its token.
func newIDFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	store, err := boltkv.Open(f.template, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	d := resolvertest.WithRuns(directory.New(resolver.NewStore(store, (&clock{now: t0}).Now)))
	sys := as(authenticate(t, d, f.tokens[sysAdmin]))
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = d.CreateAgent(sys, runs.Agent{Team: "red", ID: "deployer", DisplayName: "Deployer", SecretNames: []string{"DEPLOY_KEY"}})
	check(err)
	_, err = d.CreateEnvironment(sys, runs.Environment{Team: "red", ID: "prod", SecretNames: []string{"DEPLOY_KEY"}})
	check(err)
	_, f.tokens[runnerToken], err = d.CreateRunner(sys, "r1", []string{"red"})
	check(err)
	_, f.tokens[agentToken], err = d.CreateToken(sys, resolver.AgentPrincipal("red", "deployer"), 0, "fixture")
	check(err)
	return f
}

// idClients are the identity services (and the directory's) on one
// connection.
type idClients struct {
	agents  scopev1.AgentServiceClient
	envs    scopev1.EnvironmentServiceClient
	runners scopev1.RunnerServiceClient
	tokens  scopev1.TokenServiceClient
	dir     scopev1.DirectoryServiceClient
	auth    internalapiv1.AuthServiceClient
}

// dialIDs connects to e presenting the certificate of service name.
func dialIDs(t *testing.T, e *env, name string) idClients {
	t.Helper()
	tlsCfg, err := pki.ClientConfig(e.pki.For(name), e.pki.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := server.Dial(e.addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return idClients{
		agents:  scopev1.NewAgentServiceClient(conn),
		envs:    scopev1.NewEnvironmentServiceClient(conn),
		runners: scopev1.NewRunnerServiceClient(conn),
		tokens:  scopev1.NewTokenServiceClient(conn),
		dir:     scopev1.NewDirectoryServiceClient(conn),
		auth:    internalapiv1.NewAuthServiceClient(conn),
	}
}

// TestIdentityAuthorizationMatrix calls every RPC of AgentService,
// EnvironmentService and RunnerService, and the token and directory RPCs
// that identities and runners change, as every kind of caller, each on a
// fresh copy of the fixture. Runners and agent identities, though members
// of red, are not people: they are denied everything but GetCaller.
func TestIdentityAuthorizationMatrix(t *testing.T) {
	f := newIDFixture(t)
	const (
		ok = codes.OK
		pd = codes.PermissionDenied
		nf = codes.NotFound
		fp = codes.FailedPrecondition
	)
	type want struct{ sys, teamAdmin, member, other, runner, agent codes.Code }
	admins := func(c codes.Code) want { return want{c, c, pd, pd, pd, pd} }   // team admins and system admins
	members := func(c codes.Code) want { return want{c, c, c, pd, pd, pd} }   // the team's people
	sysOnly := func(c codes.Code) want { return want{c, pd, pd, pd, pd, pd} } // system admins
	tests := []struct {
		name string
		call func(ctx context.Context, c idClients) error
		want want
	}{
		{"CreateAgent", func(ctx context.Context, c idClients) error {
			_, err := c.agents.CreateAgent(ctx, &scopev1.CreateAgentRequest{Parent: "teams/red", AgentId: "new-bot"})
			return err
		}, admins(ok)},
		{"CreateAgentMissingTeam", func(ctx context.Context, c idClients) error {
			_, err := c.agents.CreateAgent(ctx, &scopev1.CreateAgentRequest{Parent: "teams/nope", AgentId: "new-bot"})
			return err
		}, sysOnly(nf)},
		{"GetAgent", func(ctx context.Context, c idClients) error {
			_, err := c.agents.GetAgent(ctx, &scopev1.GetAgentRequest{Name: "teams/red/agents/deployer"})
			return err
		}, members(ok)},
		{"GetDefaultAgent", func(ctx context.Context, c idClients) error {
			_, err := c.agents.GetAgent(ctx, &scopev1.GetAgentRequest{Name: "teams/red/agents/default"})
			return err
		}, members(ok)},
		{"GetAgentMissing", func(ctx context.Context, c idClients) error {
			_, err := c.agents.GetAgent(ctx, &scopev1.GetAgentRequest{Name: "teams/red/agents/ghost"})
			return err
		}, members(nf)},
		{"ListAgents", func(ctx context.Context, c idClients) error {
			_, err := c.agents.ListAgents(ctx, &scopev1.ListAgentsRequest{Parent: "teams/red"})
			return err
		}, members(ok)},
		{"UpdateAgent", func(ctx context.Context, c idClients) error {
			_, err := c.agents.UpdateAgent(ctx, &scopev1.UpdateAgentRequest{Name: "teams/red/agents/deployer", AddSecretNames: []string{"MORE"}})
			return err
		}, admins(ok)},
		{"UpdateAgentMissing", func(ctx context.Context, c idClients) error {
			_, err := c.agents.UpdateAgent(ctx, &scopev1.UpdateAgentRequest{Name: "teams/red/agents/ghost", Description: "x"})
			return err
		}, admins(nf)},
		{"DeleteAgent", func(ctx context.Context, c idClients) error {
			_, err := c.agents.DeleteAgent(ctx, &scopev1.DeleteAgentRequest{Name: "teams/red/agents/deployer"})
			return err
		}, admins(ok)},
		{"DeleteDefaultAgent", func(ctx context.Context, c idClients) error {
			_, err := c.agents.DeleteAgent(ctx, &scopev1.DeleteAgentRequest{Name: "teams/red/agents/default"})
			return err
		}, admins(fp)},
		{"DeleteAgentMissing", func(ctx context.Context, c idClients) error {
			_, err := c.agents.DeleteAgent(ctx, &scopev1.DeleteAgentRequest{Name: "teams/red/agents/ghost"})
			return err
		}, admins(nf)},
		{"CreateEnvironment", func(ctx context.Context, c idClients) error {
			_, err := c.envs.CreateEnvironment(ctx, &scopev1.CreateEnvironmentRequest{Parent: "teams/red", EnvironmentId: "staging"})
			return err
		}, admins(ok)},
		{"GetEnvironment", func(ctx context.Context, c idClients) error {
			_, err := c.envs.GetEnvironment(ctx, &scopev1.GetEnvironmentRequest{Name: "teams/red/environments/prod"})
			return err
		}, members(ok)},
		{"GetEnvironmentMissing", func(ctx context.Context, c idClients) error {
			_, err := c.envs.GetEnvironment(ctx, &scopev1.GetEnvironmentRequest{Name: "teams/red/environments/ghost"})
			return err
		}, members(nf)},
		{"ListEnvironments", func(ctx context.Context, c idClients) error {
			_, err := c.envs.ListEnvironments(ctx, &scopev1.ListEnvironmentsRequest{Parent: "teams/red"})
			return err
		}, members(ok)},
		{"UpdateEnvironment", func(ctx context.Context, c idClients) error {
			_, err := c.envs.UpdateEnvironment(ctx, &scopev1.UpdateEnvironmentRequest{Name: "teams/red/environments/prod", Description: "x"})
			return err
		}, admins(ok)},
		{"DeleteEnvironment", func(ctx context.Context, c idClients) error {
			_, err := c.envs.DeleteEnvironment(ctx, &scopev1.DeleteEnvironmentRequest{Name: "teams/red/environments/prod"})
			return err
		}, admins(ok)},
		{"DeleteEnvironmentMissing", func(ctx context.Context, c idClients) error {
			_, err := c.envs.DeleteEnvironment(ctx, &scopev1.DeleteEnvironmentRequest{Name: "teams/red/environments/ghost"})
			return err
		}, admins(nf)},
		{"CreateRunner", func(ctx context.Context, c idClients) error {
			_, err := c.runners.CreateRunner(ctx, &scopev1.CreateRunnerRequest{RunnerId: "r2", Teams: []string{"red"}})
			return err
		}, sysOnly(ok)},
		{"CreateRunnerMissingTeam", func(ctx context.Context, c idClients) error {
			_, err := c.runners.CreateRunner(ctx, &scopev1.CreateRunnerRequest{RunnerId: "r2", Teams: []string{"nope"}})
			return err
		}, sysOnly(nf)},
		{"GetRunner", func(ctx context.Context, c idClients) error {
			_, err := c.runners.GetRunner(ctx, &scopev1.GetRunnerRequest{Name: "runners/r1"})
			return err
		}, sysOnly(ok)},
		{"GetRunnerMissing", func(ctx context.Context, c idClients) error {
			_, err := c.runners.GetRunner(ctx, &scopev1.GetRunnerRequest{Name: "runners/ghost"})
			return err
		}, sysOnly(nf)},
		{"ListRunners", func(ctx context.Context, c idClients) error {
			_, err := c.runners.ListRunners(ctx, &scopev1.ListRunnersRequest{})
			return err
		}, sysOnly(ok)},
		{"DeleteRunner", func(ctx context.Context, c idClients) error {
			_, err := c.runners.DeleteRunner(ctx, &scopev1.DeleteRunnerRequest{Name: "runners/r1"})
			return err
		}, sysOnly(ok)},
		{"CreateTokenForAgent", func(ctx context.Context, c idClients) error {
			_, err := c.tokens.CreateToken(ctx, &scopev1.CreateTokenRequest{Principal: "teams/red/agents/deployer"})
			return err
		}, admins(ok)},
		{"CreateTokenForDefaultAgent", func(ctx context.Context, c idClients) error {
			_, err := c.tokens.CreateToken(ctx, &scopev1.CreateTokenRequest{Principal: "teams/red/agents/default"})
			return err
		}, admins(ok)},
		{"CreateTokenForMissingAgent", func(ctx context.Context, c idClients) error {
			_, err := c.tokens.CreateToken(ctx, &scopev1.CreateTokenRequest{Principal: "teams/red/agents/ghost"})
			return err
		}, admins(nf)},
		{"CreateTokenForRunner", func(ctx context.Context, c idClients) error {
			_, err := c.tokens.CreateToken(ctx, &scopev1.CreateTokenRequest{Principal: "runners/r1"})
			return err
		}, sysOnly(ok)},
		{"ListTokensOfAgent", func(ctx context.Context, c idClients) error {
			_, err := c.tokens.ListTokens(ctx, &scopev1.ListTokensRequest{Principal: "teams/red/agents/deployer"})
			return err
		}, admins(ok)},
		{"ListTokensOfRunner", func(ctx context.Context, c idClients) error {
			_, err := c.tokens.ListTokens(ctx, &scopev1.ListTokensRequest{Principal: "runners/r1"})
			return err
		}, sysOnly(ok)},
		{"GetTeam", func(ctx context.Context, c idClients) error {
			_, err := c.dir.GetTeam(ctx, &scopev1.GetTeamRequest{Name: "teams/red"})
			return err
		}, members(ok)},
		{"ListMemberships", func(ctx context.Context, c idClients) error {
			_, err := c.dir.ListMemberships(ctx, &scopev1.ListMembershipsRequest{Parent: "teams/red"})
			return err
		}, members(ok)},
		{"GetCaller", func(ctx context.Context, c idClients) error {
			_, err := c.dir.GetCaller(ctx, &scopev1.GetCallerRequest{})
			return err
		}, want{ok, ok, ok, ok, ok, ok}},
	}
	callers := []string{sysAdmin, teamAdmin, teamMember, otherTeam, runnerToken, agentToken, noToken, revokedToken}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, caller := range callers {
				t.Run(caller, func(t *testing.T) {
					e := f.serve(t)
					err := tt.call(withToken(t, f.tokens[caller]), dialIDs(t, e, "gateway"))
					want := codes.Unauthenticated
					switch caller {
					case sysAdmin:
						want = tt.want.sys
					case teamAdmin:
						want = tt.want.teamAdmin
					case teamMember:
						want = tt.want.member
					case otherTeam:
						want = tt.want.other
					case runnerToken:
						want = tt.want.runner
					case agentToken:
						want = tt.want.agent
					}
					if got := status.Code(err); got != want {
						t.Errorf("got %v (%v), want %v", got, status.Convert(err).Message(), want)
					}
				})
			}
		})
	}
}

// TestIdentityBadInput: malformed requests are InvalidArgument naming the
// field, never echo the input, and change nothing.
func TestIdentityBadInput(t *testing.T) {
	f := newIDFixture(t)
	e := f.serve(t)
	c := dialIDs(t, e, "gateway")
	const echo = "oz_0123456789abcdef_PASTEDxTOKEN"
	tests := []struct {
		name  string
		call  func(ctx context.Context) error
		field string
	}{
		{"CreateAgentBadParent", func(ctx context.Context) error {
			_, err := c.agents.CreateAgent(ctx, &scopev1.CreateAgentRequest{Parent: "red", AgentId: "bot"})
			return err
		}, "parent"},
		{"CreateAgentBadID", func(ctx context.Context) error {
			_, err := c.agents.CreateAgent(ctx, &scopev1.CreateAgentRequest{Parent: "teams/red", AgentId: echo})
			return err
		}, "agent_id"},
		{"CreateAgentReservedSecret", func(ctx context.Context) error {
			_, err := c.agents.CreateAgent(ctx, &scopev1.CreateAgentRequest{Parent: "teams/red", AgentId: "bot", SecretNames: []string{"OK", echo}})
			return err
		}, "secret_names"},
		{"CreateAgentBadSecret", func(ctx context.Context) error {
			_, err := c.agents.CreateAgent(ctx, &scopev1.CreateAgentRequest{Parent: "teams/red", AgentId: "bot", SecretNames: []string{"NOT-A-NAME"}})
			return err
		}, "secret_names"},
		{"GetAgentBadName", func(ctx context.Context) error {
			_, err := c.agents.GetAgent(ctx, &scopev1.GetAgentRequest{Name: "teams/red/agent/deployer"})
			return err
		}, "name"},
		{"ListAgentsBadPageToken", func(ctx context.Context) error {
			_, err := c.agents.ListAgents(ctx, &scopev1.ListAgentsRequest{Parent: "teams/red", PageToken: "!!"})
			return err
		}, "page_token"},
		{"UpdateAgentBadMask", func(ctx context.Context) error {
			_, err := c.agents.UpdateAgent(ctx, &scopev1.UpdateAgentRequest{Name: "teams/red/agents/deployer", UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"agent_id"}}})
			return err
		}, "update_mask"},
		{"UpdateAgentAddAndRemove", func(ctx context.Context) error {
			_, err := c.agents.UpdateAgent(ctx, &scopev1.UpdateAgentRequest{Name: "teams/red/agents/deployer", AddSecretNames: []string{"K"}, RemoveSecretNames: []string{"K"}})
			return err
		}, "remove_secret_names"},
		{"UpdateAgentLongEtag", func(ctx context.Context) error {
			_, err := c.agents.UpdateAgent(ctx, &scopev1.UpdateAgentRequest{Name: "teams/red/agents/deployer", Description: "x", Etag: strings.Repeat("e", 200)})
			return err
		}, "etag"},
		{"DeleteAgentBadName", func(ctx context.Context) error {
			_, err := c.agents.DeleteAgent(ctx, &scopev1.DeleteAgentRequest{Name: "teams/red/agents/"})
			return err
		}, "name"},
		{"CreateEnvironmentBadID", func(ctx context.Context) error {
			_, err := c.envs.CreateEnvironment(ctx, &scopev1.CreateEnvironmentRequest{Parent: "teams/red", EnvironmentId: "Prod"})
			return err
		}, "environment_id"},
		{"UpdateEnvironmentDisplayNameMask", func(ctx context.Context) error {
			_, err := c.envs.UpdateEnvironment(ctx, &scopev1.UpdateEnvironmentRequest{Name: "teams/red/environments/prod", UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}}})
			return err
		}, "update_mask"},
		{"UpdateEnvironmentBadSecret", func(ctx context.Context) error {
			_, err := c.envs.UpdateEnvironment(ctx, &scopev1.UpdateEnvironmentRequest{Name: "teams/red/environments/prod", AddSecretNames: []string{"LD_PRELOAD"}})
			return err
		}, "add_secret_names"},
		{"GetEnvironmentBadName", func(ctx context.Context) error {
			_, err := c.envs.GetEnvironment(ctx, &scopev1.GetEnvironmentRequest{Name: "teams/red/agents/deployer"})
			return err
		}, "name"},
		{"CreateRunnerNoTeams", func(ctx context.Context) error {
			_, err := c.runners.CreateRunner(ctx, &scopev1.CreateRunnerRequest{RunnerId: "r2"})
			return err
		}, "teams"},
		{"CreateRunnerBadTeam", func(ctx context.Context) error {
			_, err := c.runners.CreateRunner(ctx, &scopev1.CreateRunnerRequest{RunnerId: "r2", Teams: []string{echo}})
			return err
		}, "teams"},
		{"CreateRunnerBadID", func(ctx context.Context) error {
			_, err := c.runners.CreateRunner(ctx, &scopev1.CreateRunnerRequest{RunnerId: "r_2", Teams: []string{"red"}})
			return err
		}, "runner_id"},
		{"GetRunnerBadName", func(ctx context.Context) error {
			_, err := c.runners.GetRunner(ctx, &scopev1.GetRunnerRequest{Name: "r1"})
			return err
		}, "name"},
		{"CreateTokenBadAgent", func(ctx context.Context) error {
			_, err := c.tokens.CreateToken(ctx, &scopev1.CreateTokenRequest{Principal: "teams/red/agents/" + echo})
			return err
		}, "principal"},
		{"ListTokensBadRunner", func(ctx context.Context) error {
			_, err := c.tokens.ListTokens(ctx, &scopev1.ListTokensRequest{Principal: "runners/"})
			return err
		}, "principal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, e)
			err := tt.call(withToken(t, f.tokens[sysAdmin]))
			wantCode(t, err, codes.InvalidArgument)
			if got := fieldOf(err); got != tt.field {
				t.Errorf("field: got %q, want %q (%v)", got, tt.field, err)
			}
			if msg := status.Convert(err).Message(); strings.Contains(msg, "PASTED") {
				t.Errorf("message echoes the input: %q", msg)
			}
			if !sameKVs(before, snapshot(t, e)) {
				t.Errorf("the store changed")
			}
		})
	}
}

// TestUpdateMasks: with a mask, the named fields change (empty clears);
// without one, the non-empty fields do; the added and removed names apply
// either way; a stale etag is refused.
func TestUpdateMasks(t *testing.T) {
	f := newIDFixture(t)
	e := f.serve(t)
	c := dialIDs(t, e, "gateway")
	ctx := withToken(t, f.tokens[teamAdmin])
	const name = "teams/red/agents/deployer"
	get := func() *scopev1.Agent {
		t.Helper()
		resp, err := c.agents.GetAgent(ctx, &scopev1.GetAgentRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetAgent()
	}
	mask := func(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }
	steps := []struct {
		name    string
		req     *scopev1.UpdateAgentRequest
		display string
		desc    string
		names   []string
	}{
		{"NoMaskNonEmpty", &scopev1.UpdateAgentRequest{Description: "ships", AddSecretNames: []string{"GH_TOKEN"}}, "Deployer", "ships", []string{"DEPLOY_KEY", "GH_TOKEN"}},
		{"MaskClearsDescription", &scopev1.UpdateAgentRequest{DisplayName: "ignored", UpdateMask: mask("description")}, "Deployer", "", []string{"DEPLOY_KEY", "GH_TOKEN"}},
		{"MaskReplacesNames", &scopev1.UpdateAgentRequest{SecretNames: []string{"A", "B"}, RemoveSecretNames: []string{"B"}, UpdateMask: mask("secret_names")}, "Deployer", "", []string{"A"}},
		{"MaskClearsNames", &scopev1.UpdateAgentRequest{UpdateMask: mask("secret_names")}, "Deployer", "", nil},
		{"Wildcard", &scopev1.UpdateAgentRequest{DisplayName: "Bot", SecretNames: []string{"X"}, UpdateMask: mask("*")}, "Bot", "", []string{"X"}},
	}
	for _, s := range steps {
		s.req.Name = name
		resp, err := c.agents.UpdateAgent(ctx, s.req)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		a := resp.GetAgent()
		if a.GetDisplayName() != s.display || a.GetDescription() != s.desc || !slices.Equal(a.GetSecretNames(), s.names) {
			t.Errorf("%s: got %q, %q, %v, want %q, %q, %v", s.name, a.GetDisplayName(), a.GetDescription(), a.GetSecretNames(), s.display, s.desc, s.names)
		}
		if got := get(); got.GetEtag() != a.GetEtag() {
			t.Errorf("%s: etag of Get %q differs from Update's %q", s.name, got.GetEtag(), a.GetEtag())
		}
	}

	stale := get().GetEtag()
	_, err := c.agents.UpdateAgent(ctx, &scopev1.UpdateAgentRequest{Name: name, Description: "one", Etag: stale})
	wantCode(t, err, codes.OK)
	_, err = c.agents.UpdateAgent(ctx, &scopev1.UpdateAgentRequest{Name: name, Description: "two", Etag: stale})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = c.agents.DeleteAgent(ctx, &scopev1.DeleteAgentRequest{Name: name, Etag: stale})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = c.agents.DeleteAgent(ctx, &scopev1.DeleteAgentRequest{Name: name, Etag: get().GetEtag()})
	wantCode(t, err, codes.OK)

	// Environments alike.
	env, err := c.envs.UpdateEnvironment(ctx, &scopev1.UpdateEnvironmentRequest{Name: "teams/red/environments/prod", AddSecretNames: []string{"B"}, RemoveSecretNames: []string{"DEPLOY_KEY"}})
	wantCode(t, err, codes.OK)
	if got := env.GetEnvironment().GetSecretNames(); !slices.Equal(got, []string{"B"}) {
		t.Errorf("environment names: got %v, want [B]", got)
	}
	_, err = c.envs.DeleteEnvironment(ctx, &scopev1.DeleteEnvironmentRequest{Name: "teams/red/environments/prod", Etag: "stale"})
	wantCode(t, err, codes.FailedPrecondition)
}

// TestIdentityTokens: agent and runner tokens authenticate (for other
// services too) as what they are, with their teams; deleting the identity
// or the runner ends them at once.
func TestIdentityTokens(t *testing.T) {
	f := newIDFixture(t)
	e := f.serve(t)
	c := dialIDs(t, e, "gateway")
	admin := withToken(t, f.tokens[sysAdmin])
	agentTok, runnerTok := f.tokens[agentToken], f.tokens[runnerToken]

	for _, tt := range []struct {
		token string
		kind  scopev1.PrincipalKind
		name  string
	}{
		{agentTok, scopev1.PrincipalKind_PRINCIPAL_KIND_AGENT, "teams/red/agents/deployer"},
		{runnerTok, scopev1.PrincipalKind_PRINCIPAL_KIND_RUNNER, "runners/r1"},
	} {
		resp, err := c.auth.Authenticate(withToken(t, ""), &internalapiv1.AuthenticateRequest{BearerToken: tt.token})
		wantCode(t, err, codes.OK)
		p := resp.GetPrincipal()
		if p.GetKind() != tt.kind || p.GetName() != tt.name || p.GetSystemAdmin() || len(p.GetTeams()) != 1 ||
			p.GetTeams()[0].GetTeam() != "red" || p.GetTeams()[0].GetRole() != scopev1.Role_ROLE_MEMBER {
			t.Errorf("principal: got %v, want %v %s, member of red", p, tt.kind, tt.name)
		}
	}

	// A new runner comes with its token.
	created, err := c.runners.CreateRunner(admin, &scopev1.CreateRunnerRequest{RunnerId: "r2", Teams: []string{"blue", "red"}})
	wantCode(t, err, codes.OK)
	if r := created.GetRunner(); r.GetName() != "runners/r2" || r.GetRunnerId() != "r2" || !slices.Equal(r.GetTeams(), []string{"blue", "red"}) || r.GetCreateTime() == nil {
		t.Errorf("runner: got %v", r)
	}
	who, err := c.dir.GetCaller(withToken(t, created.GetBearerToken()), &scopev1.GetCallerRequest{})
	wantCode(t, err, codes.OK)
	if who.GetPrincipal().GetKind() != scopev1.PrincipalKind_PRINCIPAL_KIND_RUNNER || len(who.GetPrincipal().GetTeams()) != 2 {
		t.Errorf("caller: got %v, want runner r2 of two teams", who.GetPrincipal())
	}

	_, err = c.agents.DeleteAgent(admin, &scopev1.DeleteAgentRequest{Name: "teams/red/agents/deployer"})
	wantCode(t, err, codes.OK)
	_, err = c.dir.GetCaller(withToken(t, agentTok), &scopev1.GetCallerRequest{})
	wantCode(t, err, codes.Unauthenticated)
	toks, err := c.tokens.ListTokens(admin, &scopev1.ListTokensRequest{Principal: "teams/red/agents/deployer"})
	wantCode(t, err, codes.OK)
	if len(toks.GetTokens()) != 1 || toks.GetTokens()[0].GetRevokeTime() == nil ||
		toks.GetTokens()[0].GetPrincipalKind() != scopev1.PrincipalKind_PRINCIPAL_KIND_AGENT {
		t.Errorf("tokens of the deleted identity: got %v, want one, revoked", toks.GetTokens())
	}

	_, err = c.runners.DeleteRunner(admin, &scopev1.DeleteRunnerRequest{Name: "runners/r1"})
	wantCode(t, err, codes.OK)
	_, err = c.dir.GetCaller(withToken(t, runnerTok), &scopev1.GetCallerRequest{})
	wantCode(t, err, codes.Unauthenticated)
	_, err = c.auth.Authenticate(withToken(t, ""), &internalapiv1.AuthenticateRequest{BearerToken: runnerTok})
	wantCode(t, err, codes.Unauthenticated)
}
