package admin

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/timefmt"
	"github.com/ozsecrets/oz/lib/sealwire"
)

// newSealingKeyCmd returns `oz admin sealing-key`: the secretstore's HPKE
// keys that values are sealed to before they are sent.
func newSealingKeyCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "sealing-key",
		Usage: "Show and rotate the keys values are sealed to before they are sent",
		Description: `The secretstore publishes one current sealing key per KEM: ML-KEM-768+X25519
(used by oz) and X25519 (used by browsers). After a rotation the previous keys
still open values sealed to them until they expire (the secretstore's
--sealing-key-grace, 24h by default); then they are dropped.

Examples:
   oz admin sealing-key list
   oz admin sealing-key rotate`,
		Subcommands: []*cli.Command{
			newSealingKeyListCmd(f),
			newSealingKeyRotateCmd(f),
		},
	}
}

// SealingKeyOptions are the inputs of `oz admin sealing-key list` and
// `rotate`.
type SealingKeyOptions struct {
	Deps
	Now    func() time.Time
	Output cmdutil.Format
}

func newSealingKeyListCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "List the sealing keys: the current ones, and previous ones still opening values",
		Description: `Examples:
   oz admin sealing-key list
   oz admin sealing-key list --output json`,
		Flags: []cli.Flag{cmdutil.OutputFlag()},
		Action: func(c *cli.Context) error {
			opts, err := sealingKeyOptions(c, f)
			if err != nil {
				return err
			}
			return runSealingKeyList(c.Context, opts)
		},
	}
}

func newSealingKeyRotateCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "rotate",
		Usage: "Make new current sealing keys (system admins); the previous ones open values until they expire",
		Description: `Example:
   oz admin sealing-key rotate`,
		Flags: []cli.Flag{cmdutil.OutputFlag()},
		Action: func(c *cli.Context) error {
			opts, err := sealingKeyOptions(c, f)
			if err != nil {
				return err
			}
			return runSealingKeyRotate(c.Context, opts)
		},
	}
}

func sealingKeyOptions(c *cli.Context, f *cmdutil.Factory) (*SealingKeyOptions, error) {
	if _, err := cmdutil.Args(c); err != nil {
		return nil, err
	}
	format, err := cmdutil.OutputFormat(c)
	if err != nil {
		return nil, err
	}
	return &SealingKeyOptions{Deps: depsOf(f), Now: f.Now, Output: format}, nil
}

func runSealingKeyList(ctx context.Context, opts *SealingKeyOptions) error {
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := conn.SealingKeys.ListSealingKeys(ctx, &secretsv1.ListSealingKeysRequest{})
	if err != nil {
		return err
	}
	return writeSealingKeys(opts, resp.GetKeys())
}

func runSealingKeyRotate(ctx context.Context, opts *SealingKeyOptions) error {
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := conn.SealingKeys.RotateSealingKeys(ctx, &secretsv1.RotateSealingKeysRequest{})
	if err != nil {
		return err
	}
	cmdutil.Successf(opts.IO, "Rotated the sealing keys; values sealed to the previous ones still open until they expire.")
	return writeSealingKeys(opts, resp.GetKeys())
}

type sealingKeyItem struct {
	KeyID     string `json:"key_id"`
	KEM       string `json:"kem"`
	KEMID     uint32 `json:"kem_id"`
	KDFID     uint32 `json:"kdf_id"`
	AEADID    uint32 `json:"aead_id"`
	PublicKey []byte `json:"public_key"` // base64
	Current   bool   `json:"current"`
	CreatedAt string `json:"created_at,omitempty"`
	ExpiresAt string `json:"expires_at,omitempty"`
}

func writeSealingKeys(opts *SealingKeyOptions, keys []*secretsv1.SealingKey) error {
	if opts.Output == cmdutil.FormatJSON {
		items := make([]sealingKeyItem, 0, len(keys))
		for _, k := range keys {
			items = append(items, sealingKeyItem{
				KeyID:     k.GetKeyId(),
				KEM:       kemName(k.GetKemId()),
				KEMID:     k.GetKemId(),
				KDFID:     k.GetKdfId(),
				AEADID:    k.GetAeadId(),
				PublicKey: k.GetPublicKey(),
				Current:   k.GetCurrent(),
				CreatedAt: cmdutil.RFC3339(k.GetCreateTime()),
				ExpiresAt: cmdutil.RFC3339(k.GetExpireTime()),
			})
		}
		return cmdutil.WriteJSON(opts.IO.Out, items)
	}
	loc := opts.Now().Location()
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY ID\tKEM\tSTATE\tCREATED")
	for _, k := range keys {
		state := "current"
		if !k.GetCurrent() {
			state = "previous, opens until " + timefmt.Date(k.GetExpireTime().AsTime(), loc, opts.IO.StdoutTTY)
		}
		created := "-"
		if k.GetCreateTime() != nil {
			created = timefmt.Date(k.GetCreateTime().AsTime(), loc, opts.IO.StdoutTTY)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.GetKeyId(), kemName(k.GetKemId()), state, created)
	}
	return tw.Flush()
}

// kemName names an HPKE KEM for people.
func kemName(id uint32) string {
	switch id {
	case uint32(sealwire.KEMX25519):
		return "X25519"
	case uint32(sealwire.KEMMLKEM768X25519):
		return "ML-KEM-768+X25519"
	}
	return fmt.Sprintf("0x%04x", id)
}
