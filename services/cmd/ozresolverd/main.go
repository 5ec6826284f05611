// Command ozresolverd is the resolver service: the directory of teams,
// users, memberships and bearer tokens (oz.scope.v1 DirectoryService and
// TokenService), the internal AuthService the other services use to
// authenticate tokens, and run resolution (oz.scope.v1 RunService), which
// reads candidates and seals values through the secretstore's internal
// RunSecretsService, dialed by mutual TLS with the resolver's certificate.
//
//	ozresolverd [flags]                             serve
//	ozresolverd bootstrap --user NAME [--store …]   print a new system-admin token (recovery)
//
// The data lives in a bbolt file (<data-dir>/resolver.db, or --db) or, with
// --store etcd:ENDPOINT[,…], in an etcd cluster under /oz/resolver/, which
// several replicas of ozresolverd share (package storeflag has the flags).
//
// Every change, every run resolution and every refused request is an audit
// event, written into the database's outbox with the change and shipped
// to the audit service (--audit-addr, mutual TLS with the resolver's
// certificate) by a shipper that retries while the audit service is
// down; events wait in the outbox meanwhile, across restarts. Events of
// `ozresolverd bootstrap` are shipped by the next serve. With
// --metrics-listen it also serves Prometheus metrics (the outbox's backlog
// and delivery lag among them) over plain HTTP at /metrics: off by
// default, since the port is unauthenticated.
//
// With --trace-exporter stdout or otlp (--trace-endpoint HOST:PORT,
// --trace-insecure) it traces every call it serves and makes, with a child
// span per store call (package tracing); off by default.
//
// Every flag has an OZ_… environment variable; logs are JSON on stderr and
// never contain a token.
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

	"github.com/ozsecrets/oz/lib/tracing"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/internal/storeflag"
	"github.com/ozsecrets/oz/services/internal/storemetrics"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	"github.com/ozsecrets/oz/services/resolver/grpcapi"
	"github.com/ozsecrets/oz/services/resolver/runs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "resolver")
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, log)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		log.Error("exit", "err", err.Error())
		os.Exit(1)
	}
}

// errUsage is returned for bad flags, which the flag package has reported.
var errUsage = errors.New("usage")

// config is the serve command's configuration.
type config struct {
	listen, dataDir        string
	store                  storeflag.Config
	tlsCert, tlsKey, tlsCA string
	bootstrapFile          string
	secretstoreAddr        string
	auditAddr              string
	metricsListen          string
	healthListen           string
	trace                  tracing.Config
}

// flushTimeout bounds the delivery of the outbox's last events at
// shutdown; what is left is delivered after the next start.
const flushTimeout = 5 * time.Second

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, log *slog.Logger) error {
	if len(args) > 0 && args[0] == "bootstrap" {
		return runBootstrap(ctx, args[1:], getenv, stdout, stderr, log)
	}
	c, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	cert := pki.Paths{Cert: c.tlsCert, Key: c.tlsKey}
	tlsCfg, err := pki.ServerConfig(cert, c.tlsCA)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	clientTLS, err := pki.ClientConfig(cert, c.tlsCA)
	if err != nil {
		return fmt.Errorf("client tls: %w", err)
	}
	tp, stopTracing, err := tracing.Setup(ctx, c.trace, "ozresolverd")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("tracing: spans not exported", "err", err.Error())
		}
	}()
	// Dialing is lazy: the secretstore may start after the resolver.
	secretstore, err := server.Dial(c.secretstoreAddr, clientTLS, tracing.DialOption(tp))
	if err != nil {
		return fmt.Errorf("secretstore client: %w", err)
	}
	defer secretstore.Close()
	auditConn, err := server.Dial(c.auditAddr, clientTLS, tracing.DialOption(tp))
	if err != nil {
		return fmt.Errorf("audit client: %w", err)
	}
	defer auditConn.Close()
	store, err := openStore(ctx, c.store, boltkv.DefaultTimeout, log)
	if err != nil {
		return err
	}
	defer store.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	records := resolver.NewStore(kv.Instrument(store, tp, storemetrics.New(reg, "resolver", c.store.Kind.String())), time.Now)
	dir := directory.New(records)

	// The audit shipper runs from before the first event (a bootstrap)
	// until serving has stopped.
	shipper := outbox.New(outbox.Config{
		Source:     records.Outbox(),
		Client:     internalapiv1.NewAuditIngestServiceClient(auditConn),
		Emitter:    resolver.Emitter,
		Logger:     log,
		Registerer: reg,
	})
	records.Outbox().OnCommit(shipper.Notify)
	shipCtx, stopShipping := context.WithCancel(context.WithoutCancel(ctx))
	shipped := make(chan struct{})
	go func() {
		defer close(shipped)
		_ = shipper.Run(shipCtx)
	}()
	defer func() {
		stopShipping()
		<-shipped
		fctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		defer cancel()
		if err := shipper.Flush(fctx); err != nil {
			log.Warn("audit: events left in the outbox are delivered after the next start", "err", err.Error())
		}
	}()

	if c.bootstrapFile != "" {
		if err := bootstrap(ctx, dir, c.bootstrapFile, log); err != nil {
			return err
		}
	}
	srv := server.New(server.Config{
		// Its own callers are authenticated through the same 5-second
		// cache as the other services' (the documented revocation delay),
		// which spares a store read or two per call — on etcd, quorum
		// reads. The internal AuthService the other services ask answers
		// uncached, so the delay stays 5 seconds everywhere, not 10.
		Name: "resolver", TLS: tlsCfg, Rules: grpcapi.Rules, Auth: auth.NewCache(dir), Logger: log,
		OnDenied: grpcapi.OnDenied(records, log), Metrics: reg, TracerProvider: tp,
	})
	grpcapi.Register(srv, dir)
	grpcapi.RegisterRuns(srv, runs.New(dir, grpcapi.NewSecretStore(secretstore)), grpcapi.RunMetrics(reg))
	lis, err := net.Listen("tcp", c.listen)
	if err != nil {
		return err
	}
	if c.metricsListen != "" {
		stopMetrics, err := serveMetrics(c.metricsListen, reg, log)
		if err != nil {
			lis.Close()
			return err
		}
		defer stopMetrics()
	}
	if c.healthListen != "" {
		stopHealth, err := srv.ServeHealth(c.healthListen, log)
		if err != nil {
			lis.Close()
			return err
		}
		defer stopHealth()
	}
	return srv.Serve(ctx, lis)
}

