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
	Binding     BindingChange // --bind-host, --bind-query, --bind-body
}

func newCreateCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "Create a secret",
		ArgsUsage: "NAME",
		Description: bindingHelp + `A bound value is at least 8 bytes long and holds no CR, LF, NUL or "oz-ph-".

Examples:
   oz secret create --team DEPLOY_TOKEN              # asks for the value on a terminal
   oz secret create --personal GITHUB_TOKEN --value-file ~/.gh-token
   printf %s "$TOKEN" | oz --use-team acme secret create --team API_KEY -d 'Stripe live key'

Example, a key the agent never holds, sent only to the OpenAI API:
   oz secret create --team --bind-host api.openai.com OPENAI_API_KEY

Example, bound to every host below metabase.example.com, the placeholder
also replaced in query strings:
   oz secret create --team --bind-host '*.metabase.example.com' --bind-query MB_KEY`,
		Flags: append(append(cmdutil.ScopeFlags(),
			&cli.StringFlag{Name: cmdutil.ValueFileFlag, Usage: "read the value from `FILE` (exact bytes; - is standard input)"},
			&cli.StringFlag{Name: "description", Aliases: []string{"d"}, Usage: "what the secret is for, as `TEXT`"}),
			append(bindFlags(),
				useTeamFlag(),
				cmdutil.QuietFlag(),
			)...),
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
				Binding:     bindingChangeFrom(c),
			})
		},
	}
}

func runCreate(ctx context.Context, opts *CreateOptions) error {
	if err := cmdutil.CheckName("NAME", opts.Name); err != nil {
		return err
	}
	binding, err := opts.Binding.apply(opts.Name, nil)
	if err != nil {
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
	if err := checkBoundValue(opts.Name, binding, value); err != nil {
		return err
	}
	// The binding comes with the value, in one request: a bound secret
	// never exists unbound, not even for a moment.
	resp, err := conn.Secrets.CreateSecret(ctx, &secretsv1.CreateSecretRequest{
		Parent:      cmdutil.Parent(opts.Scope, team),
		SecretId:    opts.Name,
		SealedValue: sealed,
		Description: opts.Description,
		Binding:     binding,
	})
	if err != nil {
		return cmdutil.RedactValue(err, value)
	}
	s := resp.GetSecret()
	if b := s.GetBinding(); b != nil {
		cmdutil.Successf(opts.IO, "Created %s, bound to %s", describe(s, opts.Scope, team, opts.Name), boundTo(b))
		return nil
	}
	cmdutil.Successf(opts.IO, "Created %s", describe(s, opts.Scope, team, opts.Name))
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
