package secret

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

// boundCanary is the value of the secrets of these tests: it must reach
// the server sealed only, and never come back in output or errors.
const boundCanary = "canary-bound-value-4e1f0a"

// bindFixture is a server whose SecretService keeps state (so that an
// update reads what a create stored), alice in team acme, and runs in
// flight as runs answers ListRuns.
type bindFixture struct {
	srv   *ozfake.Server
	store *ozfake.SecretStore
}

func newBindFixture(t *testing.T, runs *ozfake.Runs) *bindFixture {
	t.Helper()
	sealer := ozfake.NewSealer(t)
	store := ozfake.NewSecretStore(sealer, "alice")
	return &bindFixture{
		store: store,
		srv: ozfake.StartServices(t, ozfake.Services{
			Secrets: store.Fake(), Sealer: sealer, Runs: runs,
			Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")},
		}),
	}
}

// create stores team secret name of acme with boundCanary as its value
// and the binding b says, through the CLI.
func (f *bindFixture) create(t *testing.T, name string, b BindingChange) {
	t.Helper()
	ios, in, _, _ := iostreams.Test()
	in.WriteString(boundCanary)
	err := runCreate(context.Background(), &CreateOptions{
		IO: ios, Connect: connectTo(f.srv), Scope: cmdutil.ScopeTeam, Team: "acme", Name: name, Binding: b,
	})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
}

// update runs `oz secret update` of team secret API_KEY with opts (the
// value, when asked for, from stdin) and returns its error and stderr.
func (f *bindFixture) update(t *testing.T, opts UpdateOptions, stdin string) (error, string) {
	t.Helper()
	ios, in, out, errOut := iostreams.Test()
	in.WriteString(stdin)
	opts.IO, opts.Connect, opts.Scope, opts.Team, opts.Name = ios, connectTo(f.srv), cmdutil.ScopeTeam, "acme", "API_KEY"
	err := runUpdate(context.Background(), &opts)
	for _, s := range []string{out.String(), errOut.String(), fmt.Sprint(err)} {
		if strings.Contains(s, boundCanary) {
			t.Errorf("the value was printed: %q", s)
		}
	}
	return err, errOut.String()
}

func binding(query, body bool, hosts ...string) *secretsv1.HostBinding {
	return &secretsv1.HostBinding{Hosts: hosts, AllowQuery: query, AllowBody: body}
}

func wantBinding(t *testing.T, what string, got, want *secretsv1.HostBinding) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("%s: got binding %v, want %v", what, got, want)
	}
}

func TestCreateBound(t *testing.T) {
	tests := []struct {
		name string
		b    BindingChange
		want *secretsv1.HostBinding
	}{
		{name: "NotBound"},
		{name: "OneHost", b: BindingChange{BindHosts: []string{"api.openai.com"}}, want: binding(false, false, "api.openai.com")},
		{
			name: "NormalisedWithFlags",
			b:    BindingChange{BindHosts: []string{"API.OpenAI.com", "*.metabase.example.com", "api.openai.com"}, SetQuery: true, Query: true, SetBody: true, Body: true},
			want: binding(true, true, "api.openai.com", "*.metabase.example.com"),
		},
		{name: "FalseFlagsWithoutHost", b: BindingChange{SetQuery: true, SetBody: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newBindFixture(t, nil)
			f.create(t, "API_KEY", tt.b)
			req := mustRequest[*secretsv1.CreateSecretRequest](t, f.srv, "CreateSecret")
			wantBinding(t, "request", req.GetBinding(), tt.want)
			wantBinding(t, "stored", f.store.Secret("teams/acme/secrets/API_KEY").GetBinding(), tt.want)
			if n := len(f.srv.CallsTo("UpdateSecret")); n != 0 {
				t.Errorf("got %d UpdateSecret calls, want the binding in the one CreateSecret", n)
			}
			wantNoPlaintext(t, f.srv, boundCanary)
		})
	}
}

