// Package agent implements `oz agent`: the team's agent identities, the
// bot accounts that runs execute as. A team secret that identities
// reference by name is restricted to runs executing as one of them.
package agent

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

// NewCmd returns the `oz agent` command group.
func NewCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "agent",
		Aliases: []string{"agents"},
		Usage:   "Manage agent identities: the accounts runs execute as",
		Description: `An agent identity is a team's bot account that runs execute as. A team secret
that one or more identities reference (--secret NAME) is restricted: only runs
executing as one of them receive it; unreferenced team secrets are available to
every run of the team. References are by name and need not exist yet.

Every team has a default identity, which cannot be deleted: runs with no
triggering user and no chosen identity execute as it. Tokens bound to an
identity (oz admin token create --agent NAME) start runs that execute as it;
deleting the identity revokes them.

An identity's start policy (--start-policy) says who may start runs (oz run
start) executing as it: admins (the default for a new identity: the team's
admins only) or members (any member of the team, and the team's
integrations). Its own tokens, and integrations created naming it, always
may. The default identity's policy is members and cannot be changed.

The team is --team TEAM, else --use-team, $OZ_TEAM, the config file's team, or
your only team. Team admins change identities; members read them.`,
		Subcommands: []*cli.Command{
			newCreateCmd(f),
			newUpdateCmd(f),
			newListCmd(f),
			newGetCmd(f),
			newDeleteCmd(f),
		},
	}
}

// Deps are what every agent command needs.
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

func agentName(team, id string) string { return "teams/" + team + "/agents/" + id }

func describe(team, id string) string { return "agent identity " + id + " (team " + team + ")" }

// Item is an agent identity as --output json prints it.
type Item struct {
	Name         string   `json:"name"`
	ResourceName string   `json:"resource_name"`
	Team         string   `json:"team"`
	DisplayName  string   `json:"display_name"`
	Description  string   `json:"description"`
	SecretNames  []string `json:"secret_names"`
	Default      bool     `json:"default"`
	StartPolicy  string   `json:"start_policy"` // who may start runs as it: "admins" or "members"
	CreatedAt    string   `json:"created_at,omitempty"`
	UpdatedAt    string   `json:"updated_at,omitempty"`
	Etag         string   `json:"etag,omitempty"`
}

func newItem(a *scopev1.Agent, team string) Item {
	it := Item{
		Name:         a.GetAgentId(),
		ResourceName: a.GetName(),
		Team:         team,
		DisplayName:  a.GetDisplayName(),
		Description:  a.GetDescription(),
		SecretNames:  append([]string{}, a.GetSecretNames()...),
		Default:      a.GetDefault(),
		StartPolicy:  cmdutil.StartPolicyKey(a.GetStartPolicy()),
		CreatedAt:    cmdutil.RFC3339(a.GetCreateTime()),
		UpdatedAt:    cmdutil.RFC3339(a.GetUpdateTime()),
		Etag:         a.GetEtag(),
	}
	if owner, id, ok := strings.Cut(a.GetName(), "/agents/"); ok {
		it.Name = cmp.Or(it.Name, id)
		it.Team = strings.TrimPrefix(owner, "teams/")
	}
	return it
}

// writeOne prints one identity: JSON, or a NAME/value table.
func writeOne(d Deps, format cmdutil.Format, it Item, a *scopev1.Agent) error {
	if format == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(d.IO.Out, it)
	}
	loc := d.Now().Location()
	tw := tabwriter.NewWriter(d.IO.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\t%s\n", it.Name)
	fmt.Fprintf(tw, "TEAM\t%s\n", it.Team)
	if it.DisplayName != "" {
		fmt.Fprintf(tw, "DISPLAY NAME\t%s\n", it.DisplayName)
	}
	fmt.Fprintf(tw, "DESCRIPTION\t%s\n", cmdutil.OrDash(it.Description))
	fmt.Fprintf(tw, "SECRETS\t%s\n", cmdutil.OrDash(strings.Join(it.SecretNames, ", ")))
	if it.Default {
		fmt.Fprintf(tw, "DEFAULT\tyes (runs with no user and no chosen identity execute as it)\n")
	}
	fmt.Fprintf(tw, "START POLICY\t%s\n", policyText(a.GetStartPolicy()))
	if a.GetCreateTime() != nil {
		fmt.Fprintf(tw, "CREATED\t%s\n", timefmt.Absolute(a.GetCreateTime().AsTime(), loc))
	}
	if a.GetUpdateTime() != nil {
		fmt.Fprintf(tw, "UPDATED\t%s\n", timefmt.Absolute(a.GetUpdateTime().AsTime(), loc))
	}
	return tw.Flush()
}

// startPolicyFlag is --start-policy of create and update.
func startPolicyFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: cmdutil.StartPolicyFlag, Usage: usage}
}

// policyText renders a start policy for people.
func policyText(p scopev1.StartPolicy) string {
	switch p {
	case scopev1.StartPolicy_START_POLICY_ADMINS:
		return "admins (only the team's admins start runs as it)"
	case scopev1.StartPolicy_START_POLICY_MEMBERS:
		return "members (any member of the team starts runs as it)"
	}
	return "-"
}
