// Command ozsecretstored is the secret store (DESIGN §4): it serves
// oz.secrets.v1.SecretService over mutual TLS, authenticating callers'
// bearer tokens through the resolver, and keeps secrets in a bbolt file
// (or an etcd cluster, --store etcd:…), every value sealed under the
// key-encryption keyring. It also serves the
// internal oz.internalapi.v1.RunSecretsService, to the resolver's
// certificate only: a run's selected values, sealed to the runner's key
// (DESIGN §5).
//
// It publishes its sealing keys (oz.secrets.v1.SealingKeyService), HPKE
// key pairs that clients seal values to before sending them; they are made
// at first start and kept in the same store, their private keys
// wrapped by the keyring. After a rotation (oz admin sealing-key rotate)
// the previous keys keep opening values for --sealing-key-grace (default
// 24h). --require-sealed refuses values that arrive unsealed.
//
// Every change (secrets, sealing keys) and every refused request is an
// audit event, written into the database's outbox in the same transaction
// as the change and shipped to the audit service (--audit-addr, mutual TLS
// with the secretstore's certificate) by a shipper that retries while the
// audit service is down; events wait in the outbox meanwhile, across
// restarts. Personal secrets' events go to the system chain, never to a
// team's. The keyring commands need no audit service: the events of
// `keyring rewrap` wait in the outbox for the next serve. With
// --metrics-listen it also serves Prometheus metrics (the outbox's backlog
// and delivery lag among them) over plain HTTP at /metrics: off by
// default, since the port is unauthenticated. With --trace-exporter stdout
// or otlp (--trace-endpoint, --trace-insecure) it traces every call it
// serves and makes, with a child span per store call; off by default.
//
//	ozsecretstored [flags]                 serve
//	ozsecretstored keyring generate [flags] write a new keyring to --kek-file
//	ozsecretstored keyring rotate [flags]   add a new primary key to the keyring file
//	ozsecretstored keyring rewrap [flags]   wrap every stored data key with the primary key
//	ozsecretstored upgrade [flags]          move the store's data from the layout of an earlier version
//
// The keyring commands work on the files; run rotate and rewrap with the
// service stopped (rewrap needs the database, which the service locks).
//
// The store is a kv.Store (package kvstore has its layout): a bbolt file
// written by an earlier version is upgraded in place when it is opened; an
// etcd namespace is refused until `ozsecretstored upgrade` has upgraded
// it, with every replica stopped.
//
// Every flag has an OZ_… environment variable; the flag wins.
//
// Exit codes: 0 success, 1 failure, 2 bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/lib/tracing"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/internal/storeflag"
	"github.com/ozsecrets/oz/services/internal/storemetrics"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/grpcapi"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/kvstore"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "secretstore")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr, log, nil)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "ozsecretstored:", err)
		os.Exit(2)
	default:
		log.Error("ozsecretstored failed", "err", err.Error())
		os.Exit(1)
	}
}

// usageError is a mistake in the command line.
type usageError struct{ error }

// config is what the flags say.
type config struct {
	listen              string
	db                  string        // the bbolt file; "" with an etcd store
	etcdStore           string        // --store etcd:…: the endpoints, comma-separated; "" for bbolt
	etcdTLS             storeflag.TLS // --store-tls-*, with etcdStore
	dataDir             string
	tlsCert, tlsKey     string
	tlsCA               string
	resolverAddr        string
	kekFile             string
	dev                 bool
	maxValueBytes       int
	maxDescriptionChars int
	sealingKeyGrace     time.Duration
	requireSealed       bool
	auditAddr           string
	metricsListen       string
	trace               tracing.Config
	healthListen        string

	keyringJSON string // OZ_KEYRING: the keyring itself, when no file is given
}

