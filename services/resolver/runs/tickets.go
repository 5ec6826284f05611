package runs

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
)

// Start tickets (DESIGN §5.0). The trigger starts a run, not the runner:
// StartRun is called by the principal the trigger speaks for and records
// the run, in state started, with its whole context; it returns a ticket
// that a runner redeems once, with ResolveRun, before it expires. So a
// stolen runner credential alone chooses no one's context: it yields no
// user's personal secrets and no identity's restricted secrets.
//
// Tickets have the shape of bearer tokens with their own prefix,
//
//	ozt_<ticket id>_<secret>
//
// and, like tokens, only their SHA-256 is stored:
//
//	tickets/{ticket_id}   ticketRecord: the hash, the team and the run
//	                      (resolver.TicketKey)
//
// A ticket is redeemed once because the run's record is its state: the
// write that records the resolution requires the record to be as StartRun
// wrote it.

// TicketPrefix starts every start ticket.
const TicketPrefix = "ozt_"

// Ticket lifetimes.
const (
	DefaultTicketTTL = 10 * time.Minute
	MaxTicketTTL     = time.Hour
)

// ticketRecord is a start ticket, at resolver.TicketKey.
type ticketRecord struct {
	ID     string `json:"id"`
	SHA256 string `json:"sha256"` // hex of auth.TokenKey(ticket)
	Team   string `json:"team"`
	Run    string `json:"run"`
}

// StartRequest asks to start one run.
type StartRequest struct {
	Team    string
	Context RunContext
	// TTL is how long the ticket may wait for a runner: 0 means
	// DefaultTicketTTL; at most MaxTicketTTL.
	TTL   time.Duration
	RunID string // optional; generated when empty
}

// Started is a started run: its record (state RunStarted) and its ticket,
// which is shown only here.
type Started struct {
	Run    Run
	Ticket string
}

// StartRun starts a run of req.Team with req.Context and returns its
// ticket (DESIGN §5.0). Who may, by the caller's kind (DESIGN §3):
//   - a person who is a member of the team, for themselves, with trigger
//     cli, web or api (context.user empty or the caller; an unspecified
//     trigger is the client's: cli from the CLI, web from the web app,
//     else api);
//   - an agent identity's token, with a user-less trigger (schedule,
//     integration), executing as that identity;
//   - an integration of the team, with its own trigger (unspecified: its
//     own): for slack and linear, on behalf of a member who allowed it.
//
// The identity the run executes as must admit the starter: an identity
// whose start policy is admins admits the team's admins only (a person,
// or the member an integration acts for), its own tokens, and
// integrations created naming it.
//
// Returns Invalid (fields team_id, ttl, run_id and the context's,
// context.start_token), PermissionDenied, NotFound (team), AlreadyExists
// (run id taken).
func (r *Service) StartRun(ctx context.Context, req StartRequest) (Started, error) {
	if err := resolver.CheckID("team_id", req.Team); err != nil {
		return Started{}, err
	}
	rc := req.Context
	if rc.StartToken != "" {
		return Started{}, startTokenRefused()
	}
	switch {
	case req.TTL < 0 || req.TTL > MaxTicketTTL:
		return Started{}, errs.Field("ttl", "must be between 0 (the default, %s) and %s", DefaultTicketTTL, MaxTicketTTL)
	case req.RunID != "" && !resolver.ValidRunID(req.RunID):
		return Started{}, errs.Field("run_id", "must be empty (a new id) or a run id: it %s", resolver.RunIDRule)
	}
	p, err := resolver.Caller(ctx)
	if err != nil {
		return Started{}, err
	}
	// The caller's integration, for its trigger and its identities: it
	// exists, as its token authenticated (a deleted one's are revoked).
	var integ directory.Integration
	if p.Kind == auth.KindIntegration {
		team, id := resolver.PrincipalRef{Kind: p.Kind, Name: p.Name}.IntegrationID()
		if team != req.Team {
			return Started{}, resolver.Denied("an integration starts runs of its own team only")
		}
		if integ, err = r.dir.IntegrationOf(ctx, team, id); err != nil {
			return Started{}, resolver.Denied("the integration is gone")
		}
	}
	rc = defaultStart(ctx, p, integ, rc)
	rc, user, err := normalize(rc)
	if err != nil {
		return Started{}, err
	}
	if err := mayStart(p, req.Team, integ, rc, user); err != nil {
		return Started{}, err
	}
	prep, err := r.prepare(ctx, req.Team, rc, user, false)
	if err != nil {
		return Started{}, err
	}
	if err := admitsStarter(p, integ, prep); err != nil {
		return Started{}, err
	}
	if p.Kind == auth.KindIntegration && prep.user != "" {
		// An integration acts for a member only with their allowance.
		ok, err := r.dir.Allowed(ctx, integ, prep.user)
		if err != nil {
			return Started{}, err
		}
		if !ok {
			return Started{}, resolver.Denied("context.user: user %q has not allowed integration %q to start runs on their behalf (they can, with: oz integration allow %s)", prep.user, integ.ID, integ.ID)
		}
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = DefaultTicketTTL
	}
	return r.issueTicket(ctx, prep, req.RunID, ttl, p.Name)
}

