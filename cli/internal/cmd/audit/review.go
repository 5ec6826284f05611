package audit

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/timefmt"
)

// Review thresholds, as the audit service defaults them.
const (
	defaultStaleDays  = 90
	defaultUnusedDays = 30
	maxReviewDays     = 36500
)

// notTracked is LAST INJECTED of a personal secret: the audit log counts a
// run's personal secrets, never names them, so it cannot say.
const notTracked = "—"

// ReviewOptions are the inputs of `oz secret review`.
type ReviewOptions struct {
	Deps
	StaleDays  int
	UnusedDays int
	Output     cmdutil.Format
}

// NewReviewCmd returns `review`: an access review of a team's secrets, for
// its admins. It is mounted as `oz secret review`.
func NewReviewCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "review",
		Usage: "Review a team's secrets: rotation, last use, who references them (team admins)",
		Description: `Lists every secret of the team with its value version, when its value last
changed (LAST UPDATED), when a run last received it (LAST INJECTED, from the
audit log), and the agent identities and environments that reference it.
Your own personal secrets are listed too; nobody else's are.

FLAGS says what to look at:
  stale       the value has not changed for --stale-days days: rotate it
  unused      no run received it for --unused-days days (or ever, and it is
              older than that): a candidate for deletion
  dangling    an agent identity or environment references the name, but the
              team has no such secret: runs get an unresolved reference
  restricted  agent identities reference it: only runs executing as one of
              them receive it

LAST INJECTED is "never" for a team secret no run received since it was
created, and "—" for personal secrets: the audit log records how many of a
run's personal secrets it received, never which.

Example, flag values older than 30 days:
   oz secret review --team acme --stale-days 30`,
		Flags: append([]cli.Flag{
			&cli.IntFlag{Name: "stale-days", Value: defaultStaleDays, Usage: "flag values unchanged for `N` days as stale"},
			&cli.IntFlag{Name: "unused-days", Value: defaultUnusedDays, Usage: "flag secrets no run received for `N` days as unused"},
			cmdutil.OutputFlag(),
		}, cmdutil.TeamFlags()...),
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			team, err := f.CommandTeam(c)
			if err != nil {
				return err
			}
			return runReview(c.Context, &ReviewOptions{
				Deps:      Deps{IO: f.IO, Connect: f.Connector(), Now: f.Now, Team: team},
				StaleDays: c.Int("stale-days"), UnusedDays: c.Int("unused-days"), Output: format,
			})
		},
	}
}

// reviewJSON is what review prints with --output json.
type reviewJSON struct {
	Team       string       `json:"team"`
	ReviewTime string       `json:"review_time"`
	StaleDays  int32        `json:"stale_days"`
	UnusedDays int32        `json:"unused_days"`
	Secrets    []reviewItem `json:"secrets"`
}

type reviewItem struct {
	Name           string `json:"name"`
	Scope          string `json:"scope"`
	ResourceName   string `json:"resource_name"`
	ValueVersion   int64  `json:"value_version"`
	CreatedAt      string `json:"created_at,omitempty"`
	ValueUpdatedAt string `json:"value_updated_at,omitempty"`
	// InjectionsTracked is false for personal secrets (and dangling names):
	// the audit log cannot say when a run last received them.
	InjectionsTracked bool     `json:"injections_tracked"`
	LastInjectedAt    string   `json:"last_injected_at,omitempty"`
	LastInjectedRun   string   `json:"last_injected_run,omitempty"`
	Agents            []string `json:"agents"`       // ids
	Environments      []string `json:"environments"` // ids
	Flags             []string `json:"flags"`
}

func checkDays(flag string, n int) error {
	if n < 1 || n > maxReviewDays {
		return exitcode.Usagef("--%s: must be from 1 to %d (got %d)", flag, maxReviewDays, n)
	}
	return nil
}

