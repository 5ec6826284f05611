package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/ozsecrets/oz/lib/dial"
	"github.com/ozsecrets/oz/lib/flagenv"
	"github.com/ozsecrets/oz/lib/metricsserve"
	"github.com/ozsecrets/oz/lib/tracing"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltcheck"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/storeflag"
	"github.com/ozsecrets/oz/services/internal/storeid"
	"github.com/ozsecrets/oz/services/internal/storemetrics"
)

// The daemon skeleton: every service's main is flags (RegisterFlags) →
// its domain and gRPC services (a build function) → Run, which does the
// rest the same way for all of them: TLS, tracing, metrics, the health
// listener, serving, a graceful stop and the teardown in order.

// StopTimeout bounds each step of the teardown that may wait on the
// network: the last delivery of the audit outbox (what is left is
// delivered after the next start), the export of the last spans, the
// metrics server's shutdown.
const StopTimeout = 5 * time.Second

// DefaultAddr is the default address of the service name ("resolver",
// "secretstore", "audit"): where it listens, and where the others dial
// it, unless told otherwise.
func DefaultAddr(name string) string {
	return map[string]string{
		"secretstore": "127.0.0.1:7450",
		"resolver":    "127.0.0.1:7451",
		"audit":       "127.0.0.1:7452",
	}[name]
}

// Daemon is what Run needs to know of a service, from its flags
// (Flags.Daemon) but for Log and Ready.
type Daemon struct {
	// Name is the service's name, "resolver": the name of its
	// certificate and of its metrics' service label. Its binary,
	// oz<Name>d, names its traces.
	Name string
	// Listen is the address of the mutual-TLS gRPC server.
	Listen string
	// TLS is the service's certificate, which it serves and presents to
	// the services it dials; CA the bundle that verifies both sides.
	TLS pki.Paths
	CA  string
	// DataDir is --data-dir; Store where the data lives (the build
	// function opens it: each service its own way).
	DataDir string
	Store   storeflag.Config
	// Init is --init: a first start, which creates the store where there
	// was none; a missing, empty, damaged or foreign store stops the start
	// all the same (package storeid). Namespace is the service's etcd
	// namespace, for that check.
	Init      bool
	Namespace string
	// StoreCheck bounds bbolt's consistency check of the store file before
	// serving (package boltcheck); 0 skips the check.
	StoreCheck time.Duration
	// MetricsListen serves /metrics over plain HTTP; "" is off (the port
	// is unauthenticated).
	MetricsListen string
	// HealthListen serves grpc.health.v1 alone in plain text; "" is off.
	HealthListen string
	Trace        tracing.Config
	// DeniedInterval is Config.DeniedInterval of the service's server:
	// how often refusals of requests without a valid credential are
	// recorded, counted; DefaultDeniedInterval when zero.
	DeniedInterval time.Duration
	// AuthTimeout bounds authenticating a request with the resolver,
	// CallTimeout every other call to another service (Deps.Dial);
	// DefaultAuthTimeout and DefaultCallTimeout when zero.
	AuthTimeout, CallTimeout time.Duration
	Log                      *slog.Logger
	// Ready, when not nil, is told the addresses once the service
	// listens, before it serves (tests listen on port 0).
	Ready func(Addrs)
}

// Addrs are where a daemon listens.
type Addrs struct {
	GRPC    net.Addr
	Metrics net.Addr // nil when off
	Health  net.Addr // nil when off
}

// Deps is what Run gives a service's build function: what the service
// shares with every other (the TLS, the tracer, the metrics registry), and
// ways to dial, ship audit events and close things that keep the order of
// the teardown for it.
type Deps struct {
	Log       *slog.Logger
	ClientTLS *tls.Config // the service's certificate, to dial the others
	Tracer    trace.TracerProvider
	Metrics   *prometheus.Registry

	d         Daemon
	ctx       context.Context
	serverTLS *tls.Config
	cleanups  []func() // run last first, once serving has stopped
}

