package dial_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver/dns"

	"github.com/ozsecrets/oz/lib/dial"
)

func init() {
	// gRPC's DNS resolver waits 30s between resolutions; the re-resolution
	// test would take minutes. Only at init: the setting is not guarded.
	dns.SetMinResolutionInterval(50 * time.Millisecond)
}

func TestAddressForms(t *testing.T) {
	for _, tt := range []struct {
		name  string
		addrs []string
		want  string // "" for accepted; else part of the error
	}{
		{"HostPort", []string{"resolver:7451"}, ""},
		{"List", []string{"resolver-0:7451", "[::1]:7451"}, ""},
		{"DNS", []string{"dns:///resolver.oz.svc:7451"}, ""},
		{"DNSWithServer", []string{"dns://10.0.0.10:53/resolver.oz.svc:7451"}, ""},
		{"ErrNoAddress", nil, "no address: want " + dial.Rule},
		{"ErrNoPort", []string{"resolver"}, `address "resolver": missing port in address: want ` + dial.Rule},
		{"ErrPortName", []string{"resolver:grpc"}, `address "resolver:grpc": port "grpc" is not a number`},
		{"ErrNoHost", []string{":7451"}, `address ":7451": no host`},
		{"ErrDNSNoPort", []string{"dns:///resolver.oz.svc"}, `address "dns:///resolver.oz.svc": missing port`},
		{"ErrDNSInList", []string{"dns:///resolver.oz.svc:7451", "resolver:7451"}, "must be the only address"},
		{"ErrDNSAfterList", []string{"resolver:7451", "dns:///resolver.oz.svc:7451"}, "must be the only address"},
		{"ErrDNSBadServer", []string{"dns://ns/resolver.oz.svc:7451"}, `DNS server "ns": missing port`},
		{"ErrDNSTwoSlashes", []string{"dns://resolver.oz.svc:7451"}, "no name after dns://"},
		{"ErrScheme", []string{"unix:///run/oz.sock"}, "unknown scheme (only dns:/// is resolved): want " + dial.Rule},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := dial.Check(tt.addrs)
			conn, nerr := dial.New(tt.addrs, credentials.NewTLS(&tls.Config{}))
			if nerr == nil {
				conn.Close()
			}
			if (err == nil) != (nerr == nil) {
				t.Fatalf("Check: %v; New: %v: want the same verdict", err, nerr)
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tt.want != "" && err == nil:
				t.Fatalf("got no error, want one containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestDNSBalancesAcrossReplicas: one dns:/// name, two replicas behind it
// (as a headless Service's A records), both get calls; each replica's
// certificate is checked against the name, not its IP.
func TestDNSBalancesAcrossReplicas(t *testing.T) {
	serverTLS, clientTLS := tlsForNames(t, "replicas.test")
	ns := startDNS(t)
	replicas, port := startReplicaPair(t, serverTLS)
	ns.set(replicas[0].ip, replicas[1].ip)

	conn, err := dial.New([]string{fmt.Sprintf("dns://%s/replicas.test:%d", ns.addr, port)}, credentials.NewTLS(clientTLS))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := healthpb.NewHealthClient(conn)
	for replicas[0].calls.Load() == 0 || replicas[1].calls.Load() == 0 {
		if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "probe"}, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("Check: %v (calls: %d, %d)", err, replicas[0].calls.Load(), replicas[1].calls.Load())
		}
	}
}

// TestDNSChecksTheName: a replica whose certificate is not for the name
// dialled gets no call.
func TestDNSChecksTheName(t *testing.T) {
	serverTLS, clientTLS := tlsForNames(t, "elsewhere.test")
	ns := startDNS(t)
	replicas, port := startReplicaPair(t, serverTLS)
	ns.set(replicas[0].ip)

	conn, err := dial.New([]string{fmt.Sprintf("dns://%s/replicas.test:%d", ns.addr, port)}, credentials.NewTLS(clientTLS))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "probe"})
	if err == nil {
		t.Fatal("Check: got no error from a replica with a certificate for elsewhere.test, want a refusal")
	}
	if replicas[0].calls.Load() != 0 {
		t.Fatalf("the replica got %d calls, want 0", replicas[0].calls.Load())
	}
}

