package admin

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/timefmt"
)

// TeamListOptions are the inputs of `oz admin team list`.
type TeamListOptions struct {
	Deps
	Now    func() time.Time
	Output cmdutil.Format
}

func newTeamListCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "List your teams (every team, for system admins)",
		Description: `Examples:
   oz admin team list
   oz admin team list --output json | jq -r '.[].team'`,
		Flags: []cli.Flag{cmdutil.OutputFlag()},
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			return runTeamList(c.Context, &TeamListOptions{Deps: depsOf(f), Now: f.Now, Output: format})
		},
	}
}

type teamItem struct {
	Team      string `json:"team"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at,omitempty"`
}

func runTeamList(ctx context.Context, opts *TeamListOptions) error {
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	teams, err := cmdutil.AllPages(func(token string) ([]*scopev1.Team, string, error) {
		resp, err := conn.Directory.ListTeams(ctx, &scopev1.ListTeamsRequest{PageToken: token})
		return resp.GetTeams(), resp.GetNextPageToken(), err
	})
	if err != nil {
		return err
	}

	if opts.Output == cmdutil.FormatJSON {
		items := make([]teamItem, 0, len(teams))
		for _, t := range teams {
			items = append(items, teamItem{Team: teamID(t), Name: t.GetName(), CreatedAt: cmdutil.RFC3339(t.GetCreateTime())})
		}
		return cmdutil.WriteJSON(opts.IO.Out, items)
	}
	if len(teams) == 0 {
		if opts.IO.StderrTTY {
			fmt.Fprintln(opts.IO.ErrOut, "No teams.")
		}
		return nil
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TEAM\tCREATED")
	for _, t := range teams {
		created := "-"
		if t.GetCreateTime() != nil {
			created = timefmt.Date(t.GetCreateTime().AsTime(), opts.Now().Location(), opts.IO.StdoutTTY)
		}
		fmt.Fprintf(tw, "%s\t%s\n", teamID(t), created)
	}
	return tw.Flush()
}

func teamID(t *scopev1.Team) string {
	return cmp.Or(t.GetTeamId(), strings.TrimPrefix(t.GetName(), "teams/"))
}