// Defer has f (a Close) run once serving has stopped, before whatever was
// deferred earlier: what is opened first (a store) is closed last, after
// what uses it (the audit shipper). Its error is logged.
func (d *Deps) Defer(f func() error) {
	d.cleanups = append(d.cleanups, func() {
		if err := f(); err != nil {
			d.Log.Warn("close", "err", err.Error())
		}
	})
}

// stop runs the cleanups, last first.
func (d *Deps) stop() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
	d.cleanups = nil
}

// Dial connects to another service at addr (comma-separated addresses are
// balanced) by mutual TLS with the service's certificate, tracing the
// calls; closed once serving has stopped. Dialing is lazy: the other
// service may start later, or be down for a while.
func (d *Deps) Dial(addr string) (*grpc.ClientConn, error) {
	conn, err := Dial(addr, d.ClientTLS, tracing.DialOption(d.Tracer), boundCalls(d.Log, d.d.AuthTimeout, d.d.CallTimeout))
	if err != nil {
		return nil, fmt.Errorf("client of %q: %w", addr, err)
	}
	d.Defer(conn.Close)
	return conn, nil
}

// Instrument traces the calls to s, the service's store, as children of
// the request's span, and measures them
// (oz_store_operation_duration_seconds, by service and kind of store).
// A write refused for want of space answers ResourceExhausted "the
// secret store's disk is full" (kv.OnDiskFull), and the log says where.
func (d *Deps) Instrument(s kv.Store) kv.Store {
	s = kv.OnDiskFull(s, cmp.Or(storeNames[d.d.Name], "the "+d.d.Name), d.Log)
	return kv.Instrument(s, d.Tracer, storemetrics.New(d.Metrics, d.d.Name, d.d.Store.Kind.String()))
}

// storeNames are the services' stores as callers are told of them.
var storeNames = map[string]string{"secretstore": "the secret store", "resolver": "the resolver", "audit": "the audit log"}

// Ship delivers the audit events of source, the service's outbox, to the
// audit service at addr as emitter (the service's certificate name),
// retrying while it is down. onCommit is the outbox's hook for after a
// write that stored events (OnCommit), which wakes the shipper.
//
// It ships from now, before the service's first event (one made while
// building, such as a bootstrap), until serving has stopped; then a last
// Flush delivers what it can within StopTimeout. What is left waits in
// the outbox for the next start. The store must stay open until then:
// open it, and Defer its closing, before calling Ship.
func (d *Deps) Ship(addr, emitter string, source outbox.Source, onCommit func(notify func())) error {
	conn, err := d.Dial(addr)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	sh := outbox.New(outbox.Config{
		Source:     source,
		Client:     internalapiv1.NewAuditIngestServiceClient(conn),
		Emitter:    emitter,
		Logger:     d.Log,
		Registerer: d.Metrics,
	})
	onCommit(sh.Notify)
	// Not cancelled with Run's context: that ends serving, and the
	// shipper must outlive serving.
	ctx, cancel := context.WithCancel(context.WithoutCancel(d.ctx))
	shipped := make(chan struct{})
	go func() {
		defer close(shipped)
		_ = sh.Run(ctx)
	}()
	d.cleanups = append(d.cleanups, func() {
		cancel()
		<-shipped
		fctx, cancel := context.WithTimeout(context.Background(), StopTimeout)
		defer cancel()
		if err := sh.Flush(fctx); err != nil {
			d.Log.Warn("audit: events left in the outbox are delivered after the next start", "err", err.Error())
		}
	})
	return nil
}

// Server makes the service's gRPC server from cfg, filling in what Run
// knows: Name, TLS, Logger, Metrics and TracerProvider.
func (d *Deps) Server(cfg Config) *Server {
	cfg.Name, cfg.TLS, cfg.Logger = d.d.Name, d.serverTLS, d.Log
	cfg.Metrics, cfg.TracerProvider = d.Metrics, d.Tracer
	if cfg.DeniedInterval == 0 {
		cfg.DeniedInterval = cmp.Or(d.d.DeniedInterval, DefaultDeniedInterval)
	}
	return New(cfg)
}

