package refholder

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/timefmt"
)

// GetOptions are the inputs of get.
type GetOptions struct {
	cmdutil.TeamDeps
	ID     string
	Output cmdutil.Format
}

func (k *Kind[R, I]) getCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:        "get",
		Aliases:     []string{"show"},
		Usage:       k.Help.Get.Usage,
		Description: k.Help.Get.Description,
		ArgsUsage:   "NAME",
		Flags:       flags(true),
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "NAME")
			if err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			d, err := f.TeamDeps(c)
			if err != nil {
				return err
			}
			return k.RunGet(c.Context, &GetOptions{TeamDeps: d, ID: args[0], Output: format})
		},
	}
}

// RunGet prints one holder: JSON, or a NAME/value table.
func (k *Kind[R, I]) RunGet(ctx context.Context, opts *GetOptions) error {
	if err := cmdutil.CheckName("NAME", opts.ID); err != nil {
		return err
	}
	conn, team, err := opts.ConnectTeam(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	r, err := k.Get(ctx, conn, k.name(team, opts.ID))
	if err != nil {
		return err
	}
	common := k.common(r, team)
	it := k.Item(common, r)
	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.IO.Out, it)
	}
	rows := append([]Detail{{"NAME", common.Name}, {"TEAM", common.Team}}, k.Details(it, r)...)
	loc := opts.Now().Location()
	if r.GetCreateTime() != nil {
		rows = append(rows, Detail{"CREATED", timefmt.Date(r.GetCreateTime().AsTime(), loc, opts.IO.StdoutTTY)})
	}
	if r.GetUpdateTime() != nil {
		rows = append(rows, Detail{"UPDATED", timefmt.Date(r.GetUpdateTime().AsTime(), loc, opts.IO.StdoutTTY)})
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 8, 2, ' ', 0)
	for _, d := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", d.Label, cmdutil.Text(d.Value)) // escaped once more: any row may hold stored text
	}
	return tw.Flush()
}