// defaultStart fills in what a starter may leave out: the trigger (a
// person's client, an integration's own), a person's own user id, and an
// agent identity's own id.
func defaultStart(ctx context.Context, p *auth.Principal, integ directory.Integration, rc RunContext) RunContext {
	switch p.Kind {
	case auth.KindUser:
		if rc.Trigger == 0 {
			switch auth.ClientFrom(ctx) {
			case "cli":
				rc.Trigger = resolver.TriggerCLI
			case "web":
				rc.Trigger = resolver.TriggerWeb
			default:
				rc.Trigger = resolver.TriggerAPI
			}
		}
		if rc.Trigger.UserInitiated() && (rc.User == "" || rc.User == resolver.Me || rc.User == resolver.UserName(resolver.Me)) {
			rc.User = p.ID
		}
	case auth.KindAgent:
		if rc.Agent == "" {
			rc.Agent = p.ID
		}
	case auth.KindIntegration:
		if rc.Trigger == 0 {
			rc.Trigger = integ.Trigger
		}
	}
	return rc
}

// mayStart checks who the caller is against what it starts (the rules of
// StartRun), before anything the context names is read.
func mayStart(p *auth.Principal, team string, integ directory.Integration, rc RunContext, user string) error {
	switch p.Kind {
	case auth.KindUser:
		switch {
		case !p.IsMember(team):
			return resolver.Denied("only members of team %q may start its runs", team)
		case rc.Trigger != resolver.TriggerCLI && rc.Trigger != resolver.TriggerWeb && rc.Trigger != resolver.TriggerAPI:
			return resolver.Denied("context.trigger: people start runs with trigger cli, web or api; %s runs are started by their integration, with its own token", rc.Trigger)
		case user != p.ID:
			return resolver.Denied("context.user: a member starts runs for themselves only; runs on behalf of another member are started by an integration they allowed")
		}
	case auth.KindAgent:
		team2, id := resolver.PrincipalRef{Kind: p.Kind, Name: p.Name}.AgentID()
		switch {
		case team2 != team:
			return resolver.Denied("an agent identity's token starts runs of its own team only")
		case rc.Trigger.UserInitiated():
			return resolver.Denied("context.trigger: an agent identity's token starts user-less runs only (schedule, integration), not %s", rc.Trigger)
		case rc.Agent != id:
			return resolver.Denied("context.agent: an agent identity's token starts runs executing as that identity (%q) only", id)
		}
	case auth.KindIntegration:
		if want := integ.Trigger; rc.Trigger != want {
			return resolver.Denied("context.trigger: integration %q starts %s runs only", integ.ID, want)
		}
	default:
		return resolver.Denied("runners redeem start tickets but do not start runs: a run is started by its trigger, with StartRun and a member's, an agent identity's or an integration's token")
	}
	return nil
}

