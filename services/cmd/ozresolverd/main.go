// Command ozresolverd is the resolver service: the directory of teams,
// users, memberships and bearer tokens (oz.scope.v1 DirectoryService and
// TokenService), and the internal AuthService the other services use to
// authenticate tokens. Run resolution joins it next.
//
//	ozresolverd [flags]                          serve
//	ozresolverd bootstrap --user NAME [--db PATH] print a new system-admin token (recovery)
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
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/boltstore"
	"github.com/ozsecrets/oz/services/resolver/grpcapi"
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
	listen, dataDir, db    string
	tlsCert, tlsKey, tlsCA string
	bootstrapFile          string
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, log *slog.Logger) error {
	if len(args) > 0 && args[0] == "bootstrap" {
		return runBootstrap(ctx, args[1:], getenv, stdout, stderr, log)
	}
	c, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	tlsCfg, err := pki.ServerConfig(pki.Paths{Cert: c.tlsCert, Key: c.tlsKey}, c.tlsCA)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	store, err := boltstore.Open(c.db, boltstore.DefaultTimeout)
	if err != nil {
		return err
	}
	defer store.Close()
	dir := resolver.NewDirectory(store, time.Now)
	if c.bootstrapFile != "" {
		if err := bootstrap(ctx, dir, c.bootstrapFile, log); err != nil {
			return err
		}
	}
	srv := server.New(server.Config{Name: "resolver", TLS: tlsCfg, Rules: grpcapi.Rules, Auth: dir, Logger: log})
	grpcapi.Register(srv, dir)
	lis, err := net.Listen("tcp", c.listen)
	if err != nil {
		return err
	}
	return srv.Serve(ctx, lis)
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	var c config
	fs := flag.NewFlagSet("ozresolverd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", env("OZ_RESOLVER_LISTEN", "127.0.0.1:7451"), "listen address (OZ_RESOLVER_LISTEN)")
	fs.StringVar(&c.dataDir, "data-dir", env("OZ_DATA_DIR", ".oz"), "data directory (OZ_DATA_DIR)")
	fs.StringVar(&c.db, "db", getenv("OZ_RESOLVER_DB"), "database file (OZ_RESOLVER_DB; default <data-dir>/resolver.db)")
	fs.StringVar(&c.tlsCert, "tls-cert", getenv("OZ_RESOLVER_TLS_CERT"), "certificate (OZ_RESOLVER_TLS_CERT; default <data-dir>/pki/resolver.pem)")
	fs.StringVar(&c.tlsKey, "tls-key", getenv("OZ_RESOLVER_TLS_KEY"), "private key (OZ_RESOLVER_TLS_KEY; default <data-dir>/pki/resolver-key.pem)")
	fs.StringVar(&c.tlsCA, "tls-ca", getenv("OZ_TLS_CA"), "CA bundle for client certificates (OZ_TLS_CA; default <data-dir>/pki/ca.pem)")
	fs.StringVar(&c.bootstrapFile, "bootstrap-token-file", getenv("OZ_BOOTSTRAP_TOKEN_FILE"),
		"when no system admin exists, create user \"admin\" as one and write its token to this file, mode 0600 (OZ_BOOTSTRAP_TOKEN_FILE)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage:\n  ozresolverd [flags]\n  ozresolverd bootstrap --user NAME [--db PATH]   (print a new system-admin token)\n\nFlags:\n")
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
	def(&c.db, filepath.Join(c.dataDir, "resolver.db"))
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
