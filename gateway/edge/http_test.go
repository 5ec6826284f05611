package edge_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ozsecrets/oz/gateway/edge"
	"github.com/ozsecrets/oz/gateway/openapi"
)

// clients returns an HTTP/2 and an HTTP/1.1 client of the gateway: every
// HTTP route must work with both.
func (e *env) clients(t *testing.T) map[string]*http.Client {
	t.Helper()
	return map[string]*http.Client{"HTTP2": e.http, "HTTP1": e.gw.HTTP1Client(t)}
}

func TestHTTPRoutes(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name        string
		path        string
		wantStatus  int
		wantType    string
		wantContain string
	}{
		{"Healthz", "/healthz", http.StatusOK, "text/plain; charset=utf-8", "ok"},
		{"OpenAPI", "/openapi.json", http.StatusOK, "application/json", `"/v1/teams/{team}/secrets"`},
		{"Root", "/", http.StatusOK, "text/plain; charset=utf-8", "web app is not built yet"},
		{"UnknownPage", "/app/settings", http.StatusNotFound, "text/plain; charset=utf-8", "not found"},
		{"UnknownAPIPath", "/v1/nothing/here/at/all", http.StatusNotFound, "application/json", `"code":5`},
	}
	for cname, c := range e.clients(t) {
		for _, tt := range tests {
			t.Run(cname+"/"+tt.name, func(t *testing.T) {
				resp, body := do(t, c, "GET", e.gw.URL+tt.path, "", nil)
				if resp.StatusCode != tt.wantStatus {
					t.Errorf("status: got %d, want %d", resp.StatusCode, tt.wantStatus)
				}
				if got := resp.Header.Get("Content-Type"); got != tt.wantType {
					t.Errorf("Content-Type: got %q, want %q", got, tt.wantType)
				}
				if !strings.Contains(string(body), tt.wantContain) {
					t.Errorf("body: got %.200s, want it to contain %s", body, tt.wantContain)
				}
				for h, want := range map[string]string{
					"X-Content-Type-Options": "nosniff",
					"Referrer-Policy":        "no-referrer",
				} {
					if got := resp.Header.Get(h); got != want {
						t.Errorf("%s: got %q, want %q", h, got, want)
					}
				}
				if resp.Header.Get("X-Request-Id") == "" {
					t.Errorf("X-Request-Id: got none, want one")
				}
			})
		}
	}
}

// TestOpenAPIDocument: the gateway serves the generated document as it is
// (gateway/openapi's tests validate it and check that it lists every route).
func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t)
	_, body := e.do(t, "GET", "/openapi.json", "", nil)
	if !bytes.Equal(body, openapi.Document) {
		t.Errorf("openapi.json: got %d bytes, want the %d of openapi.Document", len(body), len(openapi.Document))
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi: got %q, want 3.x", doc.OpenAPI)
	}
}

func TestWebAppHook(t *testing.T) {
	app := fstest.MapFS{
		"index.html":    {Data: []byte("<h1>oz</h1>")},
		"assets/app.js": {Data: []byte("console.log(1)")},
	}
	e := newEnv(t, func(c *edge.Config) { c.WebApp = http.FileServerFS(app) })
	tests := []struct {
		path        string
		wantStatus  int
		wantContain string
	}{
		{"/", http.StatusOK, "<h1>oz</h1>"},
		{"/assets/app.js", http.StatusOK, "console.log"},
		{"/healthz", http.StatusOK, "ok"}, // the API's routes win
		{"/openapi.json", http.StatusOK, `"openapi"`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := e.do(t, "GET", tt.path, "", nil)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantContain) {
				t.Errorf("GET %s: got %d %.100q, want %d containing %q", tt.path, resp.StatusCode, body, tt.wantStatus, tt.wantContain)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options: got %q, want nosniff", got)
			}
		})
	}
}
