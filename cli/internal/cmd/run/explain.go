package run

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// ExplainOptions are the inputs of `oz run explain`.
type ExplainOptions struct {
	cmdutil.TeamDeps
	runContext // Trigger is required
	Output     cmdutil.Format
}

func newExplainCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "explain",
		Usage: "Say which secrets a run would receive, and why (no values)",
		UsageText: "oz run explain --trigger TRIGGER [--user USER] [--agent NAME] [--environment NAME]\n" +
			"   [--secret NAME... | --no-secrets] [--strict] [--team TEAM] [--output table|json]",
		Description: `oz run explain makes the decision a runner's oz exec would make for the same
context, without values: the identity the run executes as, where the
allowlist comes from, every candidate secret injected or excluded (and why),
unresolved references with their reasons, and whether a strict run would
fail. It changes nothing and records nothing.

Example, what a Slack-started run of alice as deployer would receive:
   oz run explain --trigger slack --user alice --agent deployer --environment ops-tools`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "trigger", Usage: "what starts the run (`TRIGGER`): " + strings.Join(cmdutil.TriggerNames(), ", ")},
			&cli.StringFlag{Name: "user", Usage: "the triggering `USER` (user-initiated triggers)"},
			&cli.StringFlag{Name: "agent", Usage: "the agent identity `NAME` to execute as"},
			&cli.StringFlag{Name: "environment", Usage: "the environment `NAME` whose secret names are the default allowlist"},
			&cli.StringSliceFlag{Name: "secret", Usage: "the run's own allowlist: secret `NAME` (repeatable)"},
			&cli.BoolFlag{Name: "no-secrets", Usage: "the run's own allowlist is empty: nothing is injected"},
			&cli.BoolFlag{Name: "strict", Usage: "explain a strict run (it fails on unresolved references)"},
			cmdutil.OutputFlag(),
		}, cmdutil.TeamFlags()...),
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			rc, err := runContextOf(c, true)
			if err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			d, err := f.TeamDeps(c)
			if err != nil {
				return err
			}
			return runExplain(c.Context, &ExplainOptions{TeamDeps: d, runContext: rc, Output: format})
		},
	}
}

// Candidate is one candidate secret's fate as --output json prints it.
type Candidate struct {
	Name         string `json:"name"`
	Scope        string `json:"scope"`
	Owner        string `json:"owner"`
	ValueVersion int64  `json:"value_version"`
	// "injected", "excluded_not_in_allowlist", "excluded_restricted",
	// "excluded_overridden", "excluded_reserved".
	Decision string `json:"decision"`
	Detail   string `json:"detail"`
	// Binding is the secret's binding to hosts; null when it has none.
	Binding *Binding `json:"binding"`
}

// Explanation is `oz run explain --output json`. Secrets is the run's own
// list as given: null for none, [] for --no-secrets.
type Explanation struct {
	Team            string       `json:"team"`
	Trigger         string       `json:"trigger"`
	User            string       `json:"user"`
	Agent           string       `json:"agent"`
	Environment     string       `json:"environment"`
	Secrets         []string     `json:"secrets"`
	Strict          bool         `json:"strict"`
	AllowlistSource string       `json:"allowlist_source"`
	Allowlist       []string     `json:"allowlist"`
	Candidates      []Candidate  `json:"candidates"`
	Unresolved      []Unresolved `json:"unresolved"`
	Notes           []string     `json:"notes"`
	WouldFailStrict bool         `json:"would_fail_strict"`
}

