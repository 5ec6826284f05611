// Command ozexec is oz with the exec and mask commands, for the tests of
// package execcmd until the root command registers them. It runs exactly
// as root.Run does.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/cmd/execcmd"
	"github.com/ozsecrets/oz/cli/internal/cmd/root"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	f := cmdutil.System()
	app := root.NewApp(f, "test")
	have := map[string]bool{}
	for _, c := range app.Commands {
		have[c.Name] = true
	}
	for _, c := range execcmd.Commands(f) {
		if !have[c.Name] { // already registered by root once the lead wires them
			// As root's prepare does.
			c.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
				return exitcode.Usagef("%s", err.Error())
			}
			app.Commands = append(app.Commands, c)
		}
	}
	err := app.RunContext(ctx, root.Interspersed(app, os.Args))
	stop()
	lines, code := exitcode.Describe(err)
	if err != nil {
		for _, l := range lines {
			fmt.Fprintln(f.IO.ErrOut, "oz: "+l)
		}
	}
	os.Exit(code)
}
