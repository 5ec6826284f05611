// Package execcmd implements the runner's commands: `oz exec`, which
// resolves a run's secrets and runs a command with them as environment
// variables and its output masked, and `oz mask`, which masks a stream.
package execcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/config"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/mask"
	"github.com/ozsecrets/oz/cli/internal/runner"
)

// Commands returns `oz exec` and `oz mask`.
func Commands(f *cmdutil.Factory) []*cli.Command {
	return []*cli.Command{NewExecCmd(f), NewMaskCmd(f)}
}

// ExecOptions are the inputs of `oz exec`.
type ExecOptions struct {
	IO       *iostreams.IOStreams
	Settings func() (config.Settings, error)
	// Dial connects to the gateway; client.Dial unless replaced.
	Dial     func(config.Settings) (*client.Conn, error)
	Getenv   func(string) string
	Environ  func() []string
	LookPath func(string) (string, error)
	// Signals to forward; nil: those the process receives.
	Signals <-chan os.Signal

	Team          string
	Trigger       scopev1.Trigger
	User          string
	Agent         string
	Environment   string
	Secrets       []string
	NoSecrets     bool
	Strict        bool
	RunID         string
	StartTokenEnv string
	Command       []string
}

const execDescription = `oz exec resolves the run's secrets with the runner token in OZ_TOKEN and
runs COMMAND with each injected secret as an environment variable named
after it. The values are sealed to a key made for the run and opened in
memory; they never go on a command line, into a file or into oz's output.

COMMAND inherits oz's environment without OZ_TOKEN (and without the
variable named by --start-token-env); a secret replaces an inherited
variable of the same name. Its standard input is oz's; its standard output
and error pass through oz, which replaces every secret value — and its
lines, base64, percent-encoded and JSON-escaped forms — with ***. Values
shorter than 4 bytes are not masked; oz says which.

Before COMMAND starts, oz prints the run id, the injected secrets and the
unresolved references on standard error. SIGINT, SIGTERM and SIGHUP go to
COMMAND's process group. oz exits with COMMAND's status (128+N if signal N
killed it); its own errors use oz's exit codes (see oz --help), and
--strict with an unresolved reference exits 7 without starting COMMAND.

Put -- before COMMAND: oz exec --team acme --trigger cli -- make deploy`

// NewExecCmd returns `oz exec`.
func NewExecCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:        "exec",
		Usage:       "Run a command with the run's secrets in its environment, its output masked",
		UsageText:   "oz exec --team TEAM --trigger TRIGGER [--user U] [--agent A] [--environment E] [--secret NAME... | --no-secrets] [--strict] [--run-id ID] [--start-token-env VAR] -- COMMAND [ARGS...]",
		Description: execDescription,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "team", Usage: "the `TEAM` whose run it is (default: --use-team, $OZ_TEAM or the config file's team)"},
			&cli.StringFlag{Name: "trigger", Usage: "what started the run (`TRIGGER`): " + strings.Join(cmdutil.TriggerNames(), ", ")},
			&cli.StringFlag{Name: "user", Usage: "the triggering `USER` (user-initiated triggers)"},
			&cli.StringFlag{Name: "agent", Usage: "the agent identity `ID` to execute as"},
			&cli.StringFlag{Name: "environment", Usage: "the environment `ID` whose secret names are the default allowlist"},
			&cli.StringSliceFlag{Name: "secret", Usage: "inject only the secret `NAME` (repeatable): the run's allowlist"},
			&cli.BoolFlag{Name: "no-secrets", Usage: "inject no secrets (an empty allowlist)"},
			&cli.BoolFlag{Name: "strict", Usage: "fail, without starting COMMAND, if any reference is unresolved"},
			&cli.StringFlag{Name: "run-id", Usage: "the run's `ID` (default: the server makes one)"},
			&cli.StringFlag{Name: "start-token-env", Usage: "the environment variable `VAR` holding the token the run was started with"},
		},
		Action: func(c *cli.Context) error {
			opts := &ExecOptions{
				IO:            f.IO,
				Settings:      f.Settings,
				Dial:          f.Dial,
				Getenv:        f.Getenv,
				Agent:         c.String("agent"),
				Environment:   c.String("environment"),
				Secrets:       c.StringSlice("secret"),
				NoSecrets:     c.Bool("no-secrets"),
				Strict:        c.Bool("strict"),
				RunID:         c.String("run-id"),
				StartTokenEnv: c.String("start-token-env"),
				Command:       c.Args().Slice(),
			}
			if len(opts.Command) == 0 {
				return exitcode.Usagef("missing COMMAND (oz exec [flags] -- COMMAND [ARGS...])")
			}
			var err error
			if opts.Trigger, err = cmdutil.ParseTrigger(c.String("trigger")); err != nil {
				return err
			}
			if u := c.String("user"); u != "" && !strings.HasPrefix(u, "users/") {
				opts.User = "users/" + u
			} else {
				opts.User = u
			}
			if opts.Team, err = f.CommandTeam(c); err != nil {
				return err
			}
			if opts.Team == "" {
				return exitcode.Usagef("--team is required")
			}
			if opts.NoSecrets && c.IsSet("secret") {
				return exitcode.Usagef("--secret and --no-secrets cannot be used together")
			}
			return RunExec(c.Context, opts)
		},
	}
}

