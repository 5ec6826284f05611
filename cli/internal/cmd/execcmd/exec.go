// Package execcmd implements the runner's commands: `oz exec`, which
// redeems a run's start ticket and runs a command with the run's secrets
// as environment variables and its output masked, and `oz mask`, which
// masks a stream.
package execcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/lib/hostbind"
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
	// ConfigPath is the config file's path, checked with the token file
	// under --as-user; empty: none.
	ConfigPath string
	// Dial connects to the gateway; client.Dial unless replaced.
	Dial     func(config.Settings) (*client.Conn, error)
	Getenv   func(string) string
	Environ  func() []string
	LookPath func(string) (string, error)
	ReadFile func(string) ([]byte, error)
	Now      func() time.Time
	// Signals to forward; nil: those the process receives.
	Signals <-chan os.Signal

	// The ticket: from the variable TicketEnv, or the file TicketFile.
	TicketEnv  string
	TicketFile string
	// Team, when set, must be the ticket's.
	Team string
	// Context narrows (secrets, strict) or restates (trigger, user, agent,
	// environment: they must agree) the ticket's; nil: as the ticket says.
	Context *scopev1.RunContext
	RunID   string
	// AsUser runs the command as another user (the runner must be root).
	AsUser *runner.User
	// EgressAllow restricts the command's egress through the run's egress
	// proxy to these host patterns (--egress-allow); empty: any host.
	EgressAllow []string
	// EgressUpstream is --egress-upstream-proxy: the proxy the egress
	// proxy goes through (runner.UpstreamProxy: "" the runner's own proxy
	// variables, "none" direct, or a URL).
	EgressUpstream string
	// EgressDial opens the egress proxy's upstream connections; nil: a
	// net.Dialer. Tests point names at loopback servers.
	EgressDial func(ctx context.Context, network, addr string) (net.Conn, error)
	Command    []string
}

// getenv reads oz's environment: opts.Getenv, or the process's.
func (opts *ExecOptions) getenv(name string) string {
	if opts.Getenv == nil {
		return os.Getenv(name)
	}
	return opts.Getenv(name)
}

// EnvTicket is the variable oz exec reads the ticket from by default.
const EnvTicket = "OZ_TICKET"

const execDescription = `oz exec redeems a run's start ticket with the runner token (OZ_TOKEN,
--token-file, OZ_TOKEN_FILE) and runs COMMAND with each injected secret as an
environment variable named after it.

A run is started by its trigger, not by the runner: a member with
oz run start (for themselves), an agent identity's token (as that
identity), or an integration (Slack, Linear, a scheduler). Each gets a
single-use ticket that expires (10 minutes by default), and the ticket fixes
the run's context: whose run it is, which identity it executes as, its
environment and its secret list. The runner may narrow it (--no-secrets,
--secret with some of the ticket's names, --strict) but never change it:
--trigger, --user, --agent, --environment, --team and --run-id, when given,
must agree with the ticket.

The values are sealed to a key made for the run and opened in memory; they
never go on a command line, into a file or into oz's output. oz makes itself
non-dumpable first, so that a process of the same user cannot read its
memory or /proc/PID/environ, nor attach to it.

COMMAND inherits oz's environment without OZ_TOKEN, OZ_TOKEN_FILE and the
ticket's variable; a secret replaces an inherited variable of the same name.
Its standard input is oz's; its standard output and error pass through oz,
which replaces every secret value (and the runner's token and the ticket) —
and their lines, base64, hex, percent-encoded, JSON- and \x-escaped forms, in
any letter case — with ***. Values shorter than 4 bytes are not masked; oz
says which.

--as-user UID[:GID] (the runner running as root) runs COMMAND as that user,
with no supplementary groups, no_new_privs and a session of its own, so that
it cannot read the runner's memory, token file or config file (oz refuses to
start when that user could read them). This is the recommended deployment:
without it, any other process of the same user that holds the token (the
shell that exported OZ_TOKEN) is readable by COMMAND.

A secret bound to hosts (oz secret create --bind-host) never reaches
COMMAND: its variable holds a placeholder (oz-ph-…, fresh for each run), and
oz runs an egress proxy for the run, in its own process, that puts the value
into requests over HTTPS to the bound hosts only, and refuses (and audits) a
request that carries the placeholder anywhere else. COMMAND gets the proxy in
HTTP_PROXY, HTTPS_PROXY and ALL_PROXY (and their lower-case forms, NO_PROXY
removed), and the run's CA certificate in SSL_CERT_FILE, REQUESTS_CA_BUNDLE,
CURL_CA_BUNDLE, GIT_SSL_CAINFO and NODE_EXTRA_CA_CERTS (NODE_USE_ENV_PROXY=1
for Node's fetch). --egress-allow HOST... restricts every request through the
proxy to those hosts (and the bound ones), with or without bound secrets.
The proxy reaches the world as oz does: through the proxy of oz's own
HTTPS_PROXY, HTTP_PROXY and NO_PROXY when set (the agent's are the egress
proxy's); --egress-upstream-proxy URL chooses another, "none" goes direct.
When the run ends, the run record counts substitutions and denials per host.

Before COMMAND starts, oz prints the run id, the injected secrets and the
unresolved references on standard error. SIGINT, SIGTERM and SIGHUP go to
COMMAND's process group. When COMMAND ends, oz reports the run's end (exit
code and duration) and exits with COMMAND's status (128+N if signal N killed
it); its own errors use oz's exit codes (see oz --help), and --strict with an
unresolved reference exits 7 without starting COMMAND.

Example, a member starts a run; a runner runs make deploy with its secrets:
   T=$(oz run start --environment ops-tools)          # as the member
   OZ_TICKET=$T oz exec --ticket-env OZ_TICKET -- make deploy   # as the runner
Example, the same from a ticket file, failing rather than running short of a secret:
   oz exec --ticket-file /run/oz/ticket --strict -- make deploy
Example, an agent whose requests may go only to two APIs:
   oz exec --egress-allow api.openai.com --egress-allow '*.github.com' -- ./agent`

