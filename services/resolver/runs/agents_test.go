package runs_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/resolvertest"
	"github.com/ozsecrets/oz/services/resolver/runs"
)

func TestDefaultAgentComesWithTheTeam(t *testing.T) {
	f := newIDFixture(t)
	a, err := f.d.GetAgent(f.Max, "red", resolver.DefaultAgentID)
	idMust(t, err)
	if !a.Default || a.DisplayName != resolver.DefaultAgentDisplayName || a.Name() != "teams/red/agents/default" || a.Etag == "" {
		t.Errorf("default identity: got %+v", a)
	}
	agents, _, err := f.d.ListAgents(f.Max, "red", resolver.Page{})
	idMust(t, err)
	if len(agents) != 1 || agents[0].ID != resolver.DefaultAgentID {
		t.Errorf("ListAgents: got %v, want the default identity alone", agents)
	}

	err = f.d.DeleteAgent(f.Ann, "red", resolver.DefaultAgentID, "")
	wantKind(t, err, errs.KindFailedPrecondition)
	if !strings.Contains(err.Error(), "default identity") {
		t.Errorf("message: got %q, want it to say why", err)
	}
	err = f.d.DeleteAgent(f.Sys, "red", resolver.DefaultAgentID, "")
	wantKind(t, err, errs.KindFailedPrecondition)
	_, err = f.d.CreateAgent(f.Ann, runs.Agent{Team: "red", ID: resolver.DefaultAgentID})
	wantKind(t, err, errs.KindAlreadyExists)

	// Its references and description may change.
	u, err := f.d.UpdateAgent(f.Ann, "red", resolver.DefaultAgentID, runs.AgentUpdate{
		Description: strp("the fallback"), SecretNames: resolver.NamesUpdate{Add: []string{"SHARED_KEY"}},
	})
	idMust(t, err)
	if !u.Default || u.Description != "the fallback" || !slices.Equal(u.SecretNames, []string{"SHARED_KEY"}) {
		t.Errorf("updated default identity: got %+v", u)
	}
}

// TestDefaultAgentOfOldTeam: a team made before identities existed has no
// record of its default identity; it is there all the same.
func TestDefaultAgentOfOldTeam(t *testing.T) {
	f := newIDFixture(t)
	ctx := context.Background()
	team, err := f.d.GetTeam(f.Sys, "red")
	idMust(t, err)
	for _, id := range []string{"alpha", "zeta"} {
		idMust(t, errOf(f.d.CreateAgent(f.Ann, runs.Agent{Team: "red", ID: id})))
	}
	idMust(t, f.D.Store().KV().Apply(ctx, nil, []kv.Write{kv.Delete(resolver.AgentKey("red", resolver.DefaultAgentID))}))

	a, err := f.d.GetAgent(f.Max, "red", resolver.DefaultAgentID)
	idMust(t, err)
	if !a.Default || !a.CreateTime.Equal(team.CreateTime) || a.Etag == "" {
		t.Errorf("default identity of an old team: got %+v", a)
	}
	for _, size := range []int{1, 2, 10} {
		got := resolvertest.Pages(t, size, func(p resolver.Page) ([]runs.Agent, string, error) { return f.d.ListAgents(f.Max, "red", p) },
			func(a runs.Agent) string { return a.ID })
		if want := []string{"alpha", "default", "zeta"}; !slices.Equal(got, want) {
			t.Errorf("ListAgents by %d: got %v, want %v", size, got, want)
		}
	}
	wantKind(t, f.d.DeleteAgent(f.Ann, "red", resolver.DefaultAgentID, ""), errs.KindFailedPrecondition)

	// Its tokens work.
	_, bearer, err := f.d.CreateToken(f.Ann, resolver.AgentPrincipal("red", resolver.DefaultAgentID), 0, "")
	idMust(t, err)
	if p, err := f.d.Authenticate(ctx, bearer); err != nil || p.Kind != auth.KindAgent || p.ID != resolver.DefaultAgentID {
		t.Errorf("token of the default identity: got %+v, %v", p, err)
	}

	// An update with the etag read writes the record.
	u, err := f.d.UpdateAgent(f.Ann, "red", resolver.DefaultAgentID, runs.AgentUpdate{
		SecretNames: resolver.NamesUpdate{Set: true, Names: []string{"K"}}, Etag: a.Etag,
	})
	idMust(t, err)
	got, err := f.d.GetAgent(f.Max, "red", resolver.DefaultAgentID)
	idMust(t, err)
	if !got.Default || got.Etag != u.Etag || !slices.Equal(got.SecretNames, []string{"K"}) {
		t.Errorf("after update: got %+v, want %+v", got, u)
	}
}

