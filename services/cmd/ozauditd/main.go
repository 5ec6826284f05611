// Command ozauditd is the audit service. In this version it only holds its
// slot in the system (health, reflection, mutual TLS); the append-only,
// hash-chained event log arrives with the audit issue (DESIGN §6).
package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
)

func main() {
	dataDir := flag.String("data-dir", env("OZ_DATA_DIR", ".oz"), "data directory (OZ_DATA_DIR)")
	listen := flag.String("listen", env("OZ_AUDIT_LISTEN", "127.0.0.1:7452"), "listen address (OZ_AUDIT_LISTEN)")
	cert := flag.String("tls-cert", os.Getenv("OZ_AUDIT_TLS_CERT"), "certificate (OZ_AUDIT_TLS_CERT; default <data-dir>/pki/audit.pem)")
	key := flag.String("tls-key", os.Getenv("OZ_AUDIT_TLS_KEY"), "key (OZ_AUDIT_TLS_KEY; default <data-dir>/pki/audit-key.pem)")
	ca := flag.String("tls-ca", os.Getenv("OZ_TLS_CA"), "CA bundle (OZ_TLS_CA; default <data-dir>/pki/ca.pem)")
	flag.Parse()

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "audit")
	dir := pki.Dir(filepath.Join(*dataDir, "pki"))
	paths := dir.For("audit")
	if *cert != "" {
		paths.Cert = *cert
	}
	if *key != "" {
		paths.Key = *key
	}
	if *ca == "" {
		*ca = dir.CA()
	}
	tlsCfg, err := pki.ServerConfig(paths, *ca)
	if err != nil {
		log.Error("tls", "err", err)
		os.Exit(1)
	}
	srv := server.New(server.Config{Name: "audit", TLS: tlsCfg, Logger: log})
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Serve(ctx, lis); err != nil {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