// Run serves the daemon d until ctx is done. It loads the TLS pair, sets
// up tracing and the metrics registry (with the Go runtime's and the
// process's collectors), calls build for the service's server, listens,
// starts the /metrics and health listeners, tells d.Ready, serves, and
// once ctx is done stops gracefully and tears down in reverse order: the
// side listeners, what build deferred (the shipper's last flush, then the
// store and connections), the tracer (exporting the last spans).
func Run(ctx context.Context, d Daemon, build func(context.Context, *Deps) (*Server, error)) error {
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	serverTLS, err := pki.ServerConfig(d.TLS, d.CA)
	if err != nil {
		return fmt.Errorf("server TLS: %w", err)
	}
	clientTLS, err := pki.ClientConfig(d.TLS, d.CA)
	if err != nil {
		return fmt.Errorf("client TLS: %w", err)
	}
	// Before anything opens the store: a start on a store that is not the
	// one this data directory held must not serve, nor write to it.
	var checkBolt func(context.Context, string) error
	if d.StoreCheck > 0 {
		checkBolt = func(ctx context.Context, path string) error { return boltcheck.Check(ctx, path, d.StoreCheck) }
	}
	if err := storeid.Check(ctx, storeid.Config{
		DataDir: d.DataDir, Name: d.Name, Store: d.Store, Namespace: d.Namespace, Init: d.Init,
		CheckBolt: checkBolt, Log: log,
	}); err != nil {
		return err
	}
	tp, stopTracing, err := tracing.Setup(ctx, d.Trace, "oz"+d.Name+"d")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), StopTimeout)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("tracing: spans not exported", "err", err.Error())
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	deps := &Deps{Log: log, ClientTLS: clientTLS, Tracer: tp, Metrics: reg, d: d, ctx: ctx, serverTLS: serverTLS}
	defer deps.stop()

	srv, err := build(ctx, deps)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", d.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	addrs := Addrs{GRPC: lis.Addr()}
	if d.MetricsListen != "" {
		stop, addr, err := serveMetrics(d.MetricsListen, reg, log)
		if err != nil {
			lis.Close()
			return err
		}
		defer stop()
		addrs.Metrics = addr
	}
	if d.HealthListen != "" {
		hlis, err := net.Listen("tcp", d.HealthListen)
		if err != nil {
			lis.Close()
			return fmt.Errorf("health listen: %w", err)
		}
		log.Info("health", "addr", hlis.Addr().String())
		defer srv.ServeHealthOn(hlis)()
		addrs.Health = hlis.Addr()
	}
	if d.Ready != nil {
		d.Ready(addrs)
	}
	if err := srv.Serve(ctx, lis); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// serveMetrics serves reg at http://addr/metrics until stop is called.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), _ net.Addr, _ error) {
	return metricsserve.Serve(addr, reg, log, StopTimeout)
}

// UpgradeStore is a daemon's "upgrade" command: it moves the data in sc
// from the layout of an earlier version into the current one, in the
// etcd namespace ns with upgradeEtcd, or in a bbolt file with upgradeBolt
// (as opening the file would), and says on w what it carried over. Every
// replica must be stopped; a bbolt file's lock says so, etcd cannot.
func UpgradeStore[U comparable](ctx context.Context, sc storeflag.Config, w io.Writer, log *slog.Logger, ns string,
	upgradeEtcd func(context.Context, *clientv3.Client, string) (U, error), upgradeBolt func(string, time.Duration) (U, error),
) error {
	var up U
	if sc.Kind == storeflag.Etcd {
		cfg, err := sc.EtcdClient(log)
		if err != nil {
			return err
		}
		cli, err := clientv3.New(cfg)
		if err != nil {
			return fmt.Errorf("etcd client: %w", err)
		}
		defer cli.Close()
		if up, err = upgradeEtcd(ctx, cli, ns); err != nil {
			return err
		}
	} else {
		var err error
		if up, err = upgradeBolt(sc.Path, 2*time.Second); err != nil {
			return fmt.Errorf("%w (stop the service first)", err)
		}
	}
	var none U
	if up == none {
		fmt.Fprintf(w, "%s: nothing to upgrade (already in the current layout, or empty)\n", sc)
		return nil
	}
	fmt.Fprintf(w, "upgraded %s to the current layout: carried over %v\n", sc, up)
	return nil
}