// NewExecCmd returns `oz exec`.
func NewExecCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:        "exec",
		Usage:       "Redeem a run's start ticket and run a command with its secrets, its output masked",
		UsageText:   "oz exec (--ticket-env VAR | --ticket-file FILE) [--no-secrets | --secret NAME...] [--strict] [--as-user UID[:GID]] [--egress-allow HOST...] [--egress-upstream-proxy URL] -- COMMAND [ARGS...]",
		Description: execDescription,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ticket-env", Usage: "read the start ticket from the environment variable `VAR` (" + EnvTicket + " when neither this nor --ticket-file is given)"},
			&cli.StringFlag{Name: "ticket-file", Usage: "read the start ticket from `FILE`"},
			&cli.StringSliceFlag{Name: "secret", Usage: "narrow the run to the secret `NAME` (repeatable; each in the ticket's own list)"},
			&cli.BoolFlag{Name: "no-secrets", Usage: "inject no secrets (narrows the ticket to an empty list)"},
			&cli.BoolFlag{Name: "strict", Usage: "fail, without starting COMMAND, if any reference is unresolved"},
			&cli.StringFlag{Name: "as-user", Usage: "run COMMAND as `UID[:GID]` (the runner must be root)"},
			&cli.StringSliceFlag{Name: "egress-allow", Usage: "let COMMAND's requests through the egress proxy go only to `HOST` (a pattern: api.example.com or *.example.com; repeatable or comma-separated); the bound hosts are always allowed"},
			&cli.StringFlag{Name: "egress-upstream-proxy", Usage: "when the egress proxy runs, it reaches hosts through the proxy `URL` (http://[user:password@]host:port, https:// or socks5://), or directly with none (default: as oz's own HTTPS_PROXY, HTTP_PROXY and NO_PROXY say)"},
			&cli.StringFlag{Name: "team", Usage: "the `TEAM` the ticket must belong to (default: the ticket's)"},
			&cli.StringFlag{Name: "trigger", Usage: "the `TRIGGER` the ticket must have"},
			&cli.StringFlag{Name: "user", Usage: "the triggering `USER` the ticket must have"},
			&cli.StringFlag{Name: "agent", Usage: "the agent identity `ID` the ticket must have"},
			&cli.StringFlag{Name: "environment", Usage: "the environment `ID` the ticket must have"},
			&cli.StringFlag{Name: "run-id", Usage: "the run `ID` the ticket must have"},
			&cli.StringFlag{Name: "start-token-env", Hidden: true},
		},
		Action: func(c *cli.Context) error {
			if c.IsSet("start-token-env") {
				return exitcode.Usagef("--start-token-env is no longer supported: start the run with that token (oz run start, or StartRun), and pass the ticket it prints to oz exec with --ticket-env or --ticket-file")
			}
			opts := &ExecOptions{
				IO:         f.IO,
				Settings:   f.Settings,
				Dial:       f.Dial,
				Getenv:     f.Getenv,
				Now:        f.Now,
				TicketEnv:  c.String("ticket-env"),
				TicketFile: c.String("ticket-file"),
				Team:       c.String("team"),
				RunID:      c.String("run-id"),
				Command:    c.Args().Slice(),
				EgressDial: testDial,
			}
			if p, err := f.ConfigPath(); err == nil {
				opts.ConfigPath = p
			}
			if len(opts.Command) == 0 {
				return exitcode.Usagef("missing COMMAND (oz exec [flags] -- COMMAND [ARGS...])")
			}
			if opts.TicketEnv != "" && opts.TicketFile != "" {
				return exitcode.Usagef("--ticket-env and --ticket-file cannot be used together")
			}
			if c.Bool("no-secrets") && c.IsSet("secret") {
				return exitcode.Usagef("--secret and --no-secrets cannot be used together")
			}
			rc, err := contextOf(c)
			if err != nil {
				return err
			}
			opts.Context = rc
			for _, h := range c.StringSlice("egress-allow") {
				if err := hostbind.ValidatePattern(h); err != nil {
					return exitcode.Usagef("--egress-allow: %v", err)
				}
				opts.EgressAllow = append(opts.EgressAllow, h)
			}
			opts.EgressUpstream = c.String("egress-upstream-proxy")
			if opts.EgressUpstream != "" {
				// Checked now, before the ticket is redeemed; the runner's
				// own variables only when a run needs the egress proxy.
				if _, _, err := runner.UpstreamProxy(opts.EgressUpstream, f.Getenv); err != nil {
					return exitcode.Usagef("%v", err)
				}
			}
			if v := c.String("as-user"); v != "" {
				u, err := runner.ParseAsUser(v)
				if err != nil {
					return exitcode.Usagef("%v", err)
				}
				opts.AsUser = u
			}
			return RunExec(c.Context, opts)
		},
	}
}