// Bad bindings are refused before anything is sent (but a value too short
// to be bound, which is known once read: then before CreateSecret), with
// exit code 2 and the flag named.
func TestCreateBindingRefused(t *testing.T) {
	var many []string
	for i := range 21 {
		many = append(many, fmt.Sprintf("h%d.example.com", i))
	}
	tests := []struct {
		name      string
		b         BindingChange
		value     string
		wantMsg   []string
		wantCalls bool // the value was read: the sealing keys were fetched
	}{
		{name: "QueryWithoutHost", b: BindingChange{SetQuery: true, Query: true}, wantMsg: []string{"--bind-query", "--bind-host"}},
		{name: "BodyWithoutHost", b: BindingChange{SetBody: true, Body: true}, wantMsg: []string{"--bind-body", "--bind-host"}},
		{name: "Port", b: BindingChange{BindHosts: []string{"api.example.com:443"}}, wantMsg: []string{"--bind-host", "api.example.com:443", "port"}},
		{name: "IP", b: BindingChange{BindHosts: []string{"10.0.0.1"}}, wantMsg: []string{"--bind-host", "not an IP address"}},
		{name: "WildcardTLD", b: BindingChange{BindHosts: []string{"*.com"}}, wantMsg: []string{"--bind-host", "at least two labels"}},
		{name: "WildcardInside", b: BindingChange{BindHosts: []string{"api.*.example.com"}}, wantMsg: []string{"--bind-host", "'*' is allowed only"}},
		{name: "Empty", b: BindingChange{BindHosts: []string{""}}, wantMsg: []string{"--bind-host", "must not be empty"}},
		{name: "TooMany", b: BindingChange{BindHosts: many}, wantMsg: []string{"--bind-host", "at most 20"}},
		{name: "ValueTooShort", b: BindingChange{BindHosts: []string{"api.example.com"}}, value: "short7!", wantMsg: []string{"value of API_KEY", "at least 8 bytes"}, wantCalls: true},
		{name: "ValueWithPlaceholderPrefix", b: BindingChange{BindHosts: []string{"api.example.com"}}, value: "xx-oz-ph-canary", wantMsg: []string{"value of API_KEY", "oz-ph-"}, wantCalls: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newBindFixture(t, nil)
			ios, in, _, _ := iostreams.Test()
			in.WriteString(orValue(tt.value, boundCanary))
			err := runCreate(context.Background(), &CreateOptions{
				IO: ios, Connect: connectTo(f.srv), Scope: cmdutil.ScopeTeam, Team: "acme", Name: "API_KEY", Binding: tt.b,
			})
			wantExitCode(t, err, exitcode.Usage)
			for _, w := range tt.wantMsg {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("got error %v, want it to name %q", err, w)
				}
			}
			if tt.value != "" && strings.Contains(fmt.Sprint(err), tt.value) {
				t.Errorf("the error %q holds the value", err)
			}
			if !tt.wantCalls {
				wantNoCalls(t, f.srv)
			}
			if n := len(f.srv.CallsTo("CreateSecret")); n != 0 {
				t.Errorf("got %d CreateSecret calls, want none", n)
			}
		})
	}
}

func orValue(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// boundRuns: runs in flight of acme that received team secret API_KEY:
// two hold its value (one a rotated one), one a placeholder; one was
// deleted since, one holds another secret.
func boundRuns() *ozfake.Runs {
	bound := holding(current, "teams/acme/API_KEY")
	bound.Injected[0].Binding = binding(false, false, "api.example.com")
	return inFlightRuns(map[string][][]*scopev1.Run{"acme": {{
		holding(current, "teams/acme/API_KEY"),
		holding(rotated, "teams/acme/API_KEY"),
		bound,
		holding(deleted, "teams/acme/API_KEY"),
		holding(current, "teams/acme/OTHER"),
	}}})
}

func TestUpdateBinding(t *testing.T) {
	const hint = " (oz run list --in-flight)\n"
	tests := []struct {
		name       string
		before     BindingChange // how API_KEY is created
		opts       UpdateOptions
		stdin      string
		wantMask   []string
		want       *secretsv1.HostBinding
		wantStderr string
	}{
		{
			name:     "BindUnbound",
			opts:     UpdateOptions{Binding: BindingChange{BindHosts: []string{"api.example.com"}}},
			wantMask: []string{"binding"}, want: binding(false, false, "api.example.com"),
			wantStderr: "API_KEY is now bound to api.example.com: runs started from now on get a placeholder, and the runner sends the value to these hosts only\n" +
				"2 runs in flight hold the value of API_KEY" + hint,
		},
		{
			name:     "BindUnboundQuiet",
			opts:     UpdateOptions{Binding: BindingChange{BindHosts: []string{"api.example.com"}}, Quiet: true},
			wantMask: []string{"binding"}, want: binding(false, false, "api.example.com"),
			wantStderr: "2 runs in flight hold the value of API_KEY" + hint,
		},
		{
			name:     "AddHost",
			before:   BindingChange{BindHosts: []string{"a.example.com"}},
			opts:     UpdateOptions{Binding: BindingChange{BindHosts: []string{"B.example.com"}}},
			wantMask: []string{"binding"}, want: binding(false, false, "a.example.com", "b.example.com"),
			wantStderr: "API_KEY is now bound to a.example.com,b.example.com (runs in flight keep the binding they started with)\n",
		},
		{
			name:     "AddHostAgainChangesNothing",
			before:   BindingChange{BindHosts: []string{"a.example.com"}},
			opts:     UpdateOptions{Binding: BindingChange{BindHosts: []string{"a.example.com"}}},
			wantMask: []string{"binding"}, want: binding(false, false, "a.example.com"),
		},
		{
			name:     "RemoveHost",
			before:   BindingChange{BindHosts: []string{"a.example.com", "b.example.com"}, SetBody: true, Body: true},
			opts:     UpdateOptions{Binding: BindingChange{UnbindHosts: []string{"A.example.com"}}},
			wantMask: []string{"binding"}, want: binding(false, true, "b.example.com"),
			wantStderr: "API_KEY is now bound to b.example.com +body (runs in flight keep the binding they started with)\n",
		},
		{
			name:       "RemoveLastHostUnbinds",
			before:     BindingChange{BindHosts: []string{"a.example.com"}, SetQuery: true, Query: true},
			opts:       UpdateOptions{Binding: BindingChange{UnbindHosts: []string{"a.example.com"}}, Quiet: true},
			wantMask:   []string{"binding"},
			wantStderr: "API_KEY is no longer bound to hosts: runs get its value\n",
		},
		{
			name:     "ReplaceHost",
			before:   BindingChange{BindHosts: []string{"a.example.com"}},
			opts:     UpdateOptions{Binding: BindingChange{BindHosts: []string{"b.example.com"}, UnbindHosts: []string{"a.example.com"}}, Quiet: true},
			wantMask: []string{"binding"}, want: binding(false, false, "b.example.com"),
			wantStderr: "",
		},
		{
			name:       "NoBind",
			before:     BindingChange{BindHosts: []string{"a.example.com", "*.b.example.com"}},
			opts:       UpdateOptions{Binding: BindingChange{NoBind: true}},
			wantMask:   []string{"binding"},
			wantStderr: "API_KEY is no longer bound to hosts: runs get its value\n",
		},
		{
			name:     "QueryOn",
			before:   BindingChange{BindHosts: []string{"a.example.com"}},
			opts:     UpdateOptions{Binding: BindingChange{SetQuery: true, Query: true}},
			wantMask: []string{"binding"}, want: binding(true, false, "a.example.com"),
			wantStderr: "API_KEY is now bound to a.example.com +query (runs in flight keep the binding they started with)\n",
		},
		{
			name:     "BodyOffKeepsQuery",
			before:   BindingChange{BindHosts: []string{"a.example.com"}, SetQuery: true, Query: true, SetBody: true, Body: true},
			opts:     UpdateOptions{Binding: BindingChange{SetBody: true}, Quiet: true},
			wantMask: []string{"binding"}, want: binding(true, false, "a.example.com"),
		},
		{
			// One request: the new value is never stored unbound. The
			// runs in flight hold the previous value: that warning says it.
			name:     "ValueAndBinding",
			opts:     UpdateOptions{Value: true, Binding: BindingChange{BindHosts: []string{"api.example.com"}}},
			stdin:    boundCanary + "-2",
			wantMask: []string{"value", "binding"}, want: binding(false, false, "api.example.com"),
			wantStderr: "API_KEY is now bound to api.example.com: runs started from now on get a placeholder, and the runner sends the value to these hosts only\n" +
				"2 runs in flight hold the previous value of API_KEY" + hint,
		},
		{
			name:       "DescriptionAndUnbind",
			before:     BindingChange{BindHosts: []string{"a.example.com"}},
			opts:       UpdateOptions{SetDescription: true, Description: "now unbound", Binding: BindingChange{NoBind: true}},
			wantMask:   []string{"description", "binding"},
			wantStderr: "API_KEY is no longer bound to hosts: runs get its value\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newBindFixture(t, boundRuns())
			f.create(t, "API_KEY", tt.before)
			read := f.store.Secret("teams/acme/secrets/API_KEY")
			err, stderr := f.update(t, tt.opts, tt.stdin)
			if err != nil {
				t.Fatalf("runUpdate: %v", err)
			}
			if n := len(f.srv.CallsTo("GetSecret")); n != 1 {
				t.Errorf("got %d GetSecret calls, want 1 (the binding is read first)", n)
			}
			req := mustRequest[*secretsv1.UpdateSecretRequest](t, f.srv, "UpdateSecret")
			if got := req.GetUpdateMask().GetPaths(); !slices.Equal(got, tt.wantMask) {
				t.Errorf("got update mask %q, want %q", got, tt.wantMask)
			}
			if req.GetEtag() != read.GetEtag() {
				t.Errorf("got etag %q, want the one read, %q", req.GetEtag(), read.GetEtag())
			}
			wantBinding(t, "request", req.GetBinding(), tt.want)
			after := f.store.Secret("teams/acme/secrets/API_KEY")
			wantBinding(t, "stored", after.GetBinding(), tt.want)
			if tt.opts.SetDescription && after.GetDescription() != tt.opts.Description {
				t.Errorf("got description %q, want %q", after.GetDescription(), tt.opts.Description)
			}
			if tt.opts.Value && after.GetValueVersion() != 2 {
				t.Errorf("got value version %d, want 2", after.GetValueVersion())
			}
			if stderr != tt.wantStderr {
				t.Errorf("got stderr\n%q\nwant\n%q", stderr, tt.wantStderr)
			}
			wantNoPlaintext(t, f.srv, boundCanary)
		})
	}
}

