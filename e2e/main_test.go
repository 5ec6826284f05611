package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ozsecrets/oz/e2e/harness"
)

// binDir holds the real binaries, built once for all tests of the package.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "oz-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	if err := harness.Build(binDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startSystem runs the whole system (ozdev and its four services) in a
// fresh data directory and stops it when the test ends.
func startSystem(t *testing.T) *harness.System {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	sys, err := harness.Start(binDir, dataDir)
	if err != nil {
		t.Fatalf("start system: %v", err)
	}
	t.Cleanup(func() {
		if err := sys.Stop(); err != nil {
			t.Errorf("stop system: %v", err)
		}
	})
	return sys
}

// oz runs the CLI and fails the test if it could not be started.
func oz(t *testing.T, sys *harness.System, token string, stdin string, args ...string) harness.CLIResult {
	t.Helper()
	res, err := sys.OZ(token, []byte(stdin), nil, args...)
	if err != nil {
		t.Fatalf("oz %v: %v", args, err)
	}
	return res
}

// ozOK runs the CLI and fails the test unless it exits 0.
func ozOK(t *testing.T, sys *harness.System, token string, stdin string, args ...string) harness.CLIResult {
	t.Helper()
	res := oz(t, sys, token, stdin, args...)
	if res.Code != 0 {
		t.Fatalf("oz %v: exit %d, stderr: %s", args, res.Code, res.Stderr)
	}
	return res
}
