package secret

import (
	"context"

	"github.com/urfave/cli/v2"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// CreateOptions are the inputs of `oz secret create`.
type CreateOptions struct {
	IO       *iostreams.IOStreams
	Prompter iostreams.Prompter
	Connect  func(context.Context) (*client.Conn, error)

	Scope       cmdutil.Scope
	Team        string // chosen team; empty: the caller's only team
	Name        string
	ValueFile   string
	Description string
}

func newCreateCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "Create a secret",
		ArgsUsage: "NAME",
		Description: `Examples:
   oz secret create --team DEPLOY_TOKEN              # asks for the value on a terminal
   oz secret create --personal GITHUB_TOKEN --value-file ~/.gh-token
   printf %s "$TOKEN" | oz --use-team acme secret create --team API_KEY -d 'Stripe live key'`,
		Flags: append(cmdutil.ScopeFlags(),
			&cli.StringFlag{Name: cmdutil.ValueFileFlag, Usage: "read the value from `FILE` (exact bytes; - is standard input)"},
			&cli.StringFlag{Name: "description", Aliases: []string{"d"}, Usage: "what the secret is for, as `TEXT`"},
			useTeamFlag(),
			cmdutil.QuietFlag(),
		),
		Action: func(c *cli.Context) error {
			name, scope, team, err := secretArgs(f, c)
			if err != nil {
				return err
			}
			return runCreate(c.Context, &CreateOptions{
				IO:          cmdutil.Quiet(c, f.IO),
				Prompter:    f.Prompter,
				Connect:     f.Connector(),
				Scope:       scope,
				Team:        team,
				Name:        name,
				ValueFile:   c.String(cmdutil.ValueFileFlag),
				Description: c.String("description"),
			})
		},
	}
}

func runCreate(ctx context.Context, opts *CreateOptions) error {
	if err := cmdutil.CheckName("NAME", opts.Name); err != nil {
		return err
	}
	conn, team, err := connectScope(ctx, opts.Connect, opts.Scope, opts.Team)
	if err != nil {
		return err
	}
	defer conn.Close()
	sealed, value, err := readSealed(ctx, conn, opts.IO, opts.Prompter, opts.Scope, team, opts.Name, opts.ValueFile)
	if err != nil {
		return err
	}
	defer clear(value)
	resp, err := conn.Secrets.CreateSecret(ctx, &secretsv1.CreateSecretRequest{
		Parent:      cmdutil.Parent(opts.Scope, team),
		SecretId:    opts.Name,
		SealedValue: sealed,
		Description: opts.Description,
	})
	if err != nil {
		return cmdutil.RedactValue(err, value)
	}
	cmdutil.Successf(opts.IO, "Created %s", describe(resp.GetSecret(), opts.Scope, team, opts.Name))
	return nil
}

// describe names a secret for people: "team secret API_KEY (acme)" or
// "personal secret API_KEY".
func describe(s *secretsv1.Secret, scope cmdutil.Scope, team, name string) string {
	if s.GetSecretId() != "" {
		name = s.GetSecretId()
	}
	if scope == cmdutil.ScopeTeam {
		return "team secret " + name + " (team " + team + ")"
	}
	return "personal secret " + name
}
