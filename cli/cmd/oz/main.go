// Command oz is the command-line client of oz secrets.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/cmd/root"
	"github.com/ozsecrets/oz/cli/internal/runner"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	// Before anything reads a credential (OZ_TOKEN is in this process's
	// environment from its start): a process of the same user — the agent
	// oz exec starts — may not read oz's memory or /proc/PID/environ, nor
	// attach to it. The command oz exec starts is not affected.
	if err := runner.Harden(); err != nil {
		fmt.Fprintf(os.Stderr, "oz: cannot protect this process's memory: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := root.Run(ctx, cmdutil.System(), version, os.Args)
	stop()
	os.Exit(code)
}