// admitsStarter checks, once the context's references are read (prep),
// that the identity the run executes as admits its starter, and that an
// integration acting for a member was allowed by them.
func admitsStarter(p *auth.Principal, integ directory.Integration, prep prepared) error {
	agent := prep.input.Agent
	policyDenied := func(who string) error {
		return resolver.Denied("context.agent: agent identity %q admits only the admins of team %q (its start policy is admins), not %s", agent, prep.team, who)
	}
	switch p.Kind {
	case auth.KindUser:
		if prep.policy == StartPolicyAdmins && !p.IsAdmin(prep.team) {
			return policyDenied("a member")
		}
	case auth.KindIntegration:
		if prep.user != "" {
			if prep.policy == StartPolicyAdmins && prep.userRole != auth.RoleAdmin {
				return policyDenied(fmt.Sprintf("the member %q this integration acts for", prep.user))
			}
			return nil
		}
		if prep.policy == StartPolicyAdmins && !slices.Contains(integ.Agents, agent) {
			return policyDenied(fmt.Sprintf("integration %q, which was not created naming it", integ.ID))
		}
	}
	return nil
}

// issueTicket records prep's run, started by startedBy, with a ticket
// valid for ttl, and returns it. The caller has checked everything.
func (r *Service) issueTicket(ctx context.Context, prep prepared, runID string, ttl time.Duration, startedBy string) (Started, error) {
	team := prep.team
	now := r.s.Now()
	if runID == "" {
		runID = newRunID(now)
	}
	run := Run{
		Team: team, ID: runID, Context: prep.rc, Agent: prep.input.Agent, CreateTime: now,
		State: RunStarted, StartedBy: startedBy, TicketExpire: now.Add(ttl),
	}
	details := map[string]string{
		audit.DetailAgent:         run.Agent,
		audit.DetailTrigger:       run.Context.Trigger.String(),
		resolver.DetailStartedBy:  startedBy,
		resolver.DetailExpireTime: run.TicketExpire.UTC().Format(time.RFC3339),
	}
	if run.Context.User != "" {
		details[audit.DetailUser] = run.Context.User
	}
	if run.Context.Environment != "" {
		details[audit.DetailEnvironment] = run.Context.Environment
	}
	if run.Context.Strict {
		details[resolver.DetailStrict] = "true"
	}
	if run.Context.Secrets != nil {
		// Counted, not named: the run's list may name the user's own
		// personal secrets, and team admins read this chain.
		details[resolver.DetailRunListCount] = strconv.Itoa(len(run.Context.Secrets))
	}
	for range 3 {
		tid, ticket := resolver.NewOpaque(TicketPrefix)
		sum := auth.TokenKey(ticket)
		tr := ticketRecord{ID: tid, SHA256: hex.EncodeToString(sum[:]), Team: team, Run: runID}
		ev := r.s.Event(ctx, resolver.ActionRunStart, run.Name(), team, details)
		ev.RunId = runID
		err := r.s.Apply(ctx,
			[]kv.Cond{kv.Absent(resolver.RunKey(team, runID)), kv.Present(resolver.TeamKey(team)), kv.Absent(resolver.TicketKey(tid))},
			[]kv.Write{
				kv.Put(resolver.RunKey(team, runID), resolver.Encode(toRunRecord(run))),
				kv.Put(resolver.RunByTimeKey(team, now, runID), resolver.Marker),
				kv.Put(resolver.TicketKey(tid), resolver.Encode(tr)),
			}, ev)
		switch resolver.Conflict(err) {
		case 0:
			return Started{}, runExists(team, runID)
		case 1:
			return Started{}, errs.E(errs.KindNotFound, "team %q not found", team)
		case 2:
			continue // a ticket id drawn twice (2⁻⁶⁴): draw again
		}
		if err != nil {
			return Started{}, fmt.Errorf("start run: %w", err)
		}
		return Started{Run: run, Ticket: ticket}, nil
	}
	return Started{}, fmt.Errorf("start run: no free ticket id after 3 draws")
}

