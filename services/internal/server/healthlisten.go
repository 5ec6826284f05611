package server

import (
	"net"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// ServeHealthOn serves the server's health service, and nothing else, over
// plain-text gRPC on lis until stop is called (Run does, with
// --health-listen). It reports the same status as the mutual-TLS server
// (one health.Server behind both), so a probe sees NOT_SERVING as soon as
// shutdown begins. It carries no API, no reflection and no data: a caller
// learns only whether the service is up, which is why it may go without
// TLS.
func (s *Server) ServeHealthOn(lis net.Listener) (stop func()) {
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(1 << 10))
	healthpb.RegisterHealthServer(gs, s.Health)
	go func() { _ = gs.Serve(lis) }()
	return gs.Stop
}