func TestAgentAccess(t *testing.T) {
	f := newIDFixture(t)
	idMust(t, errOf(f.d.CreateAgent(f.Ann, runs.Agent{Team: "red", ID: "deployer"})))
	const (
		ok errs.Kind = -1 // no error
		pd           = errs.KindPermissionDenied
		nf           = errs.KindNotFound
	)
	type want struct{ sys, admin, member, other, runner, agent errs.Kind }
	n := 0
	fresh := func() string { n++; return fmt.Sprintf("bot-%d", n) }
	tests := []struct {
		name string
		call func(ctx context.Context) error
		want want
	}{
		{"Create", func(ctx context.Context) error {
			return errOf(f.d.CreateAgent(ctx, runs.Agent{Team: "red", ID: fresh()}))
		}, want{ok, ok, pd, pd, pd, pd}},
		{"CreateInMissingTeam", func(ctx context.Context) error {
			return errOf(f.d.CreateAgent(ctx, runs.Agent{Team: "nope", ID: fresh()}))
		}, want{nf, pd, pd, pd, pd, pd}},
		{"Get", func(ctx context.Context) error { return errOf(f.d.GetAgent(ctx, "red", "deployer")) },
			want{ok, ok, ok, pd, pd, pd}},
		{"GetMissing", func(ctx context.Context) error { return errOf(f.d.GetAgent(ctx, "red", "ghost")) },
			want{nf, nf, nf, pd, pd, pd}},
		{"List", func(ctx context.Context) error { _, _, err := f.d.ListAgents(ctx, "red", resolver.Page{}); return err },
			want{ok, ok, ok, pd, pd, pd}},
		{"Update", func(ctx context.Context) error {
			return errOf(f.d.UpdateAgent(ctx, "red", "deployer", runs.AgentUpdate{Description: strp("x")}))
		}, want{ok, ok, pd, pd, pd, pd}},
		{"UpdateMissing", func(ctx context.Context) error {
			return errOf(f.d.UpdateAgent(ctx, "red", "ghost", runs.AgentUpdate{Description: strp("x")}))
		}, want{nf, nf, pd, pd, pd, pd}},
		{"DeleteMissing", func(ctx context.Context) error { return f.d.DeleteAgent(ctx, "red", "ghost", "") },
			want{nf, nf, pd, pd, pd, pd}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				name string
				ctx  context.Context
				want errs.Kind
			}{{"SystemAdmin", f.Sys, tt.want.sys}, {"TeamAdmin", f.Ann, tt.want.admin}, {"Member", f.Max, tt.want.member},
				{"OtherTeamAdmin", f.Oli, tt.want.other}, {"Runner", f.Runner, tt.want.runner}, {"Agent", f.Agent, tt.want.agent}} {
				err := tt.call(c.ctx)
				if got := errs.KindOf(err); (err == nil) != (c.want == ok) || err != nil && got != c.want {
					t.Errorf("%s: got %v, want %v", c.name, err, c.want)
				}
			}
		})
	}
	t.Run("kv.Delete", func(t *testing.T) {
		for _, ctx := range []context.Context{f.Max, f.Oli, f.Runner, f.Agent} {
			wantKind(t, f.d.DeleteAgent(ctx, "red", "deployer", ""), errs.KindPermissionDenied)
		}
		idMust(t, f.d.DeleteAgent(f.Ann, "red", "deployer", ""))
		_, err := f.d.GetAgent(f.Max, "red", "deployer")
		wantKind(t, err, errs.KindNotFound)
	})
}

