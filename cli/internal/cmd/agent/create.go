package agent

import (
	"context"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// CreateOptions are the inputs of `oz agent create`.
type CreateOptions struct {
	Deps
	ID          string
	DisplayName string
	Description string
	Secrets     []string // team secret names the identity references
	// StartPolicy says who may start runs as it; unspecified: the
	// server's default (admins).
	StartPolicy scopev1.StartPolicy
	Output      cmdutil.Format
}

func newCreateCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "Create an agent identity",
		ArgsUsage: "NAME",
		Description: `Example, an identity that only team admins start runs as, restricting the
team secret PROD_DB_URL to its runs:
   oz agent create deployer --secret PROD_DB_URL --start-policy admins`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "description", Aliases: []string{"d"}, Usage: "what the identity is for, as `TEXT`"},
			&cli.StringFlag{Name: "display-name", Usage: "a name for people, as `TEXT`"},
			&cli.StringSliceFlag{Name: "secret", Usage: "reference the team secret `NAME`, restricting it to this identity (repeatable)"},
			startPolicyFlag("who may start runs as it, `POLICY`: admins (the team's admins) or members (any member) (default: admins)"),
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
			return runCreate(c.Context, &CreateOptions{
				StartPolicy: policy,
				Deps:        d,
				ID:          args[0],
				DisplayName: c.String("display-name"),
				Description: c.String("description"),
				Secrets:     c.StringSlice("secret"),
				Output:      format,
			})
		},
	}
}

func runCreate(ctx context.Context, opts *CreateOptions) error {
	if err := cmdutil.CheckName("NAME", opts.ID); err != nil {
		return err
	}
	if err := cmdutil.CheckSecretNames("--secret", opts.Secrets); err != nil {
		return err
	}
	conn, team, err := opts.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := conn.Agents.CreateAgent(ctx, &scopev1.CreateAgentRequest{
		Parent:      "teams/" + team,
		AgentId:     opts.ID,
		DisplayName: opts.DisplayName,
		Description: opts.Description,
		SecretNames: opts.Secrets,
		StartPolicy: opts.StartPolicy,
	})
	if err != nil {
		return err
	}
	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.IO.Out, newItem(resp.GetAgent(), team))
	}
	cmdutil.Successf(opts.IO, "Created %s", describe(team, opts.ID))
	return nil
}
