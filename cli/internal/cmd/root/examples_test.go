package root_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/cmd/root"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// example is the house convention for examples in --help: the command's
// Description has a paragraph starting "Example" ("Example:", "Example,
// rotate a team secret:") followed by an indented oz command line.
var example = regexp.MustCompile(`(?s)(^|\n)Examples?\b[^\n]*(\n[^\n]*)*?\n {3}oz \S`)

// Every command of the tree, group or leaf, shows at least one real
// example in its --help. The test lists all that do not.
func TestEveryCommandHasAnExample(t *testing.T) {
	ios, _, _, _ := iostreams.Test()
	app := root.NewApp(&cmdutil.Factory{IO: ios}, "test")
	var missing []string
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden || c.Name == "help" {
				continue
			}
			p := path + " " + c.Name
			if !example.MatchString(c.Description) {
				missing = append(missing, p)
			}
			walk(p, c.Subcommands)
		}
	}
	walk("oz", app.Commands)
	if len(missing) > 0 {
		t.Errorf("%d commands have no example in their --help (a Description paragraph \"Example:\" then \"   oz ...\"):\n  %s",
			len(missing), strings.Join(missing, "\n  "))
	}
}

// The pattern itself: what counts as an example and what does not.
func TestExamplePattern(t *testing.T) {
	for text, want := range map[string]bool{
		"Example:\n   oz secret list":                                                        true,
		"Some text.\n\nExample, rotate it:\n   oz secret update --team K":                    true,
		"Example, an identity that only admins\nstart runs as:\n   oz agent create deployer": true,
		"Lists the secrets.":              false,
		"Example:\n   secret list":        false,
		"Run oz secret list to see them.": false,
		"An example:\noz secret list":     false,
	} {
		if got := example.MatchString(text); got != want {
			t.Errorf("%q: got %v, want %v", text, got, want)
		}
	}
}