// StoreFlags are a service's --data-dir, --db and --store flags (package
// storeflag), which its commands that only open the store (ozresolverd
// bootstrap) share with serving.
type StoreFlags struct {
	name, dataDir, db string
	store             *storeflag.Flags
}

// RegisterStoreFlags declares --data-dir (OZ_DATA_DIR), --db
// (OZ_<NAME>_DB) and the --store flags of the service name on s.
func RegisterStoreFlags(s *flagenv.Set, name string) *StoreFlags {
	f := &StoreFlags{name: name}
	s.String(&f.dataDir, "data-dir", "OZ_DATA_DIR", ".oz", "data directory")
	s.String(&f.db, "db", envName(name, "DB"), "",
		fmt.Sprintf("bbolt database file, when there is no --store; default <data-dir>/%s.db", name))
	f.store = storeflag.Register(s)
	return f
}

// Config returns the data directory and the store the flags choose, once
// s is parsed, or a usage error.
func (f *StoreFlags) Config(s *flagenv.Set) (dataDir string, store storeflag.Config, err error) {
	store, err = f.store.Config(f.db, filepath.Join(f.dataDir, f.name+".db"))
	return f.dataDir, store, s.Usage(err)
}

// Flags are the flags every daemon has: its StoreFlags, --listen, the
// TLS files, tracing, --metrics-listen and --health-listen.
type Flags struct {
	set                    *flagenv.Set
	name                   string
	store                  *StoreFlags
	listen                 string
	tlsCert, tlsKey, tlsCA string
	metricsListen          string
	healthListen           string
	trace                  *tracing.Flags
	deniedInterval         time.Duration
	authTimeout            time.Duration
	callTimeout            time.Duration
	init                   bool
	storeCheck             time.Duration
}

// RegisterFlags declares the flags every daemon has on s, for the service
// name. Their variables name the service where its value is its own
// (OZ_RESOLVER_LISTEN, OZ_RESOLVER_TLS_CERT) and not where every
// service takes the same (OZ_DATA_DIR, OZ_TLS_CA, OZ_HEALTH_LISTEN): one
// environment may hold them for all.
func RegisterFlags(s *flagenv.Set, name string) *Flags {
	f := &Flags{set: s, name: name, store: RegisterStoreFlags(s, name)}
	s.String(&f.listen, "listen", envName(name, "LISTEN"), DefaultAddr(name), "address to serve on")
	s.String(&f.tlsCert, "tls-cert", envName(name, "TLS_CERT"), "",
		fmt.Sprintf("certificate (PEM), served and presented to the services dialed; default <data-dir>/pki/%s.pem", name))
	s.String(&f.tlsKey, "tls-key", envName(name, "TLS_KEY"), "",
		fmt.Sprintf("key of --tls-cert (PEM); default <data-dir>/pki/%s-key.pem", name))
	s.String(&f.tlsCA, "tls-ca", "OZ_TLS_CA", "",
		"CA bundle (PEM) that verifies callers and the services dialed; default <data-dir>/pki/ca.pem")
	f.trace = tracing.Register(s)
	s.String(&f.metricsListen, "metrics-listen", envName(name, "METRICS_LISTEN"), "",
		"serve Prometheus metrics over plain HTTP at http://ADDR/metrics; empty: off")
	s.String(&f.healthListen, "health-listen", "OZ_HEALTH_LISTEN", "",
		"also serve grpc.health.v1, and nothing else, in plain text on ADDR "+
			"(for Kubernetes gRPC probes, which cannot present a client certificate); empty: off")
	s.Duration(&f.deniedInterval, "denied-count-interval", "OZ_DENIED_COUNT_INTERVAL", DefaultDeniedInterval,
		"requests refused for want of a valid credential are audited as one request.denied event per "+
			"source address, method and reason per interval, with the count (at least 1s)")
	s.Duration(&f.authTimeout, "auth-timeout", "OZ_AUTH_TIMEOUT", DefaultAuthTimeout,
		"time the resolver has to authenticate a request; then Unavailable naming it")
	s.Duration(&f.callTimeout, "call-timeout", "OZ_CALL_TIMEOUT", DefaultCallTimeout,
		"time another service has to answer any other call; then Unavailable naming it")
	s.Bool(&f.init, "init", "OZ_INIT", false,
		"first start: create a new, empty store where the data directory (or etcd namespace) never held one; "+
			"elsewhere an ordinary start. Without it, no store stops the start; with or without it, a store that <data-dir>/"+
			storeid.ManifestName+" names but is missing, empty, damaged or foreign stops the start")
	s.Duration(&f.storeCheck, "store-check-timeout", "OZ_STORE_CHECK_TIMEOUT", boltcheck.DefaultTimeout,
		"time bbolt's consistency check of the store file has before serving (read-only, in a child process); "+
			"a file that fails it stops the start; 0 skips the check")
	return f
}