func runReview(ctx context.Context, opts *ReviewOptions) error {
	if err := checkDays("stale-days", opts.StaleDays); err != nil {
		return err
	}
	if err := checkDays("unused-days", opts.UnusedDays); err != nil {
		return err
	}
	conn, parent, err := opts.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// The server reads the team's audit log: a person sees the time pass.
	prog := opts.IO.Progress("reviewing "+parent, "")
	resp, err := conn.Audit.ReviewSecrets(ctx, &auditv1.ReviewSecretsRequest{
		Parent: parent, StaleDays: int32(opts.StaleDays), UnusedDays: int32(opts.UnusedDays),
	})
	prog.Stop()
	if err != nil {
		return err
	}
	team := strings.TrimPrefix(parent, "teams/")
	if opts.Output == cmdutil.FormatJSON {
		out := reviewJSON{
			Team: team, ReviewTime: cmdutil.RFC3339(resp.GetReviewTime()),
			StaleDays: resp.GetStaleDays(), UnusedDays: resp.GetUnusedDays(), Secrets: []reviewItem{},
		}
		for _, r := range resp.GetSecrets() {
			out.Secrets = append(out.Secrets, reviewItem{
				Name: r.GetSecretId(), Scope: scopeName(r.GetScope()), ResourceName: r.GetName(),
				ValueVersion: r.GetValueVersion(), CreatedAt: cmdutil.RFC3339(r.GetCreateTime()),
				ValueUpdatedAt: cmdutil.RFC3339(r.GetValueUpdateTime()), InjectionsTracked: r.GetInjectionsTracked(),
				LastInjectedAt: cmdutil.RFC3339(r.GetLastInjectTime()), LastInjectedRun: r.GetLastInjectRunId(),
				Agents: lastSegments(r.GetAgents()), Environments: lastSegments(r.GetEnvironments()),
				Flags: flagNames(r.GetFlags()),
			})
		}
		return cmdutil.WriteJSON(opts.IO.Out, out)
	}

	if len(resp.GetSecrets()) == 0 {
		if opts.IO.StderrTTY {
			fmt.Fprintf(opts.IO.ErrOut, "Team %s has no secrets, and nothing references one.\n", team)
		}
		return nil
	}
	now := opts.Now()
	counts := map[string]int{}
	untracked := false
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSCOPE\tVERSION\tLAST UPDATED\tLAST INJECTED\tREFERENCED BY\tFLAGS")
	for _, r := range resp.GetSecrets() {
		flags := flagNames(r.GetFlags())
		for _, fl := range flags {
			counts[fl]++
		}
		version, updated, injected := "-", "-", "-"
		if !slices.Contains(flags, "dangling") {
			version = fmt.Sprint(r.GetValueVersion())
			if ts := r.GetValueUpdateTime(); ts != nil {
				updated = timefmt.Cell(ts.AsTime(), now, opts.IO.StdoutTTY)
			}
			switch {
			case !r.GetInjectionsTracked():
				injected, untracked = notTracked, true
			case r.GetLastInjectTime() == nil:
				injected = "never"
			default:
				injected = timefmt.Cell(r.GetLastInjectTime().AsTime(), now, opts.IO.StdoutTTY)
			}
		}
		var refs []string
		for _, a := range lastSegments(r.GetAgents()) {
			refs = append(refs, "agent:"+a)
		}
		for _, e := range lastSegments(r.GetEnvironments()) {
			refs = append(refs, "env:"+e)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.GetSecretId(), scopeName(r.GetScope()), version, updated, injected,
			cmdutil.OrDash(strings.Join(refs, ",")), cmdutil.OrDash(strings.Join(flags, ",")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if opts.IO.StderrTTY {
		fmt.Fprintf(opts.IO.ErrOut, "\n%s: %d stale (value unchanged for %d days), %d unused (no run for %d days), %d dangling, %d restricted\n",
			team, counts["stale"], resp.GetStaleDays(), counts["unused"], resp.GetUnusedDays(), counts["dangling"], counts["restricted"])
		if untracked {
			fmt.Fprintln(opts.IO.ErrOut, notTracked+": not recorded: the audit log counts a run's personal secrets, never names them")
		}
	}
	return nil
}

func scopeName(s secretsv1.Scope) string {
	switch s {
	case secretsv1.Scope_SCOPE_TEAM:
		return "team"
	case secretsv1.Scope_SCOPE_PERSONAL:
		return "personal"
	}
	return "-"
}

// flagNames are a row's flags in lower case ("stale"), in the service's
// order.
func flagNames(flags []auditv1.ReviewFlag) []string {
	out := []string{}
	for _, f := range flags {
		if f == auditv1.ReviewFlag_REVIEW_FLAG_UNSPECIFIED {
			continue
		}
		out = append(out, strings.ToLower(strings.TrimPrefix(f.String(), "REVIEW_FLAG_")))
	}
	return out
}

// lastSegments maps resource names to their ids: "teams/acme/agents/deployer"
// → "deployer".
func lastSegments(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, n[strings.LastIndexByte(n, '/')+1:])
	}
	return out
}
