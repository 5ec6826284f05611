package runs_test

import (
	"context"
	"encoding/hex"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	rsgrpc "github.com/ozsecrets/oz/services/resolver/grpcapi"
	"github.com/ozsecrets/oz/services/resolver/resolvertest"
	"github.com/ozsecrets/oz/services/resolver/runs"
	ssgrpc "github.com/ozsecrets/oz/services/secretstore/grpcapi"
)

// spyStore is a Store that records every Apply that succeeded, checks the
// Store's limit of 128 conditions and writes per Apply, and fails the
// Applies that fail says to.
type spyStore struct {
	kv.Store
	t *testing.T

	mu      sync.Mutex
	applies [][]kv.Write
	fail    func(writes []kv.Write) error
}

func newSpyStore(t *testing.T, s kv.Store) *spyStore { return &spyStore{Store: s, t: t} }

func (s *spyStore) Apply(ctx context.Context, conds []kv.Cond, writes []kv.Write) error {
	if n := len(conds) + len(writes); n > 128 {
		s.t.Errorf("Apply of %d conditions and writes: the kv.Store's limit is 128", n)
	}
	s.mu.Lock()
	fail := s.fail
	s.mu.Unlock()
	if fail != nil {
		if err := fail(writes); err != nil {
			return err
		}
	}
	err := s.Store.Apply(ctx, conds, writes)
	if err == nil {
		s.mu.Lock()
		s.applies = append(s.applies, slices.Clone(writes))
		s.mu.Unlock()
	}
	return err
}

func (s *spyStore) setFail(fn func([]kv.Write) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fn
}

// applyWriting returns the recorded Apply that wrote key.
func (s *spyStore) applyWriting(key string) []kv.Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.applies) - 1; i >= 0; i-- { // the latest
		ws := s.applies[i]
		for _, w := range ws {
			if w.Key == key && !w.Delete {
				return ws
			}
		}
	}
	return nil
}

// drain returns the events waiting in d's outbox, oldest first, and
// acknowledges them, so that the next drain sees only newer ones.
// storer is what holds a resolver.Store: a directory, or both.
type storer interface{ Store() *resolver.Store }

func drain(t *testing.T, d storer) []*auditv1.Event {
	t.Helper()
	ctx := context.Background()
	evs, err := d.Store().Outbox().Pending(ctx, 100000)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.GetId()
	}
	if err := d.Store().Outbox().Ack(ctx, ids); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	return evs
}

func backlog(t *testing.T, d storer) int {
	t.Helper()
	n, err := d.Store().Outbox().Backlog(context.Background())
	if err != nil {
		t.Fatalf("Backlog: %v", err)
	}
	return n
}

// canaries are strings that must never be in an event: bearer tokens,
// their secret parts and their stored hashes, and planted values.
type canaries []string

func (c *canaries) token(bearer string) {
	sum := auth.TokenKey(bearer)
	*c = append(*c, bearer, bearer[len(directory.TokenPrefix)+17:], hex.EncodeToString(sum[:]))
}

func (c canaries) check(t *testing.T, evs []*auditv1.Event) {
	t.Helper()
	for _, ev := range evs {
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		text := prototext.Format(ev)
		for _, s := range c {
			if strings.Contains(string(b), s) || strings.Contains(text, s) {
				t.Fatalf("event %s (%s) holds a canary", ev.GetId(), ev.GetAction())
			}
		}
	}
}

// wantEvent checks the one event of a change.
type wantEvent struct {
	action, resource, team string
	actor                  string // actor name
	kind                   auditv1.ActorKind
	details                map[string]string // details that must be there (others may be)
	absent                 []string          // detail keys that must not be there
	outcome                auditv1.Outcome   // zero: OUTCOME_OK
}

func checkEvent(t *testing.T, ev *auditv1.Event, w wantEvent) {
	t.Helper()
	if ev.GetAction() != w.action || ev.GetResource() != w.resource || ev.GetTeam() != w.team {
		t.Errorf("got %s %s in chain %q, want %s %s in chain %q", ev.GetAction(), ev.GetResource(), ev.GetTeam(), w.action, w.resource, w.team)
	}
	if ev.GetActor().GetName() != w.actor || ev.GetActor().GetKind() != w.kind {
		t.Errorf("%s: got actor %v %q, want %v %q", w.action, ev.GetActor().GetKind(), ev.GetActor().GetName(), w.kind, w.actor)
	}
	if w.outcome == 0 {
		w.outcome = auditv1.Outcome_OUTCOME_OK
	}
	if ev.GetOutcome() != w.outcome {
		t.Errorf("%s: got outcome %v, want %v", w.action, ev.GetOutcome(), w.outcome)
	}
	if !strings.HasPrefix(ev.GetId(), "resolver-") || ev.GetTime() == nil {
		t.Errorf("%s: got id %q time %v, want a resolver- id and a time", w.action, ev.GetId(), ev.GetTime())
	}
	if err := audit.ValidateEvent("event", ev); err != nil {
		t.Errorf("%s: the audit service would refuse it: %v", w.action, err)
	}
	for k, v := range w.details {
		if got, ok := ev.GetDetails()[k]; !ok || got != v {
			t.Errorf("%s: details[%q] = %q, want %q (details %v)", w.action, k, got, v, ev.GetDetails())
		}
	}
	for _, k := range w.absent {
		if v, ok := ev.GetDetails()[k]; ok {
			t.Errorf("%s: details[%q] = %q, want none", w.action, k, v)
		}
	}
}

