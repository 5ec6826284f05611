package root_test

import (
	"strings"
	"testing"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

func TestDidYouMean(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // the suggestion line; "" for none
	}{
		{name: "Swap", args: []string{"secrte"}, want: `oz: Did you mean "secret"?`},
		{name: "Missing", args: []string{"whoam"}, want: `oz: Did you mean "whoami"?`},
		{name: "Alias", args: []string{"envs"}, want: `oz: Did you mean "environment"?`},
		{name: "Subcommand", args: []string{"agent", "delet"}, want: `oz: Did you mean "delete"?`},
		{name: "Prefix", args: []string{"inv"}, want: `oz: Did you mean "invitation"?`},
		{name: "Nested", args: []string{"admin", "tokn"}, want: `oz: Did you mean "token"?`},
		{name: "FarFromAll", args: []string{"xyzzy"}, want: ""},
		{name: "NotHidden", args: []string{"__complet"}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runOz(t, nil, nil, "", tt.args...)
			if r.code != exitcode.Usage {
				t.Errorf("got exit code %d, want %d", r.code, exitcode.Usage)
			}
			first, rest, _ := strings.Cut(strings.TrimSuffix(r.stderr, "\n"), "\n")
			typed := tt.args[len(tt.args)-1]
			if !strings.HasPrefix(first, `oz: unknown command "`+typed+`"`) {
				t.Errorf("got first line %q, want oz: unknown command %q", first, typed)
			}
			if rest != tt.want {
				t.Errorf("got suggestion %q, want %q", rest, tt.want)
			}
			if r.stdout != "" {
				t.Errorf("got stdout %q, want none", r.stdout)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	r := runOz(t, nil, nil, "", "--version")
	if r.code != 0 || r.stdout != "oz version test\n" {
		t.Errorf("--version: code %d, stdout %q; want 0 and %q", r.code, r.stdout, "oz version test\n")
	}
	r = runOz(t, nil, nil, "", "version")
	first, build, _ := strings.Cut(r.stdout, "\n")
	if r.code != 0 || first != "oz version test" || !strings.HasPrefix(build, "build: ") || !strings.Contains(build, "go1.") {
		t.Errorf("version: code %d, stdout %q; want the version line and a build line naming the Go release", r.code, r.stdout)
	}
	if r := runOz(t, nil, nil, "", "version", "extra"); r.code != exitcode.Usage {
		t.Errorf("version extra: code %d, want %d", r.code, exitcode.Usage)
	}
}
