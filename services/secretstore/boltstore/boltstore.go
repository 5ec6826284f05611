// Package boltstore is the bbolt implementation of secretstore.Store (and
// secretstore.Scanner and secretstore.OwnersLister), and of sealing.Store
// (sealingkeys.go).
//
// Layout: one bucket, "secrets", keyed by owner resource name + 0x00 +
// secretstore.FoldName(name), so that two names differing only in case are
// one key and the case-insensitive uniqueness rule is a key clash; values
// are JSON records holding metadata, the wrapped data key and the value's
// ciphertext — never plaintext. A "sealing_keys" bucket holds the sealing
// key pairs by key id, their private keys wrapped by the keyring. A "meta"
// bucket holds the schema version. The audit outbox (outbox.NewBolt:
// buckets "outbox" and "outbox_meta") is in the same file, so that every
// change and its audit event commit in one transaction.
//
// Reads copy what they need out of View transactions. Writes go through
// db.Batch, so that concurrent writers share one transaction and one fsync;
// their closures are idempotent and have no effects outside the
// transaction but for assigning their result. The file is fsynced on every
// commit (bbolt's default; NoSync is never set).
package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/groupcommit"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
)

// Buckets, declared once and all created by Open.
var (
	bucketSecrets     = []byte("secrets")
	bucketSealingKeys = []byte("sealing_keys")
	bucketMeta        = []byte("meta")
	buckets           = [][]byte{bucketSecrets, bucketSealingKeys, bucketMeta}
)

var (
	keySchema     = []byte("schema")
	schemaVersion = []byte("1")
)

// Options tune Open. The zero value is fine.
type Options struct {
	// Timeout bounds the wait for the file lock (another process holding
	// the database). Default 5s.
	Timeout time.Duration
}

// Store is a secretstore.Store over one bbolt file. It is safe for
// concurrent use.
type Store struct {
	db *bolt.DB
	// commit groups concurrent writes into one transaction and fsync
	// without holding a lone write back (DB.Batch would, for its delay).
	commit *groupcommit.Committer
	ob     *outbox.Bolt
	// noEvents skips the outbox writes. It exists for BenchmarkCreate's
	// comparison of creates with and without auditing, and is never set
	// anywhere else.
	noEvents bool
}

var (
	_ secretstore.Store        = (*Store)(nil)
	_ secretstore.Scanner      = (*Store)(nil)
	_ secretstore.OwnersLister = (*Store)(nil)
	_ sealing.Store            = (*Store)(nil)
)

// Open opens (creating if needed) the database at path, with mode 0600.
// It fails after opts.Timeout when another process holds the file.
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.Timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: the file is locked by another process (is another ozsecretstored running on it?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range buckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keySchema); {
		case v == nil:
			return meta.Put(keySchema, schemaVersion)
		case !bytes.Equal(v, schemaVersion):
			return fmt.Errorf("schema version %q, this program knows %q", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	ob, err := outbox.NewBolt(db, secretstore.Emitter)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &Store{db: db, commit: groupcommit.New(db), ob: ob}, nil
}

// Outbox implements secretstore.Store: the audit outbox in the same file
// (an outbox.Bolt, with a Backlog).
func (s *Store) Outbox() outbox.Source { return s.ob }

// OnCommit sets fn (typically outbox.Shipper.Notify) to run after every
// commit that wrote audit events. Set it before serving.
func (s *Store) OnCommit(fn func()) { s.ob.OnCommit(fn) }

// addEvent adds ev to the outbox within tx. A nil or invalid event is an
// error without a kind (internal: not the caller's fault), so that the
// change rolls back.
func (s *Store) addEvent(tx *bolt.Tx, ev *auditv1.Event) error {
	p, err := s.prepareEvent(ev)
	if err != nil {
		return err
	}
	return s.addPrepared(tx, p)
}

// prepareEvent does addEvent's work that needs no transaction (copying,
// validating and encoding ev: outbox.Bolt.Prepare), so that a caller
// knowing its event beforehand does it before db.Batch and keeps the
// batch's transaction short. Errors are addEvent's.
func (s *Store) prepareEvent(ev *auditv1.Event) (*outbox.Prepared, error) {
	if ev == nil {
		return nil, errors.New("boltstore: a change without its audit event")
	}
	if s.noEvents {
		return nil, nil
	}
	p, err := s.ob.Prepare(ev)
	if err != nil {
		return nil, fmt.Errorf("boltstore: audit event %s: %v", ev.GetAction(), err)
	}
	return p, nil
}

// addPrepared adds an event from prepareEvent to the outbox within tx.
func (s *Store) addPrepared(tx *bolt.Tx, p *outbox.Prepared) error {
	if s.noEvents {
		return nil
	}
	if err := s.ob.AddPrepared(tx, p); err != nil {
		return fmt.Errorf("boltstore: audit event: %v", err)
	}
	return nil
}

// Record implements secretstore.Store.
func (s *Store) Record(ctx context.Context, ev *auditv1.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.prepareEvent(ev)
	if err != nil {
		return err
	}
	return s.commit.Do(func(tx *bolt.Tx) error { return s.addPrepared(tx, p) })
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Path returns the database file's path.
func (s *Store) Path() string { return s.db.Path() }

// Check runs bbolt's consistency check over the whole file.
func (s *Store) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() { // drain: Check's goroutine sends them all
			if first == nil {
				first = err
			}
		}
		return first
	})
}

