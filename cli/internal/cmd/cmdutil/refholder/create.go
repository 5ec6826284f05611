package refholder

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// CreateOptions are the inputs of create.
type CreateOptions struct {
	cmdutil.TeamDeps
	ID          string
	Description string
	Secrets     []string // the secret names it references
	Fields      Values
	Output      cmdutil.Format
}

func (k *Kind[R, I]) createCmd(f *cmdutil.Factory) *cli.Command {
	own := k.editFlags(false, "what the "+k.Short+" is for, as `TEXT`",
		&cli.StringSliceFlag{Name: "secret", Usage: k.Help.SecretFlag})
	return &cli.Command{
		Name:        "create",
		Usage:       k.Help.Create.Usage,
		Description: k.Help.Create.Description,
		ArgsUsage:   "NAME",
		Flags:       flags(true, append(own, cmdutil.QuietFlag())...),
		Action: func(c *cli.Context) error {
			in, err := k.readEditInput(f, c)
			if err != nil {
				return err
			}
			return k.RunCreate(c.Context, &CreateOptions{
				TeamDeps:    in.TeamDeps,
				ID:          in.ID,
				Description: c.String(descriptionFlag),
				Secrets:     c.StringSlice("secret"),
				Fields:      in.Fields,
				Output:      in.Output,
			})
		},
	}
}

// RunCreate creates a holder.
func (k *Kind[R, I]) RunCreate(ctx context.Context, opts *CreateOptions) error {
	if err := cmdutil.CheckName("NAME", opts.ID); err != nil {
		return err
	}
	if err := cmdutil.CheckSecretNames("--secret", opts.Secrets); err != nil {
		return err
	}
	conn, team, err := opts.ConnectTeam(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	r, err := k.Create(ctx, conn, CreateRequest{
		Parent:      "teams/" + team,
		ID:          opts.ID,
		Description: opts.Description,
		Secrets:     opts.Secrets,
		Fields:      opts.Fields,
	})
	if err != nil {
		return err
	}
	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.IO.Out, k.item(r, team))
	}
	cmdutil.Successf(opts.IO, "Created %s", k.describe(team, opts.ID))
	return nil
}
