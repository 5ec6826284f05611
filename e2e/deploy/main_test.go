// Package deploy_test checks deploy/: the Dockerfiles, the compose file and
// the Kubernetes manifests are parsed strictly and held to the rules in
// deploy/README.md, and every flag and OZ_… variable they set is checked
// against the real binaries' --help, so that the manifests cannot drift from
// the code. No Docker engine or cluster is needed; `docker compose config`
// and `kubectl kustomize` are used too when they work on the machine.
package deploy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ozsecrets/oz/e2e/harness"
)

var (
	root   string // the workspace root
	binDir string // the real binaries, built once
	helps  = map[string]help{}
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	if root, err = harness.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if binDir, err = os.MkdirTemp("", "oz-deploy-bin-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(binDir)
	if err := harness.Build(binDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for name := range harness.Binaries {
		out, err := exec.Command(filepath.Join(binDir, name), "--help").CombinedOutput()
		// flag's -help exits 0 or 2 depending on the command; both print usage.
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 2) {
			fmt.Fprintf(os.Stderr, "%s --help: %v\n%s", name, err, out)
			return 1
		}
		helps[name] = parseHelp(string(out))
	}
	return m.Run()
}

// deployPath is a path under deploy/.
func deployPath(elem ...string) string {
	return filepath.Join(append([]string{root, "deploy"}, elem...)...)
}

// readFile reads a file or fails the test.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
