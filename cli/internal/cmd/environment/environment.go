// Package environment implements `oz environment`: named lists of secret
// names that are the default allowlist of the runs using them.
package environment

import (
	"context"
	"strings"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil/refholder"
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
your only team. Team admins change environments; members read them.

Example:
   oz environment create ops-tools --secret GITHUB_TOKEN --secret NPM_TOKEN
   oz run start --environment ops-tools`,
		Subcommands: kind.Commands(f),
	}
}

// kind is what the environment commands do differently from the agent
// commands. An environment prints as refholder.Item does.
var kind = &refholder.Kind[*scopev1.Environment, refholder.Item]{
	Noun:       "environment",
	Plural:     "environments",
	Short:      "environment",
	Collection: "environments",
	Help: refholder.Help{
		Create: refholder.Text{Usage: "Create an environment", Description: `Example, the secrets of runs that deploy:
   oz environment create ops-tools --secret GITHUB_TOKEN --secret NPM_TOKEN -d "deploy runs"`},
		Update: refholder.Text{Usage: "Change an environment's description or its secret names", Description: `Only what the flags name changes.

Example:
   oz environment update ops-tools --add-secret PAGER_KEY --remove-secret NPM_TOKEN`},
		List: refholder.Text{Usage: "List the team's environments", Description: `Example:
   oz environment list --team acme`},
		Get: refholder.Text{Usage: "Show an environment", Description: `Example:
   oz environment get ops-tools --output json`},
		Delete: refholder.Text{Usage: "Delete an environment", Description: `Example, without the confirmation prompt (scripts):
   oz environment delete ops-tools --force`},
		SecretFlag:       "put the secret `NAME` on the allowlist of runs using it (repeatable)",
		AddSecretFlag:    "add the secret `NAME` to the list (repeatable)",
		RemoveSecretFlag: "remove the secret `NAME` from the list (repeatable)",
	},
	ID:         (*scopev1.Environment).GetEnvironmentId,
	Item:       func(it refholder.Item, _ *scopev1.Environment) refholder.Item { return it },
	ListHeader: "NAME\tSECRETS\tDESCRIPTION",
	Row: func(it refholder.Item) string {
		return strings.Join([]string{it.Name, cmdutil.OrDash(strings.Join(it.SecretNames, ", ")), cmdutil.OrDash(cmdutil.Text(it.Description))}, "\t")
	},
	Details: func(it refholder.Item, _ *scopev1.Environment) []refholder.Detail {
		secrets := strings.Join(it.SecretNames, ", ")
		if secrets == "" {
			secrets = "- (no allowlist: runs using it receive every secret available to them)"
		}
		return []refholder.Detail{
			{Label: "DESCRIPTION", Value: cmdutil.OrDash(cmdutil.Text(it.Description))},
			{Label: "SECRETS", Value: secrets},
		}
	},
	Create: func(ctx context.Context, conn *client.Conn, r refholder.CreateRequest) (*scopev1.Environment, error) {
		resp, err := conn.Environments.CreateEnvironment(ctx, &scopev1.CreateEnvironmentRequest{
			Parent:        r.Parent,
			EnvironmentId: r.ID,
			Description:   r.Description,
			SecretNames:   r.Secrets,
		})
		return resp.GetEnvironment(), err
	},
	Update: func(ctx context.Context, conn *client.Conn, r refholder.UpdateRequest) (*scopev1.Environment, error) {
		resp, err := conn.Environments.UpdateEnvironment(ctx, &scopev1.UpdateEnvironmentRequest{
			Name:              r.Name,
			Description:       r.Description,
			AddSecretNames:    r.Add,
			RemoveSecretNames: r.Remove,
			Etag:              r.Etag,
			UpdateMask:        r.Mask,
		})
		return resp.GetEnvironment(), err
	},
	Get: func(ctx context.Context, conn *client.Conn, name string) (*scopev1.Environment, error) {
		resp, err := conn.Environments.GetEnvironment(ctx, &scopev1.GetEnvironmentRequest{Name: name})
		return resp.GetEnvironment(), err
	},
	List: func(ctx context.Context, conn *client.Conn, parent, token string) ([]*scopev1.Environment, string, error) {
		resp, err := conn.Environments.ListEnvironments(ctx, &scopev1.ListEnvironmentsRequest{Parent: parent, PageToken: token})
		return resp.GetEnvironments(), resp.GetNextPageToken(), err
	},
	Delete: func(ctx context.Context, conn *client.Conn, name, etag string) error {
		_, err := conn.Environments.DeleteEnvironment(ctx, &scopev1.DeleteEnvironmentRequest{Name: name, Etag: etag})
		return err
	},
}
