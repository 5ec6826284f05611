package secret

import (
	"context"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// UpdateOptions are the inputs of `oz secret update`.
type UpdateOptions struct {
	IO       *iostreams.IOStreams
	Prompter iostreams.Prompter
	Connect  func(context.Context) (*client.Conn, error)

	Scope cmdutil.Scope
	Team  string
	Name  string

	Value          bool   // --value: read a new value (prompt or stdin)
	ValueFile      string // --value-file: read a new value from a file
	SetDescription bool   // --description was given (possibly empty)
	Description    string
	Etag           string // refuse the update unless the secret still has this etag
}

func newUpdateCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "update",
		Usage:     "Replace a secret's value and/or description",
		ArgsUsage: "NAME",
		Description: `A new value reaches runs started from now on. Runs in flight keep the value
they received: after a value change, standard error says how many hold the
previous one (oz run list --in-flight lists them).

Example, rotate a team secret (asks for the new value on a terminal):
   oz secret update --team --value DEPLOY_TOKEN`,
		Flags: append(cmdutil.ScopeFlags(),
			&cli.BoolFlag{Name: "value", Usage: "set a new value (hidden prompt on a terminal, else standard input)"},
			&cli.StringFlag{Name: cmdutil.ValueFileFlag, Usage: "set a new value from `FILE` (exact bytes; - is standard input)"},
			&cli.StringFlag{Name: "description", Aliases: []string{"d"}, Usage: "set a new description `TEXT` (\"\" clears it)"},
			&cli.StringFlag{Name: "etag", Usage: "update only if the secret's etag is still `ETAG`"},
			useTeamFlag(),
			cmdutil.QuietFlag(),
		),
		Action: func(c *cli.Context) error {
			name, scope, team, err := secretArgs(f, c)
			if err != nil {
				return err
			}
			return runUpdate(c.Context, &UpdateOptions{
				IO:             cmdutil.Quiet(c, f.IO),
				Prompter:       f.Prompter,
				Connect:        f.Connector(),
				Scope:          scope,
				Team:           team,
				Name:           name,
				Value:          c.Bool("value"),
				ValueFile:      c.String(cmdutil.ValueFileFlag),
				SetDescription: c.IsSet("description"),
				Description:    c.String("description"),
				Etag:           c.String("etag"),
			})
		},
	}
}

func runUpdate(ctx context.Context, opts *UpdateOptions) error {
	if err := cmdutil.CheckName("NAME", opts.Name); err != nil {
		return err
	}
	setValue := opts.Value || opts.ValueFile != ""
	if !setValue && !opts.SetDescription {
		return exitcode.Usagef("nothing to update: pass --value, --value-file or --description")
	}
	conn, team, err := connectScope(ctx, opts.Connect, opts.Scope, opts.Team)
	if err != nil {
		return err
	}
	defer conn.Close()
	req := &secretsv1.UpdateSecretRequest{
		Name:       cmdutil.SecretName(cmdutil.Parent(opts.Scope, team), opts.Name),
		UpdateMask: &fieldmaskpb.FieldMask{},
		Etag:       opts.Etag,
	}
	var value []byte
	if setValue {
		if req.SealedValue, value, err = readSealed(ctx, conn, opts.IO, opts.Prompter, opts.Scope, team, opts.Name, opts.ValueFile); err != nil {
			return err
		}
		defer clear(value)
		req.UpdateMask.Paths = append(req.UpdateMask.Paths, "value")
	}
	if opts.SetDescription {
		req.Description = opts.Description
		req.UpdateMask.Paths = append(req.UpdateMask.Paths, "description")
	}
	resp, err := conn.Secrets.UpdateSecret(ctx, req)
	if err != nil {
		return cmdutil.RedactValue(err, value)
	}
	cmdutil.Successf(opts.IO, "Updated %s", describe(resp.GetSecret(), opts.Scope, team, opts.Name))
	if setValue {
		// Runs in flight keep the value they received.
		warnInFlight(ctx, conn, opts.IO.ErrOut, opts.Scope, team, opts.Name)
	}
	return nil
}
