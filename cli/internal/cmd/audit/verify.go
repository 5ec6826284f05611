package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// verifyTimeout bounds a verification on the server.
const verifyTimeout = 10 * time.Minute

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
Both print how long the verification took and its rate in events per
second (on the server: the call's duration, seen from here). Either reads
the chain a page or a line at a time, so memory does not grow with it.

On the server, the chain is also checked against the witnesses of the
services that emit its events (the secretstore, the resolver): each keeps,
in its own store, the last event of the chain the audit service
acknowledged to it. A log restored from an older copy, or replaced by a
shorter one that verifies on its own, lacks it: "the log went backwards".
A service that does not answer is reported, and its witness not checked.

Exits 0 when the chain verifies, 8 when a link is broken or the log went
backwards.

Example, on the server, then over an export:
   oz audit verify --team acme
   oz audit verify --file acme-audit.jsonl`,
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
	// Witnesses are the emitting services' witnesses (server only).
	Witnesses []witnessJSON `json:"witnesses,omitempty"`
	// Seconds is how long the verification took: on the server, the
	// VerifyChain call as this client saw it (the network included);
	// offline, reading and checking the file.
	Seconds float64 `json:"seconds"`
	// EventsPerSecond is VerifiedEvents / Seconds (0 when no time passed).
	EventsPerSecond float64 `json:"events_per_second"`
}

// clock is d.Now, or time.Now when unset: the clock rates are measured
// with.
func (d Deps) clock() func() time.Time {
	if d.Now == nil {
		return time.Now
	}
	return d.Now
}

// timed sets res's Seconds and EventsPerSecond from the time it took.
func (res *verifyResult) timed(elapsed time.Duration) {
	res.Seconds = elapsed.Seconds()
	if res.Seconds > 0 {
		res.EventsPerSecond = math.Round(float64(res.VerifiedEvents) / res.Seconds)
	}
}

// witnessJSON is one emitting service's witness of the chain, checked.
type witnessJSON struct {
	Emitter string `json:"emitter"`
	Seq     int64  `json:"seq"`
	Hash    string `json:"hash"` // hex; empty when it saw none
	// State is "held", "none", "log_shorter", "log_differs" or
	// "unavailable".
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

func newWitnessJSON(w *auditv1.ChainWitness) witnessJSON {
	return witnessJSON{
		Emitter: w.GetEmitter(), Seq: w.GetSeq(), Hash: hex.EncodeToString(w.GetHash()),
		State:  strings.ToLower(strings.TrimPrefix(w.GetState().String(), "WITNESS_STATE_")),
		Reason: w.GetReason(),
	}
}

// failed reports whether the log does not hold the witness.
func (w witnessJSON) failed() bool { return w.State == "log_shorter" || w.State == "log_differs" }

type breakJSON struct {
	Seq     int64  `json:"seq"`
	EventID string `json:"event_id,omitempty"`
	Reason  string `json:"reason"`
}

func runVerify(ctx context.Context, opts *VerifyOptions) error {
	var res verifyResult
	// The clock is the CLI's (opts.Now): the server reports how many
	// events it verified, not how long it took, so the rate includes the
	// network and the gateway — what a person waiting sees.
	now := opts.clock()
	start := now()
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
		// The server reads the whole chain: a person sees the time pass.
		prog := opts.IO.Progress("verifying "+parent+" on the server", "")
		// Longer than a call's default bound (client.DefaultTimeout): the
		// work grows with the chain (about 7 s a million events here), and
		// the gateway allows it as long (edge.LongCallTimeout).
		vctx, cancel := context.WithTimeout(ctx, verifyTimeout)
		resp, err := conn.Audit.VerifyChain(vctx, &auditv1.VerifyChainRequest{Parent: parent})
		cancel()
		prog.Stop()
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
		for _, w := range resp.GetWitnesses() {
			res.Witnesses = append(res.Witnesses, newWitnessJSON(w))
		}
	}
	res.timed(now().Sub(start))
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
	prog := opts.IO.Progress("verifying "+opts.File, "events")
	rep, err := auditchain.VerifyExport(lineCounter{r, prog})
	prog.Stop()
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
	} else {
		switch {
		case res.Valid:
			fmt.Fprintf(opts.IO.Out, "%s: %d events verified\nhead: seq %d hash %s\n", chainName, res.VerifiedEvents, res.Head.Seq, orNone(res.Head.Hash))
		case wentBackwards(res):
			fmt.Fprintf(opts.IO.Out, "%s: WENT BACKWARDS: %d events verified, but an emitting service saw more\nhead: seq %d hash %s\n",
				chainName, res.VerifiedEvents, res.Head.Seq, orNone(res.Head.Hash))
		default:
			fmt.Fprintf(opts.IO.Out, "%s: BROKEN after %d verified events\n", chainName, res.VerifiedEvents)
		}
		fmt.Fprintf(opts.IO.Out, "time: %.2fs (%.0f events/s)\n", res.Seconds, res.EventsPerSecond)
		for _, w := range res.Witnesses {
			fmt.Fprintln(opts.IO.Out, witnessLine(w))
		}
	}
	for _, w := range res.Witnesses {
		if w.State == "unavailable" {
			fmt.Fprintf(opts.IO.ErrOut, "warning: %s: %s; a log that went backwards past its events would not be noticed\n", chainName, w.Reason)
		}
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

// wentBackwards reports whether the links verified but a witness is not
// in the chain.
func wentBackwards(res verifyResult) bool {
	for _, w := range res.Witnesses {
		if w.failed() {
			return true
		}
	}
	return false
}

// witnessLine shows a witness for people: "witness: the secretstore saw
// seq 12 hash 3f2a…: held".
func witnessLine(w witnessJSON) string {
	saw := fmt.Sprintf("witness: the %s saw seq %d hash %s", w.Emitter, w.Seq, w.Hash)
	switch w.State {
	case "held":
		return saw + ": held"
	case "none":
		return fmt.Sprintf("witness: the %s saw no event of the chain", w.Emitter)
	case "unavailable":
		return "witness: " + w.Reason
	}
	return saw + ": NOT HELD: " + w.Reason
}

// lineCounter counts the lines read through it as events: an export has
// one event a line.
type lineCounter struct {
	r    io.Reader
	prog *iostreams.Progress
}

func (c lineCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.prog.Add(int64(bytes.Count(p[:n], []byte{'\n'})))
	return n, err
}

func orNone(hash string) string {
	if hash == "" {
		return "(none)"
	}
	return hash
}