// contextOf is the context the flags restate or narrow; nil when none is
// given.
func contextOf(c *cli.Context) (*scopev1.RunContext, error) {
	rc := &scopev1.RunContext{
		User:        c.String("user"),
		Agent:       c.String("agent"),
		Environment: c.String("environment"),
		Strict:      c.Bool("strict"),
	}
	if t := c.String("trigger"); t != "" {
		tr, err := cmdutil.ParseTrigger(t)
		if err != nil {
			return nil, err
		}
		rc.Trigger = tr
	}
	if rc.User != "" && !strings.HasPrefix(rc.User, "users/") {
		rc.User = "users/" + rc.User
	}
	switch {
	case c.Bool("no-secrets"):
		rc.Secrets = &scopev1.SecretNameList{}
	case c.IsSet("secret"):
		rc.Secrets = &scopev1.SecretNameList{Names: slices.Clone(c.StringSlice("secret"))}
	}
	if rc.Trigger == 0 && rc.User == "" && rc.Agent == "" && rc.Environment == "" && !rc.Strict && rc.Secrets == nil {
		return nil, nil
	}
	return rc, nil
}

// ticket reads the start ticket as opts say: from TicketFile, else the
// variable TicketEnv (EnvTicket when empty). It returns the variable to
// drop from the command's environment.
func (opts *ExecOptions) ticket() (ticket, envVar string, err error) {
	if opts.TicketFile != "" {
		read := opts.ReadFile
		if read == nil {
			read = os.ReadFile
		}
		b, err := read(opts.TicketFile)
		if err != nil {
			return "", "", exitcode.Usagef("--ticket-file: %v", err)
		}
		if ticket = strings.TrimSpace(string(b)); ticket == "" {
			return "", "", exitcode.Usagef("--ticket-file: %s is empty", opts.TicketFile)
		}
		return ticket, "", nil
	}
	envVar = opts.TicketEnv
	if envVar == "" {
		envVar = EnvTicket
	}
	if ticket = strings.TrimSpace(opts.getenv(envVar)); ticket == "" {
		return "", "", exitcode.Usagef("no start ticket: $%s is not set; a run is started by its trigger (oz run start prints a ticket) and the runner redeems it with --ticket-env VAR or --ticket-file FILE", envVar)
	}
	return ticket, envVar, nil
}