// TestAgentBadInput: bad input is Invalid about the field, changes
// nothing, and never echoes what was given.
func TestAgentBadInput(t *testing.T) {
	f := newIDFixture(t)
	good, err := f.d.CreateAgent(f.Ann, runs.Agent{Team: "red", ID: "deployer"})
	idMust(t, err)
	const pasted = "oz_0123456789abcdef_PASTEDxTOKEN" // a valid name syntactically, but reserved (OZ_)
	many := make([]string, resolver.MaxSecretNames+1)
	for i := range many {
		many[i] = fmt.Sprintf("K%d", i)
	}
	create := func(a runs.Agent) func() error {
		return func() error { a.Team = "red"; return errOf(f.d.CreateAgent(f.Ann, a)) }
	}
	update := func(u runs.AgentUpdate) func() error {
		return func() error { return errOf(f.d.UpdateAgent(f.Ann, "red", "deployer", u)) }
	}
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"IDEmpty", create(runs.Agent{}), "agent_id"},
		{"IDUpperCase", create(runs.Agent{ID: "Deployer"}), "agent_id"},
		{"IDPasted", create(runs.Agent{ID: pasted}), "agent_id"},
		{"DisplayNameNewline", create(runs.Agent{ID: "a", DisplayName: "two\nlines"}), "display_name"},
		{"DisplayNameLong", create(runs.Agent{ID: "a", DisplayName: strings.Repeat("x", runs.MaxDisplayNameLength+1)}), "display_name"},
		{"DescriptionLong", create(runs.Agent{ID: "a", Description: strings.Repeat("é", 1025)}), "description"},
		{"DescriptionEscape", create(runs.Agent{ID: "a", Description: "clear \x1b[2J"}), "description"},
		{"DescriptionCRLF", create(runs.Agent{ID: "a", Description: "fake\r\nrow"}), "description"},
		{"DescriptionNUL", create(runs.Agent{ID: "a", Description: "nul\x00"}), "description"},
		{"UpdateDescriptionEscape", update(runs.AgentUpdate{Description: strp("\x1b]0;title\x07")}), "description"},
		{"SecretNameEmpty", create(runs.Agent{ID: "a", SecretNames: []string{"A", ""}}), "secret_names"},
		{"SecretNameDigitFirst", create(runs.Agent{ID: "a", SecretNames: []string{"1KEY"}}), "secret_names"},
		{"SecretNameDash", create(runs.Agent{ID: "a", SecretNames: []string{"MY-KEY"}}), "secret_names"},
		{"SecretNamePATH", create(runs.Agent{ID: "a", SecretNames: []string{"PATH"}}), "secret_names"},
		{"SecretNameLD", create(runs.Agent{ID: "a", SecretNames: []string{"LD_PRELOAD"}}), "secret_names"},
		{"SecretNameOZ", create(runs.Agent{ID: "a", SecretNames: []string{"oz_team"}}), "secret_names"},
		{"SecretNamePasted", create(runs.Agent{ID: "a", SecretNames: []string{pasted}}), "secret_names"},
		{"SecretNameLong", create(runs.Agent{ID: "a", SecretNames: []string{strings.Repeat("K", 256)}}), "secret_names"},
		{"TooManyNames", create(runs.Agent{ID: "a", SecretNames: many}), "secret_names"},
		{"UpdateDisplayName", update(runs.AgentUpdate{DisplayName: strp("\x00")}), "display_name"},
		{"UpdateDescription", update(runs.AgentUpdate{Description: strp(strings.Repeat("x", 1025))}), "description"},
		{"UpdateSetBad", update(runs.AgentUpdate{SecretNames: resolver.NamesUpdate{Set: true, Names: []string{"HOME"}}}), "secret_names"},
		{"UpdateAddBad", update(runs.AgentUpdate{SecretNames: resolver.NamesUpdate{Add: []string{"DYLD_X"}}}), "add_secret_names"},
		{"UpdateRemoveEmpty", update(runs.AgentUpdate{SecretNames: resolver.NamesUpdate{Remove: []string{""}}}), "remove_secret_names"},
		{"UpdateAddAndRemove", update(runs.AgentUpdate{SecretNames: resolver.NamesUpdate{Add: []string{"K"}, Remove: []string{"K"}}}), "remove_secret_names"},
		{"UpdateTooMany", update(runs.AgentUpdate{SecretNames: resolver.NamesUpdate{Set: true, Names: many[:500], Add: many[500:1001]}}), "add_secret_names"},
		{"UpdateEtagLong", update(runs.AgentUpdate{Etag: strings.Repeat("e", 129)}), "etag"},
		{"DeleteEtagLong", func() error { return f.d.DeleteAgent(f.Ann, "red", "deployer", strings.Repeat("e", 129)) }, "etag"},
		{"GetBadID", func() error { return errOf(f.d.GetAgent(f.Max, "red", "x/y")) }, "agent_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.Snapshot(t)
			err := tt.call()
			wantFieldErr(t, err, tt.field)
			if strings.Contains(err.Error(), "PASTED") {
				t.Errorf("message echoes the input: %q", err)
			}
			if !slices.EqualFunc(before, f.Snapshot(t), func(a, b kv.KV) bool { return a.Key == b.Key && string(a.Value) == string(b.Value) }) {
				t.Errorf("the store changed")
			}
		})
	}
	if got, err := f.d.GetAgent(f.Max, "red", "deployer"); err != nil || got.Etag != good.Etag {
		t.Errorf("deployer changed: got %+v, %v", got, err)
	}
}

