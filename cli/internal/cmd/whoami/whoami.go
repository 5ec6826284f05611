// Package whoami implements `oz whoami`.
package whoami

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/timefmt"
)

// Options are the inputs of `oz whoami`.
type Options struct {
	IO      *iostreams.IOStreams
	Connect func(context.Context) (*client.Conn, error)
	Now     func() time.Time
	Output  cmdutil.Format
}

// NewCmd returns `oz whoami`.
func NewCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "whoami",
		Usage: "Show who your token authenticates you as, and your teams",
		Description: `Example, the teams of the caller, for a script:
   oz whoami --output json`,
		Flags: []cli.Flag{cmdutil.OutputFlag()},
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			return run(c.Context, &Options{IO: f.IO, Connect: f.Connector(), Now: f.Now, Output: format})
		},
	}
}

type teamJSON struct {
	Team string `json:"team"`
	Role string `json:"role"`
}

type principalJSON struct {
	Name            string     `json:"name"`
	Kind            string     `json:"kind"`
	SystemAdmin     bool       `json:"system_admin"`
	Teams           []teamJSON `json:"teams"`
	TokenID         string     `json:"token_id,omitempty"`
	TokenExpireTime string     `json:"token_expire_time,omitempty"`
}

func run(ctx context.Context, opts *Options) error {
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := conn.Directory.GetCaller(ctx, &scopev1.GetCallerRequest{})
	if err != nil {
		return err
	}
	p := resp.GetPrincipal()
	out := principalJSON{
		Name:        p.GetName(),
		Kind:        cmdutil.Kind(p.GetKind()),
		SystemAdmin: p.GetSystemAdmin(),
		Teams:       []teamJSON{},
		TokenID:     p.GetTokenId(),
	}
	for _, t := range p.GetTeams() {
		out.Teams = append(out.Teams, teamJSON{Team: t.GetTeam(), Role: cmdutil.Role(t.GetRole())})
	}
	if p.GetTokenExpireTime() != nil {
		out.TokenExpireTime = p.GetTokenExpireTime().AsTime().UTC().Format(time.RFC3339)
	}
	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.IO.Out, out)
	}

	tw := tabwriter.NewWriter(opts.IO.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\t%s\n", out.Name)
	fmt.Fprintf(tw, "KIND\t%s\n", out.Kind)
	if out.SystemAdmin {
		fmt.Fprintf(tw, "SYSTEM ADMIN\tyes\n")
	}
	var teams []string
	for _, t := range out.Teams {
		teams = append(teams, t.Team+" ("+t.Role+")")
	}
	if len(teams) == 0 {
		teams = []string{"-"}
	}
	fmt.Fprintf(tw, "TEAMS\t%s\n", strings.Join(teams, ", "))
	if out.TokenID != "" {
		expires := "never"
		if p.GetTokenExpireTime() != nil {
			expires = timefmt.Date(p.GetTokenExpireTime().AsTime(), opts.Now().Location(), opts.IO.StdoutTTY)
		}
		fmt.Fprintf(tw, "TOKEN\t%s (expires %s)\n", out.TokenID, expires)
	}
	return tw.Flush()
}
