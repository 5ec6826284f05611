package admin

import (
	"context"
	"strings"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// TokenRevokeOptions are the inputs of `oz admin token revoke`.
type TokenRevokeOptions struct {
	Deps
	TokenID string // with or without "tokens/"
}

func newTokenRevokeCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "revoke",
		Usage:     "Revoke a token, and the tokens issued from it for the same principal",
		ArgsUsage: "TOKEN_ID",
		Description: `The token stops working at once on every service that can be told (each
service's cache drops it before this command returns), and within 5 seconds at
most everywhere (a service that could not be told trusts its 5-second cache).

Tokens its holder made for themselves with it ("oz admin token create" with that
token) are revoked with it, and theirs in turn; each is its own token.revoke
event. Tokens it made for others (another user, an agent identity) are theirs
and keep working.

Example:
   oz admin token revoke t1a2b3c4`,
		Flags: []cli.Flag{cmdutil.QuietFlag()},
		Action: func(c *cli.Context) error {
			args, err := cmdutil.Args(c, "TOKEN_ID")
			if err != nil {
				return err
			}
			return runTokenRevoke(c.Context, &TokenRevokeOptions{Deps: quietDepsOf(f, c), TokenID: args[0]})
		},
	}
}

func runTokenRevoke(ctx context.Context, opts *TokenRevokeOptions) error {
	id := strings.TrimPrefix(opts.TokenID, "tokens/")
	if err := cmdutil.CheckName("TOKEN_ID", id); err != nil {
		return err
	}
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Tokens.RevokeToken(ctx, &scopev1.RevokeTokenRequest{Name: "tokens/" + id}); err != nil {
		return err
	}
	cmdutil.Successf(opts.IO, "Revoked token %s", id)
	return nil
}
