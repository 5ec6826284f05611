package resolver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ozsecrets/oz/lib/envname"
	"github.com/ozsecrets/oz/lib/sealwire"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/secretstore/runseal"
)

// Run resolution (DESIGN §5): ResolveRun, ExplainRun, GetRun, ListRuns.
// A run is started first (StartRun, tickets.go), which records it and
// returns the start ticket that ResolveRun redeems; its end is reported
// with EndRun (runlife.go).
//
// The decision itself is runrules.Decide, a pure function; this file
// validates a run's context, gathers what the decision needs (the team's
// agent identities, the environment's list, the candidates' metadata from
// the secretstore), records the result and hands the sealed values on. The
// resolver never holds a value: the secretstore selects the values with
// runrules.Select from the selection derived here (runrules.SelectionFor)
// and seals them to the runner's key; ResolveRun checks that what it sealed
// is exactly what Decide injects.
//
// Decisions:
//   - Field syntax is checked first (InvalidArgument naming the field),
//     then permission (PermissionDenied), then existence.
//   - A triggering user who is not a member of the team (or does not
//     exist) is PermissionDenied: the run may not act for that user.
//   - An agent identity or environment that does not exist in the team is
//     InvalidArgument naming context.agent or context.environment: it is a
//     reference inside the request, not the resource asked for.
//   - Run ids follow the team/user id rule ([a-z][a-z0-9-]*, at most 63
//     characters). Generated ids are "run-<12 hex digits of Unix
//     milliseconds>-<10 random hex digits>", so they sort by time.
//   - A strict run with unresolved references is not an error: it is
//     recorded with outcome OutcomeFailedStrict, nothing injected, and no
//     sealed values are returned.
//   - Another user's personal secrets are never named to anyone but that
//     user: run records redact them (Redacted, no name, owner or version)
//     for every other reader, system admins and runners included;
//     ExplainRun leaves them out when the caller is not the triggering user
//     and says so in a note (without a count).
//   - context.start_token is refused everywhere: a run is started by the
//     principal its trigger speaks for (StartRun), not by a token handed
//     to the runner.
//   - Reserved names (envname) are never injected: a secret made before
//     its name was reserved is a candidate excluded as reserved, and an
//     allowlisted reserved name is unresolved, reason reserved.

// Sealer is the secretstore's internal RunSecretsService as run resolution
// uses it. grpcapi.NewSealer adapts a gRPC connection to it; the
// secretstore's own server implements it in-process.
//
// SealRunSecrets returns the metadata of every secret of the selection's
// owners, the selected secrets and, when the request has a recipient, the
// selected values sealed to it with one HPKE encapsulation. Errors are gRPC
// status errors or errs kinds.
type Sealer interface {
	SealRunSecrets(ctx context.Context, req *internalapiv1.SealRunSecretsRequest) (*internalapiv1.SealRunSecretsResponse, error)
}

// Runs resolves, explains and records agent runs, on the records of a
// Directory. It is safe for concurrent use.
type Runs struct {
	dir    *Directory
	sealer Sealer
}

// NewRuns returns Runs over dir's records, reading candidates and sealing
// values through sealer. Both are required.
func NewRuns(dir *Directory, sealer Sealer) *Runs {
	if dir == nil || sealer == nil {
		panic("resolver.NewRuns: dir and sealer are required")
	}
	return &Runs{dir: dir, sealer: sealer}
}

// Trigger is what started a run. The values are those of the wire enum
// oz.scope.v1.Trigger.
type Trigger int

const (
	TriggerCLI Trigger = iota + 1
	TriggerSlack
	TriggerLinear
	TriggerWeb
	TriggerAPI
	TriggerSchedule
	TriggerIntegration
)

var triggerNames = []string{"", "cli", "slack", "linear", "web", "api", "schedule", "integration"}

// Triggers lists every trigger, user-initiated ones first.
var Triggers = []Trigger{TriggerCLI, TriggerSlack, TriggerLinear, TriggerWeb, TriggerAPI, TriggerSchedule, TriggerIntegration}

// Valid reports whether t is one of Triggers.
func (t Trigger) Valid() bool { return t >= TriggerCLI && t <= TriggerIntegration }

// String is the trigger's lowercase name ("cli", "schedule"), "unknown"
// for an invalid one.
func (t Trigger) String() string {
	if !t.Valid() {
		return "unknown"
	}
	return triggerNames[t]
}

// UserInitiated reports whether t carries the triggering user (cli, slack,
// linear, web, api); the others (schedule, integration) carry none.
func (t Trigger) UserInitiated() bool { return t >= TriggerCLI && t <= TriggerAPI }

func parseTriggerName(s string) Trigger {
	for _, t := range Triggers {
		if t.String() == s {
			return t
		}
	}
	return 0
}

const triggerRule = "must be one of cli, slack, linear, web, api (user-initiated) or schedule, integration (user-less)"

// RunContext is everything the decision depends on.
type RunContext struct {
	Trigger Trigger
	// User is the triggering user, "users/{user}" or "{user}", for
	// user-initiated triggers; empty for user-less ones. Records keep it as
	// "users/{user}".
	User string
	// Agent is the identity id to execute as; empty: the start token's
	// identity, else the team's default.
	Agent string
	// Environment is an environment id; its secret names are the default
	// allowlist.
	Environment string
	// Secrets is the run's own list: nil when absent; non-nil, even empty,
	// when present (the allowlist; empty: nothing is injected).
	Secrets []string
	// Strict fails the run, returning no values, when a reference is
	// unresolved.
	Strict bool
	// StartToken is no longer accepted: a run is started with StartRun by
	// the principal its trigger speaks for. A request that sets it is
	// refused, naming the field; it is never stored or returned.
	StartToken string
}

