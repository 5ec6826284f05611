package edge_test

import (
	"net/http"
	"regexp"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// challenge is an RFC 6750 §3 challenge: Bearer, then auth-params whose
// values are quoted strings of printable ASCII without '"' or '\'.
var challenge = regexp.MustCompile(`^Bearer realm="oz"(, error="invalid_token"(, error_description="[\x20\x21\x23-\x5b\x5d-\x7e]*")?)?$`)

func TestRESTUnauthorizedChallenge(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		msg    string
		want   string
	}{
		{
			// The backends' own message for a request without a token.
			"NoToken", nil, "missing bearer token (authorization: Bearer oz_…)",
			`Bearer realm="oz"`,
		},
		{
			"BadToken", http.Header{"Authorization": {"Bearer oz_not-a-token"}}, `token "oz_x…" refused — revoked\expired`,
			`Bearer realm="oz", error="invalid_token", error_description="token 'oz_x...' refused - revoked/expired"`,
		},
		{
			"NotBearer", http.Header{"Authorization": {"Basic YWxpY2U6cHc="}}, "missing bearer token",
			`Bearer realm="oz"`,
		},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.store.reset()
			e.store.failWith("/oz.secrets.v1.SecretService/GetSecret", status.Error(codes.Unauthenticated, tt.msg))
			resp, _ := e.do(t, "GET", "/v1/teams/acme/secrets/S", "", tt.header)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status: got %d, want 401", resp.StatusCode)
			}
			got := resp.Header.Values("WWW-Authenticate")
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("WWW-Authenticate: got %q, want %q", got, tt.want)
			}
			if len(got) == 1 && !challenge.MatchString(got[0]) {
				t.Errorf("WWW-Authenticate %q: not an ASCII RFC 6750 challenge", got[0])
			}
		})
	}
}
