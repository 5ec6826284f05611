package boltkv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// keyID is the store's id in the meta bucket: a random name given at first
// start, which the data directory's manifest (package storeid) repeats, so
// that a file swapped for another store's is noticed.
var keyID = []byte("store-id")

// ReadID returns the store id of the bbolt file at path, "" when it has
// none (a file made by an earlier build). It opens the file read-only and
// never writes to it; a file bbolt cannot read (a damaged one, which makes
// bbolt panic) is an error, not a crash. It waits at most timeout (0:
// DefaultTimeout) for a process that holds the file.
func ReadID(path string, timeout time.Duration) (id string, err error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if _, err := os.Stat(path); err != nil {
		return "", err // bbolt would create it, even read-only
	}
	// bbolt panics (or faults on a page past the end of a truncated file)
	// on pages it cannot make sense of: turn both into an error here.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open %s: damaged database: %v", path, r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: true})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return "", fmt.Errorf("open %s: locked by another process (is a service or tool still running on it?): %w", path, err)
	}
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			id = string(meta.Get(keyID))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	return id, nil
}

// WriteID gives the bbolt file at path (created, with its directory, when
// missing) the store id id. A file that has another id already is left
// alone and refused. It waits at most timeout (0: DefaultTimeout) for a
// process that holds the file.
func WriteID(path, id string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if id == "" {
		return errors.New("store id: empty")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create database directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("open %s: locked by another process (is a service or tool still running on it?): %w", path, err)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		// Only the meta bucket: the records bucket and the schema are
		// Open's, after any upgrade of an earlier layout has run.
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch got := meta.Get(keyID); {
		case got == nil:
			return meta.Put(keyID, []byte(id))
		case string(got) != id:
			return fmt.Errorf("it has store id %q already", got)
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the store id into %s: %w", path, err)
	}
	return nil
}
