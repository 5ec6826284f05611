package admin

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// RunnerCreateOptions are the inputs of `oz admin runner create`.
type RunnerCreateOptions struct {
	Deps
	Runner string   // with or without "runners/"
	Teams  []string // the teams it may resolve runs for
}

func newRunnerCreateCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "Create a runner and print its token (only it) on standard output",
		ArgsUsage: "NAME",
		Description: `A runner resolves runs, and receives their values, for the teams it is granted,
and for no other. Its token is shown once: only its hash is stored. Give it to
the runner as OZ_TOKEN, e.g.:
   OZ_TOKEN=$(oz admin runner create ci-runner --team acme)

Example, a runner for two teams (the token goes to the runner's OZ_TOKEN):
   oz admin runner create ci-runner --team acme --team beta > runner-token`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "team", Usage: "grant the runner the `TEAM` (repeatable; at least one)"},
		},
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "NAME")
			if err != nil {
				return err
			}
			return runRunnerCreate(c.Context, &RunnerCreateOptions{Deps: depsOf(f), Runner: args[0], Teams: c.StringSlice("team")})
		},
	}
}

func runRunnerCreate(ctx context.Context, opts *RunnerCreateOptions) error {
	id := strings.TrimPrefix(opts.Runner, "runners/")
	if err := cmdutil.CheckName("NAME", id); err != nil {
		return err
	}
	if len(opts.Teams) == 0 {
		return exitcode.Usagef("--team is required: the teams the runner may resolve runs for")
	}
	for _, t := range opts.Teams {
		if err := cmdutil.CheckName("--team", t); err != nil {
			return err
		}
	}
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := conn.Runners.CreateRunner(ctx, &scopev1.CreateRunnerRequest{RunnerId: id, Teams: opts.Teams})
	if err != nil {
		return err
	}
	if resp.GetBearerToken() == "" {
		return fmt.Errorf("the server returned no token")
	}
	// Only the token on standard output, so that it can be captured.
	fmt.Fprintln(opts.IO.Out, resp.GetBearerToken())
	if opts.IO.StderrTTY {
		fmt.Fprintf(opts.IO.ErrOut, "Runner %s for team(s) %s. Its token is shown only once.\n", id, strings.Join(opts.Teams, ", "))
	}
	return nil
}
