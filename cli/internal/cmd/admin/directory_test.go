package admin

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/config"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

// memDirectory is a DirectoryService over maps, with the rules of the
// resolver's that the team and member commands meet: ListTeams pages one
// team at a time, an unknown team or member is NotFound. It stands in for
// ozfake, whose Directory has no ListTeams, ListMemberships or
// DeleteMembership yet.
type memDirectory struct {
	scopev1.UnimplementedDirectoryServiceServer
	mu      sync.Mutex
	members map[string]map[string]scopev1.Role // team → user → role
}

var created = timestamppb.New(time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC))

func (d *memDirectory) GetCaller(context.Context, *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := &scopev1.Principal{Kind: scopev1.PrincipalKind_PRINCIPAL_KIND_USER, Name: "users/root", SystemAdmin: true}
	for _, team := range d.teams() {
		if r, ok := d.members[team]["root"]; ok {
			p.Teams = append(p.Teams, &scopev1.TeamRole{Team: team, Role: r})
		}
	}
	return &scopev1.GetCallerResponse{Principal: p}, nil
}

func (d *memDirectory) teams() []string {
	var ts []string
	for t := range d.members {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

func (d *memDirectory) ListTeams(_ context.Context, r *scopev1.ListTeamsRequest) (*scopev1.ListTeamsResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ts := d.teams()
	i := 0
	if r.GetPageToken() != "" {
		i, _ = strconv.Atoi(r.GetPageToken())
	}
	resp := &scopev1.ListTeamsResponse{}
	if i < len(ts) {
		resp.Teams = []*scopev1.Team{{Name: "teams/" + ts[i], TeamId: ts[i], CreateTime: created}}
	}
	if i+1 < len(ts) {
		resp.NextPageToken = strconv.Itoa(i + 1)
	}
	return resp, nil
}

func (d *memDirectory) ListMemberships(_ context.Context, r *scopev1.ListMembershipsRequest) (*scopev1.ListMembershipsResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	team := strings.TrimPrefix(r.GetParent(), "teams/")
	ms, ok := d.members[team]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "team %q not found", team)
	}
	var users []string
	for u := range ms {
		users = append(users, u)
	}
	sort.Strings(users)
	resp := &scopev1.ListMembershipsResponse{}
	for _, u := range users {
		resp.Memberships = append(resp.Memberships, &scopev1.Membership{
			Name: "teams/" + team + "/members/" + u, Team: "teams/" + team, User: "users/" + u, Role: ms[u], CreateTime: created,
		})
	}
	return resp, nil
}

func (d *memDirectory) DeleteMembership(_ context.Context, r *scopev1.DeleteMembershipRequest) (*scopev1.DeleteMembershipResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rest, ok := strings.CutPrefix(r.GetName(), "teams/")
	team, user, ok2 := strings.Cut(rest, "/members/")
	if !ok || !ok2 {
		return nil, status.Errorf(codes.InvalidArgument, "name: must be teams/{team}/members/{user}")
	}
	if _, ok := d.members[team][user]; !ok {
		return nil, status.Errorf(codes.NotFound, "user %q is not a member of team %q", user, team)
	}
	delete(d.members[team], user)
	return &scopev1.DeleteMembershipResponse{}, nil
}

// startDirectory serves d over TLS on a loopback port until the test
// ends, and returns the settings that reach it as the CLI dials.
func startDirectory(t *testing.T, d *memDirectory) config.Settings {
	t.Helper()
	cert, caPEM := ozfake.SelfSigned(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
	scopev1.RegisterDirectoryServiceServer(gs, d)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return config.Settings{Addr: lis.Addr().String(), CAFile: caFile, Token: "oz_test_token"}
}

// dirDeps are admin dependencies that reach the directory at s, with the
// output buffers; stdin is a terminal when tty.
func dirDeps(s config.Settings, tty bool, answers ...string) (Deps, *strings.Builder, *strings.Builder) {
	ios, _, _, _ := iostreams.Test()
	out, errOut := &strings.Builder{}, &strings.Builder{}
	ios.Out, ios.ErrOut = out, errOut
	ios.StdinTTY, ios.StdoutTTY, ios.StderrTTY = tty, tty, tty
	return Deps{
		IO:       ios,
		Prompter: &iostreams.ScriptedPrompter{Answers: answers},
		Connect:  func(context.Context) (*client.Conn, error) { return client.Dial(s) },
	}, out, errOut
}