// parse reads flags, with defaults from the environment, and fills in the
// paths that default to the data directory.
func parse(name string, args []string, lookup func(string) (string, bool), stderr io.Writer) (*config, error) {
	env := func(key, def string) string {
		if v, ok := lookup(key); ok && v != "" {
			return v
		}
		return def
	}
	var envErrs []error
	envInt := func(key string, def int) int {
		v := env(key, "")
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			envErrs = append(envErrs, fmt.Errorf("%s=%q: not a number", key, v))
		}
		return n
	}
	envDuration := func(key string, def time.Duration) time.Duration {
		v := env(key, "")
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			envErrs = append(envErrs, fmt.Errorf("%s=%q: not a duration (e.g. 24h, 90m)", key, v))
		}
		return d
	}
	envBool := func(key string) bool {
		v := env(key, "")
		if v == "" {
			return false
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			envErrs = append(envErrs, fmt.Errorf("%s=%q: not a boolean", key, v))
		}
		return b
	}

	c := &config{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", env("OZ_SECRETSTORE_LISTEN", "127.0.0.1:7450"), "address to serve on (OZ_SECRETSTORE_LISTEN)")
	fs.StringVar(&c.dataDir, "data-dir", env("OZ_DATA_DIR", ".oz"), "data directory (OZ_DATA_DIR)")
	fs.StringVar(&c.db, "db", env("OZ_SECRETSTORE_DB", ""), "bbolt database file, when there is no --store (OZ_SECRETSTORE_DB; default <data-dir>/secretstore.db)")
	storeFlags := storeflag.Register(fs, func(key string) string { return env(key, "") })
	fs.StringVar(&c.tlsCert, "tls-cert", env("OZ_SECRETSTORE_TLS_CERT", ""), "certificate (OZ_SECRETSTORE_TLS_CERT; default <data-dir>/pki/secretstore.pem)")
	fs.StringVar(&c.tlsKey, "tls-key", env("OZ_SECRETSTORE_TLS_KEY", ""), "certificate key (OZ_SECRETSTORE_TLS_KEY; default <data-dir>/pki/secretstore-key.pem)")
	fs.StringVar(&c.tlsCA, "tls-ca", env("OZ_TLS_CA", ""), "CA bundle (OZ_TLS_CA; default <data-dir>/pki/ca.pem)")
	fs.StringVar(&c.resolverAddr, "resolver-addr", env("OZ_RESOLVER_ADDR", "127.0.0.1:7451"), "resolver address(es), for authenticating tokens (OZ_RESOLVER_ADDR)")
	fs.StringVar(&c.kekFile, "kek-file", env("OZ_KEK_FILE", ""), `key-encryption keyring file, {"primary":"k1","keys":{"k1":"<base64 of 32 bytes>"}} (OZ_KEK_FILE; else the keyring itself in OZ_KEYRING)`)
	fs.BoolVar(&c.dev, "dev", envBool("OZ_DEV"), "development mode: generate the keyring into <data-dir>/keyring.json (mode 0600) when there is none (OZ_DEV)")
	fs.IntVar(&c.maxValueBytes, "max-value-bytes", envInt("OZ_SECRETSTORE_MAX_VALUE_BYTES", secretstore.DefaultMaxValueBytes), "largest value accepted, in bytes (OZ_SECRETSTORE_MAX_VALUE_BYTES)")
	fs.IntVar(&c.maxDescriptionChars, "max-description-chars", envInt("OZ_SECRETSTORE_MAX_DESCRIPTION_CHARS", secretstore.DefaultMaxDescriptionChars), "longest description accepted, in characters (OZ_SECRETSTORE_MAX_DESCRIPTION_CHARS)")
	fs.DurationVar(&c.sealingKeyGrace, "sealing-key-grace", envDuration("OZ_SEALING_KEY_GRACE", sealing.DefaultGrace), "how long sealing keys replaced by a rotation still open values sealed to them; then they are dropped (OZ_SEALING_KEY_GRACE)")
	fs.BoolVar(&c.requireSealed, "require-sealed", envBool("OZ_REQUIRE_SEALED"), "refuse values sent unsealed: clients must seal them to a sealing key (the CLI always does; curl users run `oz secret seal`) (OZ_REQUIRE_SEALED)")
	fs.StringVar(&c.auditAddr, "audit-addr", env("OZ_AUDIT_ADDR", "127.0.0.1:7452"),
		"audit service address(es), to deliver audit events to, dialed by mutual TLS with --tls-cert (OZ_AUDIT_ADDR)")
	traceFlags := tracing.Register(fs, func(key string) string { return env(key, "") })
	fs.StringVar(&c.metricsListen, "metrics-listen", env("OZ_SECRETSTORE_METRICS_LISTEN", ""),
		"serve Prometheus metrics over plain HTTP at http://ADDR/metrics; empty: off (OZ_SECRETSTORE_METRICS_LISTEN)")
	fs.StringVar(&c.healthListen, "health-listen", env("OZ_HEALTH_LISTEN", ""), server.HealthListenUsage)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage:
  ozsecretstored [flags]                  serve SecretService (and RunSecretsService to the resolver)
  ozsecretstored keyring generate [flags] write a new keyring to --kek-file (refuses to overwrite)
  ozsecretstored keyring rotate [flags]   add a new primary key to the keyring file
  ozsecretstored keyring rewrap [flags]   wrap every stored data key with the primary key
  ozsecretstored upgrade [flags]          move the store's data from the layout of an earlier version

Rotate and rewrap work on the files: stop the service first, then rotate,
rewrap, and start it again. Audit events of a rewrap are delivered by the
next start. A bbolt file of an earlier version is upgraded when it is
opened; an etcd store is upgraded by "upgrade", with every replica stopped.
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
	if err := errors.Join(envErrs...); err != nil {
		return nil, usageError{err}
	}
	var err error
	if c.trace, err = traceFlags.Config(); err != nil {
		return nil, usageError{err}
	}
	if c.maxValueBytes <= 0 || c.maxDescriptionChars <= 0 {
		return nil, usageError{errors.New("--max-value-bytes and --max-description-chars must be positive")}
	}
	if c.sealingKeyGrace < 0 {
		return nil, usageError{errors.New("--sealing-key-grace must not be negative")}
	}
	c.keyringJSON = env("OZ_KEYRING", "")
	dir := pki.Dir(filepath.Join(c.dataDir, "pki"))
	sc, err := storeFlags.Config(c.db, filepath.Join(c.dataDir, "secretstore.db"))
	if err != nil {
		return nil, usageError{err}
	}
	c.db = sc.Path
	if sc.Kind == storeflag.Etcd {
		c.etcdStore, c.etcdTLS = strings.Join(sc.Endpoints, ","), sc.TLS
	}
	if c.tlsCert == "" {
		c.tlsCert = dir.For("secretstore").Cert
	}
	if c.tlsKey == "" {
		c.tlsKey = dir.For("secretstore").Key
	}
	if c.tlsCA == "" {
		c.tlsCA = dir.CA()
	}
	return c, nil
}