// RunState is where a run is in its life (DESIGN §5.0).
type RunState int

const (
	// RunStarted: StartRun issued its ticket; no runner redeemed it yet.
	RunStarted RunState = iota + 1
	// RunResolved: a runner redeemed the ticket and received the values;
	// the run is in flight until the runner reports its end.
	RunResolved
	// RunEnded: the runner reported the command's end.
	RunEnded
	// RunFailed: a strict run with unresolved references; nothing was
	// handed out.
	RunFailed
	// RunExpired: the ticket expired before any runner redeemed it.
	RunExpired
)

var stateNames = map[RunState]string{RunStarted: "started", RunResolved: "resolved", RunEnded: "ended", RunFailed: "failed", RunExpired: "expired"}

// String is the state's lowercase name ("resolved").
func (s RunState) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return "unknown"
}

// RunEnd is how a run's command ended, as its runner reported it.
type RunEnd struct {
	ExitCode int // 128+N when signal N killed it
	Signal   int // the signal that killed it; 0: none
	Duration time.Duration
}

// ValueState says whether a run in flight still holds an injected
// secret's current value.
type ValueState int

const (
	// ValueCurrent: the run holds the current value.
	ValueCurrent ValueState = iota + 1
	// ValueRotated: the value was rotated since the run received it.
	ValueRotated
	// ValueDeleted: the secret was deleted since.
	ValueDeleted
)

// Outcome is how a resolution ended.
type Outcome int

const (
	// OutcomeResolved: values were returned to the runner.
	OutcomeResolved Outcome = iota + 1
	// OutcomeFailedStrict: a strict run with unresolved references;
	// nothing was returned.
	OutcomeFailedStrict
)

// InjectedSecret is one secret a run received (metadata only).
type InjectedSecret struct {
	Name         string
	Owner        string // "teams/{team}" or "users/{user}"
	ValueVersion int64
	// OverridesTeamSecret: a personal secret that took the place of a team
	// secret of the same name.
	OverridesTeamSecret bool
	// Redacted: another user's personal secret; Name, Owner and
	// ValueVersion are cleared.
	Redacted bool
	// ValueState: for a run in flight, whether its value is still the
	// current one; zero when not checked.
	ValueState ValueState
	// Created is when the injected secret was created (the secretstore's
	// clock), which tells a secret deleted and made again under its name
	// from the one the run received. Recorded, never shown.
	Created time.Time
}

// Scope says whether s is a team or a personal secret.
func (s InjectedSecret) Scope() runrules.Scope {
	if s.Redacted {
		return runrules.ScopePersonal
	}
	return runrules.Secret{Owner: s.Owner}.Scope()
}

// UnresolvedReference is an allowlisted name that resolved to nothing.
type UnresolvedReference struct {
	Name   string
	Reason runrules.Reason
	Detail string // for people: "restricted to agent identities: deployer"
}

// Run is a run's record. It never holds a value, a token or its ticket.
type Run struct {
	Team            string
	ID              string
	Context         RunContext // as started (narrowed by its runner), User as "users/{user}"
	Agent           string     // the identity the run executes as
	ResolvedBy      string     // "runners/{runner}"; "" until resolved
	CreateTime      time.Time  // when it was started
	AllowlistSource runrules.AllowlistSource
	Injected        []InjectedSecret // by name; none when the run failed
	Unresolved      []UnresolvedReference
	Outcome         Outcome // zero until resolved

	State RunState
	// StartedBy is who started it: "users/{user}",
	// "teams/{team}/agents/{agent}" or
	// "teams/{team}/integrations/{integration}" ("" for a run resolved
	// before tickets existed).
	StartedBy    string
	TicketExpire time.Time // until when its ticket could be redeemed
	ResolveTime  time.Time
	EndTime      time.Time
	End          *RunEnd // set once the runner reported the end
	// HoldsStaleValues: in flight, and holding a value rotated or deleted
	// since (see InjectedSecret.ValueState).
	HoldsStaleValues bool
}

// InFlight reports whether the run's values are out: resolved, and its
// end not reported yet.
func (r Run) InFlight() bool { return r.State == RunResolved }

// Name is the run's resource name, "teams/{team}/runs/{run}".
func (r Run) Name() string { return RunName(r.Team, r.ID) }

// AnyTeam is the team of a ResolveRequest that takes the ticket's team,
// whichever it is (the request's parent "teams/-").
const AnyTeam = "-"

// ResolveRequest asks for one run's resolution: the redemption of its
// start ticket.
type ResolveRequest struct {
	Team   string // team id, or AnyTeam
	Ticket string // the start ticket ("ozt_…") from StartRun
	// Context, when set, must agree with the ticket's: each field set
	// equal to the ticket's, except that Secrets may narrow the ticket's
	// (present and empty, or a subset of the ticket's own list) and Strict
	// may be set.
	Context   *RunContext
	RunID     string // empty, or the ticket's run id
	Recipient *scopev1.RecipientKey
}

// Resolution is a resolved run: its record and, unless it failed, its
// values sealed to the recipient.
type Resolution struct {
	Run    Run
	Sealed *scopev1.SealedValues
}

// CandidateDecision is one candidate secret's fate, for ExplainRun.
type CandidateDecision struct {
	Name         string
	Owner        string
	ValueVersion int64
	Decision     runrules.Decision
	Detail       string
}