// RunExec resolves the run, starts the command and waits for it. It
// returns nil when the command exits 0, and an error carrying the
// command's exit code otherwise: exitcode.Silent for an exit status (oz
// adds no line of its own), a message for a signal.
func RunExec(ctx context.Context, opts *ExecOptions) error {
	errOut := opts.IO.ErrOut
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	rc := &scopev1.RunContext{
		Trigger:     opts.Trigger,
		User:        opts.User,
		Agent:       opts.Agent,
		Environment: opts.Environment,
		Strict:      opts.Strict,
	}
	switch {
	case opts.NoSecrets:
		rc.Secrets = &scopev1.SecretNameList{}
	case len(opts.Secrets) > 0:
		rc.Secrets = &scopev1.SecretNameList{Names: slices.Clone(opts.Secrets)}
	}
	if opts.StartTokenEnv != "" {
		if rc.StartToken = getenv(opts.StartTokenEnv); rc.StartToken == "" {
			return exitcode.Usagef("--start-token-env: $%s is not set", opts.StartTokenEnv)
		}
	}

	// Find the command before resolving, so that a typo costs no run.
	lookPath := opts.LookPath
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	path, err := lookPath(opts.Command[0])
	if err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			err = ee.Err
		}
		return exitcode.Usagef("cannot run %s: %v", opts.Command[0], err)
	}

	settings, err := opts.Settings()
	if err != nil {
		return err
	}
	dial := opts.Dial
	if dial == nil {
		dial = client.Dial
	}
	conn, err := dial(settings)
	if err != nil {
		return err
	}
	res, err := runner.Resolve(ctx, conn.Runs, runner.Request{Team: opts.Team, Context: rc, RunID: opts.RunID})
	_ = conn.Close()
	if se, ok := runner.IsStrict(err); ok {
		printRun(errOut, se.Run)
		return exitcode.New(exitcode.Strict, "strict run: unresolved secret references; "+opts.Command[0]+" was not started")
	}
	if err != nil {
		return err
	}
	printRun(errOut, res.Run)

	// Mask the values, and the credentials that must not reach the agent
	// anyway.
	values := make([][]byte, 0, len(res.Vars)+2)
	var short []string
	for _, v := range res.Vars {
		values = append(values, v.Value)
		if len(v.Value) < mask.MinLen {
			short = append(short, v.Name)
		}
	}
	for _, cred := range []string{settings.Token, rc.StartToken} {
		if len(cred) >= mask.MinLen {
			values = append(values, []byte(cred))
		}
	}
	if len(short) > 0 {
		fmt.Fprintf(errOut, "oz: not masked in output (shorter than %d bytes): %s\n", mask.MinLen, strings.Join(short, ", "))
	}
	drop := []string{config.EnvToken}
	if opts.StartTokenEnv != "" {
		drop = append(drop, opts.StartTokenEnv)
	}
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ
	}
	env, shadowed := runner.Env(environ(), res.Vars, drop)
	for _, name := range shadowed {
		fmt.Fprintf(errOut, "oz: secret %s replaces the inherited environment variable %s\n", name, name)
	}

	m := mask.Compile(values)
	stdout, stderr := m.NewWriter(opts.IO.Out), m.NewWriter(opts.IO.ErrOut)
	exit, err := runner.Run(runner.Command{
		Path:    path,
		Args:    opts.Command,
		Env:     env,
		Stdin:   opts.IO.In,
		Stdout:  stdout,
		Stderr:  stderr,
		Signals: opts.Signals,
	})
	// The relay is over: write what the maskers held back.
	_ = stdout.Close()
	_ = stderr.Close()
	if err != nil {
		return err
	}
	switch {
	case exit.Code == 0:
		return nil
	case exit.Signal != 0:
		return exitcode.New(exit.Code, fmt.Sprintf("%s: killed by signal %d (%v)", opts.Command[0], int(exit.Signal), exit.Signal))
	default:
		// COMMAND has said what it had to on its standard error.
		return exitcode.Silent(exit.Code)
	}
}

// printRun says on w what the run received: no values, only names.
func printRun(w io.Writer, run *scopev1.Run) {
	fmt.Fprintf(w, "oz: run %s (%s)", run.GetRunId(), run.GetName())
	if run.GetAgent() != "" {
		fmt.Fprintf(w, " as agent %s", run.GetAgent())
	}
	fmt.Fprintln(w)
	if len(run.GetInjected()) == 0 && run.GetOutcome() == scopev1.RunOutcome_RUN_OUTCOME_RESOLVED {
		fmt.Fprintln(w, "oz: injected: none")
	}
	for _, in := range run.GetInjected() {
		name := in.GetSecretName()
		if in.GetRedacted() {
			name = cmdutil.OtherUsersSecret
		}
		extra := ""
		if in.GetOverridesTeamSecret() {
			extra = ", overrides the team secret"
		}
		fmt.Fprintf(w, "oz: injected %s (%s, version %d%s)\n", name, cmdutil.SecretScopeName(in.GetScope()), in.GetValueVersion(), extra)
	}
	for _, u := range run.GetUnresolved() {
		why := cmdutil.ReasonName(u.GetReason())
		if u.GetDetail() != "" {
			why += ": " + u.GetDetail()
		}
		fmt.Fprintf(w, "oz: unresolved %s: %s\n", u.GetSecretName(), why)
	}
}
