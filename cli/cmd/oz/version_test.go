package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The binary says which build it is: never "dev", and the commit it was
// built from when go build stamped one (outside the workspace: go build
// does not stamp version control information in workspace mode).
func TestVersion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, ozBin, "--version").Output()
	if err != nil {
		t.Fatalf("oz --version: %v", err)
	}
	if got := string(out); !strings.HasPrefix(got, "oz version ") || strings.Contains(got, "dev\n") || strings.TrimSpace(got) == "oz version" {
		t.Errorf("oz --version printed %q, want oz version and the build's version", got)
	}

	head, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("no git checkout to stamp: %v", err)
	}
	commit := strings.TrimSpace(string(head))[:12]
	bin := filepath.Join(t.TempDir(), "oz")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=true")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := exec.CommandContext(ctx, bin, args...).Output()
		if err != nil {
			t.Fatalf("oz %s: %v", args[0], err)
		}
		if !strings.Contains(string(out), commit) {
			t.Errorf("oz %s printed %q, want the commit %s", args[0], out, commit)
		}
	}
}
