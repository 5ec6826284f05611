package edge_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// TestLogsNeverHoldValuesOrTokens sends a canary value and a canary token
// through every path, successful or not, then searches the gateway's whole
// log output for them.
func TestLogsNeverHoldValuesOrTokens(t *testing.T) {
	e := newEnv(t)
	canary := "CANARY" + rand.Text()
	token := "Bearer oz_CANARYTOKEN" + rand.Text()
	b64 := base64.StdEncoding.EncodeToString([]byte(canary))
	h := http.Header{"Authorization": {token}}

	// REST: the value (base64 in JSON) and a description, accepted...
	e.do(t, "POST", "/v1/teams/acme/secrets", `{"secretId":"K","value":"`+b64+`","description":"`+canary+`"}`, h)
	// ...refused by the backend...
	e.store.failWith("/oz.secrets.v1.SecretService/UpdateSecret", status.Error(codes.InvalidArgument, "value: too long"))
	e.do(t, "PATCH", "/v1/teams/acme/secrets/K", `{"value":"`+b64+`"}`, h)
	// ...and refused by the gateway (unknown field, malformed JSON).
	e.do(t, "POST", "/v1/teams/acme/secrets", `{"secretId":"K","`+canary+`":"x"}`, h)
	e.do(t, "POST", "/v1/teams/acme/secrets", `{"value":"`+canary, h)
	// Native gRPC, accepted and refused.
	client := secretsv1.NewSecretServiceClient(e.gw.Dial(t))
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", token)
	if _, err := client.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "K", Value: []byte(canary)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: "teams/acme/secrets/K", Value: []byte(canary)}); err == nil {
		t.Fatal("UpdateSecret: got nil error, want InvalidArgument")
	}

	logs := e.logs.String()
	for _, secret := range []string{canary, b64, strings.TrimPrefix(token, "Bearer ")} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}

	// And the logs are there: one JSON line per request, with its id.
	var httpLines, grpcLines int
	for line := range strings.Lines(logs) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		switch rec["msg"] {
		case "http request":
			httpLines++
			if rec["request_id"] == "" || rec["status"] == nil || rec["path"] == nil {
				t.Errorf("http log line: got %v, want request_id, status and path", rec)
			}
		case "grpc request":
			grpcLines++
			if rec["request_id"] == "" || rec["code"] == nil || rec["method"] == nil {
				t.Errorf("grpc log line: got %v, want request_id, code and method", rec)
			}
		}
	}
	if httpLines != 4 || grpcLines != 2 {
		t.Errorf("request log lines: got %d http and %d grpc, want 4 and 2", httpLines, grpcLines)
	}
}
