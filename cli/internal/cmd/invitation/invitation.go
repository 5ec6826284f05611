// Package invitation implements `oz invitation`: the invitations to join
// teams that you hold, and accepting or declining them. A user joins a
// team only with their consent: team admins invite (oz admin member add).
package invitation

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/timefmt"
)

// NewCmd returns the `oz invitation` command group.
func NewCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "invitation",
		Aliases: []string{"invitations"},
		Usage:   "See, accept or decline invitations to join teams",
		Description: `You join a team only with your consent: a team admin invites you (oz admin
member add), and you become a member, with the role you were invited to, when
you accept. Declining discards the invitation; the team's admins see that you
declined in the team's audit log. Nobody else sees or answers your invitations.

Example:
   oz invitation list
   oz invitation accept acme
   oz invitation decline other-team`,
		Subcommands: []*cli.Command{newListCmd(f), newAnswerCmd(f, true), newAnswerCmd(f, false)},
	}
}

// Options are the inputs of the invitation commands.
type Options struct {
	IO      *iostreams.IOStreams
	Connect func(context.Context) (*client.Conn, error)
	Now     func() time.Time
	Output  cmdutil.Format // list
	Team    string         // accept, decline
}

func optionsOf(f *cmdutil.Factory) *Options {
	return &Options{IO: f.IO, Connect: f.Connector(), Now: f.Now}
}

func newListCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "List the invitations to join teams that you hold",
		Description: `Example:
   oz invitation list`,
		Flags: []cli.Flag{cmdutil.OutputFlag()},
		Action: func(c *cli.Context) error {
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			opts := optionsOf(f)
			opts.Output = format
			return runList(c.Context, opts)
		},
	}
}

// item is an invitation as `list --output json` prints it.
type item struct {
	Team      string `json:"team"`
	Role      string `json:"role"`
	InvitedBy string `json:"invited_by"`
	CreatedAt string `json:"created_at"`
	Name      string `json:"resource_name"`
}

func runList(ctx context.Context, opts *Options) error {
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var invs []*scopev1.Invitation
	for token := ""; ; {
		resp, err := conn.Directory.ListInvitations(ctx, &scopev1.ListInvitationsRequest{Parent: "users/me", PageToken: token})
		if err != nil {
			return err
		}
		invs = append(invs, resp.GetInvitations()...)
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	items := make([]item, 0, len(invs))
	for _, inv := range invs {
		it := item{
			Team: strings.TrimPrefix(inv.GetTeam(), "teams/"), Role: cmdutil.Role(inv.GetRole()),
			InvitedBy: inv.GetInvitedBy(), Name: inv.GetName(),
		}
		if inv.GetCreateTime() != nil {
			it.CreatedAt = inv.GetCreateTime().AsTime().UTC().Format(time.RFC3339)
		}
		items = append(items, it)
	}
	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.IO.Out, items)
	}
	if len(items) == 0 {
		if opts.IO.StderrTTY {
			fmt.Fprintln(opts.IO.ErrOut, "No invitations.")
		}
		return nil
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TEAM\tROLE\tINVITED BY\tCREATED")
	for i, it := range items {
		created := "-"
		if ts := invs[i].GetCreateTime(); ts != nil {
			created = timefmt.Cell(ts.AsTime(), opts.Now(), opts.IO.StdoutTTY)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Team, it.Role, cmdutil.PrincipalText(it.InvitedBy), created)
	}
	return tw.Flush()
}

// newAnswerCmd is `oz invitation accept` (accept) or `decline`.
func newAnswerCmd(f *cmdutil.Factory, accept bool) *cli.Command {
	name, usage := "decline", "Decline an invitation to join TEAM"
	if accept {
		name, usage = "accept", "Accept an invitation to join TEAM: you become a member"
	}
	return &cli.Command{
		Name:        name,
		Usage:       usage,
		ArgsUsage:   "TEAM",
		Description: "Example:\n   oz invitation " + name + " acme",
		Flags:       []cli.Flag{cmdutil.QuietFlag()},
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "TEAM")
			if err != nil {
				return err
			}
			if err := cmdutil.CheckName("TEAM", args[0]); err != nil {
				return err
			}
			opts := optionsOf(f)
			opts.IO = cmdutil.Quiet(c, opts.IO)
			opts.Team = args[0]
			if accept {
				return runAccept(c.Context, opts)
			}
			return runDecline(c.Context, opts)
		},
	}
}

func runAccept(ctx context.Context, opts *Options) error {
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := conn.Directory.AcceptInvitation(ctx, &scopev1.AcceptInvitationRequest{Name: "users/me/invitations/" + opts.Team})
	if err != nil {
		return err
	}
	cmdutil.Successf(opts.IO, "You are now a member of team %s as %s", opts.Team, cmdutil.Role(resp.GetMembership().GetRole()))
	return nil
}

func runDecline(ctx context.Context, opts *Options) error {
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Directory.DeclineInvitation(ctx, &scopev1.DeclineInvitationRequest{Name: "users/me/invitations/" + opts.Team}); err != nil {
		return err
	}
	cmdutil.Successf(opts.IO, "Declined the invitation to team %s", opts.Team)
	return nil
}
