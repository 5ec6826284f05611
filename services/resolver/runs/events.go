package runs

import (
	"context"
	"fmt"
	"maps"
	"strconv"

	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/resolver"
)

// The run.resolve event of a resolution (the other events of runs are
// made where they happen: run.start, run.end, agent.*, environment.*).

// runEventBudget bounds the details of one run.resolve event, well under
// audit.MaxEventBytes; a run with more is split into parts.
const runEventBudget = 48 << 10

// resolveEvents are the run.resolve event of run, as recorded: the
// identity, trigger, runner, user, environment and allowlist source; for
// each injected team secret its value version ("injected.N" =
// "NAME=VERSION"), and how many of the triggering user's personal secrets,
// by count only (team admins read this chain); for each unresolved
// reference its reason ("unresolved.N" = "NAME=REASON"); how many of the
// injected team secrets are bound to hosts ("bound_count", a count: which
// ones and to what hosts is in the run's record). Names are in the
// values, numbered from 1 across the parts, because a detail key is at most
// audit.MaxDetailKeyLength characters and a name may be 255. A strict run
// that failed is
// OUTCOME_FAILED, with nothing injected. Names too many for one event are
// spread over several, each a DetailPart of the whole carrying the run's
// own details.
func (r *Service) resolveEvents(ctx context.Context, run Run) []*auditv1.Event {
	base := map[string]string{
		audit.DetailAgent:           run.Agent,
		audit.DetailTrigger:         run.Context.Trigger.String(),
		audit.DetailRunner:          run.ResolvedBy,
		audit.DetailAllowlistSource: sourceNames[run.AllowlistSource],
	}
	if run.Context.User != "" {
		base[audit.DetailUser] = run.Context.User
	}
	if run.Context.Environment != "" {
		base[audit.DetailEnvironment] = run.Context.Environment
	}
	if run.Context.Strict {
		base[resolver.DetailStrict] = "true"
	}
	outcome := auditv1.Outcome_OUTCOME_OK
	if run.Outcome == OutcomeFailedStrict {
		outcome = auditv1.Outcome_OUTCOME_FAILED
		base[audit.DetailReason] = "strict run with unresolved references: no values were returned"
	}
	type entry struct{ k, v string }
	var entries []entry
	personal, bound := 0, 0
	for _, s := range run.Injected {
		if s.Scope() == runrules.ScopePersonal {
			personal++
			continue
		}
		if s.Binding != nil {
			bound++
		}
		k, v := audit.InjectedDetail(len(entries)+1, s.Name, s.Version)
		entries = append(entries, entry{k, v})
	}
	if personal > 0 {
		base[audit.DetailInjectedPersonalCount] = strconv.Itoa(personal)
	}
	if bound > 0 {
		base[resolver.DetailBoundCount] = strconv.Itoa(bound)
	}
	for i, u := range run.Unresolved {
		k, v := audit.UnresolvedDetail(i+1, u.Name, reasonNames[u.Reason])
		entries = append(entries, entry{k, v})
	}
	// Sizes are estimates of the canonical encoding (key, value and their
	// lengths), with room to spare under runEventBudget.
	cost := func(k, v string) int { return len(k) + len(v) + 16 }
	baseSize := 0
	for k, v := range base {
		baseSize += cost(k, v)
	}
	parts := [][]entry{nil}
	size := baseSize
	for _, e := range entries {
		last := len(parts) - 1
		if len(parts[last]) > 0 && size+cost(e.k, e.v) > runEventBudget {
			parts, last, size = append(parts, nil), last+1, baseSize
		}
		parts[last] = append(parts[last], e)
		size += cost(e.k, e.v)
	}
	evs := make([]*auditv1.Event, 0, len(parts))
	for i, part := range parts {
		details := maps.Clone(base)
		if len(parts) > 1 {
			details[resolver.DetailPart] = fmt.Sprintf("%d/%d", i+1, len(parts))
		}
		for _, e := range part {
			details[e.k] = e.v
		}
		ev := r.s.Event(ctx, audit.ActionRunResolve, run.Name(), run.Team, details)
		ev.Time = timestamppb.New(run.ResolveTime)
		ev.Outcome = outcome
		ev.RunId = run.ID
		evs = append(evs, ev)
	}
	return evs
}