// newAuditedDirectory is newDirectory over a spyStore.
func newAuditedDirectory(t *testing.T) (both, *spyStore, *resolvertest.Clock, context.Context, string) {
	t.Helper()
	store, err := boltkv.Open(filepath.Join(t.TempDir(), "resolver.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	spy := newSpyStore(t, store)
	clk := resolvertest.NewClock(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	d := withRuns(directory.New(resolver.NewStore(spy, clk.Now)))
	_, bearer, err := d.BootstrapAdmin(context.Background(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	return d, spy, clk, resolvertest.Login(t, d.Directory, bearer), bearer
}

// TestEventOfEveryChange: every kind of change writes exactly one event
// (a bootstrap two: the user and the token), naming the action, the
// resource, the team's chain and the actor, and never a token.
func TestEventOfEveryChange(t *testing.T) {
	d, _, _, sys, adminBearer := newAuditedDirectory(t)
	var secrets canaries
	secrets.token(adminBearer)

	service := auditv1.ActorKind_ACTOR_KIND_SERVICE
	user := auditv1.ActorKind_ACTOR_KIND_USER
	evs := drain(t, d)
	if len(evs) != 2 {
		t.Fatalf("bootstrap: got %d events, want 2 (user.create, token.create)", len(evs))
	}
	checkEvent(t, evs[0], wantEvent{action: "user.create", resource: "users/admin", actor: "resolver", kind: service,
		details: map[string]string{"system_admin": "true"}})
	checkEvent(t, evs[1], wantEvent{action: "token.create", resource: "tokens/" + evs[1].GetResource()[len("tokens/"):],
		actor: "resolver", kind: service, details: map[string]string{"principal": "users/admin"}})
	all := evs

	// alice calls through a client that sends a request id.
	var aliceCtx context.Context
	var agentTokenID, aliceTokenID string
	steps := []struct {
		name string
		do   func(t *testing.T) error
		want []wantEvent
	}{
		{"CreateTeam", func(t *testing.T) error { _, err := d.CreateTeam(sys, "acme"); return err },
			[]wantEvent{{action: "team.create", resource: "teams/acme", team: "acme", actor: "users/admin", kind: user}}},
		{"CreateUser", func(t *testing.T) error { _, err := d.CreateUser(sys, "alice", false); return err },
			[]wantEvent{{action: "user.create", resource: "users/alice", actor: "users/admin", kind: user,
				details: map[string]string{"system_admin": "false"}}}},
		{"CreateUserBob", func(t *testing.T) error { _, err := d.CreateUser(sys, "bob", false); return err },
			[]wantEvent{{action: "user.create", resource: "users/bob", actor: "users/admin", kind: user}}},
		{"CreateMembership", func(t *testing.T) error {
			_, err := d.CreateMembership(sys, "acme", "alice", auth.RoleAdmin)
			return err
		}, []wantEvent{{action: "membership.create", resource: "teams/acme/members/alice", team: "acme", actor: "users/admin", kind: user,
			details: map[string]string{"role": "admin"}}}},
		{"CreateMembershipBob", func(t *testing.T) error {
			_, err := d.CreateMembership(sys, "acme", "bob", auth.RoleMember)
			return err
		}, []wantEvent{{action: "membership.create", resource: "teams/acme/members/bob", team: "acme", actor: "users/admin", kind: user,
			details: map[string]string{"role": "member"}}}},
		{"CreateToken", func(t *testing.T) error {
			tok, bearer, err := d.CreateToken(sys, resolver.UserPrincipal("alice"), time.Hour, "laptop")
			if err != nil {
				return err
			}
			secrets.token(bearer)
			aliceTokenID = tok.ID
			p, err := d.Authenticate(context.Background(), bearer)
			if err != nil {
				return err
			}
			md := metadata.Pairs("x-request-id", "req-42")
			aliceCtx = auth.WithClient(auth.WithPrincipal(metadata.NewIncomingContext(context.Background(), md), p), "cli")
			return nil
		}, []wantEvent{{action: "token.create", actor: "users/admin", kind: user,
			details: map[string]string{"principal": "users/alice", "expire_time": "2026-03-01T10:00:00Z"}}}},
		{"CreateAgent", func(t *testing.T) error {
			_, err := d.CreateAgent(aliceCtx, runs.Agent{Team: "acme", ID: "deployer", SecretNames: []string{"DEPLOY_KEY", "AWS_KEY"}})
			return err
		}, []wantEvent{{action: "agent.create", resource: "teams/acme/agents/deployer", team: "acme", actor: "users/alice", kind: user,
			details: map[string]string{"secret_names": "DEPLOY_KEY,AWS_KEY"}, absent: []string{"revoked_tokens"}}}},
		{"CreateAgentToken", func(t *testing.T) error {
			tok, bearer, err := d.CreateToken(aliceCtx, resolver.AgentPrincipal("acme", "deployer"), 0, "")
			secrets.token(bearer)
			agentTokenID = tok.ID
			return err
		}, []wantEvent{{action: "token.create", team: "acme", actor: "users/alice", kind: user,
			// No lifetime asked: the longest allowed, 90 days from the clock's start.
			details: map[string]string{"principal": "teams/acme/agents/deployer", "expire_time": "2026-05-30T09:00:00Z"}}}},
		{"UpdateAgent", func(t *testing.T) error {
			name := "Deployer"
			_, err := d.UpdateAgent(aliceCtx, "acme", "deployer", runs.AgentUpdate{DisplayName: &name,
				SecretNames: resolver.NamesUpdate{Add: []string{"GH_KEY"}, Remove: []string{"DEPLOY_KEY"}}})
			return err
		}, []wantEvent{{action: "agent.update", resource: "teams/acme/agents/deployer", team: "acme", actor: "users/alice", kind: user,
			details: map[string]string{"display_name_changed": "true", "added_secret_names": "GH_KEY", "removed_secret_names": "DEPLOY_KEY"},
			absent:  []string{"description_changed"}}}},
		{"CreateEnvironment", func(t *testing.T) error {
			_, err := d.CreateEnvironment(aliceCtx, runs.Environment{Team: "acme", ID: "ops", SecretNames: []string{"PAGER_KEY"}})
			return err
		}, []wantEvent{{action: "environment.create", resource: "teams/acme/environments/ops", team: "acme", actor: "users/alice", kind: user,
			details: map[string]string{"secret_names": "PAGER_KEY"}}}},
		{"UpdateEnvironment", func(t *testing.T) error {
			desc := "on call"
			_, err := d.UpdateEnvironment(aliceCtx, "acme", "ops", runs.EnvironmentUpdate{Description: &desc})
			return err
		}, []wantEvent{{action: "environment.update", resource: "teams/acme/environments/ops", team: "acme", actor: "users/alice", kind: user,
			details: map[string]string{"description_changed": "true"}, absent: []string{"added_secret_names", "removed_secret_names"}}}},
		{"CreateRunner", func(t *testing.T) error {
			_, bearer, err := d.CreateRunner(sys, "ci", []string{"acme"})
			secrets.token(bearer)
			return err
		}, []wantEvent{{action: "runner.create", resource: "runners/ci", actor: "users/admin", kind: user,
			details: map[string]string{"teams": "acme"}}}},
		{"RevokeToken", func(t *testing.T) error { _, err := d.RevokeToken(aliceCtx, aliceTokenID); return err },
			[]wantEvent{{action: "token.revoke", actor: "users/alice", kind: user, details: map[string]string{"principal": "users/alice"}}}},
		{"DeleteAgent", func(t *testing.T) error { return d.DeleteAgent(sys, "acme", "deployer", "") },
			[]wantEvent{{action: "agent.delete", resource: "teams/acme/agents/deployer", team: "acme", actor: "users/admin", kind: user,
				details: map[string]string{"revoked_tokens": "1"}}}},
		{"DeleteEnvironment", func(t *testing.T) error { return d.DeleteEnvironment(aliceCtx, "acme", "ops", "") },
			[]wantEvent{{action: "environment.delete", resource: "teams/acme/environments/ops", team: "acme", actor: "users/alice", kind: user}}},
		{"DeleteRunner", func(t *testing.T) error { return d.DeleteRunner(sys, "ci") },
			[]wantEvent{{action: "runner.delete", resource: "runners/ci", actor: "users/admin", kind: user,
				details: map[string]string{"revoked_tokens": "1"}}}},
		{"DeleteMembership", func(t *testing.T) error { return d.DeleteMembership(aliceCtx, "acme", "bob") },
			[]wantEvent{{action: "membership.delete", resource: "teams/acme/members/bob", team: "acme", actor: "users/alice", kind: user}}},
		{"IssueAdminToken", func(t *testing.T) error {
			_, bearer, err := d.IssueAdminToken(context.Background(), "bob", "recovery")
			secrets.token(bearer)
			return err
		}, []wantEvent{
			{action: "user.update", resource: "users/bob", actor: "resolver", kind: service, details: map[string]string{"system_admin": "true"}},
			{action: "token.create", actor: "resolver", kind: service, details: map[string]string{"principal": "users/bob"}},
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.do(t); err != nil {
				t.Fatal(err)
			}
			evs := drain(t, d)
			if len(evs) != len(st.want) {
				t.Fatalf("got %d events, want %d", len(evs), len(st.want))
			}
			for i, w := range st.want {
				if w.resource == "" { // a token: its id is new
					w.resource = evs[i].GetResource()
					if !strings.HasPrefix(w.resource, "tokens/") || !resolver.ValidTokenID(w.resource[len("tokens/"):]) {
						t.Errorf("got resource %q, want tokens/{token id}", w.resource)
					}
				}
				checkEvent(t, evs[i], w)
			}
			all = append(all, evs...)
		})
	}

	// Details that say which token: the runner's first one, the revoked one.
	for _, ev := range all {
		switch {
		case ev.GetAction() == "runner.create" && !resolver.ValidTokenID(ev.GetDetails()["token_id"]):
			t.Errorf("runner.create: token_id %q, want the runner's first token id", ev.GetDetails()["token_id"])
		case ev.GetAction() == "token.revoke" && ev.GetResource() != "tokens/"+aliceTokenID:
			t.Errorf("token.revoke: got %s, want tokens/%s", ev.GetResource(), aliceTokenID)
		case ev.GetAction() == "token.create" && ev.GetTeam() == "acme" && ev.GetResource() != "tokens/"+agentTokenID:
			t.Errorf("agent token.create: got %s, want tokens/%s", ev.GetResource(), agentTokenID)
		}
		if ev.GetActor().GetName() == "users/alice" {
			if ev.GetRequestId() != "req-42" || ev.GetActor().GetClient() != "cli" {
				t.Errorf("%s: request id %q client %q, want req-42 and cli", ev.GetAction(), ev.GetRequestId(), ev.GetActor().GetClient())
			}
		}
	}
	secrets.check(t, all)

	// Ids are unique and increase in the order the events were made.
	for i := 1; i < len(all); i++ {
		if all[i].GetId() <= all[i-1].GetId() && strings.Split(all[i].GetId(), "-")[1] == strings.Split(all[i-1].GetId(), "-")[1] {
			t.Errorf("id %s after %s: want increasing ids", all[i].GetId(), all[i-1].GetId())
		}
	}
}

// TestFailedChangeWritesNoEvent: a change that is refused, invalid, in
// conflict or a no-op writes no event.
func TestFailedChangeWritesNoEvent(t *testing.T) {
	d, _, _, sys, _ := newAuditedDirectory(t)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := d.CreateTeam(sys, "acme")
	must(err)
	_, err = d.CreateUser(sys, "bob", false)
	must(err)
	_, err = d.CreateMembership(sys, "acme", "bob", auth.RoleMember)
	must(err)
	_, bobBearer, err := d.CreateToken(sys, resolver.UserPrincipal("bob"), 0, "")
	must(err)
	bp, err := d.Authenticate(ctx, bobBearer)
	must(err)
	bob := auth.WithPrincipal(ctx, bp)
	agent, err := d.CreateAgent(sys, runs.Agent{Team: "acme", ID: "deployer", SecretNames: []string{"A_KEY"}})
	must(err)
	_, err = d.CreateEnvironment(sys, runs.Environment{Team: "acme", ID: "ops"})
	must(err)
	revoked, _, err := d.CreateToken(sys, resolver.UserPrincipal("bob"), 0, "")
	must(err)
	_, err = d.RevokeToken(sys, revoked.ID)
	must(err)
	drain(t, d)

	same := "deployer"
	tests := map[string]struct {
		kind errs.Kind
		do   func() error
	}{
		"TeamExists":          {errs.KindAlreadyExists, func() error { _, err := d.CreateTeam(sys, "acme"); return err }},
		"BadTeamID":           {errs.KindInvalid, func() error { _, err := d.CreateTeam(sys, "Not_An_ID"); return err }},
		"NotSystemAdmin":      {errs.KindPermissionDenied, func() error { _, err := d.CreateTeam(bob, "beta"); return err }},
		"UserExists":          {errs.KindAlreadyExists, func() error { _, err := d.CreateUser(sys, "bob", false); return err }},
		"MemberOfMissingTeam": {errs.KindNotFound, func() error { _, err := d.CreateMembership(sys, "nope", "bob", 0); return err }},
		"AlreadyMember":       {errs.KindAlreadyExists, func() error { _, err := d.CreateMembership(sys, "acme", "bob", 0); return err }},
		"NotAMember":          {errs.KindNotFound, func() error { return d.DeleteMembership(sys, "acme", "admin") }},
		"TokenForMissingUser": {errs.KindNotFound, func() error {
			_, _, err := d.CreateToken(sys, resolver.UserPrincipal("ghost"), 0, "")
			return err
		}},
		"TokenForAnother": {errs.KindPermissionDenied, func() error {
			_, _, err := d.CreateToken(bob, resolver.UserPrincipal("admin"), 0, "")
			return err
		}},
		"RevokeRevoked": {0, func() error { _, err := d.RevokeToken(sys, revoked.ID); return err }},
		"AgentExists": {errs.KindAlreadyExists, func() error {
			_, err := d.CreateAgent(sys, runs.Agent{Team: "acme", ID: "deployer"})
			return err
		}},
		"AgentBadSecretName": {errs.KindInvalid, func() error {
			_, err := d.CreateAgent(sys, runs.Agent{Team: "acme", ID: "other", SecretNames: []string{"not a name"}})
			return err
		}},
		"AgentByMember": {errs.KindPermissionDenied, func() error {
			_, err := d.CreateAgent(bob, runs.Agent{Team: "acme", ID: "other"})
			return err
		}},
		"AgentEtagMismatch": {errs.KindFailedPrecondition, func() error {
			desc := "x"
			_, err := d.UpdateAgent(sys, "acme", "deployer", runs.AgentUpdate{Description: &desc, Etag: strings.Repeat("0", len(agent.Etag))})
			return err
		}},
		"AgentUpdateChangesNothing": {0, func() error {
			_, err := d.UpdateAgent(sys, "acme", "deployer", runs.AgentUpdate{SecretNames: resolver.NamesUpdate{Add: []string{"A_KEY"}}})
			return err
		}},
		"DeleteDefaultAgent": {errs.KindFailedPrecondition, func() error { return d.DeleteAgent(sys, "acme", resolver.DefaultAgentID, "") }},
		"EnvironmentExists": {errs.KindAlreadyExists, func() error {
			_, err := d.CreateEnvironment(sys, runs.Environment{Team: "acme", ID: "ops"})
			return err
		}},
		"EnvironmentMissing": {errs.KindNotFound, func() error { return d.DeleteEnvironment(sys, "acme", "nope", "") }},
		"RunnerMissingTeam": {errs.KindNotFound, func() error {
			_, _, err := d.CreateRunner(sys, "ci", []string{"acme", "nope"})
			return err
		}},
		"RunnerMissing": {errs.KindNotFound, func() error { return d.DeleteRunner(sys, "nope") }},
		"AgentMissing":  {errs.KindNotFound, func() error { return d.DeleteAgent(sys, "acme", same+"-x", "") }},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := tt.do()
			if tt.kind == 0 && err != nil || tt.kind != 0 && errs.KindOf(err) != tt.kind {
				t.Fatalf("got %v, want kind %v", err, tt.kind)
			}
			if n := backlog(t, d); n != 0 {
				t.Errorf("got %d events, want none", n)
			}
		})
	}
}

// TestSurplusRevocationsAreAudited: an identity with more live tokens
// than one write revokes is deleted in several writes; each says how many
// it revoked, and the counts add up.
func TestSurplusRevocationsAreAudited(t *testing.T) {
	d, _, _, sys, _ := newAuditedDirectory(t)
	if _, err := d.CreateTeam(sys, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateAgent(sys, runs.Agent{Team: "acme", ID: "bot"}); err != nil {
		t.Fatal(err)
	}
	const tokens = 150
	parallel(t, tokens, func(int) error {
		_, _, err := d.CreateToken(sys, resolver.AgentPrincipal("acme", "bot"), 0, "")
		return err
	})
	drain(t, d)
	if err := d.DeleteAgent(sys, "acme", "bot", ""); err != nil {
		t.Fatal(err)
	}
	evs := drain(t, d)
	total := 0
	for i, ev := range evs {
		want := "token.revoke"
		if i == len(evs)-1 {
			want = "agent.delete"
		}
		if ev.GetAction() != want || ev.GetTeam() != "acme" {
			t.Errorf("event %d: got %s in %q, want %s in acme", i, ev.GetAction(), ev.GetTeam(), want)
		}
		var n int
		for _, c := range ev.GetDetails()["revoked_tokens"] {
			n = n*10 + int(c-'0')
		}
		total += n
	}
	if len(evs) != 3 || total != tokens {
		t.Errorf("got %d events revoking %d tokens, want 3 events revoking %d", len(evs), total, tokens)
	}
}

// TestEventFieldsFromClientsAreCleaned: a request id or client header no
// event may hold is cleaned, not a reason to refuse the change.
func TestEventFieldsFromClientsAreCleaned(t *testing.T) {
	d, _, _, sys, _ := newAuditedDirectory(t)
	drain(t, d)
	md := metadata.Pairs("x-request-id", "bad\x01id"+strings.Repeat("x", 300))
	ctx := auth.WithClient(metadata.NewIncomingContext(sys, md), "cli\n"+strings.Repeat("y", 300))
	if _, err := d.CreateTeam(ctx, "acme"); err != nil {
		t.Fatalf("CreateTeam: %v", err)
	}
	evs := drain(t, d)
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1", len(evs))
	}
	ev := evs[0]
	// An invalid request id is not kept, not even cleaned: the server
	// gives such a request a new one (reqmeta.ValidRequestID).
	if ev.GetRequestId() != "" {
		t.Errorf("request id %q: want none of the invalid one kept", ev.GetRequestId())
	}
	if !strings.HasPrefix(ev.GetActor().GetClient(), "cliyy") {
		t.Errorf("client %q: want it without the control character", ev.GetActor().GetClient())
	}
}

// TestLongNameListsAreCounted: a list of names too long for one detail is
// recorded by its length.
func TestLongNameListsAreCounted(t *testing.T) {
	d, _, _, sys, _ := newAuditedDirectory(t)
	if _, err := d.CreateTeam(sys, "acme"); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range 200 {
		names = append(names, "NAME_"+strings.Repeat("X", 100)+string(rune('A'+i%26))+strings.Repeat("Y", i/26))
	}
	drain(t, d)
	if _, err := d.CreateEnvironment(sys, runs.Environment{Team: "acme", ID: "big", SecretNames: names}); err != nil {
		t.Fatal(err)
	}
	evs := drain(t, d)
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1", len(evs))
	}
	if got := evs[0].GetDetails(); got["secret_names_count"] != "200" || got["secret_names"] != "" {
		t.Errorf("details: got count %q and a list of %d bytes, want count 200 and no list", got["secret_names_count"], len(got["secret_names"]))
	}
}

// byName returns a copy of a run.resolve event with its numbered names
// ("injected.1" = "NAME=3") keyed by name ("injected.NAME" = "3"), for
// tests to read; it fails t on a detail in neither form.
func byName(t *testing.T, ev *auditv1.Event) *auditv1.Event {
	t.Helper()
	out := proto.CloneOf(ev)
	out.Details = map[string]string{}
	for k, v := range ev.GetDetails() {
		prefix, n, numbered := strings.Cut(k, ".")
		if !numbered || (prefix != "injected" && prefix != "unresolved") {
			out.Details[k] = v
			continue
		}
		if _, err := strconv.Atoi(n); err != nil {
			t.Errorf("details[%q]: want a number after %q, the name in the value", k, prefix+".")
			continue
		}
		name, what, ok := strings.Cut(v, "=")
		if !ok {
			t.Errorf("details[%q] = %q, want NAME=…", k, v)
		}
		out.Details[prefix+"."+name] = what
	}
	return out
}

// TestResolveRunEvent: a resolution's record and its run.resolve event are
// written by the same Apply, naming what was injected (with value
// versions) and what was not (with reasons), never a value; when that
// Apply fails, nothing is written and nothing returned.
func TestResolveRunEvent(t *testing.T) {
	f := newRunsFixture(t)
	spy := newSpyStore(t, f.store)
	dir := directory.New(resolver.NewStore(spy, f.clk.Now))
	rs := runs.New(dir, rsgrpc.SecretStoreOf(ssgrpc.NewRunSecrets(f.svc)))
	// resolve starts the run (its run.start event is tested in
	// TestStartRunEvent and drained here) and resolves it.
	resolve := func(rc runs.RunContext, id string) (runs.Resolution, error) {
		ticket, err := runs.RunsTestStart(f.runnerA, rs, "acme", rc, id)
		if err != nil {
			return runs.Resolution{}, err
		}
		if evs := drain(t, dir); len(evs) != 1 || evs[0].GetAction() != "run.start" {
			t.Fatalf("starting the run wrote %d events (%v), want one run.start", len(evs), evs)
		}
		return rs.ResolveRun(f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: new(f.recipient())})
	}
	var secrets canaries = []string{runCanary, f.aliceToken, f.bobToken}
	drain(t, dir)

	tests := []struct {
		name    string
		rc      runs.RunContext
		outcome auditv1.Outcome
		details map[string]string
		absent  []string
	}{
		{"Environment", runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "ops-tools"}, auditv1.Outcome_OUTCOME_OK,
			map[string]string{"injected.DEPLOY_TOKEN": "1", "injected.PAGERDUTY_API_KEY": "1", "unresolved.MISSING_KEY": "not_found",
				"agent": "default", "trigger": "schedule", "runner": "runners/runner-a", "environment": "ops-tools", "allowlist_source": "environment"},
			[]string{"user", "strict", "injected.OTHER_KEY", "part"}},
		{"PersonalOverridesTeam", runs.RunContext{Trigger: resolver.TriggerCLI, User: "alice"}, auditv1.Outcome_OUTCOME_OK,
			map[string]string{"injected_personal_count": "2", "injected.DEPLOY_TOKEN": "1",
				"user": "users/alice", "trigger": "cli", "allowlist_source": "none"},
			[]string{"injected.GITHUB_TOKEN", "injected.BOB_ONLY", "injected.ALICE_ONLY", "injected_personal.GITHUB_TOKEN", "injected_personal.ALICE_ONLY", "environment"}},
		{"Restricted", runs.RunContext{Trigger: resolver.TriggerSchedule, Secrets: []string{"RESTRICTED_KEY", "OTHER_KEY"}}, auditv1.Outcome_OUTCOME_OK,
			map[string]string{"unresolved.RESTRICTED_KEY": "restricted", "injected.OTHER_KEY": "1", "allowlist_source": "run"}, nil},
		{"AsIdentity", runs.RunContext{Trigger: resolver.TriggerIntegration, Agent: "deployer", Secrets: []string{"RESTRICTED_KEY"}}, auditv1.Outcome_OUTCOME_OK,
			map[string]string{"injected.RESTRICTED_KEY": "1", "agent": "deployer", "trigger": "integration"}, nil},
		{"StrictFails", runs.RunContext{Trigger: resolver.TriggerAPI, User: "bob", Secrets: []string{"OTHER_KEY", "NOPE_KEY"}, Strict: true},
			auditv1.Outcome_OUTCOME_FAILED,
			map[string]string{"unresolved.NOPE_KEY": "not_found", "strict": "true", "user": "users/bob"},
			[]string{"injected.OTHER_KEY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := resolve(tt.rc, "")
			if err != nil {
				t.Fatal(err)
			}
			evs := drain(t, dir)
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			ev := evs[0]
			run := res.Run
			if ev.GetAction() != "run.resolve" || ev.GetResource() != run.Name() || ev.GetTeam() != "acme" || ev.GetRunId() != run.ID {
				t.Errorf("got %s %s in %q run %q, want run.resolve %s in acme run %q", ev.GetAction(), ev.GetResource(), ev.GetTeam(), ev.GetRunId(), run.Name(), run.ID)
			}
			if ev.GetActor().GetKind() != auditv1.ActorKind_ACTOR_KIND_RUNNER || ev.GetActor().GetName() != "runners/runner-a" {
				t.Errorf("got actor %v, want the runner", ev.GetActor())
			}
			if ev.GetOutcome() != tt.outcome || !ev.GetTime().AsTime().Equal(run.ResolveTime) {
				t.Errorf("got outcome %v time %v, want %v at the run's resolution", ev.GetOutcome(), ev.GetTime().AsTime(), tt.outcome)
			}
			checkEvent(t, byName(t, ev), wantEvent{action: "run.resolve", resource: run.Name(), team: "acme", actor: "runners/runner-a",
				kind: auditv1.ActorKind_ACTOR_KIND_RUNNER, details: tt.details, absent: tt.absent, outcome: tt.outcome})
			secrets.check(t, evs)

			// The same Apply wrote the record and the event.
			ws := spy.applyWriting("runs/acme/" + run.ID)
			var outboxPuts []kv.Write
			for _, w := range ws {
				if strings.HasPrefix(w.Key, "outbox/") {
					outboxPuts = append(outboxPuts, w)
				}
			}
			if len(outboxPuts) != 1 {
				t.Fatalf("the Apply of the run record wrote %d events, want 1", len(outboxPuts))
			}
			var written auditv1.Event
			if err := proto.Unmarshal(outboxPuts[0].Value, &written); err != nil || written.GetId() != ev.GetId() {
				t.Errorf("the Apply of the run record wrote event %q (%v), want %q", written.GetId(), err, ev.GetId())
			}
		})
	}

	t.Run("ApplyFailsNothingWrittenNothingReturned", func(t *testing.T) {
		boom := errors.New("disk full")
		defer spy.setFail(nil)
		ticket, err := runs.RunsTestStart(f.runnerA, rs, "acme", runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "ops-tools"}, "doomed")
		check(t, err)
		drain(t, dir)
		spy.setFail(func(ws []kv.Write) error {
			for _, w := range ws {
				if strings.HasPrefix(w.Key, "runs/") {
					return boom
				}
			}
			return nil
		})
		res, err := rs.ResolveRun(f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: new(f.recipient())})
		if !errors.Is(err, boom) || res.Sealed != nil || res.Run.ID != "" {
			t.Fatalf("got %+v, %v; want nothing and the store's error", res.Run, err)
		}
		spy.setFail(nil)
		if run, err := rs.GetRun(f.bob, "acme", "doomed"); err != nil || run.State != runs.RunStarted {
			t.Errorf("the run after a failed resolution: %v, %v; want still started", run.State, err)
		}
		if n := backlog(t, dir); n != 0 {
			t.Errorf("got %d events, want none", n)
		}
	})

	t.Run("ManyNamesSplitIntoParts", func(t *testing.T) {
		var names []string
		for i := range resolver.MaxSecretNames {
			names = append(names, "N"+strings.Repeat("X", 200)+"_"+string(rune('A'+i%26))+strings.Repeat("Z", i/26))
		}
		res, err := resolve(runs.RunContext{Trigger: resolver.TriggerSchedule, Secrets: names}, "")
		if err != nil {
			t.Fatal(err)
		}
		evs := drain(t, dir)
		if len(evs) < 2 {
			t.Fatalf("got %d events, want the resolution in several parts", len(evs))
		}
		unresolved := 0
		for i, ev := range evs {
			if err := audit.ValidateEvent("event", ev); err != nil {
				t.Errorf("part %d: %v", i+1, err)
			}
			want := map[string]string{"part": strings.Join([]string{strconv.Itoa(i + 1), strconv.Itoa(len(evs))}, "/"), "agent": "default", "runner": "runners/runner-a"}
			checkEvent(t, ev, wantEvent{action: "run.resolve", resource: res.Run.Name(), team: "acme", actor: "runners/runner-a",
				kind: auditv1.ActorKind_ACTOR_KIND_RUNNER, details: want})
			for k := range ev.GetDetails() {
				if strings.HasPrefix(k, "unresolved.") {
					unresolved++
				}
			}
		}
		if unresolved != len(names) {
			t.Errorf("the parts name %d unresolved references, want %d", unresolved, len(names))
		}
		if ws := spy.applyWriting("runs/acme/" + res.Run.ID); len(ws) != 2+len(evs) {
			t.Errorf("the Apply of the run record wrote %d keys, want the record, its in-flight index entry and %d parts", len(ws), len(evs))
		}
	})
}

