package outbox_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/audit/audittest"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
)

// hashOf returns a made-up event hash of the right size.
func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func witnesses(t *testing.T, w outbox.Witnessed, chains ...string) map[string]outbox.Witness {
	t.Helper()
	ws, err := w.Witnesses(context.Background(), chains)
	if err != nil {
		t.Fatalf("Witnesses: %v", err)
	}
	return ws
}

func wantWitness(t *testing.T, ws map[string]outbox.Witness, chain string, seq int64, hash []byte) {
	t.Helper()
	w, ok := ws[chain]
	switch {
	case seq == 0 && ok:
		t.Errorf("witness of %s: got seq %d, want none", chain, w.Seq)
	case seq == 0:
	case !ok:
		t.Errorf("witness of %s: got none, want seq %d", chain, seq)
	case w.Seq != seq || !bytes.Equal(w.Hash, hash) || w.Chain != chain:
		t.Errorf("witness of %s: got %s seq %d hash %x, want seq %d hash %x", chain, w.Chain, w.Seq, w.Hash, seq, hash)
	}
}

// testKVWitnesses: AckWitnessed deletes the events and keeps the
// witnesses in the store, beside the outbox: they survive a restart, move
// only forward (a lower seq, or an invalid witness, changes nothing), and
// two replicas moving them at once leave the greatest.
func testKVWitnesses(t *testing.T, st *store) {
	ctx := context.Background()
	ob := outbox.NewKV(st, "secretstore")
	if ws := witnesses(t, ob, "teams/acme", "system"); len(ws) != 0 {
		t.Fatalf("a new store: got witnesses %v, want none", ws)
	}
	add(t, ob, event("acme", 1), event("", 2))
	evs := pending(t, ob, 10)
	if err := ob.AckWitnessed(ctx, []string{evs[0].GetId(), evs[1].GetId()}, []outbox.Witness{
		{Chain: "teams/acme", Seq: 7, Hash: hashOf("a7")},
		{Chain: "system", Seq: 3, Hash: hashOf("s3")},
	}); err != nil {
		t.Fatal(err)
	}
	if n := backlog(t, ob); n != 0 {
		t.Errorf("AckWitnessed left %d events, want none", n)
	}
	// Restarted: the witnesses are in the store, not the process.
	ob = outbox.NewKV(st.restart(t), "secretstore")
	ws := witnesses(t, ob, "teams/acme", "system", "teams/beta")
	wantWitness(t, ws, "teams/acme", 7, hashOf("a7"))
	wantWitness(t, ws, "system", 3, hashOf("s3"))
	wantWitness(t, ws, "teams/beta", 0, nil)

	// Forward only; invalid witnesses are ignored.
	if err := ob.AckWitnessed(ctx, nil, []outbox.Witness{
		{Chain: "teams/acme", Seq: 5, Hash: hashOf("a5")},     // behind
		{Chain: "system", Seq: 4, Hash: hashOf("s4")},         // ahead
		{Chain: "teams/beta", Seq: 0, Hash: hashOf("b0")},     // no seq
		{Chain: "teams/gamma", Seq: 2, Hash: []byte("short")}, // no hash
		{Chain: "teams/a/b", Seq: 2, Hash: hashOf("ab")},      // no chain
	}); err != nil {
		t.Fatal(err)
	}
	ws = witnesses(t, ob, "teams/acme", "system", "teams/beta", "teams/gamma", "teams/a/b")
	wantWitness(t, ws, "teams/acme", 7, hashOf("a7"))
	wantWitness(t, ws, "system", 4, hashOf("s4"))
	for _, c := range []string{"teams/beta", "teams/gamma", "teams/a/b"} {
		wantWitness(t, ws, c, 0, nil)
	}

	// Two replicas' shippers at once: the greatest stays.
	obs := []*outbox.KV{ob, outbox.NewKV(st.replica(t), "secretstore")}
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Go(func() {
			for i := range 20 {
				seq := int64(10 + 2*i + r)
				if err := obs[r].AckWitnessed(ctx, nil, []outbox.Witness{{Chain: "teams/acme", Seq: seq, Hash: hashOf(fmt.Sprint(seq))}}); err != nil {
					t.Errorf("replica %d: AckWitnessed: %v", r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	wantWitness(t, witnesses(t, obs[1], "teams/acme"), "teams/acme", 49, hashOf("49"))
}

// testKVWitnessesMany: a delivery to more chains than one Apply holds
// keeps every witness, and deletes every event.
func testKVWitnessesMany(t *testing.T, st *store) {
	ob := outbox.NewKV(st, "resolver")
	var evs []*auditv1.Event
	var ws []outbox.Witness
	var chains []string
	for i := range 150 {
		team := fmt.Sprintf("t%03d", i)
		evs = append(evs, event(team, i))
		chains = append(chains, "teams/"+team)
		ws = append(ws, outbox.Witness{Chain: "teams/" + team, Seq: int64(i + 1), Hash: hashOf(team)})
	}
	add(t, ob, evs[:100]...)
	add(t, ob, evs[100:]...)
	got := pending(t, ob, 1000)
	ids := make([]string, len(got))
	for i, ev := range got {
		ids[i] = ev.GetId()
	}
	if err := ob.AckWitnessed(context.Background(), ids, ws); err != nil {
		t.Fatal(err)
	}
	if n := backlog(t, ob); n != 0 {
		t.Errorf("AckWitnessed left %d events, want none", n)
	}
	kept := witnesses(t, ob, chains...)
	for _, w := range ws {
		wantWitness(t, kept, w.Chain, w.Seq, w.Hash)
	}
}

// witnessesOf is an audit.Witnesses over emitters' outboxes, read
// directly (the gRPC path is tested in TestWitnessServer and end to end).
type witnessesOf map[string]outbox.Witnessed

func (w witnessesOf) Witnesses(ctx context.Context, chain string) []audit.EmitterWitness {
	var out []audit.EmitterWitness
	for _, name := range slices.Sorted(maps.Keys(w)) {
		ws, err := w[name].Witnesses(ctx, []string{chain})
		e := audit.EmitterWitness{Emitter: name, Err: err}
		if v, ok := ws[chain]; ok {
			e.Head = auditchain.Head{Seq: v.Seq, Hash: v.Hash}
		}
		out = append(out, e)
	}
	return out
}

// testKVWitnessLogWentBackwards: a shipper keeps, for each chain, the
// audit service's answer for its last delivery; the chain's verification
// checks it. With the log restored from an older copy, verification fails
// naming the emitter and the counts; a delivery onto that log is appended
// all the same, and the witness is kept, so that verification goes on
// failing.
func testKVWitnessLogWentBackwards(t *testing.T, st *store) {
	ctx := context.Background()
	ob := outbox.NewKV(st, "secretstore")
	srv := audittest.Start(t, audittest.Options{Witnesses: witnessesOf{"secretstore": ob}})
	sh := outbox.New(outbox.Config{
		Source:       ob,
		Client:       internalapiv1.NewAuditIngestServiceClient(srv.Dial(t, "secretstore")),
		Emitter:      "secretstore",
		MinBackoff:   5 * time.Millisecond,
		MaxBackoff:   50 * time.Millisecond,
		PollInterval: 50 * time.Millisecond,
	})
	ob.OnCommit(sh.Notify)
	run(t, sh)
	admin := audittest.As(ctx, "admin")
	client := auditv1.NewAuditServiceClient(srv.Dial(t, "gateway"))
	verify := func() *auditv1.VerifyChainResponse {
		t.Helper()
		var resp *auditv1.VerifyChainResponse
		eventually(t, 10*time.Second, "VerifyChain answers", func() bool {
			var err error
			resp, err = client.VerifyChain(admin, &auditv1.VerifyChainRequest{Parent: "teams/acme"})
			return err == nil
		})
		return resp
	}
	// deliver writes n events of acme and waits until the witness is the
	// chain's head.
	next := 0
	deliver := func(n int) auditchain.Head {
		t.Helper()
		for range n {
			next++
			add(t, ob, event("acme", next))
		}
		var head auditchain.Head
		eventually(t, 10*time.Second, "the events delivered and witnessed", func() bool {
			if backlog(t, ob) != 0 {
				return false
			}
			resp := verify()
			head = auditchain.Head{Seq: resp.GetHead().GetSeq(), Hash: resp.GetHead().GetHash()}
			w := witnesses(t, ob, "teams/acme")["teams/acme"]
			return w.Seq == head.Seq && bytes.Equal(w.Hash, head.Hash)
		})
		return head
	}

	deliver(3)
	old := verify().GetHead().GetSeq()
	srv.Stop()
	backup, err := os.ReadFile(srv.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	seen := deliver(4)

	resp := verify()
	if !resp.GetValid() || len(resp.GetWitnesses()) != 1 || resp.GetWitnesses()[0].GetState() != auditv1.WitnessState_WITNESS_STATE_HELD {
		t.Fatalf("VerifyChain of a log that did not go backwards: got %v, want valid, the witness held", resp)
	}

	// The older copy restored.
	srv.Stop()
	if err := os.WriteFile(srv.DBPath, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	resp = verify()
	want := fmt.Sprintf("the log went backwards: the secretstore saw %d events (head %x…), the log holds %d", seen.Seq, seen.Hash[:4], old)
	if resp.GetValid() || resp.GetFirstBreak().GetReason() != want || resp.GetFirstBreak().GetSeq() != seen.Seq ||
		resp.GetWitnesses()[0].GetState() != auditv1.WitnessState_WITNESS_STATE_LOG_SHORTER {
		t.Errorf("VerifyChain of the restored copy: got %v, want invalid: %q", resp, want)
	}

	// A delivery onto the restored log: appended, the witness kept.
	for range 6 {
		next++
		add(t, ob, event("acme", next))
	}
	eventually(t, 10*time.Second, "the events delivered onto the restored log", func() bool {
		return backlog(t, ob) == 0 && verify().GetHead().GetSeq() == old+6
	})
	wantWitness(t, witnesses(t, ob, "teams/acme"), "teams/acme", seen.Seq, seen.Hash)
	resp = verify()
	if resp.GetValid() || resp.GetWitnesses()[0].GetState() != auditv1.WitnessState_WITNESS_STATE_LOG_DIFFERS {
		t.Errorf("VerifyChain after a delivery grew the restored log past the witness: got %v, want invalid, the log differs", resp)
	}
}

// TestWitnessServer: AuditWitnessService answers the audit service alone,
// by its certificate, with the witness kept; a chain that is not one is
// refused, naming the field.
func TestWitnessServer(t *testing.T) {
	ob := newBoltKV(t, "resolver")
	add(t, ob, event("acme", 1))
	evs := pending(t, ob, 1)
	if err := ob.AckWitnessed(context.Background(), []string{evs[0].GetId()}, []outbox.Witness{{Chain: "teams/acme", Seq: 4, Hash: hashOf("a4")}}); err != nil {
		t.Fatal(err)
	}
	srv := startWitnessServer(t, ob)
	ctx := context.Background()
	get := func(cert, chain string) (*internalapiv1.GetAuditWitnessResponse, error) {
		return internalapiv1.NewAuditWitnessServiceClient(srv.dial(t, cert)).GetAuditWitness(ctx, &internalapiv1.GetAuditWitnessRequest{Chain: chain})
	}
	resp, err := get("audit", "teams/acme")
	if w := resp.GetWitness(); err != nil || w.GetChain() != "teams/acme" || w.GetSeq() != 4 || !bytes.Equal(w.GetHash(), hashOf("a4")) {
		t.Errorf("GetAuditWitness(teams/acme): got %v, %v; want seq 4", resp, err)
	}
	if resp, err := get("audit", "system"); err != nil || resp.GetWitness() != nil {
		t.Errorf("GetAuditWitness(system): got %v, %v; want no witness", resp, err)
	}
	for _, chain := range []string{"", "teams/", "acme", "teams/a/b"} {
		_, err := get("audit", chain)
		if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !bytes.Contains([]byte(st.Message()), []byte("chain")) {
			t.Errorf("GetAuditWitness(%q): got %v, want InvalidArgument naming chain", chain, err)
		}
	}
	for _, cert := range []string{"gateway", "secretstore"} {
		if _, err := get(cert, "teams/acme"); status.Code(err) != codes.PermissionDenied {
			t.Errorf("GetAuditWitness as %s: got %v, want PermissionDenied", cert, err)
		}
	}
	if _, err := internalapiv1.NewAuditWitnessServiceClient(srv.dial(t, "audit")).GetAuditWitness(audittest.As(ctx, "admin"),
		&internalapiv1.GetAuditWitnessRequest{Chain: "teams/acme"}); status.Code(err) == codes.OK {
		t.Errorf("GetAuditWitness with a bearer token: got OK, want a refusal")
	}
}

// witnessServer is an emitter's gRPC server with AuditWitnessService
// alone, on loopback, with mutual TLS.
type witnessServer struct {
	addr string
	pki  pki.Dir
}

func startWitnessServer(t *testing.T, src outbox.Source) *witnessServer {
	t.Helper()
	ws := &witnessServer{pki: pki.Dir(filepath.Join(t.TempDir(), "pki"))}
	if err := pki.EnsureDev(ws.pki); err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := pki.ServerConfig(ws.pki.For("resolver"), ws.pki.CA())
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{
		Name:   "resolver",
		TLS:    tlsCfg,
		Rules:  auth.Rules{outbox.WitnessService: outbox.WitnessRule},
		Logger: slog.New(slog.DiscardHandler),
		Auth: authFunc(func(context.Context, string) (*auth.Principal, error) {
			return nil, errs.E(errs.KindUnauthenticated, "unknown token")
		}),
	})
	outbox.RegisterWitnesses(srv, src)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ws.addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ws
}

// dial connects with the certificate of service cert.
func (ws *witnessServer) dial(t *testing.T, cert string) *grpc.ClientConn {
	t.Helper()
	tlsCfg, err := pki.ClientConfig(ws.pki.For(cert), ws.pki.CA())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := server.Dial(ws.addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

type authFunc func(context.Context, string) (*auth.Principal, error)

func (f authFunc) Authenticate(ctx context.Context, token string) (*auth.Principal, error) {
	return f(ctx, token)
}
