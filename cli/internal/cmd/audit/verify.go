package audit

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// VerifyOptions are the inputs of `oz audit verify`.
type VerifyOptions struct {
	Deps
	// File is an export to verify offline ("-": standard input); empty:
	// ask the server to verify the chain.
	File   string
	Output cmdutil.Format
}

func newVerifyCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "Verify a team's audit hash chain, on the server or offline over an export",
		Description: `Without --file, the audit service recomputes the team's chain from its first
event to its head and names the first broken link: an event changed, removed
or moved. With --file, an export ('oz audit export') is verified here, without
the server, by the same code.

Both print the chain's head (seq and hash). Write it down: an export that
verifies but ends before a head recorded earlier has lost its last events.

Exits 0 when the chain verifies, 8 when a link is broken.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "file", Usage: "verify the export in `FILE` offline (\"-\": standard input)"},
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
			return runVerify(c.Context, &VerifyOptions{Deps: d, File: c.String("file"), Output: format})
		},
	}
}

// verifyResult is what verify prints with --output json.
type verifyResult struct {
	Chain          string `json:"chain"`
	Source         string `json:"source"` // "server" or the file
	Valid          bool   `json:"valid"`
	VerifiedEvents int64  `json:"verified_events"`
	// Head is the chain's head as stored (server), or the export's last
	// verified event (file).
	Head       headJSON   `json:"head"`
	FirstBreak *breakJSON `json:"first_break,omitempty"`
}

type breakJSON struct {
	Seq     int64  `json:"seq"`
	EventID string `json:"event_id,omitempty"`
	Reason  string `json:"reason"`
}

func runVerify(ctx context.Context, opts *VerifyOptions) error {
	var res verifyResult
	if opts.File != "" {
		r, err := verifyFile(opts)
		if err != nil {
			return err
		}
		res = *r
	} else {
		conn, parent, err := opts.connect(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		resp, err := conn.Audit.VerifyChain(ctx, &auditv1.VerifyChainRequest{Parent: parent})
		if err != nil {
			return err
		}
		res = verifyResult{
			Chain: parent, Source: "server", Valid: resp.GetValid(), VerifiedEvents: resp.GetVerifiedEvents(),
			Head: newHeadJSON(resp.GetHead().GetSeq(), resp.GetHead().GetHash()),
		}
		if b := resp.GetFirstBreak(); b != nil {
			res.FirstBreak = &breakJSON{Seq: b.GetSeq(), EventID: b.GetEventId(), Reason: b.GetReason()}
		}
	}
	return report(opts, res)
}

func verifyFile(opts *VerifyOptions) (*verifyResult, error) {
	var r io.Reader = opts.IO.In
	if opts.File != "-" {
		f, err := os.Open(opts.File)
		if err != nil {
			return nil, exitcode.Usagef("--file: %v", err)
		}
		defer f.Close()
		r = f
	}
	rep, err := auditchain.VerifyExport(r)
	if err != nil {
		return nil, err
	}
	res := &verifyResult{
		Chain: rep.Chain, Source: opts.File, Valid: rep.Break == nil, VerifiedEvents: rep.Verified,
		Head: newHeadJSON(rep.Head.Seq, rep.Head.Hash),
	}
	if b := rep.Break; b != nil {
		res.FirstBreak = &breakJSON{Seq: b.Seq, EventID: b.EventID, Reason: b.Reason}
	}
	return res, nil
}

// report prints the result and turns a broken chain into exit code 8.
func report(opts *VerifyOptions, res verifyResult) error {
	chainName := res.Chain
	if chainName == "" {
		chainName = "(empty export)"
	}
	if opts.Output == cmdutil.FormatJSON {
		if err := cmdutil.WriteJSON(opts.IO.Out, res); err != nil {
			return err
		}
	} else if res.Valid {
		fmt.Fprintf(opts.IO.Out, "%s: %d events verified\nhead: seq %d hash %s\n", chainName, res.VerifiedEvents, res.Head.Seq, orNone(res.Head.Hash))
	} else {
		fmt.Fprintf(opts.IO.Out, "%s: BROKEN after %d verified events\n", chainName, res.VerifiedEvents)
	}
	if b := res.FirstBreak; b != nil {
		where := fmt.Sprintf("seq %d", b.Seq)
		if b.EventID != "" {
			where += " (event " + b.EventID + ")"
		}
		return exitcode.New(exitcode.Tampered, fmt.Sprintf("audit chain %s is broken at %s: %s", chainName, where, b.Reason))
	}
	return nil
}

func orNone(hash string) string {
	if hash == "" {
		return "(none)"
	}
	return hash
}