func TestUpdateAgent(t *testing.T) {
	f := newIDFixture(t)
	a, err := f.d.CreateAgent(f.Ann, runs.Agent{
		Team: "red", ID: "deployer", DisplayName: "Deployer", Description: "ships",
		SecretNames: []string{"DEPLOY_KEY", "AWS_KEY", "DEPLOY_KEY"},
	})
	idMust(t, err)
	if !slices.Equal(a.SecretNames, []string{"DEPLOY_KEY", "AWS_KEY"}) || a.Default || a.DisplayName != "Deployer" {
		t.Fatalf("created: got %+v, want the names once each, in order", a)
	}
	steps := []struct {
		name  string
		u     runs.AgentUpdate
		names []string
		desc  string
	}{
		{"Add", runs.AgentUpdate{SecretNames: resolver.NamesUpdate{Add: []string{"GH_TOKEN", "AWS_KEY"}}}, []string{"DEPLOY_KEY", "AWS_KEY", "GH_TOKEN"}, "ships"},
		{"Remove", runs.AgentUpdate{SecretNames: resolver.NamesUpdate{Remove: []string{"AWS_KEY", "NEVER_LISTED", "PATH"}}}, []string{"DEPLOY_KEY", "GH_TOKEN"}, "ships"},
		{"Replace", runs.AgentUpdate{SecretNames: resolver.NamesUpdate{Set: true, Names: []string{"ONE"}, Add: []string{"TWO"}}}, []string{"ONE", "TWO"}, "ships"},
		{"ClearDescription", runs.AgentUpdate{Description: strp("")}, []string{"ONE", "TWO"}, ""},
		{"ClearNames", runs.AgentUpdate{SecretNames: resolver.NamesUpdate{Set: true}}, nil, ""},
	}
	etag := a.Etag
	for _, s := range steps {
		f.Clock.Advance(time.Second)
		got, err := f.d.UpdateAgent(f.Ann, "red", "deployer", s.u)
		idMust(t, err)
		if !slices.Equal(got.SecretNames, s.names) || got.Description != s.desc || got.DisplayName != "Deployer" {
			t.Errorf("%s: got names %v, description %q, want %v, %q", s.name, got.SecretNames, got.Description, s.names, s.desc)
		}
		if got.Etag == etag || !got.UpdateTime.After(a.UpdateTime) {
			t.Errorf("%s: etag and update time did not change", s.name)
		}
		etag = got.Etag
	}

	t.Run("NoChangeKeepsEtag", func(t *testing.T) {
		got, err := f.d.UpdateAgent(f.Ann, "red", "deployer", runs.AgentUpdate{Description: strp("")})
		idMust(t, err)
		if got.Etag != etag {
			t.Errorf("etag: got %q, want %q", got.Etag, etag)
		}
	})
	t.Run("EtagMismatch", func(t *testing.T) {
		before := f.Snapshot(t)
		_, err := f.d.UpdateAgent(f.Ann, "red", "deployer", runs.AgentUpdate{Description: strp("x"), Etag: a.Etag})
		wantKind(t, err, errs.KindFailedPrecondition)
		wantKind(t, f.d.DeleteAgent(f.Ann, "red", "deployer", a.Etag), errs.KindFailedPrecondition)
		if !slices.EqualFunc(before, f.Snapshot(t), func(a, b kv.KV) bool { return a.Key == b.Key && string(a.Value) == string(b.Value) }) {
			t.Errorf("the store changed")
		}
	})
	t.Run("EtagMatch", func(t *testing.T) {
		got, err := f.d.UpdateAgent(f.Ann, "red", "deployer", runs.AgentUpdate{DisplayName: strp("Shipper"), Etag: etag})
		idMust(t, err)
		if got.DisplayName != "Shipper" {
			t.Errorf("display name: got %q", got.DisplayName)
		}
		idMust(t, f.d.DeleteAgent(f.Ann, "red", "deployer", got.Etag))
	})
}

