// Package auditchain is the audit log's hash chain: the canonical encoding
// of an event, its hash, and the verification of a chain — the same code
// for the audit service (when it appends and in VerifyChain) and for `oz
// audit verify --file`, which checks an export offline. It depends on
// nothing but the generated API, and lives in lib so that both the services
// and the CLI import it.
//
// # One chain per team
//
// Every team has its own chain, and events that belong to no team (users,
// tokens, runners, requests denied before a team was known) form one more,
// the system chain. A single global chain would also detect the deletion
// of a whole team's events, but it would make a team's export unverifiable
// without the other teams' events, which its admins may not see: audit
// events of a team are for that team's admins (DESIGN §3), and with one
// chain per team an admin can export, keep and verify everything they may
// read, alone. The deletion of a whole chain (or of its last events) is
// caught instead by the head: VerifyChain reports each chain's head (seq
// and hash), the store keeps heads apart from the events, and a head
// recorded elsewhere (a ticket, a previous export) pins what must be
// there. A chain per team also keeps ListEvents a scan of one team's
// events.
//
// # Canonical encoding, version 1
//
// The hash of an event is SHA-256 over this byte string, where str(s) is a
// 4-byte big-endian length followed by the bytes, u32 and u64 are
// big-endian, and ts(t) is one byte 0 for an absent timestamp, else 1
// followed by u64(seconds) and u32(nanos):
//
//	"oz.audit.event.v1" 0x00
//	u64(seq) str(team) str(id) ts(time)
//	u32(actor.kind) str(actor.name) str(actor.client)
//	str(action) str(resource) u32(outcome) str(request_id) str(run_id)
//	u32(number of details), then str(key) str(value) for each, keys in byte order
//	ts(append_time) str(prev_hash)
//
// Enums are encoded by number, which protobuf never reassigns; every field
// of Event but hash is covered. An event added to the Event message later
// needs a new encoding version.
package auditchain

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
)

// domain opens every encoding: a hash of version 1 can never equal a hash
// of anything else.
const domain = "oz.audit.event.v1\x00"

// HashSize is the size of an event hash.
const HashSize = sha256.Size

// SystemChain is the parent name of the system chain, whose events have no
// team.
const SystemChain = "system"

// Name returns the parent name of team's chain: "teams/{team}", or
// SystemChain for "".
func Name(team string) string {
	if team == "" {
		return SystemChain
	}
	return "teams/" + team
}

// Encode returns the canonical encoding of ev (see the package doc): every
// field but Hash.
func Encode(ev *auditv1.Event) []byte {
	// Sized once: growing the slice field by field was a third of the
	// cost of hashing a chain (BenchmarkVerify in services/audit).
	b := make([]byte, 0, EncodedLen(ev))
	b = append(b, domain...)
	b = binary.BigEndian.AppendUint64(b, uint64(ev.GetSeq()))
	b = appendStr(b, ev.GetTeam())
	b = appendStr(b, ev.GetId())
	b = appendTime(b, ev.GetTime())
	b = binary.BigEndian.AppendUint32(b, uint32(ev.GetActor().GetKind()))
	b = appendStr(b, ev.GetActor().GetName())
	b = appendStr(b, ev.GetActor().GetClient())
	b = appendStr(b, ev.GetAction())
	b = appendStr(b, ev.GetResource())
	b = binary.BigEndian.AppendUint32(b, uint32(ev.GetOutcome()))
	b = appendStr(b, ev.GetRequestId())
	b = appendStr(b, ev.GetRunId())
	details := ev.GetDetails()
	keys := make([]string, 0, len(details))
	for k := range details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		b = appendStr(b, k)
		b = appendStr(b, details[k])
	}
	b = appendTime(b, ev.GetAppendTime())
	b = appendStr(b, string(ev.GetPrevHash()))
	return b
}

// EncodedLen is len(Encode(ev)), computed without encoding: for size
// limits on a hot path (every event an outbox takes).
func EncodedLen(ev *auditv1.Event) int {
	timeLen := func(t *timestamppb.Timestamp) int {
		if t == nil {
			return 1
		}
		return 1 + 8 + 4
	}
	n := len(domain) + 8 + timeLen(ev.GetTime()) + 4 + 4 + timeLen(ev.GetAppendTime()) + 4
	for _, s := range []string{ev.GetTeam(), ev.GetId(), ev.GetActor().GetName(), ev.GetActor().GetClient(),
		ev.GetAction(), ev.GetResource(), ev.GetRequestId(), ev.GetRunId(), string(ev.GetPrevHash())} {
		n += 4 + len(s)
	}
	for k, v := range ev.GetDetails() {
		n += 4 + len(k) + 4 + len(v)
	}
	return n
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t *timestamppb.Timestamp) []byte {
	if t == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(t.GetSeconds()))
	return binary.BigEndian.AppendUint32(b, uint32(t.GetNanos()))
}

