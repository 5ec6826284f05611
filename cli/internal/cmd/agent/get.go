package agent

import (
	"context"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// GetOptions are the inputs of `oz agent get`.
type GetOptions struct {
	Deps
	ID     string
	Output cmdutil.Format
}

func newGetCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "get",
		Aliases:   []string{"show"},
		Usage:     "Show an agent identity",
		ArgsUsage: "NAME",
		Flags:     append([]cli.Flag{cmdutil.OutputFlag()}, cmdutil.TeamFlags()...),
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
			return runGet(c.Context, &GetOptions{Deps: d, ID: args[0], Output: format})
		},
	}
}

func runGet(ctx context.Context, opts *GetOptions) error {
	if err := cmdutil.CheckName("NAME", opts.ID); err != nil {
		return err
	}
	conn, team, err := opts.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := conn.Agents.GetAgent(ctx, &scopev1.GetAgentRequest{Name: agentName(team, opts.ID)})
	if err != nil {
		return err
	}
	return writeOne(opts.Deps, opts.Output, newItem(resp.GetAgent(), team), resp.GetAgent())
}
