package run

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// The bounds of --expires: the server's are 0 (its default) to 1 hour.
const (
	minExpires = time.Second
	maxExpires = time.Hour
)

// StartOptions are the inputs of `oz run start`.
type StartOptions struct {
	cmdutil.TeamDeps
	// Trigger is unspecified unless given: the server then takes the
	// client's (cli for a person) or, for an integration, its own. User
	// empty is the caller, for a person.
	runContext
	Expires time.Duration // how long the ticket waits; 0: the server's default (10m)
	RunID   string        // empty: the server makes one
	Output  cmdutil.Format
}

func newStartCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "start",
		Usage: "Start a run and print its start ticket (only it) on standard output",
		UsageText: "oz run start [--trigger TRIGGER] [--user USER] [--agent NAME] [--environment NAME]\n" +
			"   [--secret NAME... | --no-secrets] [--strict] [--expires DURATION] [--run-id ID] [--team TEAM]\n" +
			"   [--output table|json]",
		Description: `A run is started by whom its trigger speaks for, not by the runner: oz run
start fixes the run's context and returns a start ticket, single-use and
short-lived, that a runner redeems once (oz exec --ticket-env VAR) to resolve
the run. The runner may narrow the context, never widen it.

Who may start what:
   a member        runs for themselves (trigger cli, the default; web, api)
   an agent token  user-less runs (--trigger schedule or integration) executing as its identity
   an integration  runs of its own trigger (the default); for slack and linear
                   only on behalf of a member (--user) who allowed it (oz integration allow)
An agent identity whose start policy is admins admits only the team's admins.

Only the ticket goes to standard output; on a terminal, standard error says
the run id and when the ticket expires. --output json prints
{"ticket", "run_id", "expire_time"}.

Example:
   TICKET=$(oz run start --agent deployer --environment ops-tools --expires 30m)
   # hand $TICKET to the runner, which runs:
   oz exec --ticket-env TICKET -- python agent.py`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "trigger", Usage: "what starts the run (`TRIGGER`): " + strings.Join(cmdutil.TriggerNames(), ", ") + " (default: cli for a person, its own for an integration; an agent token gives schedule or integration)"},
			&cli.StringFlag{Name: "user", Usage: "for an integration: the member `USER` the run is on behalf of (they must have allowed it)"},
			&cli.StringFlag{Name: "agent", Usage: "the agent identity `NAME` to execute as"},
			&cli.StringFlag{Name: "environment", Usage: "the environment `NAME` whose secret names are the default allowlist"},
			&cli.StringSliceFlag{Name: "secret", Usage: "the run's own allowlist: secret `NAME` (repeatable)"},
			&cli.BoolFlag{Name: "no-secrets", Usage: "the run's own allowlist is empty: nothing is injected"},
			&cli.BoolFlag{Name: "strict", Usage: "fail the run, injecting nothing, if a secret reference is unresolved"},
			&cli.StringFlag{Name: "expires", Usage: "how long the ticket waits for a runner: a `DURATION` from 1s to 1h, e.g. 30m (default: 10m)"},
			&cli.StringFlag{Name: "run-id", Usage: "the run's `ID` (default: one the server makes)"},
			cmdutil.OutputFlag(),
		}, cmdutil.TeamFlags()...),
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			rc, err := runContextOf(c, false)
			if err != nil {
				return err
			}
			opts := &StartOptions{runContext: rc, RunID: c.String("run-id")}
			if c.IsSet("expires") {
				if opts.Expires, err = ParseTicketExpires(c.String("expires")); err != nil {
					return err
				}
			}
			if opts.Output, err = cmdutil.OutputFormat(c); err != nil {
				return err
			}
			if opts.TeamDeps, err = f.TeamDeps(c); err != nil {
				return err
			}
			return runStart(c.Context, opts)
		},
	}
}

// ParseTicketExpires parses --expires of `oz run start`: a Go duration
// ("10m", "90s", "1h") from 1s to 1h.
func ParseTicketExpires(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < minExpires || d > maxExpires {
		return 0, exitcode.Usagef("--expires: want a duration from %s to %s, like 10m or 90s (got %q)", minExpires, "1h", s)
	}
	return d, nil
}

// Started is `oz run start --output json`.
type Started struct {
	Ticket     string `json:"ticket"`
	RunID      string `json:"run_id"`
	ExpireTime string `json:"expire_time"`
}

func runStart(ctx context.Context, opts *StartOptions) error {
	if err := cmdutil.CheckSecretNames("--secret", opts.Secrets); err != nil {
		return err
	}
	if opts.Expires != 0 && (opts.Expires < minExpires || opts.Expires > maxExpires) {
		return exitcode.Usagef("--expires: want a duration from %s to %s (got %s)", minExpires, "1h", opts.Expires)
	}
	rc := opts.runContext.proto()
	conn, team, err := opts.ConnectTeam(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	req := &scopev1.StartRunRequest{Parent: "teams/" + team, Context: rc, RunId: opts.RunID}
	if opts.Expires > 0 {
		req.Ttl = durationpb.New(opts.Expires)
	}
	resp, err := conn.Runs.StartRun(ctx, req)
	if err != nil {
		return err
	}
	ticket := resp.GetTicket()
	if ticket == "" {
		return fmt.Errorf("the server returned no ticket")
	}
	runID := cmp.Or(resp.GetRunId(), resp.GetRun().GetRunId(), opts.RunID)
	expire := cmp.Or(resp.GetExpireTime(), resp.GetRun().GetTicketExpireTime())
	if opts.Output == cmdutil.FormatJSON {
		if err := cmdutil.WriteJSON(opts.IO.Out, Started{Ticket: ticket, RunID: runID, ExpireTime: cmdutil.RFC3339(expire)}); err != nil {
			return err
		}
	} else {
		// Only the ticket on standard output, so that it can be captured.
		fmt.Fprintln(opts.IO.Out, ticket)
	}
	if opts.IO.StderrTTY {
		when := "-"
		if expire != nil {
			when = at(expire, opts.Now, true) + " (in " + shortDuration(expire.AsTime().Sub(opts.Now())) + ")"
		}
		fmt.Fprintf(opts.IO.ErrOut, "Run %s (team %s) started; its ticket expires %s.\n", cmdutil.OrDash(runID), team, when)
		fmt.Fprintln(opts.IO.ErrOut, "A runner redeems it once, with the ticket in $VAR: oz exec --ticket-env VAR -- COMMAND")
	}
	return nil
}
