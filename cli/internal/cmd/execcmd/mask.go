package execcmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/mask"
)

// MaskOptions are the inputs of `oz mask`.
type MaskOptions struct {
	IO       *iostreams.IOStreams
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
	FromEnv  []string
	FromFile []string
}

// NewMaskCmd returns `oz mask`.
func NewMaskCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "mask",
		Usage:     "Copy standard input to standard output with secret values replaced by ***",
		UsageText: "oz mask [--from-env NAME...] [--from-file PATH...] < IN > OUT",
		Description: `oz mask masks a stream as oz exec masks a command's output: every value,
each line of a multi-line value, and the value's base64, hex, percent-encoded,
JSON- and \x-escaped forms, in any letter case, become ***. The values come from environment variables
(--from-env) and files (--from-file, the whole file is one value). Values
shorter than 4 bytes are not masked; oz says which.

Example, keep an agent's transcript without the tokens it was given:
   oz mask --from-env GITHUB_TOKEN --from-file ~/.npmrc < transcript > transcript.masked
   agent-transcript | oz mask --from-env GITHUB_TOKEN --from-env NPM_TOKEN > log`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "from-env", Usage: "mask the value of the environment variable `NAME` (repeatable)"},
			&cli.StringSliceFlag{Name: "from-file", Usage: "mask the content of the file `PATH` (repeatable)"},
		},
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			return RunMask(c.Context, &MaskOptions{
				IO:       f.IO,
				Getenv:   f.Getenv,
				ReadFile: os.ReadFile,
				FromEnv:  c.StringSlice("from-env"),
				FromFile: c.StringSlice("from-file"),
			})
		},
	}
}

// RunMask copies standard input to standard output, masked, until the end
// of the input or until ctx is done.
func RunMask(ctx context.Context, opts *MaskOptions) error {
	if len(opts.FromEnv) == 0 && len(opts.FromFile) == 0 {
		return exitcode.Usagef("nothing to mask: give --from-env NAME or --from-file PATH")
	}
	var values [][]byte
	var short []string
	for _, name := range opts.FromEnv {
		v := opts.Getenv(name)
		if v == "" {
			return exitcode.Usagef("--from-env: $%s is not set", name)
		}
		values = append(values, []byte(v))
		if len(v) < mask.MinLen {
			short = append(short, "$"+name)
		}
	}
	for _, path := range opts.FromFile {
		v, err := opts.ReadFile(path)
		if err != nil {
			return exitcode.Usagef("--from-file: %v", err)
		}
		if len(v) == 0 {
			return exitcode.Usagef("--from-file: %s is empty", path)
		}
		values = append(values, v)
		if len(v) < mask.MinLen {
			short = append(short, path)
		}
	}
	if len(short) > 0 {
		fmt.Fprintf(opts.IO.ErrOut, "oz: not masked (shorter than %d bytes): %s\n", mask.MinLen, strings.Join(short, ", "))
	}

	w := mask.New(opts.IO.Out, values)
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(w, opts.IO.In)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("mask: %w", err)
		}
		return nil
	case <-ctx.Done():
		// The copy may be blocked reading; the process is ending anyway.
		return ctx.Err()
	}
}
