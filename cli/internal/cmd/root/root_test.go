package root_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/cmd/root"
	"github.com/ozsecrets/oz/cli/internal/config"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

type result struct {
	stdout, stderr string
	code           int
}

// runOz runs oz in-process against srv with env on top of the server's
// settings; OZ_CONFIG points at a fresh file unless env sets it.
func runOz(t *testing.T, srv *ozfake.Server, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	vars := map[string]string{config.EnvConfig: filepath.Join(t.TempDir(), "config.json")}
	if srv != nil {
		s := srv.Settings()
		vars[config.EnvAddr], vars[config.EnvCAFile], vars[config.EnvToken] = s.Addr, s.CAFile, s.Token
	}
	for k, v := range env {
		vars[k] = v
	}
	ios, in, out, errOut := iostreams.Test()
	in.WriteString(stdin)
	f := &cmdutil.Factory{
		IO:       ios,
		Prompter: &iostreams.ScriptedPrompter{},
		Now:      func() time.Time { return time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC) },
		Getenv:   func(k string) string { return vars[k] },
		Dial:     client.Dial,
	}
	code := root.Run(context.Background(), f, "test", append([]string{"oz"}, args...))
	return result{out.String(), errOut.String(), code}
}

func createOK(_ context.Context, r *secretsv1.CreateSecretRequest) (*secretsv1.CreateSecretResponse, error) {
	return &secretsv1.CreateSecretResponse{Secret: &secretsv1.Secret{SecretId: r.GetSecretId()}}, nil
}

