package audit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// ExportOptions are the inputs of `oz audit export`.
type ExportOptions struct {
	Deps
	// OutputFile receives the export; empty or "-": standard output.
	OutputFile string
	// PageSize is the events asked for per call; 0: the server's default.
	PageSize int
}

func newExportCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "Export a team's audit chain as JSON lines, for keeping and offline verification",
		Description: `Writes every event of the chain, oldest first, one JSON object per line (the
oz.audit.v1.Event message, with its seq, prev_hash and hash), and checks the
chain while writing. 'oz audit verify --file FILE' verifies the file later,
without the server.

With --output-file, the file is written with mode 0600 and appears only when
the export is complete. Exits 1 when the chain does not verify (the export is
still written: it is the evidence).

Example:
   oz audit export --team acme --output-file acme-audit.jsonl`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "output-file", Aliases: []string{"O"}, Usage: "write the export to `FILE` (default: standard output)"},
		}, chainFlags()...),
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			d, err := depsOf(f, c)
			if err != nil {
				return err
			}
			return runExport(c.Context, &ExportOptions{Deps: d, OutputFile: c.String("output-file")})
		},
	}
}

func runExport(ctx context.Context, opts *ExportOptions) (err error) {
	conn, parent, err := opts.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	var out io.Writer = opts.IO.Out
	toFile := opts.OutputFile != "" && opts.OutputFile != "-"
	var tmp *os.File
	if toFile {
		// Written beside the target and renamed at the end, so that a
		// failed export never leaves a partial file under its name.
		tmp, err = os.CreateTemp(filepath.Dir(opts.OutputFile), "."+filepath.Base(opts.OutputFile)+".*")
		if err != nil {
			return exitcode.Usagef("--output-file: %v", err)
		}
		defer func() {
			if tmp != nil {
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
		if err := tmp.Chmod(0o600); err != nil {
			return err
		}
		out = tmp
	}
	w := bufio.NewWriter(out)

	// A person at a terminal sees the count grow (a large chain takes a
	// while); the line is gone before anything else is printed.
	prog := opts.IO.Progress("exporting "+parent, "events")
	defer prog.Stop()
	now := opts.clock()
	start := now()
	// Each page is written out as it comes and then dropped; the verifier
	// keeps only the last head: memory does not grow with the chain.
	v := auditchain.NewVerifier()
	var n int64
	req := &auditv1.ExportEventsRequest{Parent: parent, PageSize: int32(opts.PageSize)}
	for {
		resp, err := conn.Audit.ExportEvents(ctx, req)
		if err != nil {
			return err
		}
		for _, ev := range resp.GetEvents() {
			line, err := auditchain.MarshalLine(ev)
			if err != nil {
				return err
			}
			if _, err := w.Write(line); err != nil {
				return fmt.Errorf("write export: %w", err)
			}
			_ = v.Check(ev) // the first break is kept; everything is written
			n++
			prog.Add(1)
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write export: %w", err)
	}
	prog.Stop()
	elapsed := now().Sub(start)
	if toFile {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("write export: %w", err)
		}
		if err := tmp.Close(); err != nil {
			return fmt.Errorf("write export: %w", err)
		}
		if err := os.Rename(tmp.Name(), opts.OutputFile); err != nil {
			return fmt.Errorf("write export: %w", err)
		}
		tmp = nil
	}

	if b := v.Break(); b != nil {
		return exitcode.New(exitcode.Error, fmt.Sprintf("exported %d events of %s, but the chain is broken: %v", n, parent, b))
	}
	if opts.IO.StderrTTY {
		where := "standard output"
		if toFile {
			where = opts.OutputFile
		}
		fmt.Fprintf(opts.IO.ErrOut, "Exported %d events of %s to %s in %.2fs (%s); the chain verifies.\nhead: seq %d hash %s\n",
			n, parent, where, elapsed.Seconds(), perSecond(n, elapsed), v.Head().Seq, orNone(newHeadJSON(v.Head().Seq, v.Head().Hash).Hash))
	}
	return nil
}

// perSecond shows n events over elapsed as a rate: "41000 events/s".
func perSecond(n int64, elapsed time.Duration) string {
	if elapsed <= 0 {
		return "- events/s"
	}
	return fmt.Sprintf("%.0f events/s", float64(n)/elapsed.Seconds())
}
