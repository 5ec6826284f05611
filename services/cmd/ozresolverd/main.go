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
// With the standard OpenTelemetry variables (OTEL_TRACES_EXPORTER=otlp or
// console, OTEL_EXPORTER_OTLP_*; package tracing) it traces every call it
// serves and makes, with a child span per store call; off by default.
//
// Every flag has an OZ_… environment variable; logs are JSON on stderr and
// never contain a token.
package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/ozsecrets/oz/lib/flagenv"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/kv/boltcheck"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	"github.com/ozsecrets/oz/services/resolver/grpcapi"
	"github.com/ozsecrets/oz/services/resolver/runs"
)

func main() {
	boltcheck.ServeChild() // when this process is the check of a store file
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "resolver")
	flagenv.Main("ozresolverd", log, func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, log)
	})
}

// help is what --help says before the flags.
var help = flagenv.Help{
	Usage: []string{
		"ozresolverd [flags]                             serve",
		"ozresolverd bootstrap --user NAME [--store …]   print a new system-admin token (recovery)",
	},
	About: `Serves the directory of teams, users and tokens, run resolution and, to the
other services, AuthService, over mutual TLS. The data lives in a bbolt file
or in etcd (--store). Every change is an audit event, kept in the store's
outbox until the audit service (--audit-addr) has it.`,
}

// config is the serve command's configuration.
type config struct {
	daemon          server.Daemon
	bootstrapFile   string
	secretstoreAddr string
	auditAddr       string
	tokens          directory.TokenPolicy
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, log *slog.Logger) error {
	if len(args) > 0 && args[0] == "bootstrap" {
		return runBootstrap(ctx, args[1:], getenv, stdout, stderr, log)
	}
	c, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	c.daemon.Log = log
	return server.Run(ctx, c.daemon, func(ctx context.Context, d *server.Deps) (*server.Server, error) {
		secretstore, err := d.Dial(c.secretstoreAddr)
		if err != nil {
			return nil, err
		}
		store, err := openStore(ctx, c.daemon.Store, boltkv.DefaultTimeout, log)
		if err != nil {
			return nil, err
		}
		d.Defer(store.Close)
		indexRestrictions(ctx, store, log)
		records := resolver.NewStore(d.Instrument(store), time.Now)
		dir := directory.New(records)
		if err := dir.SetTokenPolicy(c.tokens); err != nil {
			return nil, err
		}
		// Shipping starts before the first event, a bootstrap's.
		if err := d.Ship(c.auditAddr, resolver.Emitter, records.Outbox(), records.Outbox().OnCommit); err != nil {
			return nil, err
		}
		if c.bootstrapFile != "" {
			if err := bootstrap(ctx, dir, c.bootstrapFile, log); err != nil {
				return nil, err
			}
		}
		// Its own callers are authenticated through the same 5-second
		// cache as the other services' (the bound on revocation when no
		// notice arrives), which spares a store read or two per call — on
		// etcd, quorum reads. The internal AuthService the other services
		// ask answers uncached, so the bound stays 5 seconds everywhere,
		// not 10. Revocations drop their tokens from it at once, and are
		// streamed to the other services' caches (WatchRevocations) until
		// the resolver begins to stop.
		cache := auth.NewCache(dir)
		dir.Notices().Log = log
		dir.Notices().Local(cache.Drop)
		context.AfterFunc(ctx, dir.Notices().Close)
		srv := d.Server(server.Config{
			Rules: grpcapi.Rules, Auth: cache, OnDenied: grpcapi.OnDenied(records, log),
		})
		grpcapi.Register(srv, dir)
		grpcapi.RegisterRuns(srv, runs.New(dir, grpcapi.NewSecretStore(secretstore)), grpcapi.RunMetrics(d.Metrics))
		return srv, nil
	})
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	set := flagenv.New("ozresolverd", help, getenv, stderr)
	daemon := server.RegisterFlags(set, "resolver")
	set.String(&c.bootstrapFile, "bootstrap-token-file", "OZ_BOOTSTRAP_TOKEN_FILE", "",
		`when no system admin exists, create user "admin" as one and write its token to this file, mode 0600`)
	server.PeerFlag(set, &c.secretstoreAddr, "secretstore", "for run resolution")
	server.PeerFlag(set, &c.auditAddr, "audit", "to deliver audit events to")
	set.Duration(&c.tokens.MaxLifetime, "max-token-lifetime", "OZ_MAX_TOKEN_LIFETIME", directory.DefaultMaxTokenLifetime,
		"the longest a token made with oz admin token create (CreateToken) may live, whoever makes it (system admins included); "+
			"a longer lifetime is refused, and a token asked for without one gets this")
	if err := set.Parse(args); err != nil {
		return c, err
	}
	if c.tokens.MaxLifetime <= 0 {
		return c, set.Usagef("--max-token-lifetime: must be positive (got %s)", c.tokens.MaxLifetime)
	}
	var err error
	c.daemon, err = daemon.Daemon()
	c.daemon.Namespace = etcdkv.Namespace
	return c, err
}
