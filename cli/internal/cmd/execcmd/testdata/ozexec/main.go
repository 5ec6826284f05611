// Command ozexec is oz, built from the root command as cmd/oz is, for the
// tests of package execcmd: they run exec and mask as real processes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/cmd/root"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := root.Run(ctx, cmdutil.System(), "test", os.Args)
	stop()
	os.Exit(code)
}
