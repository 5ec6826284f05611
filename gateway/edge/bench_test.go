package edge_test

import (
	"io"
	"net/http"
	"testing"

	"google.golang.org/grpc"

	"github.com/ozsecrets/oz/gateway/edge"
	"github.com/ozsecrets/oz/gateway/edge/edgetest"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// BenchmarkGetSecret compares the same call through the gateway over REST
// (HTTP/2 and HTTP/1.1) and native gRPC, against a backend with mutual TLS.
// It shows how to build benchmarks on edgetest.
func BenchmarkGetSecret(b *testing.B) {
	pki := edgetest.NewPKI(b)
	store := edgetest.StartBackend(b, pki, func(s *grpc.Server) {
		secretsv1.RegisterSecretServiceServer(s, secretService{})
	})
	resolver := edgetest.StartBackend(b, pki, func(s *grpc.Server) {
		scopev1.RegisterDirectoryServiceServer(s, directoryService{})
	})
	gw := edgetest.StartGateway(b, pki, edge.Config{Backends: map[string]string{
		edge.SecretStore: store,
		edge.Resolver:    resolver,
	}})

	for name, c := range map[string]*http.Client{"REST/HTTP2": gw.HTTPClient(b), "REST/HTTP1": gw.HTTP1Client(b)} {
		b.Run(name, func(b *testing.B) {
			req, err := http.NewRequestWithContext(b.Context(), "GET", gw.URL+"/v1/teams/acme/secrets/API_KEY", nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Authorization", bearer)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status: got %d, want 200", resp.StatusCode)
						return
					}
				}
			})
		})
	}
	b.Run("gRPC", func(b *testing.B) {
		client := secretsv1.NewSecretServiceClient(gw.Dial(b))
		b.RunParallel(func(pb *testing.PB) {
			ctx := outgoing(b.Context())
			for pb.Next() {
				if _, err := client.GetSecret(ctx, &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/API_KEY"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
