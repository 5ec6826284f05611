package environment

import (
	"context"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// DeleteOptions are the inputs of `oz environment delete`.
type DeleteOptions struct {
	Deps
	ID    string
	Force bool   // delete without asking
	Etag  string // refuse unless the environment still has this etag
}

func newDeleteCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "Delete an environment",
		ArgsUsage: "NAME",
		Flags: append([]cli.Flag{
			cmdutil.ForceFlag(),
			&cli.StringFlag{Name: "etag", Usage: "delete only if the environment's etag is still `ETAG`"},
		}, cmdutil.TeamFlags()...),
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "NAME")
			if err != nil {
				return err
			}
			d, err := depsOf(f, c)
			if err != nil {
				return err
			}
			return runDelete(c.Context, &DeleteOptions{Deps: d, ID: args[0], Force: c.Bool("force"), Etag: c.String("etag")})
		},
	}
}

func runDelete(ctx context.Context, opts *DeleteOptions) error {
	if err := cmdutil.CheckName("NAME", opts.ID); err != nil {
		return err
	}
	if err := cmdutil.CanConfirm(opts.IO, opts.Force, "environment "+opts.ID); err != nil {
		return err
	}
	conn, team, err := opts.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := cmdutil.ConfirmDelete(ctx, opts.Prompter, opts.Force, describe(team, opts.ID), ""); err != nil {
		return err
	}
	if _, err := conn.Environments.DeleteEnvironment(ctx, &scopev1.DeleteEnvironmentRequest{Name: envName(team, opts.ID), Etag: opts.Etag}); err != nil {
		return err
	}
	cmdutil.Successf(opts.IO, "Deleted %s", describe(team, opts.ID))
	return nil
}
