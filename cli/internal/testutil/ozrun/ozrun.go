// Package ozrun runs the whole oz command tree in-process for tests: real
// flag parsing, the root's error reporting and exit codes, against an
// ozfake server. Only external test packages (package x_test) may import
// it: it imports every command package.
package ozrun

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/cmd/root"
	"github.com/ozsecrets/oz/cli/internal/config"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

// Now is the clock of every run: 2026-05-20 12:00 UTC.
var Now = time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC)

// Options change how oz runs. The zero value runs without a terminal,
// with empty standard input and no environment beyond the server's.
type Options struct {
	Env   map[string]string // on top of the server's settings
	Stdin string
	// TTY makes every stream a terminal; Answers are then the replies to
	// confirmation prompts, in order.
	TTY     bool
	Answers []string
}

// Result is what one run of oz did.
type Result struct {
	Stdout, Stderr string
	Code           int
	Prompts        []string // the prompts shown
}

// Run runs `oz args...` against srv (nil: no server settings) and returns
// what it printed and its exit code. OZ_CONFIG points at a fresh file
// unless opts.Env sets it.
func Run(t testing.TB, srv *ozfake.Server, opts Options, args ...string) Result {
	t.Helper()
	vars := map[string]string{config.EnvConfig: filepath.Join(t.TempDir(), "config.json")}
	if srv != nil {
		s := srv.Settings()
		vars[config.EnvAddr], vars[config.EnvCAFile], vars[config.EnvToken] = s.Addr, s.CAFile, s.Token
	}
	for k, v := range opts.Env {
		vars[k] = v
	}
	ios, in, out, errOut := iostreams.Test()
	in.WriteString(opts.Stdin)
	ios.StdinTTY, ios.StdoutTTY, ios.StderrTTY = opts.TTY, opts.TTY, opts.TTY
	p := &iostreams.ScriptedPrompter{Answers: opts.Answers}
	f := &cmdutil.Factory{
		IO:       ios,
		Prompter: p,
		Now:      func() time.Time { return Now },
		Getenv:   func(k string) string { return vars[k] },
		Dial:     client.Dial,
	}
	code := root.Run(context.Background(), f, "test", append([]string{"oz"}, args...))
	return Result{Stdout: out.String(), Stderr: errOut.String(), Code: code, Prompts: p.Prompts}
}

// Only returns the request of the only call to method ("CreateAgent"),
// failing the test unless there is exactly one.
func Only[T any](t testing.TB, srv *ozfake.Server, method string) T {
	t.Helper()
	calls := srv.CallsTo(method)
	if len(calls) != 1 {
		t.Fatalf("got %d calls to %s, want 1", len(calls), method)
	}
	req, ok := calls[0].Req.(T)
	if !ok {
		t.Fatalf("got request %T, want %T", calls[0].Req, *new(T))
	}
	return req
}