// RunExec redeems the ticket, starts the command, waits for it and reports
// the run's end. It returns nil when the command exits 0, and an error
// carrying the command's exit code otherwise: exitcode.Silent for an exit
// status (oz adds no line of its own), a message for a signal.
func RunExec(ctx context.Context, opts *ExecOptions) error {
	// The egress proxy's denials are said from its own goroutines, beside
	// the command's masked standard error.
	errOut := &syncWriter{w: opts.IO.ErrOut}
	if opts.AsUser != nil {
		// Before anything is resolved: a run that cannot start is not
		// resolved.
		if err := runner.CheckRunAs(*opts.AsUser); err != nil {
			return exitcode.Usagef("--as-user: %v", err)
		}
	}
	ticket, ticketVar, err := opts.ticket()
	if err != nil {
		return err
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
	if opts.AsUser != nil {
		// The agent's user must not be able to read the runner's token.
		var files []string
		if settings.TokenFile != "" {
			files = append(files, settings.TokenFile)
		}
		if opts.ConfigPath != "" {
			if _, err := os.Stat(opts.ConfigPath); err == nil {
				files = append(files, opts.ConfigPath)
			}
		}
		if err := runner.CheckPrivate(*opts.AsUser, files...); err != nil {
			return exitcode.Usagef("--as-user: %v", err)
		}
	}
	dial := opts.Dial
	if dial == nil {
		dial = client.Dial
	}
	conn, err := dial(settings)
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := runner.Resolve(ctx, conn.Runs, runner.Request{Ticket: ticket, Team: opts.Team, Context: opts.Context, RunID: opts.RunID})
	if se, ok := runner.IsStrict(err); ok {
		printRun(errOut, se.Run)
		return exitcode.New(exitcode.Strict, "strict run: unresolved secret references; "+opts.Command[0]+" was not started")
	}
	if err != nil {
		return err
	}
	printRun(errOut, res.Run)

	now := opts.Now
	if now == nil {
		now = time.Now
	}
	started := now()
	vars := res.Vars
	var eg *runner.Egress
	if runner.NeedsEgress(vars, opts.EgressAllow) {
		var upstream string
		eg, upstream, err = startEgress(opts, vars, conn.Runs, res.Run.GetName(), errOut)
		if err != nil {
			// Nothing ran: the run ends here, as for a command that
			// cannot start.
			reportEnd(ctx, errOut, conn.Runs, res.Run.GetName(), runner.Exit{Code: 127}, now().Sub(started), nil)
			return err
		}
		fmt.Fprintf(errOut, "oz: egress proxy on %s", eg.Addr())
		if len(opts.EgressAllow) > 0 {
			fmt.Fprintf(errOut, ", allowing only %s and the bound hosts", strings.Join(opts.EgressAllow, ", "))
		}
		if upstream != "" {
			fmt.Fprintf(errOut, ", reaching hosts through %s", upstream)
		}
		fmt.Fprintln(errOut)
		vars = eg.Vars()
	}

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
	for _, cred := range []string{settings.Token, ticket} {
		if len(cred) >= mask.MinLen {
			values = append(values, []byte(cred))
		}
	}
	if len(short) > 0 {
		fmt.Fprintf(errOut, "oz: not masked in output (shorter than %d bytes): %s\n", mask.MinLen, strings.Join(short, ", "))
	}
	drop := []string{config.EnvToken, config.EnvTokenFile}
	if ticketVar != "" {
		drop = append(drop, ticketVar)
	}
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ
	}
	env, shadowed, reserved := runner.Env(environ(), vars, drop)
	if eg != nil {
		env = eg.Apply(env)
	}
	for _, name := range shadowed {
		fmt.Fprintf(errOut, "oz: secret %s replaces the inherited environment variable %s\n", name, name)
	}
	for _, name := range reserved {
		fmt.Fprintf(errOut, "oz: not set: %s is a reserved name (see the README's Rules)\n", name)
	}

	m := mask.Compile(values)
	stdout, stderr := m.NewWriter(opts.IO.Out), m.NewWriter(errOut)
	exit, err := runner.Run(runner.Command{
		Path:    path,
		Args:    opts.Command,
		Env:     env,
		Stdin:   opts.IO.In,
		Stdout:  stdout,
		Stderr:  stderr,
		Signals: opts.Signals,
		AsUser:  opts.AsUser,
	})
	// The relay is over: write what the maskers held back.
	_ = stdout.Close()
	_ = stderr.Close()
	if err != nil {
		// The command never ran: the run ends here, as a shell says of a
		// command it cannot run.
		exit = runner.Exit{Code: 127}
	}
	d := now().Sub(started)
	var egressCounts []*scopev1.EgressCount
	if eg != nil {
		flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
		egressCounts = eg.Close(flush)
		cancel()
	}
	reportEnd(ctx, errOut, conn.Runs, res.Run.GetName(), exit, d, egressCounts)
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

// endTimeout bounds the report of a run's end.
const endTimeout = 10 * time.Second

// reportEnd tells the server that the run ended, with its egress counts.
// It is done even when ctx was cancelled (an interrupt that ended the
// command); a failure is said on w and does not change oz's exit status.
// Counts the server refuses do not keep the end from being recorded.
func reportEnd(ctx context.Context, w io.Writer, r runner.Resolver, run string, exit runner.Exit, d time.Duration, egress []*scopev1.EgressCount) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	_, err := runner.End(ctx, r, run, exit, d, egress)
	if len(egress) > 0 && status.Code(err) == codes.InvalidArgument {
		fmt.Fprintf(w, "oz: the run's egress counts were refused (%s); reporting its end without them\n", status.Convert(err).Message())
		_, err = runner.End(ctx, r, run, exit, d, nil)
	}
	if err != nil {
		lines, _ := exitcode.Describe(err)
		fmt.Fprintf(w, "oz: the run's end could not be reported (it stays in flight in the run record): %s\n", strings.Join(lines, "; "))
	}
}

