package runs

import (
	"slices"
	"time"

	"github.com/ozsecrets/oz/lib/hostbind"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/resolver"
)

// The records of runs, at resolver.RunKey, indexed at RunByTimeKey and,
// while in flight, at RunInFlightKey.

type runContextRecord struct {
	Trigger     string   `json:"trigger"`
	User        string   `json:"user,omitempty"`
	Agent       string   `json:"agent,omitempty"`
	Environment string   `json:"environment,omitempty"`
	Secrets     []string `json:"secrets,omitzero"` // absent: nil; present: [] or names
	Strict      bool     `json:"strict,omitempty"`
}

// injectedRecord is an InjectedSecret as stored: the JSON of its
// runrules.Secret, kept in the names it has always had.
type injectedRecord struct {
	Name                string     `json:"name"`
	Owner               string     `json:"owner"`
	ValueVersion        int64      `json:"value_version"`
	OverridesTeamSecret bool       `json:"overrides_team_secret,omitempty"`
	Created             *time.Time `json:"created,omitempty"`
	// Binding is absent for a secret not bound to hosts, and in records
	// made before bindings: those read as unbound, which they were.
	Binding *bindingRecord `json:"binding,omitempty"`
}

// bindingRecord is a hostbind.Binding as stored.
type bindingRecord struct {
	Hosts      []string `json:"hosts"`
	AllowQuery bool     `json:"allow_query,omitempty"`
	AllowBody  bool     `json:"allow_body,omitempty"`
}

func toBindingRecord(b *hostbind.Binding) *bindingRecord {
	if b == nil {
		return nil
	}
	return &bindingRecord{Hosts: slices.Clone(b.Hosts), AllowQuery: b.AllowQuery, AllowBody: b.AllowBody}
}

func (rec *bindingRecord) binding() *hostbind.Binding {
	if rec == nil || len(rec.Hosts) == 0 {
		return nil
	}
	return &hostbind.Binding{Hosts: slices.Clone(rec.Hosts), AllowQuery: rec.AllowQuery, AllowBody: rec.AllowBody}
}

type unresolvedRecord struct {
	Name   string `json:"name"`
	Reason string `json:"reason"` // "not_found", "restricted"
	Detail string `json:"detail,omitempty"`
}

type runEndRecord struct {
	ExitCode   int            `json:"exit_code"`
	Signal     int            `json:"signal,omitempty"`
	DurationMS int64          `json:"duration_ms"`
	Egress     []egressRecord `json:"egress,omitempty"`
}

type egressRecord struct {
	Host          string `json:"host"`
	Substitutions int64  `json:"substitutions,omitempty"`
	Denials       int64  `json:"denials,omitempty"`
}

// runRecord is a run's record at runs/{team}/{run}; it never holds a value,
// a token or its ticket. Records written before start tickets have no
// state: they were resolved (or failed) when made.
type runRecord struct {
	Team            string             `json:"team"`
	ID              string             `json:"id"`
	Context         runContextRecord   `json:"context"`
	Agent           string             `json:"agent"`
	ResolvedBy      string             `json:"resolved_by,omitempty"`
	CreateTime      time.Time          `json:"create_time"`
	AllowlistSource string             `json:"allowlist_source,omitempty"` // "none", "run", "environment"
	Injected        []injectedRecord   `json:"injected,omitempty"`
	Unresolved      []unresolvedRecord `json:"unresolved,omitempty"`
	Outcome         string             `json:"outcome,omitempty"` // "resolved", "failed_strict"

	State        string        `json:"state,omitempty"` // "started", "resolved", "ended", "failed"
	StartedBy    string        `json:"started_by,omitempty"`
	TicketExpire *time.Time    `json:"ticket_expire_time,omitempty"`
	ResolveTime  *time.Time    `json:"resolve_time,omitempty"`
	EndTime      *time.Time    `json:"end_time,omitempty"`
	End          *runEndRecord `json:"end,omitempty"`
	// Others is Run.Others.
	Others *runViewRecord `json:"others,omitempty"`
}

type runViewRecord struct {
	Injected   []injectedRecord   `json:"injected,omitempty"`
	Unresolved []unresolvedRecord `json:"unresolved,omitempty"`
}

var (
	sourceNames  = map[runrules.AllowlistSource]string{runrules.AllowlistNone: "none", runrules.AllowlistRun: "run", runrules.AllowlistEnvironment: "environment"}
	reasonNames  = map[runrules.Reason]string{runrules.NotFound: "not_found", runrules.Restricted: "restricted", runrules.Reserved: "reserved"}
	outcomeNames = map[Outcome]string{OutcomeResolved: "resolved", OutcomeFailedStrict: "failed_strict"}
)

func lookupName[K comparable](m map[K]string, name string) K {
	for k, v := range m {
		if v == name {
			return k
		}
	}
	var zero K
	return zero
}

