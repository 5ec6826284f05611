package root_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

func completionServer(t *testing.T) *ozfake.Server {
	t.Helper()
	return ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme", "beta")},
		Secrets: &ozfake.Secrets{ListAvailableSecretsFunc: func(context.Context, *secretsv1.ListAvailableSecretsRequest) (*secretsv1.ListAvailableSecretsResponse, error) {
			return &secretsv1.ListAvailableSecretsResponse{Secrets: []*secretsv1.Secret{{SecretId: "DEPLOY_TOKEN"}, {SecretId: "DB_URL"}, {SecretId: "GITHUB_TOKEN"}}}, nil
		}},
		Agents: &ozfake.Agents{ListAgentsFunc: func(_ context.Context, r *scopev1.ListAgentsRequest) (*scopev1.ListAgentsResponse, error) {
			if r.GetParent() != "teams/acme" {
				return &scopev1.ListAgentsResponse{Agents: []*scopev1.Agent{{AgentId: "wrong-team"}}}, nil
			}
			return &scopev1.ListAgentsResponse{Agents: []*scopev1.Agent{{AgentId: "deployer"}, {AgentId: "default"}, {AgentId: "builder"}}}, nil
		}},
		Environments: &ozfake.Environments{ListEnvironmentsFunc: func(context.Context, *scopev1.ListEnvironmentsRequest) (*scopev1.ListEnvironmentsResponse, error) {
			return &scopev1.ListEnvironmentsResponse{Environments: []*scopev1.Environment{{EnvironmentId: "prod"}, {EnvironmentId: "staging"}}}, nil
		}},
	})
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func TestComplete(t *testing.T) {
	srv := completionServer(t)
	tests := []struct {
		name  string
		env   map[string]string
		words []string
		want  []string
	}{
		{name: "TopCommands", words: []string{"se"}, want: []string{"secret"}},
		{name: "Subcommands", words: []string{"agent", "l"}, want: []string{"list", "ls"}},
		{name: "NoHiddenOrHelp", words: []string{"__"}, want: nil},
		{name: "Flags", words: []string{"agent", "list", "--"}, want: []string{"--help", "--output", "--team", "--use-team"}},
		{name: "GlobalFlags", words: []string{"--t"}, want: []string{"--token-file"}},
		{name: "TeamFlagValue", words: []string{"agent", "list", "--team", ""}, want: []string{"acme", "beta"}},
		{name: "GlobalTeamValue", words: []string{"--use-team", "b"}, want: []string{"beta"}},
		{name: "FlagWithEquals", words: []string{"agent", "list", "--team=a"}, want: []string{"--team=acme"}},
		{name: "BashSplitEquals", words: []string{"agent", "list", "--team", "=", "a"}, want: []string{"acme"}},
		{name: "BashSplitEqualsDone", words: []string{"agent", "delete", "--team", "=", "acme", "de"}, want: []string{"default", "deployer"}},
		{name: "AgentArgOfTeam", words: []string{"agent", "delete", "--team", "acme", ""}, want: []string{"builder", "default", "deployer"}},
		{name: "TeamFromEnv", env: map[string]string{"OZ_TEAM": "acme"}, words: []string{"agent", "get", "d"}, want: []string{"default", "deployer"}},
		{name: "AgentFlag", words: []string{"--use-team", "acme", "run", "start", "--agent", "de"}, want: []string{"default", "deployer"}},
		{name: "EnvironmentFlag", words: []string{"run", "start", "--team", "acme", "--environment", ""}, want: []string{"prod", "staging"}},
		{name: "SecretArg", words: []string{"secret", "delete", "--team", "D"}, want: []string{"DB_URL", "DEPLOY_TOKEN"}},
		{name: "SecretFlag", words: []string{"environment", "update", "prod", "--add-secret", "G"}, want: []string{"GITHUB_TOKEN"}},
		{name: "OnlyFirstArg", words: []string{"agent", "delete", "deployer", ""}, want: nil},
		{name: "AfterDoubleDash", words: []string{"exec", "--", ""}, want: nil},
		{name: "NoNamesForOtherFlags", words: []string{"run", "list", "--limit", ""}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runOz(t, srv, tt.env, "", append([]string{"__complete"}, tt.words...)...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("code %d, stderr %q", r.code, r.stderr)
			}
			if got := lines(r.stdout); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// A server that is down, or a missing token, gives no names, no error and
// no exit code, in about the time of a failed connection (no retries).
func TestCompleteQuietOnErrors(t *testing.T) {
	dead := map[string]string{"OZ_ADDR": "127.0.0.1:1", "OZ_TOKEN": "t", "OZ_TEAM": "acme"}
	for name, env := range map[string]map[string]string{"Unreachable": dead, "NoToken": {}} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			r := runOz(t, nil, env, "", "__complete", "agent", "delete", "")
			if r.code != 0 || r.stdout != "" || r.stderr != "" {
				t.Errorf("got code %d, stdout %q, stderr %q; want 0 and nothing", r.code, r.stdout, r.stderr)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v, want at most the completion deadline", d)
			}
		})
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			r := runOz(t, nil, nil, "", "completion", sh)
			if r.code != 0 {
				t.Fatalf("code %d, stderr %q", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "__complete") || !strings.Contains(r.stdout, "oz") {
				t.Errorf("script does not call oz __complete:\n%s", r.stdout)
			}
			// Check the syntax with the shell when it is installed (-n:
			// read, do not run), else the lines that register it.
			bin, err := exec.LookPath(sh)
			if err != nil {
				want := map[string]string{"zsh": "compdef _oz oz", "fish": "complete -c oz "}[sh]
				if !strings.Contains(r.stdout, want) {
					t.Errorf("%s script lacks %q:\n%s", sh, want, r.stdout)
				}
				return
			}
			file := filepath.Join(t.TempDir(), "oz."+sh)
			if err := os.WriteFile(file, []byte(r.stdout), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "-n", file).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", sh, err, out)
			}
		})
	}
	r := runOz(t, nil, nil, "", "completion", "tcsh")
	if r.code != exitcode.Usage || !strings.Contains(r.stderr, `unknown shell "tcsh"`) {
		t.Errorf("tcsh: code %d, stderr %q; want %d and unknown shell", r.code, r.stderr, exitcode.Usage)
	}
}
