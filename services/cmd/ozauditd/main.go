// Command ozauditd is the audit service (DESIGN §6): the append-only,
// hash-chained event log. It serves, over mutual TLS:
//
//   - oz.audit.v1.AuditService (through the gateway, with a bearer token
//     that it authenticates through the resolver's AuthService): ListEvents,
//     VerifyChain, ExportEvents, GetSecretUsage and ReviewSecrets, for team
//     admins and system admins. ReviewSecrets reads the team's secrets from
//     the secretstore (--secretstore-addr) and its agent identities and
//     environments from the resolver (--resolver-addr), over mutual TLS
//     with the caller's own bearer token;
//   - oz.internalapi.v1.AuditIngestService to the secretstore, resolver and
//     gateway certificates: AppendEvents, which their outbox shippers call.
//
// The log is a bbolt file, <data-dir>/audit.db by default (or --db), or,
// with --store etcd:ENDPOINT[,…], lives in an etcd cluster under
// /oz/audit/, which several replicas of ozauditd share: each advances a
// chain's head by compare-and-swap, so none forks it (package storeflag
// has the flags, package audit/kvstore the layout). With
// --metrics-listen it also serves Prometheus metrics over plain HTTP at
// /metrics: off by default, since the port is unauthenticated; bind it to
// loopback or a private network. With --trace-exporter stdout or otlp
// (--trace-endpoint, --trace-insecure) it traces every call it serves and
// makes; off by default.
//
// A bbolt file written by an older build (layout 1) is upgraded in place
// when it is opened; an etcd namespace is refused until `ozauditd upgrade`
// (the same flags) has upgraded it, with every replica stopped.
//
// Every flag has an OZ_… environment variable; the flag wins.
// Exit codes: 0 success, 1 failure, 2 bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/lib/tracing"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/audit/grpcapi"
	"github.com/ozsecrets/oz/services/audit/inventory"
	"github.com/ozsecrets/oz/services/audit/kvstore"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/internal/storeflag"
	"github.com/ozsecrets/oz/services/internal/storemetrics"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "audit")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stderr, log, nil)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "ozauditd:", err)
		os.Exit(2)
	default:
		log.Error("ozauditd failed", "err", err.Error())
		os.Exit(1)
	}
}

// usageError is a mistake in the command line.
type usageError struct{ error }

// config is what the flags say.
type config struct {
	listen          string
	dataDir         string
	db              string            // the bbolt file, when etcd is nil
	etcd            *storeflag.Config // --store etcd:…; nil: the bbolt file db
	tlsCert, tlsKey string
	tlsCA           string
	resolverAddr    string
	secretstoreAddr string
	metricsListen   string
	trace           tracing.Config
	healthListen    string
}