// record is the stored form of a secret.
type record struct {
	Owner           string    `json:"owner"`
	Name            string    `json:"name"`
	Description     string    `json:"description,omitempty"`
	ValueVersion    int64     `json:"value_version"`
	CreateTime      time.Time `json:"create_time"`
	UpdateTime      time.Time `json:"update_time"`
	ValueUpdateTime time.Time `json:"value_update_time"`
	CreateBy        string    `json:"create_by"`
	UpdateBy        string    `json:"update_by"`
	Etag            string    `json:"etag"`
	KEKID           string    `json:"kek_id"`
	WrappedKey      []byte    `json:"wrapped_key"`
	Ciphertext      []byte    `json:"ciphertext"`
}

func encode(s *secretstore.Secret) ([]byte, error) {
	return json.Marshal(record{
		Owner:           s.Owner.String(),
		Name:            s.Name,
		Description:     s.Description,
		ValueVersion:    s.ValueVersion,
		CreateTime:      s.CreateTime,
		UpdateTime:      s.UpdateTime,
		ValueUpdateTime: s.ValueUpdateTime,
		CreateBy:        s.CreateBy,
		UpdateBy:        s.UpdateBy,
		Etag:            s.Etag,
		KEKID:           s.Value.KEKID,
		WrappedKey:      s.Value.WrappedKey,
		Ciphertext:      s.Value.Ciphertext,
	})
}

// decode parses a stored record. The result shares no memory with data,
// so it may outlive the transaction data came from.
func decode(data []byte) (*secretstore.Secret, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode secret record: %w", err)
	}
	owner, err := secretstore.ParseOwner(r.Owner)
	if err != nil {
		return nil, fmt.Errorf("decode secret record: bad owner: %w", err)
	}
	return &secretstore.Secret{
		Owner:           owner,
		Name:            r.Name,
		Description:     r.Description,
		ValueVersion:    r.ValueVersion,
		CreateTime:      r.CreateTime,
		UpdateTime:      r.UpdateTime,
		ValueUpdateTime: r.ValueUpdateTime,
		CreateBy:        r.CreateBy,
		UpdateBy:        r.UpdateBy,
		Etag:            r.Etag,
		Value:           keyring.Envelope{KEKID: r.KEKID, WrappedKey: r.WrappedKey, Ciphertext: r.Ciphertext},
	}, nil
}

func ownerPrefix(o secretstore.Owner) []byte {
	return append([]byte(o.String()), 0)
}

func key(o secretstore.Owner, name string) []byte {
	return append(ownerPrefix(o), secretstore.FoldName(name)...)
}

func errNotFound(o secretstore.Owner, name string) error {
	return errs.E(errs.KindNotFound, "secret %s/secrets/%s not found", o, name)
}

// Create implements secretstore.Store.
func (s *Store) Create(ctx context.Context, sec *secretstore.Secret, ev *auditv1.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if sec.Owner.IsZero() || sec.Name == "" {
		return errors.New("boltstore: create: owner and name are required")
	}
	k := key(sec.Owner, sec.Name)
	v, err := encode(sec)
	if err != nil {
		return err
	}
	p, err := s.prepareEvent(ev)
	if err != nil {
		return err
	}
	return s.commit.Do(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSecrets)
		if old := b.Get(k); old != nil {
			existing := "another secret"
			if o, err := decode(old); err == nil {
				existing = o.Name
			}
			return errs.E(errs.KindAlreadyExists, "%s already has a secret named %s (names are unique without regard to case)", sec.Owner, existing)
		}
		if err := b.Put(k, v); err != nil {
			return err
		}
		return s.addPrepared(tx, p)
	})
}