// storeConfig is the store the flags chose: --store, or --db.
func (c *config) storeConfig() storeflag.Config {
	if c.etcdStore == "" {
		return storeflag.Config{Kind: storeflag.Bolt, Path: c.db}
	}
	return storeflag.Config{Kind: storeflag.Etcd, Endpoints: strings.Split(c.etcdStore, ","), TLS: c.etcdTLS}
}

func (c *config) devKeyringPath() string { return filepath.Join(c.dataDir, "keyring.json") }

// run is main without the process: it serves, or runs a keyring command.
// ready, when not nil, is told the address the server listens on.
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer, log *slog.Logger, ready func(net.Addr)) error {
	if len(args) > 0 && args[0] == "keyring" {
		if len(args) < 2 {
			return usageError{errors.New("keyring: want a command: generate, rotate or rewrap")}
		}
		c, err := parse("ozsecretstored keyring "+args[1], args[2:], lookup, stderr)
		if err != nil {
			return err
		}
		switch args[1] {
		case "generate":
			return keyringGenerate(c, stdout)
		case "rotate":
			return keyringRotate(c, stdout)
		case "rewrap":
			return keyringRewrap(ctx, c, stdout, log)
		}
		return usageError{fmt.Errorf("keyring: unknown command %q (want generate, rotate or rewrap)", args[1])}
	}
	if len(args) > 0 && args[0] == "upgrade" {
		c, err := parse("ozsecretstored upgrade", args[1:], lookup, stderr)
		if err != nil {
			return err
		}
		return upgradeStore(ctx, c, stdout, log)
	}
	c, err := parse("ozsecretstored", args, lookup, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, c, log, ready)
}

