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
	// order is commit order. An assigned id is not stored (len(id) is 0,
	// and the Event has no Id): it is "{emitter}-{epoch}-{sequence}", made
	// from the key when read, so that the record can be encoded before
	// its transaction knows the sequence. Records of earlier versions
	// stored every id; they read the same. (A version before this one
	// reads a record without a stored id as an event without an id: drain
	// the outbox before downgrading past it.)
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
	// idShape is id(0): Prepare validates an event to be assigned an id
	// with it, as every assigned id has its shape and length.
	idShape string
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
	b.idShape = b.id(0)
	return b, nil
}

// OnCommit sets fn (typically Shipper.Notify) to run after every commit of
// a transaction that added events. Set it before the first Add.
func (b *Bolt) OnCommit(fn func()) { b.notify.Store(&fn) }

// Add writes ev into the outbox within tx, the transaction of the change
// it records: Prepare then AddPrepared. It assigns an empty Id
// ("{emitter}-{epoch}-{sequence}"; a given one must start with
// "{emitter}-") and an empty Time (now), clears the chain fields, and
// validates the event with audit.ValidateEvent: an invalid event is an
// error, which the caller returns so that the change rolls back. ev itself
// is not modified, so Add is safe in a db.Batch function that may run
// twice.
//
// Add does all of Prepare's work inside the transaction, where bbolt runs
// one writer at a time. On a hot path whose event is known before the
// transaction, call Prepare before db.Batch and AddPrepared inside it.
func (b *Bolt) Add(tx *bolt.Tx, ev *auditv1.Event) error {
	p, err := b.Prepare(ev)
	if err != nil {
		return err
	}
	return b.AddPrepared(tx, p)
}

// Prepared is an event made ready by Prepare for AddPrepared: copied,
// completed, validated and encoded. It is immutable, and only the Bolt
// that prepared it adds it.
type Prepared struct {
	b *Bolt
	// value is the outbox record without its key (see bucketOutbox).
	value []byte
	// action names the event in errors.
	action string
}

// Prepare does all the work of Add that needs no transaction, so that a
// caller can do it before db.Batch and keep the batch's single-threaded
// transaction short:
//
//	p, err := ob.Prepare(ev) // copy, fill, validate, encode
//	if err != nil {
//		return err
//	}
//	return db.Batch(func(tx *bbolt.Tx) error {
//		if err := putSecret(tx, rec); err != nil {
//			return err
//		}
//		return ob.AddPrepared(tx, p) // a sequence number and one Put
//	})
//
// It copies ev (ev is not modified), gives it the current time when it has
// none, clears the chain fields and validates it with audit.ValidateEvent,
// as Add does. An empty Id is assigned by AddPrepared from the outbox's
// sequence; ev is validated with an id of the same shape and length, so
// that the result is the one the assigned id gets. A given Id must start
// with "{emitter}-". It returns an errs.KindInvalid error for an invalid
// event.
func (b *Bolt) Prepare(ev *auditv1.Event) (*Prepared, error) {
	if ev == nil {
		return nil, errs.Field("audit event", "is required")
	}
	e := proto.Clone(ev).(*auditv1.Event)
	given := e.Id
	if given != "" && !strings.HasPrefix(given, b.emitter+"-") {
		// The audit service would refuse it for good, blocking the outbox.
		return nil, errs.Field("audit event.id", "must start with %q (the emitter's name); leave it empty to have one assigned", b.emitter+"-")
	}
	if e.Time == nil {
		e.Time = timestamppb.New(time.Now())
	}
	e.Seq, e.PrevHash, e.Hash, e.AppendTime = 0, nil, nil, nil
	if given == "" {
		// Every assigned id differs from this one only in its hex digits:
		// ValidateEvent's answer (characters, lengths, encoded size) is
		// the same for all of them.
		e.Id = b.idShape
	}
	if err := audit.ValidateEvent("audit event", e); err != nil {
		return nil, err
	}
	// An assigned id is not stored: Pending and Ack derive it from the
	// record's key.
	e.Id = given
	body, err := proto.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("outbox: marshal event: %w", err)
	}
	v := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(given)+len(body)), uint64(len(given)))
	v = append(append(v, given...), body...)
	return &Prepared{b: b, value: v, action: e.GetAction()}, nil
}

// AddPrepared writes p into the outbox within tx, the transaction of the
// change it records: it takes the outbox's next sequence number (which
// orders the events and, for an event without a given id, makes its id)
// and puts p's bytes under it. It does not modify p, so it is safe in a
// db.Batch function that may run twice; add a Prepared once per
// transaction.
func (b *Bolt) AddPrepared(tx *bolt.Tx, p *Prepared) error {
	if p == nil || p.b != b {
		return errors.New("outbox: AddPrepared of an event not prepared by this outbox")
	}
	bk := tx.Bucket(bucketOutbox)
	if bk == nil {
		return errNoBucket
	}
	seq, err := bk.NextSequence()
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	// bbolt keeps the value until the transaction ends; p.value is never
	// written to, so sharing it is safe.
	if err := bk.Put(binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq), p.value); err != nil {
		return fmt.Errorf("outbox: %s event: %w", p.action, err)
	}
	if fn := b.notify.Load(); fn != nil {
		tx.OnCommit(*fn)
	}
	return nil
}

// id is the assigned id of the event at sequence seq.
func (b *Bolt) id(seq uint64) string {
	return fmt.Sprintf("%s-%s-%016x", b.emitter, b.epoch, seq)
}

// splitValue returns the id and the encoded event of the outbox record
// k → v. An empty stored id is the assigned one, made from k's sequence.
func (b *Bolt) splitValue(k, v []byte) (id string, body []byte, err error) {
	n, w := binary.Uvarint(v)
	if w <= 0 || uint64(len(v)-w) < n || len(k) != 8 {
		return "", nil, errors.New("outbox: corrupt record")
	}
	if n == 0 {
		return b.id(binary.BigEndian.Uint64(k)), v[w:], nil
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
			id, body, err := b.splitValue(k, v)
			if err != nil {
				return err
			}
			ev := &auditv1.Event{}
			if err := proto.Unmarshal(body, ev); err != nil {
				return fmt.Errorf("outbox: decode event: %w", err)
			}
			ev.Id = id
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
			id, _, err := b.splitValue(k, v)
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
