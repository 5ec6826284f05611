package refholder

import (
	"context"
	"strings"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// UpdateOptions are the inputs of update.
type UpdateOptions struct {
	cmdutil.TeamDeps
	ID string

	SetDescription bool // --description was given (possibly empty)
	Description    string
	Fields         Values // the Fields given
	AddSecrets     []string
	RemoveSecrets  []string
	Etag           string
	Output         cmdutil.Format
}

func (k *Kind[R, I]) updateCmd(f *cmdutil.Factory) *cli.Command {
	own := k.editFlags(true, "set the description to `TEXT` (\"\" clears it)",
		&cli.StringSliceFlag{Name: "add-secret", Usage: k.Help.AddSecretFlag},
		&cli.StringSliceFlag{Name: "remove-secret", Usage: k.Help.RemoveSecretFlag},
	)
	own = append(own, etagFlag("update", k.Short))
	return &cli.Command{
		Name:        "update",
		Usage:       k.Help.Update.Usage,
		Description: k.Help.Update.Description,
		ArgsUsage:   "NAME",
		Flags:       flags(true, append(own, cmdutil.QuietFlag())...),
		Action: func(c *cli.Context) error {
			in, err := k.readEditInput(f, c)
			if err != nil {
				return err
			}
			return k.RunUpdate(c.Context, &UpdateOptions{
				TeamDeps:       in.TeamDeps,
				ID:             in.ID,
				SetDescription: c.IsSet(descriptionFlag),
				Description:    c.String(descriptionFlag),
				Fields:         in.Fields,
				AddSecrets:     c.StringSlice("add-secret"),
				RemoveSecrets:  c.StringSlice("remove-secret"),
				Etag:           c.String("etag"),
				Output:         in.Output,
			})
		},
	}
}

// RunUpdate changes what the options name of a holder.
func (k *Kind[R, I]) RunUpdate(ctx context.Context, opts *UpdateOptions) error {
	if err := cmdutil.CheckName("NAME", opts.ID); err != nil {
		return err
	}
	if !opts.SetDescription && len(opts.Fields) == 0 && len(opts.AddSecrets) == 0 && len(opts.RemoveSecrets) == 0 {
		return exitcode.Usagef("nothing to update: pass %s", k.updateFlags())
	}
	if err := cmdutil.CheckSecretChanges(opts.AddSecrets, opts.RemoveSecrets); err != nil {
		return err
	}
	conn, team, err := opts.ConnectTeam(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	req := UpdateRequest{
		Name:   k.name(team, opts.ID),
		Fields: opts.Fields,
		Add:    opts.AddSecrets,
		Remove: opts.RemoveSecrets,
		Etag:   opts.Etag,
	}
	var paths []string
	if opts.SetDescription {
		req.Description = opts.Description
		paths = append(paths, descriptionFlag)
	}
	for _, fd := range k.Fields {
		if _, ok := opts.Fields[fd.Flag]; ok {
			paths = append(paths, fd.Path)
		}
	}
	if len(paths) > 0 {
		req.Mask = &fieldmaskpb.FieldMask{Paths: paths}
	}
	r, err := k.Update(ctx, conn, req)
	if err != nil {
		return err
	}
	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.IO.Out, k.item(r, team))
	}
	cmdutil.Successf(opts.IO, "Updated %s", k.describe(team, opts.ID))
	return nil
}

// updateFlags lists the flags that change something: "--description,
// --add-secret or --remove-secret".
func (k *Kind[R, I]) updateFlags() string {
	names := []string{"--" + descriptionFlag}
	for _, fd := range k.Fields {
		names = append(names, "--"+fd.Flag)
	}
	names = append(names, "--add-secret")
	return strings.Join(names, ", ") + " or --remove-secret"
}
