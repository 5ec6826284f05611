//go:build !linux

package runner_test

import (
	"os"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/cli/internal/runner"
)

func TestHardenBlocksSameUID(t *testing.T) {
	if err := runner.Harden(); err != nil {
		t.Errorf("Harden: got %v, want nil (a no-op)", err)
	}
	t.Skip("Harden is a no-op outside Linux (PR_SET_DUMPABLE is Linux's): nothing to check")
}

func TestRunAsUser(t *testing.T) {
	started := false
	_, err := runner.Run(runner.Command{
		Path: "/usr/bin/true", Args: []string{"true"},
		Signals: make(chan os.Signal),
		Started: func(int) { started = true },
		AsUser:  &runner.User{UID: 65534, GID: 65534},
	})
	if err == nil || !strings.Contains(err.Error(), "Linux only") {
		t.Errorf("got %v, want an error saying --as-user is supported on Linux only", err)
	}
	if started {
		t.Error("the child started")
	}
}

func agentReader(t *testing.T) (string, func(string) bool) { return t.TempDir(), nil }