// Scope says whether c is a team or a personal secret.
func (c CandidateDecision) Scope() runrules.Scope { return runrules.Secret{Owner: c.Owner}.Scope() }

// Explanation is ExplainRun's answer.
type Explanation struct {
	Context         RunContext
	Agent           string
	AllowlistSource runrules.AllowlistSource
	Allowlist       []string
	Candidates      []CandidateDecision
	Unresolved      []UnresolvedReference
	Notes           []string
	// WouldFailStrict: ResolveRun with strict set would fail.
	WouldFailStrict bool
}

// RunFilter narrows ListRuns; zero fields match any run.
type RunFilter struct {
	Agent   string
	Trigger Trigger
	Start   time.Time // runs created at or after
	End     time.Time // runs created before
	// InFlight: only runs in flight (resolved, their end not reported),
	// read from their own index rather than the team's whole history.
	InFlight bool
}

// ValidRunID reports whether id is a valid run id: the team/user id rule.
func ValidRunID(id string) bool { return ValidID(id) }

// RunIDRule says what a run id may be, for error messages.
const RunIDRule = IDRule

// newRunID returns a fresh run id that sorts by its creation time.
func newRunID(now time.Time) string {
	var b [5]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	ms := uint64(now.UnixMilli()) & (1<<48 - 1)
	return fmt.Sprintf("run-%012x-%s", ms, hex.EncodeToString(b[:]))
}

// Records.

type runContextRecord struct {
	Trigger     string   `json:"trigger"`
	User        string   `json:"user,omitempty"`
	Agent       string   `json:"agent,omitempty"`
	Environment string   `json:"environment,omitempty"`
	Secrets     []string `json:"secrets,omitzero"` // absent: nil; present: [] or names
	Strict      bool     `json:"strict,omitempty"`
}

type injectedRecord struct {
	Name                string     `json:"name"`
	Owner               string     `json:"owner"`
	ValueVersion        int64      `json:"value_version"`
	OverridesTeamSecret bool       `json:"overrides_team_secret,omitempty"`
	Created             *time.Time `json:"created,omitempty"`
}

type unresolvedRecord struct {
	Name   string `json:"name"`
	Reason string `json:"reason"` // "not_found", "restricted"
	Detail string `json:"detail,omitempty"`
}

type runEndRecord struct {
	ExitCode   int   `json:"exit_code"`
	Signal     int   `json:"signal,omitempty"`
	DurationMS int64 `json:"duration_ms"`
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
	}
	for _, s := range r.Injected {
		rec.Injected = append(rec.Injected, injectedRecord{Name: s.Name, Owner: s.Owner, ValueVersion: s.ValueVersion, OverridesTeamSecret: s.OverridesTeamSecret, Created: timePtr(s.Created)})
	}
	for _, u := range r.Unresolved {
		rec.Unresolved = append(rec.Unresolved, unresolvedRecord{Name: u.Name, Reason: reasonNames[u.Reason], Detail: u.Detail})
	}
	return rec
}

func (rec runRecord) run() Run {
	r := Run{
		Team: rec.Team, ID: rec.ID, Agent: rec.Agent, ResolvedBy: rec.ResolvedBy, CreateTime: rec.CreateTime,
		Context: RunContext{
			Trigger: parseTriggerName(rec.Context.Trigger), User: rec.Context.User, Agent: rec.Context.Agent,
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
	}
	if r.State == 0 { // made before start tickets: resolved when recorded
		r.State, r.ResolveTime = RunResolved, r.CreateTime
		if r.Outcome == OutcomeFailedStrict {
			r.State = RunFailed
		}
	}
	for _, s := range rec.Injected {
		r.Injected = append(r.Injected, InjectedSecret{Name: s.Name, Owner: s.Owner, ValueVersion: s.ValueVersion, OverridesTeamSecret: s.OverridesTeamSecret, Created: timeOf(s.Created)})
	}
	for _, u := range rec.Unresolved {
		r.Unresolved = append(r.Unresolved, UnresolvedReference{Name: u.Name, Reason: lookupName(reasonNames, u.Reason), Detail: u.Detail})
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

// The runsbytime index: runsbytime/{team}/{inverted time}/{run}, where the
// inverted time is 16 lowercase hex digits of MaxUint64 minus the creation
// time in Unix nanoseconds, so that a scan lists the newest first.
const invertedLen = 16

func invertedTime(t time.Time) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], math.MaxUint64-uint64(t.UnixNano()))
	return hex.EncodeToString(b[:])
}

func runByTimeKey(team string, t time.Time, id string) string {
	return runsByTimePrefix(team) + invertedTime(t) + "/" + id
}

// Validation of a run context.

