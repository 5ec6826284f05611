package grpcapi_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
)

// drainEvents returns the events waiting in d's outbox and acknowledges
// them.
func drainEvents(t *testing.T, d interface{ Store() *resolver.Store }) []*auditv1.Event {
	t.Helper()
	ctx := context.Background()
	evs, err := d.Store().Outbox().Pending(ctx, 100000)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.GetId())
	}
	if err := d.Store().Outbox().Ack(ctx, ids); err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestDeniedRequestsAreAudited: every request refused with
// PermissionDenied or Unauthenticated, by the access rules or by the
// Directory, is one request.denied event naming the method, the code,
// the caller as far as it is known and the resource (in its team's chain
// when the team exists); nothing else is, and no token ever is.
func TestDeniedRequestsAreAudited(t *testing.T) {
	f := newFixture(t)
	e := f.serve(t)
	gw := e.dial(t, "gateway")
	intruder := e.dial(t, "intruder")
	drainEvents(t, e.dir)

	as := func(caller string) context.Context {
		ctx := withToken(t, f.tokens[caller])
		return metadata.AppendToOutgoingContext(ctx, "x-oz-client", "cli", "x-request-id", "req-"+caller)
	}
	dirSvc := "/oz.scope.v1.DirectoryService/"
	tests := []struct {
		name     string
		call     func() error
		code     codes.Code
		method   string
		actor    string
		kind     auditv1.ActorKind
		resource string
		team     string
	}{
		{"UnknownToken", func() error {
			_, err := gw.dir.GetTeam(as(unknownToken), &scopev1.GetTeamRequest{Name: "teams/red"})
			return err
		},
			codes.Unauthenticated, dirSvc + "GetTeam", "", auditv1.ActorKind_ACTOR_KIND_UNSPECIFIED, "teams/red", "red"},
		{"NoToken", func() error {
			_, err := gw.dir.ListMemberships(as(noToken), &scopev1.ListMembershipsRequest{Parent: "teams/blue"})
			return err
		}, codes.Unauthenticated, dirSvc + "ListMemberships", "", auditv1.ActorKind_ACTOR_KIND_UNSPECIFIED, "teams/blue", "blue"},
		{"OtherTeam", func() error {
			_, err := gw.dir.GetTeam(as(otherTeam), &scopev1.GetTeamRequest{Name: "teams/red"})
			return err
		},
			codes.PermissionDenied, dirSvc + "GetTeam", "users/oli", auditv1.ActorKind_ACTOR_KIND_USER, "teams/red", "red"},
		{"MemberManagesMembers", func() error {
			_, err := gw.dir.CreateMembership(as(teamMember), &scopev1.CreateMembershipRequest{Parent: "teams/red", User: "users/newbie"})
			return err
		}, codes.PermissionDenied, dirSvc + "CreateMembership", "users/max", auditv1.ActorKind_ACTOR_KIND_USER, "teams/red", "red"},
		{"CreateTeamNotSystemAdmin", func() error {
			_, err := gw.dir.CreateTeam(as(teamAdmin), &scopev1.CreateTeamRequest{TeamId: "green"})
			return err
		}, codes.PermissionDenied, dirSvc + "CreateTeam", "users/ann", auditv1.ActorKind_ACTOR_KIND_USER, "teams/green", ""},
		{"TokenPastedIntoName", func() error {
			_, err := gw.tokens.RevokeToken(as(unknownToken), &scopev1.RevokeTokenRequest{Name: "tokens/" + f.tokens[sysAdmin]})
			return err
		}, codes.Unauthenticated, "/oz.scope.v1.TokenService/RevokeToken", "", auditv1.ActorKind_ACTOR_KIND_UNSPECIFIED, "", ""},
		{"UnlistedService", func() error {
			_, err := intruder.auth.Authenticate(context.Background(), &internalapiv1.AuthenticateRequest{BearerToken: f.tokens[teamMember]})
			return err
		}, codes.PermissionDenied, "/oz.internalapi.v1.AuthService/Authenticate", "intruder", auditv1.ActorKind_ACTOR_KIND_SERVICE, "", ""},
	}
	var all []*auditv1.Event
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.call(), tt.code)
			evs := drainEvents(t, e.dir)
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			ev := evs[0]
			all = append(all, ev)
			code := map[codes.Code]string{codes.PermissionDenied: "PERMISSION_DENIED", codes.Unauthenticated: "UNAUTHENTICATED"}[tt.code]
			d := ev.GetDetails()
			if ev.GetAction() != audit.ActionRequestDenied || ev.GetOutcome() != auditv1.Outcome_OUTCOME_DENIED ||
				d[audit.DetailMethod] != tt.method || d[audit.DetailCode] != code || d[audit.DetailReason] == "" {
				t.Errorf("got %s %v details %v, want request.denied DENIED method %s code %s and a reason", ev.GetAction(), ev.GetOutcome(), d, tt.method, code)
			}
			if ev.GetActor().GetName() != tt.actor || ev.GetActor().GetKind() != tt.kind {
				t.Errorf("got actor %v %q, want %v %q", ev.GetActor().GetKind(), ev.GetActor().GetName(), tt.kind, tt.actor)
			}
			if tt.code == codes.Unauthenticated && d["peer_service"] != "gateway" {
				t.Errorf("peer_service: got %q, want gateway (it relayed the request)", d["peer_service"])
			}
			if ev.GetResource() != tt.resource || ev.GetTeam() != tt.team {
				t.Errorf("got resource %q in chain %q, want %q in %q", ev.GetResource(), ev.GetTeam(), tt.resource, tt.team)
			}
			if tt.kind != auditv1.ActorKind_ACTOR_KIND_SERVICE && (ev.GetActor().GetClient() != "cli" || !strings.HasPrefix(ev.GetRequestId(), "req-")) {
				t.Errorf("got client %q request id %q, want cli and the request's id", ev.GetActor().GetClient(), ev.GetRequestId())
			}
			if err := audit.ValidateEvent("event", ev); err != nil {
				t.Errorf("the audit service would refuse it: %v", err)
			}
		})
	}

	t.Run("NotRecorded", func(t *testing.T) {
		// Allowed, failing otherwise, a token another service asks about,
		// health checks.
		if _, err := gw.dir.GetTeam(as(teamMember), &scopev1.GetTeamRequest{Name: "teams/red"}); err != nil {
			t.Fatal(err)
		}
		_, err := gw.dir.GetTeam(as(sysAdmin), &scopev1.GetTeamRequest{Name: "teams/nope"})
		wantCode(t, err, codes.NotFound)
		_, err = gw.auth.Authenticate(context.Background(), &internalapiv1.AuthenticateRequest{BearerToken: f.tokens[revokedToken]})
		wantCode(t, err, codes.Unauthenticated)
		if _, err := healthpb.NewHealthClient(dialConn(t, e)).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		if evs := drainEvents(t, e.dir); len(evs) != 0 {
			t.Errorf("got %d events (%s…), want none", len(evs), evs[0].GetAction())
		}
	})

	for _, ev := range all {
		text := ev.String()
		for caller, tok := range f.tokens {
			if tok != "" && (strings.Contains(text, tok) || strings.Contains(text, secretPart(t, tokOr(tok)))) {
				t.Errorf("event %s holds the token of %s", ev.GetId(), caller)
			}
		}
	}
}

