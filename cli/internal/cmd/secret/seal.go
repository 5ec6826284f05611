package secret

import (
	"context"
	"encoding/json"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// SealOptions are the inputs of `oz secret seal`.
type SealOptions struct {
	IO       *iostreams.IOStreams
	Prompter iostreams.Prompter
	Connect  func(context.Context) (*client.Conn, error)

	Scope     cmdutil.Scope
	Team      string
	Name      string
	ValueFile string
}

func newSealCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "seal",
		Usage:     "Seal a value for one secret and print it as JSON, for REST clients (curl)",
		ArgsUsage: "NAME",
		Description: `Seals the value to the server's sealing key, for the secret NAME of the team
(--team) or of you (--personal) only, and prints one line of JSON:

  {"keyId":"…","ciphertext":"<base64>"}

It is the "sealedValue" of a REST create or update of that secret:

  curl … -d "{\"secretId\":\"API_KEY\",\"sealedValue\":$(oz secret seal --team API_KEY)}" \
    https://$OZ_ADDR/v1/teams/acme/secrets

Nothing is stored. The blob opens only for that secret, and only until the key
it was sealed to expires after a rotation (oz admin sealing-key list).

Example:
   oz secret seal --team API_KEY < api-key.txt > sealed.json`,
		Flags: append(cmdutil.ScopeFlags(),
			&cli.StringFlag{Name: cmdutil.ValueFileFlag, Usage: "read the value from `FILE` (exact bytes; - is standard input)"},
			useTeamFlag(),
		),
		Action: func(c *cli.Context) error {
			name, scope, team, err := secretArgs(f, c)
			if err != nil {
				return err
			}
			return runSeal(c.Context, &SealOptions{
				IO:        f.IO,
				Prompter:  f.Prompter,
				Connect:   f.Connector(),
				Scope:     scope,
				Team:      team,
				Name:      name,
				ValueFile: c.String(cmdutil.ValueFileFlag),
			})
		},
	}
}

// sealedJSON is the REST (protojson) form of oz.secrets.v1.SealedValue.
// encoding/json writes it on one line, and []byte as standard base64,
// which is how protojson reads bytes.
type sealedJSON struct {
	KeyID      string `json:"keyId"`
	Ciphertext []byte `json:"ciphertext"`
}

func runSeal(ctx context.Context, opts *SealOptions) error {
	if err := cmdutil.CheckName("NAME", opts.Name); err != nil {
		return err
	}
	conn, team, err := connectScope(ctx, opts.Connect, opts.Scope, opts.Team)
	if err != nil {
		return err
	}
	defer conn.Close()
	sealed, value, err := readSealed(ctx, conn, opts.IO, opts.Prompter, opts.Scope, team, opts.Name, opts.ValueFile)
	if err != nil {
		return err
	}
	clear(value)
	return json.NewEncoder(opts.IO.Out).Encode(sealedJSON{KeyID: sealed.GetKeyId(), Ciphertext: sealed.GetCiphertext()})
}
