package admin

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// TokenCreateOptions are the inputs of `oz admin token create`.
type TokenCreateOptions struct {
	Deps
	User string // "me" is the caller; ignored with Agent
	// Agent, when set, binds the token to the agent identity Agent of
	// team Team (empty: the caller's only team) instead of a user.
	Agent       string
	Team        string
	Expires     time.Duration // 0: the longest the resolver allows
	Description string
}

func newTokenCreateCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "Create a bearer token and print it (only it) on standard output",
		UsageText: "oz admin token create [--user NAME | --agent NAME [--team TEAM]] [--expires DURATION] [-d TEXT]",
		Description: `The token is shown once: only its hash is stored. Keep it in a secret store or
pass it on directly, e.g.: OZ_TOKEN=$(oz admin token create --user alice --expires 30d)

Lifetimes: a token lives at most 90 days (the resolver's --max-token-lifetime);
without --expires it gets the longest allowed. A token you make for yourself
expires no later than the token you make it with, and is revoked with it.
A longer --expires is refused, naming the bound.

With --agent the token belongs to an agent identity of the team (team admins):
runs started with it execute as that identity. Deleting the identity revokes it.
The team is --team TEAM, else --use-team, $OZ_TEAM, the config file's team, or
your only team.

Examples:
   oz admin token create --expires 30d > ~/.oz-token
   oz admin token create --user bob --expires 12h
   oz admin token create --agent deployer --team acme`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "user", Value: "me", Usage: "the user `NAME` the token authenticates"},
			&cli.StringFlag{Name: "agent", Usage: "bind the token to the agent identity `NAME` instead of a user"},
			&cli.StringFlag{Name: cmdutil.TeamFlag, Usage: "the `TEAM` of the agent identity (with --agent)"},
			&cli.StringFlag{Name: "expires", Usage: "lifetime `DURATION`, e.g. 30d, 12h, 90m (default: the longest allowed; see above)"},
			&cli.StringFlag{Name: "description", Aliases: []string{"d"}, Usage: "what the token is for, as `TEXT`"},
		},
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			ttl, err := ParseExpires(c.String("expires"))
			if err != nil {
				return err
			}
			opts := &TokenCreateOptions{
				Deps: depsOf(f), User: c.String("user"), Agent: c.String("agent"), Expires: ttl, Description: c.String("description"),
			}
			switch {
			case opts.Agent != "" && c.IsSet("user"):
				return exitcode.Usagef("--user and --agent: give one (a token is a user's or an agent identity's)")
			case opts.Agent == "" && c.IsSet(cmdutil.TeamFlag):
				return exitcode.Usagef("--team: only with --agent (a user's token is not bound to a team)")
			case opts.Agent != "":
				if opts.Team, err = f.CommandTeam(c); err != nil {
					return err
				}
			}
			return runTokenCreate(c.Context, opts)
		},
	}
}

// ParseExpires parses --expires: a Go duration ("12h", "90m", "1h30m"),
// optionally led by whole days ("30d", "1d12h"). Empty means never; the
// duration must be positive.
func ParseExpires(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	bad := func() (time.Duration, error) {
		return 0, exitcode.Usagef("--expires: want a positive duration like 30d, 12h or 90m (got %q)", s)
	}
	rest := s
	var d time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		days, err := strconv.Atoi(s[:i])
		if err != nil || days < 0 || days > 100*365 {
			return bad()
		}
		d = time.Duration(days) * 24 * time.Hour
		rest = s[i+1:]
	}
	if rest != "" {
		if strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
			return bad()
		}
		r, err := time.ParseDuration(rest)
		if err != nil {
			return bad()
		}
		d += r
	}
	if d <= 0 {
		return bad()
	}
	return d, nil
}

func runTokenCreate(ctx context.Context, opts *TokenCreateOptions) error {
	user := strings.TrimPrefix(opts.User, "users/")
	if opts.Agent != "" {
		if err := cmdutil.CheckName("--agent", opts.Agent); err != nil {
			return err
		}
	} else if err := cmdutil.CheckName("--user", user); err != nil {
		return err
	}
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	principal := "users/" + user
	if opts.Agent != "" {
		team, err := cmdutil.ResolveTeamFlag(ctx, conn.Directory, opts.Team)
		if err != nil {
			return err
		}
		principal = "teams/" + team + "/agents/" + opts.Agent
	}
	req := &scopev1.CreateTokenRequest{Principal: principal, Description: opts.Description}
	if opts.Expires > 0 {
		req.Ttl = durationpb.New(opts.Expires)
	}
	resp, err := conn.Tokens.CreateToken(ctx, req)
	if err != nil {
		return err
	}
	if resp.GetBearerToken() == "" {
		return fmt.Errorf("the server returned no token")
	}
	// Only the token on standard output, so that it can be captured.
	fmt.Fprintln(opts.IO.Out, resp.GetBearerToken())
	if opts.IO.StderrTTY {
		fmt.Fprintf(opts.IO.ErrOut, "Token %s for %s. It is shown only once.\n", resp.GetToken().GetTokenId(), cmp.Or(resp.GetToken().GetPrincipal(), principal))
	}
	return nil
}
