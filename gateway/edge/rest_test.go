package edge_test

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/ozsecrets/oz/gateway/edge"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

func TestRESTReachesOwningBackend(t *testing.T) {
	e := newEnv(t)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		toStore    bool // secretstore, else resolver
		wantMethod string
		wantReq    proto.Message
		wantInBody string
		wantHTTP   int // 0 means 200
	}{
		{
			name: "CreateTeamSecret", method: "POST", path: "/v1/teams/acme/secrets",
			body:    `{"secretId":"API_KEY","value":"` + b64("s3cr3t\nline2") + `","description":"the key"}`,
			toStore: true, wantMethod: "/oz.secrets.v1.SecretService/CreateSecret",
			wantReq:    &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "API_KEY", Value: []byte("s3cr3t\nline2"), Description: "the key"},
			wantInBody: `"name":"teams/acme/secrets/API_KEY"`,
		},
		{
			name: "CreatePersonalSecret", method: "POST", path: "/v1/users/me/secrets",
			body:    `{"secretId":"MINE","value":"` + b64("v") + `"}`,
			toStore: true, wantMethod: "/oz.secrets.v1.SecretService/CreateSecret",
			wantReq:    &secretsv1.CreateSecretRequest{Parent: "users/me", SecretId: "MINE", Value: []byte("v")},
			wantInBody: `"name":"users/me/secrets/MINE"`,
		},
		{
			name: "GetSecret", method: "GET", path: "/v1/teams/acme/secrets/API_KEY",
			toStore: true, wantMethod: "/oz.secrets.v1.SecretService/GetSecret",
			wantReq:    &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/API_KEY"},
			wantInBody: `"createTime":"2026-01-02T03:04:05Z"`,
		},
		{
			name: "ListSecrets", method: "GET", path: "/v1/users/me/secrets?pageSize=10&pageToken=p1",
			toStore: true, wantMethod: "/oz.secrets.v1.SecretService/ListSecrets",
			wantReq:    &secretsv1.ListSecretsRequest{Parent: "users/me", PageSize: 10, PageToken: "p1"},
			wantInBody: `"nextPageToken":"next"`,
		},
		{
			name: "UpdateSecret", method: "PATCH", path: "/v1/teams/acme/secrets/API_KEY",
			body:    `{"description":"new","updateMask":"description","etag":"etag-1"}`,
			toStore: true, wantMethod: "/oz.secrets.v1.SecretService/UpdateSecret",
			wantReq: &secretsv1.UpdateSecretRequest{
				Name: "teams/acme/secrets/API_KEY", Description: "new",
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}}, Etag: "etag-1",
			},
			wantInBody: `"valueVersion":"2"`,
		},
		{
			name: "DeleteSecret", method: "DELETE", path: "/v1/teams/acme/secrets/API_KEY?etag=etag-1",
			toStore: true, wantMethod: "/oz.secrets.v1.SecretService/DeleteSecret",
			wantReq:    &secretsv1.DeleteSecretRequest{Name: "teams/acme/secrets/API_KEY", Etag: "etag-1"},
			wantInBody: `{}`,
		},
		{
			name: "ListAvailableSecrets", method: "GET", path: "/v1/secrets?pageSize=5",
			toStore: true, wantMethod: "/oz.secrets.v1.SecretService/ListAvailableSecrets",
			wantReq:    &secretsv1.ListAvailableSecretsRequest{PageSize: 5},
			wantInBody: `"users/alice/secrets/MINE"`,
		},
		{
			name: "GetCaller", method: "GET", path: "/v1/caller",
			wantMethod: "/oz.scope.v1.DirectoryService/GetCaller",
			wantReq:    &scopev1.GetCallerRequest{},
			wantInBody: `"kind":"PRINCIPAL_KIND_USER"`,
		},
		{
			name: "GetTeam", method: "GET", path: "/v1/teams/acme",
			wantMethod: "/oz.scope.v1.DirectoryService/GetTeam",
			wantReq:    &scopev1.GetTeamRequest{Name: "teams/acme"},
			wantInBody: `"teamId":"acme"`,
		},
		{
			name: "DeleteMembership", method: "DELETE", path: "/v1/teams/acme/members/bob",
			wantMethod: "/oz.scope.v1.DirectoryService/DeleteMembership",
			wantReq:    &scopev1.DeleteMembershipRequest{Name: "teams/acme/members/bob"},
		},
		{
			name: "CreateToken", method: "POST", path: "/v1/tokens",
			body:       `{"principal":"users/me","ttl":"3600s","description":"ci"}`,
			wantMethod: "/oz.scope.v1.TokenService/CreateToken",
			wantReq:    &scopev1.CreateTokenRequest{Principal: "users/me", Ttl: durationpb.New(3600e9), Description: "ci"},
			wantInBody: `"bearerToken":"oz_new"`,
		},
		{
			name: "RevokeToken", method: "POST", path: "/v1/tokens/t1:revoke", body: `{}`,
			wantMethod: "/oz.scope.v1.TokenService/RevokeToken",
			wantReq:    &scopev1.RevokeTokenRequest{Name: "tokens/t1"},
			wantInBody: `"name":"tokens/t1"`,
		},
		// The run-resolution services: the fake resolver leaves them
		// unimplemented (501), but the request must reach it intact.
		{
			name: "ListAgents", method: "GET", path: "/v1/teams/acme/agents?pageSize=3",
			wantMethod: "/oz.scope.v1.AgentService/ListAgents",
			wantReq:    &scopev1.ListAgentsRequest{Parent: "teams/acme", PageSize: 3},
			wantHTTP:   http.StatusNotImplemented,
		},
		{
			name: "GetEnvironment", method: "GET", path: "/v1/teams/acme/environments/prod",
			wantMethod: "/oz.scope.v1.EnvironmentService/GetEnvironment",
			wantReq:    &scopev1.GetEnvironmentRequest{Name: "teams/acme/environments/prod"},
			wantHTTP:   http.StatusNotImplemented,
		},
		{
			name: "GetRunner", method: "GET", path: "/v1/runners/r1",
			wantMethod: "/oz.scope.v1.RunnerService/GetRunner",
			wantReq:    &scopev1.GetRunnerRequest{Name: "runners/r1"},
			wantHTTP:   http.StatusNotImplemented,
		},
		{
			name: "ExplainRun", method: "POST", path: "/v1/teams/acme/runs:explain", body: `{}`,
			wantMethod: "/oz.scope.v1.RunService/ExplainRun",
			wantReq:    &scopev1.ExplainRunRequest{Parent: "teams/acme"},
			wantHTTP:   http.StatusNotImplemented,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.store.reset()
			e.resolver.reset()
			resp, body := e.do(t, tt.method, tt.path, tt.body, authHeader())
			wantHTTP := cmp.Or(tt.wantHTTP, http.StatusOK)
			if resp.StatusCode != wantHTTP {
				t.Fatalf("status: got %d, want %d (body %s)", resp.StatusCode, wantHTTP, body)
			}
			if !strings.Contains(string(body), tt.wantInBody) {
				t.Errorf("body: got %s, want it to contain %s", body, tt.wantInBody)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control: got %q, want no-store", got)
			}

			owner, other := e.resolver, e.store
			if tt.toStore {
				owner, other = e.store, e.resolver
			}
			if n := len(other.recorded()); n != 0 {
				t.Errorf("calls on the other backend: got %d, want 0", n)
			}
			c := owner.only(t)
			if c.method != tt.wantMethod {
				t.Errorf("method: got %s, want %s", c.method, tt.wantMethod)
			}
			if !proto.Equal(c.req, tt.wantReq) {
				t.Errorf("request: got %v, want %v", c.req, tt.wantReq)
			}
			checkMD(t, c.md, "authorization", bearer)
			checkMD(t, c.md, "x-oz-client", "rest")
			checkMD(t, c.md, "x-request-id", resp.Header.Get("X-Request-Id"))
			// The token is forwarded once, under the key backends read.
			if got := c.md.Get("grpcgateway-authorization"); len(got) != 0 {
				t.Errorf("grpcgateway-authorization: got %d values, want none", len(got))
			}
		})
	}
}

