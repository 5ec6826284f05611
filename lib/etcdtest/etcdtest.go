// Package etcdtest runs embedded etcd servers (go.etcd.io/etcd/server/v3/embed)
// in this process, on loopback, for tests and benchmarks: one member or a
// cluster whose members can be stopped, killed and restarted. etcd's own
// logs (warnings and errors only; a stopping member logs many) are kept in
// memory (Logs).
//
// Tests call Start, StartTLS or StartCluster: the data lives in
// t.TempDir(), everything stops at the test's cleanup, and the logs are
// shown only when the test fails. Programs (ozbench) and tests that keep
// the data where they choose call New, then Close.
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
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
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

// Config says what cluster New starts.
type Config struct {
	// Members is the number of members, at least 1.
	Members int
	// Dir is where the members keep their data: member i in Dir/m<i>.
	// Required.
	Dir string
	// TLS, when set, has the members serve clients over https with mutual
	// TLS; nil is plain http.
	TLS *TLS
}

// TLS are the PEM files of a member serving clients over https. The
// member presents Cert and requires client certificates signed by CA; the
// cluster's clients (Config, Client) present Cert too, so it must be
// usable for both (as the development PKI's are).
type TLS struct{ CA, Cert, Key string }

// Cluster is a running embedded etcd cluster of one or more members.
type Cluster struct {
	Dir     string // member i keeps its data in Dir/m<i>
	Members []*Member

	logs      *tail
	clientTLS *tls.Config // nil: plain http
}

// Member is one etcd member of a Cluster.
type Member struct {
	Name      string // m0, m1, …
	ClientURL string // http://127.0.0.1:PORT, https:// with TLS

	cfg *embed.Config // what the member (re)starts with

	mu   sync.Mutex
	etcd *embed.Etcd // nil while stopped
}

// Start starts a single-member etcd and waits until it serves. It stops at
// the end of the test.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	return startTB(tb, Config{Members: 1})
}

// StartTLS starts a single-member etcd serving clients over https with
// mutual TLS, and waits until it serves. It stops at the end of the test.
func StartTLS(tb testing.TB, files TLS) *Cluster {
	tb.Helper()
	return startTB(tb, Config{Members: 1, TLS: &files})
}

// StartCluster starts an n-member etcd cluster and waits until every
// member serves. It stops at the end of the test.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	return startTB(tb, Config{Members: n})
}

func startTB(tb testing.TB, cfg Config) *Cluster {
	tb.Helper()
	cfg.Dir = tb.TempDir()
	c, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		c.Close()
		if tb.Failed() {
			tb.Logf("etcd logs (last %d bytes):\n%s", maxTail, c.Logs())
		}
	})
	return c
}

// New starts the cluster cfg says, on free loopback ports, and waits until
// every member serves. The caller stops it with Close. The ports are
// picked free and then released for etcd to bind, so a start that finds
// one taken meanwhile is retried on new ports.
func New(cfg Config) (*Cluster, error) {
	if cfg.Members < 1 {
		return nil, fmt.Errorf("etcdtest: a cluster of %d members", cfg.Members)
	}
	if cfg.Dir == "" {
		return nil, errors.New("etcdtest: no data directory")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: %w", err)
	}
	cfg.Dir = dir
	for range 3 {
		var c *Cluster
		c, err = start(cfg)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) && !strings.Contains(err.Error(), "address already in use") {
			break
		}
		for i := range cfg.Members {
			_ = os.RemoveAll(filepath.Join(dir, memberName(i)))
		}
	}
	return nil, fmt.Errorf("etcdtest: start: %w", err)
}

func memberName(i int) string { return fmt.Sprintf("m%d", i) }

