// Package runner is the runner side of a run: it redeems the run's start
// ticket with a fresh key (RunService.ResolveRun), opens the sealed values
// in memory, builds the agent's environment, starts and supervises the
// agent process with its output masked, and reports the run's end
// (RunService.EndRun).
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
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ozsecrets/oz/lib/sealwire"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
)

// Resolver is the part of RunService a runner uses;
// scopev1.RunServiceClient implements it.
type Resolver interface {
	ResolveRun(ctx context.Context, in *scopev1.ResolveRunRequest, opts ...grpc.CallOption) (*scopev1.ResolveRunResponse, error)
	EndRun(ctx context.Context, in *scopev1.EndRunRequest, opts ...grpc.CallOption) (*scopev1.EndRunResponse, error)
}

// Request is one run to resolve: the redemption of its start ticket.
type Request struct {
	// Ticket is the start ticket ("ozt_…") the run's trigger got from
	// StartRun.
	Ticket string
	// Team is a team id or "teams/{team}"; empty: the ticket's team.
	Team string
	// Context, when set, must agree with the ticket's: the server refuses
	// a field that differs, except a narrower secret list and strict.
	Context *scopev1.RunContext
	RunID   string // optional: must be the ticket's
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
	switch {
	case parent == "":
		parent = "teams/-" // the ticket's team
	case len(parent) < 6 || parent[:6] != "teams/":
		parent = "teams/" + parent
	}
	resp, err := r.ResolveRun(ctx, &scopev1.ResolveRunRequest{
		Parent:    parent,
		Ticket:    req.Ticket,
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
	vars, err := key.Open(resp.GetSealed(), string(sealwire.RunInfo(run.GetName())))
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
	have := map[string]Var{}
	for _, v := range vars {
		have[v.Name] = v
	}
	listed := map[string]bool{}
	redacted := 0
	for _, in := range run.GetInjected() {
		if in.GetRedacted() {
			redacted++
			continue
		}
		listed[in.GetSecretName()] = true
		v, ok := have[in.GetSecretName()]
		if !ok {
			return fmt.Errorf("%w: no value for injected secret %s", ErrOpen, in.GetSecretName())
		}
		// The record says what the agent gets (a value or a placeholder);
		// the sealed environment must say the same.
		if (in.GetBinding() != nil) != (v.Binding != nil) {
			return fmt.Errorf("%w: the run record and the sealed values disagree on whether %s is bound to hosts", ErrOpen, in.GetSecretName())
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

// End reports that the run named run (a run's resource name) ended as exit
// says, after the command ran for d, with what its egress proxy did per
// host (Egress.Counts; nil without one). The record of an ended run is
// returned.
func End(ctx context.Context, r Resolver, run string, exit Exit, d time.Duration, egress []*scopev1.EgressCount) (*scopev1.Run, error) {
	resp, err := r.EndRun(ctx, &scopev1.EndRunRequest{
		Name:     run,
		ExitCode: int32(exit.Code),
		Signal:   int32(exit.Signal),
		Duration: durationpb.New(d),
		Egress:   egress,
	})
	if err != nil {
		return nil, err
	}
	return resp.GetRun(), nil
}
