// Package root assembles the oz command tree and runs it: the one place
// where an error becomes a line on standard error and an exit code.
package root

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/admin"
	"github.com/ozsecrets/oz/cli/internal/cmd/agent"
	"github.com/ozsecrets/oz/cli/internal/cmd/audit"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/cmd/configcmd"
	"github.com/ozsecrets/oz/cli/internal/cmd/environment"
	"github.com/ozsecrets/oz/cli/internal/cmd/execcmd"
	"github.com/ozsecrets/oz/cli/internal/cmd/integration"
	"github.com/ozsecrets/oz/cli/internal/cmd/invitation"
	"github.com/ozsecrets/oz/cli/internal/cmd/login"
	"github.com/ozsecrets/oz/cli/internal/cmd/run"
	"github.com/ozsecrets/oz/cli/internal/cmd/secret"
	"github.com/ozsecrets/oz/cli/internal/cmd/whoami"
	"github.com/ozsecrets/oz/cli/internal/config"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

const environmentHelp = `
ENVIRONMENT:
   OZ_ADDR      gateway address, host:port (default ` + config.DefaultAddr + `)
   OZ_TOKEN     bearer token
   OZ_TOKEN_FILE  file holding the bearer token (as --token-file; OZ_TOKEN wins)
   OZ_CA_FILE   PEM file of the CA that signed the gateway's certificate (default: system roots)
   OZ_TEAM      the team of team secrets, agent identities, environments and runs (same as --use-team)
   OZ_CONFIG    config file (default: oz/config.json in your config directory)
   They override the config file's keys addr, token, token_file, ca_file and team (see oz config).
   OZ_RETRIES   how many times a call that got no answer (unavailable) within 5s is sent again,
                after 0.5s, 1s, 2s…: 0 to 10 (default 2; 0: never). Writes are sent again safely:
                each carries an idempotency key, and a retry of one that committed gets its answer.

`

// NewApp returns the oz command tree writing to f's streams.
func NewApp(f *cmdutil.Factory, version string) *cli.App {
	app := &cli.App{
		Name:    "oz",
		Usage:   "secrets for AI agent runs",
		Version: version,
		Description: `oz manages the secrets that agent runs receive as environment variables.
Values are write-only: no command prints one.`,
		Flags: []cli.Flag{
			// $OZ_TEAM is read with the other settings (Factory.Settings), not
			// by the flag, so that tests control the whole environment.
			&cli.StringFlag{Name: cmdutil.UseTeamFlag, Usage: "the `TEAM` to work in (default: $OZ_TEAM, the config file's team, or your only team)"},
			// $OZ_TOKEN_FILE is read with the other settings.
			&cli.StringFlag{Name: "token-file", Usage: "read the token from `FILE` (ahead of $OZ_TOKEN, $OZ_TOKEN_FILE and the config file)"},
		},
		Before: func(c *cli.Context) error {
			f.TokenFile = c.String("token-file")
			return nil
		},
		Commands: append([]*cli.Command{
			secretCmd(f),
			agent.NewCmd(f),
			environment.NewCmd(f),
			run.NewCmd(f),
			integration.NewCmd(f),
			invitation.NewCmd(f),
		}, append(execcmd.Commands(f),
			audit.NewCmd(f),
			whoami.NewCmd(f),
			login.NewCmd(f),
			admin.NewCmd(f),
			configcmd.NewCmd(f),
			versionCmd(f),
		)...),
		Reader:                f.IO.In,
		Writer:                f.IO.Out,
		ErrWriter:             f.IO.ErrOut,
		CustomAppHelpTemplate: cli.AppHelpTemplate + environmentHelp + exitcode.Help(),
		// Run reports errors and exits; urfave/cli must not.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError,
		// `oz help NAME` with an unknown NAME.
		CommandNotFound: func(c *cli.Context, name string) {
			cmds := c.App.Commands
			if c.Command != nil && len(c.Command.Subcommands) > 0 {
				cmds = c.Command.Subcommands
			}
			fmt.Fprintf(f.IO.ErrOut, "oz: unknown command %q\n", name)
			if s := suggest(cmds, name); s != "" {
				fmt.Fprintf(f.IO.ErrOut, "oz: Did you mean %q?\n", s)
			}
		},
		Action: groupAction,
	}
	app.Commands = append(app.Commands, completionCmds(f)...)
	for _, cmd := range app.Commands {
		prepare(cmd)
	}
	return app
}

// secretCmd is `oz secret` with `oz secret usage` and `oz secret review`,
// which read the audit log and so live with the audit commands.
func secretCmd(f *cmdutil.Factory) *cli.Command {
	cmd := secret.NewCmd(f)
	cmd.Subcommands = append(cmd.Subcommands, audit.NewUsageCmd(f), audit.NewReviewCmd(f))
	return cmd
}

