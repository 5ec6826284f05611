package admin

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

func newMemDirectory() *memDirectory {
	return &memDirectory{members: map[string]map[string]scopev1.Role{
		"acme": {"root": scopev1.Role_ROLE_ADMIN, "bob": scopev1.Role_ROLE_MEMBER},
		"beta": {"root": scopev1.Role_ROLE_MEMBER},
		"zeta": {},
	}}
}

var utc = func() time.Time { return time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC) }

func TestTeamList(t *testing.T) {
	s := startDirectory(t, newMemDirectory())

	deps, out, _ := dirDeps(s, false)
	if err := runTeamList(context.Background(), &TeamListOptions{Deps: deps, Now: utc, Output: cmdutil.FormatTable}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "TEAM") || !strings.HasPrefix(lines[1], "acme ") || !strings.HasPrefix(lines[3], "zeta ") {
		t.Errorf("got table %q, want a header and acme, beta, zeta (every page)", out.String())
	}

	deps, out, _ = dirDeps(s, false)
	if err := runTeamList(context.Background(), &TeamListOptions{Deps: deps, Now: utc, Output: cmdutil.FormatJSON}); err != nil {
		t.Fatal(err)
	}
	var items []teamItem
	if err := json.Unmarshal([]byte(out.String()), &items); err != nil {
		t.Fatalf("stdout %q: %v", out.String(), err)
	}
	if len(items) != 3 || items[1] != (teamItem{Team: "beta", Name: "teams/beta", CreatedAt: "2026-05-01T09:00:00Z"}) {
		t.Errorf("got %+v, want acme, beta, zeta", items)
	}
}

func TestMemberList(t *testing.T) {
	s := startDirectory(t, newMemDirectory())

	deps, out, _ := dirDeps(s, false)
	if err := runMemberList(context.Background(), &MemberListOptions{Deps: deps, Now: utc, Team: "acme", Output: cmdutil.FormatTable}); err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(out.String())
	if len(got) < 9 || strings.Join(got[:3], " ") != "USER ROLE SINCE" || got[3] != "bob" || got[4] != "member" {
		t.Errorf("got table %q, want USER ROLE SINCE, then bob member, root admin", out.String())
	}
	if !strings.Contains(out.String(), "root") || !strings.Contains(out.String(), "admin") {
		t.Errorf("got table %q, want root admin", out.String())
	}

	deps, out, _ = dirDeps(s, false)
	if err := runMemberList(context.Background(), &MemberListOptions{Deps: deps, Now: utc, Team: "acme", Output: cmdutil.FormatJSON}); err != nil {
		t.Fatal(err)
	}
	var items []memberItem
	if err := json.Unmarshal([]byte(out.String()), &items); err != nil {
		t.Fatalf("stdout %q: %v", out.String(), err)
	}
	want := memberItem{User: "root", Role: "admin", Team: "acme", Name: "teams/acme/members/root", CreatedAt: "2026-05-01T09:00:00Z"}
	if len(items) != 2 || items[1] != want {
		t.Errorf("got %+v, want bob then %+v", items, want)
	}

	// No --team: the caller's only team is chosen; root is in two.
	deps, _, _ = dirDeps(s, false)
	err := runMemberList(context.Background(), &MemberListOptions{Deps: deps, Now: utc, Output: cmdutil.FormatTable})
	if lines, code := exitcode.Describe(err); code != exitcode.Usage || !strings.Contains(strings.Join(lines, "\n"), "acme, beta") {
		t.Errorf("no team: got exit %d %q, want a usage error naming acme, beta", code, lines)
	}

	deps, _, _ = dirDeps(s, false)
	err = runMemberList(context.Background(), &MemberListOptions{Deps: deps, Now: utc, Team: "nope", Output: cmdutil.FormatTable})
	if lines, code := exitcode.Describe(err); code != exitcode.NotFound || !strings.Contains(strings.Join(lines, "\n"), `team "nope" not found`) {
		t.Errorf("unknown team: got exit %d %q, want %d and the team named", code, lines, exitcode.NotFound)
	}

	deps, _, errOut := dirDeps(s, true)
	if err := runMemberList(context.Background(), &MemberListOptions{Deps: deps, Now: utc, Team: "zeta", Output: cmdutil.FormatTable}); err != nil {
		t.Fatal(err)
	}
	if got, want := errOut.String(), "No members in team zeta.\n"; got != want {
		t.Errorf("empty team on a terminal: got %q, want %q", got, want)
	}
}

func TestMemberRemove(t *testing.T) {
	d := newMemDirectory()
	s := startDirectory(t, d)
	ctx := context.Background()

	tests := []struct {
		name     string
		opts     MemberRemoveOptions
		tty      bool
		answers  []string
		wantCode int
		wantMsg  string
		removed  bool
	}{
		{name: "NoTeam", opts: MemberRemoveOptions{User: "bob"}, wantCode: exitcode.Usage, wantMsg: "--team is required"},
		{name: "NoTerminalNoForce", opts: MemberRemoveOptions{User: "bob", Team: "acme"}, wantCode: exitcode.Usage, wantMsg: "--force"},
		{name: "Declined", opts: MemberRemoveOptions{User: "bob", Team: "acme"}, tty: true, answers: []string{"n"}, wantCode: exitcode.Error, wantMsg: "not deleted"},
		{name: "UnknownMember", opts: MemberRemoveOptions{User: "carol", Team: "acme", Force: true}, wantCode: exitcode.NotFound, wantMsg: `user "carol" is not a member of team "acme"`},
		{name: "Confirmed", opts: MemberRemoveOptions{User: "bob", Team: "acme"}, tty: true, answers: []string{"y"}, removed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deps, _, _ := dirDeps(s, tt.tty, tt.answers...)
			opts := tt.opts
			opts.Deps = deps
			err := runMemberRemove(ctx, &opts)
			lines, code := exitcode.Describe(err)
			if code != tt.wantCode || !strings.Contains(strings.Join(lines, "\n"), tt.wantMsg) {
				t.Errorf("got exit %d %q, want %d with %q", code, lines, tt.wantCode, tt.wantMsg)
			}
			d.mu.Lock()
			_, still := d.members["acme"]["bob"]
			d.mu.Unlock()
			if still == tt.removed {
				t.Errorf("bob still a member: %v, want %v", still, !tt.removed)
			}
		})
	}
}
