package ozfake

import (
	"context"
	"crypto/hpke"
	"testing"

	"google.golang.org/protobuf/proto"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
)

// ExecRunService is the RunService of `oz exec` tests: ResolveRun calls
// ResolveRunFunc.
type ExecRunService = Runs

// StartExec serves runs on a real TLS port until the test ends. Without
// an EndRunFunc, EndRun answers with the run ended.
func StartExec(t testing.TB, runs *ExecRunService) *Server {
	t.Helper()
	if runs.EndRunFunc == nil {
		runs.EndRunFunc = func(_ context.Context, r *scopev1.EndRunRequest) (*scopev1.EndRunResponse, error) {
			return &scopev1.EndRunResponse{Run: &scopev1.Run{Name: r.GetName(), State: scopev1.RunState_RUN_STATE_ENDED}}, nil
		}
	}
	return StartServices(t, Services{Runs: runs})
}

// ExecTeam is the team of the fake's runs when the request names none
// ("teams/-": the ticket's).
const ExecTeam = "teams/acme"

// ExecVar is a secret the fake injects.
type ExecVar struct {
	Name    string
	Value   string
	Scope   scopev1.SecretScope // default team
	Version int64               // default 1
}

// ExecResolved answers ResolveRun as the resolver does for a resolved
// run: the record names the vars as injected and lists unresolved, and
// the values are sealed to the request's recipient key with one
// single-shot HPKE seal (its KEM, HKDF-SHA256, AES-256-GCM, info
// "oz-run-v1|teams/{team}/runs/{run}").
func ExecResolved(vars []ExecVar, unresolved ...*scopev1.UnresolvedReference) func(context.Context, *scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error) {
	return func(_ context.Context, r *scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error) {
		run := execRun(r, scopev1.RunOutcome_RUN_OUTCOME_RESOLVED, unresolved)
		env := &scopev1.RunEnvironment{}
		for _, v := range vars {
			in := &scopev1.InjectedSecret{SecretName: v.Name, Scope: v.Scope, Owner: execParent(r), ValueVersion: v.Version}
			if in.Scope == scopev1.SecretScope_SECRET_SCOPE_UNSPECIFIED {
				in.Scope = scopev1.SecretScope_SECRET_SCOPE_TEAM
			}
			if in.ValueVersion == 0 {
				in.ValueVersion = 1
			}
			run.Injected = append(run.Injected, in)
			env.Vars = append(env.Vars, &scopev1.EnvVar{Name: v.Name, Value: []byte(v.Value)})
		}
		sealed, err := execSeal(r.GetRecipient(), run.GetName(), env)
		if err != nil {
			return nil, err
		}
		return &scopev1.ResolveRunResponse{Run: run, Sealed: sealed}, nil
	}
}

// ExecFailedStrict answers ResolveRun as the resolver does for a strict
// run with unresolved references: the record, no values.
func ExecFailedStrict(unresolved ...*scopev1.UnresolvedReference) func(context.Context, *scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error) {
	return func(_ context.Context, r *scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error) {
		return &scopev1.ResolveRunResponse{Run: execRun(r, scopev1.RunOutcome_RUN_OUTCOME_FAILED_STRICT, unresolved)}, nil
	}
}

func execRun(r *scopev1.ResolveRunRequest, outcome scopev1.RunOutcome, unresolved []*scopev1.UnresolvedReference) *scopev1.Run {
	id := r.GetRunId()
	if id == "" {
		id = "run-0001"
	}
	rc := proto.Clone(r.GetContext()).(*scopev1.RunContext)
	state := scopev1.RunState_RUN_STATE_RESOLVED
	if outcome == scopev1.RunOutcome_RUN_OUTCOME_FAILED_STRICT {
		state = scopev1.RunState_RUN_STATE_FAILED
	}
	return &scopev1.Run{
		Name:       execParent(r) + "/runs/" + id,
		State:      state,
		RunId:      id,
		Context:    rc,
		Agent:      "default",
		ResolvedBy: "runners/test",
		Outcome:    outcome,
		Unresolved: unresolved,
	}
}

func execSeal(recipient *scopev1.RecipientKey, run string, env *scopev1.RunEnvironment) (*scopev1.SealedValues, error) {
	kem, err := hpke.NewKEM(uint16(recipient.GetKemId()))
	if err != nil {
		return nil, err
	}
	pk, err := kem.NewPublicKey(recipient.GetPublicKey())
	if err != nil {
		return nil, err
	}
	plain, err := proto.Marshal(env)
	if err != nil {
		return nil, err
	}
	kdf, aead := hpke.HKDFSHA256(), hpke.AES256GCM()
	info := []byte("oz-run-v1|" + run)
	ct, err := hpke.Seal(pk, kdf, aead, info, plain)
	if err != nil {
		return nil, err
	}
	return &scopev1.SealedValues{
		KemId:      uint32(kem.ID()),
		KdfId:      uint32(kdf.ID()),
		AeadId:     uint32(aead.ID()),
		Info:       info,
		Ciphertext: ct,
	}, nil
}

// execParent is the team of a run: the request's, or ExecTeam for
// "teams/-".
func execParent(r *scopev1.ResolveRunRequest) string {
	if p := r.GetParent(); p != "teams/-" {
		return p
	}
	return ExecTeam
}
