// Package login implements `oz login`: it checks a token against the
// server and stores it, with the server's address and CA file when given,
// in the config file every command reads (oz config), readable by its
// owner only. The token is never printed or logged.
package login

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/config"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// Options are the inputs of `oz login`.
type Options struct {
	IO       *iostreams.IOStreams
	Prompter iostreams.Prompter
	Getenv   func(string) string
	// Dial connects with the settings to check (client.Dial).
	Dial func(config.Settings) (*client.Conn, error)
	// Path is the config file's path.
	Path string

	Addr   string // --addr: stored when given
	CAFile string // --ca-file: stored (absolute) when given
}

// NewCmd returns `oz login`.
func NewCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "login",
		Usage: "Check a token with the server and store it in the config file",
		Description: `Asks for the token with a hidden prompt on a terminal; otherwise reads one
line from standard input, so that a script can pipe it. The token is checked
with the server (as oz whoami) before anything is written: a refused token
changes nothing. It is stored in the config file (oz config show names it),
readable by you only, with --addr and --ca-file when given.

$OZ_TOKEN and --token-file still win over the stored token.

Examples:
   oz login --addr oz.example.com:443
   oz admin token create --expires 30d | oz login --addr 127.0.0.1:7443 --ca-file ./ca.pem`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Usage: "the gateway's `HOST:PORT` (stored; default: $OZ_ADDR, the config file's, or " + config.DefaultAddr + ")"},
			&cli.StringFlag{Name: "ca-file", Usage: "PEM `FILE` of the CA that signed the gateway's certificate (stored)"},
		},
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			path, err := f.ConfigPath()
			if err != nil {
				return err
			}
			dial := f.Dial
			if dial == nil {
				dial = client.Dial
			}
			return Run(c.Context, &Options{
				IO: f.IO, Prompter: f.Prompter, Getenv: f.Getenv, Dial: dial, Path: path,
				Addr: c.String("addr"), CAFile: c.String("ca-file"),
			})
		},
	}
}

// Run reads the token, checks it and stores it. Nothing is written unless
// the server accepts the token.
func Run(ctx context.Context, opts *Options) error {
	file, err := config.Load(opts.Path)
	if err != nil {
		return err
	}
	if opts.CAFile != "" {
		if opts.CAFile, err = filepath.Abs(opts.CAFile); err != nil {
			return exitcode.Usagef("--ca-file: %v", err)
		}
	}
	token, err := readToken(ctx, opts.IO, opts.Prompter)
	if err != nil {
		return err
	}

	// Check with the settings the stored file will give, but for what the
	// environment overrides.
	next := file
	next.Token, next.TokenFile = token, ""
	if opts.Addr != "" {
		next.Addr = opts.Addr
	}
	if opts.CAFile != "" {
		next.CAFile = opts.CAFile
	}
	s := config.Resolve(next, func(k string) string {
		if k == config.EnvToken || k == config.EnvTokenFile {
			return "" // the token being checked is the new one
		}
		if (k == config.EnvAddr && opts.Addr != "") || (k == config.EnvCAFile && opts.CAFile != "") {
			return "" // the flags name what is being logged in to
		}
		return opts.Getenv(k)
	})
	conn, err := opts.Dial(s)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := conn.Directory.GetCaller(ctx, &scopev1.GetCallerRequest{})
	if err != nil {
		return fmt.Errorf("check the token with %s: %w", s.Addr, err)
	}
	if err := config.Save(opts.Path, next); err != nil {
		return err
	}
	p := resp.GetPrincipal()
	fmt.Fprintf(opts.IO.ErrOut, "Logged in to %s as %s (%s); token stored in %s\n", s.Addr, p.GetName(), cmdutil.Kind(p.GetKind()), opts.Path)
	for _, env := range []string{config.EnvToken, config.EnvTokenFile} {
		if opts.Getenv(env) != "" {
			fmt.Fprintf(opts.IO.ErrOut, "warning: $%s is set: it wins over the stored token until you unset it\n", env)
		}
	}
	return nil
}

// readToken reads the token: a hidden prompt on a terminal, else the
// first line of standard input. Errors never hold it.
func readToken(ctx context.Context, ios *iostreams.IOStreams, p iostreams.Prompter) (string, error) {
	var b []byte
	if ios.StdinTTY {
		var err error
		if b, err = p.Password(ctx, "Token: "); err != nil {
			return "", err
		}
	} else {
		var err error
		if b, err = readLine(ios.In, config.MaxTokenFileSize); err != nil {
			return "", err
		}
	}
	switch tok := string(bytes.TrimSpace(b)); {
	case tok == "":
		return "", exitcode.Usagef("no token given: type it at the prompt, or pipe it on standard input (oz login < token-file)")
	case bytes.ContainsAny([]byte(tok), " \t\r\n"):
		return "", exitcode.Usagef("the token is one word without spaces: what was given is not a token")
	default:
		return tok, nil
	}
}

// readLine reads the first line of r without its newline, at most max
// bytes, one byte at a time: a pipe left open after the line does not
// keep oz waiting.
func readLine(r io.Reader, max int) ([]byte, error) {
	var line []byte
	buf := make([]byte, 1)
	for len(line) <= max {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return line, nil
			}
			line = append(line, buf[0])
		}
		if errors.Is(err, io.EOF) {
			return line, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read the token from standard input: %w", err)
		}
	}
	clear(line)
	return nil, exitcode.Usagef("standard input: more than %d bytes before a newline: not a token", max)
}