// normalize checks rc's syntax and returns it with User as "users/{user}",
// and the user id ("" for user-less triggers). Errors name the field.
func normalize(rc RunContext) (RunContext, string, error) {
	switch {
	case rc.Trigger == 0:
		return rc, "", errs.Field("context.trigger", "is required: it %s", triggerRule)
	case !rc.Trigger.Valid():
		return rc, "", errs.Field("context.trigger", triggerRule)
	}
	var user string
	switch {
	case rc.Trigger.UserInitiated() && rc.User == "":
		return rc, "", errs.Field("context.user", "is required for user-initiated triggers (%s): the triggering user", rc.Trigger)
	case !rc.Trigger.UserInitiated() && rc.User != "":
		return rc, "", errs.Field("context.user", "must be empty for user-less triggers (%s): they carry no user", rc.Trigger)
	case rc.User != "":
		user = strings.TrimPrefix(rc.User, "users/")
		if !ValidID(user) || user == Me {
			return rc, "", errs.Field("context.user", `must be "users/{user}" or "{user}"; {user} %s and not "me"`, IDRule)
		}
		rc.User = UserName(user)
	}
	if rc.Agent != "" && !ValidID(rc.Agent) {
		return rc, "", errs.Field("context.agent", "must be empty or an agent identity id: it %s", IDRule)
	}
	if rc.Environment != "" && !ValidID(rc.Environment) {
		return rc, "", errs.Field("context.environment", "must be empty or an environment id: it %s", IDRule)
	}
	// The names follow the rule of identities' and environments' lists.
	if err := checkSecretNames("context.secrets.names", rc.Secrets); err != nil {
		return rc, "", err
	}
	return rc, user, nil
}

// granted reports whether p is a runner granted team.
func granted(p *auth.Principal, team string) bool {
	if p == nil || p.Kind != auth.KindRunner {
		return false
	}
	_, ok := p.Teams[team]
	return ok
}

// mayRead reports whether p may read team's run records: its members (people),
// system admins, and runners granted the team.
func mayRead(p *auth.Principal, team string) bool {
	return (p.IsHuman() && (p.SystemAdmin || p.IsMember(team))) || granted(p, team)
}

// prepared is a validated run context with everything the decision needs
// except the candidates.
type prepared struct {
	team  string
	rc    RunContext // normalized, StartToken cleared
	user  string     // user id; "" for user-less triggers
	input runrules.Input
	env   string // environment id, "" when none
	// userRole is the triggering user's role in the team (RoleNone for
	// user-less triggers); policy the start policy of the identity the
	// run executes as (for StartRun).
	userRole auth.Role
	policy   StartPolicy
}

// prepare checks what rc refers to, in team, and gathers the decision's
// input. The caller has checked rc's syntax (normalize) and permission.
func (r *Runs) prepare(ctx context.Context, team string, rc RunContext, user string, teamExists bool) (prepared, error) {
	d := r.dir
	if !teamExists {
		if _, err := d.team(ctx, team); err != nil {
			return prepared{}, err
		}
	}
	role := auth.RoleNone
	if user != "" {
		var m membershipRecord
		if _, err := d.get(ctx, memberKey(team, user), &m); err != nil {
			if isNotFound(err) {
				return prepared{}, denied("context.user: user %q is not a member of team %q: a run may act only for a member", user, team)
			}
			return prepared{}, fmt.Errorf("read membership: %w", err)
		}
		role = m.membership().Role
	}
	agent := rc.Agent
	if agent == "" {
		agent = DefaultAgentID
	}
	// The default identity always exists (a team created before identities
	// existed may lack its record); any other must be there.
	policy := StartPolicyMembers
	if agent != DefaultAgentID {
		rec, _, err := d.agentRecord(ctx, team, agent)
		if err != nil {
			if isNotFound(err) {
				return prepared{}, errs.Field("context.agent", "no agent identity %q in team %q", agent, team)
			}
			return prepared{}, err
		}
		policy = rec.policy()
	}
	in := runrules.Input{Team: TeamName(team), Agent: agent, RunList: rc.Secrets}
	if user != "" {
		in.User = UserName(user)
	}
	if rc.Environment != "" {
		env, _, err := d.environmentRecord(ctx, team, rc.Environment)
		if isNotFound(err) {
			return prepared{}, errs.Field("context.environment", "no environment %q in team %q", rc.Environment, team)
		}
		if err != nil {
			return prepared{}, err
		}
		in.EnvList = env.SecretNames
	}
	ids, err := d.teamIdentities(ctx, team)
	if err != nil {
		return prepared{}, err
	}
	in.Identities = ids
	rc.StartToken = ""
	return prepared{team: team, rc: rc, user: user, input: in, env: rc.Environment, userRole: role, policy: policy}, nil
}

// startTokenRefused is the answer to a request that still sends
// context.start_token.
func startTokenRefused() error {
	return errs.Field("context.start_token", "is no longer accepted: the run is started with StartRun (oz run start) by the token that starts it — an agent identity's token starts runs as that identity — and the runner redeems the ticket")
}

// seal asks the secretstore for the candidates of in and, with a
// recipient, for the selected values sealed to it; it decides with
// runrules.Decide and checks that the secretstore selected exactly what
// Decide injects.
func (r *Runs) seal(ctx context.Context, in runrules.Input, recipient *scopev1.RecipientKey, info []byte) (runrules.Result, *scopev1.SealedValues, error) {
	sel := runrules.SelectionFor(in)
	req := &internalapiv1.SealRunSecretsRequest{
		Selection: &internalapiv1.Selection{Owners: sel.Owners},
		Recipient: recipient,
		Info:      info,
	}
	for _, e := range sel.Excluded {
		req.Selection.Excluded = append(req.Selection.Excluded, &internalapiv1.SecretRef{Owner: e.Owner, Name: e.Name})
	}
	if sel.Allowlist != nil {
		req.Selection.Allowlist = &scopev1.SecretNameList{Names: sel.Allowlist}
	}
	resp, err := r.sealer.SealRunSecrets(ctx, req)
	if err != nil {
		return runrules.Result{}, nil, sealerError(err)
	}
	in.Candidates = secretsOf(resp.GetCandidates())
	res := runrules.Decide(in)
	want := map[runrules.Secret]bool{}
	for _, c := range res.Injected() {
		want[c.Secret] = true
	}
	selected := secretsOf(resp.GetSelected())
	if len(selected) != len(want) {
		return runrules.Result{}, nil, fmt.Errorf("seal run secrets: the secret store selected %d secrets, the decision injects %d", len(selected), len(want))
	}
	for _, s := range selected {
		if !want[s] {
			return runrules.Result{}, nil, fmt.Errorf("seal run secrets: the secret store selected %s/%s@%d, which the decision does not inject", s.Owner, s.Name, s.Version)
		}
	}
	if recipient != nil && resp.GetSealed() == nil {
		return runrules.Result{}, nil, errors.New("seal run secrets: the secret store sealed nothing")
	}
	return res, resp.GetSealed(), nil
}

