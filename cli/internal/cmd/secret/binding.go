package secret

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ozsecrets/oz/lib/hostbind"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// The flags that bind a secret to hosts (DESIGN §5.6).
const (
	bindHostFlag   = "bind-host"
	unbindHostFlag = "unbind-host"
	noBindFlag     = "no-bind"
	bindQueryFlag  = "bind-query"
	bindBodyFlag   = "bind-body"
)

// bindingHelp is what binding does, for the commands' --help: two
// sentences, then what a host pattern is.
const bindingHelp = `A secret bound to hosts (--bind-host) is never given to the agent: its
variable holds a placeholder (oz-ph-...). The runner's egress proxy writes
the value into HTTPS requests to the bound hosts only, and refuses and
audits a request that carries the placeholder anywhere else.

A host pattern is a name ("api.openai.com") or "*." and a name
("*.example.com": any name below it, never example.com itself), without a
port; --bind-host is repeatable, or takes a comma-separated list.
`

// bindFlags are the binding flags of create (update adds its own).
func bindFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: bindHostFlag, Usage: "bind the secret to host `PATTERN` (repeatable, or comma-separated): the agent gets a placeholder, only requests to these hosts get the value"},
		&cli.BoolFlag{Name: bindQueryFlag, Usage: "with --bind-host: also replace the placeholder in the query string, not only in headers"},
		&cli.BoolFlag{Name: bindBodyFlag, Usage: "with --bind-host: also replace the placeholder in the request body, not only in headers"},
	}
}

// BindingChange is what the command line says of a secret's binding.
type BindingChange struct {
	BindHosts   []string // --bind-host: add these patterns
	UnbindHosts []string // --unbind-host (update): remove these patterns
	NoBind      bool     // --no-bind (update): not bound at all

	SetQuery, Query bool // --bind-query[=BOOL] was given, and its value
	SetBody, Body   bool // --bind-body[=BOOL] was given, and its value
}

// bindingChangeFrom reads the binding flags of c.
func bindingChangeFrom(c *cli.Context) BindingChange {
	return BindingChange{
		BindHosts:   c.StringSlice(bindHostFlag),
		UnbindHosts: c.StringSlice(unbindHostFlag),
		NoBind:      c.Bool(noBindFlag),
		SetQuery:    c.IsSet(bindQueryFlag),
		Query:       c.Bool(bindQueryFlag),
		SetBody:     c.IsSet(bindBodyFlag),
		Body:        c.Bool(bindBodyFlag),
	}
}

// Changes reports whether b changes the binding at all.
func (b BindingChange) Changes() bool {
	return len(b.BindHosts) > 0 || len(b.UnbindHosts) > 0 || b.NoBind || b.SetQuery || b.SetBody
}

// check refuses, before anything is sent, what no current binding can
// make right: --no-bind with another binding flag, an invalid --bind-host
// pattern, a host both bound and unbound. The server checks patterns
// again; this is for a fast, clear error.
func (b BindingChange) check() error {
	if b.NoBind {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{bindHostFlag, len(b.BindHosts) > 0}, {unbindHostFlag, len(b.UnbindHosts) > 0},
			{bindQueryFlag, b.SetQuery}, {bindBodyFlag, b.SetBody},
		} {
			if f.set {
				return exitcode.Usagef("--%s clears the binding to hosts: it cannot be combined with --%s", noBindFlag, f.name)
			}
		}
	}
	for _, h := range b.BindHosts {
		if err := hostbind.ValidatePattern(h); err != nil {
			return exitcode.Usagef("--%s: %v", bindHostFlag, err)
		}
	}
	for _, h := range b.BindHosts {
		if slices.ContainsFunc(b.UnbindHosts, func(u string) bool { return strings.EqualFold(u, h) }) {
			return exitcode.Usagef("--%s and --%s both name %s: give one", bindHostFlag, unbindHostFlag, h)
		}
	}
	return nil
}

// apply returns the binding of secret name after b, from cur (nil: not
// bound): cur's hosts in their order, less --unbind-host, then
// --bind-host; the flags as given, else as they were. The result is nil
// when no host is left. Errors are usage errors naming the flag.
func (b BindingChange) apply(name string, cur *secretsv1.HostBinding) (*secretsv1.HostBinding, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if b.NoBind {
		return nil, nil
	}
	hosts := slices.Clone(cur.GetHosts())
	for _, u := range b.UnbindHosts {
		i := slices.IndexFunc(hosts, func(h string) bool { return strings.EqualFold(h, u) })
		switch {
		case i < 0 && len(cur.GetHosts()) == 0:
			return nil, exitcode.Usagef("--%s %s: %s is not bound to hosts", unbindHostFlag, u, name)
		case i < 0:
			return nil, exitcode.Usagef("--%s %s: %s is not bound to that host (bound to: %s)", unbindHostFlag, u, name, boundTo(cur))
		}
		hosts = slices.Delete(hosts, i, i+1)
	}
	hosts = append(hosts, b.BindHosts...)
	query, body := cur.GetAllowQuery(), cur.GetAllowBody()
	if b.SetQuery {
		query = b.Query
	}
	if b.SetBody {
		body = b.Body
	}
	if len(hosts) == 0 {
		for _, f := range []struct {
			name string
			on   bool
		}{{bindQueryFlag, b.SetQuery && b.Query}, {bindBodyFlag, b.SetBody && b.Body}} {
			if f.on {
				return nil, exitcode.Usagef("--%s applies to a secret bound to hosts, and %s would not be: add --%s", f.name, name, bindHostFlag)
			}
		}
		return nil, nil
	}
	hosts, err := hostbind.Normalize(hosts)
	if err != nil {
		return nil, exitcode.Usagef("--%s: %v", bindHostFlag, err)
	}
	return &secretsv1.HostBinding{Hosts: hosts, AllowQuery: query, AllowBody: body}, nil
}

// checkBoundValue refuses, before it is sent, a value that cannot be
// bound to hosts, when binding binds it. The error names the secret,
// never the value.
func checkBoundValue(name string, binding *secretsv1.HostBinding, value []byte) error {
	if len(binding.GetHosts()) == 0 {
		return nil
	}
	if err := hostbind.ValidateValue(value); err != nil {
		return exitcode.Usagef("the value of %s %v", name, err)
	}
	return nil
}

// boundTo is a binding for people and tables: its patterns joined by
// commas (the form --bind-host takes), then "+query" and "+body" when
// the placeholder is replaced there too; "-" when not bound.
func boundTo(b *secretsv1.HostBinding) string {
	if len(b.GetHosts()) == 0 {
		return "-"
	}
	s := cmdutil.Text(strings.Join(b.GetHosts(), ","))
	if b.GetAllowQuery() {
		s += " +query"
	}
	if b.GetAllowBody() {
		s += " +body"
	}
	return s
}

// sameBinding reports whether a and b bind the same way.
func sameBinding(a, b *secretsv1.HostBinding) bool {
	return hostbind.FromProto(a).Equal(hostbind.FromProto(b))
}
