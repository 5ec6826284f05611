package audit

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// Witnesses: a log that went backwards.
//
// The log is this service's store alone. Restored from an older backup,
// or replaced by a shorter log that itself verifies, it would verify as
// if nothing had happened. So every emitting service keeps, in its own
// store beside its outbox, a witness of each chain it delivered to: the
// seq and hash of its last event there, as Append acknowledged it
// (AppendResult.Heads; services/internal/outbox keeps them). A log that
// went backwards no longer holds that event. The witnesses are checked
// twice:
//
//   - Verify asks every emitter for its witness of the chain (Witnesses),
//     before reading the chain, and fails when the chain does not hold
//     it, naming the emitter and what it saw: this notices a rollback
//     even when nothing new is delivered.
//   - Append checks the witnesses each delivery carries before appending.
//     A delivery onto a log that went backwards is logged and counted
//     (oz_audit_witness_failures_total), and appended all the same:
//     losing the new events would be worse than appending them to a
//     rolled-back chain, which Verify reports anyway. The chains are
//     returned (AppendResult.Unheld), so that the emitter keeps its
//     witness rather than take the new head: Verify goes on failing.

// Witness is an event of a chain as an emitting service saw it
// acknowledged.
type Witness struct {
	Team string // the chain's team; "" for the system chain
	Head auditchain.Head
}

// EmitterWitness is what one emitting service answered when asked for its
// witness of a chain.
type EmitterWitness struct {
	Emitter string // "secretstore", "resolver"
	// Head is its witness; the zero Head when it delivered no event of
	// the chain.
	Head auditchain.Head
	// Err is set when it could not be asked (down, or too old to keep
	// witnesses); Head is then zero.
	Err error
}

// Witnesses asks the emitting services for their witnesses. It is
// optional: without it (Config.Witnesses nil and an Inventory that is not
// one), Verify checks the links alone.
type Witnesses interface {
	// Witnesses returns the witness of chain ("teams/{team}", "system") of
	// every emitting service, in a fixed order; one that does not answer
	// has Err set. It returns once each has answered or failed: the calls
	// are bounded by the caller's deadline and the connection's.
	Witnesses(ctx context.Context, chain string) []EmitterWitness
}

// WitnessCheck is how a chain compares with one emitter's witness.
type WitnessCheck struct {
	Emitter string
	Head    auditchain.Head // the witness (zero: none, or not asked)
	State   auditv1.WitnessState
	Reason  string // for people; empty when held
}

// Failed reports whether the chain does not hold the witness: the log went
// backwards.
func (c WitnessCheck) Failed() bool {
	return c.State == auditv1.WitnessState_WITNESS_STATE_LOG_SHORTER || c.State == auditv1.WitnessState_WITNESS_STATE_LOG_DIFFERS
}

// check compares team's chain with w, the witness of emitter.
func (s *Service) check(ctx context.Context, team, emitter string, w auditchain.Head) (WitnessCheck, error) {
	if w.Seq == 0 {
		return WitnessCheck{Emitter: emitter, State: auditv1.WitnessState_WITNESS_STATE_NONE}, nil
	}
	evs, err := s.eventsAt(ctx, []Witness{{Team: team, Head: w}})
	if err != nil {
		return WitnessCheck{}, err
	}
	return s.compare(ctx, team, emitter, w, evs[0])
}

// compare compares w, the witness of emitter, with at, the event of
// team's chain at its seq (nil: none).
func (s *Service) compare(ctx context.Context, team, emitter string, w auditchain.Head, at *auditv1.Event) (WitnessCheck, error) {
	c := WitnessCheck{Emitter: emitter, Head: w}
	switch {
	case at != nil && string(at.GetHash()) == string(w.Hash):
		c.State = auditv1.WitnessState_WITNESS_STATE_HELD
	case at != nil:
		c.State = auditv1.WitnessState_WITNESS_STATE_LOG_DIFFERS
		c.Reason = fmt.Sprintf("the log is not the one the %s saw: its event %s has hash %s, the %s saw %s",
			emitter, count(w.Seq), short(at.GetHash()), emitter, short(w.Hash))
	default:
		head, err := s.store.Head(ctx, team)
		if err != nil {
			return WitnessCheck{}, fmt.Errorf("head of chain %s: %w", auditchain.Name(team), err)
		}
		if head.Seq >= w.Seq { // a hole, not a shorter log: the links do not verify either
			c.State = auditv1.WitnessState_WITNESS_STATE_LOG_DIFFERS
			c.Reason = fmt.Sprintf("the log lacks event %s, which the %s saw", count(w.Seq), emitter)
			break
		}
		c.State = auditv1.WitnessState_WITNESS_STATE_LOG_SHORTER
		c.Reason = fmt.Sprintf("the log went backwards: the %s saw %s events (head %s), the log holds %s",
			emitter, count(w.Seq), short(w.Hash), count(head.Seq))
	}
	return c, nil
}

