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
	Output      cmdutil.Format
}

func newCreateCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "Create an agent identity",
		ArgsUsage: "NAME",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "description", Aliases: []string{"d"}, Usage: "what the identity is for, as `TEXT`"},
			&cli.StringFlag{Name: "display-name", Usage: "a name for people, as `TEXT`"},
			&cli.StringSliceFlag{Name: "secret", Usage: "reference the team secret `NAME`, restricting it to this identity (repeatable)"},
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
			d, err := depsOf(f, c)
			if err != nil {
				return err
			}
			return runCreate(c.Context, &CreateOptions{
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
