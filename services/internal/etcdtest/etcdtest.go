// Package etcdtest runs embedded etcd servers (go.etcd.io/etcd/server/v3/embed)
// on loopback for tests: one member (Start), or a cluster (StartCluster)
// whose members a test can stop and restart. Data lives in t.TempDir();
// everything stops at the test's cleanup. etcd's own logs (warnings and
// errors; a stopping member logs many) are shown only when the test fails.
//
// A store's tests start one server per test function and share it across
// subtests, giving each store its own key prefix (Prefix), since starting
// a server costs far more than a test case:
//
//	func TestEtcd(t *testing.T) {
//		srv := etcdtest.Start(t)
//		storetest.Run(t, func(t *testing.T) resolver.Store {
//			return open(t, srv.Client(t), etcdtest.Prefix())
//		})
//	}
package etcdtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// readyTimeout bounds how long a member may take to join its cluster.
const readyTimeout = 30 * time.Second

// Cluster is a running embedded etcd cluster of one or more members.
type Cluster struct {
	tb      testing.TB
	Members []*Member
	logs    *tail
	tls     *TLS
}

// TLS are the PEM files of a member serving clients over https. The
// member presents Cert and requires client certificates signed by CA; the
// cluster's clients (Config, Client) present Cert too, so it must be
// usable for both (as the development PKI's are).
type TLS struct{ CA, Cert, Key string }

// Member is one etcd member of a Cluster.
type Member struct {
	Name      string
	ClientURL string // http://127.0.0.1:PORT, https:// with StartTLS

	cfg *embed.Config // what the member (re)starts with

	mu   sync.Mutex
	etcd *embed.Etcd // nil while stopped
}

// Start starts a single-member etcd and waits until it serves. It stops at
// the end of the test.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	return StartCluster(tb, 1)
}

// StartTLS starts a single-member etcd serving clients over https with
// mutual TLS, and waits until it serves. It stops at the end of the test.
func StartTLS(tb testing.TB, files TLS) *Cluster {
	tb.Helper()
	return start(tb, 1, &files)
}

// StartCluster starts an n-member etcd cluster and waits until every
// member serves. It stops at the end of the test.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	return start(tb, n, nil)
}

func start(tb testing.TB, n int, files *TLS) *Cluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("etcdtest: a cluster of %d members", n)
	}
	// The ports are picked free, then released for etcd to bind: another
	// process may take one meanwhile, so a start that fails on an address
	// in use is retried with new ports.
	var err error
	for range 3 {
		var c *Cluster
		c, err = startCluster(tb, n, files)
		if err == nil {
			return c
		}
		if !errors.Is(err, syscall.EADDRINUSE) && !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	tb.Fatalf("etcdtest: start: %v", err)
	return nil
}

func startCluster(tb testing.TB, n int, files *TLS) (*Cluster, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{tb: tb, logs: &tail{}, tls: files}
	scheme := "http"
	if files != nil {
		scheme = "https"
	}
	lg := c.logs.logger()
	var initial []string
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i]),
		}
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		initial = append(initial, m.Name+"="+peerURL)
		m.cfg = config(tb.TempDir(), m.Name, m.ClientURL, peerURL, n, lg)
		if files != nil {
			m.cfg.ClientTLSInfo = transport.TLSInfo{
				CertFile: files.Cert, KeyFile: files.Key, TrustedCAFile: files.CA, ClientCertAuth: true,
			}
		}
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.cfg.InitialCluster = strings.Join(initial, ",")
	}
	// Members wait for a quorum before they are ready: start all, then wait.
	var errs []error
	for _, m := range c.Members {
		errs = append(errs, m.start())
	}
	for _, m := range c.Members {
		if m.etcd != nil {
			errs = append(errs, m.waitReady())
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.stopAll()
		return nil, fmt.Errorf("%w\netcd logs:\n%s", err, c.logs)
	}
	tb.Cleanup(func() {
		c.stopAll()
		if tb.Failed() {
			tb.Logf("etcd logs (last %d bytes):\n%s", maxTail, c.logs)
		}
	})
	return c, nil
}