// Hash returns the hash ev should carry: SHA-256 of Encode(ev).
func Hash(ev *auditv1.Event) []byte {
	h := sha256.Sum256(Encode(ev))
	return h[:]
}

// Head is the last link of a chain. The zero Head is an empty chain.
type Head struct {
	Seq  int64
	Hash []byte
}

// String shows the head for people: "seq 12 hash 3f2a…" (the full hash).
func (h Head) String() string {
	if h.Seq == 0 {
		return "empty chain"
	}
	return fmt.Sprintf("seq %d hash %s", h.Seq, hex.EncodeToString(h.Hash))
}

// Link makes ev the next event after h: it sets ev's Seq, PrevHash and
// Hash (every other field must be final), and returns the new head.
func (h Head) Link(ev *auditv1.Event) Head {
	ev.Seq = h.Seq + 1
	ev.PrevHash = slices.Clone(h.Hash)
	ev.Hash = nil
	ev.Hash = Hash(ev)
	return Head{Seq: ev.Seq, Hash: slices.Clone(ev.Hash)}
}

// Break is the first link of a chain that does not verify.
type Break struct {
	Seq     int64  // the seq the broken event has, or should have had
	EventID string // the event found at that place
	Reason  string // for people
}

func (b *Break) Error() string {
	if b.EventID == "" {
		return fmt.Sprintf("chain broken at seq %d: %s", b.Seq, b.Reason)
	}
	return fmt.Sprintf("chain broken at seq %d (event %s): %s", b.Seq, b.EventID, b.Reason)
}

// Verifier checks a chain's events one at a time, in chain order. The zero
// value is not usable; see NewVerifier and Resume.
type Verifier struct {
	team    string
	teamSet bool // team is known: given to Resume, or the first event's
	head    Head
	count   int64
	broken  *Break
}

// NewVerifier verifies a chain from its first event (seq 1).
func NewVerifier() *Verifier { return &Verifier{} }

// Resume verifies the rest of team's chain after head, which was verified
// (or is trusted) already.
func Resume(team string, head Head) *Verifier {
	return &Verifier{team: team, teamSet: true, head: Head{Seq: head.Seq, Hash: slices.Clone(head.Hash)}}
}

// Check verifies the next event. It returns a *Break for the first event
// that is not the right next link (and the same Break for every later
// call): a seq out of order (a missing, repeated or moved event), an event
// of another team, a prev_hash that is not the previous event's hash, or a
// hash that is not the hash of the event's content.
func (v *Verifier) Check(ev *auditv1.Event) error {
	if v.broken != nil {
		return v.broken
	}
	want := v.head.Seq + 1
	brk := func(seq int64, format string, args ...any) error {
		v.broken = &Break{Seq: seq, EventID: ev.GetId(), Reason: fmt.Sprintf(format, args...)}
		return v.broken
	}
	switch {
	case v.head.Seq == 0 && ev.GetSeq() != 1:
		return brk(1, "the chain does not start here: found seq %d, want seq 1 (events missing before it)", ev.GetSeq())
	case ev.GetSeq() < want:
		return brk(want, "found seq %d after seq %d: an event is repeated or out of order", ev.GetSeq(), v.head.Seq)
	case ev.GetSeq() > want:
		return brk(want, "found seq %d, want seq %d: an event is missing or out of order", ev.GetSeq(), want)
	}
	if !v.teamSet {
		v.team, v.teamSet = ev.GetTeam(), true
	} else if ev.GetTeam() != v.team {
		return brk(want, "the event belongs to chain %s, not %s", Name(ev.GetTeam()), Name(v.team))
	}
	if !bytes.Equal(ev.GetPrevHash(), v.head.Hash) {
		if want == 1 {
			return brk(want, "prev_hash of the first event must be empty")
		}
		return brk(want, "prev_hash does not match the hash of event seq %d", v.head.Seq)
	}
	if !bytes.Equal(ev.GetHash(), Hash(ev)) {
		return brk(want, "hash does not match the event's content: the event was changed")
	}
	v.head = Head{Seq: ev.GetSeq(), Hash: slices.Clone(ev.GetHash())}
	v.count++
	return nil
}

// Head returns the last event verified (the head it resumed from before
// any).
func (v *Verifier) Head() Head { return v.head }

// Count returns how many events verified.
func (v *Verifier) Count() int64 { return v.count }

// Team returns the team of the chain ("" for the system chain, and before
// the first event).
func (v *Verifier) Team() string { return v.team }

// Break returns the first broken link, or nil.
func (v *Verifier) Break() *Break { return v.broken }