// Binding flags that cannot go together, or do not fit the secret, are
// usage errors that name the flag; nothing is updated.
func TestUpdateBindingRefused(t *testing.T) {
	var twenty []string
	for i := range 20 {
		twenty = append(twenty, fmt.Sprintf("h%d.example.com", i))
	}
	tests := []struct {
		name     string
		before   BindingChange
		opts     UpdateOptions
		stdin    string
		wantMsg  []string
		wantRead bool // refused once the secret was read
	}{
		{name: "NoBindAndBindHost", opts: UpdateOptions{Binding: BindingChange{NoBind: true, BindHosts: []string{"a.example.com"}}}, wantMsg: []string{"--no-bind", "--bind-host"}},
		{name: "NoBindAndUnbindHost", opts: UpdateOptions{Binding: BindingChange{NoBind: true, UnbindHosts: []string{"a.example.com"}}}, wantMsg: []string{"--no-bind", "--unbind-host"}},
		{name: "NoBindAndQuery", opts: UpdateOptions{Binding: BindingChange{NoBind: true, SetQuery: true, Query: true}}, wantMsg: []string{"--no-bind", "--bind-query"}},
		{name: "NoBindAndBodyFalse", opts: UpdateOptions{Binding: BindingChange{NoBind: true, SetBody: true}}, wantMsg: []string{"--no-bind", "--bind-body"}},
		{name: "BindAndUnbindSameHost", opts: UpdateOptions{Binding: BindingChange{BindHosts: []string{"a.example.com"}, UnbindHosts: []string{"A.example.com"}}}, wantMsg: []string{"--bind-host", "--unbind-host", "a.example.com"}},
		{name: "BadPattern", opts: UpdateOptions{Binding: BindingChange{BindHosts: []string{"https://a.example.com"}}}, wantMsg: []string{"--bind-host", "https://a.example.com"}},
		{
			name: "UnbindHostNotBound", before: BindingChange{BindHosts: []string{"a.example.com"}},
			opts:    UpdateOptions{Binding: BindingChange{UnbindHosts: []string{"b.example.com"}}},
			wantMsg: []string{"--unbind-host b.example.com", "not bound to that host", "a.example.com"}, wantRead: true,
		},
		{
			name:    "UnbindHostOfUnbound",
			opts:    UpdateOptions{Binding: BindingChange{UnbindHosts: []string{"b.example.com"}}},
			wantMsg: []string{"--unbind-host b.example.com", "API_KEY is not bound to hosts"}, wantRead: true,
		},
		{
			name:    "QueryOnUnbound",
			opts:    UpdateOptions{Binding: BindingChange{SetQuery: true, Query: true}},
			wantMsg: []string{"--bind-query", "add --bind-host"}, wantRead: true,
		},
		{
			name: "BodyWhenLastHostRemoved", before: BindingChange{BindHosts: []string{"a.example.com"}},
			opts:    UpdateOptions{Binding: BindingChange{UnbindHosts: []string{"a.example.com"}, SetBody: true, Body: true}},
			wantMsg: []string{"--bind-body", "add --bind-host"}, wantRead: true,
		},
		{
			name: "TwentyFirstHost", before: BindingChange{BindHosts: twenty},
			opts:    UpdateOptions{Binding: BindingChange{BindHosts: []string{"one-more.example.com"}}},
			wantMsg: []string{"--bind-host", "at most 20"}, wantRead: true,
		},
		{
			name:    "NewValueTooShortToBind",
			opts:    UpdateOptions{Value: true, Binding: BindingChange{BindHosts: []string{"a.example.com"}}},
			stdin:   "short",
			wantMsg: []string{"value of API_KEY", "at least 8 bytes"}, wantRead: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newBindFixture(t, boundRuns())
			f.create(t, "API_KEY", tt.before)
			before := f.store.Secret("teams/acme/secrets/API_KEY")
			calls := len(f.srv.Calls())
			err, _ := f.update(t, tt.opts, tt.stdin)
			wantExitCode(t, err, exitcode.Usage)
			for _, w := range tt.wantMsg {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("got error %v, want it to name %q", err, w)
				}
			}
			if tt.stdin != "" && strings.Contains(fmt.Sprint(err), tt.stdin) {
				t.Errorf("the error %q holds the value", err)
			}
			if got, want := len(f.srv.Calls()) > calls, tt.wantRead; got != want {
				t.Errorf("got calls after the create: %v, want %v", got, want)
			}
			if n := len(f.srv.CallsTo("UpdateSecret")); n != 0 {
				t.Errorf("got %d UpdateSecret calls, want none", n)
			}
			if after := f.store.Secret("teams/acme/secrets/API_KEY"); !proto.Equal(after, before) {
				t.Errorf("the secret changed: got %v, want %v", after, before)
			}
		})
	}
}

