package outbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// Buckets of a bbolt outbox, in the emitting service's own database.
var (
	// bucketOutbox: sequence (8 bytes, big-endian, from the bucket's
	// NextSequence) → uvarint(len(id)) + id + the Event (protobuf). Key
	// order is commit order.
	bucketOutbox = []byte("outbox")
	// bucketMeta holds the outbox's epoch.
	bucketMeta = []byte("outbox_meta")
	keyEpoch   = []byte("epoch")
)

// Bolt is an outbox in a bbolt database that the emitting service also
// keeps its data in, so that a change and its event commit together. It
// implements Source and Counter.
type Bolt struct {
	db      *bolt.DB
	emitter string
	epoch   string
	notify  atomic.Pointer[func()]
}

var (
	_ Source  = (*Bolt)(nil)
	_ Counter = (*Bolt)(nil)
)

// NewBolt creates the outbox's buckets in db (if missing) and returns the
// outbox. emitter is the service's certificate name; event ids are
// "{emitter}-{epoch}-{sequence}", where the epoch is 64 random bits drawn
// when the outbox is first created: a service whose database is replaced
// does not reuse the ids of its earlier events (which the audit service
// would skip as duplicates).
func NewBolt(db *bolt.DB, emitter string) (*Bolt, error) {
	if emitter == "" {
		return nil, errors.New("outbox: emitter name required")
	}
	b := &Bolt{db: db, emitter: emitter}
	err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketOutbox); err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketOutbox, err)
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketMeta, err)
		}
		if v := meta.Get(keyEpoch); v != nil {
			b.epoch = string(v)
			return nil
		}
		var rnd [8]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return err
		}
		b.epoch = hex.EncodeToString(rnd[:])
		return meta.Put(keyEpoch, []byte(b.epoch))
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return b, nil
}

// OnCommit sets fn (typically Shipper.Notify) to run after every commit of
// a transaction that added events. Set it before the first Add.
func (b *Bolt) OnCommit(fn func()) { b.notify.Store(&fn) }

// Add writes ev into the outbox within tx, the transaction of the change
// it records. It assigns an empty Id ("{emitter}-{epoch}-{sequence}"; a
// given one must start with "{emitter}-") and
// an empty Time (now), clears the chain fields, and validates the event
// with audit.ValidateEvent: an invalid event is an error, which the caller
// returns so that the change rolls back. ev itself is not modified, so Add
// is safe in a db.Batch function that may run twice.
func (b *Bolt) Add(tx *bolt.Tx, ev *auditv1.Event) error {
	bk := tx.Bucket(bucketOutbox)
	if bk == nil {
		return errNoBucket
	}
	seq, err := bk.NextSequence()
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	e := proto.Clone(ev).(*auditv1.Event)
	switch {
	case e.Id == "":
		e.Id = fmt.Sprintf("%s-%s-%016x", b.emitter, b.epoch, seq)
	case !strings.HasPrefix(e.Id, b.emitter+"-"):
		// The audit service would refuse it for good, blocking the outbox.
		return errs.Field("audit event.id", "must start with %q (the emitter's name); leave it empty to have one assigned", b.emitter+"-")
	}
	if e.Time == nil {
		e.Time = timestamppb.New(time.Now())
	}
	e.Seq, e.PrevHash, e.Hash, e.AppendTime = 0, nil, nil, nil
	if err := audit.ValidateEvent("audit event", e); err != nil {
		return err
	}
	body, err := proto.Marshal(e)
	if err != nil {
		return fmt.Errorf("outbox: marshal event: %w", err)
	}
	v := binary.AppendUvarint(nil, uint64(len(e.Id)))
	v = append(append(v, e.Id...), body...)
	if err := bk.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if fn := b.notify.Load(); fn != nil {
		tx.OnCommit(*fn)
	}
	return nil
}

// splitValue returns the id and the encoded event of an outbox value.
func splitValue(v []byte) (id string, body []byte, err error) {
	n, w := binary.Uvarint(v)
	if w <= 0 || uint64(len(v)-w) < n {
		return "", nil, errors.New("outbox: corrupt record")
	}
	return string(v[w : w+int(n)]), v[w+int(n):], nil
}

// Pending implements Source.
func (b *Bolt) Pending(ctx context.Context, max int) ([]*auditv1.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []*auditv1.Event
	err := b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketOutbox)
		if bk == nil {
			return errNoBucket
		}
		c := bk.Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			_, body, err := splitValue(v)
			if err != nil {
				return err
			}
			ev := &auditv1.Event{}
			if err := proto.Unmarshal(body, ev); err != nil {
				return fmt.Errorf("outbox: decode event: %w", err)
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// Ack implements Source. Delivered events are the oldest, so it walks from
// the first key and stops once every id is found.
func (b *Bolt) Ack(ctx context.Context, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketOutbox)
		if bk == nil {
			return errNoBucket
		}
		var keys [][]byte
		found := 0
		c := bk.Cursor()
		for k, v := c.First(); k != nil && found < len(want); k, v = c.Next() {
			id, _, err := splitValue(v)
			if err != nil {
				return err
			}
			if want[id] {
				keys = append(keys, bytes.Clone(k))
				found++
			}
		}
		// Delete after the walk: deleting under a cursor can skip keys.
		for _, k := range keys {
			if err := bk.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Backlog implements Counter.
func (b *Bolt) Backlog(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int
	err := b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketOutbox)
		if bk == nil {
			return errNoBucket
		}
		n = bk.Stats().KeyN
		return nil
	})
	return n, err
}