// TestAgentTokens: team admins (and system admins) give identities
// tokens; those authenticate as the identity, a member of its team only;
// deleting the identity revokes them, and a new identity of the same name
// does not inherit them.
func TestAgentTokens(t *testing.T) {
	f := newIDFixture(t)
	ctx := context.Background()
	idMust(t, errOf(f.d.CreateAgent(f.Ann, runs.Agent{Team: "red", ID: "deployer"})))
	owner := resolver.AgentPrincipal("red", "deployer")

	for name, c := range map[string]context.Context{"Member": f.Max, "OtherTeamAdmin": f.Oli, "Runner": f.Runner, "Agent": f.Agent} {
		_, _, err := f.d.CreateToken(c, owner, 0, "")
		wantKind(t, err, errs.KindPermissionDenied)
		_, _, err = f.d.ListTokens(c, owner.Name, resolver.Page{})
		if errs.KindOf(err) != errs.KindPermissionDenied {
			t.Errorf("%s: ListTokens: got %v, want PermissionDenied", name, err)
		}
	}
	_, _, err := f.d.CreateToken(f.Ann, resolver.AgentPrincipal("red", "ghost"), 0, "")
	wantKind(t, err, errs.KindNotFound)
	_, _, err = f.d.CreateToken(f.Max, resolver.AgentPrincipal("red", "ghost"), 0, "")
	wantKind(t, err, errs.KindPermissionDenied)

	tok1, bearer1, err := f.d.CreateToken(f.Ann, owner, 0, "ci")
	idMust(t, err)
	_, bearer2, err := f.d.CreateToken(f.Sys, owner, time.Hour, "")
	idMust(t, err)
	p, err := f.d.Authenticate(ctx, bearer1)
	idMust(t, err)
	want := auth.Principal{Kind: auth.KindAgent, Name: "teams/red/agents/deployer", ID: "deployer", TokenID: tok1.ID}
	if p.Kind != want.Kind || p.Name != want.Name || p.ID != want.ID || p.TokenID != want.TokenID || p.SystemAdmin ||
		len(p.Teams) != 1 || p.Teams["red"] != auth.RoleMember {
		t.Errorf("agent principal: got %+v, want %+v member of red only", p, want)
	}
	toks, _, err := f.d.ListTokens(f.Ann, owner.Name, resolver.Page{})
	idMust(t, err)
	if len(toks) != 2 || toks[0].Principal != owner {
		t.Errorf("ListTokens: got %+v, want 2 tokens of %v", toks, owner)
	}
	// The identity's token does nothing people do.
	agentCtx := auth.WithPrincipal(ctx, p)
	_, err = f.d.GetAgent(agentCtx, "red", "deployer")
	wantKind(t, err, errs.KindPermissionDenied)
	_, _, err = f.d.CreateToken(agentCtx, owner, 0, "")
	wantKind(t, err, errs.KindPermissionDenied)

	idMust(t, f.d.DeleteAgent(f.Ann, "red", "deployer", ""))
	for _, b := range []string{bearer1, bearer2} {
		_, err := f.d.Authenticate(ctx, b)
		wantKind(t, err, errs.KindUnauthenticated)
	}
	toks, _, err = f.d.ListTokens(f.Sys, owner.Name, resolver.Page{})
	idMust(t, err)
	for _, tk := range toks {
		if !tk.Revoked() {
			t.Errorf("token %s of the deleted identity is not revoked", tk.ID)
		}
	}
	_, _, err = f.d.CreateToken(f.Ann, owner, 0, "")
	wantKind(t, err, errs.KindNotFound)

	// A new identity of the same name starts with no token.
	idMust(t, errOf(f.d.CreateAgent(f.Ann, runs.Agent{Team: "red", ID: "deployer"})))
	_, err = f.d.Authenticate(ctx, bearer1)
	wantKind(t, err, errs.KindUnauthenticated)
	_, bearer3, err := f.d.CreateToken(f.Ann, owner, 0, "")
	idMust(t, err)
	if _, err := f.d.Authenticate(ctx, bearer3); err != nil {
		t.Errorf("token of the new identity: %v", err)
	}

	t.Run("AdminRevokes", func(t *testing.T) {
		tok, _, err := f.d.CreateToken(f.Sys, owner, 0, "")
		idMust(t, err)
		_, err = f.d.RevokeToken(f.Max, tok.ID)
		wantKind(t, err, errs.KindPermissionDenied)
		_, err = f.d.RevokeToken(f.Oli, tok.ID)
		wantKind(t, err, errs.KindPermissionDenied)
		got, err := f.d.RevokeToken(f.Ann, tok.ID)
		if err != nil || !got.Revoked() {
			t.Errorf("team admin revokes: got %+v, %v", got, err)
		}
	})
}

