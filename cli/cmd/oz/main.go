// Command oz is the command-line client of oz secrets.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/cmd/root"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := root.Run(ctx, cmdutil.System(), version, os.Args)
	stop()
	os.Exit(code)
}