// parse reads flags, with defaults from the environment, and fills in the
// paths that default to the data directory.
func parse(args []string, lookup func(string) (string, bool), stderr io.Writer) (*config, error) {
	env := func(key, def string) string {
		if v, ok := lookup(key); ok && v != "" {
			return v
		}
		return def
	}
	c := &config{}
	fs := flag.NewFlagSet("ozauditd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", env("OZ_AUDIT_LISTEN", "127.0.0.1:7452"), "address to serve on (OZ_AUDIT_LISTEN)")
	fs.StringVar(&c.dataDir, "data-dir", env("OZ_DATA_DIR", ".oz"), "data directory (OZ_DATA_DIR)")
	fs.StringVar(&c.db, "db", env("OZ_AUDIT_DB", ""), "bbolt database file, when there is no --store (OZ_AUDIT_DB; default <data-dir>/audit.db)")
	storeFlags := storeflag.Register(fs, func(key string) string { return env(key, "") })
	fs.StringVar(&c.tlsCert, "tls-cert", env("OZ_AUDIT_TLS_CERT", ""), "certificate (OZ_AUDIT_TLS_CERT; default <data-dir>/pki/audit.pem)")
	fs.StringVar(&c.tlsKey, "tls-key", env("OZ_AUDIT_TLS_KEY", ""), "certificate key (OZ_AUDIT_TLS_KEY; default <data-dir>/pki/audit-key.pem)")
	fs.StringVar(&c.tlsCA, "tls-ca", env("OZ_TLS_CA", ""), "CA bundle (OZ_TLS_CA; default <data-dir>/pki/ca.pem)")
	fs.StringVar(&c.resolverAddr, "resolver-addr", env("OZ_RESOLVER_ADDR", "127.0.0.1:7451"), "resolver address(es), for authenticating tokens and access reviews (OZ_RESOLVER_ADDR)")
	fs.StringVar(&c.secretstoreAddr, "secretstore-addr", env("OZ_SECRETSTORE_ADDR", "127.0.0.1:7450"), "secretstore address(es), for access reviews (OZ_SECRETSTORE_ADDR)")
	traceFlags := tracing.Register(fs, func(key string) string { return env(key, "") })
	fs.StringVar(&c.metricsListen, "metrics-listen", env("OZ_AUDIT_METRICS_LISTEN", ""), "serve Prometheus metrics over plain HTTP at http://ADDR/metrics; empty: off (OZ_AUDIT_METRICS_LISTEN)")
	fs.StringVar(&c.healthListen, "health-listen", env("OZ_HEALTH_LISTEN", ""), server.HealthListenUsage)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage:
  ozauditd [flags]           serve AuditService and, to the other services, AuditIngestService
  ozauditd upgrade [flags]   move the log from the layout of an older build into the current one

A bbolt file of an older build is upgraded when it is opened; an etcd
store is upgraded by "upgrade", with every replica stopped.
Exit codes: 0 success, 1 failure, 2 bad usage.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	var err error
	if c.trace, err = traceFlags.Config(); err != nil {
		return nil, usageError{err}
	}
	dir := pki.Dir(filepath.Join(c.dataDir, "pki"))
	store, err := storeFlags.Config(c.db, filepath.Join(c.dataDir, "audit.db"))
	if err != nil {
		return nil, usageError{err}
	}
	c.db = store.Path
	if store.Kind == storeflag.Etcd {
		c.etcd = &store
	}
	if c.tlsCert == "" {
		c.tlsCert = dir.For("audit").Cert
	}
	if c.tlsKey == "" {
		c.tlsKey = dir.For("audit").Key
	}
	if c.tlsCA == "" {
		c.tlsCA = dir.CA()
	}
	return c, nil
}

// addrs tells the caller where the service listens (tests use port 0).
type addrs struct {
	grpc, metrics net.Addr // metrics is nil when off
}

// run is main without the process. ready, when not nil, is told the
// addresses once the service listens.
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stderr io.Writer, log *slog.Logger, ready func(addrs)) error {
	if len(args) > 0 && args[0] == "upgrade" {
		c, err := parse(args[1:], lookup, stderr)
		if err != nil {
			return err
		}
		return upgradeStore(ctx, c, stderr, log)
	}
	c, err := parse(args, lookup, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, c, log, ready)
}

// openStore opens the log's store where c says: the bbolt file c.db
// (upgraded in place from an older build's layout), or the audit
// service's namespace in the etcd cluster c.etcd; with the options of
// kvstore.New for it.
func openStore(ctx context.Context, c *config, log *slog.Logger) (kv.Store, kvstore.Options, error) {
	if c.etcd == nil {
		log.Info("store", "kind", storeflag.Bolt.String(), "store", "bolt:"+c.db)
		s, up, err := kvstore.OpenBoltKV(c.db, 0)
		if up != (kvstore.Upgrade{}) {
			log.Warn("store upgraded from the layout of an older build", "file", c.db, "carried_over", up.String())
		}
		return s, kvstore.BoltOptions, err
	}
	log.Info("store", "kind", c.etcd.Kind.String(), "store", c.etcd.String())
	cfg, err := c.etcd.EtcdClient(log)
	if err != nil {
		return nil, kvstore.Options{}, err
	}
	s, err := kvstore.OpenEtcdKV(ctx, cfg, kvstore.Namespace)
	return s, kvstore.Options{}, err
}

