package runs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ozsecrets/oz/lib/envname"
	"github.com/ozsecrets/oz/lib/sealwire"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/resolver"
)

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
func (r *Service) ResolveRun(ctx context.Context, req ResolveRequest) (Resolution, error) {
	if req.Team != AnyTeam {
		if err := resolver.CheckID("team_id", req.Team); err != nil {
			return Resolution{}, err
		}
	}
	if req.RunID != "" && !resolver.ValidRunID(req.RunID) {
		return Resolution{}, errs.Field("run_id", "must be empty or the ticket's run id: it %s", resolver.RunIDRule)
	}
	if req.Recipient == nil {
		return Resolution{}, errs.Field("recipient", "is required: the HPKE public key the values are sealed to")
	}
	if err := req.Recipient.check(); err != nil {
		return Resolution{}, err
	}
	if req.Context != nil {
		if err := checkGiven(*req.Context); err != nil {
			return Resolution{}, err
		}
	}
	p, err := resolver.Caller(ctx)
	if err != nil {
		return Resolution{}, err
	}
	if p.Kind != auth.KindRunner {
		return Resolution{}, resolver.Denied("only runners redeem start tickets; a run is started with StartRun (oz run start) by the principal its trigger speaks for")
	}
	if req.Ticket == "" {
		return Resolution{}, resolver.Denied("a start ticket is required: the run's trigger starts it with StartRun (a member: oz run start; an agent identity's or an integration's token likewise), which returns the ticket, and the runner redeems it (oz exec --ticket-env VAR)")
	}
	tk, err := r.ticket(ctx, req.Ticket)
	if err != nil {
		return Resolution{}, err
	}
	// From here on a refusal is about the ticket's run, in its team.
	server.AuditResource(ctx, resolver.RunName(tk.Team, tk.Run), tk.Run)
	if req.Team != AnyTeam && req.Team != tk.Team {
		return Resolution{}, resolver.Denied("the start ticket belongs to another team than %q", req.Team)
	}
	if !granted(p, tk.Team) {
		return Resolution{}, resolver.Denied("only runners granted team %q, the ticket's team, may redeem it", tk.Team)
	}
	var started runRecord
	startedRaw, err := r.s.Get(ctx, resolver.RunKey(tk.Team, tk.Run), &started)
	if err != nil {
		return Resolution{}, fmt.Errorf("read run: %w", err)
	}
	run := started.run()
	now := r.s.Now()
	switch {
	case run.State != RunStarted:
		return Resolution{}, resolver.Denied("the start ticket was redeemed already (run %q is %s): a ticket starts one run; start a new run", tk.Run, run.State)
	case !now.Before(run.TicketExpire):
		return Resolution{}, resolver.Denied("the start ticket expired at %s: start the run again", run.TicketExpire.Format(time.RFC3339))
	case req.RunID != "" && req.RunID != tk.Run:
		return Resolution{}, resolver.Denied("run_id: the ticket is for run %q", tk.Run)
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
	// made again with ordinary reads: it reads, lists and decides again,
	// and writes the record again, but has the values sealed again only
	// when it decides on other secrets than the first attempt sealed. So is
	// a resolution whose inputs made it fail before the write (a stale
	// read must not refuse a run either).
	rctx, reads := kv.WithReadSet(ctx)
	res, sealed, err := r.resolve(ctx, rctx, run, startedRaw, user, p, *req.Recipient, reads, nil)
	if errors.Is(err, errStaleReads) {
		res, _, err = r.resolve(ctx, ctx, run, startedRaw, user, p, *req.Recipient, nil, sealed)
	}
	return res, err
}

// errStaleReads: a resolution's ReadSet did not hold at its write, or its
// inputs refused it; it is made again with ordinary reads.
var errStaleReads = errors.New("resolution inputs changed or read stale")

// resolve is one attempt of ResolveRun on the started run (stored as
// startedRaw), its request checked: it decides, has the values sealed and
// records. It reads the resolver's records with rctx and asks the
// secretstore with ctx: the values of rctx (its ReadSet) are the
// resolver's store's alone. With reads (the ReadSet of rctx), the
// record's write is conditional on them, and an error that may come from
// a stale read is errStaleReads, returned with what was sealed, for the
// next attempt to reuse (prev) when it decides the same.
func (r *Service) resolve(ctx, rctx context.Context, run Run, startedRaw []byte, user string, p *auth.Principal, to Recipient, reads *kv.ReadSet, prev *sealing) (Resolution, *sealing, error) {
	// A runner is granted only teams that existed when it was created
	// (CreateRunner's conditions), and teams are never deleted: the team
	// needs no read here (on etcd, one quorum read fewer per run).
	prep, err := r.prepare(rctx, run.Team, run.Context, user, true)
	if err != nil {
		if reads != nil {
			return Resolution{}, nil, errStaleReads
		}
		return Resolution{}, nil, err
	}
	res, sealed, err := r.decideAndSeal(ctx, prep.input, run.Context.Strict, to, sealwire.RunInfo(run.Name()), prev)
	if err != nil {
		return Resolution{}, nil, err
	}
	now := r.s.Now()
	run.Agent, run.ResolvedBy, run.ResolveTime = prep.input.Agent, p.Name, now
	run.AllowlistSource, run.Outcome, run.State = res.Source, OutcomeResolved, RunResolved
	run.Unresolved = unresolvedOf(res.Unresolved)
	if sealed == nil { // a strict run with unresolved references
		run.Outcome, run.State = OutcomeFailedStrict, RunFailed
	} else {
		for _, c := range res.Injected() {
			run.Injected = append(run.Injected, InjectedSecret{Secret: c.Secret, OverridesTeamSecret: c.OverridesTeam})
		}
	}
	if run.Context.User != "" {
		run.Others = othersView(prep.input, res, run)
	}
	// The record and its run.resolve event commit together, before
	// anything is returned: no values without an event, no event for a run
	// that was not recorded. The run must still be as started: a ticket is
	// redeemed once.
	key := resolver.RunKey(run.Team, run.ID)
	writes := []kv.Write{kv.Put(key, resolver.Encode(toRunRecord(run)))}
	if run.InFlight() {
		writes = append(writes, kv.Put(resolver.RunInFlightKey(run.Team, run.CreateTime, run.ID), resolver.Marker))
	}
	evs := r.resolveEvents(ctx, run)
	if 2+len(writes)+len(evs) > resolver.MaxApplyOps {
		return Resolution{}, nil, fmt.Errorf("record run: its audit event needs %d parts, more than one write holds", len(evs))
	}
	// The team's presence is a condition of the write rather than a read
	// before it (see prepare above): nothing is recorded, nor returned, for
	// a team that is not there.
	conds := []kv.Cond{kv.Equal(key, startedRaw), kv.Present(resolver.TeamKey(run.Team))}
	if reads != nil {
		conds = append(conds, kv.Unchanged(reads))
	}
	err = r.s.Apply(rctx, conds, writes, evs...)
	switch resolver.Conflict(err) {
	case 0:
		if reads != nil {
			return Resolution{}, sealed, errStaleReads // read again: redeemed meanwhile, or a stale read
		}
		return Resolution{}, nil, resolver.Denied("the start ticket was redeemed already (run %q): a ticket starts one run; start a new run", run.ID)
	case 1:
		return Resolution{}, nil, errs.E(errs.KindNotFound, "team %q not found", run.Team)
	case 2:
		return Resolution{}, sealed, errStaleReads
	}
	if err != nil {
		return Resolution{}, nil, fmt.Errorf("record run: %w", err)
	}
	for i := range run.Injected {
		run.Injected[i].ValueState = ValueCurrent // as of now, by definition
	}
	run.Others = nil // recorded for readers, not returned
	out := Resolution{Run: run}
	if sealed != nil {
		out.Sealed = &sealed.sealed
	}
	return out, nil, nil
}

// sealing is what a resolution had sealed: exactly these secrets, as this
// environment.
type sealing struct {
	secrets []runrules.Secret
	sealed  Sealed
}

// maxSealAttempts bounds how often one resolution lists and decides again
// because a secret changed between its listing and its sealing.
const maxSealAttempts = 3

// decideAndSeal lists the candidates of in, decides, and has exactly the
// injected secrets sealed to the recipient, at the versions decided on. A
// secret that changed between the listing and the sealing (rotated,
// deleted, made again) makes it list and decide again: no value is ever
// sealed but the version the decision and the record name. When prev
// sealed exactly the secrets decided on, its environment is the answer and
// nothing is sealed again. A strict run with unresolved references has
// nothing sealed: its sealing is nil.
func (r *Service) decideAndSeal(ctx context.Context, in runrules.Input, strict bool, to Recipient, info []byte, prev *sealing) (runrules.Result, *sealing, error) {
	for range maxSealAttempts {
		res, err := r.decide(ctx, in)
		if err != nil {
			return runrules.Result{}, nil, err
		}
		if strict && len(res.Unresolved) > 0 {
			return res, nil, nil
		}
		secrets := res.InjectedSecrets()
		// The same secrets bound the same way: a binding decides where the
		// sealed environment puts a value (for the agent, or for the
		// egress proxy alone), so a changed one needs a new sealing.
		if prev != nil && runrules.SameSecrets(prev.secrets, secrets) && sameBindings(prev.secrets, secrets) {
			return res, prev, nil
		}
		sealed, err := r.secrets.Seal(ctx, secrets, to, info)
		if errors.Is(err, ErrSecretsChanged) {
			continue
		}
		if err != nil {
			return runrules.Result{}, nil, sealerError(err)
		}
		return res, &sealing{secrets: secrets, sealed: sealed}, nil
	}
	return runrules.Result{}, nil, errs.E(errs.KindUnavailable, "the run's secrets kept changing while it was resolved; try again")
}

// sameBindings reports whether a and b, the same secrets, are bound to
// hosts the same way.
func sameBindings(a, b []runrules.Secret) bool {
	return slices.EqualFunc(a, b, func(x, y runrules.Secret) bool { return x.Binding.Equal(y.Binding) })
}

// decide lists the candidates of in and decides: the one statement of the
// rules, runrules.Decide, made once per listing. Only the secrets the
// decision can inject are read (in.CandidateNames: with an allowlist, its
// names, by key), which decides the same injected and unresolved secrets
// (runrules' TestCandidateNamesDecideTheSame) and leaves out only
// candidates excluded as not allowlisted, which a resolution does not
// record (ExplainRun, which shows some, reads them itself).
func (r *Service) decide(ctx context.Context, in runrules.Input) (runrules.Result, error) {
	names := in.CandidateNames()
	cands, err := r.secrets.Candidates(ctx, in.Owners(), names)
	if err != nil {
		return runrules.Result{}, sealerError(err)
	}
	in.Candidates = cands
	return runrules.Decide(in), nil
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
	if errors.As(err, &e) {
		switch {
		case e.Kind == errs.KindInvalid && e.Field == "recipient.public_key":
			return errs.Field("recipient.public_key", "cannot be encapsulated to with its HPKE KEM")
		case e.Kind == errs.KindUnavailable:
			return &errs.Error{Kind: errs.KindUnavailable, Message: "the secret store is unavailable; try again", Err: err}
		}
	}
	return fmt.Errorf("secret store: %v", err) // no %w: not the runner's kind
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

// othersView is what readers other than the triggering user are shown of
// run, decided as res was on in: the decision on the team's secrets alone
// (runrules.WithoutPersonal). It is nil when that is what they would be
// shown anyway, run's own view without its personal secrets.
func othersView(in runrules.Input, res runrules.Result, run Run) *RunView {
	team := runrules.WithoutPersonal(in, res)
	view := RunView{Unresolved: unresolvedOf(team.Unresolved)}
	if run.Outcome != OutcomeFailedStrict {
		for _, c := range team.Injected() {
			view.Injected = append(view.Injected, InjectedSecret{Secret: c.Secret})
		}
	}
	own := RunView{Injected: withoutPersonal(run.Injected), Unresolved: run.Unresolved}
	a, b := runViewRecord{}, runViewRecord{}
	a.Injected, a.Unresolved = toViewRecord(view)
	b.Injected, b.Unresolved = toViewRecord(own)
	if bytes.Equal(resolver.Encode(a), resolver.Encode(b)) {
		return nil
	}
	return &view
}