// serveMetrics serves reg at http://addr/metrics until the returned stop
// is called.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(lis) }()
	log.Info("metrics", "addr", "http://"+lis.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server", "err", err.Error())
		}
	}, nil
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	var c config
	var db string
	fs := flag.NewFlagSet("ozresolverd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", env("OZ_RESOLVER_LISTEN", "127.0.0.1:7451"), "listen address (OZ_RESOLVER_LISTEN)")
	fs.StringVar(&c.dataDir, "data-dir", env("OZ_DATA_DIR", ".oz"), "data directory (OZ_DATA_DIR)")
	fs.StringVar(&db, "db", getenv("OZ_RESOLVER_DB"), "bbolt database file, when there is no --store (OZ_RESOLVER_DB; default <data-dir>/resolver.db)")
	storeFlags := storeflag.Register(fs, getenv)
	traceFlags := tracing.Register(fs, getenv)
	fs.StringVar(&c.tlsCert, "tls-cert", getenv("OZ_RESOLVER_TLS_CERT"), "certificate (OZ_RESOLVER_TLS_CERT; default <data-dir>/pki/resolver.pem)")
	fs.StringVar(&c.tlsKey, "tls-key", getenv("OZ_RESOLVER_TLS_KEY"), "private key (OZ_RESOLVER_TLS_KEY; default <data-dir>/pki/resolver-key.pem)")
	fs.StringVar(&c.tlsCA, "tls-ca", getenv("OZ_TLS_CA"), "CA bundle for client certificates (OZ_TLS_CA; default <data-dir>/pki/ca.pem)")
	fs.StringVar(&c.bootstrapFile, "bootstrap-token-file", getenv("OZ_BOOTSTRAP_TOKEN_FILE"),
		"when no system admin exists, create user \"admin\" as one and write its token to this file, mode 0600 (OZ_BOOTSTRAP_TOKEN_FILE)")
	fs.StringVar(&c.secretstoreAddr, "secretstore-addr", env("OZ_SECRETSTORE_ADDR", "127.0.0.1:7450"),
		"secretstore address(es), for run resolution, dialed by mutual TLS with --tls-cert (OZ_SECRETSTORE_ADDR)")
	fs.StringVar(&c.auditAddr, "audit-addr", env("OZ_AUDIT_ADDR", "127.0.0.1:7452"),
		"audit service address(es), to deliver audit events to, dialed by mutual TLS with --tls-cert (OZ_AUDIT_ADDR)")
	fs.StringVar(&c.metricsListen, "metrics-listen", getenv("OZ_RESOLVER_METRICS_LISTEN"),
		"serve Prometheus metrics over plain HTTP at http://ADDR/metrics; empty: off (OZ_RESOLVER_METRICS_LISTEN)")
	fs.StringVar(&c.healthListen, "health-listen", getenv("OZ_HEALTH_LISTEN"), server.HealthListenUsage)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage:\n  ozresolverd [flags]\n  ozresolverd bootstrap --user NAME [--store …]   (print a new system-admin token)\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return c, err
	}
	pkiDir := pki.Dir(filepath.Join(c.dataDir, "pki"))
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	var err error
	if c.store, err = storeFlags.Config(db, filepath.Join(c.dataDir, "resolver.db")); err != nil {
		fmt.Fprintln(stderr, err)
		return c, errUsage
	}
	if c.trace, err = traceFlags.Config(); err != nil {
		fmt.Fprintln(stderr, err)
		return c, errUsage
	}
	def(&c.tlsCert, pkiDir.For("resolver").Cert)
	def(&c.tlsKey, pkiDir.For("resolver").Key)
	def(&c.tlsCA, pkiDir.CA())
	return c, nil
}

// parse parses args into fs and refuses stray arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}