// A binding changed by someone else between the read and the update is
// not lost: the update is refused (exit 6), and the other change stays.
func TestUpdateBindingRaceRefused(t *testing.T) {
	sealer := ozfake.NewSealer(t)
	store := ozfake.NewSecretStore(sealer, "alice")
	fake := store.Fake()
	get := fake.GetSecretFunc
	raced := false
	fake.GetSecretFunc = func(ctx context.Context, r *secretsv1.GetSecretRequest) (*secretsv1.GetSecretResponse, error) {
		resp, err := get(ctx, r)
		if err == nil && !raced { // another client binds a host right after the read
			raced = true
			store.SetBinding(r.GetName(), binding(false, false, "a.example.com", "other.example.com"))
		}
		return resp, err
	}
	f := &bindFixture{store: store, srv: ozfake.StartServices(t, ozfake.Services{
		Secrets: fake, Sealer: sealer, Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")},
	})}
	f.create(t, "API_KEY", BindingChange{BindHosts: []string{"a.example.com"}})

	err, stderr := f.update(t, UpdateOptions{Binding: BindingChange{BindHosts: []string{"b.example.com"}}}, "")
	wantExitCode(t, err, exitcode.Conflict)
	if err == nil || !strings.Contains(err.Error(), "etag mismatch") {
		t.Errorf("got error %v, want an etag mismatch", err)
	}
	if stderr != "" {
		t.Errorf("got stderr %q, want none: nothing changed", stderr)
	}
	wantBinding(t, "stored", f.store.Secret("teams/acme/secrets/API_KEY").GetBinding(), binding(false, false, "a.example.com", "other.example.com"))
}

