package cmdutil

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/lib/termtext"
)

// Format is an output format: a table for people, JSON for machines.
type Format string

const (
	FormatTable Format = "table"
	FormatJSON  Format = "json"
)

// OutputFlag is the --output flag of list and get-like commands.
func OutputFlag() cli.Flag {
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: string(FormatTable), Usage: "output format: table or json"}
}

// OutputFormat returns the format chosen with --output, or a usage error.
func OutputFormat(c *cli.Context) (Format, error) {
	return ParseFormat(c.String("output"))
}

// ParseFormat parses an output format.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatTable, FormatJSON:
		return f, nil
	case "":
		return FormatTable, nil
	}
	return "", exitcode.Usagef("--output: must be table or json (got %q)", s)
}

// WriteJSON writes v as indented JSON and a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Successf tells a person at a terminal what was done. It prints nothing
// when standard output is not a terminal, so scripts see only data.
func Successf(ios *iostreams.IOStreams, format string, args ...any) {
	if ios.StdoutTTY {
		fmt.Fprintf(ios.Out, format+"\n", args...)
	}
}

// Text is free text written by people (a description, a display name) as
// a table or a detail row shows it: escape sequences, carriage returns,
// newlines, tabs and the like are written as Go escapes (\x1b, \r, \n), so
// that text stored before the services refused them cannot clear the
// reader's screen or fake a row (lib/termtext).
func Text(s string) string { return termtext.Escape(s) }

// QuietFlagName is the --quiet flag of commands that change something.
const QuietFlagName = "quiet"

// QuietFlag is --quiet (-q): print nothing on success. Commands that take
// it get their streams through Quiet (TeamDeps does it for them).
func QuietFlag() cli.Flag {
	return &cli.BoolFlag{Name: QuietFlagName, Aliases: []string{"q"}, Usage: "print nothing on success (errors still go to standard error)"}
}

// Quiet returns the streams of a command with QuietFlag: with --quiet, a
// copy whose standard output is discarded and not a terminal, so that
// neither Successf nor --output prints anything. Standard error stays as
// it is: errors, warnings and prompts still show, and exit codes do not
// change. Without --quiet (or the flag), ios itself.
func Quiet(c *cli.Context, ios *iostreams.IOStreams) *iostreams.IOStreams {
	if !c.Bool(QuietFlagName) {
		return ios
	}
	q := *ios
	q.Out, q.StdoutTTY = io.Discard, false
	return &q
}
