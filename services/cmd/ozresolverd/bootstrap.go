package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ozsecrets/oz/lib/flagenv"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
)

// bootstrapUser is the system admin created at first start.
const bootstrapUser = "admin"

// bootstrap makes sure a system admin exists. When it creates one, it
// writes the new token, and a newline, to path with mode 0600; when one
// exists already it leaves path alone.
//
// The file is prepared first, so that a path that cannot be written fails
// before the admin exists, and renamed into place only once the admin is
// stored: the file never holds a token that does not work.
func bootstrap(ctx context.Context, dir *directory.Directory, path string, log *slog.Logger) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("bootstrap token file: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".bootstrap-token-*") // mode 0600
	if err != nil {
		return fmt.Errorf("bootstrap token file: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	defer f.Close()

	tok, bearer, err := dir.BootstrapAdmin(ctx, bootstrapUser)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if bearer == "" {
		log.Info("bootstrap: a system admin exists; token file left as it is", "file", path)
		return nil
	}
	if err := writeToken(f, path, bearer); err != nil {
		return fmt.Errorf("bootstrap: system admin %q was created but its token could not be saved "+
			"(issue a new one with `ozresolverd bootstrap --user %s`): %w", bootstrapUser, bootstrapUser, err)
	}
	log.Info("bootstrap: created system admin", "user", bootstrapUser, "token_id", tok.ID, "file", path)
	return nil
}

// writeToken writes bearer to the temporary file f, syncs it and renames it
// to path.
func writeToken(f *os.File, path, bearer string) error {
	if _, err := io.WriteString(f, bearer+"\n"); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // make the rename durable
		d.Close()
	}
	return nil
}

// runBootstrap is `ozresolverd bootstrap`: it makes a user a system admin
// (creating it if needed) and prints a new non-expiring token for it on
// stdout. It is for recovery, by whoever holds the database file (while
// ozresolverd is stopped) or the etcd client credentials.
func runBootstrap(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, log *slog.Logger) error {
	set := flagenv.New("ozresolverd bootstrap", flagenv.Help{
		Usage: []string{"ozresolverd bootstrap --user NAME [--store …]"},
		About: `Makes NAME a system admin (creating the user) and prints a new token for it.
On a bbolt file, run it while ozresolverd is stopped: the file is locked while it runs.
On etcd (--store etcd:…), it may run beside the servers.`,
	}, getenv, stderr)
	storeFlags := server.RegisterStoreFlags(set, "resolver")
	var user string
	set.String(&user, "user", "", "", "the user to make a system admin and issue a token for (required)")
	if err := set.Parse(args); err != nil {
		return err
	}
	if user == "" {
		return set.Usagef("--user is required")
	}
	_, sc, err := storeFlags.Config(set)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, sc, 2*time.Second, log)
	if err != nil {
		return err
	}
	defer store.Close()
	dir := directory.New(resolver.NewStore(store, time.Now))
	tok, bearer, err := dir.IssueAdminToken(ctx, user, "recovery token (ozresolverd bootstrap)")
	if err != nil {
		return err
	}
	log.Info("bootstrap: issued a system-admin token", "user", user, "token_id", tok.ID)
	_, err = fmt.Fprintln(stdout, bearer)
	return err
}
