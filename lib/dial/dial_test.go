package dial_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"

	"github.com/ozsecrets/oz/lib/dial"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ", nil},
		{"a:1", []string{"a:1"}},
		{" a:1, b:2 ,,c:3 ", []string{"a:1", "b:2", "c:3"}},
	}
	for _, tt := range tests {
		if got := dial.Split(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("Split(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	creds := credentials.NewTLS(&tls.Config{})
	for _, tt := range []struct {
		name  string
		addrs []string
		want  string
	}{
		{"ErrNoAddress", nil, "no address"},
		{"ErrNoPort", []string{"127.0.0.1:1", "resolver"}, `address "resolver"`},
		{"ErrDNSInList", []string{"127.0.0.1:1", "dns:///resolver:7451"}, `address "dns:///resolver:7451"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := dial.New(tt.addrs, creds)
			if err == nil {
				conn.Close()
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// replica is a gRPC server with a health service that counts its checks.
type replica struct {
	addr   string
	srv    *grpc.Server
	health *health.Server
	calls  atomic.Int64
}

// TestNewBalancesAndChecksHealth: calls go to every replica, each
// verified against its own host (a certificate for 127.0.0.1 only, while
// the target's authority is "oz"), and a replica that reports NOT_SERVING
// gets none. No resolver is registered globally.
func TestNewBalancesAndChecksHealth(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	replicas := []*replica{startReplica(t, serverTLS), startReplica(t, serverTLS)}
	conn, err := dial.New([]string{replicas[0].addr, replicas[1].addr}, credentials.NewTLS(clientTLS))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if resolver.Get("oz") != nil {
		t.Error(`a resolver for scheme "oz" is registered globally`)
	}
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	check := func() {
		t.Helper()
		if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "probe"}, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
	for replicas[0].calls.Load() == 0 || replicas[1].calls.Load() == 0 {
		check()
	}

	replicas[1].health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	// The client learns it on its watch stream; from then on only replica
	// 0 gets calls.
	for {
		before := replicas[1].calls.Load()
		for range 20 {
			check()
		}
		if replicas[1].calls.Load() == before {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("a replica NOT_SERVING still gets calls")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func startReplica(t *testing.T, cfg *tls.Config) *replica {
	t.Helper()
	r, err := startReplicaAt(t, cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newReplica returns a replica whose server is not serving yet.
func newReplica(cfg *tls.Config) *replica {
	r := &replica{health: health.NewServer()}
	r.health.SetServingStatus("probe", healthpb.HealthCheckResponse_SERVING)
	r.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			r.calls.Add(1)
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(r.srv, r.health)
	return r
}

// testTLS returns a server configuration with a certificate valid for
// 127.0.0.1 only, and a client configuration trusting it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "replica"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
		&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
}
