package grpcapi_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/audit/audittest"
)

// witnessFunc is an audit.Witnesses over a func.
type witnessFunc func(chain string) []audit.EmitterWitness

func (f witnessFunc) Witnesses(_ context.Context, chain string) []audit.EmitterWitness {
	return f(chain)
}

// TestAppendEventsWitnesses: AppendEvents answers the head of each chain
// it appended to (the emitter's new witness), checks the witnesses the
// request carries, names the chains whose witness the log does not hold
// and appends all the same; a malformed witness is refused, naming the
// field, and nothing is appended.
func TestAppendEventsWitnesses(t *testing.T) {
	srv := audittest.Start(t, audittest.Options{})
	client := internalapiv1.NewAuditIngestServiceClient(srv.Dial(t, "secretstore"))
	ctx := context.Background()
	resp := appendAs(t, srv, "secretstore", ev("acme", 1, audit.ActionSecretCreate, "teams/acme/secrets/A", nil),
		ev("", 2, audit.ActionSecretCreate, "users/alice/secrets/P", nil), ev("acme", 3, audit.ActionSecretCreate, "teams/acme/secrets/B", nil))
	heads := map[string]*internalapiv1.AuditWitness{}
	for _, h := range resp.GetHeads() {
		heads[h.GetChain()] = h
	}
	acme, _ := srv.Store().Head(ctx, "acme")
	sys, _ := srv.Store().Head(ctx, "")
	if len(heads) != 2 || heads["teams/acme"].GetSeq() != acme.Seq || !bytes.Equal(heads["teams/acme"].GetHash(), acme.Hash) ||
		heads["system"].GetSeq() != sys.Seq || !bytes.Equal(heads["system"].GetHash(), sys.Hash) {
		t.Fatalf("heads: got %v, want acme %v and system %v", resp.GetHeads(), acme, sys)
	}

	resp, err := client.AppendEvents(ctx, &internalapiv1.AppendEventsRequest{
		Events: []*auditv1.Event{ev("acme", 4, audit.ActionSecretCreate, "teams/acme/secrets/C", nil)},
		Witnesses: []*internalapiv1.AuditWitness{
			heads["teams/acme"],
			{Chain: "system", Seq: 9, Hash: acme.Hash}, // more than the chain holds
		},
	})
	if err != nil || resp.GetAppended() != 1 || !slices.Equal(resp.GetWitnessFailures(), []string{"system"}) {
		t.Errorf("a delivery onto a system chain that went backwards: got %v, %v; want 1 appended, witness_failures [system]", resp, err)
	}

	for _, tc := range []struct {
		w     *internalapiv1.AuditWitness
		field string
	}{
		{&internalapiv1.AuditWitness{Chain: "acme", Seq: 1, Hash: acme.Hash}, "witnesses[0].chain"},
		{&internalapiv1.AuditWitness{Chain: "teams/acme", Seq: -1, Hash: acme.Hash}, "witnesses[0].seq"},
		{&internalapiv1.AuditWitness{Chain: "teams/acme", Seq: 1, Hash: []byte{1}}, "witnesses[0].hash"},
	} {
		_, err := client.AppendEvents(ctx, &internalapiv1.AppendEventsRequest{
			Events:    []*auditv1.Event{ev("acme", 5, audit.ActionSecretCreate, "teams/acme/secrets/D", nil)},
			Witnesses: []*internalapiv1.AuditWitness{tc.w},
		})
		wantCode(t, err, codes.InvalidArgument)
		if got := fieldOf(err); got != tc.field {
			t.Errorf("witness %v: field %q, want %q", tc.w, got, tc.field)
		}
	}
	if h, _ := srv.Store().Head(ctx, "acme"); h.Seq != 3 {
		t.Errorf("acme head: got seq %d, want 3 (nothing of a refused batch appended)", h.Seq)
	}
}

// TestVerifyChainWitnesses: VerifyChain answers each emitter's witness,
// checked, and is invalid when the chain does not hold one, naming the
// emitter in first_break.
func TestVerifyChainWitnesses(t *testing.T) {
	var ws []audit.EmitterWitness
	srv := audittest.Start(t, audittest.Options{Witnesses: witnessFunc(func(string) []audit.EmitterWitness { return ws })})
	appendAs(t, srv, "secretstore", ev("acme", 1, audit.ActionSecretCreate, "teams/acme/secrets/A", nil))
	head, _ := srv.Store().Head(context.Background(), "acme")
	client := auditv1.NewAuditServiceClient(srv.Dial(t, "gateway"))
	admin := audittest.As(context.Background(), "admin")

	ws = []audit.EmitterWitness{{Emitter: "secretstore", Head: head}, {Emitter: "resolver", Err: errors.New("down")}}
	resp, err := client.VerifyChain(admin, &auditv1.VerifyChainRequest{Parent: "teams/acme"})
	if err != nil || !resp.GetValid() || len(resp.GetWitnesses()) != 2 ||
		resp.GetWitnesses()[0].GetState() != auditv1.WitnessState_WITNESS_STATE_HELD || resp.GetWitnesses()[0].GetSeq() != 1 ||
		resp.GetWitnesses()[1].GetState() != auditv1.WitnessState_WITNESS_STATE_UNAVAILABLE || resp.GetWitnesses()[1].GetEmitter() != "resolver" {
		t.Errorf("got %v, %v; want valid, the secretstore's witness held, the resolver's unavailable", resp, err)
	}

	ws = []audit.EmitterWitness{{Emitter: "secretstore", Head: auditchain.Head{Seq: 5, Hash: head.Hash}}}
	resp, err = client.VerifyChain(admin, &auditv1.VerifyChainRequest{Parent: "teams/acme"})
	if err != nil || resp.GetValid() || resp.GetFirstBreak().GetSeq() != 5 ||
		resp.GetWitnesses()[0].GetState() != auditv1.WitnessState_WITNESS_STATE_LOG_SHORTER ||
		!bytes.Contains([]byte(resp.GetFirstBreak().GetReason()), []byte("the secretstore saw 5 events")) {
		t.Errorf("got %v, %v; want invalid at seq 5, the log shorter than the secretstore saw", resp, err)
	}
}