func TestTeamSelection(t *testing.T) {
	cfgWithTeam := filepath.Join(t.TempDir(), "config.json")
	if err := config.Save(cfgWithTeam, config.File{Team: "gamma"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		teams      []string // the caller's teams
		env        map[string]string
		args       []string
		wantParent string
		wantCaller bool
		wantCode   int
		wantStderr string
	}{
		{name: "OnlyTeam", teams: []string{"acme"}, args: []string{"secret", "create", "--team", "K"}, wantParent: "teams/acme", wantCaller: true},
		{name: "EnvOZTeam", teams: []string{"acme", "beta"}, env: map[string]string{"OZ_TEAM": "beta"}, args: []string{"secret", "create", "--team", "K"}, wantParent: "teams/beta"},
		{name: "ConfigTeam", teams: []string{"acme", "gamma"}, env: map[string]string{"OZ_CONFIG": cfgWithTeam}, args: []string{"secret", "create", "--team", "K"}, wantParent: "teams/gamma"},
		{name: "EnvOverConfig", env: map[string]string{"OZ_CONFIG": cfgWithTeam, "OZ_TEAM": "beta"}, args: []string{"secret", "create", "--team", "K"}, wantParent: "teams/beta"},
		{name: "GlobalFlagOverEnv", env: map[string]string{"OZ_TEAM": "beta"}, args: []string{"--use-team", "delta", "secret", "create", "--team", "K"}, wantParent: "teams/delta"},
		{name: "VerbFlagOverEnv", env: map[string]string{"OZ_TEAM": "beta"}, args: []string{"secret", "create", "K", "--team", "--use-team", "delta"}, wantParent: "teams/delta"},
		// GetCaller tells the user id the value is sealed for.
		{name: "PersonalIgnoresTeam", env: map[string]string{"OZ_TEAM": "beta"}, args: []string{"secret", "create", "--personal", "K"}, wantParent: "users/me", wantCaller: true},
		{
			name: "Ambiguous", teams: []string{"beta", "acme"}, args: []string{"secret", "create", "--team", "K"},
			wantCaller: true, wantCode: exitcode.Usage, wantStderr: "oz: several teams (acme, beta): set OZ_TEAM or --use-team\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ozfake.Start(t, &ozfake.Secrets{CreateSecretFunc: createOK}, &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", tt.teams...)}, nil)
			r := runOz(t, srv, tt.env, "value\n", tt.args...)
			if r.code != tt.wantCode {
				t.Fatalf("got exit code %d (stderr %q), want %d", r.code, r.stderr, tt.wantCode)
			}
			if tt.wantStderr != "" && r.stderr != tt.wantStderr {
				t.Errorf("got stderr %q, want %q", r.stderr, tt.wantStderr)
			}
			if got := len(srv.CallsTo("GetCaller")) > 0; got != tt.wantCaller {
				t.Errorf("got GetCaller called %v, want %v", got, tt.wantCaller)
			}
			calls := srv.CallsTo("CreateSecret")
			if tt.wantParent == "" {
				if len(calls) != 0 {
					t.Errorf("got %d CreateSecret calls, want none", len(calls))
				}
				return
			}
			if len(calls) != 1 {
				t.Fatalf("got %d CreateSecret calls, want 1", len(calls))
			}
			if got := calls[0].Req.(*secretsv1.CreateSecretRequest).GetParent(); got != tt.wantParent {
				t.Errorf("got parent %q, want %q", got, tt.wantParent)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"NoScope", []string{"secret", "create", "K"}, "choose --team"},
		{"BothScopes", []string{"secret", "create", "--team", "--personal", "K"}, "not both"},
		{"NoName", []string{"secret", "create", "--team"}, "missing NAME"},
		{"ExtraArg", []string{"secret", "create", "--team", "K", "L"}, `unexpected argument "L"`},
		{"UnknownFlag", []string{"secret", "create", "--bogus", "K"}, "flag provided but not defined: --bogus"},
		{"UnknownCommand", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"UnknownSubcommand", []string{"secret", "frobnicate"}, `unknown command "frobnicate"`},
		{"UpdateNothing", []string{"secret", "update", "--team", "K"}, "nothing to update"},
		{"DeleteNoTerminal", []string{"secret", "delete", "--team", "K"}, "pass --force"},
		{"BadOutput", []string{"secret", "list", "--output", "yaml"}, "--output"},
		{"BadRole", []string{"admin", "member", "add", "bob", "--team", "acme", "--role", "owner"}, "--role"},
		{"MemberNoTeam", []string{"admin", "member", "add", "bob"}, "--team is required"},
		{"BadExpires", []string{"admin", "token", "create", "--user", "bob", "--expires", "soon"}, "--expires"},
		{"ConfigUnknownKey", []string{"config", "set", "color", "red"}, "unknown key"},
		{"AgentUpdateNothing", []string{"agent", "update", "deployer"}, "nothing to update"},
		{"AgentDeleteNoTerminal", []string{"agent", "delete", "deployer"}, "pass --force"},
		{"EnvironmentUpdateNothing", []string{"environment", "update", "ops"}, "nothing to update"},
		{"EnvironmentDeleteNoTerminal", []string{"env", "delete", "ops"}, "pass --force"},
		{"ExplainSecretAndNoSecrets", []string{"run", "explain", "--trigger", "cli", "--secret", "A", "--no-secrets"}, "--secret and --no-secrets cannot be used together"},
		{"ExplainBadTrigger", []string{"run", "explain", "--trigger", "cron"}, "--trigger: must be one of cli, slack, linear, web, api, schedule, integration"},
		{"RunnerNoTeam", []string{"admin", "runner", "create", "ci"}, "--team is required"},
		{"RunnerDeleteNoTerminal", []string{"admin", "runner", "delete", "ci"}, "pass --force"},
		{"TokenAgentAndUser", []string{"admin", "token", "create", "--agent", "deployer", "--user", "bob"}, "--user and --agent"},
		{"TokenTeamWithoutAgent", []string{"admin", "token", "create", "--team", "acme"}, "--team: only with --agent"},
		{"ExecNoCommand", []string{"exec", "--team", "acme", "--trigger", "cli"}, "missing COMMAND"},
		{"ExecBadTrigger", []string{"exec", "--team", "acme", "--trigger", "cron", "--", "true"}, "--trigger: must be one of"},
		{"ExecSecretAndNoSecrets", []string{"exec", "--team", "acme", "--trigger", "cli", "--secret", "A", "--no-secrets", "--", "true"}, "cannot be used together"},
		{"MaskNothing", []string{"mask"}, "nothing to mask"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ozfake.Start(t, nil, nil, nil)
			r := runOz(t, srv, nil, "", tt.args...)
			if r.code != exitcode.Usage {
				t.Errorf("got exit code %d, want %d", r.code, exitcode.Usage)
			}
			if !strings.HasPrefix(r.stderr, "oz: ") || !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("got stderr %q, want \"oz: ...%s...\"", r.stderr, tt.wantStderr)
			}
			if n := len(srv.Calls()); n != 0 {
				t.Errorf("got %d calls, want none", n)
			}
		})
	}
}