// ticket returns the record of a start ticket, PermissionDenied when it is
// malformed or unknown. It never echoes the ticket.
func (r *Service) ticket(ctx context.Context, ticket string) (ticketRecord, error) {
	unknown := resolver.Denied("unknown start ticket: pass the ticket StartRun (oz run start) returned, unchanged")
	id, ok := resolver.ParseOpaque(TicketPrefix, ticket)
	if !ok {
		return ticketRecord{}, unknown
	}
	var rec ticketRecord
	if _, err := r.s.Get(ctx, resolver.TicketKey(id), &rec); err != nil {
		if resolver.IsNotFound(err) {
			return ticketRecord{}, unknown
		}
		return ticketRecord{}, fmt.Errorf("read ticket: %w", err)
	}
	sum := auth.TokenKey(ticket)
	want, err := hex.DecodeString(rec.SHA256)
	if err != nil || subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return ticketRecord{}, unknown
	}
	return rec, nil
}

// checkGiven checks the syntax of the fields a runner set in a context
// that narrows its ticket's; each field is optional.
func checkGiven(g RunContext) error {
	if g.StartToken != "" {
		return startTokenRefused()
	}
	if g.Trigger != 0 && !g.Trigger.Valid() {
		return errs.Field("context.trigger", resolver.TriggerRule)
	}
	if g.User != "" {
		if u := strings.TrimPrefix(g.User, "users/"); !resolver.ValidID(u) {
			return errs.Field("context.user", `must be "users/{user}" or "{user}"; {user} %s`, resolver.IDRule)
		}
	}
	if g.Agent != "" && !resolver.ValidID(g.Agent) {
		return errs.Field("context.agent", "must be empty or an agent identity id: it %s", resolver.IDRule)
	}
	if g.Environment != "" && !resolver.ValidID(g.Environment) {
		return errs.Field("context.environment", "must be empty or an environment id: it %s", resolver.IDRule)
	}
	return resolver.CheckSecretNames("context.secrets.names", g.Secrets)
}

// narrow returns the ticket's context t as the runner's context g (nil:
// none) narrows it. Each field g sets must equal t's, except that g's
// list may be empty (nothing is injected) or a subset of t's own list,
// and g may set strict. Anything else would widen what the run's starter
// chose, and is refused.
func narrow(t RunContext, g *RunContext) (RunContext, error) {
	if g == nil {
		return t, nil
	}
	differs := func(field, want string) error {
		return resolver.Denied("%s: the start ticket's is %q; a runner may not change a run's context, only narrow it (an empty or smaller secret list, strict)", field, want)
	}
	switch {
	case g.Trigger != 0 && g.Trigger != t.Trigger:
		return t, differs("context.trigger", t.Trigger.String())
	case g.User != "" && resolver.UserName(strings.TrimPrefix(g.User, "users/")) != t.User:
		return t, differs("context.user", t.User)
	case g.Agent != "" && g.Agent != t.Agent && !(t.Agent == "" && g.Agent == resolver.DefaultAgentID):
		return t, differs("context.agent", t.Agent)
	case g.Environment != "" && g.Environment != t.Environment:
		return t, differs("context.environment", t.Environment)
	}
	out := t
	if g.Secrets != nil {
		for _, n := range g.Secrets {
			if t.Secrets == nil || !slices.Contains(t.Secrets, n) {
				return t, resolver.Denied("context.secrets: %s is not in the start ticket's own list; a runner may narrow the list (to none, or to some of its names), never widen it", n)
			}
		}
		out.Secrets = resolver.UniqueNames(g.Secrets)
		if out.Secrets == nil {
			out.Secrets = []string{}
		}
	}
	out.Strict = t.Strict || g.Strict
	return out, nil
}