// loadKeyring finds the keyring: --kek-file, else OZ_KEYRING, else (with
// --dev) <data-dir>/keyring.json, generated when missing.
func loadKeyring(c *config, log *slog.Logger) (*keyring.Keyring, error) {
	var (
		kr      *keyring.Keyring
		source  string
		created bool
		err     error
	)
	switch {
	case c.kekFile != "" && c.dev:
		source = c.kekFile
		kr, created, err = keyring.LoadOrCreate(c.kekFile)
	case c.kekFile != "":
		source = c.kekFile
		kr, err = keyring.Load(c.kekFile)
	case c.keyringJSON != "":
		source = "OZ_KEYRING"
		kr, err = keyring.Parse([]byte(c.keyringJSON))
	case c.dev:
		source = c.devKeyringPath()
		if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		kr, created, err = keyring.LoadOrCreate(source)
	default:
		return nil, errors.New("no key-encryption keyring: pass --kek-file (OZ_KEK_FILE) or put the keyring in OZ_KEYRING; --dev generates one into the data directory")
	}
	if err != nil {
		return nil, fmt.Errorf("keyring from %s: %w", source, err)
	}
	if source != "OZ_KEYRING" {
		if fi, err := os.Stat(source); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("the keyring file is readable by others; it should have mode 0600", "file", source, "mode", fi.Mode().Perm().String())
		}
	}
	log.Info("keyring loaded", "source", source, "generated", created, "primary", kr.Primary(), "keys", strings.Join(kr.IDs(), ","))
	return kr, nil
}

