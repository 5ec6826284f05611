package environment

import (
	"context"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// UpdateOptions are the inputs of `oz environment update`.
type UpdateOptions struct {
	Deps
	ID string

	SetDescription bool // --description was given (possibly empty)
	Description    string
	AddSecrets     []string
	RemoveSecrets  []string
	Etag           string
	Output         cmdutil.Format
}

func newUpdateCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "update",
		Usage:     "Change an environment's description or its secret names",
		ArgsUsage: "NAME",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "description", Aliases: []string{"d"}, Usage: "set the description to `TEXT` (\"\" clears it)"},
			&cli.StringSliceFlag{Name: "add-secret", Usage: "add the secret `NAME` to the list (repeatable)"},
			&cli.StringSliceFlag{Name: "remove-secret", Usage: "remove the secret `NAME` from the list (repeatable)"},
			&cli.StringFlag{Name: "etag", Usage: "update only if the environment's etag is still `ETAG`"},
			cmdutil.OutputFlag(),
		}, cmdutil.TeamFlags()...),
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "NAME")
			if err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			d, err := depsOf(f, c)
			if err != nil {
				return err
			}
			return runUpdate(c.Context, &UpdateOptions{
				Deps:           d,
				ID:             args[0],
				SetDescription: c.IsSet("description"),
				Description:    c.String("description"),
				AddSecrets:     c.StringSlice("add-secret"),
				RemoveSecrets:  c.StringSlice("remove-secret"),
				Etag:           c.String("etag"),
				Output:         format,
			})
		},
	}
}

func runUpdate(ctx context.Context, opts *UpdateOptions) error {
	if err := cmdutil.CheckName("NAME", opts.ID); err != nil {
		return err
	}
	if !opts.SetDescription && len(opts.AddSecrets) == 0 && len(opts.RemoveSecrets) == 0 {
		return exitcode.Usagef("nothing to update: pass --description, --add-secret or --remove-secret")
	}
	if err := cmdutil.CheckSecretChanges(opts.AddSecrets, opts.RemoveSecrets); err != nil {
		return err
	}
	conn, team, err := opts.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	req := &scopev1.UpdateEnvironmentRequest{
		Name:              envName(team, opts.ID),
		AddSecretNames:    opts.AddSecrets,
		RemoveSecretNames: opts.RemoveSecrets,
		Etag:              opts.Etag,
	}
	var paths []string
	if opts.SetDescription {
		req.Description = opts.Description
		paths = append(paths, "description")
	}
	// Without a mask the server changes only what is non-empty; the
	// added and removed names apply either way.
	if len(paths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: paths}
	}
	resp, err := conn.Environments.UpdateEnvironment(ctx, req)
	if err != nil {
		return err
	}
	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.IO.Out, newItem(resp.GetEnvironment(), team))
	}
	cmdutil.Successf(opts.IO, "Updated %s", describe(team, opts.ID))
	return nil
}
