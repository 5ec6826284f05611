package admin

import (
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

// MemberListOptions are the inputs of `oz admin member list`.
type MemberListOptions struct {
	Deps
	Now    func() time.Time
	Team   string // empty: the caller's only team
	Output cmdutil.Format
}

func newMemberListCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "List a team's members and their roles (members of the team and system admins)",
		Description: `The team is --team TEAM, else --use-team, $OZ_TEAM, the config file's team, or
your only team.

Examples:
   oz admin member list --team acme
   oz admin member list --team acme --output json | jq -r '.[] | select(.role == "admin") | .user'`,
		Flags: append(cmdutil.TeamFlags(), cmdutil.OutputFlag()),
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			team, err := f.CommandTeam(c)
			if err != nil {
				return err
			}
			return runMemberList(c.Context, &MemberListOptions{Deps: depsOf(f), Now: f.Now, Team: team, Output: format})
		},
	}
}

type memberItem struct {
	User      string `json:"user"`
	Role      string `json:"role"`
	Team      string `json:"team"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at,omitempty"`
}

func runMemberList(ctx context.Context, opts *MemberListOptions) error {
	conn, team, err := cmdutil.ConnectTeam(ctx, opts.Connect, opts.Team)
	if err != nil {
		return err
	}
	defer conn.Close()

	ms, err := cmdutil.AllPages(func(token string) ([]*scopev1.Membership, string, error) {
		resp, err := conn.Directory.ListMemberships(ctx, &scopev1.ListMembershipsRequest{Parent: "teams/" + team, PageToken: token})
		return resp.GetMemberships(), resp.GetNextPageToken(), err
	})
	if err != nil {
		return err
	}

	if opts.Output == cmdutil.FormatJSON {
		items := make([]memberItem, 0, len(ms))
		for _, m := range ms {
			items = append(items, memberItem{
				User:      userID(m),
				Role:      cmdutil.Role(m.GetRole()),
				Team:      team,
				Name:      m.GetName(),
				CreatedAt: cmdutil.RFC3339(m.GetCreateTime()),
			})
		}
		return cmdutil.WriteJSON(opts.IO.Out, items)
	}
	if len(ms) == 0 {
		if opts.IO.StderrTTY {
			fmt.Fprintf(opts.IO.ErrOut, "No members in team %s.\n", team)
		}
		return nil
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tROLE\tSINCE")
	for _, m := range ms {
		since := "-"
		if m.GetCreateTime() != nil {
			since = timefmt.Date(m.GetCreateTime().AsTime(), opts.Now().Location(), opts.IO.StdoutTTY)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", userID(m), cmdutil.Role(m.GetRole()), since)
	}
	return tw.Flush()
}

func userID(m *scopev1.Membership) string { return strings.TrimPrefix(m.GetUser(), "users/") }