func serve(ctx context.Context, c *config, log *slog.Logger, ready func(net.Addr)) error {
	kr, err := loadKeyring(c, log)
	if err != nil {
		return err
	}
	if c.maxValueBytes > 128<<10 {
		log.Warn("--max-value-bytes is above 128 KiB: larger values do not fit in one environment variable on Linux", "max_value_bytes", c.maxValueBytes)
	}
	storeKV, err := openKV(ctx, c.storeConfig(), 0, log)
	if err != nil {
		return err
	}
	defer storeKV.Close()

	cert := pki.Paths{Cert: c.tlsCert, Key: c.tlsKey}
	serverTLS, err := pki.ServerConfig(cert, c.tlsCA)
	if err != nil {
		return fmt.Errorf("server TLS: %w", err)
	}
	clientTLS, err := pki.ClientConfig(cert, c.tlsCA)
	if err != nil {
		return fmt.Errorf("client TLS: %w", err)
	}
	tp, stopTracing, err := tracing.Setup(ctx, c.trace, "ozsecretstored")
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
	resolver, err := server.Dial(c.resolverAddr, clientTLS, tracing.DialOption(tp))
	if err != nil {
		return fmt.Errorf("resolver client: %w", err)
	}
	defer resolver.Close()
	// Dialing is lazy: the audit service may start later, or be down.
	auditConn, err := server.Dial(c.auditAddr, clientTLS, tracing.DialOption(tp))
	if err != nil {
		return fmt.Errorf("audit client: %w", err)
	}
	defer auditConn.Close()

	// The audit shipper runs from before the first event (sealing keys
	// made at first start) until serving has stopped; the store closes
	// after it (defers run last first).
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	store, err := kvstore.Open(ctx, kv.Instrument(storeKV, tp, storemetrics.New(reg, "secretstore", c.storeConfig().Kind.String())))
	if err != nil {
		return fmt.Errorf("%s: %w", c.storeConfig(), err)
	}
	shipper := outbox.New(outbox.Config{
		Source:     store.Outbox(),
		Client:     internalapiv1.NewAuditIngestServiceClient(auditConn),
		Emitter:    secretstore.Emitter,
		Logger:     log,
		Registerer: reg,
	})
	store.OnCommit(shipper.Notify)
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

	sealer := sealing.NewService(sealing.Config{Store: store, Keyring: kr, Grace: c.sealingKeyGrace, Logger: log})
	keys, err := sealer.Init(ctx)
	if err != nil {
		return err
	}
	svc := secretstore.NewService(secretstore.Config{
		Store:         store,
		Keyring:       kr,
		Limits:        secretstore.Limits{MaxValueBytes: c.maxValueBytes, MaxDescriptionChars: c.maxDescriptionChars},
		Logger:        log,
		Sealing:       sealer,
		RequireSealed: c.requireSealed,
	})
	rules := auth.Rules{}
	maps.Copy(rules, grpcapi.Rules)
	maps.Copy(rules, grpcapi.RunSecretsRules)
	srv := server.New(server.Config{
		Name:           "secretstore",
		TLS:            serverTLS,
		Rules:          rules,
		Auth:           auth.NewCache(auth.NewRemote(resolver)),
		Logger:         log,
		OnDenied:       grpcapi.OnDenied(svc, log),
		Metrics:        reg,
		TracerProvider: tp,
	})
	grpcapi.Register(srv, svc)
	grpcapi.RegisterSealingKeys(srv, sealer)
	grpcapi.RegisterRunSecrets(srv, svc)

	lis, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
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
	if ready != nil {
		ready(lis.Addr())
	}
	var current []string
	for _, k := range keys {
		if k.Current() {
			current = append(current, k.ID)
		}
	}
	log.Info("secretstore starting", "db", c.db, "resolver", c.resolverAddr, "audit", c.auditAddr,
		"max_value_bytes", c.maxValueBytes, "max_description_chars", c.maxDescriptionChars,
		"sealing_keys", current, "sealing_key_grace", c.sealingKeyGrace.String(), "require_sealed", c.requireSealed)
	if err := srv.Serve(ctx, lis); err != nil {
		return err
	}
	log.Info("secretstore stopped")
	return nil
}

// openKV opens the kv.Store sc chooses, waiting at most boltTimeout (0:
// the default) for a bbolt file's lock: a bbolt file (its directory made if
// missing), upgraded in place from the layout of an earlier version, or
// the secretstore's namespace in etcd, which several replicas of the
// service share (refused while in the layout of an earlier version).
func openKV(ctx context.Context, sc storeflag.Config, boltTimeout time.Duration, log *slog.Logger) (kv.Store, error) {
	log.Info("store", "kind", sc.Kind.String(), "store", sc.String())
	if sc.Kind == storeflag.Etcd {
		cfg, err := sc.EtcdClient(log)
		if err != nil {
			return nil, err
		}
		return kvstore.OpenEtcdKV(ctx, cfg, kvstore.Namespace)
	}
	s, up, err := kvstore.OpenBoltKV(sc.Path, boltTimeout)
	if err != nil {
		return nil, err
	}
	if up != (kvstore.Upgrade{}) {
		log.Warn("store upgraded from the layout of an earlier version", "file", sc.Path,
			"secrets", up.Secrets, "sealing_keys", up.SealingKeys, "audit_events", up.Events)
	}
	return s, nil
}

// flushTimeout bounds the delivery of the outbox's last events at
// shutdown; what is left is delivered after the next start.
const flushTimeout = 5 * time.Second

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

// keyringFile is the file the keyring commands change.
func (c *config) keyringFile() (string, error) {
	switch {
	case c.kekFile != "":
		return c.kekFile, nil
	case c.dev:
		return c.devKeyringPath(), nil
	case c.keyringJSON != "":
		return "", usageError{errors.New("the keyring is in OZ_KEYRING: these commands change a keyring file; pass --kek-file")}
	}
	return "", usageError{errors.New("pass --kek-file (OZ_KEK_FILE), or --dev for <data-dir>/keyring.json")}
}

