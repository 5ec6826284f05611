// Package boltcheck checks a bbolt file before a service serves from it:
// bbolt's consistency check (tx.Check), read-only, bounded in time, in a
// child process.
//
// A child, because bbolt panics on pages it cannot make sense of ("invalid
// freelist page", "assertion failed: Page expected to be …"), and faults
// (SIGBUS) on pages past the end of a truncated file, partly in goroutines
// of its own where no recover reaches: the child may crash, the service
// only reads why. The child is the service's own binary, run with a
// hidden first argument: each daemon's main calls ServeChild first.
package boltcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// DefaultTimeout bounds a check; a large file may need more
// (--store-check-timeout).
const DefaultTimeout = 30 * time.Second

// childArg is the hidden first argument that makes a daemon the checker.
const childArg = "__oz-check-bolt"

// childEnv marks the checking child's environment. A child that is not
// one (a binary whose main does not call ServeChild, such as a test binary
// without a TestMain that does) must not check in turn: it would start
// itself again and again.
const childEnv = "OZ_BOLTCHECK_CHILD=1"

// exitLocked is the child's exit code when another process holds the file.
const exitLocked = 3

// maxErrors is how many problems the child reports at most.
const maxErrors = 5

// ServeChild, called first in a daemon's main, runs the check and exits
// when the process is the checking child; otherwise it returns.
func ServeChild() {
	if len(os.Args) != 3 || os.Args[1] != childArg {
		return
	}
	if err := check(os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if errors.Is(err, bolterrors.ErrTimeout) {
			os.Exit(exitLocked)
		}
		os.Exit(1)
	}
	os.Exit(0)
}

// check opens path read-only (nothing is ever written to a file being
// checked) and runs bbolt's consistency check.
func check(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	var problems []string
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check(bolt.WithKVStringer(redacted{})) {
			if len(problems) < maxErrors {
				problems = append(problems, err.Error())
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// redacted keeps keys and values out of the check's messages: they end up
// in logs, and values are secrets (sealed, but still).
type redacted struct{}

func (redacted) KeyToString(k []byte) string   { return fmt.Sprintf("<key of %d bytes>", len(k)) }
func (redacted) ValueToString(v []byte) string { return fmt.Sprintf("<value of %d bytes>", len(v)) }

// Check runs the consistency check of the bbolt file at path in a child
// process (this binary, which must call ServeChild), for at most timeout
// (0: DefaultTimeout). It returns an error saying what is wrong with the
// file, or that the check did not finish in time.
func Check(ctx context.Context, path string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if os.Getenv("OZ_BOLTCHECK_CHILD") != "" {
		return fmt.Errorf("check %s: this process is a checking child already: its main must call boltcheck.ServeChild first", path)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, self, childArg, path)
	cmd.Stdout, cmd.Stderr = &out, &out
	// No OZ_… settings for the child: it reads the file and nothing else.
	cmd.Env = []string{childEnv}
	err = cmd.Run()
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return fmt.Errorf("%s: the consistency check did not finish within %s (raise --store-check-timeout for a large file, or 0 to skip the check)", path, timeout)
	case err == nil:
		return nil
	}
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == exitLocked {
		return fmt.Errorf("open %s: locked by another process (is a service or tool still running on it?)", path)
	}
	return fmt.Errorf("%s failed bbolt's consistency check: %s", path, summary(out.String(), err))
}

// summary is the child's reason in one line: its error, or the first line
// of its panic or fault (not the goroutine dump after it).
func summary(out string, err error) string {
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "panic: "), strings.HasPrefix(line, "unexpected fault"),
			strings.HasPrefix(line, "fatal error: "), strings.HasPrefix(line, "SIGBUS"), strings.HasPrefix(line, "SIGSEGV"):
			return "bbolt crashed on a damaged page (" + strings.TrimPrefix(line, "panic: ") + ")"
		}
	}
	first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if first == "" {
		return err.Error()
	}
	if len(first) > 500 {
		first = first[:500] + "…"
	}
	return first
}
