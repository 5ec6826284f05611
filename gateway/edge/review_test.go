package edge_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"google.golang.org/grpc"

	"github.com/ozsecrets/oz/gateway/edge"
	"github.com/ozsecrets/oz/gateway/edge/edgetest"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// reviewService is auditService answering ReviewSecrets with one row named
// after the request.
type reviewService struct{ auditService }

func (reviewService) ReviewSecrets(_ context.Context, req *auditv1.ReviewSecretsRequest) (*auditv1.ReviewSecretsResponse, error) {
	return &auditv1.ReviewSecretsResponse{
		Secrets:    []*auditv1.SecretReview{{Name: req.GetParent() + "/secrets/A", SecretId: "A", Scope: secretsv1.Scope_SCOPE_TEAM}},
		StaleDays:  req.GetStaleDays(),
		UnusedDays: req.GetUnusedDays(),
	}, nil
}

// TestReviewRoute: the review is a custom verb on the team's secrets
// collection, served by the audit service, and it takes nothing from the
// secretstore's routes of the same collection (nor they from it).
func TestReviewRoute(t *testing.T) {
	e := newEnv(t)
	audit := &backend{}
	addr := edgetest.StartBackend(t, e.pki, func(s *grpc.Server) {
		auditv1.RegisterAuditServiceServer(s, reviewService{})
	}, grpc.UnaryInterceptor(audit.intercept))
	gw := edgetest.StartGateway(t, e.pki, edge.Config{Backends: map[string]string{
		edge.SecretStore: e.storeAddr, edge.Resolver: e.resolverAddr, edge.Audit: addr,
	}})
	client := gw.HTTPClient(t)
	auth := http.Header{"Authorization": {bearer}}
	tests := []struct {
		name, path string
		want       string // the backend method
		wantOn     *backend
		check      func(t *testing.T, req any)
	}{
		{"Review", "/v1/teams/acme/secrets:review?stale_days=7&unused_days=3", "/oz.audit.v1.AuditService/ReviewSecrets", audit, func(t *testing.T, req any) {
			r := req.(*auditv1.ReviewSecretsRequest)
			if r.GetParent() != "teams/acme" || r.GetStaleDays() != 7 || r.GetUnusedDays() != 3 {
				t.Errorf("got %v", r)
			}
		}},
		{"ReviewCamelCase", "/v1/teams/acme/secrets:review?staleDays=9", "/oz.audit.v1.AuditService/ReviewSecrets", audit, func(t *testing.T, req any) {
			if r := req.(*auditv1.ReviewSecretsRequest); r.GetStaleDays() != 9 {
				t.Errorf("got %v", r)
			}
		}},
		{"ListSecrets", "/v1/teams/acme/secrets", "/oz.secrets.v1.SecretService/ListSecrets", e.store, func(t *testing.T, req any) {
			if r := req.(*secretsv1.ListSecretsRequest); r.GetParent() != "teams/acme" {
				t.Errorf("got %v", r)
			}
		}},
		// A secret named review is a secret, not the review.
		{"SecretNamedReview", "/v1/teams/acme/secrets/review", "/oz.secrets.v1.SecretService/GetSecret", e.store, func(t *testing.T, req any) {
			if r := req.(*secretsv1.GetSecretRequest); r.GetName() != "teams/acme/secrets/review" {
				t.Errorf("got %v", r)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			audit.reset()
			e.store.reset()
			resp, body := do(t, client, http.MethodGet, gw.URL+tt.path, "", auth)
			if resp.StatusCode != http.StatusOK || !json.Valid(body) {
				t.Fatalf("got %d %s, want 200 with JSON", resp.StatusCode, body)
			}
			for _, b := range []*backend{audit, e.store} {
				calls := b.recorded()
				if b != tt.wantOn {
					if len(calls) != 0 {
						t.Errorf("the other backend got %d calls (%s)", len(calls), calls[0].method)
					}
					continue
				}
				if len(calls) != 1 || calls[0].method != tt.want {
					t.Fatalf("backend calls: got %v, want one %s", calls, tt.want)
				}
				if got := calls[0].md.Get("authorization"); len(got) != 1 || got[0] != bearer {
					t.Errorf("authorization: got %v, want the caller's bearer token", got)
				}
				tt.check(t, calls[0].req)
			}
		})
	}

	// The response is the review, in the REST JSON mapping.
	_, body := do(t, client, http.MethodGet, gw.URL+"/v1/teams/acme/secrets:review", "", auth)
	var got struct {
		Secrets []struct{ Name, SecretId, Scope string }
	}
	if err := json.Unmarshal(body, &got); err != nil || len(got.Secrets) != 1 || got.Secrets[0].Name != "teams/acme/secrets/A" || got.Secrets[0].Scope != "SCOPE_TEAM" {
		t.Errorf("body: got %s (%v)", body, err)
	}

	// Native gRPC reaches the same backend.
	audit.reset()
	r, err := auditv1.NewAuditServiceClient(gw.Dial(t)).ReviewSecrets(outgoing(t.Context()), &auditv1.ReviewSecretsRequest{Parent: "teams/acme"})
	if err != nil || len(r.GetSecrets()) != 1 || len(audit.recorded()) != 1 {
		t.Errorf("gRPC ReviewSecrets: got %v, %v", r, err)
	}
}
