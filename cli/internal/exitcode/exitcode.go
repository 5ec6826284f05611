// Package exitcode is the one place that defines the exit codes of oz and
// turns errors into them. Everything that ends the process goes through
// Describe.
package exitcode

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The exit codes of oz. They are part of its interface: scripts depend on
// them, so they never change meaning.
const (
	OK          = 0   // success
	Error       = 1   // any other error
	Usage       = 2   // bad command line or invalid input
	NotFound    = 3   // the thing does not exist
	Denied      = 4   // not authenticated, or not allowed
	Unavailable = 5   // gateway or service unreachable, or the deadline passed
	Conflict    = 6   // already exists, or a precondition (etag) failed
	Strict      = 7   // oz exec --strict: unresolved secret references, command not started
	Tampered    = 8   // oz audit verify: the audit chain is broken
	Exhausted   = 9   // a store's disk is full, or too many failed attempts: retry later
	Interrupted = 130 // interrupted (Ctrl-C)
)

// Code is one exit code and what it means, for help text and the README.
type Code struct {
	Code    int
	Meaning string
}

// Table lists every exit code oz uses, in order.
var Table = []Code{
	{OK, "success"},
	{Error, "other error"},
	{Usage, "usage error or invalid input (bad flags or arguments, a field the server rejected)"},
	{NotFound, "not found"},
	{Denied, "permission denied or not authenticated (missing, expired or revoked token)"},
	{Unavailable, "unavailable: gateway or service unreachable, or deadline exceeded"},
	{Conflict, "conflict: already exists, or a failed precondition (etag mismatch)"},
	{Strict, "strict run: unresolved secret references (oz exec --strict; the command was not started)"},
	{Tampered, "audit chain broken: an event was changed, removed or reordered (oz audit verify)"},
	{Exhausted, "resource exhausted: a service's disk is full, or too many failed sign-ins from here; retry later"},
	{Interrupted, "interrupted"},
}

// Help renders Table for `oz --help` and the README.
func Help() string {
	var b strings.Builder
	b.WriteString("EXIT CODES:\n")
	for _, c := range Table {
		fmt.Fprintf(&b, "   %-3d  %s\n", c.Code, c.Meaning)
	}
	b.WriteString("   oz exec exits with COMMAND's own status (128+N when signal N ended it).\n")
	return b.String()
}

// FromGRPC maps a gRPC status code to an exit code.
func FromGRPC(c codes.Code) int {
	switch c {
	case codes.OK:
		return OK
	case codes.InvalidArgument, codes.OutOfRange:
		return Usage
	case codes.NotFound:
		return NotFound
	case codes.PermissionDenied, codes.Unauthenticated:
		return Denied
	case codes.Unavailable, codes.DeadlineExceeded:
		return Unavailable
	case codes.AlreadyExists, codes.FailedPrecondition, codes.Aborted:
		return Conflict
	case codes.ResourceExhausted:
		return Exhausted
	case codes.Canceled:
		return Interrupted
	default:
		return Error
	}
}

// Usagef returns a usage error: exit code Usage with the formatted message.
func Usagef(format string, args ...any) error {
	return cli.Exit(fmt.Sprintf(format, args...), Usage)
}

// New returns an error that exits with code and says msg.
func New(code int, msg string) error {
	return cli.Exit(msg, code)
}

// Silent returns an error that exits with code and prints nothing: the
// exit status of a command oz ran (oz exec), which speaks for itself on
// its own standard error. code must not be OK.
func Silent(code int) error { return silentError(code) }

// silentError is an exit code without a message. It is a cli.ExitCoder,
// so urfave/cli treats it like any exit error.
type silentError int

func (e silentError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
func (e silentError) ExitCode() int { return int(e) }

// Describe turns err into the lines to print (without the "oz: " prefix)
// and the exit code. A gRPC status gives its message, or one line
// "field: description" per google.rpc.BadRequest field violation; text
// wrapped around a status (fmt.Errorf("...: %w", st.Err())) is kept as a
// prefix of the first line. An error from Silent gives no lines.
func Describe(err error) (lines []string, code int) {
	if err == nil {
		return nil, OK
	}
	var silent silentError
	if errors.As(err, &silent) {
		return nil, silent.ExitCode()
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return splitLines(err.Error()), ec.ExitCode()
	}
	var se interface {
		error
		GRPCStatus() *status.Status
	}
	if errors.As(err, &se) {
		st := se.GRPCStatus()
		prefix := strings.TrimSuffix(err.Error(), se.Error())
		lines = statusLines(st)
		if prefix != err.Error() && prefix != "" {
			lines[0] = prefix + lines[0]
		}
		return lines, FromGRPC(st.Code())
	}
	if errors.Is(err, context.Canceled) {
		return []string{"interrupted"}, Interrupted
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return splitLines(err.Error()), Unavailable
	}
	return splitLines(err.Error()), Error
}

func statusLines(st *status.Status) []string {
	var lines []string
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			switch {
			case v.GetField() == "":
				lines = append(lines, v.GetDescription())
			default:
				lines = append(lines, v.GetField()+": "+v.GetDescription())
			}
		}
	}
	if len(lines) > 0 {
		return lines
	}
	msg := st.Message()
	if msg == "" {
		msg = strings.ToLower(st.Code().String())
	}
	return splitLines(msg)
}

func splitLines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return []string{"error"}
	}
	return strings.Split(s, "\n")
}
