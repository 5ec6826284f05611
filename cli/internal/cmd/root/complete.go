package root

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// Shell completion is one mechanism for every shell: the script a shell
// loads (oz completion bash|zsh|fish) hands the words typed so far to the
// hidden command `oz __complete WORD... CURRENT`, which prints the
// candidates for CURRENT, one a line. urfave/cli's own completion
// (--generate-bash-completion) reads os.Args, has no fish script that
// completes at run time, and cannot complete a flag's value; this one
// walks the same command tree and asks the server for names.

// completeCmdName is the hidden command the scripts call.
const completeCmdName = "__complete"

// completeTimeout bounds the server calls of one completion: a shell
// waits for it at every Tab.
const completeTimeout = 2 * time.Second

// nameSource is what a flag's value or a command's argument names, which
// the server can list.
type nameSource int

const (
	noNames nameSource = iota
	teamNames
	agentNames
	environmentNames
	secretNames
)

// flagNames are the flags, in any command, whose value is a name the
// server knows.
var flagNames = map[string]nameSource{
	cmdutil.TeamFlag:    teamNames,
	cmdutil.UseTeamFlag: teamNames,
	"agent":             agentNames,
	"environment":       environmentNames,
	"secret":            secretNames,
	"add-secret":        secretNames,
	"remove-secret":     secretNames,
}

// argNames are the commands (by their path below oz) whose first argument
// is a name the server knows.
var argNames = map[string]nameSource{
	"secret update":      secretNames,
	"secret delete":      secretNames,
	"secret seal":        secretNames,
	"secret usage":       secretNames,
	"audit usage":        secretNames,
	"agent get":          agentNames,
	"agent update":       agentNames,
	"agent delete":       agentNames,
	"environment get":    environmentNames,
	"environment update": environmentNames,
	"environment delete": environmentNames,
}

func completionCmds(f *cmdutil.Factory) []*cli.Command {
	return []*cli.Command{
		{
			Name:      "completion",
			Usage:     "Print the shell completion script for bash, zsh or fish",
			ArgsUsage: "bash|zsh|fish",
			Description: `The script completes commands, flags and, from the server, the names of
secrets, agent identities, environments and teams (with your settings, within
2 seconds, nothing on any error).

Example, for the current bash session (add the line to ~/.bashrc to keep it):
   source <(oz completion bash)
Example, zsh (after compinit) and fish:
   source <(oz completion zsh)
   oz completion fish > ~/.config/fish/completions/oz.fish`,
			Action: func(c *cli.Context) error {
				args, err := cmdutil.Args(c, "SHELL")
				if err != nil {
					return err
				}
				script, ok := scripts[args[0]]
				if !ok {
					return exitcode.Usagef("unknown shell %q: must be bash, zsh or fish", args[0])
				}
				_, err = fmt.Fprint(f.IO.Out, script)
				return err
			},
		},
		{
			Name:            completeCmdName,
			Hidden:          true,
			SkipFlagParsing: true,
			Usage:           "Print the completions of the last word (for the completion scripts)",
			Description: `Example, what Tab offers after "oz secret delete D":
   oz __complete secret delete D`,
			Action: func(c *cli.Context) error {
				for _, w := range Complete(c.Context, f, c.App, c.Args().Slice()) {
					fmt.Fprintln(f.IO.Out, w)
				}
				return nil
			},
		},
	}
}

