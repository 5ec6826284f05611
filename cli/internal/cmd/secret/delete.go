package secret

import (
	"context"

	"github.com/urfave/cli/v2"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// DeleteOptions are the inputs of `oz secret delete`.
type DeleteOptions struct {
	IO       *iostreams.IOStreams
	Prompter iostreams.Prompter
	Connect  func(context.Context) (*client.Conn, error)

	Scope cmdutil.Scope
	Team  string
	Name  string
	Force bool   // delete without asking
	Etag  string // refuse the delete unless the secret still has this etag
}

func newDeleteCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "Delete a secret and every stored version of its value",
		ArgsUsage: "NAME",
		Description: `Asks for confirmation on a terminal; without one it refuses unless --force.
Runs in flight keep the value they received: standard error says how many
(oz run list --in-flight lists them).

Example:
   oz secret delete --team --force DEPLOY_TOKEN`,
		Flags: append(cmdutil.ScopeFlags(),
			cmdutil.ForceFlag(),
			&cli.StringFlag{Name: "etag", Usage: "delete only if the secret's etag is still `ETAG`"},
			useTeamFlag(),
			cmdutil.QuietFlag(),
		),
		Action: func(c *cli.Context) error {
			name, scope, team, err := secretArgs(f, c)
			if err != nil {
				return err
			}
			return runDelete(c.Context, &DeleteOptions{
				IO:       cmdutil.Quiet(c, f.IO),
				Prompter: f.Prompter,
				Connect:  f.Connector(),
				Scope:    scope,
				Team:     team,
				Name:     name,
				Force:    c.Bool("force"),
				Etag:     c.String("etag"),
			})
		},
	}
}

func runDelete(ctx context.Context, opts *DeleteOptions) error {
	if err := cmdutil.CheckName("NAME", opts.Name); err != nil {
		return err
	}
	// Refuse before anything is sent: without a terminal nobody can
	// confirm, and a script must say --force.
	if err := cmdutil.CanConfirm(opts.IO, opts.Force, opts.Scope.String()+" secret "+opts.Name); err != nil {
		return err
	}
	conn, team, err := connectScope(ctx, opts.Connect, opts.Scope, opts.Team)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := cmdutil.ConfirmDelete(ctx, opts.Prompter, opts.Force, describe(nil, opts.Scope, team, opts.Name), ""); err != nil {
		return err
	}
	_, err = conn.Secrets.DeleteSecret(ctx, &secretsv1.DeleteSecretRequest{
		Name: cmdutil.SecretName(cmdutil.Parent(opts.Scope, team), opts.Name),
		Etag: opts.Etag,
	})
	if err != nil {
		return err
	}
	cmdutil.Successf(opts.IO, "Deleted %s", describe(nil, opts.Scope, team, opts.Name))
	// Runs in flight keep the value they received.
	warnInFlight(ctx, conn, opts.IO.ErrOut, opts.Scope, team, opts.Name, previousValue)
	return nil
}