// An etag the caller gives is checked against the secret read, before any
// value is asked for, and sent as given.
func TestUpdateBindingCallerEtag(t *testing.T) {
	f := newBindFixture(t, nil)
	f.create(t, "API_KEY", BindingChange{BindHosts: []string{"a.example.com"}})
	etag := f.store.Secret("teams/acme/secrets/API_KEY").GetEtag()
	sealingKeys := len(f.srv.CallsTo("ListSealingKeys")) // the create's

	err, _ := f.update(t, UpdateOptions{Etag: "stale-etag", Value: true, Binding: BindingChange{NoBind: true}}, boundCanary+"-2")
	wantExitCode(t, err, exitcode.Conflict)
	if n := len(f.srv.CallsTo("ListSealingKeys")) - sealingKeys; n != 0 {
		t.Errorf("got %d ListSealingKeys calls after the mismatch, want none: no value is read", n)
	}
	if n := len(f.srv.CallsTo("UpdateSecret")); n != 0 {
		t.Errorf("got %d UpdateSecret calls, want none", n)
	}

	if err, _ := f.update(t, UpdateOptions{Etag: etag, Binding: BindingChange{NoBind: true}}, ""); err != nil {
		t.Fatalf("update with the current etag: %v", err)
	}
	if got := mustRequest[*secretsv1.UpdateSecretRequest](t, f.srv, "UpdateSecret").GetEtag(); got != etag {
		t.Errorf("got etag %q, want the caller's %q", got, etag)
	}
}

// The server's refusal of a binding reaches the user as a usage error
// naming the field: here a value already stored that cannot be bound.
func TestUpdateBindingServerRefusesStoredValue(t *testing.T) {
	f := newBindFixture(t, nil)
	ios, in, _, _ := iostreams.Test()
	in.WriteString("short")
	if err := runCreate(context.Background(), &CreateOptions{IO: ios, Connect: connectTo(f.srv), Scope: cmdutil.ScopeTeam, Team: "acme", Name: "API_KEY"}); err != nil {
		t.Fatal(err)
	}
	err, _ := f.update(t, UpdateOptions{Binding: BindingChange{BindHosts: []string{"a.example.com"}}}, "")
	wantExitCode(t, err, exitcode.Usage)
	lines, _ := exitcode.Describe(err)
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "binding.hosts: ") || !strings.Contains(lines[0], "at least 8 bytes") {
		t.Errorf("got %q, want binding.hosts and the rule", lines)
	}
	if b := f.store.Secret("teams/acme/secrets/API_KEY").GetBinding(); b != nil {
		t.Errorf("got binding %v, want none", b)
	}
}