func secretsOf(refs []*internalapiv1.SecretRef) []runrules.Secret {
	out := make([]runrules.Secret, len(refs))
	for i, ref := range refs {
		out[i] = runrules.Secret{Owner: ref.GetOwner(), Name: ref.GetName(), Version: ref.GetValueVersion()}
		if ref.GetCreateTime() != nil {
			out[i].Created = ref.GetCreateTime().AsTime()
		}
	}
	return out
}

// sealerError turns the secretstore's error into one for the runner: a
// recipient key the secretstore could not encapsulate to is the caller's
// fault; an unreachable secretstore is Unavailable; anything else is
// internal (its text is logged, not returned).
func sealerError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var e *errs.Error
	if !errors.As(err, &e) {
		if k, ok := errs.FromStatus(err).(*errs.Error); ok {
			e = k
		}
	}
	if e != nil {
		switch {
		case e.Kind == errs.KindInvalid && (e.Field == "recipient.public_key" || strings.HasPrefix(e.Message, "recipient.public_key:")):
			return errs.Field("recipient.public_key", "cannot be encapsulated to with its HPKE KEM")
		case e.Kind == errs.KindUnavailable:
			return &errs.Error{Kind: errs.KindUnavailable, Message: "the secret store is unavailable; try again", Err: err}
		}
	}
	return fmt.Errorf("seal run secrets: %v", err) // no %w: not the runner's kind
}

// ResolveRun redeems req.Ticket (DESIGN §5.0): it decides which secrets the
// run receives, records the decision durably, and returns the record with
// the values sealed to req.Recipient (with one HPKE encapsulation, info
// sealwire.RunInfo of the run's name). The context is the ticket's, narrowed
// as req.Context says. A strict run with unresolved references is
// recorded with outcome OutcomeFailedStrict and nothing injected, and
// returns no values. Runners granted the ticket's team only; a ticket is
// redeemed once, before it expires. Nothing is recorded when it fails, but
// every refusal is audited (request.denied, in the ticket's team's chain
// when the ticket is known).
//
// Returns Invalid (fields team_id, run_id, recipient, recipient.kem_id,
// recipient.public_key and the context's), PermissionDenied (not a
// runner; no, an unknown, a redeemed or an expired ticket; a ticket of
// another team or of a team the runner is not granted; a context that
// does not agree with the ticket's; a user who is no longer a member),
// NotFound (team), Unavailable (secretstore).
func (r *Runs) ResolveRun(ctx context.Context, req ResolveRequest) (Resolution, error) {
	if req.Team != AnyTeam {
		if err := checkID("team_id", req.Team); err != nil {
			return Resolution{}, err
		}
	}
	if req.RunID != "" && !ValidRunID(req.RunID) {
		return Resolution{}, errs.Field("run_id", "must be empty or the ticket's run id: it %s", RunIDRule)
	}
	if req.Recipient == nil {
		return Resolution{}, errs.Field("recipient", "is required: the HPKE public key the values are sealed to")
	}
	if _, err := runseal.ParseRecipient(req.Recipient.GetKemId(), req.Recipient.GetPublicKey()); err != nil {
		return Resolution{}, err
	}
	if req.Context != nil {
		if err := checkGiven(*req.Context); err != nil {
			return Resolution{}, err
		}
	}
	p, err := caller(ctx)
	if err != nil {
		return Resolution{}, err
	}
	if p.Kind != auth.KindRunner {
		return Resolution{}, denied("only runners redeem start tickets; a run is started with StartRun (oz run start) by the principal its trigger speaks for")
	}
	if req.Ticket == "" {
		return Resolution{}, denied("a start ticket is required: the run's trigger starts it with StartRun (a member: oz run start; an agent identity's or an integration's token likewise), which returns the ticket, and the runner redeems it (oz exec --ticket-env VAR)")
	}
	tk, err := r.ticket(ctx, req.Ticket)
	if err != nil {
		return Resolution{}, err
	}
	// From here on a refusal is about the ticket's run, in its team.
	server.AuditResource(ctx, RunName(tk.Team, tk.Run), tk.Run)
	if req.Team != AnyTeam && req.Team != tk.Team {
		return Resolution{}, denied("the start ticket belongs to another team than %q", req.Team)
	}
	if !granted(p, tk.Team) {
		return Resolution{}, denied("only runners granted team %q, the ticket's team, may redeem it", tk.Team)
	}
	var started runRecord
	startedRaw, err := r.dir.get(ctx, runKey(tk.Team, tk.Run), &started)
	if err != nil {
		return Resolution{}, fmt.Errorf("read run: %w", err)
	}
	run := started.run()
	now := r.dir.clock()
	switch {
	case run.State != RunStarted:
		return Resolution{}, denied("the start ticket was redeemed already (run %q is %s): a ticket starts one run; start a new run", tk.Run, run.State)
	case !now.Before(run.TicketExpire):
		return Resolution{}, denied("the start ticket expired at %s: start the run again", run.TicketExpire.Format(time.RFC3339))
	case req.RunID != "" && req.RunID != tk.Run:
		return Resolution{}, denied("run_id: the ticket is for run %q", tk.Run)
	}
	rc, err := narrow(run.Context, req.Context)
	if err != nil {
		return Resolution{}, err
	}
	run.Context = rc
	user := strings.TrimPrefix(rc.User, "users/")
	// The decision's inputs are read with a ReadSet, and their being
	// unchanged is a condition of the record's write (see WithReadSet): on
	// etcd they are serializable reads, with no quorum round. A stale read,
	// or a change made meanwhile, fails the write, and the resolution is
	// made again with ordinary reads; so is one whose inputs made it fail
	// before the write (a stale read must not refuse a run either).
	rctx, reads := kv.WithReadSet(ctx)
	res, err := r.resolve(rctx, run, startedRaw, user, p, req.Recipient, reads)
	if errors.Is(err, errStaleReads) {
		res, err = r.resolve(ctx, run, startedRaw, user, p, req.Recipient, nil)
	}
	return res, err
}

