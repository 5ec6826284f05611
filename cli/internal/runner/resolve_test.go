package runner_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/runner"
	"github.com/ozsecrets/oz/lib/sealwire"
)

// fakeResolver answers ResolveRun with its func and records the request.
type fakeResolver struct {
	ResolveRunFunc func(*scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error)
	got            *scopev1.ResolveRunRequest
	ended          *scopev1.EndRunRequest
}

func (f *fakeResolver) EndRun(_ context.Context, r *scopev1.EndRunRequest, _ ...grpc.CallOption) (*scopev1.EndRunResponse, error) {
	f.ended = proto.Clone(r).(*scopev1.EndRunRequest)
	return &scopev1.EndRunResponse{Run: &scopev1.Run{Name: r.GetName(), State: scopev1.RunState_RUN_STATE_ENDED}}, nil
}

var _ runner.Resolver = (*fakeResolver)(nil)

func (f *fakeResolver) ResolveRun(_ context.Context, r *scopev1.ResolveRunRequest, _ ...grpc.CallOption) (*scopev1.ResolveRunResponse, error) {
	f.got = proto.Clone(r).(*scopev1.ResolveRunRequest)
	return f.ResolveRunFunc(r)
}

const runName = "teams/acme/runs/r1"

func injected(names ...string) []*scopev1.InjectedSecret {
	var out []*scopev1.InjectedSecret
	for _, n := range names {
		out = append(out, &scopev1.InjectedSecret{SecretName: n, Scope: scopev1.SecretScope_SECRET_SCOPE_TEAM, ValueVersion: 1})
	}
	return out
}

// sealing returns a ResolveRun answer that seals vars as the server does
// and lists names as injected; edit may change the response.
func sealing(t *testing.T, names []string, vars []*scopev1.EnvVar, edit func(*scopev1.ResolveRunResponse)) func(*scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error) {
	t.Helper()
	return func(r *scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error) {
		sealed, err := runner.Seal(r.GetRecipient(), runName, &scopev1.RunEnvironment{Vars: vars})
		if err != nil {
			t.Errorf("seal: %v", err)
			return nil, err
		}
		resp := &scopev1.ResolveRunResponse{
			Run: &scopev1.Run{
				Name: runName, RunId: "r1", Outcome: scopev1.RunOutcome_RUN_OUTCOME_RESOLVED,
				Injected: injected(names...),
			},
			Sealed: sealed,
		}
		if edit != nil {
			edit(resp)
		}
		return resp, nil
	}
}

func TestResolve(t *testing.T) {
	vars := []*scopev1.EnvVar{
		{Name: "API_KEY", Value: []byte("k3y-value")},
		{Name: "PEM", Value: []byte("-----BEGIN-----\nabc\n-----END-----\n")},
	}
	f := &fakeResolver{ResolveRunFunc: sealing(t, []string{"API_KEY", "PEM"}, vars, nil)}
	rc := &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_CLI, User: "users/alice"}
	res, err := runner.Resolve(context.Background(), f, runner.Request{Ticket: "ozt_ticket", Team: "acme", Context: rc, RunID: "r1"})
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if got := f.got.GetParent(); got != "teams/acme" {
		t.Errorf("got parent %q, want teams/acme", got)
	}
	if got := f.got.GetTicket(); got != "ozt_ticket" {
		t.Errorf("got ticket %q, want the one given", got)
	}
	if got := f.got.GetRunId(); got != "r1" {
		t.Errorf("got run id %q, want r1", got)
	}
	if !proto.Equal(f.got.GetContext(), rc) {
		t.Errorf("got context %v, want %v", f.got.GetContext(), rc)
	}
	if got, want := f.got.GetRecipient().GetKemId(), uint32(0x647a); got != want {
		t.Errorf("got KEM id %#x, want %#x (ML-KEM-768+X25519)", got, want)
	}
	if got := len(f.got.GetRecipient().GetPublicKey()); got != 1216 {
		t.Errorf("got a public key of %d bytes, want 1216", got)
	}
	want := []runner.Var{{Name: "API_KEY", Value: []byte("k3y-value")}, {Name: "PEM", Value: []byte("-----BEGIN-----\nabc\n-----END-----\n")}}
	if !slices.EqualFunc(res.Vars, want, func(a, b runner.Var) bool { return a.Name == b.Name && string(a.Value) == string(b.Value) }) {
		t.Errorf("got vars %v, want %v", res.Vars, want)
	}
	if res.Run.GetName() != runName {
		t.Errorf("got run %q, want %q", res.Run.GetName(), runName)
	}
}