func TestServerErrorsBecomeExitCodes(t *testing.T) {
	br := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: "secret_id", Description: `must match [A-Za-z_][A-Za-z0-9_]* (got "1ABC")`},
	}}
	invalid, err := status.New(codes.InvalidArgument, "invalid request").WithDetails(br)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		err        error
		wantCode   int
		wantStderr string
	}{
		{"FieldViolation", invalid.Err(), exitcode.Usage, "oz: secret_id: must match [A-Za-z_][A-Za-z0-9_]* (got \"1ABC\")\n"},
		{"NotFound", status.Error(codes.NotFound, "team acme not found"), exitcode.NotFound, "oz: team acme not found\n"},
		{"Denied", status.Error(codes.PermissionDenied, "not an admin of team acme"), exitcode.Denied, "oz: not an admin of team acme\n"},
		{"Unauthenticated", status.Error(codes.Unauthenticated, "token expired"), exitcode.Denied, "oz: token expired\n"},
		{"Unavailable", status.Error(codes.Unavailable, "secretstore unavailable"), exitcode.Unavailable, "oz: the gateway answered: secretstore unavailable\n"},
		{"Exists", status.Error(codes.AlreadyExists, "secret 1ABC exists"), exitcode.Conflict, "oz: secret 1ABC exists\n"},
		{"Etag", status.Error(codes.FailedPrecondition, "etag mismatch"), exitcode.Conflict, "oz: etag mismatch\n"},
		{"Internal", status.Error(codes.Internal, "internal error"), exitcode.Error, "oz: internal error\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ozfake.Start(t, &ozfake.Secrets{
				CreateSecretFunc: func(context.Context, *secretsv1.CreateSecretRequest) (*secretsv1.CreateSecretResponse, error) {
					return nil, tt.err
				},
			}, &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice")}, nil)
			r := runOz(t, srv, nil, "v", "secret", "create", "--personal", "1ABC")
			if r.code != tt.wantCode {
				t.Errorf("got exit code %d, want %d", r.code, tt.wantCode)
			}
			if r.stderr != tt.wantStderr {
				t.Errorf("got stderr %q, want %q", r.stderr, tt.wantStderr)
			}
			if r.stdout != "" {
				t.Errorf("got stdout %q, want none", r.stdout)
			}
		})
	}
}

func TestUnreachableGateway(t *testing.T) {
	r := runOz(t, nil, map[string]string{"OZ_ADDR": "127.0.0.1:1", "OZ_TOKEN": "oz_x"}, "", "whoami")
	if r.code != exitcode.Unavailable {
		t.Errorf("got exit code %d (%q), want %d", r.code, r.stderr, exitcode.Unavailable)
	}
	if !strings.HasPrefix(r.stderr, "oz: cannot reach the gateway at 127.0.0.1:1") {
		t.Errorf("got stderr %q, want it to name the gateway", r.stderr)
	}
}

func TestNoToken(t *testing.T) {
	r := runOz(t, nil, nil, "", "secret", "list")
	if r.code != exitcode.Denied {
		t.Errorf("got exit code %d (%q), want %d", r.code, r.stderr, exitcode.Denied)
	}
}

