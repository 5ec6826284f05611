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
// default, since the port is unauthenticated. With the standard
// OpenTelemetry variables (OTEL_TRACES_EXPORTER=otlp or console,
// OTEL_EXPORTER_OTLP_*; package tracing) it traces every call it serves
// and makes, with a child span per store call; off by default.
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
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ozsecrets/oz/lib/flagenv"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltcheck"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/internal/storeflag"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/grpcapi"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/kvstore"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
)

func main() {
	boltcheck.ServeChild() // when this process is the check of a store file
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "secretstore")
	flagenv.Main("ozsecretstored", log, func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, log, nil)
	})
}

// help is what --help says before the flags, for every command: they
// share the flags.
var help = flagenv.Help{
	Usage: []string{
		"ozsecretstored [flags]                  serve SecretService (and RunSecretsService to the resolver)",
		"ozsecretstored keyring generate [flags] write a new keyring to --kek-file (refuses to overwrite)",
		"ozsecretstored keyring rotate [flags]   add a new primary key to the keyring file",
		"ozsecretstored keyring rewrap [flags]   wrap every stored data key with the primary key",
		"ozsecretstored upgrade [flags]          move the store's data from the layout of an earlier version",
	},
	About: `Serves the secrets over mutual TLS, every value sealed under the
key-encryption keyring (--kek-file, or OZ_KEYRING); the data lives in a bbolt
file or in etcd (--store).

Rotate and rewrap work on the files: stop the service first, then rotate,
rewrap, and start it again. Audit events of a rewrap are delivered by the
next start. A bbolt file of an earlier version is upgraded when it is
opened; an etcd store is upgraded by "upgrade", with every replica stopped.`,
}

// config is what the flags say.
type config struct {
	daemon              server.Daemon
	resolverAddr        string
	auditAddr           string
	kekFile             string
	dev                 bool
	maxValueBytes       int
	maxDescriptionChars int
	sealingKeyGrace     time.Duration
	requireSealed       bool

	keyringJSON string // OZ_KEYRING: the keyring itself, when no file is given
	newKeyring  string // the file of a keyring --dev generated, not yet written
}

// parse reads the flags of the command name, with defaults from the
// environment.
func parse(name string, args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	set := flagenv.New(name, help, getenv, stderr)
	daemon := server.RegisterFlags(set, "secretstore")
	server.PeerFlag(set, &c.resolverAddr, "resolver", "for authenticating tokens")
	server.PeerFlag(set, &c.auditAddr, "audit", "to deliver audit events to")
	set.String(&c.kekFile, "kek-file", "OZ_KEK_FILE", "",
		`key-encryption keyring file, {"primary":"k1","keys":{"k1":"<base64 of 32 bytes>"}}; else the keyring itself in OZ_KEYRING`)
	set.Bool(&c.dev, "dev", "OZ_DEV", false,
		"development mode: generate the keyring into <data-dir>/keyring.json (mode 0600) when there is none")
	set.Int(&c.maxValueBytes, "max-value-bytes", "OZ_SECRETSTORE_MAX_VALUE_BYTES", secretstore.DefaultMaxValueBytes,
		"largest value accepted, in bytes")
	set.Int(&c.maxDescriptionChars, "max-description-chars", "OZ_SECRETSTORE_MAX_DESCRIPTION_CHARS", secretstore.DefaultMaxDescriptionChars,
		"longest description accepted, in characters")
	set.Duration(&c.sealingKeyGrace, "sealing-key-grace", "OZ_SEALING_KEY_GRACE", sealing.DefaultGrace,
		"how long sealing keys replaced by a rotation still open values sealed to them; then they are dropped")
	set.Bool(&c.requireSealed, "require-sealed", "OZ_REQUIRE_SEALED", false,
		`refuse values sent unsealed: clients must seal them to a sealing key (the CLI always does; curl users run "oz secret seal")`)
	if err := set.Parse(args); err != nil {
		return nil, err
	}
	if c.maxValueBytes <= 0 || c.maxDescriptionChars <= 0 {
		return nil, set.Usagef("--max-value-bytes and --max-description-chars must be positive")
	}
	if c.sealingKeyGrace < 0 {
		return nil, set.Usagef("--sealing-key-grace must not be negative")
	}
	c.keyringJSON = set.Getenv("OZ_KEYRING")
	var err error
	c.daemon, err = daemon.Daemon()
	c.daemon.Namespace = kvstore.Namespace
	return c, err
}

func (c *config) devKeyringPath() string { return filepath.Join(c.daemon.DataDir, "keyring.json") }

