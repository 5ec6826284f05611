package server

import (
	"fmt"
	"log/slog"
	"net"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// HealthListenUsage is the help text of the services' --health-listen flag.
const HealthListenUsage = "also serve grpc.health.v1, and nothing else, in plain text on ADDR " +
	"(for Kubernetes gRPC probes, which cannot present a client certificate); empty: off (OZ_HEALTH_LISTEN)"

// ServeHealth serves the server's health service, and nothing else, over
// plain-text gRPC at addr until stop is called. It reports the same
// status as the mutual-TLS server (one health.Server behind both), so a
// probe sees NOT_SERVING as soon as shutdown begins. It carries no API,
// no reflection and no data: a caller learns only whether the service is
// up, which is why it may go without TLS.
func (s *Server) ServeHealth(addr string, log *slog.Logger) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health listen: %w", err)
	}
	if log != nil {
		log.Info("health", "addr", lis.Addr().String())
	}
	return s.ServeHealthOn(lis), nil
}

// ServeHealthOn is ServeHealth on a listener of the caller's.
func (s *Server) ServeHealthOn(lis net.Listener) (stop func()) {
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(1 << 10))
	healthpb.RegisterHealthServer(gs, s.Health)
	go func() { _ = gs.Serve(lis) }()
	return gs.Stop
}
