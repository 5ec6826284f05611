// Package secret implements `oz secret`: create, update, delete and list
// secrets, bind them to hosts (binding.go), and seal a value for REST
// clients. Values are write-only: no
// command here prints one. Values leave the CLI sealed only (sealing.go).
package secret

import (
	"context"
	"regexp"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// NewCmd returns the `oz secret` command group.
func NewCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "secret",
		Usage: "Manage secrets: values are write-only, nothing here prints one",
		Description: `A secret belongs to a team (--team) or to you (--personal). Its NAME is the
environment variable it becomes in agent runs.

The team is chosen with --use-team TEAM, else $OZ_TEAM, else the config file's
team, else your only team.

A value comes from --value-file FILE (exact bytes; "-" is standard input),
else a hidden prompt when standard input is a terminal, else standard input
without one trailing newline. It is sealed here, to the server's sealing key
and for that one secret, before it is sent: nothing on the way sees it.

A secret bound to hosts (--bind-host) is never given to the agent: its
variable holds a placeholder. The runner's egress proxy replaces the
placeholder by the value in requests to the bound hosts only, and refuses
a request that carries it anywhere else.

Note: here --team is a switch (a team secret), not --team TEAM: the team is
chosen with --use-team TEAM or $OZ_TEAM.

Examples:
   oz secret create --team DEPLOY_TOKEN
   oz --use-team acme secret update --team --value DEPLOY_TOKEN
   oz secret create --team --bind-host api.openai.com OPENAI_API_KEY
   oz secret list`,
		Subcommands: []*cli.Command{
			newCreateCmd(f),
			newUpdateCmd(f),
			newDeleteCmd(f),
			newListCmd(f),
			newSealCmd(f),
		},
	}
}

// useTeamFlag lets --use-team follow the verb too: `oz secret create
// --use-team acme --team API_KEY`.
func useTeamFlag() cli.Flag {
	return &cli.StringFlag{Name: cmdutil.UseTeamFlag, Usage: "the `TEAM` of team secrets (default: $OZ_TEAM, the config file's team, or your only team)"}
}

// secretArgs reads what every command on one secret takes first from its
// command line: NAME, its scope (--team or --personal) and the chosen team.
func secretArgs(f *cmdutil.Factory, c *cli.Context) (name string, scope cmdutil.Scope, team string, err error) {
	args, err := cmdutil.Args(c, "NAME")
	if err != nil {
		return "", 0, "", teamWordError(c, f.Connector(), err)
	}
	cmdutil.WarnValueLike(f.IO, "NAME", args[0])
	if scope, err = cmdutil.ScopeFromFlags(c.Bool("team"), c.Bool("personal")); err != nil {
		return "", 0, "", err
	}
	if team, err = f.TeamSelection(c); err != nil {
		return "", 0, "", err
	}
	return args[0], scope, team, nil
}

// teamWordError explains `oz secret create --team acme FOO`. Here --team
// is a switch (a team secret, not a personal one), so acme was taken as
// NAME and FOO is extra. When the first argument names one of the
// caller's teams (the server says which), the usage error says how to
// choose a team; otherwise, or when the server cannot say, err stands.
func teamWordError(c *cli.Context, connect func(context.Context) (*client.Conn, error), err error) error {
	args := c.Args().Slice()
	if !c.Bool("team") || len(args) != 2 || !teamIDRE.MatchString(args[0]) {
		return err // no team id: no need to ask the server
	}
	teams, terr := callerTeams(c.Context, connect)
	if terr != nil || !slices.Contains(teams, args[0]) {
		return err
	}
	team, name := args[0], args[1]
	if cmdutil.ValueLike(name) != "" {
		name = "NAME" // it may be a value: not repeated
	}
	return exitcode.Usagef("--team takes no TEAM here: it chooses a team secret, and %s was taken as NAME. "+
		"Choose team %s with --use-team (oz --use-team %s %s --team %s) or OZ_TEAM=%s",
		team, team, team, strings.TrimPrefix(c.Command.HelpName, "oz "), name, team)
}

// teamIDRE is the syntax of team ids (the resolver's rule).
var teamIDRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// callerTeams returns the ids of the caller's teams.
func callerTeams(ctx context.Context, connect func(context.Context) (*client.Conn, error)) ([]string, error) {
	conn, err := connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	resp, err := conn.Directory.GetCaller(ctx, &scopev1.GetCallerRequest{})
	if err != nil {
		return nil, err
	}
	var teams []string
	for _, tr := range resp.GetPrincipal().GetTeams() {
		teams = append(teams, tr.GetTeam())
	}
	return teams, nil
}

// connectScope dials the gateway and, for a team secret, resolves the
// team (empty: the caller's only team); a personal secret has none.
func connectScope(ctx context.Context, connect func(context.Context) (*client.Conn, error), scope cmdutil.Scope, team string) (*client.Conn, string, error) {
	conn, err := connect(ctx)
	if err != nil {
		return nil, "", err
	}
	if scope != cmdutil.ScopeTeam {
		return conn, "", nil
	}
	if team, err = cmdutil.ResolveTeam(ctx, conn.Directory, team); err != nil {
		_ = conn.Close()
		return nil, "", err
	}
	return conn, team, nil
}

// readSealed reads the value of the secret name and seals it for its
// owner. The sealing key comes first: no prompt for a value that could not
// be sent. The value is returned too, for redacting errors; the caller
// clears it when done.
func readSealed(ctx context.Context, conn *client.Conn, ios *iostreams.IOStreams, p iostreams.Prompter, scope cmdutil.Scope, team, name, file string) (*secretsv1.SealedValue, []byte, error) {
	s, err := newSealer(ctx, conn, scope, team)
	if err != nil {
		return nil, nil, err
	}
	value, err := cmdutil.ReadValue(ctx, ios, p, file, name)
	if err != nil {
		return nil, nil, err
	}
	sealed, err := s.seal(name, value)
	if err != nil {
		clear(value)
		return nil, nil, err
	}
	return sealed, value, nil
}