// TestDeleteAgentWithManyTokens: more tokens than fit in one write are
// all revoked.
func TestDeleteAgentWithManyTokens(t *testing.T) {
	f := newIDFixture(t)
	ctx := context.Background()
	idMust(t, errOf(f.d.CreateAgent(f.Ann, runs.Agent{Team: "red", ID: "fleet"})))
	owner := resolver.AgentPrincipal("red", "fleet")
	var bearers []string
	for range 150 {
		_, b, err := f.d.CreateToken(f.Ann, owner, 0, "")
		idMust(t, err)
		bearers = append(bearers, b)
	}
	idMust(t, f.d.DeleteAgent(f.Ann, "red", "fleet", ""))
	for i, b := range bearers {
		if _, err := f.d.Authenticate(ctx, b); errs.KindOf(err) != errs.KindUnauthenticated {
			t.Fatalf("token %d: got %v, want Unauthenticated", i, err)
		}
	}
	toks, _, err := f.d.ListTokens(f.Sys, owner.Name, resolver.Page{Size: 1000})
	idMust(t, err)
	for _, tk := range toks {
		if !tk.Revoked() {
			t.Fatalf("token %s not revoked", tk.ID)
		}
	}
}

// TestDirectoryReadsArePeoples: runners and agent identities are listed
// as members of their teams, but read nothing of the directory.
func TestDirectoryReadsArePeoples(t *testing.T) {
	f := newIDFixture(t)
	for name, ctx := range map[string]context.Context{"Runner": f.Runner, "Agent": f.Agent} {
		calls := map[string]func() error{
			"GetTeam":         func() error { return errOf(f.d.GetTeam(ctx, "red")) },
			"ListTeams":       func() error { _, _, err := f.d.ListTeams(ctx, resolver.Page{}); return err },
			"GetUser":         func() error { return errOf(f.d.GetUser(ctx, "max")) },
			"ListMemberships": func() error { _, _, err := f.d.ListMemberships(ctx, "red", resolver.Page{}); return err },
		}
		for call, fn := range calls {
			t.Run(name+"/"+call, func(t *testing.T) { wantKind(t, fn(), errs.KindPermissionDenied) })
		}
	}
}