func TestWhoami(t *testing.T) {
	srv := ozfake.Start(t, nil, &ozfake.Directory{
		GetCallerFunc: func(context.Context, *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error) {
			return &scopev1.GetCallerResponse{Principal: &scopev1.Principal{
				Kind: scopev1.PrincipalKind_PRINCIPAL_KIND_USER, Name: "users/alice", TokenId: "t1",
				Teams: []*scopev1.TeamRole{{Team: "acme", Role: scopev1.Role_ROLE_ADMIN}, {Team: "beta", Role: scopev1.Role_ROLE_MEMBER}},
			}}, nil
		},
	}, nil)
	r := runOz(t, srv, nil, "", "whoami")
	want := "NAME   users/alice\nKIND   user\nTEAMS  acme (admin), beta (member)\nTOKEN  t1 (expires never)\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("got %d %q, want 0 %q", r.code, r.stdout, want)
	}
	r = runOz(t, srv, nil, "", "whoami", "--output", "json")
	for _, s := range []string{`"name": "users/alice"`, `"kind": "user"`, `"team": "beta"`, `"role": "member"`} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("got %s, want it to contain %s", r.stdout, s)
		}
	}
}

func TestInterspersedFlags(t *testing.T) {
	app := root.NewApp(&cmdutil.Factory{IO: &iostreams.IOStreams{}}, "test")
	tests := []struct {
		in, want []string
	}{
		{
			[]string{"oz", "admin", "member", "add", "alice", "--team", "acme", "--role", "admin"},
			[]string{"oz", "admin", "member", "add", "--team", "acme", "--role", "admin", "--", "alice"},
		},
		{
			[]string{"oz", "--use-team", "acme", "secret", "create", "K", "--team", "--value-file", "f"},
			[]string{"oz", "--use-team", "acme", "secret", "create", "--team", "--value-file", "f", "--", "K"},
		},
		{
			[]string{"oz", "secret", "update", "K", "-d", "x", "--team"},
			[]string{"oz", "secret", "update", "-d", "x", "--team", "--", "K"},
		},
		{
			[]string{"oz", "secret", "delete", "--team", "--", "-K"},
			[]string{"oz", "secret", "delete", "--team", "--", "-K"},
		},
		{
			[]string{"oz", "config", "set", "token", "-"},
			[]string{"oz", "config", "set", "--", "token", "-"},
		},
		{[]string{"oz", "secret", "list"}, []string{"oz", "secret", "list"}},
		{
			[]string{"oz", "agent", "create", "deployer", "--secret", "A", "-d", "x"},
			[]string{"oz", "agent", "create", "--secret", "A", "-d", "x", "--", "deployer"},
		},
		{
			[]string{"oz", "run", "show", "run-1", "-o", "json"},
			[]string{"oz", "run", "show", "-o", "json", "--", "run-1"},
		},
		// oz exec: COMMAND's flags are COMMAND's, with or without "--".
		{
			[]string{"oz", "exec", "--team", "acme", "--trigger", "cli", "--", "ls", "-l", "--color"},
			[]string{"oz", "exec", "--team", "acme", "--trigger", "cli", "--", "ls", "-l", "--color"},
		},
		{
			[]string{"oz", "--use-team", "acme", "exec", "--trigger", "cli", "sh", "-c", "exit 3", "--team", "x"},
			[]string{"oz", "--use-team", "acme", "exec", "--trigger", "cli", "sh", "-c", "exit 3", "--team", "x"},
		},
		{[]string{"oz", "bogus", "x", "--y"}, []string{"oz", "bogus", "x", "--y"}},
	}
	for _, tt := range tests {
		if got := root.Interspersed(app, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("Interspersed(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHelpListsCommands(t *testing.T) {
	r := runOz(t, nil, nil, "", "--help")
	for _, name := range []string{"secret", "agent", "environment", "run", "exec", "mask", "whoami", "admin", "config"} {
		if !strings.Contains(r.stdout, "\n   "+name+" ") && !strings.Contains(r.stdout, "\n   "+name+",") {
			t.Errorf("oz --help does not list %s:\n%s", name, r.stdout)
		}
	}
	r = runOz(t, nil, nil, "", "admin", "--help")
	if !strings.Contains(r.stdout, "runner") {
		t.Errorf("oz admin --help does not list runner:\n%s", r.stdout)
	}
}

func TestHelpListsExitCodes(t *testing.T) {
	r := runOz(t, nil, nil, "", "--help")
	if r.code != 0 {
		t.Fatalf("got exit code %d, want 0", r.code)
	}
	for _, c := range exitcode.Table {
		if !strings.Contains(r.stdout, c.Meaning) {
			t.Errorf("help lacks exit code %d (%s)", c.Code, c.Meaning)
		}
	}
}

func TestConfigSetShow(t *testing.T) {
	const token = "oz_supersecrettoken123"
	cfg := filepath.Join(t.TempDir(), "oz", "config.json")
	env := map[string]string{"OZ_CONFIG": cfg}
	for _, args := range [][]string{
		{"config", "set", "addr", "gw.example:443"},
		{"config", "set", "team", "acme"},
	} {
		if r := runOz(t, nil, env, "", args...); r.code != 0 {
			t.Fatalf("%v: got exit code %d (%s)", args, r.code, r.stderr)
		}
	}
	// The token is read from standard input, not the command line.
	if r := runOz(t, nil, env, token+"\n", "config", "set", "token"); r.code != 0 {
		t.Fatalf("set token: got exit code %d (%s)", r.code, r.stderr)
	}
	got, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := (config.File{Addr: "gw.example:443", Token: token, Team: "acme"}); got != want {
		t.Errorf("got config %+v, want %+v", got, want)
	}
	for _, format := range []string{"table", "json"} {
		r := runOz(t, nil, env, "", "config", "show", "--output", format)
		if r.code != 0 {
			t.Fatalf("show: got exit code %d (%s)", r.code, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, token) || strings.Contains(r.stdout, "supersecret") {
			t.Errorf("show %s printed the token: %s", format, r.stdout)
		}
		for _, s := range []string{"gw.example:443", "acme", cfg} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("show %s: got %s, want it to contain %q", format, r.stdout, s)
			}
		}
	}
	// The environment wins over the file.
	r := runOz(t, nil, map[string]string{"OZ_CONFIG": cfg, "OZ_ADDR": "env.example:1"}, "", "config", "show")
	if !strings.Contains(r.stdout, "env.example:1") || !strings.Contains(r.stdout, "env OZ_ADDR") {
		t.Errorf("got %s, want the env address and its source", r.stdout)
	}
}

// store is a fake SecretService that keeps values, like the real one, and
// can be told to misbehave by echoing the value in its errors. Values
// arrive sealed; it opens them with the server's sealer, as the real one
// does.
type store struct {
	mu     sync.Mutex
	values map[string][]byte
	meta   map[string]*secretsv1.Secret
	echo   codes.Code     // when set, every write fails with the value in the message
	sealer *ozfake.Sealer // set once the server runs
}

// open opens a sealed value of the secret name (users/me is alice).
func (s *store) open(sv *secretsv1.SealedValue, name string) []byte {
	owner, id, _ := strings.Cut(strings.Replace(name, "users/me/", "users/alice/", 1), "/secrets/")
	v, _ := s.sealer.Open(sv, owner, id)
	return v
}

func (s *store) fake() *ozfake.Secrets {
	s.values, s.meta = map[string][]byte{}, map[string]*secretsv1.Secret{}
	fail := func(v []byte) error {
		br := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "value", Description: "rejected " + string(v)}}}
		st, _ := status.New(s.echo, "cannot store "+string(v)).WithDetails(br)
		return st.Err()
	}
	return &ozfake.Secrets{
		CreateSecretFunc: func(_ context.Context, r *secretsv1.CreateSecretRequest) (*secretsv1.CreateSecretResponse, error) {
			name := r.GetParent() + "/secrets/" + r.GetSecretId()
			if s.echo != codes.OK {
				return nil, fail(s.open(r.GetSealedValue(), name))
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			m := &secretsv1.Secret{Name: name, SecretId: r.GetSecretId(), Owner: r.GetParent(), ValueVersion: 1, UpdateTime: timestamppb.Now()}
			s.values[name], s.meta[name] = s.open(r.GetSealedValue(), name), m
			return &secretsv1.CreateSecretResponse{Secret: m}, nil
		},
		UpdateSecretFunc: func(_ context.Context, r *secretsv1.UpdateSecretRequest) (*secretsv1.UpdateSecretResponse, error) {
			if s.echo != codes.OK {
				return nil, fail(s.open(r.GetSealedValue(), r.GetName()))
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			s.values[r.GetName()] = s.open(r.GetSealedValue(), r.GetName())
			return &secretsv1.UpdateSecretResponse{Secret: s.meta[r.GetName()]}, nil
		},
		DeleteSecretFunc: func(_ context.Context, r *secretsv1.DeleteSecretRequest) (*secretsv1.DeleteSecretResponse, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(s.values, r.GetName())
			delete(s.meta, r.GetName())
			return &secretsv1.DeleteSecretResponse{}, nil
		},
		ListAvailableSecretsFunc: func(context.Context, *secretsv1.ListAvailableSecretsRequest) (*secretsv1.ListAvailableSecretsResponse, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			resp := &secretsv1.ListAvailableSecretsResponse{}
			for _, m := range s.meta {
				resp.Secrets = append(resp.Secrets, m)
			}
			return resp, nil
		},
	}
}

func TestCanaryNeverPrinted(t *testing.T) {
	const canary = "CANARY-value-7f3a9c1e"
	valueFile := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(valueFile, []byte(canary), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		stdin string
		args  []string
	}{
		{canary + "\n", []string{"secret", "create", "--team", "API_KEY", "-d", "the key"}},
		{"", []string{"secret", "create", "--personal", "--value-file", valueFile, "API_KEY"}},
		{canary, []string{"secret", "create", "--team", "--value-file", "-", "OTHER"}},
		{canary + "\n", []string{"secret", "update", "--team", "--value", "API_KEY"}},
		{"", []string{"secret", "update", "--personal", "--value-file", valueFile, "-d", "new", "API_KEY"}},
		{"", []string{"secret", "list"}},
		{"", []string{"secret", "list", "--output", "json"}},
		{"", []string{"whoami"}},
		{"", []string{"whoami", "--output", "json"}},
		{"", []string{"secret", "delete", "--team", "--force", "API_KEY"}},
		{canary + "\n", []string{"secret", "delete", "--personal", "API_KEY"}},
		{"", []string{"config", "show"}},
	}
	for _, echo := range []codes.Code{codes.OK, codes.InvalidArgument, codes.Internal, codes.AlreadyExists} {
		t.Run(echo.String(), func(t *testing.T) {
			st := &store{echo: echo}
			srv := ozfake.Start(t, st.fake(), &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")}, nil)
			st.sealer = srv.Sealer
			for _, step := range steps {
				r := runOz(t, srv, nil, step.stdin, step.args...)
				if strings.Contains(r.stdout, canary) || strings.Contains(r.stderr, canary) {
					t.Errorf("%v: the value was printed:\nstdout: %s\nstderr: %s", step.args, r.stdout, r.stderr)
				}
				if strings.Contains(r.stdout+r.stderr, "7f3a9c1e") {
					t.Errorf("%v: part of the value was printed", step.args)
				}
			}
			if echo != codes.OK {
				return
			}
			// The values did reach the server.
			st.mu.Lock()
			defer st.mu.Unlock()
			if got := string(st.values["teams/acme/secrets/OTHER"]); got != canary {
				t.Errorf("got stored value %q, want the canary", got)
			}
			if got := string(st.values["users/me/secrets/API_KEY"]); got != canary {
				t.Errorf("got stored value %q, want the canary (personal API_KEY)", got)
			}
		})
	}
}
