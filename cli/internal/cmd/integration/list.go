package integration

import (
	"context"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// ListOptions are the inputs of `oz integration list`.
type ListOptions struct {
	cmdutil.TeamDeps
	Output cmdutil.Format
}

func newListCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "List the team's integrations and whether you allowed each",
		Description: `ALLOWED says whether you allowed the integration to start runs on your behalf
(yes or no); for a user-less one (schedule, integration), which never acts for
anyone, "-".

Example:
   oz integration list --team acme`,
		Flags: append([]cli.Flag{cmdutil.OutputFlag()}, cmdutil.TeamFlags()...),
		Action: cmdutil.ListAction(f, func(ctx context.Context, d cmdutil.TeamDeps, format cmdutil.Format) error {
			return runList(ctx, &ListOptions{TeamDeps: d, Output: format})
		}),
	}
}

func runList(ctx context.Context, opts *ListOptions) error {
	conn, team, err := opts.ConnectTeam(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	list, err := cmdutil.ListIntegrations(ctx, conn.Integrations, team)
	if err != nil {
		return err
	}
	return cmdutil.WriteIntegrations(opts.IO, team, list, opts.Output, "NAME\tTRIGGER\tALLOWED\tDESCRIPTION", func(it cmdutil.Integration) string {
		allowed := "no"
		switch {
		case !userInitiated(it.Trigger):
			allowed = "-" // user-less: it never acts for anyone
		case it.Allowed:
			allowed = "yes"
		}
		return strings.Join([]string{it.Name, cmdutil.OrDash(it.Trigger), allowed, cmdutil.OrDash(cmdutil.Text(it.Description))}, "\t")
	})
}

// userInitiated reports whether the integration's trigger (by name) acts
// for members.
func userInitiated(trigger string) bool {
	t, err := cmdutil.ParseTrigger(trigger)
	return err == nil && cmdutil.UserInitiated(t)
}
