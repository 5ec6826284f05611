// Package runs is run resolution (DESIGN §5): agent identities and
// environments, start tickets (StartRun), the resolution of a run by its
// runner (ResolveRun), its explanation (ExplainRun), run records and their
// lifecycle (GetRun, ListRuns, EndRun). It stands on the directory (teams,
// memberships, integrations, the tokens of identities) and on the
// secretstore's side of run resolution, SecretStore. See
// docs/ARCHITECTURE.md.
//
// The decision is runrules.Decide, made once per resolution here: the
// secretstore lists the candidates' metadata, the resolver decides, and the
// secretstore seals exactly the injected secrets at the versions decided
// on, refusing any that changed meanwhile. The resolver never holds a
// value.
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
//     values are sealed or returned.
//   - Nobody but the triggering user learns anything about their personal
//     secrets, not even by guessing names: every other reader of a run
//     record (system admins and runners included) and of ExplainRun is
//     shown the decision on the team's secrets alone
//     (runrules.WithoutPersonal; Run.Others), which is the same whether or
//     not the user has personal secrets, of any name. ExplainRun says so in
//     a note (without a count).
//   - context.start_token is refused everywhere: a run is started by the
//     principal its trigger speaks for (StartRun), not by a token handed
//     to the runner.
//   - Reserved names (envname) are never injected: a secret made before
//     its name was reserved is a candidate excluded as reserved, and an
//     allowlisted reserved name is unresolved, reason reserved.
package runs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
)

// SecretStore is the secretstore's side of run resolution, as the
// resolver uses it: the candidates' metadata, and the sealing of exactly
// the secrets decided on. grpcapi.NewSecretStore adapts the secretstore's
// internal RunSecretsService to it. Implementations are safe for
// concurrent use.
type SecretStore interface {
	// Candidates returns the metadata of every secret of owners
	// ("teams/{team}", "users/{user}"), or, when names is not nil, of
	// those named exactly one of names (read by key: a run with an
	// allowlist costs what it lists, not what its owners hold); never a
	// value. names must not be empty but nil: an empty list has no
	// candidates and needs no call. Errors are errs kinds: Unavailable
	// when the secretstore cannot be reached.
	Candidates(ctx context.Context, owners, names []string) ([]runrules.Secret, error)

	// Seal seals the values of exactly secrets (names distinct), each at
	// the value version and creation time it names, to the recipient under
	// info, as one environment with one HPKE encapsulation; none seals an
	// empty environment. It returns ErrSecretsChanged, sealing nothing,
	// when one of them is no longer as named: rotated, deleted or made
	// again since Candidates listed it. Other errors are errs kinds:
	// Invalid for field "recipient.public_key" when the key cannot be
	// encapsulated to, Unavailable when the secretstore cannot be reached.
	Seal(ctx context.Context, secrets []runrules.Secret, to Recipient, info []byte) (Sealed, error)
}

// ErrSecretsChanged is SecretStore.Seal's refusal of a secret that changed
// since it was listed.
var ErrSecretsChanged = errors.New("a secret changed since it was listed")

// Sealed is a run's environment sealed to its runner's key (HPKE, RFC
// 9180, base mode; see sealwire): opaque to the resolver, which passes it
// on.
type Sealed struct {
	KEMID, KDFID, AEADID uint16
	Info                 []byte
	Ciphertext           []byte
}

// Service resolves, explains and records agent runs, and keeps the agent
// identities and environments they use, on a directory's records. It is
// safe for concurrent use.
type Service struct {
	s       *resolver.Store
	dir     *directory.Directory
	secrets SecretStore
}

// New returns the run service over dir's records, reading candidates and
// sealing values through secrets. Both are required.
func New(dir *directory.Directory, secrets SecretStore) *Service {
	if dir == nil || secrets == nil {
		panic("runs.New: dir and secrets are required")
	}
	return &Service{s: dir.Store(), dir: dir, secrets: secrets}
}

// RunContext is everything the decision depends on.
type RunContext struct {
	Trigger resolver.Trigger
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
	// Egress is what the runner's egress proxy did, per host (distinct),
	// when the run had host-bound secrets or an egress allowlist.
	Egress []EgressCount
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

// InjectedSecret is one secret a run received (metadata only): the value
// version it received, and how. Its Created, when the secret was created
// (the secretstore's clock), tells a secret deleted and made again under
// its name from the one the run received: it is recorded, never shown.
// Its Binding, when set, is the secret's binding to hosts at the run's
// resolution: the agent got a placeholder, the runner's egress proxy the
// value (DESIGN §5.6).
type InjectedSecret struct {
	runrules.Secret
	// OverridesTeamSecret: a personal secret that took the place of a team
	// secret of the same name.
	OverridesTeamSecret bool
	// Redacted: another user's personal secret; its Secret is cleared.
	Redacted bool
	// ValueState: for a run in flight, whether its value is still the
	// current one; zero when not checked.
	ValueState ValueState
}

// Scope says whether s is a team or a personal secret.
func (s InjectedSecret) Scope() runrules.Scope {
	if s.Redacted {
		return runrules.ScopePersonal
	}
	return s.Secret.Scope()
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
	// Others is what readers other than the triggering user are shown of
	// Injected and Unresolved: the decision on the team's secrets alone
	// (runrules.WithoutPersonal), recorded with the run. Nil when it is
	// Injected without the personal secrets (no user, or the user's
	// personal secrets changed nothing). Never returned as such: redact
	// puts it in place for those readers.
	Others *RunView
}

// RunView is a resolved run's injected secrets and unresolved references.
type RunView struct {
	Injected   []InjectedSecret
	Unresolved []UnresolvedReference
}

// InFlight reports whether the run's values are out: resolved, and its
// end not reported yet.
func (r Run) InFlight() bool { return r.State == RunResolved }

// Name is the run's resource name, "teams/{team}/runs/{run}".
func (r Run) Name() string { return resolver.RunName(r.Team, r.ID) }

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
	RunID     string     // empty, or the ticket's run id
	Recipient *Recipient // the runner's key for this run; required
}

// Resolution is a resolved run: its record and, unless it failed, its
// values sealed to the recipient.
type Resolution struct {
	Run    Run
	Sealed *Sealed
}

// CandidateDecision is one candidate secret's fate, for ExplainRun: the
// decision's, and its detail for people.
type CandidateDecision struct {
	runrules.Candidate
	Detail string
}

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
	Trigger resolver.Trigger
	Start   time.Time // runs created at or after
	End     time.Time // runs created before
	// InFlight: only runs in flight (resolved, their end not reported),
	// read from their own index rather than the team's whole history.
	InFlight bool
}

// newRunID returns a fresh run id that sorts by its creation time.
func newRunID(now time.Time) string {
	var b [5]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	ms := uint64(now.UnixMilli()) & (1<<48 - 1)
	return fmt.Sprintf("run-%012x-%s", ms, hex.EncodeToString(b[:]))
}

// Directory is the directory whose records the service keeps its runs,
// identities and environments among.
func (r *Service) Directory() *directory.Directory { return r.dir }
