package runs

import (
	"context"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/ozsecrets/oz/lib/envname"
	"github.com/ozsecrets/oz/lib/hostbind"
	"github.com/ozsecrets/oz/lib/termtext"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver"
)

// What a run's egress proxy did (DESIGN §5.6), as its runner reports it:
// per-host counts at the run's end (EndRun, RunEnd.Egress), and, while the
// run is in flight, the requests it refused (ReportEgressDenials), each an
// audit event. The runner is trusted with the run's values, so these are
// its word; they are validated for shape, so that a record or an event
// holds nothing but host names, secret names, counts and a short reason.

// Bounds of what a runner reports.
const (
	// MaxEgressHosts bounds the hosts of RunEnd.Egress: a run record stays
	// under ~30 KB of them, so a page of ListRuns stays under gRPC's 4 MB.
	MaxEgressHosts = 100
	// MaxEgressDenials bounds the denials of one ReportEgressDenials.
	MaxEgressDenials = 100
	// MaxDenialsPerRun bounds the denials one run records (run.egress_denied
	// events): its runner reports the first of each kind, at most as many.
	MaxDenialsPerRun = 1000
	// MaxDenialReason bounds a denial's reason, in characters.
	MaxDenialReason = 200
)

// EgressCount is what a run's egress proxy did for one host.
type EgressCount struct {
	Host          string // lower-case host name or IP literal, no port
	Substitutions int64  // placeholders replaced by their values in requests to Host
	Denials       int64  // requests to Host refused
}

// EgressDenial is one request a run's egress proxy refused.
type EgressDenial struct {
	Host string
	// SecretName is the host-bound secret whose placeholder the request
	// carried; "" when it carried none (a host outside the run's egress
	// allowlist).
	SecretName string
	Reason     string // for people; never a value
}

// checkHost validates a host as reported by an egress proxy
// (hostbind.IsRequestHost).
func checkHost(field, h string) error {
	switch {
	case h == "":
		return errs.Field(field, "is required: %s", hostbind.RequestHostRule)
	case !hostbind.IsRequestHost(h):
		return errs.Field(field, hostbind.RequestHostRule)
	}
	return nil
}

// checkEgress validates the per-host counts of a run's end.
func checkEgress(egress []EgressCount) error {
	if len(egress) > MaxEgressHosts {
		return errs.Field("egress", "must list at most %d hosts (got %d)", MaxEgressHosts, len(egress))
	}
	seen := make(map[string]bool, len(egress))
	for i, e := range egress {
		f := fmt.Sprintf("egress[%d].", i)
		if err := checkHost(f+"host", e.Host); err != nil {
			return err
		}
		if seen[e.Host] {
			return errs.Field(f+"host", "lists %s again: each host once", e.Host)
		}
		seen[e.Host] = true
		if e.Substitutions < 0 {
			return errs.Field(f+"substitutions", "must not be negative")
		}
		if e.Denials < 0 {
			return errs.Field(f+"denials", "must not be negative")
		}
	}
	return nil
}

// checkDenials validates the denials of one ReportEgressDenials.
func checkDenials(ds []EgressDenial) error {
	if len(ds) == 0 || len(ds) > MaxEgressDenials {
		return errs.Field("denials", "must hold 1 to %d denials (got %d)", MaxEgressDenials, len(ds))
	}
	for i, d := range ds {
		f := fmt.Sprintf("denials[%d].", i)
		if err := checkHost(f+"host", d.Host); err != nil {
			return err
		}
		if d.SecretName != "" {
			// Never quoted: a confused runner may have put a value here.
			if rule, ok := envname.Syntax(d.SecretName, envname.MaxLength); !ok {
				return errs.Field(f+"secret_name", "must be empty or a secret name: it %s", rule)
			}
		}
		switch {
		case d.Reason == "":
			return errs.Field(f+"reason", "is required: why the request was refused")
		case !utf8.ValidString(d.Reason) || utf8.RuneCountInString(d.Reason) > MaxDenialReason:
			return errs.Field(f+"reason", "must be valid UTF-8 of at most %d characters", MaxDenialReason)
		case termtext.HasUnsafe(d.Reason):
			return errs.Field(f+"reason", "%s (%s)", termtext.Rule, termtext.Explain(d.Reason))
		}
	}
	return nil
}

