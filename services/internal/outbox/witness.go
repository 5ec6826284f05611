package outbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/ozsecrets/oz/lib/auditchain"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// Witnesses: the audit log's chains as the emitter saw them.
//
// The audit log is the audit service's store alone: restored from an
// older backup, or replaced by a shorter log that itself verifies, it
// would verify as if nothing had happened. So each emitter keeps, in its
// own store beside its outbox, a witness of every chain it delivered to:
// the seq and hash of its last event there, as the audit service
// acknowledged it (AppendEventsResponse.heads). A log that went backwards
// no longer holds that event. The audit service checks the witnesses
// twice: each delivery carries those of the batch's chains (a delivery
// onto a rolled-back log is logged and counted, and appended all the
// same: losing new events would be worse), and VerifyChain asks every
// emitter for its witness of the chain it verifies (WitnessServer), so
// that `oz audit verify` fails even when nothing new is delivered.
//
// A witness only moves forward (a greater seq). One the audit service
// reports it does not hold is kept as it is — the shipper does not
// replace it by the heads of that delivery — so verification goes on
// failing until the log holds that event again (its latest backup
// restored): the events between are lost, and a log that grew again
// past the witness's seq holds another event there.

// Witness is an event of a chain as the audit service acknowledged it to
// the emitter: the chain held it, at Seq, with Hash.
type Witness struct {
	Chain string // "teams/{team}" or "system" (auditchain.Name)
	Seq   int64  // from 1
	Hash  []byte // auditchain.HashSize bytes
}

// Witnessed is an optional capability of a Source: keeping the witnesses
// of the chains its events were delivered to. The Shipper uses it when the
// Source has it. Implementations are safe for concurrent use, also by
// replicas sharing a store.
type Witnessed interface {
	// Witnesses returns the witnesses kept of chains, by chain; a chain
	// without one is absent.
	Witnesses(ctx context.Context, chains []string) (map[string]Witness, error)
	// AckWitnessed is Ack, keeping ws as the new witnesses of their
	// chains in the same writes: all of them in, or before, the first
	// write that deletes, so that a delivered event is never deleted
	// before its witness is kept. A witness replaces the one kept only
	// when its seq is greater.
	AckWitnessed(ctx context.Context, ids []string, ws []Witness) error
}

var _ Witnessed = (*KV)(nil)

// prefixWitness is where a KV keeps its witnesses: one key per chain,
// auditwitness/{chain}, with seq (8 bytes, big-endian) + hash. Not under
// prefixKV: Pending reads every key there as an event.
const prefixWitness = "auditwitness/"

func witnessKey(chain string) string { return prefixWitness + chain }

func encodeWitness(w Witness) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(w.Hash)), uint64(w.Seq)), w.Hash...)
}

func decodeWitness(chain string, v []byte) (Witness, error) {
	if len(v) != 8+auditchain.HashSize {
		return Witness{}, fmt.Errorf("audit witness of chain %s: corrupt record", chain)
	}
	return Witness{Chain: chain, Seq: int64(binary.BigEndian.Uint64(v)), Hash: slices.Clone(v[8:])}, nil
}

// Valid reports whether w can be a witness: a chain name, a seq from 1, a
// hash of the right size.
func (w Witness) Valid() bool {
	return w.Seq > 0 && len(w.Hash) == auditchain.HashSize && validChain(w.Chain)
}

func validChain(chain string) bool {
	_, err := audit.ParseParent("chain", chain)
	return err == nil
}

// Witnesses implements Witnessed.
func (o *KV) Witnesses(ctx context.Context, chains []string) (map[string]Witness, error) {
	out, _, err := o.readWitnesses(ctx, chains)
	return out, err
}

