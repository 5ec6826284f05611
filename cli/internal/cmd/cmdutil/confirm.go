package cmdutil

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// ForceFlag is the --force flag of delete commands.
func ForceFlag() cli.Flag {
	return &cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation (required when standard input is not a terminal)"}
}

// CanConfirm refuses a deletion of what that nobody can confirm: without
// --force, standard input must be a terminal. Call it before sending
// anything, so that a script that forgot --force changes nothing.
func CanConfirm(ios *iostreams.IOStreams, force bool, what string) error {
	if !force && !ios.StdinTTY {
		return exitcode.Usagef("refusing to delete %s without confirmation: standard input is not a terminal; pass --force", what)
	}
	return nil
}

// ConfirmDelete asks "Delete {what}{also}? [y/N]" unless force; also
// says what else happens (" and revoke its tokens"), or is empty. Anything
// but yes is an error (exit code Error) saying nothing was deleted.
func ConfirmDelete(ctx context.Context, p iostreams.Prompter, force bool, what, also string) error {
	if force {
		return nil
	}
	ok, err := p.Confirm(ctx, fmt.Sprintf("Delete %s%s? [y/N] ", what, also))
	if err != nil {
		return err
	}
	if !ok {
		return exitcode.New(exitcode.Error, fmt.Sprintf("cancelled: %s not deleted", what))
	}
	return nil
}

// RFC3339 renders ts for JSON output, in UTC; empty for none.
func RFC3339(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339Nano)
}

// OrDash returns s, or "-" when it is empty: a table cell for nothing.
func OrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
