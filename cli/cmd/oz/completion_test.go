package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

// Tab in bash, for real: the script oz prints is loaded in bash, which
// runs the binary for the candidates, names coming from the server.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	srv := ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")},
		Agents: &ozfake.Agents{ListAgentsFunc: func(context.Context, *scopev1.ListAgentsRequest) (*scopev1.ListAgentsResponse, error) {
			return &scopev1.ListAgentsResponse{Agents: []*scopev1.Agent{{AgentId: "deployer"}, {AgentId: "builder"}}}, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	script, err := ozCommand(t, ctx, srv, "completion", "bash").Output()
	if err != nil {
		t.Fatalf("oz completion bash: %v", err)
	}
	file := filepath.Join(t.TempDir(), "oz.bash")
	if err := os.WriteFile(file, script, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		line string // the words; the last one is being typed
		want string // COMPREPLY, space-separated
	}{
		{"oz sec", "secret"},
		{"oz agent de", "delete"},
		{"oz agent delete ", "builder deployer"},
		{"oz agent delete --team acme d", "deployer"},
		{"oz --use-team ", "acme"},
	}
	for _, tt := range tests {
		words := strings.Split(tt.line, " ")
		// COMP_WORDS[0] is the binary's path: the script runs what was typed.
		words[0] = ozBin
		prog := "source " + file + "\nCOMP_WORDS=(" + quoteAll(words) + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(words)-1) + "\n_oz_complete\necho \"${COMPREPLY[*]}\"\n"
		cmd := ozCommand(t, ctx, srv)
		cmd.Path, cmd.Args = bash, []string{"bash", "--norc", "-c", prog}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tt.line, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.line, got, tt.want)
		}
	}
}

func quoteAll(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