// checkMD fails unless md holds exactly one value for key, equal to want.
func checkMD(t *testing.T, md map[string][]string, key, want string) {
	t.Helper()
	got := md[key]
	if len(got) != 1 || got[0] != want || want == "" {
		t.Errorf("metadata %s: got %q, want [%q]", key, got, want)
	}
}

func TestRESTGatewayOwnedMetadataCannotBeSpoofed(t *testing.T) {
	e := newEnv(t)
	h := authHeader()
	h.Set("Grpc-Metadata-X-Oz-Client", "cli")
	h.Set("Grpc-Metadata-X-Request-Id", "spoofed")
	h.Set("X-Request-Id", "req-42")
	resp, body := e.do(t, "GET", "/v1/caller", "", h)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200 (body %s)", resp.StatusCode, body)
	}
	c := e.resolver.only(t)
	checkMD(t, c.md, "x-oz-client", "rest")
	checkMD(t, c.md, "x-request-id", "req-42")
}

func TestRESTRequestID(t *testing.T) {
	tests := []struct {
		name   string
		sent   string
		wantAs bool // the sent id is kept
	}{
		{name: "Kept", sent: "req-1234:abc", wantAs: true},
		{name: "GeneratedWhenAbsent", sent: ""},
		{name: "ReplacedWhenTooLong", sent: strings.Repeat("a", 129)},
		{name: "ReplacedWhenNotPrintable", sent: "two words"},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.resolver.reset()
			h := authHeader()
			if tt.sent != "" {
				h.Set("X-Request-Id", tt.sent)
			}
			resp, _ := e.do(t, "GET", "/v1/caller", "", h)
			got := resp.Header.Get("X-Request-Id")
			if tt.wantAs && got != tt.sent {
				t.Errorf("X-Request-Id: got %q, want %q", got, tt.sent)
			}
			if !tt.wantAs && (got == "" || got == tt.sent) {
				t.Errorf("X-Request-Id: got %q, want a new id", got)
			}
			checkMD(t, e.resolver.only(t).md, "x-request-id", got)
		})
	}
}

