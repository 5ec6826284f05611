// Package client dials the oz gateway over TLS and authenticates every call
// with the caller's bearer token.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/cli/internal/config"
)

// Metadata keys sent with every call.
const (
	MDAuthorization = "authorization"
	MDClient        = "x-oz-client"
	ClientName      = "cli"
)

// DefaultTimeout bounds each attempt of a call whose context has no
// deadline.
const DefaultTimeout = 30 * time.Second

// Conn is a connection to the gateway with a client for each service.
type Conn struct {
	cc           *grpc.ClientConn
	Secrets      secretsv1.SecretServiceClient
	SealingKeys  secretsv1.SealingKeyServiceClient
	Directory    scopev1.DirectoryServiceClient
	Tokens       scopev1.TokenServiceClient
	Agents       scopev1.AgentServiceClient
	Environments scopev1.EnvironmentServiceClient
	Runners      scopev1.RunnerServiceClient
	Runs         scopev1.RunServiceClient
	Integrations scopev1.IntegrationServiceClient
	Audit        auditv1.AuditServiceClient
}

// Close closes the connection.
func (c *Conn) Close() error { return c.cc.Close() }

// Dial returns a connection to s.Addr. It verifies the gateway with the
// PEM certificates in s.CAFile, or the system roots when CAFile is empty,
// and sends s.Token as a bearer token. Without a token it returns an
// Unauthenticated status. Dial does not wait for the connection: an
// unreachable gateway shows as Unavailable on the first call. Calls that
// get no answer are sent again, s.Retries times (retry.go).
func Dial(s config.Settings) (*Conn, error) {
	if s.Token == "" {
		return nil, status.Error(codes.Unauthenticated,
			"not logged in: set OZ_TOKEN or run `oz config set token`")
	}
	retries, err := ParseRetries(s.Retries)
	if err != nil {
		return nil, err
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read CA file %s: no PEM certificate in it", s.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	cc, err := grpc.NewClient(s.Addr,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithPerRPCCredentials(bearer(s.Token)),
		// Each attempt of retry has its own deadline and explanation.
		grpc.WithChainUnaryInterceptor(retry(retries, sleepCtx), timeout(DefaultTimeout), explainUnavailable(s.Addr)),
		grpc.WithStatsHandler(answerStats{}),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", s.Addr, err)
	}
	return &Conn{
		cc:           cc,
		Secrets:      secretsv1.NewSecretServiceClient(cc),
		SealingKeys:  secretsv1.NewSealingKeyServiceClient(cc),
		Directory:    scopev1.NewDirectoryServiceClient(cc),
		Tokens:       scopev1.NewTokenServiceClient(cc),
		Agents:       scopev1.NewAgentServiceClient(cc),
		Environments: scopev1.NewEnvironmentServiceClient(cc),
		Runners:      scopev1.NewRunnerServiceClient(cc),
		Runs:         scopev1.NewRunServiceClient(cc),
		Integrations: scopev1.NewIntegrationServiceClient(cc),
		Audit:        auditv1.NewAuditServiceClient(cc),
	}, nil
}

// bearer sends the token and the client name with every call, over TLS
// only.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{
		MDAuthorization: "Bearer " + string(b),
		MDClient:        ClientName,
	}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

func timeout(d time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// explainUnavailable tells the two ways a call can fail for want of an
// answer apart, so that a person knows where to look:
//
//   - the gateway could not be reached, or did not answer at all: the
//     message names the gateway's address and OZ_ADDR ("connection
//     refused" says what was refused);
//   - the gateway answered, saying that a service behind it did not: the
//     message says so ("the gateway answered: the resolver did not answer
//     within 5s; retry"), and the address is not in question.
func explainUnavailable(addr string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		wait := "in time"
		if dl, ok := ctx.Deadline(); ok {
			wait = "within " + time.Until(dl).Round(time.Second).String()
		}
		mark := new(answerMark)
		err := invoker(context.WithValue(ctx, answerKey{}, mark), method, req, reply, cc, opts...)
		st, ok := status.FromError(err)
		if !ok {
			return err
		}
		switch {
		case mark.Load() && st.Code() == codes.Unavailable:
			// The gateway answered for a service behind it, whatever the
			// message says (a service may relay a connection error of
			// its own).
			return status.Error(codes.Unavailable, "the gateway answered: "+st.Message())
		case st.Code() == codes.DeadlineExceeded && ctx.Err() != nil:
			// The CLI's own deadline: nothing came back from the gateway.
			if strings.Contains(st.Message(), "connection error") {
				return status.Errorf(codes.Unavailable, "cannot reach the gateway at %s (check OZ_ADDR): %s", addr, st.Message())
			}
			return status.Errorf(codes.Unavailable, "the gateway at %s did not answer %s; retry", addr, wait)
		case st.Code() != codes.Unavailable:
			return err
		case strings.HasPrefix(st.Message(), "connection error"):
			if strings.Contains(st.Message(), "certificate") {
				return status.Errorf(codes.Unavailable, cannotVerify+" at %s (check OZ_CA_FILE): %s", addr, st.Message())
			}
			return status.Errorf(codes.Unavailable, "cannot reach the gateway at %s (check OZ_ADDR): %s", addr, st.Message())
		default:
			return err
		}
	}
}

// cannotVerify starts the message of a gateway whose certificate does not
// verify: no retry helps.
const cannotVerify = "cannot verify the gateway"

// answerKey marks, in a call's context, that the gateway answered the call:
// its response headers or trailers came. An Unavailable it sent is about a
// service behind it, not about reaching it.
type answerKey struct{}

type answerMark struct{ atomic.Bool }

// answerStats is the stats handler that sets the mark.
type answerStats struct{}

func (answerStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (answerStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (answerStats) HandleConn(context.Context, stats.ConnStats)                       {}

func (answerStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	switch s.(type) {
	case *stats.InHeader, *stats.InTrailer:
		if m, ok := ctx.Value(answerKey{}).(*answerMark); ok {
			m.Store(true)
		}
	}
}
