package runner_test

import (
	"slices"
	"testing"

	"github.com/ozsecrets/oz/cli/internal/runner"
)

func TestEnv(t *testing.T) {
	tests := []struct {
		name         string
		inherited    []string
		vars         []runner.Var
		drop         []string
		want         []string
		wantShadowed []string
		wantReserved []string
	}{
		{
			name:      "Adds",
			inherited: []string{"PATH=/bin", "HOME=/h"},
			vars:      []runner.Var{{Name: "API_KEY", Value: []byte("v1")}},
			want:      []string{"PATH=/bin", "HOME=/h", "API_KEY=v1"},
		},
		{
			name:         "SecretWins",
			inherited:    []string{"API_KEY=inherited", "PATH=/bin", "API_KEY=again"},
			vars:         []runner.Var{{Name: "API_KEY", Value: []byte("secret")}},
			want:         []string{"PATH=/bin", "API_KEY=secret"},
			wantShadowed: []string{"API_KEY"},
		},
		{
			name:      "CaseMatters",
			inherited: []string{"api_key=x"},
			vars:      []runner.Var{{Name: "API_KEY", Value: []byte("secret")}},
			want:      []string{"api_key=x", "API_KEY=secret"},
		},
		{
			name:      "DropsCredentials",
			inherited: []string{"OZ_TOKEN=oz_runner", "START=oz_user", "OZ_ADDR=a:1", "X=1"},
			drop:      []string{"OZ_TOKEN", "START"},
			want:      []string{"OZ_ADDR=a:1", "X=1"},
		},
		{
			// The server never sends a reserved name; should one come, the
			// runner does not set it.
			name:         "ReservedNotSet",
			inherited:    []string{"PATH=/bin"},
			vars:         []runner.Var{{Name: "LD_PRELOAD", Value: []byte("/tmp/x.so")}, {Name: "node_options", Value: []byte("--require x")}, {Name: "OK", Value: []byte("v")}},
			want:         []string{"PATH=/bin", "OK=v"},
			wantReserved: []string{"LD_PRELOAD", "node_options"},
		},
		{
			name:      "MultiLine",
			inherited: nil,
			vars:      []runner.Var{{Name: "PEM", Value: []byte("a\nb=c\n")}},
			want:      []string{"PEM=a\nb=c\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, shadowed, reserved := runner.Env(tt.inherited, tt.vars, tt.drop)
			if !slices.Equal(reserved, tt.wantReserved) {
				t.Errorf("got reserved %q, want %q", reserved, tt.wantReserved)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got env %q, want %q", got, tt.want)
			}
			if !slices.Equal(shadowed, tt.wantShadowed) {
				t.Errorf("got shadowed %q, want %q", shadowed, tt.wantShadowed)
			}
		})
	}
}