func TestResolveFreshKeyPerRun(t *testing.T) {
	var keys [][]byte
	f := &fakeResolver{ResolveRunFunc: func(r *scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error) {
		keys = append(keys, r.GetRecipient().GetPublicKey())
		return &scopev1.ResolveRunResponse{Run: &scopev1.Run{Name: runName, Outcome: scopev1.RunOutcome_RUN_OUTCOME_RESOLVED}}, nil
	}}
	for range 2 {
		if _, err := runner.Resolve(context.Background(), f, runner.Request{Team: "teams/acme"}); err != nil {
			t.Fatal(err)
		}
	}
	if string(keys[0]) == string(keys[1]) {
		t.Error("got the same public key for two runs, want a fresh one per run")
	}
	if got := f.got.GetParent(); got != "teams/acme" {
		t.Errorf("got parent %q, want teams/acme", got)
	}
}

func TestResolveErrors(t *testing.T) {
	const value = "the-secret-value"
	vars := []*scopev1.EnvVar{{Name: "API_KEY", Value: []byte(value)}}
	tests := []struct {
		name    string
		resolve func(*scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error)
		check   func(*testing.T, error)
	}{
		{
			name: "Strict",
			resolve: func(*scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error) {
				return &scopev1.ResolveRunResponse{Run: &scopev1.Run{
					Name: runName, Outcome: scopev1.RunOutcome_RUN_OUTCOME_FAILED_STRICT,
					Unresolved: []*scopev1.UnresolvedReference{{SecretName: "DB", Reason: scopev1.UnresolvedReason_UNRESOLVED_REASON_NOT_FOUND}},
				}}, nil
			},
			check: func(t *testing.T, err error) {
				se, ok := runner.IsStrict(err)
				if !ok || len(se.Run.GetUnresolved()) != 1 {
					t.Errorf("got %v, want a StrictError with 1 unresolved reference", err)
				}
			},
		},
		{
			name: "ServerError",
			resolve: func(*scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error) {
				return nil, status.Error(codes.PermissionDenied, "runner not granted team acme")
			},
			check: func(t *testing.T, err error) {
				if status.Code(err) != codes.PermissionDenied {
					t.Errorf("got %v, want PermissionDenied as is", err)
				}
			},
		},
		{name: "WrongKEM", resolve: sealing(t, []string{"API_KEY"}, vars, func(r *scopev1.ResolveRunResponse) { r.Sealed.KemId = 0x0020 }), check: wantOpenError},
		{name: "WrongKDF", resolve: sealing(t, []string{"API_KEY"}, vars, func(r *scopev1.ResolveRunResponse) { r.Sealed.KdfId = 0x0002 }), check: wantOpenError},
		{name: "WrongAEAD", resolve: sealing(t, []string{"API_KEY"}, vars, func(r *scopev1.ResolveRunResponse) { r.Sealed.AeadId = 0x0003 }), check: wantOpenError},
		{name: "OtherRunInfo", resolve: sealing(t, []string{"API_KEY"}, vars, func(r *scopev1.ResolveRunResponse) { r.Run.Name = "teams/acme/runs/r2" }), check: wantOpenError},
		{name: "Tampered", resolve: sealing(t, []string{"API_KEY"}, vars, func(r *scopev1.ResolveRunResponse) { r.Sealed.Ciphertext[len(r.Sealed.Ciphertext)-1] ^= 1 }), check: wantOpenError},
		{name: "Truncated", resolve: sealing(t, []string{"API_KEY"}, vars, func(r *scopev1.ResolveRunResponse) { r.Sealed.Ciphertext = r.Sealed.Ciphertext[:10] }), check: wantOpenError},
		{name: "MissingSealed", resolve: sealing(t, []string{"API_KEY"}, vars, func(r *scopev1.ResolveRunResponse) { r.Sealed = nil }), check: wantOpenError},
		{name: "ValueNotListed", resolve: sealing(t, nil, vars, nil), check: wantOpenError},
		{name: "ListedWithoutValue", resolve: sealing(t, []string{"API_KEY", "OTHER"}, vars, nil), check: wantOpenError},
		{name: "BadName", resolve: sealing(t, []string{"A=B"}, []*scopev1.EnvVar{{Name: "A=B", Value: []byte(value)}}, nil), check: wantOpenError},
		{name: "Duplicate", resolve: sealing(t, []string{"A"}, []*scopev1.EnvVar{{Name: "A", Value: []byte(value)}, {Name: "A", Value: []byte(value)}}, nil), check: wantOpenError},
		{name: "NUL", resolve: sealing(t, []string{"A"}, []*scopev1.EnvVar{{Name: "A", Value: []byte("a\x00" + value)}}, nil), check: wantOpenError},
		{name: "Empty", resolve: sealing(t, []string{"A"}, []*scopev1.EnvVar{{Name: "A"}}, nil), check: wantOpenError},
		{
			name: "UnknownOutcome",
			resolve: func(*scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error) {
				return &scopev1.ResolveRunResponse{Run: &scopev1.Run{Name: runName}}, nil
			},
			check: func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "outcome") {
					t.Errorf("got %v, want an unexpected outcome error", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runner.Resolve(context.Background(), &fakeResolver{ResolveRunFunc: tt.resolve}, runner.Request{Team: "acme"})
			if err == nil {
				t.Fatal("got no error")
			}
			if strings.Contains(err.Error(), value) {
				t.Errorf("error %q holds the value", err)
			}
			tt.check(t, err)
		})
	}
}

