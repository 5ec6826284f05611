package grpcapi_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/audit/audittest"
	"github.com/ozsecrets/oz/services/internal/auditevent"
)

// deniedCanary is a bearer token nobody holds; it must never appear in an
// event.
const deniedCanary = "oz_0123456789abcdef_DENIEDCANARYa7d1e0xxxxxxxxxxxxxxxxxxxxxxxxxx"

// chainEvents returns every event of chain ("system" or "teams/{team}"),
// read by the system admin.
func chainEvents(t *testing.T, c auditv1.AuditServiceClient, chain string) []*auditv1.Event {
	t.Helper()
	var all []*auditv1.Event
	for tok := ""; ; {
		resp, err := c.ExportEvents(audittest.As(context.Background(), "sysadmin"), &auditv1.ExportEventsRequest{Parent: chain, PageToken: tok})
		if err != nil {
			t.Fatalf("export %s: %v", chain, err)
		}
		all = append(all, resp.GetEvents()...)
		if tok = resp.GetNextPageToken(); tok == "" {
			return all
		}
	}
}

// TestDeniedRequestsAreAudited: every request the audit service refuses
// with PermissionDenied or Unauthenticated, by the access rules or by the
// Service, is one request.denied event of its own log, through the one
// hook of every service (OnDenied): naming the method, the code, the
// caller as far as it is known, and the chain or usage the request named,
// on that team's chain when the team is known (the caller's, or a chain
// with events), else on the system chain. No token is ever recorded.
func TestDeniedRequestsAreAudited(t *testing.T) {
	srv := audittest.Start(t, audittest.Options{})
	appendAs(t, srv, "secretstore", ev("acme", 1, audit.ActionSecretCreate, "teams/acme/secrets/A", nil))
	gw := srv.Dial(t, "gateway")
	c := auditv1.NewAuditServiceClient(gw)
	as := func(token string) context.Context {
		return metadata.AppendToOutgoingContext(audittest.As(context.Background(), token), "x-oz-client", "cli", "x-request-id", "req-"+token[:min(len(token), 8)])
	}
	const (
		pd    = "PERMISSION_DENIED"
		unauc = "UNAUTHENTICATED"
		user  = auditv1.ActorKind_ACTOR_KIND_USER
		none  = auditv1.ActorKind_ACTOR_KIND_UNSPECIFIED
	)
	tests := []struct {
		name     string
		call     func() error
		code     codes.Code
		method   string
		kind     auditv1.ActorKind
		actor    string
		resource string
		chain    string // the team, "" for the system chain
	}{
		{"MemberListsTeam", func() error {
			_, err := c.ListEvents(as("member"), &auditv1.ListEventsRequest{Parent: "teams/acme", RunId: "run-1"})
			return err
		}, codes.PermissionDenied, auditv1.AuditService_ListEvents_FullMethodName, user, "users/bob", "teams/acme", "acme"},
		{"MemberReadsUsage", func() error {
			_, err := c.GetSecretUsage(as("member"), &auditv1.GetSecretUsageRequest{Name: "teams/acme/secrets/A/usage"})
			return err
		}, codes.PermissionDenied, auditv1.AuditService_GetSecretUsage_FullMethodName, user, "users/bob", "teams/acme/secrets/A/usage", "acme"},
		{"OtherTeamsAdminVerifies", func() error {
			_, err := c.VerifyChain(as("outsider"), &auditv1.VerifyChainRequest{Parent: "teams/acme"})
			return err
		}, codes.PermissionDenied, auditv1.AuditService_VerifyChain_FullMethodName, user, "users/carol", "teams/acme", "acme"},
		{"MadeUpTeam", func() error {
			_, err := c.ExportEvents(as("outsider"), &auditv1.ExportEventsRequest{Parent: "teams/made-up"})
			return err
		}, codes.PermissionDenied, auditv1.AuditService_ExportEvents_FullMethodName, user, "users/carol", "teams/made-up", ""},
		{"TeamAdminReadsSystem", func() error {
			_, err := c.ListEvents(as("admin"), &auditv1.ListEventsRequest{Parent: "system"})
			return err
		}, codes.PermissionDenied, auditv1.AuditService_ListEvents_FullMethodName, user, "users/alice", "system", ""},
		{"RunnerReviews", func() error {
			_, err := c.ReviewSecrets(as("runner"), &auditv1.ReviewSecretsRequest{Parent: "teams/acme"})
			return err
		}, codes.PermissionDenied, auditv1.AuditService_ReviewSecrets_FullMethodName, auditv1.ActorKind_ACTOR_KIND_RUNNER, "runners/r1", "teams/acme", "acme"},
		{"UnknownToken", func() error {
			_, err := c.ListEvents(as(deniedCanary), &auditv1.ListEventsRequest{Parent: "teams/acme"})
			return err
		}, codes.Unauthenticated, auditv1.AuditService_ListEvents_FullMethodName, none, "", "teams/acme", "acme"},
		{"TokenPastedIntoParent", func() error {
			_, err := c.ListEvents(as(deniedCanary), &auditv1.ListEventsRequest{Parent: "teams/" + deniedCanary})
			return err
		}, codes.Unauthenticated, auditv1.AuditService_ListEvents_FullMethodName, none, "", "", ""},
		{"TokenPastedIntoUsage", func() error {
			_, err := c.GetSecretUsage(as("member"), &auditv1.GetSecretUsageRequest{Name: "teams/acme/secrets/" + deniedCanary + "/usage"})
			return err
		}, codes.PermissionDenied, auditv1.AuditService_GetSecretUsage_FullMethodName, user, "users/bob", "", ""},
		{"AppendWithBearerToken", func() error {
			_, err := internalapiv1.NewAuditIngestServiceClient(gw).AppendEvents(as("sysadmin"), &internalapiv1.AppendEventsRequest{})
			return err
		}, codes.PermissionDenied, internalapiv1.AuditIngestService_AppendEvents_FullMethodName, auditv1.ActorKind_ACTOR_KIND_SERVICE, "gateway", "", ""},
		// The gateway emits no events (DESIGN §6): its certificate may not
		// append, and trying is on the record, as the gateway's.
		{"GatewayAppends", func() error {
			_, err := internalapiv1.NewAuditIngestServiceClient(gw).AppendEvents(context.Background(), &internalapiv1.AppendEventsRequest{})
			return err
		}, codes.PermissionDenied, internalapiv1.AuditIngestService_AppendEvents_FullMethodName, auditv1.ActorKind_ACTOR_KIND_SERVICE, "gateway", "", ""},
	}
	seen := map[string]bool{}
	var all []*auditv1.Event
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := map[string]int{"": len(chainEvents(t, c, "system")), "acme": len(chainEvents(t, c, "teams/acme"))}
			wantCode(t, tt.call(), tt.code)
			var got []*auditv1.Event
			for team, n := range before {
				parent := "system"
				if team != "" {
					parent = "teams/" + team
				}
				evs := chainEvents(t, c, parent)
				for _, e := range evs[n:] {
					all = append(all, e)
					if e.GetTeam() != team {
						t.Errorf("event %s of chain %q says team %q", e.GetId(), parent, e.GetTeam())
					}
					got = append(got, e)
				}
			}
			if tt.method == "" {
				if len(got) != 0 {
					t.Fatalf("got %d events, want none (not a refusal)", len(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d events, want 1", len(got))
			}
			e := got[0]
			d := e.GetDetails()
			code := map[codes.Code]string{codes.PermissionDenied: pd, codes.Unauthenticated: unauc}[tt.code]
			if e.GetAction() != audit.ActionRequestDenied || e.GetOutcome() != auditv1.Outcome_OUTCOME_DENIED ||
				d[audit.DetailMethod] != tt.method || d[audit.DetailCode] != code || d[audit.DetailReason] == "" {
				t.Errorf("got %s %v details %v, want request.denied DENIED method %s code %s and a reason", e.GetAction(), e.GetOutcome(), d, tt.method, code)
			}
			if e.GetActor().GetKind() != tt.kind || e.GetActor().GetName() != tt.actor {
				t.Errorf("got actor %v %q, want %v %q", e.GetActor().GetKind(), e.GetActor().GetName(), tt.kind, tt.actor)
			}
			if tt.code == codes.Unauthenticated && d[auditevent.DetailPeerService] != "gateway" {
				t.Errorf("peer_service: got %q, want gateway (it relayed the request)", d[auditevent.DetailPeerService])
			}
			if e.GetResource() != tt.resource || e.GetTeam() != tt.chain {
				t.Errorf("got resource %q in chain %q, want %q in %q", e.GetResource(), e.GetTeam(), tt.resource, tt.chain)
			}
			// The client is the credential's where it says (a runner's
			// token is the runner's, whatever it claims), else the claim.
			wantClient := "cli"
			if tt.kind == auditv1.ActorKind_ACTOR_KIND_RUNNER {
				wantClient = "runner"
			}
			if tt.kind != auditv1.ActorKind_ACTOR_KIND_SERVICE && (e.GetActor().GetClient() != wantClient || !strings.HasPrefix(e.GetRequestId(), "req-")) {
				t.Errorf("got client %q request id %q, want %s and the request's id", e.GetActor().GetClient(), e.GetRequestId(), wantClient)
			}
			if d[auditevent.DetailSource] != "127.0.0.1" {
				t.Errorf("source: got %q, want 127.0.0.1 (the caller's address)", d[auditevent.DetailSource])
			}
			if e.GetRunId() != "" {
				t.Errorf("run id %q: a filter of ListEvents is not the run a refusal is about", e.GetRunId())
			}
			if !strings.HasPrefix(e.GetId(), "audit-") || seen[e.GetId()] {
				t.Errorf("id %q: want a new audit-… id", e.GetId())
			}
			seen[e.GetId()] = true
		})
	}

	// The chain "made-up" was not started by the refusal.
	if evs := chainEvents(t, c, "teams/made-up"); len(evs) != 0 {
		t.Errorf("teams/made-up has %d events, want none", len(evs))
	}
	// The canary: no token, nor its secret part, in any event recorded.
	secret := deniedCanary[strings.LastIndexByte(deniedCanary, '_')+1:]
	for _, e := range all {
		if text := e.String(); strings.Contains(text, deniedCanary) || strings.Contains(text, secret) {
			t.Errorf("event %s holds the token: %s", e.GetId(), text)
		}
	}
}
