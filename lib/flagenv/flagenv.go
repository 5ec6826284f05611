// Package flagenv is how every oz binary reads its configuration (the
// services' daemons, ozmigrate, ozdev and the gateway): flags, each
// declared with the OZ_… environment variable that sets it when the flag
// is not given, one help format, and one convention for exit codes.
//
//	set := flagenv.New("ozauditd", flagenv.Help{
//		Usage: []string{"ozauditd [flags]   serve AuditService"},
//		About: "…",
//	}, os.Getenv, os.Stderr)
//	set.String(&listen, "listen", "OZ_AUDIT_LISTEN", "127.0.0.1:7452", "address to serve on")
//	if err := set.Parse(args); err != nil {
//		return err // flag.ErrHelp, or a UsageError
//	}
//
// and in main, flagenv.Main("ozauditd", log, run), which exits 0 on
// success and after --help, 2 on a UsageError and 1 on any other error.
//
// The variables are read after the command line, only for the flags it
// does not give, through the flag's own parser: a variable is exactly as
// good as the flag, and a bad one (not a number, a boolean, a duration) is
// a usage error naming the variable and what it must be. An empty variable
// counts as unset. The help names each flag's variable the same way,
// "(OZ_…)" at the end of its description, and shows the built-in default,
// so that --help reads the same whatever the environment holds.
package flagenv

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ozsecrets/oz/lib/version"
)

// ErrHelp is what Parse returns after printing the help for -h or --help:
// not a failure (Main exits 0).
var ErrHelp = flag.ErrHelp

// ErrVersion is what Parse returns after printing the version for
// --version: not a failure (Main exits 0).
var ErrVersion = errors.New("version printed")

// exitCodes is the help's line on exit codes, the same for every binary.
const exitCodes = "Exit codes: 0 success, 1 failure, 2 bad usage."

// Help is what a command's --help says before its flags.
type Help struct {
	// Usage are the lines under "Usage:", one a form of the command, e.g.
	// "ozauditd upgrade [flags]   move the log into the current layout".
	Usage []string
	// About says what the command does, in a paragraph or two of lines
	// already wrapped; "" for none.
	About string
}

// Set is a command's flags and their environment variables.
type Set struct {
	fs     *flag.FlagSet
	name   string
	help   Help
	getenv func(string) string
	out    io.Writer
	vars   []variable // in the order declared
	// version is --version, declared on a binary's own set (a name
	// without a space), not on its subcommands'.
	version bool
	stdout  io.Writer // where --version prints
}

// variable binds a flag to its environment variable ("" for none).
type variable struct{ flag, env string }

// New returns an empty set for the command name ("ozsecretstored",
// "ozsecretstored keyring rotate"), reading variables with getenv
// (os.Getenv, or a map in tests) and printing its help on out.
func New(name string, help Help, getenv func(string) string, out io.Writer) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Parse reports errors itself (as a UsageError) and prints the help
	// only when asked: the flag package's own printing is turned off.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	s := &Set{fs: fs, name: name, help: help, getenv: getenv, out: out, stdout: os.Stdout}
	if !strings.Contains(name, " ") {
		// Not in vars: no variable, and the help's line on variables
		// stays about the binary's own flags.
		fs.BoolVar(&s.version, "version", false, "print the version and exit (also: "+name+" version)")
	}
	return s
}

// Getenv reads an environment variable that is not a flag's (such as
// OZ_KEYRING, which holds a key and so is never a flag), the same way as
// the flags' variables.
func (s *Set) Getenv(key string) string { return s.getenv(key) }

// Var declares the flag name, parsed by v, with the environment variable
// env ("" for none: a flag no script should set from the environment).
// usage describes it; the help adds " (ENV)" and the default. No
// description (here, or of String, Bool, Int, Duration) may hold a back
// quote: the flag package takes a back-quoted word for the name of the
// flag's value.
func (s *Set) Var(v flag.Value, name, env, usage string) {
	s.fs.Var(v, name, withEnv(usage, env))
	s.vars = append(s.vars, variable{flag: name, env: env})
}

// String declares a string flag with default def.
func (s *Set) String(p *string, name, env, def, usage string) {
	s.fs.StringVar(p, name, def, withEnv(usage, env))
	s.vars = append(s.vars, variable{flag: name, env: env})
}

// Bool declares a boolean flag with default def.
func (s *Set) Bool(p *bool, name, env string, def bool, usage string) {
	s.fs.BoolVar(p, name, def, withEnv(usage, env))
	s.vars = append(s.vars, variable{flag: name, env: env})
}

// Int declares an integer flag with default def.
func (s *Set) Int(p *int, name, env string, def int, usage string) {
	s.fs.IntVar(p, name, def, withEnv(usage, env))
	s.vars = append(s.vars, variable{flag: name, env: env})
}

// Duration declares a duration flag (24h, 90m) with default def.
func (s *Set) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	s.fs.DurationVar(p, name, def, withEnv(usage, env))
	s.vars = append(s.vars, variable{flag: name, env: env})
}

// withEnv is a flag's description with its variable, the one way every
// binary names it.
func withEnv(usage, env string) string {
	if env == "" {
		return usage
	}
	return usage + " (" + env + ")"
}

