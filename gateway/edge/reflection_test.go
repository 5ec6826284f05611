package edge_test

import (
	"slices"
	"strings"
	"testing"

	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/ozsecrets/oz/gateway/edge"
)

// TestReflectionListsEveryPublicService is `grpcurl list` against the
// gateway: every public API service, the optional audit service too when
// its backend is configured, and never an internal one.
func TestReflectionListsEveryPublicService(t *testing.T) {
	e := newEnv(t, func(c *edge.Config) {
		// Reflection answers from the linked descriptors; the backend is
		// never called, so nothing needs to listen there.
		c.Backends[edge.Audit] = "127.0.0.1:1"
	})
	stream, err := reflectionpb.NewServerReflectionClient(e.gw.Dial(t)).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	list := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, s := range list.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	public := []string{
		"oz.audit.v1.AuditService",
		"oz.scope.v1.AgentService",
		"oz.scope.v1.DirectoryService",
		"oz.scope.v1.EnvironmentService",
		"oz.scope.v1.IntegrationService",
		"oz.scope.v1.RunService",
		"oz.scope.v1.RunnerService",
		"oz.scope.v1.TokenService",
		"oz.secrets.v1.SealingKeyService",
		"oz.secrets.v1.SecretService",
	}
	for _, want := range append(public, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection") {
		if !slices.Contains(names, want) {
			t.Errorf("services: got %v, want %s among them", names, want)
		}
	}
	for _, n := range names {
		if strings.Contains(strings.ToLower(n), "internal") {
			t.Errorf("services: got %s, want no internal service", n)
		}
	}
	for _, svc := range public {
		file := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: svc}})
		if len(file.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
			t.Errorf("descriptor of %s: got %v, want a file", svc, file)
		}
	}
}