// TestDNSFindsNewReplicas: a replica added to the DNS records gets calls
// while every connection stays healthy (nothing else would make gRPC's
// DNS resolver look again).
func TestDNSFindsNewReplicas(t *testing.T) {
	defer dial.SetReresolveEvery(100 * time.Millisecond)()
	serverTLS, clientTLS := tlsForNames(t, "replicas.test")
	ns := startDNS(t)
	replicas, port := startReplicaPair(t, serverTLS)
	ns.set(replicas[0].ip)

	conn, err := dial.New([]string{fmt.Sprintf("dns://%s/replicas.test:%d", ns.addr, port)}, credentials.NewTLS(clientTLS))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := healthpb.NewHealthClient(conn)
	check := func() {
		t.Helper()
		if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "probe"}, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
	for range 20 {
		check()
	}
	if n := replicas[1].calls.Load(); n != 0 {
		t.Fatalf("replica 2, not in DNS yet, got %d calls", n)
	}
	ns.set(replicas[0].ip, replicas[1].ip)
	for replicas[1].calls.Load() == 0 {
		check()
		time.Sleep(10 * time.Millisecond)
	}
}

// ipReplica is a replica on its own loopback IP.
type ipReplica struct {
	*replica
	ip netip.Addr
}

// startReplicaPair starts two replicas on one port, at 127.0.0.1 and
// 127.0.0.2: DNS gives addresses, the port comes from the name dialled.
func startReplicaPair(t *testing.T, cfg *tls.Config) ([]ipReplica, int) {
	t.Helper()
	for range 10 {
		first := startReplica(t, cfg)
		_, p, _ := net.SplitHostPort(first.addr)
		port, _ := strconv.Atoi(p)
		second, err := startReplicaAt(t, cfg, fmt.Sprintf("127.0.0.2:%d", port))
		if err != nil {
			continue // the port is taken on 127.0.0.2: another pair
		}
		return []ipReplica{
			{first, netip.MustParseAddr("127.0.0.1")},
			{second, netip.MustParseAddr("127.0.0.2")},
		}, port
	}
	t.Skip("no port free on both 127.0.0.1 and 127.0.0.2")
	return nil, 0
}

func startReplicaAt(t *testing.T, cfg *tls.Config, addr string) (*replica, error) {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := newReplica(cfg)
	r.addr = lis.Addr().String()
	go r.srv.Serve(lis)
	t.Cleanup(r.srv.Stop)
	return r, nil
}

// dnsServer answers A queries for replicas.test with the addresses set,
// over UDP on loopback; anything else gets no answer records.
type dnsServer struct {
	addr string
	mu   sync.Mutex
	ips  []netip.Addr
}

func (s *dnsServer) set(ips ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ips = ips
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{addr: pc.LocalAddr().String()}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			if msg, err := s.answer(buf[:n]); err == nil {
				pc.WriteTo(msg, from)
			}
		}
	}()
	return s
}

func (s *dnsServer) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if q.Type == dnsmessage.TypeA && strings.EqualFold(q.Name.String(), "replicas.test.") {
		s.mu.Lock()
		ips := s.ips
		s.mu.Unlock()
		for _, ip := range ips {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
			if err := b.AResource(rh, dnsmessage.AResource{A: ip.As4()}); err != nil {
				return nil, err
			}
		}
	}
	return b.Finish()
}

// tlsForNames returns a server configuration with a certificate valid for
// the DNS names only (no IP), and a client configuration trusting it.
func tlsForNames(t *testing.T, names ...string) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: names[0]},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              names,
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
