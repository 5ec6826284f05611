// Package cmdutil holds what the oz commands share: the factory of their
// dependencies, scope and team selection, reading a secret value, and
// output formats.
package cmdutil

import (
	"context"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/config"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// Factory gives commands their dependencies. The binary uses System; tests
// build one with test streams, a scripted prompter, a fixed clock and their
// own environment.
type Factory struct {
	IO       *iostreams.IOStreams
	Prompter iostreams.Prompter
	Now      func() time.Time
	Getenv   func(string) string
	// Dial connects to the gateway; client.Dial unless replaced.
	Dial func(config.Settings) (*client.Conn, error)
	// TokenFile is --token-file: the token's source, ahead of every other.
	TokenFile string
}

// System returns the factory of the real process.
func System() *Factory {
	return &Factory{
		IO:       iostreams.System(),
		Prompter: iostreams.NewTerminalPrompter(),
		Now:      time.Now,
		Getenv:   os.Getenv,
		Dial:     client.Dial,
	}
}

// ConfigPath returns the config file's path.
func (f *Factory) ConfigPath() (string, error) { return config.Path(f.Getenv) }

// Settings returns the effective settings: config file, then environment,
// then --token-file; a token file is read.
func (f *Factory) Settings() (config.Settings, error) {
	path, err := f.ConfigPath()
	if err != nil {
		return config.Settings{}, err
	}
	file, err := config.Load(path)
	if err != nil {
		return config.Settings{}, err
	}
	s := config.Resolve(file, f.Getenv)
	if f.TokenFile != "" {
		s.UseTokenFile(f.TokenFile)
	}
	if err := s.ReadTokenFile(); err != nil {
		return config.Settings{}, exitcode.Usagef("%v", err)
	}
	return s, nil
}

// Connector returns a function that dials the gateway with the effective
// settings when a command first needs it.
func (f *Factory) Connector() func(context.Context) (*client.Conn, error) {
	return func(context.Context) (*client.Conn, error) {
		s, err := f.Settings()
		if err != nil {
			return nil, err
		}
		dial := f.Dial
		if dial == nil {
			dial = client.Dial
		}
		return dial(s)
	}
}

// UseTeamFlag is the global flag that picks the team of team secrets.
const UseTeamFlag = "use-team"

// TeamSelection returns the team the caller chose: --use-team (given at any
// level of the command line), else OZ_TEAM, else the config file's team.
// Empty means "not chosen": ResolveTeam then asks the server.
func (f *Factory) TeamSelection(c *cli.Context) (string, error) {
	for _, ctx := range c.Lineage() {
		if v := ctx.String(UseTeamFlag); v != "" && ctx.IsSet(UseTeamFlag) {
			return v, nil
		}
	}
	s, err := f.Settings()
	if err != nil {
		return "", err
	}
	return s.Team, nil
}

// TeamFlag is the flag that names the team of a command on one team's
// agent identities, environments or runs.
const TeamFlag = "team"

// TeamFlags are the team selectors of commands on one team's agent
// identities, environments or runs: --team TEAM, and --use-team TEAM as
// the secret commands take it after the verb.
func TeamFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: TeamFlag, Usage: "the `TEAM` (default: --use-team, $OZ_TEAM, the config file's team, or your only team)"},
		&cli.StringFlag{Name: UseTeamFlag, Usage: "the `TEAM`, as --team"},
	}
}

// CommandTeam returns the team chosen for a command with TeamFlags:
// --team, else TeamSelection. Empty means "not chosen":
// ResolveTeamFlag then asks the server. --team and --use-team naming
// different teams is a usage error.
func (f *Factory) CommandTeam(c *cli.Context) (string, error) {
	team := c.String(TeamFlag)
	if team == "" {
		return f.TeamSelection(c)
	}
	for _, ctx := range c.Lineage() {
		if v := ctx.String(UseTeamFlag); v != "" && ctx.IsSet(UseTeamFlag) && v != team {
			return "", exitcode.Usagef("--team %s and --use-team %s name different teams: give one", team, v)
		}
	}
	return team, nil
}
