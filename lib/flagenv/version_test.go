package flagenv_test

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersion builds a binary that uses Main and Parse, and runs it:
// --version and `version` print "NAME VERSION" on standard output and exit
// 0; the help lists --version.
func TestVersion(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build the test binary")
	}
	bin := filepath.Join(t.TempDir(), "oztestd")
	if out, err := exec.Command(goTool, "build", "-o", bin, "./testdata/oztestd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(args ...string) (stdout, stderr string, code int) {
		var o, e bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}

	var lines []string
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}, {"--listen", ":2", "--version"}} {
		stdout, stderr, code := run(args...)
		if code != 0 || stderr != "" {
			t.Errorf("%q: exit %d, stderr %q; want 0 and nothing", args, code, stderr)
		}
		// "oztestd (devel), commit 0123456789ab, …, go1.26.0" or the like.
		if !strings.HasPrefix(stdout, "oztestd ") || !strings.Contains(stdout, "go1.") || strings.Count(stdout, "\n") != 1 {
			t.Errorf("%q: got stdout %q, want one line: oztestd, the version, the Go version", args, stdout)
		}
		if strings.Contains(stdout, "served") {
			t.Errorf("%q: the command ran after the version", args)
		}
		lines = append(lines, stdout)
	}
	for _, l := range lines[1:] {
		if l != lines[0] {
			t.Errorf("got %q and %q: want the same line for every form", lines[0], l)
		}
	}

	if _, stderr, code := run("--help"); code != 0 || !strings.Contains(stderr, "  -version\n") {
		t.Errorf("--help: exit %d, want 0 and -version listed:\n%s", code, stderr)
	}
	if _, stderr, code := run("version", "extra"); code != 2 || !strings.Contains(stderr, `unexpected argument "version"`) {
		t.Errorf("version extra: exit %d, stderr %q; want a usage error", code, stderr)
	}
	if stdout, _, code := run(); code != 0 || stdout != "served on 127.0.0.1:1\n" {
		t.Errorf("no arguments: exit %d, stdout %q; want the command to run", code, stdout)
	}
}
