package cmdutil

import (
	"context"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// Scope is the owner kind of a secret, chosen on the command line with
// --team or --personal.
type Scope int

const (
	ScopeTeam Scope = iota + 1
	ScopePersonal
)

func (s Scope) String() string {
	switch s {
	case ScopeTeam:
		return "team"
	case ScopePersonal:
		return "personal"
	}
	return "unknown"
}

// ScopeFlags are the --team and --personal selectors.
func ScopeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "team", Usage: "a secret of the team (chosen with --use-team, $OZ_TEAM, the config file, or your only team)"},
		&cli.BoolFlag{Name: "personal", Usage: "a personal secret: yours only, available to runs you start"},
	}
}

// ScopeFromFlags returns the scope chosen with exactly one of --team and
// --personal, or a usage error.
func ScopeFromFlags(team, personal bool) (Scope, error) {
	switch {
	case team && personal:
		return 0, exitcode.Usagef("choose one of --team or --personal, not both")
	case team:
		return ScopeTeam, nil
	case personal:
		return ScopePersonal, nil
	}
	return 0, exitcode.Usagef("choose --team (a secret of your team) or --personal (your own secret)")
}

// PersonalParent is the owner of the caller's personal secrets.
const PersonalParent = "users/me"

// Parent returns the owner's resource name for scope and team.
func Parent(scope Scope, team string) string {
	if scope == ScopePersonal {
		return PersonalParent
	}
	return "teams/" + team
}

// SecretName returns the secret's resource name under parent.
func SecretName(parent, name string) string { return parent + "/secrets/" + name }

// CheckName refuses a name that would address another resource. The rules
// for names belong to the server; this only keeps "/" out of resource
// names built here.
func CheckName(what, name string) error {
	if name == "" {
		return exitcode.Usagef("%s: must not be empty", what)
	}
	if strings.ContainsAny(name, "/\x00") {
		return exitcode.Usagef("%s: must not contain %q (got %q)", what, "/", name)
	}
	return nil
}

// ResolveTeam returns the team to use: explicit when not empty, else the
// caller's only team (from GetCaller). Several teams or none is a usage
// error that says how to choose.
func ResolveTeam(ctx context.Context, dir scopev1.DirectoryServiceClient, explicit string) (string, error) {
	return resolveTeam(ctx, dir, explicit,
		"you are not a member of any team: set OZ_TEAM or --use-team, or use --personal",
		"set OZ_TEAM or --use-team")
}

// ResolveTeamFlag is ResolveTeam for the commands with TeamFlags, whose
// messages name --team.
func ResolveTeamFlag(ctx context.Context, dir scopev1.DirectoryServiceClient, explicit string) (string, error) {
	return resolveTeam(ctx, dir, explicit,
		"you are not a member of any team: pass --team TEAM or set OZ_TEAM",
		"pass --team TEAM or set OZ_TEAM")
}

func resolveTeam(ctx context.Context, dir scopev1.DirectoryServiceClient, explicit, none, several string) (string, error) {
	if explicit != "" {
		if err := CheckName("team", explicit); err != nil {
			return "", err
		}
		return explicit, nil
	}
	resp, err := dir.GetCaller(ctx, &scopev1.GetCallerRequest{})
	if err != nil {
		return "", err
	}
	var teams []string
	for _, tr := range resp.GetPrincipal().GetTeams() {
		teams = append(teams, tr.GetTeam())
	}
	sort.Strings(teams)
	switch len(teams) {
	case 1:
		return teams[0], nil
	case 0:
		return "", exitcode.Usagef("%s", none)
	}
	return "", exitcode.Usagef("several teams (%s): %s", strings.Join(teams, ", "), several)
}

// Args returns the positional arguments of c, which must number exactly
// len(names); otherwise a usage error naming what is missing or extra.
func Args(c *cli.Context, names ...string) ([]string, error) {
	args := c.Args().Slice()
	if len(args) < len(names) {
		return nil, exitcode.Usagef("missing %s (usage: %s %s)", strings.Join(names[len(args):], " "), c.Command.HelpName, c.Command.ArgsUsage)
	}
	if len(args) > len(names) {
		return nil, exitcode.Usagef("unexpected argument %q (usage: %s %s)", args[len(names)], c.Command.HelpName, c.Command.ArgsUsage)
	}
	return args, nil
}