// The table has BOUND TO, last, when a listed secret is bound; JSON has
// binding on bound secrets only, in the list's snake_case.
func TestListBound(t *testing.T) {
	f := newBindFixture(t, nil)
	f.create(t, "API_KEY", BindingChange{BindHosts: []string{"api.openai.com"}})
	f.create(t, "MB_KEY", BindingChange{BindHosts: []string{"*.metabase.example.com", "mb.example.org"}, SetQuery: true, Query: true, SetBody: true, Body: true})
	f.create(t, "PLAIN", BindingChange{})

	ios, _, out, _ := iostreams.Test()
	opts := &ListOptions{IO: ios, Connect: connectTo(f.srv), Now: func() time.Time { return testNow }}
	if err := runList(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	ts := "2026-05-20T12:00:0"
	want := strings.Join([]string{
		"NAME     SCOPE  LAST UPDATED          BOUND TO",
		"API_KEY  team   " + ts + "1Z  api.openai.com",
		"MB_KEY   team   " + ts + "2Z  *.metabase.example.com,mb.example.org +query +body",
		"PLAIN    team   " + ts + "3Z  -",
	}, "\n") + "\n"
	if got := out.String(); got != want {
		t.Errorf("got table\n%s\nwant\n%s", got, want)
	}

	ios, _, out, _ = iostreams.Test()
	opts.IO, opts.Output = ios, cmdutil.FormatJSON
	if err := runList(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	var items []map[string]any
	if err := json.Unmarshal(out.Bytes(), &items); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(items) != 3 {
		t.Fatalf("got %d items, want 3", len(items))
	}
	wantJSON := []string{
		`{"allow_body":false,"allow_query":false,"hosts":["api.openai.com"]}`,
		`{"allow_body":true,"allow_query":true,"hosts":["*.metabase.example.com","mb.example.org"]}`,
	}
	for i, w := range wantJSON {
		got, _ := json.Marshal(items[i]["binding"])
		if string(got) != w {
			t.Errorf("%s binding: got %s, want %s", items[i]["name"], got, w)
		}
	}
	if b, ok := items[2]["binding"]; ok {
		t.Errorf("PLAIN: got binding %v, want none", b)
	}
}

// On a terminal, create says where a bound secret's value may go.
func TestCreateBoundSuccessMessage(t *testing.T) {
	f := newBindFixture(t, nil)
	ios, in, out, _ := iostreams.Test()
	in.WriteString(boundCanary)
	ios.StdoutTTY = true
	err := runCreate(context.Background(), &CreateOptions{
		IO: ios, Connect: connectTo(f.srv), Scope: cmdutil.ScopeTeam, Team: "acme", Name: "API_KEY",
		Binding: BindingChange{BindHosts: []string{"api.example.com", "*.b.example.com"}, SetBody: true, Body: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "Created team secret API_KEY (team acme), bound to api.example.com,*.b.example.com +body\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// When more pages follow, BOUND TO stays in line whatever LAST UPDATED a
// page after the table's widths were set brings: that column is as wide
// as its widest cell can be.
func TestListBoundColumnInLineAcrossPages(t *testing.T) {
	var secrets []*secretsv1.Secret
	for i := range cmdutil.TableHoldRows {
		secrets = append(secrets, teamSecret("acme", fmt.Sprintf("S_%03d", i), testNow))
	}
	secrets[0].Binding = binding(false, false, "api.example.com")
	secrets = append(secrets, teamSecret("acme", "S_OLD", testNow.AddDate(0, -11, 0)))
	got, _ := runListPaged(t, ListOptions{Team: true}, true, cmdutil.TableHoldRows, secrets...)
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	header, first, last := lines[0], lines[1], lines[len(lines)-1]
	col := strings.Index(header, "BOUND TO")
	if !strings.HasPrefix(last, "S_OLD") || !strings.Contains(last, "11 months ago") {
		t.Fatalf("got last row %q, want S_OLD, 11 months ago", last)
	}
	if first[col:] != "api.example.com" || last[col:] != "-" || last[col-2:col] != "  " {
		t.Errorf("BOUND TO is not in line:\n%s\n%s\n...\n%s", header, first, last)
	}
}
