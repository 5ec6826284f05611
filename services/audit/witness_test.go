package audit_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/audit/kvstore"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// fakeWitnesses is an audit.Witnesses whose method calls the func field.
type fakeWitnesses struct {
	witnesses func(chain string) []audit.EmitterWitness
}

var _ audit.Witnesses = (*fakeWitnesses)(nil)

func (f *fakeWitnesses) Witnesses(_ context.Context, chain string) []audit.EmitterWitness {
	return f.witnesses(chain)
}

// rangeOnly hides the EventReader of the store it wraps: the Service then
// reads witnessed events with Range.
type rangeOnly struct{ audit.Store }

// witnessService is a Service over a new bbolt log, asking w for the
// emitters' witnesses, with its metrics in the registry returned.
func witnessService(t *testing.T, w audit.Witnesses) (*audit.Service, *prometheus.Registry) {
	t.Helper()
	return witnessServiceOver(t, w, func(s audit.Store) audit.Store { return s })
}

func witnessServiceOver(t *testing.T, w audit.Witnesses, wrap func(audit.Store) audit.Store) (*audit.Service, *prometheus.Registry) {
	t.Helper()
	kvs, _, err := kvstore.OpenBoltKV(filepath.Join(t.TempDir(), "audit.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kvs.Close() })
	store, err := kvstore.New(context.Background(), kvs, kvstore.BoltOptions)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	return audit.NewService(audit.Config{Store: wrap(store), Witnesses: w, Registerer: reg}), reg
}

var witnessEvents int

// secretEvents returns n events of the secretstore for team's chain.
func secretEvents(team string, n int) []*auditv1.Event {
	var out []*auditv1.Event
	for range n {
		witnessEvents++
		out = append(out, &auditv1.Event{
			Id: fmt.Sprintf("secretstore-w-%06d", witnessEvents), Time: timestamppb.New(reviewStart), Action: audit.ActionSecretCreate,
			Team: team, Resource: fmt.Sprintf("teams/%s/secrets/S%d", team, witnessEvents),
			Actor:   &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/alice", Client: "cli"},
			Outcome: auditv1.Outcome_OUTCOME_OK,
		})
	}
	return out
}

func fakeHash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// TestVerifyChecksWitnesses: Verify compares the chain with each
// emitter's witness. A chain shorter than a witness, or holding another
// event at its seq, fails, naming the emitter and the counts (the
// greatest witness when several fail); an emitter that saw nothing, or did
// not answer, fails nothing.
func TestVerifyChecksWitnesses(t *testing.T) {
	ctx := context.Background()
	var ws []audit.EmitterWitness
	svc, _ := witnessService(t, &fakeWitnesses{witnesses: func(chain string) []audit.EmitterWitness {
		if chain != "teams/acme" {
			t.Errorf("witnesses asked of %q, want teams/acme", chain)
		}
		return ws
	}})
	var heads []auditchain.Head // the head after each event
	for range 12 {
		res, err := svc.Append(ctx, "secretstore", secretEvents("acme", 1))
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, res.Heads["acme"])
	}
	at := func(seq int64) auditchain.Head { return heads[seq-1] }
	const (
		held    = auditv1.WitnessState_WITNESS_STATE_HELD
		none    = auditv1.WitnessState_WITNESS_STATE_NONE
		shorter = auditv1.WitnessState_WITNESS_STATE_LOG_SHORTER
		differs = auditv1.WitnessState_WITNESS_STATE_LOG_DIFFERS
		down    = auditv1.WitnessState_WITNESS_STATE_UNAVAILABLE
	)
	ahead := auditchain.Head{Seq: 1011, Hash: fakeHash("x")}
	for _, tc := range []struct {
		name      string
		ws        []audit.EmitterWitness
		valid     bool
		states    []auditv1.WitnessState
		breakSeq  int64
		breakText string
	}{
		{"Held", []audit.EmitterWitness{{Emitter: "secretstore", Head: at(12)}, {Emitter: "resolver", Head: at(3)}}, true, []auditv1.WitnessState{held, held}, 0, ""},
		{"NoneAndDown", []audit.EmitterWitness{{Emitter: "secretstore"}, {Emitter: "resolver", Err: errors.New("connection refused")}}, true, []auditv1.WitnessState{none, down}, 0, ""},
		{"LogShorter", []audit.EmitterWitness{{Emitter: "secretstore", Head: ahead}, {Emitter: "resolver", Head: at(3)}}, false, []auditv1.WitnessState{shorter, held},
			1011, fmt.Sprintf("the log went backwards: the secretstore saw 1,011 events (head %x…), the log holds 12", ahead.Hash[:4])},
		{"LogDiffers", []audit.EmitterWitness{{Emitter: "secretstore", Head: at(12)}, {Emitter: "resolver", Head: auditchain.Head{Seq: 5, Hash: fakeHash("other")}}}, false, []auditv1.WitnessState{held, differs},
			5, fmt.Sprintf("the log is not the one the resolver saw: its event 5 has hash %x…, the resolver saw %x…", at(5).Hash[:4], fakeHash("other")[:4])},
		{"GreatestNamed", []audit.EmitterWitness{{Emitter: "secretstore", Head: auditchain.Head{Seq: 20, Hash: fakeHash("a")}}, {Emitter: "resolver", Head: ahead}}, false, []auditv1.WitnessState{shorter, shorter},
			1011, "the log went backwards: the resolver saw 1,011 events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws = tc.ws
			res, err := svc.Verify(ctx, admin, "teams/acme")
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid != tc.valid || res.Verified != 12 || res.Head.Seq != 12 {
				t.Errorf("got valid %v, %d verified, head %d; want valid %v, 12, 12", res.Valid, res.Verified, res.Head.Seq, tc.valid)
			}
			for i, c := range res.Witnesses {
				if c.Emitter != tc.ws[i].Emitter || c.State != tc.states[i] {
					t.Errorf("witness %d: got %s %v (%s), want %s %v", i, c.Emitter, c.State, c.Reason, tc.ws[i].Emitter, tc.states[i])
				}
			}
			if len(res.Witnesses) != len(tc.states) {
				t.Errorf("got %d witnesses, want %d", len(res.Witnesses), len(tc.states))
			}
			switch {
			case tc.breakSeq == 0 && res.Break != nil:
				t.Errorf("got break %+v, want none", res.Break)
			case tc.breakSeq != 0 && (res.Break == nil || res.Break.Seq != tc.breakSeq || !strings.HasPrefix(res.Break.Reason, tc.breakText)):
				t.Errorf("got break %+v, want seq %d: %q", res.Break, tc.breakSeq, tc.breakText)
			}
		})
	}
}

