package agent

import (
	"context"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// UpdateOptions are the inputs of `oz agent update`.
type UpdateOptions struct {
	Deps
	ID string

	SetDescription bool // --description was given (possibly empty)
	Description    string
	SetDisplayName bool
	DisplayName    string
	AddSecrets     []string
	RemoveSecrets  []string
	StartPolicy    scopev1.StartPolicy // when specified, replaces who may start runs as it
	Etag           string
	Output         cmdutil.Format
}

func newUpdateCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "update",
		Usage:     "Change an agent identity's description, start policy or the secrets it references",
		ArgsUsage: "NAME",
		Description: `Only what the flags name changes.

Example, let any member of the team start runs as deployer:
   oz agent update deployer --start-policy members`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "description", Aliases: []string{"d"}, Usage: "set the description to `TEXT` (\"\" clears it)"},
			&cli.StringFlag{Name: "display-name", Usage: "set the name for people to `TEXT`"},
			&cli.StringSliceFlag{Name: "add-secret", Usage: "reference the team secret `NAME` too (repeatable)"},
			&cli.StringSliceFlag{Name: "remove-secret", Usage: "stop referencing the secret `NAME` (repeatable)"},
			startPolicyFlag("set who may start runs as it, `POLICY`: admins (the team's admins) or members (any member)"),
			&cli.StringFlag{Name: "etag", Usage: "update only if the identity's etag is still `ETAG`"},
			cmdutil.OutputFlag(),
		}, cmdutil.TeamFlags()...),
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "NAME")
			if err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			var policy scopev1.StartPolicy
			if c.IsSet(cmdutil.StartPolicyFlag) {
				if policy, err = cmdutil.ParseStartPolicy(c.String(cmdutil.StartPolicyFlag)); err != nil {
					return err
				}
			}
			d, err := depsOf(f, c)
			if err != nil {
				return err
			}
			return runUpdate(c.Context, &UpdateOptions{
				StartPolicy:    policy,
				Deps:           d,
				ID:             args[0],
				SetDescription: c.IsSet("description"),
				Description:    c.String("description"),
				SetDisplayName: c.IsSet("display-name"),
				DisplayName:    c.String("display-name"),
				AddSecrets:     c.StringSlice("add-secret"),
				RemoveSecrets:  c.StringSlice("remove-secret"),
				Etag:           c.String("etag"),
				Output:         format,
			})
		},
	}
}

func runUpdate(ctx context.Context, opts *UpdateOptions) error {
	if err := cmdutil.CheckName("NAME", opts.ID); err != nil {
		return err
	}
	setPolicy := opts.StartPolicy != scopev1.StartPolicy_START_POLICY_UNSPECIFIED
	if !opts.SetDescription && !opts.SetDisplayName && !setPolicy && len(opts.AddSecrets) == 0 && len(opts.RemoveSecrets) == 0 {
		return exitcode.Usagef("nothing to update: pass --description, --display-name, --start-policy, --add-secret or --remove-secret")
	}
	if err := cmdutil.CheckSecretChanges(opts.AddSecrets, opts.RemoveSecrets); err != nil {
		return err
	}
	conn, team, err := opts.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	req := &scopev1.UpdateAgentRequest{
		Name:              agentName(team, opts.ID),
		AddSecretNames:    opts.AddSecrets,
		RemoveSecretNames: opts.RemoveSecrets,
		Etag:              opts.Etag,
	}
	var paths []string
	if opts.SetDescription {
		req.Description = opts.Description
		paths = append(paths, "description")
	}
	if opts.SetDisplayName {
		req.DisplayName = opts.DisplayName
		paths = append(paths, "display_name")
	}
	if setPolicy {
		req.StartPolicy = opts.StartPolicy
		paths = append(paths, "start_policy")
	}
	// Without a mask the server changes only what is non-empty; the
	// added and removed names apply either way.
	if len(paths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: paths}
	}
	resp, err := conn.Agents.UpdateAgent(ctx, req)
	if err != nil {
		return err
	}
	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.IO.Out, newItem(resp.GetAgent(), team))
	}
	cmdutil.Successf(opts.IO, "Updated %s", describe(team, opts.ID))
	return nil
}