// upgradeStore moves the log from the layout of an older build into the
// current one: an etcd namespace (kvstore.UpgradeEtcd), or a bbolt file,
// which opening it would upgrade as well.
func upgradeStore(ctx context.Context, c *config, w io.Writer, log *slog.Logger) error {
	where := "bolt:" + c.db
	var up kvstore.Upgrade
	if c.etcd != nil {
		where = c.etcd.String()
		cfg, err := c.etcd.EtcdClient(log)
		if err != nil {
			return err
		}
		cli, err := clientv3.New(cfg)
		if err != nil {
			return fmt.Errorf("etcd client: %w", err)
		}
		defer cli.Close()
		if up, err = kvstore.UpgradeEtcd(ctx, cli, kvstore.Namespace); err != nil {
			return err
		}
	} else {
		var err error
		if up, err = kvstore.UpgradeBolt(c.db, 2*time.Second); err != nil {
			return fmt.Errorf("%w (stop the service first)", err)
		}
	}
	if up == (kvstore.Upgrade{}) {
		fmt.Fprintf(w, "%s: nothing to upgrade (already in the current layout, or empty)\n", where)
		return nil
	}
	fmt.Fprintf(w, "upgraded %s to the current layout: carried over %v\n", where, up)
	return nil
}

func serve(ctx context.Context, c *config, log *slog.Logger, ready func(addrs)) error {
	kvs, opts, err := openStore(ctx, c, log)
	if err != nil {
		return err
	}
	defer kvs.Close()

	cert := pki.Paths{Cert: c.tlsCert, Key: c.tlsKey}
	serverTLS, err := pki.ServerConfig(cert, c.tlsCA)
	if err != nil {
		return fmt.Errorf("server TLS: %w", err)
	}
	clientTLS, err := pki.ClientConfig(cert, c.tlsCA)
	if err != nil {
		return fmt.Errorf("client TLS: %w", err)
	}
	tp, stopTracing, err := tracing.Setup(ctx, c.trace, "ozauditd")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("tracing: spans not exported", "err", err.Error())
		}
	}()
	resolver, err := server.Dial(c.resolverAddr, clientTLS, tracing.DialOption(tp))
	if err != nil {
		return fmt.Errorf("resolver client: %w", err)
	}
	defer resolver.Close()
	// Dialing is lazy: the secretstore may start after the audit service.
	secretstore, err := server.Dial(c.secretstoreAddr, clientTLS, tracing.DialOption(tp))
	if err != nil {
		return fmt.Errorf("secretstore client: %w", err)
	}
	defer secretstore.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	kind := storeflag.Bolt
	if c.etcd != nil {
		kind = c.etcd.Kind
	}
	store, err := kvstore.New(ctx, kv.Instrument(kvs, tp, storemetrics.New(reg, "audit", kind.String())), opts)
	if err != nil {
		return err
	}
	svc := audit.NewService(audit.Config{
		Store: store, Logger: log, Registerer: reg,
		Inventory: inventory.New(secretstore, resolver),
	})
	srv := server.New(server.Config{
		Name:           "audit",
		TLS:            serverTLS,
		Rules:          grpcapi.Rules,
		Auth:           auth.NewCache(auth.NewRemote(resolver)),
		Logger:         log,
		Metrics:        reg,
		TracerProvider: tp,
	})
	grpcapi.Register(srv, svc)

	lis, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var a addrs
	a.grpc = lis.Addr()
	var metrics *http.Server
	metricsDone := make(chan error, 1)
	if c.metricsListen != "" {
		mlis, err := net.Listen("tcp", c.metricsListen)
		if err != nil {
			lis.Close()
			return fmt.Errorf("metrics listen: %w", err)
		}
		a.metrics = mlis.Addr()
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { metricsDone <- metrics.Serve(mlis) }()
		log.Info("metrics", "addr", "http://"+mlis.Addr().String()+"/metrics")
	}
	if c.healthListen != "" {
		stopHealth, err := srv.ServeHealth(c.healthListen, log)
		if err != nil {
			lis.Close()
			return err
		}
		defer stopHealth()
	}
	if ready != nil {
		ready(a)
	}
	log.Info("audit starting", "resolver", c.resolverAddr, "secretstore", c.secretstoreAddr)
	serveErr := srv.Serve(ctx, lis)
	if metrics != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = metrics.Shutdown(sctx)
		cancel()
		if err := <-metricsDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server", "err", err.Error())
		}
	}
	if serveErr != nil {
		return serveErr
	}
	log.Info("audit stopped")
	return nil
}