// TestVerifyReadsWitnessesFirst: the witnesses are asked before the chain
// is read, so that an event delivered in between (the emitter's witness
// moved on meanwhile) is in the chain verified, and never taken for a log
// that went backwards.
func TestVerifyReadsWitnessesFirst(t *testing.T) {
	ctx := context.Background()
	var svc *audit.Service
	svc, _ = witnessService(t, &fakeWitnesses{witnesses: func(string) []audit.EmitterWitness {
		// The emitter's witness is its last delivery; the next delivery
		// lands right after it answered.
		res, err := svc.Append(ctx, "secretstore", secretEvents("acme", 1))
		if err != nil {
			t.Fatal(err)
		}
		prev := res.Heads["acme"]
		if _, err := svc.Append(ctx, "secretstore", secretEvents("acme", 1)); err != nil {
			t.Fatal(err)
		}
		return []audit.EmitterWitness{{Emitter: "secretstore", Head: prev}}
	}})
	for range 3 {
		res, err := svc.Verify(ctx, admin, "teams/acme")
		if err != nil {
			t.Fatal(err)
		}
		if !res.Valid || res.Witnesses[0].State != auditv1.WitnessState_WITNESS_STATE_HELD {
			t.Fatalf("got %+v, want valid, the witness held", res)
		}
	}
}