func start(cfg Config) (*Cluster, error) {
	n := cfg.Members
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: cfg.Dir, logs: &tail{}}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
		info := transport.TLSInfo{CertFile: cfg.TLS.Cert, KeyFile: cfg.TLS.Key, TrustedCAFile: cfg.TLS.CA}
		if c.clientTLS, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("client TLS: %w", err)
		}
	}
	lg := c.logs.logger()
	var initial []string
	for i := range n {
		m := &Member{
			Name:      memberName(i),
			ClientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i]),
		}
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		initial = append(initial, m.Name+"="+peerURL)
		m.cfg = config(filepath.Join(cfg.Dir, m.Name), m.Name, m.ClientURL, peerURL, n, lg)
		if cfg.TLS != nil {
			m.cfg.ClientTLSInfo = transport.TLSInfo{
				CertFile: cfg.TLS.Cert, KeyFile: cfg.TLS.Key, TrustedCAFile: cfg.TLS.CA, ClientCertAuth: true,
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
		if m.Running() {
			errs = append(errs, m.waitReady())
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, fmt.Errorf("%w\netcd logs:\n%s", err, c.logs)
	}
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
	// loaded machines (two cores running the whole system), so that
	// leadership does not flap.
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
	if e == nil {
		return fmt.Errorf("member %s is stopped", m.Name)
	}
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("member %s: %w", m.Name, err)
	case <-time.After(readyTimeout):
		return fmt.Errorf("member %s: not ready after %v", m.Name, readyTimeout)
	}
}

// stop stops the member; hard skips the leadership transfer a stopping
// leader makes, as when its process dies.
func (m *Member) stop(hard bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.etcd == nil {
		return
	}
	if hard {
		m.etcd.Server.HardStop()
	}
	m.etcd.Close()
	m.etcd = nil
}

// Running reports whether the member runs (it has not been stopped, or it
// has been restarted).
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.etcd != nil
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
	cfg := clientv3.Config{
		Endpoints:   c.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	}
	if c.clientTLS != nil {
		cfg.TLS = c.clientTLS.Clone()
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

// Stop stops member i gracefully (a leader hands its leadership over
// first); its data stays, for Restart. Stopping a stopped member does
// nothing.
func (c *Cluster) Stop(i int) { c.Members[i].stop(false) }

// Kill stops member i at once, without handing leadership over, as when
// its process dies (the data written so far stays, for Restart).
func (c *Cluster) Kill(i int) { c.Members[i].stop(true) }

// Restart starts member i again, after Stop or Kill, on the same
// addresses and data, and waits until it has rejoined the cluster.
func (c *Cluster) Restart(i int) error {
	m := c.Members[i]
	m.cfg.ClusterState = embed.ClusterStateFlagExisting
	if err := m.start(); err != nil {
		return fmt.Errorf("etcdtest: restart: %w", err)
	}
	if err := m.waitReady(); err != nil {
		return fmt.Errorf("etcdtest: restart: %w", err)
	}
	return nil
}

// Close stops every member. The data stays in Dir.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		m.stop(false)
	}
}

// Leader returns the index of the member that leads the cluster, as the
// running members' Status says.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	cli, err := clientv3.New(c.Config())
	if err != nil {
		return -1, err
	}
	defer cli.Close()
	ids := map[uint64]int{}
	var leader uint64
	for i, m := range c.Members {
		if !m.Running() {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cli.Status(sctx, m.ClientURL)
		cancel()
		if err != nil {
			continue
		}
		ids[st.Header.GetMemberId()] = i
		if st.Leader != 0 {
			leader = st.Leader
		}
	}
	if i, ok := ids[leader]; ok && leader != 0 {
		return i, nil
	}
	return -1, errors.New("etcdtest: no member reports a leader that runs")
}

// Logs returns the last warnings and errors etcd logged (at most 64 KiB).
func (c *Cluster) Logs() string { return c.logs.String() }

var prefixes atomic.Int64

// Prefix returns a key prefix no other call in this process returns
// ("/etcdtest/7/"), so that stores sharing one server each start empty.
func Prefix() string {
	return fmt.Sprintf("/etcdtest/%d/", prefixes.Add(1))
}
