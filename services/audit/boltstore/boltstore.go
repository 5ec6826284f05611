// Package boltstore is the bbolt implementation of audit.Store: the audit
// log in one file (<data-dir>/audit.db).
//
// Layout (all buckets created by Open):
//
//	events: team + 0x00 + seq (8 bytes, big-endian) → the Event, protobuf
//	        (chain fields included). Team ids never hold 0x00, so each chain
//	        is one contiguous, seq-ordered key range; the system chain's
//	        team is "".
//	ids:    event id → team + 0x00 + seq, for idempotent appends.
//	heads:  team + 0x00 → seq (8 bytes) + hash: each chain's head, kept
//	        apart from the events so that events removed from a chain's end
//	        are noticed by VerifyChain.
//	meta:   schema version.
//
// Appends go through db.Batch: concurrent AppendEvents calls share one
// transaction and one fsync (bbolt fsyncs every commit; NoSync is never
// set). The batch function reads the heads and ids inside its transaction
// and assigns its result last, so running it again (which Batch may do) is
// harmless.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/groupcommit"
)

// Buckets, declared once and all created by Open.
var (
	bucketEvents = []byte("events")
	bucketIDs    = []byte("ids")
	bucketHeads  = []byte("heads")
	bucketMeta   = []byte("meta")
	buckets      = [][]byte{bucketEvents, bucketIDs, bucketHeads, bucketMeta}
)

var (
	keySchema     = []byte("schema")
	schemaVersion = []byte("1")
)

// Options tune Open. The zero value is fine.
type Options struct {
	// Timeout bounds the wait for the file lock. Default 5s.
	Timeout time.Duration
}

// Store is an audit.Store over one bbolt file. It is safe for concurrent
// use.
type Store struct {
	db *bolt.DB
	// commit groups concurrent appends into one transaction and fsync
	// without holding a lone append back (DB.Batch would, for its delay).
	commit *groupcommit.Committer
}

var _ audit.Store = (*Store)(nil)

var marshal = proto.MarshalOptions{Deterministic: true}

// Open opens (creating if needed) the database at path, with mode 0600.
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
		return nil, fmt.Errorf("open %s: the file is locked by another process (is another ozauditd running on it?)", path)
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
	return &Store{db: db, commit: groupcommit.New(db)}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Path returns the database file's path.
func (s *Store) Path() string { return s.db.Path() }

// Check runs bbolt's consistency check over the whole file.
func (s *Store) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() {
			if first == nil {
				first = err
			}
		}
		return first
	})
}

func chainPrefix(team string) []byte { return append([]byte(team), 0) }

func eventKey(team string, seq int64) []byte {
	return binary.BigEndian.AppendUint64(chainPrefix(team), uint64(seq))
}

func readHead(b *bolt.Bucket, team string) (auditchain.Head, error) {
	v := b.Get(chainPrefix(team))
	if v == nil {
		return auditchain.Head{}, nil
	}
	if len(v) != 8+auditchain.HashSize {
		return auditchain.Head{}, fmt.Errorf("head of chain %s: corrupt record", auditchain.Name(team))
	}
	return auditchain.Head{Seq: int64(binary.BigEndian.Uint64(v)), Hash: bytes.Clone(v[8:])}, nil
}

// Append implements audit.Store.
func (s *Store) Append(ctx context.Context, events []*auditv1.Event, now time.Time) (audit.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return audit.AppendResult{}, err
	}
	appendTime := timestamppb.New(now)
	var res audit.AppendResult
	err := s.commit.Do(func(tx *bolt.Tx) error {
		var r audit.AppendResult
		evb, idb, hb := tx.Bucket(bucketEvents), tx.Bucket(bucketIDs), tx.Bucket(bucketHeads)
		heads := make(map[string]auditchain.Head)
		for _, in := range events {
			id := []byte(in.GetId())
			if idb.Get(id) != nil {
				r.Duplicates++
				continue
			}
			team := in.GetTeam()
			head, ok := heads[team]
			if !ok {
				var err error
				if head, err = readHead(hb, team); err != nil {
					return err
				}
			}
			ev := proto.Clone(in).(*auditv1.Event)
			ev.AppendTime = appendTime
			heads[team] = head.Link(ev)
			b, err := marshal.Marshal(ev)
			if err != nil {
				return fmt.Errorf("marshal event %s: %w", ev.GetId(), err)
			}
			key := eventKey(team, ev.GetSeq())
			if err := evb.Put(key, b); err != nil {
				return err
			}
			if err := idb.Put(id, key); err != nil {
				return err
			}
			r.Appended++
		}
		for team, h := range heads {
			v := binary.BigEndian.AppendUint64(nil, uint64(h.Seq))
			if err := hb.Put(chainPrefix(team), append(v, h.Hash...)); err != nil {
				return err
			}
		}
		res = r
		return nil
	})
	if err != nil {
		return audit.AppendResult{}, err
	}
	return res, nil
}

func decode(v []byte) (*auditv1.Event, error) {
	ev := &auditv1.Event{}
	if err := proto.Unmarshal(v, ev); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	return ev, nil
}

// List implements audit.Store.
func (s *Store) List(ctx context.Context, q audit.Query) (*audit.Page, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 || q.ScanLimit <= 0 {
		return nil, errors.New("list: Limit and ScanLimit must be positive")
	}
	page := &audit.Page{}
	prefix := chainPrefix(q.Team)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		var k, v []byte
		if q.BeforeSeq > 0 {
			k, _ = c.Seek(eventKey(q.Team, q.BeforeSeq))
		} else {
			// The first key past the chain: prefix with every seq byte 0xff.
			k, _ = c.Seek(append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
		}
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		scanned := 0
		var lastSeq int64
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, v = c.Prev() {
			lastSeq = int64(binary.BigEndian.Uint64(k[len(prefix):]))
			scanned++
			ev, err := decode(v)
			if err != nil {
				return err
			}
			if q.Filter.Match(ev) {
				page.Events = append(page.Events, ev)
			}
			if len(page.Events) >= q.Limit || scanned >= q.ScanLimit {
				break
			}
		}
		if lastSeq > 1 && (len(page.Events) >= q.Limit || scanned >= q.ScanLimit) {
			// Go on below the last event examined, unless it was the
			// chain's first.
			if k, _ = c.Prev(); k != nil && bytes.HasPrefix(k, prefix) {
				page.NextBeforeSeq = lastSeq
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// Range implements audit.Store.
func (s *Store) Range(ctx context.Context, team string, from int64, limit int) ([]*auditv1.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []*auditv1.Event
	prefix := chainPrefix(team)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(eventKey(team, max(from, 1))); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
			if len(k) != len(prefix)+8 {
				continue
			}
			ev, err := decode(v)
			if err != nil {
				return err
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// Head implements audit.Store.
func (s *Store) Head(ctx context.Context, team string) (auditchain.Head, error) {
	if err := ctx.Err(); err != nil {
		return auditchain.Head{}, err
	}
	var h auditchain.Head
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		h, err = readHead(tx.Bucket(bucketHeads), team)
		return err
	})
	return h, err
}
