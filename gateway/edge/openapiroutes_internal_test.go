package edge

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/ozsecrets/oz/gateway/openapi"
)

// TestOpenAPIPathsAreRoutes: a client that fills a path of the document
// (/v1/teams/{team}/secrets/{secret}) reaches a REST route of the gateway
// for that method, and the route reads every value it was given into the
// request's resource name (name=teams/acme/secrets/S1). The handlers are
// replaced by a middleware that notes the match, so no backend is needed.
func TestOpenAPIPathsAreRoutes(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openapi.Document)
	if err != nil {
		t.Fatal(err)
	}
	var matched bool
	var params map[string]string
	mux := runtime.NewServeMux(runtime.WithMiddlewares(func(runtime.HandlerFunc) runtime.HandlerFunc {
		return func(_ http.ResponseWriter, _ *http.Request, p map[string]string) {
			matched, params = true, p
		}
	}))
	if err := registerREST(mux, nil); err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`\{(\w+)\}`)
	operations := 0
	for _, path := range doc.Paths.Keys() {
		// Each parameter gets a value of its own: {team} is "team-1".
		var values []string
		filled := param.ReplaceAllStringFunc(path, func(m string) string {
			v := strings.Trim(m, "{}") + "-1"
			values = append(values, v)
			return v
		})
		for method := range doc.Paths.Value(path).Operations() {
			operations++
			matched, params = false, nil
			mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, filled, nil))
			if !matched {
				t.Errorf("%s %s (as %s): no REST route", method, path, filled)
				continue
			}
			resource := strings.TrimPrefix(filled, "/v1/")
			for _, v := range values {
				if !slices.ContainsFunc(slices.Collect(maps.Values(params)), func(p string) bool { return strings.Contains(p, v) }) {
					t.Errorf("%s %s: the route's parameters %v lack %q", method, filled, params, v)
				}
			}
			for k, p := range params {
				if !strings.Contains(resource, p) {
					t.Errorf("%s %s: parameter %s=%q is not from the path", method, filled, k, p)
				}
			}
		}
	}
	if operations < 40 {
		t.Errorf("operations: got %d, want every REST route (more than 40)", operations)
	}
}