// prepare makes every command report flag errors and unknown subcommands
// as usage errors.
func prepare(cmd *cli.Command) {
	cmd.OnUsageError = usageError
	if len(cmd.Subcommands) > 0 && cmd.Action == nil {
		cmd.Action = groupAction
	}
	for _, sub := range cmd.Subcommands {
		prepare(sub)
	}
}

func usageError(_ *cli.Context, err error, _ bool) error {
	msg := err.Error()
	// The flag package names flags with one dash; ours have two.
	const undefined = "flag provided but not defined: -"
	if rest, ok := strings.CutPrefix(msg, undefined); ok && len(rest) > 1 {
		msg = undefined + "-" + rest
	}
	return exitcode.Usagef("%s", msg)
}

// groupAction runs for a command group given no known subcommand: help
// without arguments, a usage error with one.
func groupAction(c *cli.Context) error {
	if c.Args().Present() {
		cmds := c.App.Commands
		if c.Command != nil && c.Command.Name != "" {
			cmds = c.Command.Subcommands
		}
		typed := c.Args().First()
		return exitcode.Usagef("unknown command %q (see %s --help)%s", typed, helpName(c), didYouMean(cmds, typed))
	}
	if c.Command == nil || c.Command.Name == "" {
		return cli.ShowAppHelp(c)
	}
	return cli.ShowSubcommandHelp(c)
}

func helpName(c *cli.Context) string {
	if c.Command != nil && c.Command.HelpName != "" {
		return c.Command.HelpName
	}
	return c.App.Name
}

// Run runs oz with args (args[0] is the program name) and returns the exit
// code. Errors are printed as "oz: message" lines on standard error.
func Run(ctx context.Context, f *cmdutil.Factory, version string, args []string) int {
	app := NewApp(f, version)
	err := app.RunContext(ctx, Interspersed(app, args))
	if err == nil {
		return exitcode.OK
	}
	lines, code := exitcode.Describe(err)
	for _, l := range lines {
		fmt.Fprintln(f.IO.ErrOut, "oz: "+l)
	}
	return code
}

// passThrough names the top-level commands whose arguments are another
// command line (`oz exec [flags] -- COMMAND [ARGS...]`): Interspersed
// leaves them as they are, so that COMMAND's flags stay COMMAND's.
var passThrough = map[string]bool{"exec": true, completeCmdName: true}

// Interspersed moves the flags of the leaf command in args before its
// positional arguments, so that `oz admin member add alice --team acme`
// works: urfave/cli stops parsing flags at the first argument. Flags
// before the leaf command, everything after "--", and the arguments of
// the passThrough commands stay where they are.
func Interspersed(app *cli.App, args []string) []string {
	if len(args) == 0 {
		return args
	}
	out := []string{args[0]}
	flags, cmds := app.Flags, app.Commands
	top := true // cmds are the app's commands
	i := 1
	// Walk down the command path.
	for i < len(args) {
		tok := args[i]
		if tok == "--" {
			return append(out, args[i:]...)
		}
		if isFlag(tok) {
			out = append(out, tok)
			i++
			if takesValue(flags, tok) && i < len(args) {
				out = append(out, args[i])
				i++
			}
			continue
		}
		cmd := find(cmds, tok)
		if cmd == nil {
			return append(out, args[i:]...) // unknown: let the app report it
		}
		out = append(out, tok)
		i++
		if top && passThrough[cmd.Name] {
			return append(out, args[i:]...)
		}
		top = false
		flags, cmds = cmd.Flags, cmd.Subcommands
		if len(cmds) == 0 {
			break
		}
	}
	// The leaf command: its flags first, then its arguments.
	var fl, pos []string
	for i < len(args) {
		tok := args[i]
		if tok == "--" {
			pos = append(pos, args[i:]...)
			break
		}
		if isFlag(tok) {
			fl = append(fl, tok)
			i++
			if takesValue(flags, tok) && i < len(args) {
				fl = append(fl, args[i])
				i++
			}
			continue
		}
		pos = append(pos, tok)
		i++
	}
	out = append(out, fl...)
	if len(pos) > 0 && pos[0] != "--" {
		// Keep arguments that look like flags after the leaf's flags
		// from being parsed as flags.
		out = append(out, "--")
	}
	return append(out, pos...)
}

func isFlag(tok string) bool { return len(tok) > 1 && tok[0] == '-' }

// takesValue reports whether tok ("-x", "--name") names a flag in flags
// that needs a separate value. Unknown flags are taken as booleans.
func takesValue(flags []cli.Flag, tok string) bool {
	if strings.Contains(tok, "=") {
		return false
	}
	name := strings.TrimLeft(tok, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if _, ok := f.(*cli.BoolFlag); ok {
				return false
			}
			return true
		}
	}
	return false
}

func find(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