// errStaleReads: a resolution's ReadSet did not hold at its write, or its
// inputs refused it; it is made again with ordinary reads.
var errStaleReads = errors.New("resolution inputs changed or read stale")

// resolve is one attempt of ResolveRun on the started run (stored as
// startedRaw), its request checked: it decides, seals and records. With
// reads (the ReadSet of ctx), the record's write is conditional on them,
// and an error that may come from a stale read is errStaleReads.
func (r *Runs) resolve(ctx context.Context, run Run, startedRaw []byte, user string, p *auth.Principal, recipient *scopev1.RecipientKey, reads *kv.ReadSet) (Resolution, error) {
	// A runner is granted only teams that existed when it was created
	// (CreateRunner's conditions), and teams are never deleted: the team
	// needs no read here (on etcd, one quorum read fewer per run).
	prep, err := r.prepare(ctx, run.Team, run.Context, user, true)
	if err != nil {
		if reads != nil {
			return Resolution{}, errStaleReads
		}
		return Resolution{}, err
	}
	res, sealed, err := r.seal(ctx, prep.input, recipient, sealwire.RunInfo(run.Name()))
	if err != nil {
		return Resolution{}, err
	}
	now := r.dir.clock()
	run.Agent, run.ResolvedBy, run.ResolveTime = prep.input.Agent, p.Name, now
	run.AllowlistSource, run.Outcome, run.State = res.Source, OutcomeResolved, RunResolved
	run.Unresolved = unresolvedOf(res.Unresolved)
	if run.Context.Strict && len(res.Unresolved) > 0 {
		run.Outcome, run.State = OutcomeFailedStrict, RunFailed
		sealed = nil // never handed out
	} else {
		for _, c := range res.Injected() {
			run.Injected = append(run.Injected, InjectedSecret{Name: c.Name, Owner: c.Owner, ValueVersion: c.Version, OverridesTeamSecret: c.OverridesTeam, Created: c.Created})
		}
	}
	// The record and its run.resolve event commit together, before
	// anything is returned: no values without an event, no event for a run
	// that was not recorded. The run must still be as started: a ticket is
	// redeemed once.
	key := runKey(run.Team, run.ID)
	writes := []kv.Write{kv.Put(key, encode(toRunRecord(run)))}
	if run.InFlight() {
		writes = append(writes, kv.Put(runInFlightKey(run.Team, run.CreateTime, run.ID), marker))
	}
	evs := r.dir.resolveEvents(ctx, run)
	if 2+len(writes)+len(evs) > maxApplyOps {
		return Resolution{}, fmt.Errorf("record run: its audit event needs %d parts, more than one write holds", len(evs))
	}
	// The team's presence is a condition of the write rather than a read
	// before it (see prepare above): nothing is recorded, nor returned, for
	// a team that is not there.
	conds := []kv.Cond{kv.Equal(key, startedRaw), kv.Present(teamKey(run.Team))}
	if reads != nil {
		conds = append(conds, kv.Unchanged(reads))
	}
	err = r.dir.apply(ctx, conds, writes, evs...)
	switch conflict(err) {
	case 0:
		if reads != nil {
			return Resolution{}, errStaleReads // read again: redeemed meanwhile, or a stale read
		}
		return Resolution{}, denied("the start ticket was redeemed already (run %q): a ticket starts one run; start a new run", run.ID)
	case 1:
		return Resolution{}, errs.E(errs.KindNotFound, "team %q not found", run.Team)
	case 2:
		return Resolution{}, errStaleReads
	}
	if err != nil {
		return Resolution{}, fmt.Errorf("record run: %w", err)
	}
	for i := range run.Injected {
		run.Injected[i].ValueState = ValueCurrent // as of now, by definition
	}
	return Resolution{Run: run, Sealed: sealed}, nil
}

func runExists(team, id string) error {
	return errs.E(errs.KindAlreadyExists, "run %q already exists in team %q: run ids are never reused", id, team)
}

func unresolvedOf(us []runrules.Unresolved) []UnresolvedReference {
	var out []UnresolvedReference
	for _, u := range us {
		ref := UnresolvedReference{Name: u.Name, Reason: u.Reason}
		switch u.Reason {
		case runrules.Restricted:
			ref.Detail = "restricted to agent identities: " + strings.Join(u.RestrictedTo, ", ")
		case runrules.Reserved:
			ref.Detail = reservedDetail(u.Name)
		default:
			ref.Detail = "no secret named " + u.Name + " is available to this run"
		}
		out = append(out, ref)
	}
	return out
}