// checkAll checks team's chain against each emitter's witness ws, in
// order; an emitter that did not answer is WITNESS_STATE_UNAVAILABLE.
func (s *Service) checkAll(ctx context.Context, team string, ws []EmitterWitness) ([]WitnessCheck, error) {
	out := make([]WitnessCheck, 0, len(ws))
	for _, w := range ws {
		if w.Err != nil {
			s.log.WarnContext(ctx, "verify: an emitting service's audit witness could not be read; the chain is verified without it",
				"emitter", w.Emitter, "chain", auditchain.Name(team), "err", w.Err.Error())
			out = append(out, WitnessCheck{Emitter: w.Emitter, State: auditv1.WitnessState_WITNESS_STATE_UNAVAILABLE,
				Reason: fmt.Sprintf("the %s did not answer: its witness was not checked", w.Emitter)})
			continue
		}
		c, err := s.check(ctx, team, w.Emitter, w.Head)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// checkDelivery checks the witnesses a delivery of emitter carries, and
// returns the teams of the chains that do not hold theirs, having logged
// each (once per witness in this process) and counted it.
func (s *Service) checkDelivery(ctx context.Context, emitter string, ws []Witness) ([]string, error) {
	if len(ws) == 0 {
		return nil, nil
	}
	events, err := s.eventsAt(ctx, ws)
	if err != nil {
		return nil, err
	}
	var unheld []string
	for i, w := range ws {
		c, err := s.compare(ctx, w.Team, emitter, w.Head, events[i])
		if err != nil {
			return nil, err
		}
		if !c.Failed() {
			continue
		}
		unheld = append(unheld, w.Team)
		s.witnessFailures.WithLabelValues(emitter).Inc()
		key := emitter + "\x00" + w.Team + "\x00" + strconv.FormatInt(w.Head.Seq, 10)
		if _, logged := s.backwardsLogged.LoadOrStore(key, true); !logged {
			s.log.ErrorContext(ctx, "the audit log went backwards (restored from an older copy, or replaced): "+
				"appending the new events all the same; `oz audit verify` reports it until the log's latest backup is restored",
				"emitter", emitter, "chain", auditchain.Name(w.Team), "reason", c.Reason)
		}
	}
	return unheld, nil
}

// eventsAt returns the events of the chains at the witnesses' seqs (nil
// where a chain has none): in one read when the store can.
func (s *Service) eventsAt(ctx context.Context, ws []Witness) ([]*auditv1.Event, error) {
	if r, ok := s.store.(EventReader); ok {
		at := make([]Place, len(ws))
		for i, w := range ws {
			at[i] = Place{Team: w.Team, Seq: w.Head.Seq}
		}
		evs, err := r.EventsAt(ctx, at)
		if err != nil {
			return nil, fmt.Errorf("read the witnessed events: %w", err)
		}
		return evs, nil
	}
	out := make([]*auditv1.Event, len(ws))
	for i, w := range ws {
		evs, err := s.store.Range(ctx, w.Team, w.Head.Seq, 1)
		if err != nil {
			return nil, fmt.Errorf("read event %d of chain %s: %w", w.Head.Seq, auditchain.Name(w.Team), err)
		}
		if len(evs) == 1 && evs[0].GetSeq() == w.Head.Seq {
			out[i] = evs[0]
		}
	}
	return out, nil
}

// validateWitnesses checks the witnesses of a delivery (field
// "witnesses").
func validateWitnesses(ws []Witness) error {
	if len(ws) > MaxBatch {
		return errs.Field("witnesses", "at most %d witnesses per call", MaxBatch)
	}
	for i, w := range ws {
		switch {
		case w.Team != "" && !ValidTeamID(w.Team):
			return errs.Field(fmt.Sprintf("witnesses[%d].chain", i), `must be "teams/{team}" or "system"`)
		case w.Head.Seq < 1:
			return errs.Field(fmt.Sprintf("witnesses[%d].seq", i), "must be at least 1")
		case len(w.Head.Hash) != auditchain.HashSize:
			return errs.Field(fmt.Sprintf("witnesses[%d].hash", i), "must be %d bytes", auditchain.HashSize)
		}
	}
	return nil
}

// short shows a hash for people: its first 8 hex digits.
func short(hash []byte) string {
	if len(hash) == 0 {
		return "(none)"
	}
	return hex.EncodeToString(hash[:min(len(hash), 4)]) + "…"
}

// count shows n with thousands separators: 1,011.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return s
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
