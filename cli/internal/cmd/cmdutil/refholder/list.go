package refholder

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// ListOptions are the inputs of list.
type ListOptions struct {
	cmdutil.TeamDeps
	Output cmdutil.Format
}

func (k *Kind[R, I]) listCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:        "list",
		Aliases:     []string{"ls"},
		Usage:       k.Help.List.Usage,
		Description: k.Help.List.Description,
		Flags:       flags(true),
		Action: cmdutil.ListAction(f, func(ctx context.Context, d cmdutil.TeamDeps, format cmdutil.Format) error {
			return k.RunList(ctx, &ListOptions{TeamDeps: d, Output: format})
		}),
	}
}

// RunList lists the team's holders, page by page, sorted by name.
func (k *Kind[R, I]) RunList(ctx context.Context, opts *ListOptions) error {
	conn, team, err := opts.ConnectTeam(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close()

	type entry struct {
		common Item
		r      R
	}
	var entries []entry
	parent, token := "teams/"+team, ""
	for {
		page, next, err := k.List(ctx, conn, parent, token)
		if err != nil {
			return err
		}
		for _, r := range page {
			entries = append(entries, entry{k.common(r, team), r})
		}
		if next == "" {
			break
		}
		token = next
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return cmp.Compare(a.common.Name, b.common.Name) })
	items := make([]I, 0, len(entries))
	for _, e := range entries {
		items = append(items, k.Item(e.common, e.r))
	}

	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.IO.Out, items)
	}
	if len(items) == 0 {
		if opts.IO.StderrTTY {
			fmt.Fprintf(opts.IO.ErrOut, "No %s.\n", k.Plural)
		}
		return nil
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, k.ListHeader)
	for _, it := range items {
		fmt.Fprintln(tw, k.Row(it))
	}
	return tw.Flush()
}
