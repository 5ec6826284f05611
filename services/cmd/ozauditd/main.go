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
//   - oz.internalapi.v1.AuditIngestService to the secretstore and resolver
//     certificates: AppendEvents, which their outbox shippers call, each
//     for the events it emitted (ids "{service}-…"). The gateway emits
//     none, and may not append.
//
// The log is a bbolt file, <data-dir>/audit.db by default (or --db), or,
// with --store etcd:ENDPOINT[,…], lives in an etcd cluster under
// /oz/audit/, which several replicas of ozauditd share: each advances a
// chain's head by compare-and-swap, so none forks it (package storeflag
// has the flags, package audit/kvstore the layout). With
// --metrics-listen it also serves Prometheus metrics over plain HTTP at
// /metrics: off by default, since the port is unauthenticated; bind it to
// loopback or a private network. With the standard OpenTelemetry
// variables (OTEL_TRACES_EXPORTER=otlp or console, OTEL_EXPORTER_OTLP_*;
// package tracing) it traces every call it serves and makes; off by
// default.
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
	"io"
	"log/slog"
	"os"

	"github.com/ozsecrets/oz/lib/flagenv"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/audit/grpcapi"
	"github.com/ozsecrets/oz/services/audit/inventory"
	"github.com/ozsecrets/oz/services/audit/kvstore"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltcheck"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/internal/storeflag"
)

func main() {
	boltcheck.ServeChild() // when this process is the check of a store file
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "audit")
	flagenv.Main("ozauditd", log, func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Getenv, os.Stderr, log, nil)
	})
}

// help is what --help says before the flags, for both commands: they
// share the flags.
var help = flagenv.Help{
	Usage: []string{
		"ozauditd [flags]           serve AuditService and, to the other services, AuditIngestService",
		"ozauditd upgrade [flags]   move the log from the layout of an older build into the current one",
	},
	About: `Serves the append-only, hash-chained audit log over mutual TLS; the log lives
in a bbolt file or in etcd (--store). A bbolt file of an older build is
upgraded when it is opened; an etcd store is upgraded by "upgrade", with
every replica stopped.`,
}

// config is what the flags say.
type config struct {
	daemon          server.Daemon
	resolverAddr    string
	secretstoreAddr string
}

// parse reads the flags of the command name, with defaults from the
// environment.
func parse(name string, args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	set := flagenv.New(name, help, getenv, stderr)
	daemon := server.RegisterFlags(set, "audit")
	server.PeerFlag(set, &c.resolverAddr, "resolver", "for authenticating tokens and access reviews")
	server.PeerFlag(set, &c.secretstoreAddr, "secretstore", "for access reviews")
	if err := set.Parse(args); err != nil {
		return nil, err
	}
	var err error
	c.daemon, err = daemon.Daemon()
	c.daemon.Namespace = kvstore.Namespace
	return c, err
}

// run is main without the process. ready, when not nil, is told the
// addresses once the service listens.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, log *slog.Logger, ready func(server.Addrs)) error {
	if len(args) > 0 && args[0] == "upgrade" {
		c, err := parse("ozauditd upgrade", args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		return server.UpgradeStore(ctx, c.daemon.Store, stderr, log, kvstore.Namespace, kvstore.UpgradeEtcd, kvstore.UpgradeBolt)
	}
	c, err := parse("ozauditd", args, getenv, stderr)
	if err != nil {
		return err
	}
	c.daemon.Log, c.daemon.Ready = log, ready
	return server.Run(ctx, c.daemon, func(ctx context.Context, d *server.Deps) (*server.Server, error) {
		kvs, opts, err := openStore(ctx, c.daemon.Store, log)
		if err != nil {
			return nil, err
		}
		d.Defer(kvs.Close)
		resolver, err := d.Dial(c.resolverAddr)
		if err != nil {
			return nil, err
		}
		secretstore, err := d.Dial(c.secretstoreAddr)
		if err != nil {
			return nil, err
		}
		store, err := kvstore.New(ctx, d.Instrument(kvs), opts)
		if err != nil {
			return nil, err
		}
		svc := audit.NewService(audit.Config{
			Store: store, Logger: log, Registerer: d.Metrics,
			Inventory: inventory.New(secretstore, resolver),
		})
		// Tokens are authenticated by the resolver, cached 5 seconds, and
		// dropped from the cache as soon as the resolver says they were
		// revoked (until serving stops).
		authn := auth.NewCache(auth.NewRemote(resolver))
		go auth.FollowRevocations(ctx, resolver, authn, log)
		srv := d.Server(server.Config{
			Rules: grpcapi.Rules, Auth: authn, OnDenied: grpcapi.OnDenied(svc, log),
		})
		grpcapi.Register(srv, svc)
		log.Info("audit starting", "resolver", c.resolverAddr, "secretstore", c.secretstoreAddr)
		return srv, nil
	})
}

// openStore opens the log's store where sc says: a bbolt file (upgraded
// in place from an older build's layout), or the audit service's
// namespace in an etcd cluster; with the options of kvstore.New for it.
func openStore(ctx context.Context, sc storeflag.Config, log *slog.Logger) (kv.Store, kvstore.Options, error) {
	log.Info("store", "kind", sc.Kind.String(), "store", sc.String())
	if sc.Kind != storeflag.Etcd {
		s, up, err := kvstore.OpenBoltKV(sc.Path, 0)
		if up != (kvstore.Upgrade{}) {
			log.Warn("store upgraded from the layout of an older build", "file", sc.Path, "carried_over", up.String())
		}
		return s, kvstore.BoltOptions, err
	}
	cfg, err := sc.EtcdClient(log)
	if err != nil {
		return nil, kvstore.Options{}, err
	}
	s, err := kvstore.OpenEtcdKV(ctx, cfg, kvstore.Namespace)
	return s, kvstore.Options{}, err
}
