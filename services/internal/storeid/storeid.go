// Package storeid makes a service refuse to start on a store that is not
// the one it had: a data directory, and an etcd namespace, remember which
// stores they have held (DESIGN §7).
//
// A bbolt store has a random id in its meta bucket, and the data
// directory's manifest (<data-dir>/oz-manifest.json, shared by the
// services that keep their files there) has the id of each service's
// store. Check, before the service opens its store:
//
//   - without --init: the store must be there, not empty (0 bytes),
//     readable, with the id the manifest names. A data directory with
//     store files but no manifest entry (made by an earlier build) is
//     adopted: the manifest gets the store's id, and a store without one
//     gets a new one. No store and no entry is refused: a first start is
//     explicit.
//   - with --init (a first start): where there is neither a store nor a
//     manifest entry, Check creates the store with a new id and the entry;
//     anywhere else --init changes nothing and the checks above apply (a
//     missing store that the manifest names is refused all the same).
//
// An etcd namespace keeps its id at <namespace>meta/store-id; the manifest
// is not used (replicas on several machines share the namespace, not a data
// directory). A namespace that holds nothing is refused without --init;
// one that holds data but no id (an earlier build) is adopted; --init gives
// an id to a namespace without one and is harmless on one that has it, so
// that every replica may be started with it.
package storeid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
	"github.com/ozsecrets/oz/services/internal/storeflag"
)

// ManifestName is the manifest's file name in the data directory.
const ManifestName = "oz-manifest.json"

// Config is what Check needs to know of a service's start.
type Config struct {
	DataDir string           // --data-dir: where the manifest lives
	Name    string           // the service: "audit", its entry in the manifest
	Store   storeflag.Config // its store
	// Namespace is the service's etcd namespace ("/oz/audit/").
	Namespace string
	// Init is --init: this is a first start, make a new store.
	Init bool
	// CheckBolt, when not nil, checks a bbolt file's consistency before
	// anything else opens it (boltcheck.Check); an error stops the start.
	CheckBolt func(ctx context.Context, path string) error
	// BoltTimeout bounds the wait for a bbolt file's lock; 0: the default.
	BoltTimeout time.Duration
	Log         *slog.Logger
}

// Check refuses a start on a store that is missing, empty, damaged or not
// the one the data directory (or namespace) held, and makes the store and
// its entry on a first start (cfg.Init) or when adopting the files of an
// earlier build. Its errors name the file and what to do.
func Check(ctx context.Context, cfg Config) error {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Store.Kind == storeflag.Etcd {
		return checkEtcd(ctx, cfg)
	}
	return checkBolt(ctx, cfg)
}

// Manifest is the file's content: the id of each service's store.
type Manifest struct {
	Version int              `json:"version"`
	Stores  map[string]Entry `json:"stores"`
}

// Entry is one service's store: its id, and where it was (for people).
type Entry struct {
	ID    string `json:"id"`
	Store string `json:"store"`
}