func wantOpenError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, runner.ErrOpen) {
		t.Errorf("got %v, want ErrOpen", err)
	}
}

func TestOpenWithAnotherKeyFails(t *testing.T) {
	k1, err := runner.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := runner.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := runner.Seal(k1.Recipient(), runName, &scopev1.RunEnvironment{Vars: []*scopev1.EnvVar{{Name: "A", Value: []byte("value")}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Open(sealed, string(sealwire.RunInfo(runName))); !errors.Is(err, runner.ErrOpen) {
		t.Errorf("got %v, want ErrOpen", err)
	}
	vars, err := k1.Open(sealed, string(sealwire.RunInfo(runName)))
	if err != nil || len(vars) != 1 || string(vars[0].Value) != "value" {
		t.Errorf("got %v, %v, want the one var", vars, err)
	}
}

// TestResolveAnyTeam: without a team, the ticket's team is asked for.
func TestResolveAnyTeam(t *testing.T) {
	f := &fakeResolver{ResolveRunFunc: sealing(t, nil, nil, nil)}
	if _, err := runner.Resolve(context.Background(), f, runner.Request{Ticket: "ozt_x"}); err != nil {
		t.Fatal(err)
	}
	if got := f.got.GetParent(); got != "teams/-" || f.got.GetContext() != nil {
		t.Errorf("got parent %q and context %v, want teams/- and none", got, f.got.GetContext())
	}
}

// TestEnd: the end is reported with the exit status, the signal and the
// duration.
func TestEnd(t *testing.T) {
	f := &fakeResolver{}
	counts := []*scopev1.EgressCount{{Host: "api.example.com", Substitutions: 3, Denials: 1}}
	run, err := runner.End(context.Background(), f, runName, runner.Exit{Code: 130, Signal: syscall.SIGINT}, 1500*time.Millisecond, counts)
	if err != nil {
		t.Fatal(err)
	}
	if f.ended.GetName() != runName || f.ended.GetExitCode() != 130 || f.ended.GetSignal() != 2 || f.ended.GetDuration().AsDuration() != 1500*time.Millisecond {
		t.Errorf("EndRun request: %v", f.ended)
	}
	if len(f.ended.GetEgress()) != 1 || !proto.Equal(f.ended.GetEgress()[0], counts[0]) {
		t.Errorf("EndRun egress: %v, want %v", f.ended.GetEgress(), counts)
	}
	if run.GetState() != scopev1.RunState_RUN_STATE_ENDED {
		t.Errorf("returned run: %v", run)
	}
}

// TestResolveBound: a host-bound secret opens with its binding, and the
// run is refused when the record and the sealed values disagree on it, or
// when its binding or value could not be enforced.
func TestResolveBound(t *testing.T) {
	binding := &secretsv1.HostBinding{Hosts: []string{"api.example.com"}, AllowBody: true}
	resolveWith := func(recordBound bool, bound *scopev1.BoundVar) (*runner.Resolution, error) {
		f := &fakeResolver{ResolveRunFunc: func(r *scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error) {
			env := &scopev1.RunEnvironment{
				Vars:  []*scopev1.EnvVar{{Name: "PLAIN", Value: []byte("plain-value")}},
				Bound: []*scopev1.BoundVar{bound},
			}
			sealed, err := runner.Seal(r.GetRecipient(), runName, env)
			if err != nil {
				return nil, err
			}
			in := injected("PLAIN", "API_KEY")
			if recordBound {
				in[1].Binding = binding
			}
			return &scopev1.ResolveRunResponse{Run: &scopev1.Run{Name: runName, Outcome: scopev1.RunOutcome_RUN_OUTCOME_RESOLVED, Injected: in}, Sealed: sealed}, nil
		}}
		return runner.Resolve(context.Background(), f, runner.Request{Ticket: "ozt_x"})
	}
	good := &scopev1.BoundVar{Name: "API_KEY", Value: []byte("sk-canary-bound-value"), Binding: binding}
	res, err := resolveWith(true, good)
	if err != nil {
		t.Fatal(err)
	}
	var got *runner.Var
	for i := range res.Vars {
		if res.Vars[i].Name == "API_KEY" {
			got = &res.Vars[i]
		}
	}
	if got == nil || got.Binding == nil || !slices.Equal(got.Binding.Hosts, []string{"api.example.com"}) || !got.Binding.AllowBody || got.Binding.AllowQuery {
		t.Fatalf("API_KEY opened as %+v, want bound to api.example.com with the body allowed", got)
	}
	if _, err := resolveWith(false, good); !errors.Is(err, runner.ErrOpen) || !strings.Contains(err.Error(), "disagree") {
		t.Errorf("record not bound, sealed bound: %v, want ErrOpen saying they disagree", err)
	}
	for name, bad := range map[string]*scopev1.BoundVar{
		"an IP address":  {Name: "API_KEY", Value: []byte("sk-canary-bound-value"), Binding: &secretsv1.HostBinding{Hosts: []string{"10.0.0.1"}}},
		"no host":        {Name: "API_KEY", Value: []byte("sk-canary-bound-value")},
		"a short value":  {Name: "API_KEY", Value: []byte("short"), Binding: binding},
		"a line break":   {Name: "API_KEY", Value: []byte("sk-canary\nbound-value"), Binding: binding},
		"a placeholder":  {Name: "API_KEY", Value: []byte("oz-ph-aaaaaaaaaaaaaaaaaaaaaaaa"), Binding: binding},
		"a plain's name": {Name: "PLAIN", Value: []byte("sk-canary-bound-value"), Binding: binding},
	} {
		_, err := resolveWith(true, bad)
		if !errors.Is(err, runner.ErrOpen) {
			t.Errorf("bound var with %s: %v, want ErrOpen", name, err)
		}
		if err != nil && strings.Contains(err.Error(), string(bad.GetValue())) {
			t.Errorf("bound var with %s: the error holds the value: %v", name, err)
		}
	}
}
