// Package configcmd implements `oz config`: show and set the settings in
// the CLI's config file.
package configcmd

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/config"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// NewCmd returns the `oz config` command group.
func NewCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "Show or change the CLI's settings",
		Description: `Settings live in a JSON file (oz config show prints its path) with the keys
addr, ca_file, token, token_file and team. The environment variables OZ_ADDR,
OZ_CA_FILE, OZ_TOKEN, OZ_TOKEN_FILE and OZ_TEAM override them; OZ_CONFIG
overrides the file's path. The token is OZ_TOKEN, else OZ_TOKEN_FILE's
content, else the file's token, else the content of its token_file; the
global flag --token-file FILE wins over all of them.

Example:
   oz config set team acme
   oz config show`,
		Subcommands: []*cli.Command{newSetCmd(f), newShowCmd(f)},
	}
}

// SetOptions are the inputs of `oz config set`.
type SetOptions struct {
	IO       *iostreams.IOStreams
	Prompter iostreams.Prompter
	Path     string
	Key      string
	Value    string
	HasValue bool // false: read the value (token only)
}

func newSetCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "Set a key in the config file (an empty VALUE removes it)",
		ArgsUsage: "KEY [VALUE]",
		Description: `KEY is addr, ca_file, token, token_file or team. For token, leave out VALUE to be asked
for it without echo (or to read it from standard input; "-" too), so that it
does not end up in your shell history.

Example, point oz at a gateway and store a token without echoing it:
   oz config set addr oz.example.internal:7443
   oz config set token`,
		Flags: []cli.Flag{cmdutil.QuietFlag()},
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) == 0 || len(args) > 2 {
				return exitcode.Usagef("usage: oz config set KEY [VALUE] (keys: addr, ca_file, token, token_file, team)")
			}
			path, err := f.ConfigPath()
			if err != nil {
				return err
			}
			opts := &SetOptions{IO: cmdutil.Quiet(c, f.IO), Prompter: f.Prompter, Path: path, Key: args[0]}
			if len(args) == 2 && !(args[0] == "token" && args[1] == "-") {
				opts.Value, opts.HasValue = args[1], true
			}
			return runSet(c.Context, opts)
		},
	}
}

func runSet(ctx context.Context, opts *SetOptions) error {
	file, err := config.Load(opts.Path)
	if err != nil {
		return err
	}
	value := opts.Value
	if !opts.HasValue {
		if opts.Key != "token" {
			return exitcode.Usagef("missing VALUE for %s", opts.Key)
		}
		b, err := cmdutil.ReadValue(ctx, opts.IO, opts.Prompter, "", "token")
		if err != nil {
			return err
		}
		value = string(b)
	}
	if err := file.Set(opts.Key, value); err != nil {
		return exitcode.Usagef("%v", err)
	}
	if err := config.Save(opts.Path, file); err != nil {
		return err
	}
	cmdutil.Successf(opts.IO, "Set %s in %s", opts.Key, opts.Path)
	return nil
}

// ShowOptions are the inputs of `oz config show`.
type ShowOptions struct {
	IO     *iostreams.IOStreams
	Path   string
	Getenv func(string) string
	Output cmdutil.Format
}

func newShowCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "show",
		Usage: "Show the effective settings and where each comes from (the token masked)",
		Description: `Example:
   oz config show`,
		Flags: []cli.Flag{cmdutil.OutputFlag()},
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			path, err := f.ConfigPath()
			if err != nil {
				return err
			}
			return runShow(&ShowOptions{IO: f.IO, Path: path, Getenv: f.Getenv, Output: format})
		},
	}
}

type settingJSON struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source,omitempty"`
}

type showJSON struct {
	Path     string        `json:"path"`
	Settings []settingJSON `json:"settings"`
}

func runShow(opts *ShowOptions) error {
	file, err := config.Load(opts.Path)
	if err != nil {
		return err
	}
	s := config.Resolve(file, opts.Getenv)
	out := showJSON{Path: opts.Path}
	for _, k := range config.Keys() {
		v := s.Get(k)
		if k == "token" {
			v = config.MaskToken(v)
		}
		out.Settings = append(out.Settings, settingJSON{Key: k, Value: v, Source: s.Source[k]})
	}
	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.IO.Out, out)
	}
	fmt.Fprintf(opts.IO.Out, "config file: %s\n\n", opts.Path)
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
	for _, st := range out.Settings {
		v, src := st.Value, st.Source
		if v == "" {
			v, src = "-", "unset"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", st.Key, v, src)
	}
	return tw.Flush()
}
