package auditevent_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auditevent"
	"github.com/ozsecrets/oz/services/internal/auth"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
	}{
		{"Plain", "cli", 10, "cli"},
		{"ControlCharacters", "a\x00b\nc\x7fd\te", 10, "abcde"},
		{"InvalidUTF8", "a\xffb", 10, "ab"},
		{"TruncatedOnARune", "aé", 2, "a"},
		{"Truncated", "abcdef", 3, "abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := auditevent.Clean(tc.in, tc.max); got != tc.want {
				t.Errorf("Clean(%q, %d): got %q, want %q", tc.in, tc.max, got, tc.want)
			}
		})
	}
}

func TestActor(t *testing.T) {
	alice := &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice"}
	bob := &auth.Principal{Kind: auth.KindUser, Name: "users/bob", ID: "bob"}
	runner := &auth.Principal{Kind: auth.KindRunner, Name: "runners/r1", ID: "r1"}
	incoming := metadata.NewIncomingContext(context.Background(), metadata.MD{})
	for _, tc := range []struct {
		name string
		ctx  context.Context
		p    *auth.Principal
		want *auditv1.Actor
	}{
		{"InProcess", context.Background(), nil, &auditv1.Actor{}},
		{"GivenPrincipal", auth.WithPrincipal(incoming, bob), alice,
			&auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/alice", Client: "grpc"}},
		{"PrincipalOfContext", auth.WithClient(auth.WithPrincipal(incoming, bob), "rest"), nil,
			&auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/bob", Client: "rest"}},
		{"Runner", auth.WithClient(auth.WithPrincipal(incoming, runner), "runner"), nil,
			&auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_RUNNER, Name: "runners/r1", Client: "runner"}},
		{"Service", auth.WithClient(auth.WithService(incoming, "gateway"), "c\nli"), nil,
			&auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_SERVICE, Name: "gateway", Client: "cli"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := auditevent.Actor(tc.ctx, tc.p)
			if got.GetKind() != tc.want.GetKind() || got.GetName() != tc.want.GetName() || got.GetClient() != tc.want.GetClient() {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestNew: a change with no caller is the service's own, and the event
// is one the audit service accepts.
func TestNew(t *testing.T) {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-request-id", "r-1"))
	for _, emitter := range []string{auditevent.Secretstore, auditevent.Resolver} {
		ev := auditevent.New(ctx, emitter, nil, time.Unix(1, 0), "secret.rewrap", "teams/acme/secrets/A", "acme", nil)
		ev.Id = emitter + "-x"
		if err := audit.ValidateEvent("event", ev); err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActor(); a.GetKind() != auditv1.ActorKind_ACTOR_KIND_SERVICE || a.GetName() != emitter || ev.GetRequestId() != "r-1" ||
			ev.GetOutcome() != auditv1.Outcome_OUTCOME_OK || ev.GetTeam() != "acme" || ev.GetTime().AsTime() != time.Unix(1, 0).UTC() {
			t.Errorf("got %v; want the service %s, r-1, OK on acme's chain at 1s", ev, emitter)
		}
	}
}
