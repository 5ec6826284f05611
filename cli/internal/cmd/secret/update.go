package secret

import (
	"context"
	"fmt"

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
	Binding        BindingChange
	Etag           string // refuse the update unless the secret still has this etag
	Quiet          bool   // --quiet: no notes for people on standard error (warnings stay)
}

func newUpdateCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "update",
		Usage:     "Replace a secret's value, description and/or binding to hosts",
		ArgsUsage: "NAME",
		Description: `A new value reaches runs started from now on. Runs in flight keep the value
they received: after a value change, standard error says how many hold the
previous one (oz run list --in-flight lists them).

` + bindingHelp + `
--bind-host adds hosts to the binding, --unbind-host removes them (the last
one removed unbinds the secret), --no-bind removes them all. A change of
binding reaches runs started from now on: runs in flight that hold the
value keep it. The secret is read first and updated only if nothing changed
it since, so that no concurrent change is lost.

Example, rotate a team secret (asks for the new value on a terminal):
   oz secret update --team --value DEPLOY_TOKEN

Example, bind a secret to one more host, then unbind it from another:
   oz secret update --team --bind-host api.eu.example.com API_KEY
   oz secret update --team --unbind-host api.us.example.com API_KEY

Example, substitute in request bodies too, or no longer:
   oz secret update --team --bind-body API_KEY
   oz secret update --team --bind-body=false API_KEY

Example, give runs the value again (not bound to any host):
   oz secret update --team --no-bind API_KEY`,
		Flags: append(append(cmdutil.ScopeFlags(),
			&cli.BoolFlag{Name: "value", Usage: "set a new value (hidden prompt on a terminal, else standard input)"},
			&cli.StringFlag{Name: cmdutil.ValueFileFlag, Usage: "set a new value from `FILE` (exact bytes; - is standard input)"},
			&cli.StringFlag{Name: "description", Aliases: []string{"d"}, Usage: "set a new description `TEXT` (\"\" clears it)"},
			&cli.StringSliceFlag{Name: bindHostFlag, Usage: "add host `PATTERN` to the secret's binding (repeatable, or comma-separated): runs get a placeholder, only requests to the bound hosts get the value"},
			&cli.StringSliceFlag{Name: unbindHostFlag, Usage: "remove host `PATTERN` from the binding (repeatable, or comma-separated; removing the last one unbinds)"},
			&cli.BoolFlag{Name: noBindFlag, Usage: "remove the binding: runs get the value itself again"},
			&cli.BoolFlag{Name: bindQueryFlag, Usage: "also replace the placeholder in query strings (--bind-query=false: no longer)"},
			&cli.BoolFlag{Name: bindBodyFlag, Usage: "also replace the placeholder in request bodies (--bind-body=false: no longer)"},
			&cli.StringFlag{Name: "etag", Usage: "update only if the secret's etag is still `ETAG`"}),
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
				Binding:        bindingChangeFrom(c),
				Etag:           c.String("etag"),
				Quiet:          c.Bool(cmdutil.QuietFlagName),
			})
		},
	}
}

func runUpdate(ctx context.Context, opts *UpdateOptions) error {
	if err := cmdutil.CheckName("NAME", opts.Name); err != nil {
		return err
	}
	setValue, setBinding := opts.Value || opts.ValueFile != "", opts.Binding.Changes()
	if !setValue && !opts.SetDescription && !setBinding {
		return exitcode.Usagef("nothing to update: pass --value, --value-file, --description, --bind-host, --unbind-host, --no-bind, --bind-query or --bind-body")
	}
	if err := opts.Binding.check(); err != nil {
		return err
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
	// The binding is read before any value, so that no one is asked for a
	// value the command would then refuse to send.
	var before *secretsv1.HostBinding
	if setBinding {
		if before, err = readBinding(ctx, conn, req, opts); err != nil {
			return err
		}
		if req.Binding, err = opts.Binding.apply(opts.Name, before); err != nil {
			return err
		}
	}
	var value []byte
	if setValue {
		if req.SealedValue, value, err = readSealed(ctx, conn, opts.IO, opts.Prompter, opts.Scope, team, opts.Name, opts.ValueFile); err != nil {
			return err
		}
		defer clear(value)
		if setBinding {
			if err := checkBoundValue(opts.Name, req.Binding, value); err != nil {
				return err
			}
		}
		req.UpdateMask.Paths = append(req.UpdateMask.Paths, "value")
	}
	if opts.SetDescription {
		req.Description = opts.Description
		req.UpdateMask.Paths = append(req.UpdateMask.Paths, "description")
	}
	if setBinding {
		// One request with the value: a new value is never stored under
		// the old binding, nor the old value under the new one.
		req.UpdateMask.Paths = append(req.UpdateMask.Paths, "binding")
	}
	resp, err := conn.Secrets.UpdateSecret(ctx, req)
	if err != nil {
		return cmdutil.RedactValue(err, value)
	}
	cmdutil.Successf(opts.IO, "Updated %s", describe(resp.GetSecret(), opts.Scope, team, opts.Name))
	if setBinding {
		noteBinding(ctx, conn, opts, team, before, resp.GetSecret().GetBinding(), setValue)
	}
	if setValue {
		// Runs in flight keep the value they received.
		warnInFlight(ctx, conn, opts.IO.ErrOut, opts.Scope, team, opts.Name, previousValue)
	}
	return nil
}

// readBinding reads the secret req names and returns its binding, setting
// req's etag to the one read, so that the update is refused if the secret
// changed since (a binding computed from a stale one would undo that
// change). An etag the caller gave must still be the secret's: it is kept.
func readBinding(ctx context.Context, conn *client.Conn, req *secretsv1.UpdateSecretRequest, opts *UpdateOptions) (*secretsv1.HostBinding, error) {
	resp, err := conn.Secrets.GetSecret(ctx, &secretsv1.GetSecretRequest{Name: req.GetName()})
	if err != nil {
		return nil, err
	}
	cur := resp.GetSecret()
	if opts.Etag != "" && opts.Etag != cur.GetEtag() {
		return nil, exitcode.New(exitcode.Conflict, fmt.Sprintf("etag mismatch: %s changed since etag %s was read; get it again and retry", opts.Name, opts.Etag))
	}
	req.Etag = cur.GetEtag()
	return cur.GetBinding(), nil
}

// noteBinding tells on standard error what a change of binding from
// before to after means for runs. Becoming bound: runs started from now
// on get a placeholder (a note, not with --quiet), and runs in flight
// still hold the value (a warning, with their number, unless the value
// changed too: then the previous value's warning says it). No longer
// bound: runs get the value (a warning).
func noteBinding(ctx context.Context, conn *client.Conn, opts *UpdateOptions, team string, before, after *secretsv1.HostBinding, setValue bool) {
	w := opts.IO.ErrOut
	switch wasBound, isBound := len(before.GetHosts()) > 0, len(after.GetHosts()) > 0; {
	case !wasBound && isBound:
		if !opts.Quiet {
			fmt.Fprintf(w, "%s is now bound to %s: runs started from now on get a placeholder, and the runner sends the value to these hosts only\n", opts.Name, boundTo(after))
		}
		if !setValue {
			warnInFlight(ctx, conn, w, opts.Scope, team, opts.Name, unboundValue)
		}
	case wasBound && !isBound:
		fmt.Fprintf(w, "%s is no longer bound to hosts: runs get its value\n", opts.Name)
	case isBound && !opts.Quiet && !sameBinding(before, after):
		fmt.Fprintf(w, "%s is now bound to %s (runs in flight keep the binding they started with)\n", opts.Name, boundTo(after))
	}
}