// TestOutboxKeysAndAck: events are acknowledged by id, in any order and
// more than one Apply's worth at a time; unknown ids are ignored; a
// second Directory on the same store (another process) has its own ids.
func TestOutboxKeysAndAck(t *testing.T) {
	d, _, _, sys, _ := newAuditedDirectory(t)
	drain(t, d)
	const ordered = 20 // one after the other: their events in that order
	for i := range ordered {
		if _, err := d.CreateUser(sys, "u"+strconv.Itoa(i), false); err != nil {
			t.Fatal(err)
		}
	}
	parallel(t, 300-ordered, func(i int) error {
		_, err := d.CreateUser(sys, "u"+strconv.Itoa(ordered+i), false)
		return err
	})
	if n := backlog(t, d); n != 300 {
		t.Fatalf("Backlog: got %d, want 300", n)
	}
	evs, err := d.Store().Outbox().Pending(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs[:ordered] {
		if want := "users/u" + strconv.Itoa(i); ev.GetResource() != want {
			t.Fatalf("event %d: got %s, want %s (the order they were made)", i, ev.GetResource(), want)
		}
	}
	var ids []string
	for i := len(evs) - 1; i >= 0; i -= 2 { // every other one, newest first
		ids = append(ids, evs[i].GetId())
	}
	ids = append(ids, "resolver-00000000-0000000000000000", "secretstore-x-1", "resolver-nonsense")
	if err := d.Store().Outbox().Ack(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	if n := backlog(t, d); n != 150 {
		t.Fatalf("Backlog after acknowledging 150: got %d, want 150", n)
	}
	left, err := d.Store().Outbox().Pending(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range left {
		if ev.GetId() != evs[2*i].GetId() {
			t.Fatalf("left %d: got %s, want %s", i, ev.GetId(), evs[2*i].GetId())
		}
	}

}

// TestOutboxSharedStore: two Directories on one store (two processes, or
// one restarted) write concurrently; every event has its own id and key.
func TestOutboxSharedStore(t *testing.T) {
	d, spy, _, sys, _ := newAuditedDirectory(t)
	other := directory.New(resolver.NewStore(spy, nil))
	drain(t, d)
	var wg sync.WaitGroup
	for w, dir := range []*directory.Directory{d.Directory, other, d.Directory, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if _, err := dir.CreateUser(sys, "w"+strconv.Itoa(w)+"-"+strconv.Itoa(i), false); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	evs := drain(t, d)
	seen := map[string]bool{}
	epochs := map[string]bool{}
	for _, ev := range evs {
		if seen[ev.GetId()] {
			t.Fatalf("id %s twice", ev.GetId())
		}
		seen[ev.GetId()] = true
		epochs[strings.Split(ev.GetId(), "-")[1]] = true
	}
	if len(evs) != 100 || len(epochs) != 2 {
		t.Errorf("got %d events from %d epochs, want 100 from 2", len(evs), len(epochs))
	}
	if n := backlog(t, other); n != 0 {
		t.Errorf("one Directory acknowledged the other's events: got a backlog of %d, want 0", n)
	}
}

// parallel runs fn(0…n-1) on 10 goroutines (so that bbolt batches the
// writes) and fails the test on the first error.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errc := make(chan error, n)
	next := make(chan int)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					errc <- err
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
