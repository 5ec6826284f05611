package resolver

import (
	"context"
	"fmt"
	"strconv"
	"time"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/runrules"
)

// A run's life after its resolution: its runner reports its end (EndRun),
// and until then the run is in flight, listed in its own index so that
// "which runs hold values now" never reads a team's history:
//
//	runsinflight/{team}/{inverted start time}/{run}   marker
//
// A run in flight whose values have since been rotated, or whose secret
// was deleted, holds stale values: reads of run records say so for each
// injected secret, asking the secretstore for the current versions.

const prefixRunsInFlight = "runsinflight/"

func runsInFlightPrefix(team string) string { return prefixRunsInFlight + team + "/" }

func runInFlightKey(team string, created time.Time, id string) string {
	return runsInFlightPrefix(team) + invertedTime(created) + "/" + id
}

// MaxRunDuration bounds the duration an EndRun reports.
const MaxRunDuration = 10 * 365 * 24 * time.Hour

// EndRun records that run id of team ended as end says, and returns its
// record. Only the runner that resolved it, while it is in flight.
//
// Returns Invalid (fields team_id, run_id, exit_code, signal, duration),
// PermissionDenied, NotFound, FailedPrecondition (not in flight: not
// resolved yet, failed, or ended already).
func (r *Runs) EndRun(ctx context.Context, team, id string, end RunEnd) (Run, error) {
	if err := checkID("team_id", team); err != nil {
		return Run{}, err
	}
	if !ValidRunID(id) {
		return Run{}, errs.Field("run_id", RunIDRule)
	}
	switch {
	case end.ExitCode < 0 || end.ExitCode > 255:
		return Run{}, errs.Field("exit_code", "must be an exit status, 0 to 255")
	case end.Signal < 0 || end.Signal > 64:
		return Run{}, errs.Field("signal", "must be 0 (none) or a signal number up to 64")
	case end.Duration < 0 || end.Duration > MaxRunDuration:
		return Run{}, errs.Field("duration", "must be between 0 and %s", MaxRunDuration)
	}
	p, err := caller(ctx)
	if err != nil {
		return Run{}, err
	}
	if !granted(p, team) {
		return Run{}, denied("only the runner that resolved a run reports its end")
	}
	var rec runRecord
	raw, err := r.dir.get(ctx, runKey(team, id), &rec)
	if isNotFound(err) {
		return Run{}, errs.E(errs.KindNotFound, "run %q not found in team %q", id, team)
	}
	if err != nil {
		return Run{}, fmt.Errorf("end run: %w", err)
	}
	run := rec.run()
	if run.ResolvedBy != p.Name {
		return Run{}, denied("only the runner that resolved a run reports its end")
	}
	if run.State != RunResolved || rec.State == "" {
		return Run{}, errs.E(errs.KindFailedPrecondition, "run %q is %s, not in flight: only a resolved run's end is reported, once", id, run.State)
	}
	now := r.dir.clock()
	run.State, run.EndTime, run.End = RunEnded, now, &end
	details := map[string]string{
		DetailExitCode:   strconv.Itoa(end.ExitCode),
		DetailDurationMS: strconv.FormatInt(end.Duration.Milliseconds(), 10),
	}
	if end.Signal != 0 {
		details[DetailSignal] = strconv.Itoa(end.Signal)
	}
	ev := r.dir.event(ctx, ActionRunEnd, run.Name(), team, details)
	ev.RunId = id
	err = r.dir.apply(ctx, []kv.Cond{kv.Equal(runKey(team, id), raw)},
		[]kv.Write{kv.Put(runKey(team, id), encode(toRunRecord(run))), kv.Delete(runInFlightKey(team, run.CreateTime, id))}, ev)
	if conflict(err) == 0 {
		return Run{}, errs.E(errs.KindFailedPrecondition, "run %q changed meanwhile (its end was reported already)", id)
	}
	if err != nil {
		return Run{}, fmt.Errorf("end run: %w", err)
	}
	return run, nil
}

// forReader is run as p may see it at now: an unredeemed ticket past its
// expiry is RunExpired, a run in flight says which of its values are still
// current (when the secretstore answers), and other users' personal
// secrets are redacted.
func (r *Runs) forReader(ctx context.Context, runs []Run, p *auth.Principal) []Run {
	now := r.dir.clock()
	for i := range runs {
		if runs[i].State == RunStarted && !now.Before(runs[i].TicketExpire) {
			runs[i].State = RunExpired
		}
	}
	r.valueStates(ctx, runs)
	for i := range runs {
		runs[i] = redact(runs[i], p)
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
func (r *Runs) valueStates(ctx context.Context, runs []Run) {
	type owners struct{ team, user string }
	byOwners := map[owners][]int{}
	for i, run := range runs {
		if run.InFlight() && len(run.Injected) > 0 {
			o := owners{TeamName(run.Team), run.Context.User}
			byOwners[o] = append(byOwners[o], i)
		}
	}
	for o, idx := range byOwners {
		sel := &internalapiv1.Selection{Owners: []string{o.team}}
		if o.user != "" {
			sel.Owners = append(sel.Owners, o.user)
		}
		var names []string
		for _, i := range idx {
			for _, s := range runs[i].Injected {
				names = append(names, s.Name)
			}
		}
		sel.Allowlist = &scopev1.SecretNameList{Names: uniqueNames(names)}
		resp, err := r.sealer.SealRunSecrets(ctx, &internalapiv1.SealRunSecretsRequest{Selection: sel})
		if err != nil {
			continue
		}
		type ref struct{ owner, name string }
		current := map[ref]runrules.Secret{}
		for _, c := range secretsOf(resp.GetCandidates()) {
			current[ref{c.Owner, c.Name}] = c
		}
		for _, i := range idx {
			for j, s := range runs[i].Injected {
				c, ok := current[ref{s.Owner, s.Name}]
				switch {
				case !ok, !s.Created.IsZero() && !c.Created.Equal(s.Created):
					// Gone, or made again since: the run's is no more.
					runs[i].Injected[j].ValueState = ValueDeleted
				case c.Version != s.ValueVersion:
					runs[i].Injected[j].ValueState = ValueRotated
				default:
					runs[i].Injected[j].ValueState = ValueCurrent
				}
			}
		}
	}
}