func runExplain(ctx context.Context, opts *ExplainOptions) error {
	if err := cmdutil.CheckSecretNames("--secret", opts.Secrets); err != nil {
		return err
	}
	rc := opts.runContext.proto()
	conn, team, err := opts.ConnectTeam(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := conn.Runs.ExplainRun(ctx, &scopev1.ExplainRunRequest{Parent: "teams/" + team, Context: rc})
	if err != nil {
		return err
	}
	ex := resp.GetExplanation()
	// The context as the server read it, else as sent.
	echo := ex.GetContext()
	if echo == nil {
		echo = rc
	}
	out := Explanation{
		Team:            team,
		Trigger:         cmdutil.TriggerName(cmp.Or(echo.GetTrigger(), rc.GetTrigger())),
		User:            echo.GetUser(),
		Agent:           cmp.Or(ex.GetAgent(), echo.GetAgent()),
		Environment:     echo.GetEnvironment(),
		Secrets:         secretList(echo.GetSecrets()),
		Strict:          echo.GetStrict(),
		AllowlistSource: cmdutil.AllowlistSourceKey(ex.GetAllowlistSource()),
		Allowlist:       append([]string{}, ex.GetAllowlist()...),
		Candidates:      []Candidate{},
		Unresolved:      unresolvedItems(ex.GetUnresolved()),
		Notes:           append([]string{}, ex.GetNotes()...),
		WouldFailStrict: ex.GetWouldFailStrict(),
	}
	for _, cd := range ex.GetCandidates() {
		out.Candidates = append(out.Candidates, Candidate{
			Name:         cd.GetSecretName(),
			Scope:        cmdutil.SecretScopeName(cd.GetScope()),
			Owner:        cd.GetOwner(),
			ValueVersion: cd.GetValueVersion(),
			Decision:     cmdutil.DecisionKey(cd.GetDecision()),
			Detail:       cd.GetDetail(),
			Binding:      bindingOf(cd.GetBinding()),
		})
	}
	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.IO.Out, out)
	}
	return writeExplanation(opts, out, ex)
}

func writeExplanation(opts *ExplainOptions, out Explanation, ex *scopev1.Explanation) error {
	w := opts.IO.Out
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "TEAM\t%s\n", out.Team)
	fmt.Fprintf(tw, "TRIGGER\t%s\n", out.Trigger)
	fmt.Fprintf(tw, "USER\t%s\n", cmdutil.OrDash(out.User))
	fmt.Fprintf(tw, "EXECUTES AS\t%s\n", agentText(out.Agent))
	fmt.Fprintf(tw, "ENVIRONMENT\t%s\n", cmdutil.OrDash(out.Environment))
	fmt.Fprintf(tw, "ALLOWLIST\t%s\n", allowlistText(ex.GetAllowlistSource(), out.Environment, out.Allowlist))
	fmt.Fprintf(tw, "STRICT\t%s\n", strictText(out))
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if len(out.Candidates) == 0 {
		fmt.Fprintln(w, "No candidate secrets.")
	} else {
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSCOPE\tDECISION\tDETAIL")
		for _, cd := range out.Candidates {
			decision := "excluded"
			if cd.Decision == "injected" {
				decision = "injected"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", displayName(cd.Name, false), cd.Scope, decision, decisionDetail(cd))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if err := writeUnresolved(w, out.Unresolved); err != nil {
		return err
	}
	if len(out.Notes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Notes:")
		for _, n := range out.Notes {
			fmt.Fprintln(w, "  "+n)
		}
	}
	return nil
}

func agentText(agent string) string {
	if agent == "" {
		return "-"
	}
	return "agent " + agent
}

func strictText(out Explanation) string {
	n := len(out.Unresolved)
	refs := fmt.Sprintf("%d unresolved reference", n)
	if n != 1 {
		refs += "s"
	}
	switch {
	case out.Strict && out.WouldFailStrict:
		return "yes: the run would fail (" + refs + "), nothing injected"
	case out.Strict:
		return "yes: the run would not fail"
	case out.WouldFailStrict:
		return "no (with --strict the run would fail: " + refs + ")"
	}
	return "no (with --strict the run would not fail)"
}

// decisionDetail says why, for people: the server's words, else the
// decision's own.
func decisionDetail(cd Candidate) string {
	if cd.Detail != "" {
		return cd.Detail
	}
	switch cd.Decision {
	case "excluded_not_in_allowlist":
		return "not in the allowlist"
	case "excluded_restricted":
		return "restricted to other agent identities"
	case "excluded_overridden":
		return "overridden by a personal secret of the same name"
	case "excluded_reserved":
		return "its name is reserved: never injected"
	case "injected":
		detail := "-"
		if cd.ValueVersion > 0 {
			detail = fmt.Sprintf("version %d", cd.ValueVersion)
		}
		if cd.Binding != nil {
			detail += ", as a placeholder: " + boundTo(cd.Binding)
		}
		return detail
	}
	return "-"
}