// reservedDetail says why a reserved name is never injected.
func reservedDetail(name string) string {
	r, _ := envname.Check(name)
	return r.Explain(name) + "; it is never injected"
}

// ExplainRun makes ResolveRun's decision for rc without values and says
// why for every candidate. Members of the team (people) and system admins.
// Personal candidates are shown to the triggering user only; anyone else
// gets a note instead, and a team secret they override is said to be
// "overridden by a personal secret of the triggering user".
//
// Returns Invalid (the fields of ResolveRun's context, and
// context.start_token, which it does not accept), PermissionDenied,
// NotFound (team), Unavailable (secretstore).
func (r *Runs) ExplainRun(ctx context.Context, team string, rc RunContext) (Explanation, error) {
	if err := checkID("team_id", team); err != nil {
		return Explanation{}, err
	}
	rc, user, err := normalize(rc)
	if err != nil {
		return Explanation{}, err
	}
	if rc.StartToken != "" {
		return Explanation{}, startTokenRefused()
	}
	p, err := caller(ctx)
	if err != nil {
		return Explanation{}, err
	}
	if !p.IsHuman() || !(p.SystemAdmin || p.IsMember(team)) {
		return Explanation{}, denied("only members of team %q may explain its runs", team)
	}
	prep, err := r.prepare(ctx, team, rc, user, false)
	if err != nil {
		return Explanation{}, err
	}
	res, _, err := r.seal(ctx, prep.input, nil, nil)
	if err != nil {
		return Explanation{}, err
	}
	showPersonal := user != "" && p.ID == user
	return explain(prep, res, showPersonal), nil
}

func explain(prep prepared, res runrules.Result, showPersonal bool) Explanation {
	in := prep.input
	ex := Explanation{
		Context: prep.rc, Agent: in.Agent, AllowlistSource: res.Source, Allowlist: res.Allowlist,
		Unresolved: unresolvedOf(res.Unresolved), WouldFailStrict: len(res.Unresolved) > 0,
	}
	listName := "the run's list"
	if res.Source == runrules.AllowlistEnvironment {
		listName = fmt.Sprintf("the list of environment %q", prep.env)
	}
	for _, c := range res.Candidates {
		if c.Scope() == runrules.ScopePersonal && !showPersonal {
			continue // another user's: not even its name
		}
		cd := CandidateDecision{Name: c.Name, Owner: c.Owner, ValueVersion: c.Version, Decision: c.Decision}
		switch c.Decision {
		case runrules.Injected:
			cd.Detail = "injected"
			if c.OverridesTeam {
				cd.Detail = "injected: this personal secret takes the place of the team secret of the same name"
			}
		case runrules.ExcludedNotInAllowlist:
			cd.Detail = "not in " + listName
		case runrules.ExcludedRestricted:
			cd.Detail = fmt.Sprintf("restricted to agent identities: %s (the run executes as %s)", strings.Join(c.RestrictedTo, ", "), in.Agent)
		case runrules.ExcludedOverridden:
			cd.Detail = "overridden by a personal secret of the triggering user"
		case runrules.ExcludedReserved:
			cd.Detail = reservedDetail(c.Name)
		}
		ex.Candidates = append(ex.Candidates, cd)
	}

	note := func(format string, args ...any) { ex.Notes = append(ex.Notes, fmt.Sprintf(format, args...)) }
	if prep.rc.Agent == "" && in.Agent == DefaultAgentID {
		note("the run executes as the team's default identity %q: no identity was chosen", DefaultAgentID)
	} else {
		note("the run executes as agent identity %q", in.Agent)
	}
	switch {
	case in.User == "":
		note("personal secrets are not given to user-less triggers (%s)", prep.rc.Trigger)
	case showPersonal:
		note("your personal secrets are candidates, and take the place of team secrets of the same name")
	default:
		note("personal secrets of the triggering user (%s) are candidates but are not shown: only they may see them", in.User)
	}
	switch res.Source {
	case runrules.AllowlistRun:
		if len(res.Allowlist) == 0 {
			note("the run's own list is empty: nothing is injected")
		} else {
			note("the run's own list is the allowlist")
		}
		if prep.env != "" {
			note("the run's own list takes precedence over the list of environment %q", prep.env)
		}
	case runrules.AllowlistEnvironment:
		note("environment %q lists the allowlist", prep.env)
	default:
		if prep.env != "" {
			note("environment %q lists no secret names: there is no allowlist", prep.env)
		}
		note("no allowlist: every available candidate is injected")
	}
	if ex.WouldFailStrict {
		note("with strict set, ResolveRun would fail: %d reference(s) are unresolved", len(res.Unresolved))
	}
	return ex
}

// GetRun returns run id of team. Members of the team (people), system
// admins, and runners granted the team. Other users' personal secrets are
// redacted; a run in flight says which of its values are stale.
//
// Returns Invalid (fields team_id, run_id), PermissionDenied, NotFound.
func (r *Runs) GetRun(ctx context.Context, team, id string) (Run, error) {
	if err := checkID("team_id", team); err != nil {
		return Run{}, err
	}
	if !ValidRunID(id) {
		return Run{}, errs.Field("run_id", RunIDRule)
	}
	p, err := caller(ctx)
	if err != nil {
		return Run{}, err
	}
	if !mayRead(p, team) {
		return Run{}, denied("only members of team %q may read its runs", team)
	}
	var rec runRecord
	if _, err := r.dir.get(ctx, runKey(team, id), &rec); err != nil {
		if isNotFound(err) {
			return Run{}, errs.E(errs.KindNotFound, "run %q not found in team %q", id, team)
		}
		return Run{}, fmt.Errorf("get run: %w", err)
	}
	return r.forReader(ctx, []Run{rec.run()}, p)[0], nil
}

