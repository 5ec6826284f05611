package root

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/lib/version"
)

// versionCmd is `oz version`: the line `oz --version` prints, then the
// whole build (commit, its time, the Go release) for bug reports.
func versionCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "Print oz's version, the commit it was built from and the Go release",
		Description: `The first line is what oz --version prints.

Example:
   oz version`,
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			fmt.Fprintf(f.IO.Out, "%s version %s\n", c.App.Name, c.App.Version)
			fmt.Fprintf(f.IO.Out, "build: %s\n", version.Get())
			return nil
		},
	}
}
