// Package agent implements `oz agent`: the team's agent identities, the
// bot accounts that runs execute as. A team secret that identities
// reference by name is restricted to runs executing as one of them.
package agent

import (
	"context"
	"strings"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil/refholder"
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
your only team. Team admins change identities; members read them.

Example:
   oz agent create deployer --secret PROD_DB_URL
   oz agent list --team acme`,
		Subcommands: kind.Commands(f),
	}
}

const displayNameFlag = "display-name"

// kind is what the agent commands do differently from the environment
// commands.
var kind = &refholder.Kind[*scopev1.Agent, Item]{
	Noun:       "agent identity",
	Plural:     "agent identities",
	Short:      "identity",
	Collection: "agents",
	DeleteAlso: " and revoke its tokens",
	Help: refholder.Help{
		Create: refholder.Text{Usage: "Create an agent identity", Description: `Example, an identity that only team admins start runs as, restricting the
team secret PROD_DB_URL to its runs:
   oz agent create deployer --secret PROD_DB_URL --start-policy admins`},
		Update: refholder.Text{Usage: "Change an agent identity's description, start policy or the secrets it references", Description: `Only what the flags name changes.

Example, let any member of the team start runs as deployer:
   oz agent update deployer --start-policy members`},
		List: refholder.Text{Usage: "List the team's agent identities", Description: `Example:
   oz agent list --team acme --output json`},
		Get: refholder.Text{Usage: "Show an agent identity", Description: `Example:
   oz agent get deployer`},
		Delete: refholder.Text{Usage: "Delete an agent identity and revoke its tokens (not the default identity)", Description: `Example, without the confirmation prompt (scripts):
   oz agent delete deployer --force`},
		SecretFlag:       "reference the team secret `NAME`, restricting it to this identity (repeatable)",
		AddSecretFlag:    "reference the team secret `NAME` too (repeatable)",
		RemoveSecretFlag: "stop referencing the secret `NAME` (repeatable)",
	},
	Fields: []refholder.Field{
		{
			Flag: displayNameFlag, Path: "display_name",
			CreateUsage: "a name for people, as `TEXT`",
			UpdateUsage: "set the name for people to `TEXT`",
		},
		{
			Flag: cmdutil.StartPolicyFlag, Path: "start_policy", AfterSecrets: true,
			CreateUsage: "who may start runs as it, `POLICY`: admins (the team's admins) or members (any member) (default: admins)",
			UpdateUsage: "set who may start runs as it, `POLICY`: admins (the team's admins) or members (any member)",
			Check: func(s string) error {
				_, err := cmdutil.ParseStartPolicy(s)
				return err
			},
		},
	},
	ID:         (*scopev1.Agent).GetAgentId,
	Item:       newItem,
	ListHeader: "NAME\tSTART POLICY\tSECRETS\tDESCRIPTION",
	Row: func(it Item) string {
		name := it.Name
		if it.Default {
			name += " (default)"
		}
		policy := it.StartPolicy
		if policy == "unspecified" {
			policy = "-"
		}
		return strings.Join([]string{name, policy, cmdutil.OrDash(strings.Join(it.SecretNames, ", ")), cmdutil.OrDash(cmdutil.Text(it.Description))}, "\t")
	},
	Details: details,
	Create: func(ctx context.Context, conn *client.Conn, r refholder.CreateRequest) (*scopev1.Agent, error) {
		resp, err := conn.Agents.CreateAgent(ctx, &scopev1.CreateAgentRequest{
			Parent:      r.Parent,
			AgentId:     r.ID,
			DisplayName: r.Fields[displayNameFlag],
			Description: r.Description,
			SecretNames: r.Secrets,
			StartPolicy: startPolicy(r.Fields),
		})
		return resp.GetAgent(), err
	},
	Update: func(ctx context.Context, conn *client.Conn, r refholder.UpdateRequest) (*scopev1.Agent, error) {
		resp, err := conn.Agents.UpdateAgent(ctx, &scopev1.UpdateAgentRequest{
			Name:              r.Name,
			Description:       r.Description,
			DisplayName:       r.Fields[displayNameFlag],
			StartPolicy:       startPolicy(r.Fields),
			AddSecretNames:    r.Add,
			RemoveSecretNames: r.Remove,
			Etag:              r.Etag,
			UpdateMask:        r.Mask,
		})
		return resp.GetAgent(), err
	},
	Get: func(ctx context.Context, conn *client.Conn, name string) (*scopev1.Agent, error) {
		resp, err := conn.Agents.GetAgent(ctx, &scopev1.GetAgentRequest{Name: name})
		return resp.GetAgent(), err
	},
	List: func(ctx context.Context, conn *client.Conn, parent, token string) ([]*scopev1.Agent, string, error) {
		resp, err := conn.Agents.ListAgents(ctx, &scopev1.ListAgentsRequest{Parent: parent, PageToken: token})
		return resp.GetAgents(), resp.GetNextPageToken(), err
	},
	Delete: func(ctx context.Context, conn *client.Conn, name, etag string) error {
		_, err := conn.Agents.DeleteAgent(ctx, &scopev1.DeleteAgentRequest{Name: name, Etag: etag})
		return err
	},
}

// startPolicy is --start-policy when given (checked), else unspecified:
// the server's default on create, unchanged on update.
func startPolicy(v refholder.Values) scopev1.StartPolicy {
	p, err := cmdutil.ParseStartPolicy(v[cmdutil.StartPolicyFlag])
	if err != nil {
		return scopev1.StartPolicy_START_POLICY_UNSPECIFIED
	}
	return p
}

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

func newItem(c refholder.Item, a *scopev1.Agent) Item {
	return Item{
		Name:         c.Name,
		ResourceName: c.ResourceName,
		Team:         c.Team,
		DisplayName:  a.GetDisplayName(),
		Description:  c.Description,
		SecretNames:  c.SecretNames,
		Default:      a.GetDefault(),
		StartPolicy:  cmdutil.StartPolicyKey(a.GetStartPolicy()),
		CreatedAt:    c.CreatedAt,
		UpdatedAt:    c.UpdatedAt,
		Etag:         c.Etag,
	}
}

// details are the rows of `oz agent get` between TEAM and CREATED.
func details(it Item, a *scopev1.Agent) []refholder.Detail {
	var out []refholder.Detail
	if it.DisplayName != "" {
		out = append(out, refholder.Detail{Label: "DISPLAY NAME", Value: cmdutil.Text(it.DisplayName)})
	}
	out = append(out,
		refholder.Detail{Label: "DESCRIPTION", Value: cmdutil.OrDash(cmdutil.Text(it.Description))},
		refholder.Detail{Label: "SECRETS", Value: cmdutil.OrDash(strings.Join(it.SecretNames, ", "))},
	)
	if it.Default {
		out = append(out, refholder.Detail{Label: "DEFAULT", Value: "yes (runs with no user and no chosen identity execute as it)"})
	}
	return append(out, refholder.Detail{Label: "START POLICY", Value: policyText(a.GetStartPolicy())})
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