// redact clears the personal secrets of users other than p from run.
func redact(run Run, p *auth.Principal) Run {
	viewer := ""
	if p.Kind == auth.KindUser {
		viewer = UserName(p.ID)
	}
	for i, s := range run.Injected {
		if s.Scope() == runrules.ScopePersonal && s.Owner != viewer {
			run.Injected[i] = InjectedSecret{Redacted: true, OverridesTeamSecret: s.OverridesTeamSecret}
		}
	}
	return run
}

// maxRunsScanned bounds the index entries one ListRuns call reads, so that
// a filter matching little cannot make it read a team's whole history; a
// page may then be short, with a next-page token.
const maxRunsScanned = 10 * MaxPageSize

// ListRuns lists team's runs, newest first (by start), that match f.
// Members of the team (people), system admins, and runners granted the
// team. Other users' personal secrets are redacted; runs in flight say
// which of their values are stale. A page may hold fewer than page.Size runs
// and still have a next-page token.
//
// Returns Invalid (fields team_id, agent, trigger, end_time, page_size,
// page_token), PermissionDenied, NotFound (team).
func (r *Runs) ListRuns(ctx context.Context, team string, f RunFilter, page Page) ([]Run, string, error) {
	if err := checkID("team_id", team); err != nil {
		return nil, "", err
	}
	if f.Agent != "" && !ValidID(f.Agent) {
		return nil, "", errs.Field("agent", "must be empty or an agent identity id: it %s", IDRule)
	}
	if f.Trigger != 0 && !f.Trigger.Valid() {
		return nil, "", errs.Field("trigger", triggerRule)
	}
	if !f.Start.IsZero() && !f.End.IsZero() && f.End.Before(f.Start) {
		return nil, "", errs.Field("end_time", "must not be before start_time")
	}
	prefix := runsByTimePrefix(team)
	if f.InFlight {
		prefix = runsInFlightPrefix(team)
	}
	size, after, err := runsCursor(page, prefix)
	if err != nil {
		return nil, "", err
	}
	p, err := caller(ctx)
	if err != nil {
		return nil, "", err
	}
	if !mayRead(p, team) {
		return nil, "", denied("only members of team %q may list its runs", team)
	}
	if _, err := r.dir.team(ctx, team); err != nil {
		return nil, "", err
	}
	if !f.End.IsZero() {
		// Past every run created at or after End: "0" sorts after "/".
		if skip := prefix + invertedTime(f.End) + "0"; skip > after {
			after = skip
		}
	}
	stop := "" // keys after this are older than Start
	if !f.Start.IsZero() {
		stop = prefix + invertedTime(f.Start) + "0"
	}

	var (
		runs      []Run
		pos       []string // index key of each run
		scanned   int
		exhausted bool // every matching index entry was read
	)
scan:
	for {
		limit := min(size+1, maxRunsScanned-scanned)
		if limit <= 0 {
			break // the budget is spent: the page ends here, with a token
		}
		kvs, err := r.dir.store.Scan(ctx, prefix, after, limit)
		if err != nil {
			return nil, "", fmt.Errorf("list runs: %w", err)
		}
		for _, kv := range kvs {
			if stop != "" && kv.Key > stop {
				exhausted = true
				break scan
			}
			scanned++
			after = kv.Key
			id := kv.Key[len(prefix)+invertedLen+1:]
			var rec runRecord
			if _, err := r.dir.get(ctx, runKey(team, id), &rec); isNotFound(err) {
				continue
			} else if err != nil {
				return nil, "", fmt.Errorf("list runs: %w", err)
			}
			run := rec.run()
			if (f.Agent != "" && run.Agent != f.Agent) || (f.Trigger != 0 && run.Context.Trigger != f.Trigger) {
				continue
			}
			runs, pos = append(runs, run), append(pos, kv.Key)
			if len(runs) > size {
				break scan
			}
		}
		if len(kvs) < limit {
			exhausted = true
			break
		}
	}
	next := ""
	switch {
	case len(runs) > size:
		runs, next = runs[:size], runsToken(prefix, pos[size-1])
	case !exhausted:
		next = runsToken(prefix, after)
	}
	return r.forReader(ctx, runs, p), next, nil
}

// ListRuns page tokens are the index position "{inverted time}/{run}" to
// continue after, in unpadded URL-safe base64.
func runsToken(prefix, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.TrimPrefix(key, prefix)))
}

func runsCursor(page Page, prefix string) (size int, after string, err error) {
	if size, _, err = (Page{Size: page.Size}).cursor(); err != nil {
		return 0, "", err
	}
	if page.Token == "" {
		return size, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(page.Token)
	s := string(b)
	bad := errs.Field("page_token", "must be a next_page_token from a previous response")
	if err != nil || len(s) < invertedLen+2 || s[invertedLen] != '/' || !ValidRunID(s[invertedLen+1:]) {
		return 0, "", bad
	}
	if _, err := hex.DecodeString(s[:invertedLen]); err != nil || strings.ToLower(s[:invertedLen]) != s[:invertedLen] {
		return 0, "", bad
	}
	return size, prefix + s, nil
}
