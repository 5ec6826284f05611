package agent

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// ListOptions are the inputs of `oz agent list`.
type ListOptions struct {
	Deps
	Output cmdutil.Format
}

func newListCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "List the team's agent identities",
		Flags:   append([]cli.Flag{cmdutil.OutputFlag()}, cmdutil.TeamFlags()...),
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
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
			return runList(c.Context, &ListOptions{Deps: d, Output: format})
		},
	}
}

func runList(ctx context.Context, opts *ListOptions) error {
	conn, team, err := opts.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	items := []Item{}
	req := &scopev1.ListAgentsRequest{Parent: "teams/" + team}
	for {
		resp, err := conn.Agents.ListAgents(ctx, req)
		if err != nil {
			return err
		}
		for _, a := range resp.GetAgents() {
			items = append(items, newItem(a, team))
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	slices.SortStableFunc(items, func(a, b Item) int { return cmp.Compare(a.Name, b.Name) })

	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.IO.Out, items)
	}
	if len(items) == 0 {
		if opts.IO.StderrTTY {
			fmt.Fprintln(opts.IO.ErrOut, "No agent identities.")
		}
		return nil
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTART POLICY\tSECRETS\tDESCRIPTION")
	for _, it := range items {
		name := it.Name
		if it.Default {
			name += " (default)"
		}
		policy := it.StartPolicy
		if policy == "unspecified" {
			policy = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, policy, cmdutil.OrDash(strings.Join(it.SecretNames, ", ")), cmdutil.OrDash(it.Description))
	}
	return tw.Flush()
}