func checkBolt(ctx context.Context, cfg Config) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	mpath := filepath.Join(cfg.DataDir, ManifestName)
	// The services of one data directory start together: one at a time
	// reads and rewrites the manifest.
	unlock, err := lock(mpath + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	m, err := readManifest(mpath)
	if err != nil {
		return err
	}
	path := cfg.Store.Path
	entry, known := m.Stores[cfg.Name]
	fi, err := os.Stat(path)
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		return fmt.Errorf("%s store %s: %w", cfg.Name, path, err)
	}
	startOver := fmt.Sprintf("to really start over with an empty store, remove the %q entry from %s (and the file), then start with --init", cfg.Name, mpath)

	// --init creates a store only where there is no trace of one: on a
	// data directory that held this store it is an ordinary start, with
	// every check below, so a deployment may keep it set across restarts
	// and it never papers over a lost store.
	if cfg.Init && missing && !known {
		id := newID()
		if err := boltkv.WriteID(path, id, cfg.BoltTimeout); err != nil {
			return err
		}
		m.Stores[cfg.Name] = Entry{ID: id, Store: cfg.Store.String()}
		if err := writeManifest(mpath, m); err != nil {
			return err
		}
		cfg.Log.Info("first start (--init): created a new, empty store", "store", cfg.Store.String(), "store_id", id, "manifest", mpath)
		return nil
	}

	switch {
	case missing && known:
		return fmt.Errorf("the %s store %s is missing, but %s says this data directory held it (store id %s): restore the file from a backup (--init does not replace a lost store); %s",
			cfg.Name, path, mpath, entry.ID, startOver)
	case missing:
		return fmt.Errorf("no %s store at %s (and no entry in %s): run with --init to create a new store on a first start; otherwise restore the file from a backup, or point --data-dir / --db at it",
			cfg.Name, path, mpath)
	case fi.Size() == 0:
		return fmt.Errorf("the %s store %s is empty (0 bytes): it lost its data; restore it from a backup; %s", cfg.Name, path, startOver)
	}
	if cfg.CheckBolt != nil {
		if err := cfg.CheckBolt(ctx, path); err != nil {
			return fmt.Errorf("the %s store is damaged: %w: nothing was written to it; restore it from a backup; %s", cfg.Name, err, startOver)
		}
	}
	id, err := boltkv.ReadID(path, cfg.BoltTimeout)
	if err != nil {
		return fmt.Errorf("the %s store cannot be read: %w: restore it from a backup; %s", cfg.Name, err, startOver)
	}
	if known {
		if id != entry.ID {
			got := id
			if got == "" {
				got = "none"
			}
			return fmt.Errorf("the %s store %s is not the one this data directory held: its store id is %s, %s says %s: restore the right file from a backup; to use this one instead, remove the %q entry from %s",
				cfg.Name, path, got, mpath, entry.ID, cfg.Name, mpath)
		}
		if entry.Store != cfg.Store.String() { // moved: keep the note current
			m.Stores[cfg.Name] = Entry{ID: id, Store: cfg.Store.String()}
			return writeManifest(mpath, m)
		}
		return nil
	}
	// Adopt a store made by an earlier build (or after the manifest was
	// lost): it is what the operator points at.
	if id == "" {
		id = newID()
		if err := boltkv.WriteID(path, id, cfg.BoltTimeout); err != nil {
			return err
		}
	}
	m.Stores[cfg.Name] = Entry{ID: id, Store: cfg.Store.String()}
	if err := writeManifest(mpath, m); err != nil {
		return err
	}
	cfg.Log.Warn("adopted an existing store into the data directory's manifest", "store", cfg.Store.String(), "store_id", id, "manifest", mpath)
	return nil
}

func checkEtcd(ctx context.Context, cfg Config) error {
	ecfg, err := cfg.Store.EtcdClient(cfg.Log)
	if err != nil {
		return err
	}
	cli, err := clientv3.New(ecfg)
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer cli.Close()
	id, hasData, err := etcdkv.ReadID(ctx, cli, cfg.Namespace)
	if err != nil {
		return err
	}
	where := fmt.Sprintf("the %s store's etcd namespace %s on %s", cfg.Name, cfg.Namespace, cfg.Store.String())
	switch {
	case id != "":
		return nil
	case !hasData && !cfg.Init:
		return fmt.Errorf("%s is empty: run with --init to create a new store on a first start; if it held data, restore etcd from a snapshot", where)
	}
	got, err := etcdkv.ClaimID(ctx, cli, cfg.Namespace, newID())
	if err != nil {
		return err
	}
	if hasData {
		cfg.Log.Warn("adopted an existing etcd namespace: gave it a store id", "namespace", cfg.Namespace, "store_id", got)
	} else {
		cfg.Log.Info("first start (--init): new store", "namespace", cfg.Namespace, "store_id", got)
	}
	return nil
}

// Fresh reports whether a start would be a first start of a bbolt store:
// the data directory has no manifest and the store file does not exist.
// Launchers (ozdev, tests) use it to pass --init only then.
func Fresh(dataDir, storePath string) bool {
	_, errManifest := os.Stat(filepath.Join(dataDir, ManifestName))
	_, errStore := os.Stat(storePath)
	return errors.Is(errManifest, fs.ErrNotExist) && errors.Is(errStore, fs.ErrNotExist)
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// lock holds an exclusive lock on the file path until unlock.
func lock(path string) (unlock func(), _ error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("manifest lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("manifest lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// readManifest reads the manifest at path; none is an empty one.
func readManifest(path string) (*Manifest, error) {
	m := &Manifest{Version: 1, Stores: map[string]Entry{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := json.Unmarshal(data, m); err != nil || m.Version != 1 {
		return nil, fmt.Errorf("manifest %s is damaged or of another version (%v): restore it from a backup, or remove it to have the stores adopted again", path, err)
	}
	if m.Stores == nil {
		m.Stores = map[string]Entry{}
	}
	return m, nil
}

// writeManifest replaces the manifest at path atomically and durably: a
// temporary file, fsynced, renamed over it, and the directory fsynced.
func writeManifest(path string, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".oz-manifest-*.tmp")
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("write manifest %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write manifest: sync %s: %w", dir, err)
	}
	return nil
}
