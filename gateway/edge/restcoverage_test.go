package edge

import (
	"os"
	"regexp"
	"testing"
)

// TestEveryMappedServiceIsServed: a service with REST routes in
// proto/http.yaml must have its grpc-gateway handlers registered here, or
// its routes answer 404 while native gRPC works (and nothing else notices).
func TestEveryMappedServiceIsServed(t *testing.T) {
	b, err := os.ReadFile("../../proto/http.yaml")
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, s := range restServices {
		served[s.name] = true
	}
	for _, s := range optionalRESTServices {
		served[s.name] = true
	}
	selector := regexp.MustCompile(`(?m)^\s*-\s*selector:\s*([\w.]+)\.\w+\s*$`)
	matches := selector.FindAllSubmatch(b, -1)
	if len(matches) < 10 {
		t.Fatalf("found %d selectors in proto/http.yaml; the pattern no longer matches the file", len(matches))
	}
	for _, m := range matches {
		if svc := string(m[1]); !served[svc] {
			t.Errorf("proto/http.yaml maps %s, but the gateway registers no REST handler for it (restServices)", svc)
			served[svc] = true // report once
		}
	}
}