func TestRESTErrorMapping(t *testing.T) {
	badName, err := status.New(codes.InvalidArgument, "secret_id: must match [A-Za-z_][A-Za-z0-9_]*").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "secret_id", Description: "must match [A-Za-z_][A-Za-z0-9_]*"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		st       *status.Status
		wantHTTP int
	}{
		{"NotFound", status.New(codes.NotFound, "secret teams/acme/secrets/X not found"), http.StatusNotFound},
		{"InvalidArgumentWithFieldDetails", badName, http.StatusBadRequest},
		{"PermissionDenied", status.New(codes.PermissionDenied, "not an admin of teams/acme"), http.StatusForbidden},
		{"Unauthenticated", status.New(codes.Unauthenticated, "token expired"), http.StatusUnauthorized},
		{"AlreadyExists", status.New(codes.AlreadyExists, "exists"), http.StatusConflict},
		{"FailedPrecondition", status.New(codes.FailedPrecondition, "etag mismatch"), http.StatusBadRequest},
		{"Unavailable", status.New(codes.Unavailable, "try later"), http.StatusServiceUnavailable},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.store.reset()
			e.store.failWith("/oz.secrets.v1.SecretService/CreateSecret", tt.st.Err())
			resp, body := e.do(t, "POST", "/v1/teams/acme/secrets", `{"secretId":"1BAD","value":"eA=="}`, authHeader())
			if resp.StatusCode != tt.wantHTTP {
				t.Errorf("status: got %d, want %d", resp.StatusCode, tt.wantHTTP)
			}
			// grpc-gateway's default shape: a google.rpc.Status in JSON.
			var got spb.Status
			if err := protojson.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if !proto.Equal(&got, tt.st.Proto()) {
				t.Errorf("body: got %v, want %v", &got, tt.st.Proto())
			}
			var shape map[string]json.RawMessage
			if err := json.Unmarshal(body, &shape); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"code", "message", "details"} {
				if _, ok := shape[k]; !ok {
					t.Errorf("body %s: no %q", body, k)
				}
			}
			if tt.st.Code() == codes.Unauthenticated {
				want := `Bearer realm="oz", error="invalid_token", error_description="` + tt.st.Message() + `"`
				if got := resp.Header.Get("WWW-Authenticate"); got != want {
					t.Errorf("WWW-Authenticate: got %q, want %q", got, want)
				}
			}
		})
	}
}

func TestRESTRefusesBadInputBeforeBackend(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		wantHTTP                 int
	}{
		{"UnknownField", "POST", "/v1/teams/acme/secrets", `{"secretId":"A","descripton":"typo"}`, http.StatusBadRequest},
		{"BodyTooLarge", "POST", "/v1/teams/acme/secrets", `{"secretId":"A","description":"` + strings.Repeat("x", 2048) + `"}`, http.StatusRequestEntityTooLarge},
		{"MalformedJSON", "POST", "/v1/teams/acme/secrets", `{"secretId":"A`, http.StatusBadRequest},
		{"NoRoute", "GET", "/v1/nothing/here/at/all", "", http.StatusNotFound},
		{"InternalServiceHasNoRoute", "POST", "/v1/authenticate", `{}`, http.StatusNotFound},
	}
	e := newEnv(t, func(c *edge.Config) { c.MaxRequestBytes = 1024 })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.do(t, tt.method, tt.path, tt.body, authHeader())
			if resp.StatusCode != tt.wantHTTP {
				t.Errorf("status: got %d, want %d (body %s)", resp.StatusCode, tt.wantHTTP, body)
			}
			if n := len(e.store.recorded()) + len(e.resolver.recorded()); n != 0 {
				t.Errorf("backend calls: got %d, want 0", n)
			}
		})
	}
}