func keyringGenerate(c *config, stdout io.Writer) error {
	if c.kekFile == "" {
		return usageError{errors.New("keyring generate: pass --kek-file, the file to create")}
	}
	if _, err := os.Stat(c.kekFile); err == nil {
		return fmt.Errorf("keyring generate: %s exists; not overwriting a keyring", c.kekFile)
	}
	kr, created, err := keyring.LoadOrCreate(c.kekFile)
	if err != nil {
		return err
	}
	if !created {
		return fmt.Errorf("keyring generate: %s appeared meanwhile; not overwriting it", c.kekFile)
	}
	fmt.Fprintf(stdout, "wrote a new keyring to %s (mode 0600), primary key %s\n", c.kekFile, kr.Primary())
	return nil
}

func keyringRotate(c *config, stdout io.Writer) error {
	path, err := c.keyringFile()
	if err != nil {
		return err
	}
	kr, err := keyring.Load(path)
	if err != nil {
		return err
	}
	id, err := kr.Rotate()
	if err != nil {
		return err
	}
	if err := kr.Save(path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rotated %s: new data keys are wrapped by %s (keys %s).\n"+
		"Next: `ozsecretstored keyring rewrap` (service stopped) moves stored data keys to %s.\n",
		path, id, strings.Join(kr.IDs(), ","), id)
	return nil
}

func keyringRewrap(ctx context.Context, c *config, stdout io.Writer, log *slog.Logger) error {
	kr, err := loadKeyring(c, log)
	if err != nil {
		return err
	}
	if c.etcdStore == "" {
		if _, err := os.Stat(c.db); err != nil {
			return fmt.Errorf("rewrap: database: %w", err)
		}
	}
	raw, err := openKV(ctx, c.storeConfig(), 2*time.Second, log)
	if err != nil && c.etcdStore == "" {
		return fmt.Errorf("rewrap (stop the service first): %w", err)
	}
	if err != nil {
		return fmt.Errorf("rewrap: %w", err)
	}
	store, err := kvstore.Open(ctx, raw)
	if err != nil {
		raw.Close()
		return fmt.Errorf("rewrap: %w", err)
	}
	defer store.Close()
	svc := secretstore.NewService(secretstore.Config{Store: store, Keyring: kr, Logger: log})
	res, err := svc.Rewrap(ctx)
	if err != nil {
		return err
	}
	sealer := sealing.NewService(sealing.Config{Store: store, Keyring: kr, Grace: c.sealingKeyGrace, Logger: log})
	nSealing, err := sealer.Rewrap(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rewrapped %d of %d data keys and %d sealing keys to %s; value ciphertexts unchanged\n",
		res.Rewrapped, res.Scanned, nSealing, kr.Primary())
	if c, ok := store.Outbox().(outbox.Counter); ok {
		if n, err := c.Backlog(ctx); err == nil && n > 0 {
			fmt.Fprintf(stdout, "%d audit events wait in the outbox; the next start delivers them\n", n)
		}
	}
	return nil
}

// upgradeStore moves the store's data from the layout of an earlier
// version into the current one: an etcd namespace (kvstore.UpgradeEtcd),
// or a bbolt file, which opening it would upgrade as well.
func upgradeStore(ctx context.Context, c *config, stdout io.Writer, log *slog.Logger) error {
	sc := c.storeConfig()
	var up kvstore.Upgrade
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
		if up, err = kvstore.UpgradeEtcd(ctx, cli, kvstore.Namespace); err != nil {
			return err
		}
	} else {
		var err error
		if up, err = kvstore.UpgradeBolt(sc.Path, 2*time.Second); err != nil {
			return fmt.Errorf("%w (stop the service first)", err)
		}
	}
	if up == (kvstore.Upgrade{}) {
		fmt.Fprintf(stdout, "%s: nothing to upgrade (already in the current layout, or empty)\n", sc)
		return nil
	}
	fmt.Fprintf(stdout, "upgraded %s to the current layout: carried over %v\n", sc, up)
	return nil
}
