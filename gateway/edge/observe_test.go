package edge_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/gateway/edge"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// TestObserveREST checks the tests-only observer: it sees each REST request
// with its body, and the backend still receives the request unchanged.
func TestObserveREST(t *testing.T) {
	type seen struct{ method, path, body string }
	var (
		mu  sync.Mutex
		got []seen
	)
	e := newEnv(t, func(c *edge.Config) {
		c.MaxRequestBytes = 1 << 10
		c.ObserveREST = func(r *http.Request, body []byte) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, seen{r.Method, r.URL.Path, string(body)})
		}
	})
	body := `{"secretId":"API_KEY","description":"observed"}`
	resp, _ := e.do(t, "POST", "/v1/teams/acme/secrets", body, authHeader())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST: got %d, want 200", resp.StatusCode)
	}
	want := &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "API_KEY", Description: "observed"}
	if c := e.store.only(t); !proto.Equal(c.req, want) {
		t.Errorf("backend got %v, want %v", c.req, want)
	}
	e.do(t, "GET", "/healthz", "", nil) // not REST: not observed

	// Over the limit: still refused, observed as far as was read.
	resp, _ = e.do(t, "POST", "/v1/teams/acme/secrets", `{"description":"`+strings.Repeat("x", 2<<10)+`"}`, authHeader())
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized POST: got %d, want 413", resp.StatusCode)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("observed %d requests, want 2: %v", len(got), got)
	}
	if got[0] != (seen{"POST", "/v1/teams/acme/secrets", body}) {
		t.Errorf("observed %+v, want the POST with its body", got[0])
	}
	if n := len(got[1].body); n != 1<<10+1 {
		t.Errorf("oversized body: observed %d bytes, want %d (limit+1)", n, 1<<10+1)
	}
}
