package auditevent_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auditevent"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/server"
)

// recorder is a Recorder that keeps what it is given.
type recorder struct {
	now      time.Time
	fail     error
	events   []*auditv1.Event
	resource []string
	runID    []string
}

func (r *recorder) Now() time.Time { return r.now }

func (r *recorder) RecordDenied(_ context.Context, ev *auditv1.Event, resource, runID string) error {
	r.events, r.resource, r.runID = append(r.events, ev), append(r.resource, resource), append(r.runID, runID)
	return r.fail
}

// tokenCanary has the shape of a bearer token and of a valid secret name.
const tokenCanary = "oz_0123456789abcdef_CANARYtokenSecretPartxxxxxxxxxxxxxxxxxxxxxx"

// TestOnDenied: the hook builds one request.denied event per refusal —
// method, code, reason, the caller as far as it is known, the request id,
// the service's clock — and hands the recorder what the request named,
// never a token.
func TestOnDenied(t *testing.T) {
	bob := &auth.Principal{Kind: auth.KindUser, Name: "users/bob", ID: "bob"}
	incoming := func(pairs ...string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs(append([]string{"x-request-id", "req-1"}, pairs...)...))
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const getTeam = "/oz.scope.v1.DirectoryService/GetTeam"
	tests := []struct {
		name      string
		ctx       context.Context
		method    string
		req       any
		err       error
		recorded  bool
		kind      auditv1.ActorKind
		actor     string
		client    string
		peer      string
		resource  string
		runID     string
		wantCode  string
		wantInMsg string
	}{
		{"PermissionDenied", auth.WithClient(auth.WithPrincipal(incoming(), bob), "cli"), getTeam,
			&scopev1.GetTeamRequest{Name: "teams/acme"}, status.Error(codes.PermissionDenied, "only members of acme"), true,
			auditv1.ActorKind_ACTOR_KIND_USER, "users/bob", "cli", "", "teams/acme", "", "PERMISSION_DENIED", "only members"},
		{"UnauthenticatedRelayed", auth.WithService(incoming(), "gateway"), getTeam,
			&scopev1.GetTeamRequest{Name: "teams/acme"}, status.Error(codes.Unauthenticated, "invalid token"), true,
			auditv1.ActorKind_ACTOR_KIND_UNSPECIFIED, "", "grpc", "gateway", "teams/acme", "", "UNAUTHENTICATED", "invalid"},
		{"ServiceRefused", auth.WithService(incoming(), "intruder"), internalapiv1.AuthService_Authenticate_FullMethodName,
			&internalapiv1.AuthenticateRequest{BearerToken: tokenCanary}, status.Error(codes.PermissionDenied, "not for you"), true,
			auditv1.ActorKind_ACTOR_KIND_SERVICE, "intruder", "grpc", "", "", "", "PERMISSION_DENIED", "not for you"},
		{"AuthenticateAnswer", auth.WithService(incoming(), "gateway"), internalapiv1.AuthService_Authenticate_FullMethodName,
			&internalapiv1.AuthenticateRequest{BearerToken: tokenCanary}, status.Error(codes.Unauthenticated, "invalid token"), false,
			0, "", "", "", "", "", "", ""},
		{"RunID", auth.WithPrincipal(incoming(), bob), "/oz.scope.v1.RunService/ResolveRun",
			&scopev1.ResolveRunRequest{Parent: "teams/acme", RunId: "run-1"}, status.Error(codes.PermissionDenied, "no"), true,
			auditv1.ActorKind_ACTOR_KIND_USER, "users/bob", "grpc", "", "teams/acme", "run-1", "PERMISSION_DENIED", "no"},
		{"TokenPastedIntoName", auth.WithPrincipal(incoming(), bob), "/oz.secrets.v1.SecretService/GetSecret",
			&secretsv1.GetSecretRequest{Name: "teams/acme/secrets/" + tokenCanary}, status.Error(codes.PermissionDenied, "no"), true,
			auditv1.ActorKind_ACTOR_KIND_USER, "users/bob", "grpc", "", "", "", "PERMISSION_DENIED", "no"},
		{"TokenPastedIntoRunID", auth.WithPrincipal(incoming(), bob), "/oz.scope.v1.RunService/ResolveRun",
			&scopev1.ResolveRunRequest{Parent: "teams/acme", RunId: tokenCanary}, status.Error(codes.PermissionDenied, "no"), true,
			auditv1.ActorKind_ACTOR_KIND_USER, "users/bob", "grpc", "", "teams/acme", "", "PERMISSION_DENIED", "no"},
		{"Stream", auth.WithPrincipal(incoming(), bob), "/oz.x.v1.S/Watch", nil, status.Error(codes.PermissionDenied, "no"), true,
			auditv1.ActorKind_ACTOR_KIND_USER, "users/bob", "grpc", "", "", "", "PERMISSION_DENIED", "no"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{now: at}
			auditevent.OnDenied(rec, nil)(tt.ctx, tt.method, tt.req, tt.err)
			if !tt.recorded {
				if len(rec.events) != 0 {
					t.Fatalf("recorded %d events, want none", len(rec.events))
				}
				return
			}
			if len(rec.events) != 1 {
				t.Fatalf("recorded %d events, want 1", len(rec.events))
			}
			ev, d := rec.events[0], rec.events[0].GetDetails()
			if ev.GetAction() != audit.ActionRequestDenied || ev.GetOutcome() != auditv1.Outcome_OUTCOME_DENIED ||
				!ev.GetTime().AsTime().Equal(at) || ev.GetRequestId() != "req-1" {
				t.Errorf("got %v, want request.denied DENIED at the recorder's time with request id req-1", ev)
			}
			if d[audit.DetailMethod] != tt.method || d[audit.DetailCode] != tt.wantCode || !strings.Contains(d[audit.DetailReason], tt.wantInMsg) ||
				d[auditevent.DetailPeerService] != tt.peer {
				t.Errorf("details: got %v, want method %s code %s, a reason with %q, peer_service %q", d, tt.method, tt.wantCode, tt.wantInMsg, tt.peer)
			}
			if a := ev.GetActor(); a.GetKind() != tt.kind || a.GetName() != tt.actor || a.GetClient() != tt.client {
				t.Errorf("actor: got %v, want %v %q via %q", a, tt.kind, tt.actor, tt.client)
			}
			if rec.resource[0] != tt.resource || rec.runID[0] != tt.runID {
				t.Errorf("named: got %q, run %q; want %q, run %q", rec.resource[0], rec.runID[0], tt.resource, tt.runID)
			}
			if ev.GetResource() != "" || ev.GetTeam() != "" || ev.GetRunId() != "" || ev.GetId() != "" {
				t.Errorf("got %v: the resource, team, run id and id are the recorder's to set", ev)
			}
			ev.Id = "resolver-x"
			if err := audit.ValidateEvent("event", ev); err != nil {
				t.Errorf("the audit service would refuse it: %v", err)
			}
			secret := tokenCanary[strings.LastIndexByte(tokenCanary, '_')+1:]
			if s := ev.String() + rec.resource[0] + rec.runID[0]; strings.Contains(s, secret) {
				t.Errorf("the token reached the event or the recorder: %s", s)
			}
		})
	}

	t.Run("RecorderFails", func(t *testing.T) {
		rec := &recorder{now: at, fail: errors.New("outbox full")}
		auditevent.OnDenied(rec, nil)(incoming(), getTeam, nil, status.Error(codes.PermissionDenied, "no"))
		if len(rec.events) != 1 {
			t.Errorf("recorded %d events, want 1 (attempted)", len(rec.events))
		}
	})
}