func toRunRecord(r Run) runRecord {
	rec := runRecord{
		Team: r.Team, ID: r.ID, Agent: r.Agent, ResolvedBy: r.ResolvedBy, CreateTime: r.CreateTime,
		Context: runContextRecord{
			Trigger: r.Context.Trigger.String(), User: r.Context.User, Agent: r.Context.Agent,
			Environment: r.Context.Environment, Secrets: r.Context.Secrets, Strict: r.Context.Strict,
		},
		AllowlistSource: sourceNames[r.AllowlistSource],
		Outcome:         outcomeNames[r.Outcome],
		State:           stateNames[r.State],
		StartedBy:       r.StartedBy,
		TicketExpire:    timePtr(r.TicketExpire),
		ResolveTime:     timePtr(r.ResolveTime),
		EndTime:         timePtr(r.EndTime),
	}
	if r.End != nil {
		rec.End = &runEndRecord{ExitCode: r.End.ExitCode, Signal: r.End.Signal, DurationMS: r.End.Duration.Milliseconds()}
		for _, e := range r.End.Egress {
			rec.End.Egress = append(rec.End.Egress, egressRecord(e))
		}
	}
	rec.Injected, rec.Unresolved = toViewRecord(RunView{Injected: r.Injected, Unresolved: r.Unresolved})
	if r.Others != nil {
		rec.Others = &runViewRecord{}
		rec.Others.Injected, rec.Others.Unresolved = toViewRecord(*r.Others)
	}
	return rec
}

func toViewRecord(v RunView) (injected []injectedRecord, unresolved []unresolvedRecord) {
	for _, s := range v.Injected {
		injected = append(injected, injectedRecord{Name: s.Name, Owner: s.Owner, ValueVersion: s.Version, OverridesTeamSecret: s.OverridesTeamSecret,
			Created: timePtr(s.Created), Binding: toBindingRecord(s.Binding)})
	}
	for _, u := range v.Unresolved {
		unresolved = append(unresolved, unresolvedRecord{Name: u.Name, Reason: reasonNames[u.Reason], Detail: u.Detail})
	}
	return injected, unresolved
}

func (rec runViewRecord) view() RunView {
	var v RunView
	for _, s := range rec.Injected {
		v.Injected = append(v.Injected, InjectedSecret{
			Secret:              runrules.Secret{Owner: s.Owner, Name: s.Name, Version: s.ValueVersion, Created: timeOf(s.Created), Binding: s.Binding.binding()},
			OverridesTeamSecret: s.OverridesTeamSecret,
		})
	}
	for _, u := range rec.Unresolved {
		v.Unresolved = append(v.Unresolved, UnresolvedReference{Name: u.Name, Reason: lookupName(reasonNames, u.Reason), Detail: u.Detail})
	}
	return v
}

func (rec runRecord) run() Run {
	r := Run{
		Team: rec.Team, ID: rec.ID, Agent: rec.Agent, ResolvedBy: rec.ResolvedBy, CreateTime: rec.CreateTime,
		Context: RunContext{
			Trigger: resolver.ParseTrigger(rec.Context.Trigger), User: rec.Context.User, Agent: rec.Context.Agent,
			Environment: rec.Context.Environment, Secrets: rec.Context.Secrets, Strict: rec.Context.Strict,
		},
		AllowlistSource: lookupName(sourceNames, rec.AllowlistSource),
		Outcome:         lookupName(outcomeNames, rec.Outcome),
		State:           lookupName(stateNames, rec.State),
		StartedBy:       rec.StartedBy,
		TicketExpire:    timeOf(rec.TicketExpire),
		ResolveTime:     timeOf(rec.ResolveTime),
		EndTime:         timeOf(rec.EndTime),
	}
	if rec.End != nil {
		r.End = &RunEnd{ExitCode: rec.End.ExitCode, Signal: rec.End.Signal, Duration: time.Duration(rec.End.DurationMS) * time.Millisecond}
		for _, e := range rec.End.Egress {
			r.End.Egress = append(r.End.Egress, EgressCount(e))
		}
	}
	if r.State == 0 { // made before start tickets: resolved when recorded
		r.State, r.ResolveTime = RunResolved, r.CreateTime
		if r.Outcome == OutcomeFailedStrict {
			r.State = RunFailed
		}
	}
	own := runViewRecord{Injected: rec.Injected, Unresolved: rec.Unresolved}.view()
	r.Injected, r.Unresolved = own.Injected, own.Unresolved
	if rec.Others != nil {
		others := rec.Others.view()
		r.Others = &others
	}
	return r
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// environmentRecord is an environment, at resolver.EnvironmentKey.
type environmentRecord struct {
	Team        string    `json:"team"`
	ID          string    `json:"id"`
	Description string    `json:"description,omitempty"`
	SecretNames []string  `json:"secret_names,omitempty"`
	CreateTime  time.Time `json:"create_time"`
	UpdateTime  time.Time `json:"update_time"`
}
