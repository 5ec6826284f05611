package runs

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/resolver"
)

// A run's life after its resolution: its runner reports its end (EndRun),
// and until then the run is in flight, listed in its own index
// (resolver.RunInFlightKey) so that "which runs hold values now" never
// reads a team's history.
//
// A run in flight whose values have since been rotated, or whose secret
// was deleted, holds stale values: reads of run records say so for each
// injected secret, asking the secretstore for the current versions.

// MaxRunDuration bounds the duration an EndRun reports.
const MaxRunDuration = 10 * 365 * 24 * time.Hour

// EndRun records that run id of team ended as end says, and returns its
// record. Only the runner that resolved it, while it is in flight.
//
// Returns Invalid (fields team_id, run_id, exit_code, signal, duration,
// egress, egress[i].host, egress[i].substitutions, egress[i].denials),
// PermissionDenied, NotFound, FailedPrecondition (not in flight: not
// resolved yet, failed, or ended already).
func (r *Service) EndRun(ctx context.Context, team, id string, end RunEnd) (Run, error) {
	if err := checkRunID(team, id); err != nil {
		return Run{}, err
	}
	switch {
	case end.ExitCode < 0 || end.ExitCode > 255:
		return Run{}, errs.Field("exit_code", "must be an exit status, 0 to 255")
	case end.Signal < 0 || end.Signal > 64:
		return Run{}, errs.Field("signal", "must be 0 (none) or a signal number up to 64")
	case end.Duration < 0 || end.Duration > MaxRunDuration:
		return Run{}, errs.Field("duration", "must be between 0 and %s", MaxRunDuration)
	}
	if err := checkEgress(end.Egress); err != nil {
		return Run{}, err
	}
	run, raw, err := r.runnersRunInFlight(ctx, team, id, "reports its end")
	if err != nil {
		return Run{}, err
	}
	now := r.s.Now()
	end.Egress = slices.Clone(end.Egress)
	run.State, run.EndTime, run.End = RunEnded, now, &end
	details := map[string]string{
		resolver.DetailExitCode:   strconv.Itoa(end.ExitCode),
		resolver.DetailDurationMS: strconv.FormatInt(end.Duration.Milliseconds(), 10),
	}
	if end.Signal != 0 {
		details[resolver.DetailSignal] = strconv.Itoa(end.Signal)
	}
	egressDetails(details, end.Egress)
	ev := r.s.Event(ctx, resolver.ActionRunEnd, run.Name(), team, details)
	ev.RunId = id
	err = r.s.Apply(ctx, []kv.Cond{kv.Equal(resolver.RunKey(team, id), raw)},
		[]kv.Write{kv.Put(resolver.RunKey(team, id), resolver.Encode(toRunRecord(run))), kv.Delete(resolver.RunInFlightKey(team, run.CreateTime, id))}, ev)
	if resolver.Conflict(err) == 0 {
		return Run{}, errs.E(errs.KindFailedPrecondition, "run %q changed meanwhile (its end was reported already)", id)
	}
	if err != nil {
		return Run{}, fmt.Errorf("end run: %w", err)
	}
	return run, nil
}

// checkRunID validates the team and run ids of a request about one run.
func checkRunID(team, id string) error {
	if err := resolver.CheckID("team_id", team); err != nil {
		return err
	}
	if !resolver.ValidRunID(id) {
		return errs.Field("run_id", resolver.RunIDRule)
	}
	return nil
}

// runnersRunInFlight reads run id of team, stored as raw, for its runner,
// the caller of ctx, to report on (what it does: "reports its end"): only
// the runner that resolved it, while it is in flight.
//
// Returns PermissionDenied, NotFound, FailedPrecondition (not in flight).
func (r *Service) runnersRunInFlight(ctx context.Context, team, id, what string) (run Run, raw []byte, err error) {
	p, err := resolver.Caller(ctx)
	if err != nil {
		return Run{}, nil, err
	}
	if !granted(p, team) {
		return Run{}, nil, resolver.Denied("only the runner that resolved a run %s", what)
	}
	var rec runRecord
	raw, err = r.s.Get(ctx, resolver.RunKey(team, id), &rec)
	if resolver.IsNotFound(err) {
		return Run{}, nil, errs.E(errs.KindNotFound, "run %q not found in team %q", id, team)
	}
	if err != nil {
		return Run{}, nil, fmt.Errorf("read run: %w", err)
	}
	run = rec.run()
	if run.ResolvedBy != p.Name {
		return Run{}, nil, resolver.Denied("only the runner that resolved a run %s", what)
	}
	if run.State != RunResolved || rec.State == "" {
		return Run{}, nil, errs.E(errs.KindFailedPrecondition, "run %q is %s, not in flight: its runner %s only while it is in flight, and its end only once", id, run.State, what)
	}
	return run, raw, nil
}

// forReader is run as p may see it at now: an unredeemed ticket past its
// expiry is RunExpired, a run in flight says which of its values are still
// current (when the secretstore answers), and other users' personal
// secrets are redacted.
func (r *Service) forReader(ctx context.Context, runs []Run, p *auth.Principal) []Run {
	now := r.s.Now()
	for i := range runs {
		if runs[i].State == RunStarted && !now.Before(runs[i].TicketExpire) {
			runs[i].State = RunExpired
		}
	}
	for i := range runs {
		runs[i] = redact(runs[i], p)
	}
	// After redact: a reader is told of the values of what they are shown.
	r.valueStates(ctx, runs)
	for i := range runs {
		runs[i].HoldsStaleValues = false
		for _, s := range runs[i].Injected {
			if s.ValueState == ValueRotated || s.ValueState == ValueDeleted {
				runs[i].HoldsStaleValues = true
			}
		}
	}
	return runs
}

// valueStates sets the ValueState of every injected secret of the runs in
// flight, from the secretstore's current versions: one request for each
// distinct pair of owners (the team, and the triggering user). When the
// secretstore cannot answer, the states stay unset (not checked): a run's
// record is readable without it.
func (r *Service) valueStates(ctx context.Context, runs []Run) {
	type owners struct{ team, user string }
	byOwners := map[owners][]int{}
	for i, run := range runs {
		if run.InFlight() && len(run.Injected) > 0 {
			o := owners{resolver.TeamName(run.Team), run.Context.User}
			byOwners[o] = append(byOwners[o], i)
		}
	}
	for o, idx := range byOwners {
		owners := []string{o.team}
		if o.user != "" {
			owners = append(owners, o.user)
		}
		// Only the injected secrets' names are read, by key: what the
		// runs hold, not what their owners do.
		var names []string
		seen := map[string]bool{}
		for _, i := range idx {
			for _, s := range runs[i].Injected {
				if !seen[s.Name] {
					seen[s.Name] = true
					names = append(names, s.Name)
				}
			}
		}
		cands, err := r.secrets.Candidates(ctx, owners, names)
		if err != nil {
			continue
		}
		type ref struct{ owner, name string }
		current := map[ref]runrules.Secret{}
		for _, c := range cands {
			current[ref{c.Owner, c.Name}] = c
		}
		for _, i := range idx {
			for j, s := range runs[i].Injected {
				c, ok := current[ref{s.Owner, s.Name}]
				switch {
				case !ok, !s.Created.IsZero() && !c.Created.Equal(s.Created):
					// Gone, or made again since: the run's is no more.
					runs[i].Injected[j].ValueState = ValueDeleted
				case c.Version != s.Version:
					runs[i].Injected[j].ValueState = ValueRotated
				default:
					runs[i].Injected[j].ValueState = ValueCurrent
				}
			}
		}
	}
}
