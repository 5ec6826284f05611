// Package environment implements `oz environment`: named lists of secret
// names that are the default allowlist of the runs using them.
package environment

import (
	"cmp"
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

// NewCmd returns the `oz environment` command group.
func NewCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "environment",
		Aliases: []string{"env", "environments"},
		Usage:   "Manage environments: the default allowlist of the runs that use them",
		Description: `An environment lists secret names (team or personal, by name; they need not
exist yet). A run that uses it receives only those secrets, unless the run
passes its own list, which takes precedence. An environment with no names sets
no allowlist. A name that resolves to nothing is an unresolved reference of the
run, not a failure (unless the run is strict).

The team is --team TEAM, else --use-team, $OZ_TEAM, the config file's team, or
your only team. Team admins change environments; members read them.`,
		Subcommands: []*cli.Command{
			newCreateCmd(f),
			newUpdateCmd(f),
			newListCmd(f),
			newGetCmd(f),
			newDeleteCmd(f),
		},
	}
}

// Deps are what every environment command needs.
type Deps struct {
	IO       *iostreams.IOStreams
	Prompter iostreams.Prompter
	Connect  func(context.Context) (*client.Conn, error)
	Now      func() time.Time
	// Team is the chosen team; empty: the caller's only team.
	Team string
}

func depsOf(f *cmdutil.Factory, c *cli.Context) (Deps, error) {
	team, err := f.CommandTeam(c)
	if err != nil {
		return Deps{}, err
	}
	return Deps{IO: f.IO, Prompter: f.Prompter, Connect: f.Connector(), Now: f.Now, Team: team}, nil
}

// connect dials the gateway and resolves the team.
func (d Deps) connect(ctx context.Context) (*client.Conn, string, error) {
	conn, err := d.Connect(ctx)
	if err != nil {
		return nil, "", err
	}
	team, err := cmdutil.ResolveTeamFlag(ctx, conn.Directory, d.Team)
	if err != nil {
		_ = conn.Close()
		return nil, "", err
	}
	return conn, team, nil
}

func envName(team, id string) string { return "teams/" + team + "/environments/" + id }

func describe(team, id string) string { return "environment " + id + " (team " + team + ")" }

// Item is an environment as --output json prints it.
type Item struct {
	Name         string   `json:"name"`
	ResourceName string   `json:"resource_name"`
	Team         string   `json:"team"`
	Description  string   `json:"description"`
	SecretNames  []string `json:"secret_names"`
	CreatedAt    string   `json:"created_at,omitempty"`
	UpdatedAt    string   `json:"updated_at,omitempty"`
	Etag         string   `json:"etag,omitempty"`
}

func newItem(e *scopev1.Environment, team string) Item {
	it := Item{
		Name:         e.GetEnvironmentId(),
		ResourceName: e.GetName(),
		Team:         team,
		Description:  e.GetDescription(),
		SecretNames:  append([]string{}, e.GetSecretNames()...),
		CreatedAt:    cmdutil.RFC3339(e.GetCreateTime()),
		UpdatedAt:    cmdutil.RFC3339(e.GetUpdateTime()),
		Etag:         e.GetEtag(),
	}
	if owner, id, ok := strings.Cut(e.GetName(), "/environments/"); ok {
		it.Name = cmp.Or(it.Name, id)
		it.Team = strings.TrimPrefix(owner, "teams/")
	}
	return it
}

// writeOne prints one environment: JSON, or a NAME/value table.
func writeOne(d Deps, format cmdutil.Format, it Item, e *scopev1.Environment) error {
	if format == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(d.IO.Out, it)
	}
	loc := d.Now().Location()
	tw := tabwriter.NewWriter(d.IO.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\t%s\n", it.Name)
	fmt.Fprintf(tw, "TEAM\t%s\n", it.Team)
	fmt.Fprintf(tw, "DESCRIPTION\t%s\n", cmdutil.OrDash(it.Description))
	secrets := strings.Join(it.SecretNames, ", ")
	if secrets == "" {
		secrets = "- (no allowlist: runs using it receive every secret available to them)"
	}
	fmt.Fprintf(tw, "SECRETS\t%s\n", secrets)
	if e.GetCreateTime() != nil {
		fmt.Fprintf(tw, "CREATED\t%s\n", timefmt.Absolute(e.GetCreateTime().AsTime(), loc))
	}
	if e.GetUpdateTime() != nil {
		fmt.Fprintf(tw, "UPDATED\t%s\n", timefmt.Absolute(e.GetUpdateTime().AsTime(), loc))
	}
	return tw.Flush()
}