// Parse parses the command line args, then sets each flag it did not give
// from its environment variable, if set. It returns nil, ErrHelp once the
// help is printed (-h, --help), or a UsageError: an unknown flag, a bad
// value, a bad variable, an argument that is not a flag.
func (s *Set) Parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			s.PrintHelp()
			return ErrHelp
		}
		return s.Usagef("%v", err)
	}
	if s.version {
		PrintVersion(s.stdout, s.name)
		return ErrVersion
	}
	if s.fs.NArg() > 0 {
		return s.Usagef("unexpected argument %q", s.fs.Arg(0))
	}
	given := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	for _, v := range s.vars {
		if v.env == "" || given[v.flag] {
			continue // the flag wins
		}
		val := s.getenv(v.env)
		if val == "" {
			continue
		}
		f := s.fs.Lookup(v.flag)
		if err := f.Value.Set(val); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %s", v.env, val, rule(f.Value, err)))
		}
	}
	if len(errs) > 0 {
		return UsageError{Err: errors.Join(errs...), Cmd: s.name}
	}
	return nil
}

// rule says what a variable's value must be, by the kind of its flag (the
// flag package's values are Getters).
func rule(v flag.Value, err error) string {
	if g, ok := v.(flag.Getter); ok {
		switch g.Get().(type) {
		case bool:
			return "not a boolean (true or false)"
		case int:
			return "not a number"
		case time.Duration:
			return "not a duration (e.g. 24h, 90m)"
		}
	}
	return err.Error()
}

// Usagef returns a UsageError of this command: a mistake in its command
// line or environment found after Parse (a required flag missing, two
// that exclude each other).
func (s *Set) Usagef(format string, args ...any) error {
	return UsageError{Err: fmt.Errorf(format, args...), Cmd: s.name}
}

// Usage wraps err, a mistake in the command line found after Parse (such
// as a bad --store), into a UsageError of this command; nil stays nil.
func (s *Set) Usage(err error) error {
	if err == nil {
		return nil
	}
	return UsageError{Err: err, Cmd: s.name}
}

// PrintHelp prints the help: the usage lines, what the command does, how
// variables and exit codes work, and the flags (Go's flag format: "  -name
// type" lines, each followed by its indented description).
func (s *Set) PrintHelp() {
	w := s.out
	fmt.Fprintln(w, "Usage:")
	for _, l := range s.help.Usage {
		fmt.Fprintln(w, "  "+l)
	}
	if about := strings.TrimSpace(s.help.About); about != "" {
		fmt.Fprintf(w, "\n%s\n", about)
	}
	fmt.Fprintf(w, "\n%s\n%s\n\nFlags:\n", wrap(s.envLine(), 80), exitCodes)
	s.fs.SetOutput(w)
	s.fs.PrintDefaults()
	s.fs.SetOutput(io.Discard)
}

// envLine says which flags have a variable: every one, or every one but
// those named.
func (s *Set) envLine() string {
	var without []string
	for _, v := range s.vars {
		if v.env == "" {
			without = append(without, "--"+v.flag)
		}
	}
	switch n := len(without); {
	case n == 0:
		return "Every flag has an OZ_… environment variable; the flag wins."
	case n == len(s.vars):
		return "No flag has an environment variable."
	case n == 1:
		return "Every flag but " + without[0] + " has an OZ_… environment variable; the flag wins."
	default:
		return "Every flag but " + strings.Join(without[:n-1], ", ") + " and " + without[n-1] +
			" has an OZ_… environment variable; the flag wins."
	}
}

// wrap breaks text into lines of at most width characters, between words.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(text) {
		l := len([]rune(w))
		if i > 0 && n+1+l > width {
			b.WriteByte('\n')
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += l
	}
	return b.String()
}

// UsageError is a mistake in a command line or its environment: Main
// prints it and exits 2.
type UsageError struct {
	Err error
	Cmd string // the command whose --help lists the flags; "" for the binary's
}

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError not tied to a Set (a subcommand missing,
// say).
func Usagef(format string, args ...any) error {
	return UsageError{Err: fmt.Errorf(format, args...)}
}

// IsUsage reports whether err is (or wraps) a UsageError.
func IsUsage(err error) bool { return errors.As(err, new(UsageError)) }

// PrintVersion prints "NAME VERSION" (version.Info.String: the module
// version, commit, commit time and Go version) and a newline on w.
func PrintVersion(w io.Writer, name string) {
	fmt.Fprintf(w, "%s %s\n", name, version.Get())
}

// Main runs run, with a context cancelled by SIGINT or SIGTERM, and exits
// the process with the code Exit gives. `NAME version` prints the version
// and exits 0 without calling run, as --version does through Parse.
func Main(name string, log *slog.Logger, run func(ctx context.Context) error) {
	if len(os.Args) == 2 && os.Args[1] == "version" {
		PrintVersion(os.Stdout, name)
		os.Exit(0)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startCPUProfile(name)
	err := run(ctx)
	stop()
	stopProfile()
	os.Exit(Exit(name, err, log, os.Stderr))
}

// Exit reports err, what the command name returned, and returns the exit
// code: 0 for nil, ErrHelp and ErrVersion (the help or the version was
// asked for); 2 for a UsageError, printed on stderr as "NAME: message"
// with where to find the flags; 1 for any other error, logged on log
// ("NAME failed") when not nil (the daemons, whose logs are JSON), else
// printed as "NAME: message".
func Exit(name string, err error, log *slog.Logger, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, ErrHelp), errors.Is(err, ErrVersion):
		return 0
	case IsUsage(err):
		var ue UsageError
		errors.As(err, &ue)
		cmd := ue.Cmd
		if cmd == "" {
			cmd = name
		}
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", name, err, cmd)
		return 2
	case log != nil:
		log.Error(name+" failed", "err", err.Error())
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
	}
	return 1
}
