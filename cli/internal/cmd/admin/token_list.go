package admin

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/timefmt"
)

// TokenListOptions are the inputs of `oz admin token list`.
type TokenListOptions struct {
	Deps
	Now    func() time.Time
	User   string // empty: every token (system admins)
	Output cmdutil.Format
}

func newTokenListCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "List tokens (never their secret part)",
		Description: `Examples:
   oz admin token list --user me
   oz admin token list --output json`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "user", Usage: "only the tokens of user `NAME` (\"me\" is you; default: every token, for system admins)"},
			cmdutil.OutputFlag(),
		},
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			return runTokenList(c.Context, &TokenListOptions{Deps: depsOf(f), Now: f.Now, User: c.String("user"), Output: format})
		},
	}
}

type tokenItem struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Principal   string `json:"principal"`
	Kind        string `json:"principal_kind"`
	Description string `json:"description,omitempty"`
	CreatedAt   string `json:"created_at,omitempty"`
	ExpiresAt   string `json:"expires_at,omitempty"`
	RevokedAt   string `json:"revoked_at,omitempty"`
	CreatedBy   string `json:"created_by,omitempty"`
}

func runTokenList(ctx context.Context, opts *TokenListOptions) error {
	principal := ""
	if opts.User != "" {
		user := strings.TrimPrefix(opts.User, "users/")
		if err := cmdutil.CheckName("--user", user); err != nil {
			return err
		}
		principal = "users/" + user
	}
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	tokens, err := cmdutil.AllPages(func(token string) ([]*scopev1.Token, string, error) {
		resp, err := conn.Tokens.ListTokens(ctx, &scopev1.ListTokensRequest{Principal: principal, PageToken: token})
		return resp.GetTokens(), resp.GetNextPageToken(), err
	})
	if err != nil {
		return err
	}

	if opts.Output == cmdutil.FormatJSON {
		items := make([]tokenItem, 0, len(tokens))
		for _, t := range tokens {
			items = append(items, tokenItem{
				ID:          tokenID(t),
				Name:        t.GetName(),
				Principal:   t.GetPrincipal(),
				Kind:        cmdutil.Kind(t.GetPrincipalKind()),
				Description: t.GetDescription(),
				CreatedAt:   rfc3339(t.GetCreateTime()),
				ExpiresAt:   rfc3339(t.GetExpireTime()),
				RevokedAt:   rfc3339(t.GetRevokeTime()),
				CreatedBy:   t.GetCreateBy(),
			})
		}
		return cmdutil.WriteJSON(opts.IO.Out, items)
	}
	if len(tokens) == 0 {
		if opts.IO.StderrTTY {
			fmt.Fprintln(opts.IO.ErrOut, "No tokens.")
		}
		return nil
	}
	loc := opts.Now().Location()
	at := func(ts *timestamppb.Timestamp, none string) string {
		if ts == nil {
			return none
		}
		return timefmt.Date(ts.AsTime(), loc, opts.IO.StdoutTTY)
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPRINCIPAL\tCREATED\tEXPIRES\tREVOKED")
	for _, t := range tokens {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", tokenID(t), t.GetPrincipal(),
			at(t.GetCreateTime(), "-"), at(t.GetExpireTime(), "never"), at(t.GetRevokeTime(), "-"))
	}
	return tw.Flush()
}

func tokenID(t *scopev1.Token) string {
	return cmp.Or(t.GetTokenId(), strings.TrimPrefix(t.GetName(), "tokens/"))
}

func rfc3339(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339Nano)
}
