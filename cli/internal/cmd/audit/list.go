package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/timefmt"
)

// DefaultListLimit is how many events `oz audit list` shows without
// --limit.
const DefaultListLimit = 50

// ListOptions are the inputs of `oz audit list`.
type ListOptions struct {
	Deps
	Since, Until string // a duration back from now ("24h", "7d") or a time
	Actor        string
	Action       string
	Resource     string
	RunID        string
	Outcome      string
	Limit        int // most events shown; 0: all
	Output       cmdutil.Format
}

func newListCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "List a team's audit events, newest first",
		Description: `--since and --until take a duration back from now (90m, 24h, 7d) or a time
(2026-05-04, 2026-05-04T15:04, RFC 3339). --action takes an action
(secret.create) or a prefix (secret.*). --actor takes a name (users/alice) or
an id (alice).

Example, who changed a secret in the last week:
   oz audit list --team acme --since 7d --resource teams/acme/secrets/API_KEY`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "since", Usage: "events at or after `WHEN` (a duration like 24h or 7d, or a time)"},
			&cli.StringFlag{Name: "until", Usage: "events before `WHEN`"},
			&cli.StringFlag{Name: "actor", Usage: "events of `ACTOR` (users/alice, alice, runners/ci)"},
			&cli.StringFlag{Name: "action", Usage: "events of `ACTION` (secret.create) or a prefix (secret.*)"},
			&cli.StringFlag{Name: "resource", Usage: "events about `RESOURCE` (teams/acme/secrets/API_KEY)"},
			&cli.StringFlag{Name: "run", Usage: "events of run `RUN_ID`"},
			&cli.StringFlag{Name: "outcome", Usage: "events with `OUTCOME`: ok, denied or failed"},
			&cli.IntFlag{Name: "limit", Value: DefaultListLimit, Usage: "show at most `N` events (0: all)"},
			cmdutil.OutputFlag(),
		}, chainFlags()...),
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			d, err := depsOf(f, c)
			if err != nil {
				return err
			}
			return runList(c.Context, &ListOptions{
				Deps: d, Since: c.String("since"), Until: c.String("until"),
				Actor: c.String("actor"), Action: c.String("action"), Resource: c.String("resource"),
				RunID: c.String("run"), Outcome: c.String("outcome"), Limit: c.Int("limit"), Output: format,
			})
		},
	}
}

func runList(ctx context.Context, opts *ListOptions) error {
	now := opts.Now()
	req := &auditv1.ListEventsRequest{Actor: opts.Actor, Action: opts.Action, Resource: opts.Resource, RunId: opts.RunID}
	if opts.Limit < 0 {
		return exitcode.Usagef("--limit: must not be negative")
	}
	var err error
	if req.Outcome, err = parseOutcome(opts.Outcome); err != nil {
		return err
	}
	if opts.Since != "" {
		t, err := ParseWhen(opts.Since, now)
		if err != nil {
			return exitcode.Usagef("--since: %v", err)
		}
		req.StartTime = timestamppb.New(t)
	}
	if opts.Until != "" {
		t, err := ParseWhen(opts.Until, now)
		if err != nil {
			return exitcode.Usagef("--until: %v", err)
		}
		req.EndTime = timestamppb.New(t)
	}
	conn, parent, err := opts.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	req.Parent = parent

	// Each page is printed as it arrives (cmdutil.Table, JSONArray): the
	// memory held is one page's, whatever the number of events.
	var (
		jsonOut *cmdutil.JSONArray
		table   *cmdutil.Table
		shown   int
		loc     = now.Location()
	)
	if opts.Output == cmdutil.FormatJSON {
		jsonOut = cmdutil.NewJSONArray(opts.IO.Out)
	}
	for {
		req.PageSize = listPageSize
		if opts.Limit > 0 {
			req.PageSize = int32(min(opts.Limit-shown, listPageSize))
		}
		resp, err := conn.Audit.ListEvents(ctx, req)
		if err != nil {
			return err
		}
		events := resp.GetEvents()
		if opts.Limit > 0 && len(events) > opts.Limit-shown {
			events = events[:opts.Limit-shown]
		}
		for _, ev := range events {
			if jsonOut != nil {
				b, err := eventJSON.Marshal(ev)
				if err != nil {
					return err
				}
				if err := jsonOut.Add(json.RawMessage(b)); err != nil {
					return err
				}
				continue
			}
			if table == nil {
				table = cmdutil.NewTable(opts.IO.Out)
				table.Row("TIME", "ACTOR", "ACTION", "RESOURCE", "OUTCOME")
			}
			actor := cmdutil.OrDash(ev.GetActor().GetName())
			if c := ev.GetActor().GetClient(); c != "" {
				actor += " (" + c + ")"
			}
			table.Row(timefmt.Precise(ev.GetTime().AsTime(), loc, opts.IO.StdoutTTY), actor,
				ev.GetAction(), cmdutil.OrDash(ev.GetResource()), outcomeName(ev.GetOutcome()))
		}
		shown += len(events)
		switch {
		case jsonOut != nil:
			err = jsonOut.Flush()
		case table != nil:
			err = table.Flush()
		}
		if err != nil {
			return err
		}
		if resp.GetNextPageToken() == "" || opts.Limit > 0 && shown >= opts.Limit {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}

	if jsonOut != nil {
		return jsonOut.Close()
	}
	if table == nil {
		if opts.IO.StderrTTY {
			fmt.Fprintln(opts.IO.ErrOut, "No audit events.")
		}
		return nil
	}
	return table.Close()
}

// listPageSize is the page size asked of the audit service: its largest.
const listPageSize = 1000

// ParseWhen parses --since and --until: a duration back from now ("90m",
// "24h", "7d", "2w"), or a time: RFC 3339, "2006-01-02T15:04", or a date
// "2006-01-02" (midnight), the last two in now's location.
func ParseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if n, unit, ok := cutDays(s); ok {
		return now.Add(-time.Duration(n) * unit), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("a duration back from now must not be negative (got %q)", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("want a duration (90m, 24h, 7d) or a time (2026-05-04, 2026-05-04T15:04, RFC 3339), got %q", s)
}

// cutDays parses "7d" and "2w", which time.ParseDuration does not know.
func cutDays(s string) (int, time.Duration, bool) {
	if len(s) < 2 {
		return 0, 0, false
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'd':
		unit = 24 * time.Hour
	case 'w':
		unit = 7 * 24 * time.Hour
	default:
		return 0, 0, false
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n < 0 {
		return 0, 0, false
	}
	return n, unit, true
}