// config is the embedded configuration of one member of an n-member
// cluster.
func config(dir, name, clientURL, peerURL string, n int, lg *zap.Logger) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = dir
	cu, pu := mustURL(clientURL), mustURL(peerURL)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialClusterToken = "etcdtest"
	// A lone member elects itself at once; a cluster keeps margins for
	// loaded CI machines, so that leadership does not flap.
	cfg.TickMs, cfg.ElectionMs = 10, 100
	if n > 1 {
		cfg.TickMs, cfg.ElectionMs = 50, 500
	}
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg.Named(name))
	return cfg
}

// maxTail bounds the etcd logs a Cluster keeps.
const maxTail = 64 << 10

// tail keeps the last maxTail bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (l *tail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if over := len(l.buf) - maxTail; over > 0 {
		l.buf = append(l.buf[:0], l.buf[over:]...)
	}
	return len(p), nil
}

func (l *tail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// logger returns a zap logger of warnings and errors, as JSON lines, into l.
func (l *tail) logger() *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(l), zap.WarnLevel))
}

func mustURL(s string) url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return *u
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are picked, so that they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (m *Member) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.etcd != nil {
		return fmt.Errorf("member %s is running", m.Name)
	}
	e, err := embed.StartEtcd(m.cfg)
	if err != nil {
		return fmt.Errorf("member %s: %w", m.Name, err)
	}
	m.etcd = e
	return nil
}

func (m *Member) waitReady() error {
	m.mu.Lock()
	e := m.etcd
	m.mu.Unlock()
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("member %s: %w", m.Name, err)
	case <-time.After(readyTimeout):
		return fmt.Errorf("member %s: not ready after %v", m.Name, readyTimeout)
	}
}

func (m *Member) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.etcd != nil {
		m.etcd.Close()
		m.etcd = nil
	}
}

// Running reports whether the member runs (it has not been stopped, or it
// has been restarted).
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.etcd != nil
}

func (c *Cluster) stopAll() {
	for _, m := range c.Members {
		m.stop()
	}
}

// Endpoints returns the client URLs of every member, stopped ones
// included (a client balances over the others).
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// Config returns a client configuration for the cluster, with the client's
// logs off.
func (c *Cluster) Config() clientv3.Config {
	c.tb.Helper()
	cfg := clientv3.Config{
		Endpoints:   c.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	}
	if c.tls != nil {
		info := transport.TLSInfo{CertFile: c.tls.Cert, KeyFile: c.tls.Key, TrustedCAFile: c.tls.CA}
		tc, err := info.ClientConfig()
		if err != nil {
			c.tb.Fatalf("etcdtest: client TLS: %v", err)
		}
		cfg.TLS = tc
	}
	return cfg
}

// Client returns a new client of the cluster, closed at the end of the test.
func (c *Cluster) Client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	cli, err := clientv3.New(c.Config())
	if err != nil {
		tb.Fatalf("etcdtest: client: %v", err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

// Stop stops member i (its data stays, for Restart).
func (c *Cluster) Stop(i int) {
	c.tb.Helper()
	c.Members[i].stop()
}

// Restart starts member i again, after Stop, on the same addresses and
// data, and waits until it has rejoined the cluster.
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	m := c.Members[i]
	m.cfg.ClusterState = embed.ClusterStateFlagExisting
	if err := m.start(); err != nil {
		c.tb.Fatalf("etcdtest: restart: %v", err)
	}
	if err := m.waitReady(); err != nil {
		c.tb.Fatalf("etcdtest: restart: %v", err)
	}
}

var prefixes atomic.Int64

// Prefix returns a key prefix no other call in this process returns
// ("/etcdtest/7/"), so that stores sharing one server each start empty.
func Prefix() string {
	return fmt.Sprintf("/etcdtest/%d/", prefixes.Add(1))
}