// Complete returns the candidates for the last of words (the words after
// "oz"; the last one is the word being typed, maybe empty) that start with
// it. Names from the server come with f's settings; any error gives none.
func Complete(ctx context.Context, f *cmdutil.Factory, app *cli.App, words []string) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, done := words[len(words)-1], words[:len(words)-1]
	flags, cmds := app.Flags, visible(app.Commands)
	var path []string
	var team string // --team or --use-team on the line
	nargs := 0
	for i := 0; i < len(done); i++ {
		w := done[i]
		if w == "--" {
			return nil // COMMAND [ARGS...] of oz exec: the shell's own
		}
		if isFlag(w) {
			name, value, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
			if !hasValue && i+1 < len(done) && done[i+1] == "=" {
				// bash splits --team=acme into "--team", "=", "acme"
				// (= is in COMP_WORDBREAKS): the value is the word after.
				i++
			}
			if !hasValue && takesValue(flags, w) {
				if i+1 == len(done) { // the value is cur
					return filter(serverNames(ctx, f, flagNames[name], team), cur)
				}
				i++
				value = done[i]
			}
			if name == cmdutil.TeamFlag || name == cmdutil.UseTeamFlag {
				team = value
			}
			continue
		}
		if cmd := find(cmds, w); cmd != nil && nargs == 0 {
			path = append(path, cmd.Name)
			flags, cmds = cmd.Flags, visible(cmd.Subcommands)
			continue
		}
		nargs++
	}
	if isFlag(cur) {
		if name, _, ok := strings.Cut(strings.TrimLeft(cur, "-"), "="); ok {
			prefix := cur[:strings.Index(cur, "=")+1]
			var out []string
			for _, n := range filter(serverNames(ctx, f, flagNames[name], team), cur[len(prefix):]) {
				out = append(out, prefix+n)
			}
			return out
		}
		return filter(flagWords(flags), cur)
	}
	if len(cmds) > 0 && nargs == 0 {
		var names []string
		for _, c := range cmds {
			names = append(names, c.Names()...)
		}
		return filter(names, cur)
	}
	if nargs == 0 {
		return filter(serverNames(ctx, f, argNames[strings.Join(path, " ")], team), cur)
	}
	return nil
}

// visible drops hidden commands and urfave/cli's help command.
func visible(cmds []*cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, c := range cmds {
		if !c.Hidden && c.Name != "help" {
			out = append(out, c)
		}
	}
	return out
}

// flagWords are the flags as typed: --name, -n.
func flagWords(flags []cli.Flag) []string {
	var out []string
	for _, fl := range flags {
		if vf, ok := fl.(cli.VisibleFlag); ok && !vf.IsVisible() {
			continue
		}
		for _, n := range fl.Names() {
			if len(n) == 1 {
				out = append(out, "-"+n)
			} else {
				out = append(out, "--"+n)
			}
		}
	}
	return append(out, "--help")
}

// filter returns the words that start with prefix, sorted, without
// duplicates.
func filter(words []string, prefix string) []string {
	var out []string
	for _, w := range words {
		if strings.HasPrefix(w, prefix) {
			out = append(out, w)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// serverNames lists the names of src with one call (two when the team
// must be found first), within completeTimeout; nothing on any error, as
// a shell shows no error at Tab.
func serverNames(ctx context.Context, f *cmdutil.Factory, src nameSource, team string) []string {
	if src == noNames {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	s, err := f.Settings()
	if err != nil {
		return nil
	}
	s.Retries = "0" // no second attempt: the shell is waiting
	dial := f.Dial
	if dial == nil {
		dial = client.Dial
	}
	conn, err := dial(s)
	if err != nil {
		return nil
	}
	defer conn.Close()
	if team == "" {
		team = s.Team
	}
	names, _ := list(ctx, conn, src, team)
	return names
}

func list(ctx context.Context, conn *client.Conn, src nameSource, team string) ([]string, error) {
	if src == teamNames {
		resp, err := conn.Directory.GetCaller(ctx, &scopev1.GetCallerRequest{})
		var names []string
		for _, t := range resp.GetPrincipal().GetTeams() {
			names = append(names, t.GetTeam())
		}
		return names, err
	}
	if src == secretNames { // the caller's secrets of every team, and personal ones
		resp, err := conn.Secrets.ListAvailableSecrets(ctx, &secretsv1.ListAvailableSecretsRequest{})
		var names []string
		for _, s := range resp.GetSecrets() {
			names = append(names, s.GetSecretId())
		}
		return names, err
	}
	team, err := cmdutil.ResolveTeamFlag(ctx, conn.Directory, team)
	if err != nil {
		return nil, err
	}
	parent := "teams/" + team
	var names []string
	switch src {
	case agentNames:
		resp, err := conn.Agents.ListAgents(ctx, &scopev1.ListAgentsRequest{Parent: parent})
		for _, a := range resp.GetAgents() {
			names = append(names, a.GetAgentId())
		}
		return names, err
	case environmentNames:
		resp, err := conn.Environments.ListEnvironments(ctx, &scopev1.ListEnvironmentsRequest{Parent: parent})
		for _, e := range resp.GetEnvironments() {
			names = append(names, e.GetEnvironmentId())
		}
		return names, err
	}
	return nil, nil
}