// startEgress starts the run's egress proxy for vars
// (runner.StartEgress): it reports its denials for the run named run to r,
// and says the first of each on w.
func startEgress(opts *ExecOptions, vars []runner.Var, r scopev1.RunServiceClient, run string, w io.Writer) (eg *runner.Egress, upstream string, err error) {
	via, upstream, err := runner.UpstreamProxy(opts.EgressUpstream, opts.getenv)
	if err != nil {
		return nil, "", exitcode.Usagef("egress proxy: %v", err)
	}
	cfg := runner.EgressConfig{
		UpstreamProxy: via,
		Allow:         opts.EgressAllow,
		AgentUID:      -1,
		AgentGID:      -1,
		DialContext:   opts.EgressDial,
		Report: func(ctx context.Context, d []*scopev1.EgressDenial) error {
			_, err := r.ReportEgressDenials(ctx, &scopev1.ReportEgressDenialsRequest{Name: run, Denials: d})
			return err
		},
		OnDenied: func(secret, host, reason string) {
			if secret != "" {
				fmt.Fprintf(w, "oz: egress proxy refused a request to %s carrying %s: %s\n", host, secret, reason)
				return
			}
			fmt.Fprintf(w, "oz: egress proxy refused a request to %s: %s\n", host, reason)
		},
		OnReportError: func(err error) {
			lines, _ := exitcode.Describe(err)
			fmt.Fprintf(w, "oz: egress denials could not be recorded in the audit: %s\n", strings.Join(lines, "; "))
		},
	}
	if opts.AsUser != nil {
		cfg.AgentUID, cfg.AgentGID = int(opts.AsUser.UID), int(opts.AsUser.GID)
	}
	eg, err = runner.StartEgress(vars, cfg)
	return eg, upstream, err
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
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
		if b := in.GetBinding(); b != nil {
			extra += ", bound to " + strings.Join(b.GetHosts(), ", ") + ": a placeholder, the proxy holds the value"
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
