package cmdutil

import (
	"cmp"
	"context"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// TeamDeps are what a command on one team's resources (a command with
// TeamFlags) needs.
type TeamDeps struct {
	IO       *iostreams.IOStreams
	Prompter iostreams.Prompter
	Connect  func(context.Context) (*client.Conn, error)
	Now      func() time.Time
	// Team is the chosen team (CommandTeam); empty: the caller's only team.
	Team string
}

// TeamDeps returns the dependencies of a command with TeamFlags, with the
// team its command line chose (CommandTeam), and its streams silenced on
// success if it has QuietFlag and was given --quiet.
func (f *Factory) TeamDeps(c *cli.Context) (TeamDeps, error) {
	team, err := f.CommandTeam(c)
	if err != nil {
		return TeamDeps{}, err
	}
	return TeamDeps{IO: Quiet(c, f.IO), Prompter: f.Prompter, Connect: f.Connector(), Now: f.Now, Team: team}, nil
}

// ConnectTeam is ConnectTeam with d's connection and team, unless team
// (when not empty) takes the place of the chosen one.
func (d TeamDeps) ConnectTeam(ctx context.Context, team string) (*client.Conn, string, error) {
	return ConnectTeam(ctx, d.Connect, cmp.Or(team, d.Team))
}

// ConnectTeam dials the gateway with connect and resolves team
// (ResolveTeamFlag: empty is the caller's only team). The connection is
// closed when the team cannot be resolved.
func ConnectTeam(ctx context.Context, connect func(context.Context) (*client.Conn, error), team string) (*client.Conn, string, error) {
	conn, err := connect(ctx)
	if err != nil {
		return nil, "", err
	}
	team, err = ResolveTeamFlag(ctx, conn.Directory, team)
	if err != nil {
		_ = conn.Close()
		return nil, "", err
	}
	return conn, team, nil
}

// ListAction is the Action of a command that lists one team's resources:
// it takes no arguments, reads --output and the team, and calls run.
func ListAction(f *Factory, run func(context.Context, TeamDeps, Format) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if _, err := Args(c); err != nil {
			return err
		}
		format, err := OutputFormat(c)
		if err != nil {
			return err
		}
		d, err := f.TeamDeps(c)
		if err != nil {
			return err
		}
		return run(c.Context, d, format)
	}
}
