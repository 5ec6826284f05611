package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcdReadyTimeout bounds how long a member may take to join its cluster.
const etcdReadyTimeout = 30 * time.Second

// Etcd is an embedded etcd cluster (go.etcd.io/etcd/server/v3/embed) of
// one or more members in this process, serving plain http on loopback,
// for end-to-end tests and benchmarks of the services' etcd stores. Its
// own logs (warnings and errors only) are kept in memory: Logs.
type Etcd struct {
	Dir     string // member i keeps its data in Dir/m<i>
	members []*etcdMember
	logs    *logTail
}

// etcdMember is one member of an Etcd.
type etcdMember struct {
	name      string
	clientURL string        // http://127.0.0.1:PORT
	cfg       *embed.Config // what the member (re)starts with

	mu   sync.Mutex
	etcd *embed.Etcd // nil while stopped
}

// StartEtcd starts an n-member etcd cluster with its data under dir, on
// free loopback ports, and waits until every member serves. The ports are
// picked free and then released for etcd to bind, so a start that finds
// one taken meanwhile is retried on new ports.
func StartEtcd(dir string, n int) (*Etcd, error) {
	if n < 1 {
		return nil, fmt.Errorf("etcd: a cluster of %d members", n)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for range 3 {
		var e *Etcd
		e, err = startEtcd(dir, n)
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) && !strings.Contains(err.Error(), "address already in use") {
			break
		}
		for i := range n {
			_ = os.RemoveAll(filepath.Join(dir, fmt.Sprintf("m%d", i)))
		}
	}
	return nil, fmt.Errorf("etcd: start: %w", err)
}

func startEtcd(dir string, n int) (*Etcd, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	e := &Etcd{Dir: dir, logs: &logTail{}}
	lg := e.logs.logger()
	var initial []string
	for i := range n {
		m := &etcdMember{
			name:      fmt.Sprintf("m%d", i),
			clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
		}
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		initial = append(initial, m.name+"="+peerURL)
		m.cfg = etcdConfig(filepath.Join(dir, m.name), m.name, m.clientURL, peerURL, n, lg)
		e.members = append(e.members, m)
	}
	for _, m := range e.members {
		m.cfg.InitialCluster = strings.Join(initial, ",")
	}
	// Members wait for a quorum before they are ready: start all, then wait.
	var errs []error
	for _, m := range e.members {
		errs = append(errs, m.start())
	}
	for _, m := range e.members {
		if m.running() {
			errs = append(errs, m.waitReady())
		}
	}
	if err := errors.Join(errs...); err != nil {
		e.Close()
		return nil, fmt.Errorf("%w\netcd logs:\n%s", err, e.logs)
	}
	return e, nil
}

// etcdConfig is the embedded configuration of one member of an n-member
// cluster.
func etcdConfig(dir, name, clientURL, peerURL string, n int, lg *zap.Logger) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = dir
	cu, pu := mustURL(clientURL), mustURL(peerURL)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialClusterToken = "oz-e2e"
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

func (m *etcdMember) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.etcd != nil {
		return fmt.Errorf("member %s is running", m.name)
	}
	e, err := embed.StartEtcd(m.cfg)
	if err != nil {
		return fmt.Errorf("member %s: %w", m.name, err)
	}
	m.etcd = e
	return nil
}

func (m *etcdMember) running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.etcd != nil
}

func (m *etcdMember) waitReady() error {
	m.mu.Lock()
	e := m.etcd
	m.mu.Unlock()
	if e == nil {
		return fmt.Errorf("member %s is stopped", m.name)
	}
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("member %s: %w", m.name, err)
	case <-time.After(etcdReadyTimeout):
		return fmt.Errorf("member %s: not ready after %v", m.name, etcdReadyTimeout)
	}
}

// stop stops the member; hard skips the leadership transfer a stopping
// leader makes, as when its process dies.
func (m *etcdMember) stop(hard bool) {
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

// Len is the number of members.
func (e *Etcd) Len() int { return len(e.members) }

// Endpoints returns the client URLs of every member, stopped ones
// included (a client balances over the others).
func (e *Etcd) Endpoints() []string {
	var eps []string
	for _, m := range e.members {
		eps = append(eps, m.clientURL)
	}
	return eps
}

// Store is the services' --store value for the cluster:
// etcd:ENDPOINT,ENDPOINT,….
func (e *Etcd) Store() string { return "etcd:" + strings.Join(e.Endpoints(), ",") }

// Stop stops member i gracefully (a leader hands its leadership over
// first); its data stays, for Restart. Stopping a stopped member does
// nothing.
func (e *Etcd) Stop(i int) { e.members[i].stop(false) }

// Kill stops member i at once, without handing leadership over, as when
// its process dies (the data written so far stays, for Restart).
func (e *Etcd) Kill(i int) { e.members[i].stop(true) }

// Running reports whether member i runs.
func (e *Etcd) Running(i int) bool { return e.members[i].running() }

// Restart starts member i again, after Stop or Kill, on the same
// addresses and data, and waits until it has rejoined the cluster.
func (e *Etcd) Restart(i int) error {
	m := e.members[i]
	m.cfg.ClusterState = embed.ClusterStateFlagExisting
	if err := m.start(); err != nil {
		return fmt.Errorf("etcd: restart: %w", err)
	}
	if err := m.waitReady(); err != nil {
		return fmt.Errorf("etcd: restart: %w", err)
	}
	return nil
}

// Close stops every member.
func (e *Etcd) Close() {
	for _, m := range e.members {
		m.stop(false)
	}
}

// Client returns a new client of the cluster, with its logs off; the
// caller closes it.
func (e *Etcd) Client() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   e.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// Leader returns the index of the member that leads the cluster, as the
// running members' Status says.
func (e *Etcd) Leader(ctx context.Context) (int, error) {
	cli, err := e.Client()
	if err != nil {
		return -1, err
	}
	defer cli.Close()
	ids := map[uint64]int{}
	var leader uint64
	for i, m := range e.members {
		if !m.running() {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cli.Status(sctx, m.clientURL)
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
	return -1, errors.New("etcd: no member reports a leader that runs")
}

// Logs returns the last warnings and errors etcd logged.
func (e *Etcd) Logs() string { return e.logs.String() }

// maxLogTail bounds the etcd logs an Etcd keeps.
const maxLogTail = 64 << 10

// logTail keeps the last maxLogTail bytes written to it.
type logTail struct {
	mu  sync.Mutex
	buf []byte
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if over := len(l.buf) - maxLogTail; over > 0 {
		l.buf = append(l.buf[:0], l.buf[over:]...)
	}
	return len(p), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// logger returns a zap logger of warnings and errors, as JSON lines, into l.
func (l *logTail) logger() *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(l), zap.WarnLevel))
}