// egressDetails are the run.end event's summary of egress: totals, never
// per host (a run may report a thousand hosts; the record has them).
func egressDetails(details map[string]string, egress []EgressCount) {
	if len(egress) == 0 {
		return
	}
	var subs, denials int64
	for _, e := range egress {
		subs += e.Substitutions
		denials += e.Denials
	}
	details[resolver.DetailEgressHosts] = strconv.Itoa(len(egress))
	details[resolver.DetailEgressSubstitutions] = strconv.FormatInt(subs, 10)
	details[resolver.DetailEgressDenials] = strconv.FormatInt(denials, 10)
}

// ReportEgressDenials records the requests that the egress proxy of run id
// of team refused, each as a run.egress_denied audit event (OUTCOME_DENIED,
// the runner as actor, details host, secret_name when set, and reason).
// Only the runner that resolved it, while it is in flight. The events are
// written in one Apply, on the condition that the run is still as read (in
// flight), and nothing else is: a report sent again is recorded again (the
// runner reports the first denial of each kind and counts the rest in its
// run's end).
//
// Returns Invalid (fields team_id, run_id, denials, denials[i].host,
// denials[i].secret_name, denials[i].reason), PermissionDenied, NotFound,
// FailedPrecondition (not in flight).
func (r *Service) ReportEgressDenials(ctx context.Context, team, id string, denials []EgressDenial) error {
	if err := checkRunID(team, id); err != nil {
		return err
	}
	if err := checkDenials(denials); err != nil {
		return err
	}
	run, raw, err := r.runnersRunInFlight(ctx, team, id, "reports its egress denials")
	if err != nil {
		return err
	}
	var count denialCount
	countKey := resolver.RunDenialsKey(team, id)
	countRaw, err := r.s.Get(ctx, countKey, &count)
	if err != nil && !resolver.IsNotFound(err) {
		return fmt.Errorf("read run denials: %w", err)
	}
	if count.Reported+len(denials) > MaxDenialsPerRun {
		return errs.E(errs.KindResourceExhausted, "run %q has reported %d egress denials; a run records at most %d (its end counts the rest per host)",
			id, count.Reported, MaxDenialsPerRun)
	}
	countCond := kv.Absent(countKey)
	if countRaw != nil {
		countCond = kv.Equal(countKey, countRaw)
	}
	count.Reported += len(denials)
	evs := make([]*auditv1.Event, 0, len(denials))
	for _, d := range denials {
		details := map[string]string{resolver.DetailHost: d.Host, audit.DetailReason: d.Reason}
		if d.SecretName != "" {
			details[resolver.DetailSecretName] = d.SecretName
		}
		ev := r.s.Event(ctx, resolver.ActionRunEgressDenied, run.Name(), team, details)
		ev.RunId = id
		ev.Outcome = auditv1.Outcome_OUTCOME_DENIED
		evs = append(evs, ev)
	}
	err = r.s.Apply(ctx, []kv.Cond{kv.Equal(resolver.RunKey(team, id), raw), countCond},
		[]kv.Write{kv.Put(countKey, resolver.Encode(count))}, evs...)
	switch resolver.Conflict(err) {
	case 0:
		return errs.E(errs.KindFailedPrecondition, "run %q changed meanwhile (its end was reported): denials are reported while a run is in flight", id)
	case 1:
		return errs.E(errs.KindUnavailable, "run %q: another report of its denials was recorded meanwhile; send this one again", id)
	}
	if err != nil {
		return fmt.Errorf("report egress denials: %w", err)
	}
	return nil
}

// denialCount is the record under resolver.RunDenialsKey.
type denialCount struct {
	Reported int `json:"reported"`
}