// run is main without the process: it serves, or runs a keyring command.
// ready, when not nil, is told the addresses the server listens on.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, log *slog.Logger, ready func(server.Addrs)) error {
	if len(args) > 0 && args[0] == "keyring" {
		if len(args) < 2 {
			return flagenv.Usagef("keyring: want a command: generate, rotate or rewrap")
		}
		c, err := parse("ozsecretstored keyring "+args[1], args[2:], getenv, stderr)
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
		return flagenv.Usagef("keyring: unknown command %q (want generate, rotate or rewrap)", args[1])
	}
	if len(args) > 0 && args[0] == "upgrade" {
		c, err := parse("ozsecretstored upgrade", args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		return server.UpgradeStore(ctx, c.daemon.Store, stdout, log, kvstore.Namespace, kvstore.UpgradeEtcd, kvstore.UpgradeBolt)
	}
	c, err := parse("ozsecretstored", args, getenv, stderr)
	if err != nil {
		return err
	}
	kr, err := loadKeyring(c, log)
	if err != nil {
		return err
	}
	if c.maxValueBytes > 128<<10 {
		log.Warn("--max-value-bytes is above 128 KiB: larger values do not fit in one environment variable on Linux", "max_value_bytes", c.maxValueBytes)
	}
	c.daemon.Log, c.daemon.Ready = log, ready
	return server.Run(ctx, c.daemon, func(ctx context.Context, d *server.Deps) (*server.Server, error) {
		resolver, err := d.Dial(c.resolverAddr)
		if err != nil {
			return nil, err
		}
		raw, err := openKV(ctx, c.daemon.Store, 0, log)
		if err != nil {
			return nil, err
		}
		d.Defer(raw.Close)
		if err := saveNewKeyring(ctx, c, raw, kr); err != nil {
			return nil, err
		}
		store, err := kvstore.Open(ctx, d.Instrument(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.daemon.Store, err)
		}
		// Shipping starts before the first event: the sealing keys made
		// at first start.
		if err := d.Ship(c.auditAddr, secretstore.Emitter, store.Outbox(), store.OnCommit); err != nil {
			return nil, err
		}
		sealer := sealing.NewService(sealing.Config{Store: store, Keyring: kr, Grace: c.sealingKeyGrace, Logger: log})
		keys, err := sealer.Init(ctx)
		if err != nil {
			return nil, err
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
		// Tokens are authenticated by the resolver, cached 5 seconds, and
		// dropped from the cache as soon as the resolver says they were
		// revoked (until serving stops).
		authn := auth.NewCache(auth.NewRemote(resolver))
		go auth.FollowRevocations(ctx, resolver, authn, log)
		srv := d.Server(server.Config{Rules: rules, Auth: authn, OnDenied: grpcapi.OnDenied(svc, log)})
		grpcapi.Register(srv, svc)
		grpcapi.RegisterSealingKeys(srv, sealer)
		grpcapi.RegisterRunSecrets(srv, svc)

		var current []string
		for _, k := range keys {
			if k.Current() {
				current = append(current, k.ID)
			}
		}
		log.Info("secretstore starting", "db", c.daemon.Store.Path, "resolver", c.resolverAddr, "audit", c.auditAddr,
			"max_value_bytes", c.maxValueBytes, "max_description_chars", c.maxDescriptionChars,
			"sealing_keys", current, "sealing_key_grace", c.sealingKeyGrace.String(), "require_sealed", c.requireSealed)
		return srv, nil
	})
}

// loadKeyring finds the keyring: --kek-file, else OZ_KEYRING, else (with
// --dev) <data-dir>/keyring.json, generated when missing. A generated
// keyring is not written yet: saveNewKeyring does, once the store is known
// to be empty (c.newKeyring says where).
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
		kr, created, err = loadOrGenerate(c.kekFile)
	case c.kekFile != "":
		source = c.kekFile
		kr, err = keyring.Load(c.kekFile)
	case c.keyringJSON != "":
		source = "OZ_KEYRING"
		kr, err = keyring.Parse([]byte(c.keyringJSON))
	case c.dev:
		source = c.devKeyringPath()
		kr, created, err = loadOrGenerate(source)
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
	if created {
		c.newKeyring = source
	}
	log.Info("keyring loaded", "source", source, "generated", created, "primary", kr.Primary(), "keys", strings.Join(kr.IDs(), ","))
	return kr, nil
}

// loadOrGenerate loads the keyring file at path or, when there is none,
// generates a keyring in memory (created): written by saveNewKeyring.
func loadOrGenerate(path string) (kr *keyring.Keyring, created bool, err error) {
	kr, err = keyring.Load(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return kr, false, err
	}
	kr, err = keyring.Generate()
	return kr, err == nil, err
}

// saveNewKeyring writes the keyring --dev generated (c.newKeyring), once
// the store raw is open: only into a store that holds nothing yet. A store
// with data was sealed under a keyring that is missing: refused, and
// nothing written, so that the next start, with the keyring restored,
// works. It writes before the first data is sealed under the keyring.
func saveNewKeyring(ctx context.Context, c *config, raw kv.Store, kr *keyring.Keyring) error {
	if c.newKeyring == "" {
		return nil
	}
	first, err := raw.Scan(ctx, "", "", 1)
	if err != nil {
		return fmt.Errorf("%s: %w", c.daemon.Store, err)
	}
	if len(first) > 0 {
		return fmt.Errorf("no keyring at %s, but the store %s holds data sealed under one: restore the keyring file "+
			"(or pass it with --kek-file or OZ_KEYRING); not generating a new one", c.newKeyring, c.daemon.Store)
	}
	if err := os.MkdirAll(filepath.Dir(c.newKeyring), 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := kr.Create(c.newKeyring); err != nil {
		return fmt.Errorf("%w (start again)", err)
	}
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

// keyringFile is the file the keyring commands change.
func (c *config) keyringFile() (string, error) {
	switch {
	case c.kekFile != "":
		return c.kekFile, nil
	case c.dev:
		return c.devKeyringPath(), nil
	case c.keyringJSON != "":
		return "", flagenv.Usagef("the keyring is in OZ_KEYRING: these commands change a keyring file; pass --kek-file")
	}
	return "", flagenv.Usagef("pass --kek-file (OZ_KEK_FILE), or --dev for <data-dir>/keyring.json")
}

func keyringGenerate(c *config, stdout io.Writer) error {
	if c.kekFile == "" {
		return flagenv.Usagef("keyring generate: pass --kek-file, the file to create")
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
	if c.newKeyring != "" {
		return fmt.Errorf("rewrap: no keyring at %s", c.newKeyring)
	}
	sc := c.daemon.Store
	if sc.Kind == storeflag.Bolt {
		if _, err := os.Stat(sc.Path); err != nil {
			return fmt.Errorf("rewrap: database: %w", err)
		}
	}
	raw, err := openKV(ctx, sc, 2*time.Second, log)
	if err != nil && sc.Kind == storeflag.Bolt {
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