// TestAppendChecksWitnesses: a delivery carries the emitter's witnesses;
// those the log does not hold are returned and counted, and the events
// are appended all the same. Invalid witnesses are refused, naming the
// field, and nothing is appended.
func TestAppendChecksWitnesses(t *testing.T) {
	t.Run("EventReader", func(t *testing.T) { testAppendChecksWitnesses(t, func(s audit.Store) audit.Store { return s }) })
	t.Run("RangeOnly", func(t *testing.T) {
		testAppendChecksWitnesses(t, func(s audit.Store) audit.Store { return rangeOnly{s} })
	})
}

func testAppendChecksWitnesses(t *testing.T, wrap func(audit.Store) audit.Store) {
	ctx := context.Background()
	svc, reg := witnessServiceOver(t, nil, wrap)
	first, err := svc.Append(ctx, "secretstore", append(secretEvents("acme", 3), secretEvents("", 1)...))
	if err != nil {
		t.Fatal(err)
	}
	acme, sys := first.Heads["acme"], first.Heads[""]
	if acme.Seq != 3 || sys.Seq != 1 || len(first.Heads) != 2 {
		t.Fatalf("heads: got %v, want acme at 3, system at 1", first.Heads)
	}
	res, err := svc.Append(ctx, "secretstore", secretEvents("acme", 2),
		audit.Witness{Team: "acme", Head: acme}, audit.Witness{Team: "", Head: sys})
	if err != nil || len(res.Unheld) != 0 || res.Appended != 2 || res.Heads["acme"].Seq != 5 {
		t.Fatalf("a delivery with witnesses held: got %+v, %v; want 2 appended, none unheld, acme at 5", res, err)
	}

	// A witness the log does not hold: the log went backwards.
	res, err = svc.Append(ctx, "secretstore", secretEvents("acme", 1),
		audit.Witness{Team: "acme", Head: auditchain.Head{Seq: 40, Hash: fakeHash("x")}},
		audit.Witness{Team: "", Head: auditchain.Head{Seq: 1, Hash: fakeHash("y")}})
	if err != nil || res.Appended != 1 || len(res.Unheld) != 2 || res.Unheld[0] != "acme" || res.Unheld[1] != "" {
		t.Fatalf("a delivery onto a log that went backwards: got %+v, %v; want 1 appended, acme and system unheld", res, err)
	}
	if n := witnessFailures(t, reg, "secretstore"); n != 2 {
		t.Errorf("oz_audit_witness_failures_total: got %v, want 2", n)
	}

	for _, tc := range []struct {
		w     audit.Witness
		field string
	}{
		{audit.Witness{Team: "a/b", Head: acme}, "witnesses[0].chain"},
		{audit.Witness{Team: "acme", Head: auditchain.Head{Seq: 0, Hash: acme.Hash}}, "witnesses[0].seq"},
		{audit.Witness{Team: "acme", Head: auditchain.Head{Seq: 2, Hash: []byte("short")}}, "witnesses[0].hash"},
	} {
		_, err := svc.Append(ctx, "secretstore", secretEvents("acme", 1), tc.w)
		if !errors.Is(err, errs.Invalid) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("witness %+v: got %v, want Invalid naming %s", tc.w, err, tc.field)
		}
	}
	head, err := svc.Verify(ctx, admin, "teams/acme")
	if err != nil || head.Head.Seq != 6 {
		t.Errorf("after refused deliveries: got head %+v, %v; want 6 (nothing appended)", head, err)
	}
}

// witnessFailures returns oz_audit_witness_failures_total{emitter} in reg.
func witnessFailures(t *testing.T, reg *prometheus.Registry, emitter string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "oz_audit_witness_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == emitter {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
