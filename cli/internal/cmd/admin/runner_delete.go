package admin

import (
	"context"
	"strings"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// RunnerDeleteOptions are the inputs of `oz admin runner delete`.
type RunnerDeleteOptions struct {
	Deps
	Runner string // with or without "runners/"
	Force  bool
}

func newRunnerDeleteCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "Delete a runner and revoke its tokens",
		ArgsUsage: "NAME",
		Description: `Examples:
   oz admin runner delete ci-runner            # asks for confirmation
   oz admin runner delete ci-runner --force    # in a script`,
		Flags: []cli.Flag{
			cmdutil.QuietFlag(), cmdutil.ForceFlag()},
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "NAME")
			if err != nil {
				return err
			}
			return runRunnerDelete(c.Context, &RunnerDeleteOptions{Deps: quietDepsOf(f, c), Runner: args[0], Force: c.Bool("force")})
		},
	}
}

func runRunnerDelete(ctx context.Context, opts *RunnerDeleteOptions) error {
	id := strings.TrimPrefix(opts.Runner, "runners/")
	if err := cmdutil.CheckName("NAME", id); err != nil {
		return err
	}
	what := "runner " + id
	if err := cmdutil.CanConfirm(opts.IO, opts.Force, what); err != nil {
		return err
	}
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := cmdutil.ConfirmDelete(ctx, opts.Prompter, opts.Force, what, " and revoke its tokens"); err != nil {
		return err
	}
	if _, err := conn.Runners.DeleteRunner(ctx, &scopev1.DeleteRunnerRequest{Name: "runners/" + id}); err != nil {
		return err
	}
	cmdutil.Successf(opts.IO, "Deleted %s", what)
	return nil
}