// readWitnesses returns the witnesses kept of chains, and the values read
// by key (nil: absent), for the conditions of a write.
func (o *KV) readWitnesses(ctx context.Context, chains []string) (map[string]Witness, map[string][]byte, error) {
	out := make(map[string]Witness, len(chains))
	raw := make(map[string][]byte, len(chains))
	for rest := chains; len(rest) > 0; {
		n := min(len(rest), kv.MaxGetMany)
		keys := make([]string, n)
		for i, c := range rest[:n] {
			keys[i] = witnessKey(c)
		}
		vals, err := o.store.GetMany(ctx, keys)
		if err != nil {
			return nil, nil, fmt.Errorf("read the audit witnesses: %w", err)
		}
		for i, c := range rest[:n] {
			raw[keys[i]] = vals[i]
			if vals[i] == nil {
				continue
			}
			w, err := decodeWitness(c, vals[i])
			if err != nil {
				return nil, nil, err
			}
			out[c] = w
		}
		rest = rest[n:]
	}
	return out, raw, nil
}

// maxWitnessConflicts bounds the retries of AckWitnessed when replicas
// move the same witnesses at once.
const maxWitnessConflicts = 10

// AckWitnessed implements Witnessed. The witnesses are written on the
// condition that each is still what was read, so that two replicas'
// shippers never move one back (on a conflict they are read again); the
// first Apply holds them (or, when there are too many for one, the last
// of the Applies of witnesses alone) and as many deletions as fit, the
// rest follow as Ack makes them. Invalid witnesses are ignored.
func (o *KV) AckWitnessed(ctx context.Context, ids []string, ws []Witness) error {
	dels := o.deletions(ids)
	const half = maxApplyOps / 2 // a condition and a write per witness
	for conflicts := 0; ; conflicts++ {
		conds, puts, err := o.witnessWrites(ctx, ws)
		if err != nil {
			return err
		}
		if len(puts) == 0 {
			return o.applyDeletions(ctx, dels)
		}
		for len(puts) > half && err == nil {
			if err = o.store.Apply(ctx, conds[:half], puts[:half]); err == nil {
				conds, puts = conds[half:], puts[half:]
			}
		}
		n := 0
		if err == nil {
			n = min(len(dels), maxApplyOps-len(conds)-len(puts))
			err = o.store.Apply(ctx, conds, append(puts, dels[:n]...))
		}
		if _, ok := errors.AsType[*kv.ConflictError](err); ok && conflicts < maxWitnessConflicts {
			continue // another replica moved a witness: read them again
		}
		if err != nil {
			return witnessErr(err)
		}
		o.ackedDeletions(dels[:n])
		return o.applyDeletions(ctx, dels[n:])
	}
}

func witnessErr(err error) error {
	return fmt.Errorf("keep the audit witnesses: %w", err)
}

// witnessWrites returns the writes that move the kept witnesses forward
// to ws, and their conditions: each key still holds what was read.
func (o *KV) witnessWrites(ctx context.Context, ws []Witness) ([]kv.Cond, []kv.Write, error) {
	best := map[string]Witness{} // the greatest of ws for each chain
	var chains []string
	for _, w := range ws {
		if !w.Valid() {
			continue
		}
		b, ok := best[w.Chain]
		if !ok {
			chains = append(chains, w.Chain)
		}
		if !ok || w.Seq > b.Seq {
			best[w.Chain] = w
		}
	}
	if len(chains) == 0 {
		return nil, nil, nil
	}
	slices.Sort(chains)
	kept, raw, err := o.readWitnesses(ctx, chains)
	if err != nil {
		return nil, nil, err
	}
	var conds []kv.Cond
	var puts []kv.Write
	for _, c := range chains {
		w := best[c]
		if old, ok := kept[c]; ok && old.Seq >= w.Seq {
			continue
		}
		key := witnessKey(c)
		if v := raw[key]; v == nil {
			conds = append(conds, kv.Absent(key))
		} else {
			conds = append(conds, kv.Equal(key, v))
		}
		puts = append(puts, kv.Put(key, encodeWitness(w)))
	}
	return conds, puts, nil
}
