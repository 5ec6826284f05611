// Package runner is the runner side of a run: it resolves the run's
// secrets with a fresh key (RunService.ResolveRun), opens the sealed
// values in memory, builds the agent's environment, and starts and
// supervises the agent process with its output masked.
//
// Values travel sealed to a key generated for the run (HPKE, ML-KEM-768 +
// X25519), so only the secret store and the runner hold plaintext; the
// runner gives them to the child as environment variables only: never on
// a command line, in a file, or in its own output.
package runner

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
)

// Resolver is the part of RunService a runner uses;
// scopev1.RunServiceClient implements it.
type Resolver interface {
	ResolveRun(ctx context.Context, in *scopev1.ResolveRunRequest, opts ...grpc.CallOption) (*scopev1.ResolveRunResponse, error)
}

// Request is one run to resolve.
type Request struct {
	Team    string // team id, or "teams/{team}"
	Context *scopev1.RunContext
	RunID   string // optional
}

// Resolution is a resolved run: its record and its opened values.
type Resolution struct {
	Run  *scopev1.Run
	Vars []Var
}

// StrictError reports a strict run that the server failed because some
// references were unresolved; it returned no values.
type StrictError struct {
	Run *scopev1.Run
}

func (e *StrictError) Error() string {
	return fmt.Sprintf("strict run: %d unresolved secret reference(s)", len(e.Run.GetUnresolved()))
}

// Resolve generates a key for the run, asks r to resolve it and opens the
// values. It returns a *StrictError for a failed strict run, an error
// wrapping ErrOpen when the values cannot be opened (or are missing from
// a resolved run that injects secrets), and r's error as is.
func Resolve(ctx context.Context, r Resolver, req Request) (*Resolution, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	parent := req.Team
	if len(parent) < 6 || parent[:6] != "teams/" {
		parent = "teams/" + parent
	}
	resp, err := r.ResolveRun(ctx, &scopev1.ResolveRunRequest{
		Parent:    parent,
		Context:   req.Context,
		RunId:     req.RunID,
		Recipient: key.Recipient(),
	})
	if err != nil {
		return nil, err
	}
	run := resp.GetRun()
	switch run.GetOutcome() {
	case scopev1.RunOutcome_RUN_OUTCOME_FAILED_STRICT:
		return nil, &StrictError{Run: run}
	case scopev1.RunOutcome_RUN_OUTCOME_RESOLVED:
	default:
		return nil, fmt.Errorf("resolve run: unexpected outcome %s", run.GetOutcome())
	}
	if resp.GetSealed() == nil {
		if len(run.GetInjected()) > 0 {
			return nil, fmt.Errorf("%w: the server sent none for %d injected secret(s)", ErrOpen, len(run.GetInjected()))
		}
		return &Resolution{Run: run}, nil
	}
	vars, err := key.Open(resp.GetSealed(), InfoPrefix+run.GetName())
	if err != nil {
		return nil, err
	}
	if err := matchInjected(run, vars); err != nil {
		return nil, err
	}
	return &Resolution{Run: run, Vars: vars}, nil
}

// matchInjected checks that the values are those of the injected names
// the record lists (redacted entries aside).
func matchInjected(run *scopev1.Run, vars []Var) error {
	have := map[string]bool{}
	for _, v := range vars {
		have[v.Name] = true
	}
	listed := map[string]bool{}
	redacted := 0
	for _, in := range run.GetInjected() {
		if in.GetRedacted() {
			redacted++
			continue
		}
		listed[in.GetSecretName()] = true
		if !have[in.GetSecretName()] {
			return fmt.Errorf("%w: no value for injected secret %s", ErrOpen, in.GetSecretName())
		}
	}
	extra := 0
	for _, v := range vars {
		if !listed[v.Name] {
			extra++
		}
	}
	if extra > redacted {
		return fmt.Errorf("%w: %d value(s) for secrets the run record does not list", ErrOpen, extra-redacted)
	}
	return nil
}

// IsStrict reports whether err is a failed strict run, and returns it.
func IsStrict(err error) (*StrictError, bool) {
	var se *StrictError
	ok := errors.As(err, &se)
	return se, ok
}