// Daemon returns what the flags say, once the set is parsed, with the
// TLS files defaulting to <data-dir>/pki; or a usage error.
func (f *Flags) Daemon() (Daemon, error) {
	dataDir, store, err := f.store.Config(f.set)
	if err != nil {
		return Daemon{}, err
	}
	trace, err := f.trace.Config()
	if err != nil {
		return Daemon{}, f.set.Usage(err)
	}
	if f.deniedInterval < time.Second {
		return Daemon{}, f.set.Usagef("--denied-count-interval: must be at least 1s, got %s", f.deniedInterval)
	}
	for _, t := range []struct {
		flag string
		d    time.Duration
	}{{"auth-timeout", f.authTimeout}, {"call-timeout", f.callTimeout}} {
		if t.d <= 0 {
			return Daemon{}, f.set.Usagef("--%s: must be positive, got %s", t.flag, t.d)
		}
	}
	if f.storeCheck < 0 {
		return Daemon{}, f.set.Usagef("--store-check-timeout: must not be negative (0 skips the check), got %s", f.storeCheck)
	}
	dir := pki.Dir(filepath.Join(dataDir, "pki"))
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	return Daemon{
		Name:           f.name,
		Listen:         f.listen,
		TLS:            pki.Paths{Cert: or(f.tlsCert, dir.For(f.name).Cert), Key: or(f.tlsKey, dir.For(f.name).Key)},
		CA:             or(f.tlsCA, dir.CA()),
		DataDir:        dataDir,
		Store:          store,
		MetricsListen:  f.metricsListen,
		HealthListen:   f.healthListen,
		Trace:          trace,
		DeniedInterval: f.deniedInterval,
		AuthTimeout:    f.authTimeout,
		CallTimeout:    f.callTimeout,
		Init:           f.init,
		StoreCheck:     f.storeCheck,
	}, nil
}

// PeerFlag declares --<peer>-addr (OZ_<PEER>_ADDR) into p: the
// address(es) of the service peer, by default DefaultAddr(peer); why says
// what for.
func PeerFlag(s *flagenv.Set, p *string, peer, why string) {
	s.String(p, peer+"-addr", envName(peer, "ADDR"), DefaultAddr(peer),
		fmt.Sprintf("%s address(es): %s; %s; dialed by mutual TLS with --tls-cert", peer, dial.Rule, why))
}

// envName is the variable OZ_<NAME>_<what>.
func envName(name, what string) string { return "OZ_" + strings.ToUpper(name) + "_" + what }