// tokOr returns tok when it has the shape of a bearer token, else a
// well-formed stand-in (for the malformed fixture token).
func tokOr(tok string) string {
	if len(tok) == len(directory.TokenPrefix)+16+1+43 {
		return tok
	}
	return directory.TokenPrefix + strings.Repeat("0", 16) + "_" + strings.Repeat("-", 43)
}

// TestDeniedRunRequestsAreAudited: run resolution refused is recorded in
// the team's chain, with the run id asked for; nothing is recorded as a
// run.
func TestDeniedRunRequestsAreAudited(t *testing.T) {
	e := newRunsEnv(t)
	c := e.runsClient(t, e.addr)
	drainEvents(t, e.dir)
	_, err := c.ResolveRun(withToken(t, runnerBToken), &scopev1.ResolveRunRequest{
		Parent: "teams/acme", RunId: "run-probe", Recipient: recipientOf(runnerKey(t)),
		Context: &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_SCHEDULE},
	})
	wantCode(t, err, codes.PermissionDenied)
	evs := drainEvents(t, e.dir)
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.GetAction() != "request.denied" || ev.GetTeam() != "acme" || ev.GetRunId() != "run-probe" ||
		ev.GetActor().GetName() != "runners/runner-b" || ev.GetActor().GetKind() != auditv1.ActorKind_ACTOR_KIND_RUNNER ||
		ev.GetDetails()["method"] != "/oz.scope.v1.RunService/ResolveRun" {
		t.Errorf("got %v, want request.denied of runners/runner-b in acme's chain for run-probe", ev)
	}
}

func dialConn(t *testing.T, e *env) *grpc.ClientConn {
	t.Helper()
	tlsCfg, err := pki.ClientConfig(e.pki.For("gateway"), e.pki.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := server.Dial(e.addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