// TestDeniedCleans: what a client sent is cleaned so that the audit
// service accepts the event; an invalid request id is not kept at all
// (the server gives such a request a new one).
func TestDeniedCleans(t *testing.T) {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-request-id", "r\x00"+strings.Repeat("x", 500)))
	ctx = auth.WithClient(ctx, "c\x7fli")
	ev := auditevent.Denied(ctx, time.Unix(1, 0), "/a.B/C", status.New(codes.PermissionDenied, strings.Repeat("é", 2000)))
	ev.Id = "secretstore-x"
	if err := audit.ValidateEvent("event", ev); err != nil {
		t.Fatal(err)
	}
	if ev.GetActor().GetClient() != "cli" || ev.GetRequestId() != "" || len(ev.GetDetails()[audit.DetailReason]) > auditevent.MaxReasonLength {
		t.Errorf("got %v", ev)
	}
}

func TestRequestResource(t *testing.T) {
	for _, tc := range []struct {
		name     string
		req      any
		resource string
		runID    string
	}{
		{"Name", &scopev1.GetTeamRequest{Name: "teams/acme"}, "teams/acme", ""},
		{"ParentAndSecretID", &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "API_KEY", Value: []byte("v")}, "teams/acme/secrets/API_KEY", ""},
		{"Parent", &secretsv1.ListSecretsRequest{Parent: "users/me"}, "users/me", ""},
		{"ParentAndRunID", &scopev1.ResolveRunRequest{Parent: "teams/acme", RunId: "run-1"}, "teams/acme", "run-1"},
		{"Principal", &scopev1.CreateTokenRequest{Principal: "users/alice"}, "users/alice", ""},
		{"TeamID", &scopev1.CreateTeamRequest{TeamId: "green"}, "teams/green", ""},
		{"UserID", &scopev1.CreateUserRequest{UserId: "dave"}, "users/dave", ""},
		{"RunnerID", &scopev1.CreateRunnerRequest{RunnerId: "r9"}, "runners/r9", ""},
		{"NothingNamed", &scopev1.ListTeamsRequest{}, "", ""},
		{"Nil", nil, "", ""},
		{"NotAMessage", "teams/acme", "", ""},
		{"NilMessage", (*scopev1.GetTeamRequest)(nil), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := auditevent.RequestResource(tc.req)
			if want := (server.DeniedResource{Resource: tc.resource, RunID: tc.runID}); got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}
