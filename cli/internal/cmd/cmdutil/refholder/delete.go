package refholder

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// DeleteOptions are the inputs of delete.
type DeleteOptions struct {
	cmdutil.TeamDeps
	ID    string
	Force bool   // delete without asking
	Etag  string // refuse unless the holder still has this etag
}

func (k *Kind[R, I]) deleteCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:        "delete",
		Usage:       k.Help.Delete.Usage,
		Description: k.Help.Delete.Description,
		ArgsUsage:   "NAME",
		Flags:       flags(false, cmdutil.ForceFlag(), etagFlag("delete", k.Short), cmdutil.QuietFlag()),
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "NAME")
			if err != nil {
				return err
			}
			d, err := f.TeamDeps(c)
			if err != nil {
				return err
			}
			return k.RunDelete(c.Context, &DeleteOptions{TeamDeps: d, ID: args[0], Force: c.Bool("force"), Etag: c.String("etag")})
		},
	}
}

// RunDelete deletes a holder, after asking unless Force.
func (k *Kind[R, I]) RunDelete(ctx context.Context, opts *DeleteOptions) error {
	if err := cmdutil.CheckName("NAME", opts.ID); err != nil {
		return err
	}
	if err := cmdutil.CanConfirm(opts.IO, opts.Force, k.Noun+" "+opts.ID); err != nil {
		return err
	}
	conn, team, err := opts.ConnectTeam(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := cmdutil.ConfirmDelete(ctx, opts.Prompter, opts.Force, k.describe(team, opts.ID), k.DeleteAlso); err != nil {
		return err
	}
	if err := k.Delete(ctx, conn, k.name(team, opts.ID), opts.Etag); err != nil {
		return err
	}
	cmdutil.Successf(opts.IO, "Deleted %s", k.describe(team, opts.ID))
	return nil
}
