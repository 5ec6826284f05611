package audit

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// TestVerifyWitnesses: verify shows each emitting service's witness; a
// log that went backwards exits 8 naming the service and the counts; a
// service that did not answer is a warning, not a failure.
func TestVerifyWitnesses(t *testing.T) {
	var resp *auditv1.VerifyChainResponse
	f := &fakeAudit{teams: []string{"acme"}, verify: func(*auditv1.VerifyChainRequest) (*auditv1.VerifyChainResponse, error) { return resp, nil }}
	head := &auditv1.ChainHead{Seq: 640, Hash: []byte{0xab, 0xcd}}

	resp = &auditv1.VerifyChainResponse{Valid: true, VerifiedEvents: 640, Head: head, Witnesses: []*auditv1.ChainWitness{
		{Emitter: "secretstore", Seq: 612, Hash: []byte{0x12, 0x34}, State: auditv1.WitnessState_WITNESS_STATE_HELD},
		{Emitter: "resolver", State: auditv1.WitnessState_WITNESS_STATE_UNAVAILABLE, Reason: "the resolver did not answer: its witness was not checked"},
	}}
	d, out, errOut := serve(t, f)
	d.Team = "acme"
	if err := runVerify(context.Background(), &VerifyOptions{Deps: d}); err != nil {
		t.Fatal(err)
	}
	want := "teams/acme: 640 events verified\nhead: seq 640 hash abcd\ntime: 0.00s (0 events/s)\n" +
		"witness: the secretstore saw seq 612 hash 1234: held\n" +
		"witness: the resolver did not answer: its witness was not checked\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out, want)
	}
	if !strings.Contains(errOut.String(), "warning: teams/acme: the resolver did not answer") {
		t.Errorf("stderr: got %q, want a warning that the resolver's witness was not checked", errOut)
	}

	reason := "the log went backwards: the secretstore saw 1,011 events (head 9f8e7d6c…), the log holds 640"
	resp = &auditv1.VerifyChainResponse{Valid: false, VerifiedEvents: 640, Head: head,
		FirstBreak: &auditv1.ChainBreak{Seq: 1011, Reason: reason},
		Witnesses: []*auditv1.ChainWitness{
			{Emitter: "secretstore", Seq: 1011, Hash: []byte{0x9f, 0x8e}, State: auditv1.WitnessState_WITNESS_STATE_LOG_SHORTER, Reason: reason},
			{Emitter: "resolver", State: auditv1.WitnessState_WITNESS_STATE_NONE},
		}}
	d, out, _ = serve(t, f)
	d.Team = "acme"
	err := runVerify(context.Background(), &VerifyOptions{Deps: d})
	wantExit(t, err, exitcode.Tampered)
	if err == nil || !strings.Contains(err.Error(), "audit chain teams/acme is broken at seq 1011: "+reason) {
		t.Errorf("got %v, want the reason", err)
	}
	want = "teams/acme: WENT BACKWARDS: 640 events verified, but an emitting service saw more\nhead: seq 640 hash abcd\ntime: 0.00s (0 events/s)\n" +
		"witness: the secretstore saw seq 1011 hash 9f8e: NOT HELD: " + reason + "\n" +
		"witness: the resolver saw no event of the chain\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out, want)
	}

	d, out, _ = serve(t, f)
	d.Team = "acme"
	wantExit(t, runVerify(context.Background(), &VerifyOptions{Deps: d, Output: cmdutil.FormatJSON}), exitcode.Tampered)
	var got verifyResult
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Witnesses) != 2 || got.Witnesses[0] != (witnessJSON{Emitter: "secretstore", Seq: 1011, Hash: "9f8e", State: "log_shorter", Reason: reason}) ||
		got.Witnesses[1].State != "none" {
		t.Errorf("--output json: got %+v", got.Witnesses)
	}
}
