package cmdutil

import (
	"fmt"
	"strings"

	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// longName is the length past which a secret name looks pasted: names
// are words (DEPLOY_TOKEN, STRIPE_API_KEY), values are long.
const longName = 64

// randomRun is the length of a run of letters and digits (no _) mixing
// both, past which a name looks generated: AKIAIOSFODNN7EXAMPLE, ghp_…
const randomRun = 16

// ValueLike says why name looks like a secret value rather than the name
// of an environment variable ("" when it looks like a name). A value given
// where a name was expected (`oz secret update --team --value hunter2`
// takes hunter2 as NAME: --value is a switch) would be sent, stored in
// audit events and shown in lists as a name. The reason never quotes
// name, since it may be that value.
func ValueLike(name string) string {
	if len(name) > longName {
		return fmt.Sprintf("it is longer than names are (more than %d characters)", longName)
	}
	// Not envname.Syntax: a leading digit makes a name invalid (the
	// server says so) but not a value.
	if strings.TrimLeft(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != "" {
		return "it has characters names never have (a name is letters, digits and _)"
	}
	if strings.ToUpper(name) != name {
		return "it is not UPPER_SNAKE_CASE"
	}
	for _, run := range strings.Split(name, "_") {
		if len(run) >= randomRun && strings.ContainsAny(run, "0123456789") && strings.ContainsAny(run, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			return "it has a long run of mixed letters and digits, like a generated key"
		}
	}
	return ""
}

// WarnValueLike warns on standard error, without repeating name, when the
// argument what (NAME) looks like a value (ValueLike). It only warns: a
// name that is odd but wanted still works.
func WarnValueLike(ios *iostreams.IOStreams, what, name string) {
	reason := ValueLike(name)
	if reason == "" {
		return
	}
	fmt.Fprintf(ios.ErrOut, "warning: %s does not look like a secret name: %s. If it is a value, it was taken as the name; "+
		"a value comes from a hidden prompt, standard input or --value-file, never from the command line\n", what, reason)
}