// Get implements secretstore.Store.
func (s *Store) Get(ctx context.Context, owner secretstore.Owner, name string) (*secretstore.Secret, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out *secretstore.Secret
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSecrets).Get(key(owner, name))
		if v == nil {
			return errNotFound(owner, name)
		}
		sec, err := decode(v)
		if err != nil {
			return err
		}
		if sec.Name != name {
			return errNotFound(owner, name)
		}
		out = sec
		return nil
	})
	return out, err
}

// List implements secretstore.Store.
func (s *Store) List(ctx context.Context, owner secretstore.Owner, after string, limit int) ([]*secretstore.Secret, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("boltstore: list: limit must be positive, got %d", limit)
	}
	prefix := ownerPrefix(owner)
	var out []*secretstore.Secret
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSecrets).Cursor()
		var k, v []byte
		if after == "" {
			k, v = c.Seek(prefix)
		} else {
			start := key(owner, after)
			k, v = c.Seek(start)
			if bytes.Equal(k, start) {
				k, v = c.Next()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
			sec, err := decode(v)
			if err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
			out = append(out, sec)
		}
		return nil
	})
	return out, err
}

// ListOwners implements secretstore.OwnersLister: one View, one prefix
// scan per owner.
func (s *Store) ListOwners(ctx context.Context, owners []secretstore.Owner) ([]*secretstore.Secret, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []*secretstore.Secret
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSecrets).Cursor()
		for _, owner := range owners {
			prefix := ownerPrefix(owner)
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				sec, err := decode(v)
				if err != nil {
					return fmt.Errorf("%q: %w", k, err)
				}
				out = append(out, sec)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Scan implements secretstore.Scanner.
func (s *Store) Scan(ctx context.Context, afterOwner secretstore.Owner, afterName string, limit int) ([]*secretstore.Secret, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("boltstore: scan: limit must be positive, got %d", limit)
	}
	var out []*secretstore.Secret
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSecrets).Cursor()
		var k, v []byte
		if afterOwner.IsZero() {
			k, v = c.First()
		} else {
			start := key(afterOwner, afterName)
			k, v = c.Seek(start)
			if bytes.Equal(k, start) {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(out) < limit; k, v = c.Next() {
			sec, err := decode(v)
			if err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
			out = append(out, sec)
		}
		return nil
	})
	return out, err
}

// Update implements secretstore.Store.
func (s *Store) Update(ctx context.Context, owner secretstore.Owner, name string, fn func(*secretstore.Secret) (*auditv1.Event, error)) (*secretstore.Secret, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k := key(owner, name)
	var out *secretstore.Secret
	err := s.commit.Do(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSecrets)
		v := b.Get(k)
		if v == nil {
			return errNotFound(owner, name)
		}
		sec, err := decode(v)
		if err != nil {
			return err
		}
		if sec.Name != name {
			return errNotFound(owner, name)
		}
		ev, err := fn(sec)
		if err != nil {
			return err
		}
		if sec.Owner != owner || sec.Name != name {
			return errors.New("boltstore: update must not change a secret's owner or name")
		}
		nv, err := encode(sec)
		if err != nil {
			return err
		}
		if err := b.Put(k, nv); err != nil {
			return err
		}
		if err := s.addEvent(tx, ev); err != nil {
			return err
		}
		out = sec.Clone() // fn's caller may keep sec; hand back our own copy
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Delete implements secretstore.Store.
func (s *Store) Delete(ctx context.Context, owner secretstore.Owner, name string, fn func(*secretstore.Secret) (*auditv1.Event, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k := key(owner, name)
	return s.commit.Do(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSecrets)
		v := b.Get(k)
		if v == nil {
			return errNotFound(owner, name)
		}
		sec, err := decode(v)
		if err != nil {
			return err
		}
		if sec.Name != name {
			return errNotFound(owner, name)
		}
		ev, err := fn(sec)
		if err != nil {
			return err
		}
		if err := b.Delete(k); err != nil {
			return err
		}
		return s.addEvent(tx, ev)
	})
}
