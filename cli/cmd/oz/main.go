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
	"github.com/ozsecrets/oz/lib/version"
)

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
	// The version is the build's own (module version, commit), read from
	// the build information go build embeds: no -ldflags to forget.
	code := root.Run(ctx, cmdutil.System(), version.Get().Short(), os.Args)
	stop()
	os.Exit(code)
}
