package secret_test

import (
	"context"
	"strings"
	"testing"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozrun"
)

// TestTeamWord: --team is a switch in oz secret; a team's name after it,
// then NAME, is a usage error that says how to choose the team. A word
// that is no team of the caller's keeps the plain error.
func TestTeamWord(t *testing.T) {
	srv := ozfake.Start(t, nil, &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme", "beta")}, nil)
	tests := []struct {
		name       string
		args       []string
		want       []string // in stderr
		wantAbsent string
	}{
		{
			name: "Create",
			args: []string{"secret", "create", "--team", "acme", "FOO"},
			want: []string{"--use-team", "oz --use-team acme secret create --team FOO", "OZ_TEAM=acme"},
		},
		{
			name: "UpdateFlagsAfter",
			args: []string{"secret", "update", "acme", "FOO", "--team", "--value"},
			want: []string{"oz --use-team acme secret update --team FOO", "OZ_TEAM=acme"},
		},
		{
			name: "Delete",
			args: []string{"secret", "delete", "--team", "beta", "FOO", "--force"},
			want: []string{"oz --use-team beta secret delete --team FOO"},
		},
		{
			name:       "ValueLikeNameNotRepeated",
			args:       []string{"secret", "create", "--team", "acme", "hunter2-pasted"},
			want:       []string{"oz --use-team acme secret create --team NAME"},
			wantAbsent: "hunter2-pasted",
		},
		{
			name: "NotATeam",
			args: []string{"secret", "create", "--team", "prod", "FOO"},
			want: []string{`unexpected argument "FOO"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ozrun.Run(t, srv, ozrun.Options{Stdin: "v"}, tt.args...)
			if r.Code != exitcode.Usage {
				t.Fatalf("got exit %d, want %d (stderr %q)", r.Code, exitcode.Usage, r.Stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr %q: want %q in it", r.Stderr, w)
				}
			}
			if tt.wantAbsent != "" && strings.Contains(r.Stderr, tt.wantAbsent) {
				t.Errorf("stderr %q repeats %q", r.Stderr, tt.wantAbsent)
			}
		})
	}
	if calls := srv.CallsTo("CreateSecret"); len(calls) != 0 {
		t.Errorf("got %d CreateSecret calls, want none", len(calls))
	}
}

// TestValueLikeNameWarns: `oz secret update --team --value hunter2` takes
// hunter2 as NAME. The CLI goes on (the server decides) but warns on
// standard error, without repeating the would-be value.
func TestValueLikeNameWarns(t *testing.T) {
	srv := ozfake.Start(t, &ozfake.Secrets{
		UpdateSecretFunc: func(_ context.Context, r *secretsv1.UpdateSecretRequest) (*secretsv1.UpdateSecretResponse, error) {
			return &secretsv1.UpdateSecretResponse{Secret: &secretsv1.Secret{Name: r.GetName()}}, nil
		},
	}, &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")}, nil)
	for _, tt := range []struct {
		name, arg string
		warn      bool
	}{
		{"Lowercase", "hunter2", true},
		{"Punctuation", "s3cr3t!pass", true},
		{"Generated", "AKIAIOSFODNN7EXAMPLE", true},
		{"Long", strings.Repeat("A", 80), true},
		{"EnvName", "DEPLOY_TOKEN", false},
		{"EnvNameWithDigits", "AWS_S3_KEY_2", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ozrun.Run(t, srv, ozrun.Options{Stdin: "new-value"}, "secret", "update", "--team", "--value", tt.arg)
			warned := strings.Contains(r.Stderr, "does not look like a secret name")
			if warned != tt.warn {
				t.Errorf("got warning %v, want %v (stderr %q)", warned, tt.warn, r.Stderr)
			}
			for _, line := range strings.Split(r.Stderr, "\n") {
				if strings.HasPrefix(line, "warning:") && strings.Contains(line, tt.arg) {
					t.Errorf("the warning %q repeats the name", line)
				}
			}
		})
	}
}
