package execcmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/config"
	"github.com/ozsecrets/oz/cli/internal/runner"
)

// DialRuns connects to the gateway's RunService as client.Dial connects to
// the other services: TLS verified with s.CAFile (or the system roots),
// s.Token as the bearer token, the default call timeout.
//
// It exists because client.Conn has no RunService client yet; once it
// has (a `Runs scopev1.RunServiceClient` field), this becomes
// client.Dial(s) and conn.Runs.
func DialRuns(s config.Settings) (runner.Resolver, func() error, error) {
	if s.Token == "" {
		return nil, nil, status.Error(codes.Unauthenticated,
			"not logged in: set OZ_TOKEN to the runner's token")
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("read CA file %s: no PEM certificate in it", s.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	cc, err := grpc.NewClient(s.Addr,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithPerRPCCredentials(bearer(s.Token)),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if _, ok := ctx.Deadline(); !ok {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, client.DefaultTimeout)
				defer cancel()
			}
			err := invoker(ctx, method, req, reply, cc, opts...)
			if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
				return status.Errorf(codes.Unavailable, "cannot reach the gateway at %s (check OZ_ADDR and OZ_CA_FILE): %s", s.Addr, st.Message())
			}
			return err
		}),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", s.Addr, err)
	}
	return scopev1.NewRunServiceClient(cc), cc.Close, nil
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{
		client.MDAuthorization: "Bearer " + string(b),
		client.MDClient:        client.ClientName,
	}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }
