package edge_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/gateway/edge"
	"github.com/ozsecrets/oz/gateway/edge/edgetest"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
)

// auditService answers ListEvents and GetSecretUsage echoing the request.
type auditService struct {
	auditv1.UnimplementedAuditServiceServer
}

func (auditService) ListEvents(_ context.Context, req *auditv1.ListEventsRequest) (*auditv1.ListEventsResponse, error) {
	return &auditv1.ListEventsResponse{Events: []*auditv1.Event{{Id: "e1", Resource: req.GetParent(), Action: req.GetAction()}}}, nil
}

func (auditService) GetSecretUsage(_ context.Context, req *auditv1.GetSecretUsageRequest) (*auditv1.GetSecretUsageResponse, error) {
	return &auditv1.GetSecretUsageResponse{Usage: &auditv1.SecretUsage{Name: req.GetName()}}, nil
}

func TestAuditRESTWithoutBackend(t *testing.T) {
	e := newEnv(t) // no audit address: the audit backend is optional
	resp, body := e.do(t, http.MethodGet, "/v1/teams/acme/events", "", http.Header{"Authorization": {bearer}})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("got %d %s, want 503", resp.StatusCode, body)
	}
}

func TestAuditREST(t *testing.T) {
	e := newEnv(t)
	audit := &backend{}
	addr := edgetest.StartBackend(t, e.pki, func(s *grpc.Server) {
		auditv1.RegisterAuditServiceServer(s, auditService{})
	}, grpc.UnaryInterceptor(audit.intercept))
	gw := edgetest.StartGateway(t, e.pki, edge.Config{Backends: map[string]string{
		edge.SecretStore: e.storeAddr, edge.Resolver: e.resolverAddr, edge.Audit: addr,
	}})
	client := gw.HTTPClient(t)
	auth := http.Header{"Authorization": {bearer}}
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantMethod               string
		check                    func(t *testing.T, req any)
	}{
		{"ListTeamEvents", http.MethodGet, "/v1/teams/acme/events?action=secret.create&page_size=5", "", http.StatusOK, "ListEvents", func(t *testing.T, req any) {
			r := req.(*auditv1.ListEventsRequest)
			if r.GetParent() != "teams/acme" || r.GetAction() != "secret.create" || r.GetPageSize() != 5 {
				t.Errorf("got %v", r)
			}
		}},
		{"ListSystemEvents", http.MethodGet, "/v1/system/events", "", http.StatusOK, "ListEvents", func(t *testing.T, req any) {
			if r := req.(*auditv1.ListEventsRequest); r.GetParent() != "system" {
				t.Errorf("parent: got %q, want system", r.GetParent())
			}
		}},
		{"Verify", http.MethodPost, "/v1/teams/acme/events:verify", "{}", http.StatusNotImplemented, "VerifyChain", func(t *testing.T, req any) {
			if r := req.(*auditv1.VerifyChainRequest); r.GetParent() != "teams/acme" {
				t.Errorf("parent: got %q", r.GetParent())
			}
		}},
		{"Export", http.MethodGet, "/v1/teams/acme/events:export?page_token=x", "", http.StatusNotImplemented, "ExportEvents", func(t *testing.T, req any) {
			if r := req.(*auditv1.ExportEventsRequest); r.GetParent() != "teams/acme" || r.GetPageToken() != "x" {
				t.Errorf("got %v", r)
			}
		}},
		{"SecretUsage", http.MethodGet, "/v1/teams/acme/secrets/API_KEY/usage?all_versions=true", "", http.StatusOK, "GetSecretUsage", func(t *testing.T, req any) {
			if r := req.(*auditv1.GetSecretUsageRequest); r.GetName() != "teams/acme/secrets/API_KEY/usage" || !r.GetAllVersions() {
				t.Errorf("got %v", r)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			audit.reset()
			resp, body := do(t, client, tt.method, gw.URL+tt.path, tt.body, auth)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, body, tt.wantStatus)
			}
			calls := audit.recorded()
			if len(calls) != 1 || calls[0].method != "/oz.audit.v1.AuditService/"+tt.wantMethod {
				t.Fatalf("audit backend calls: got %v, want one %s", calls, tt.wantMethod)
			}
			if got := calls[0].md.Get("x-oz-client"); len(got) != 1 || got[0] != "rest" {
				t.Errorf("x-oz-client: got %v, want rest", got)
			}
			tt.check(t, calls[0].req)
			if tt.wantStatus == http.StatusOK && !json.Valid(body) {
				t.Errorf("body is not JSON: %s", body)
			}
		})
	}

	// Native gRPC reaches the same backend.
	audit.reset()
	resp, err := auditv1.NewAuditServiceClient(gw.Dial(t)).ListEvents(outgoing(t.Context()), &auditv1.ListEventsRequest{Parent: "teams/acme"})
	if err != nil || resp.GetEvents()[0].GetResource() != "teams/acme" {
		t.Errorf("gRPC ListEvents: got %v, %v", resp, err)
	}
	// The internal ingest service is never routed.
	err = gw.Dial(t).Invoke(outgoing(t.Context()), "/oz.internalapi.v1.AuditIngestService/AppendEvents", &auditv1.ListEventsRequest{}, &auditv1.ListEventsResponse{})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("AppendEvents through the gateway: got %v, want PermissionDenied", err)
	}
}
