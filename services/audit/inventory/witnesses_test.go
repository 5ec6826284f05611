package inventory_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/audit/inventory"
)

// witnessServer is an emitter's AuditWitnessService answering witness,
// which records the metadata of the last call.
type witnessServer struct {
	internalapiv1.UnimplementedAuditWitnessServiceServer
	witness func(chain string) *internalapiv1.AuditWitness
	md      chan metadata.MD
}

func (s *witnessServer) GetAuditWitness(ctx context.Context, req *internalapiv1.GetAuditWitnessRequest) (*internalapiv1.GetAuditWitnessResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.md <- md
	return &internalapiv1.GetAuditWitnessResponse{Witness: s.witness(req.GetChain())}, nil
}

func serveWitness(t *testing.T, s *witnessServer) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	internalapiv1.RegisterAuditWitnessServiceServer(gs, s)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestWitnesses: each emitter is asked for its witness of the chain, as
// the audit service itself (the caller's bearer token is not passed on);
// one that does not answer, or answers a malformed witness, has Err set.
func TestWitnesses(t *testing.T) {
	hash := sha256.Sum256([]byte("x"))
	ss := &witnessServer{md: make(chan metadata.MD, 10), witness: func(chain string) *internalapiv1.AuditWitness {
		return &internalapiv1.AuditWitness{Chain: chain, Seq: 12, Hash: hash[:]}
	}}
	rs := &witnessServer{md: make(chan metadata.MD, 10), witness: func(string) *internalapiv1.AuditWitness { return nil }}
	inv := inventory.New(serveWitness(t, ss), serveWitness(t, rs))
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer oz_caller"))
	got := inv.Witnesses(ctx, "teams/acme")
	if len(got) != 2 || got[0].Emitter != "secretstore" || got[0].Err != nil || got[0].Head.Seq != 12 || !bytes.Equal(got[0].Head.Hash, hash[:]) ||
		got[1].Emitter != "resolver" || got[1].Err != nil || got[1].Head.Seq != 0 {
		t.Fatalf("got %+v, want the secretstore at 12, the resolver with none", got)
	}
	for _, s := range []*witnessServer{ss, rs} {
		if md := <-s.md; len(md.Get("authorization")) != 0 {
			t.Errorf("the caller's bearer token was passed on: %v", md)
		}
	}

	// Malformed: another chain, no hash.
	ss.witness = func(string) *internalapiv1.AuditWitness {
		return &internalapiv1.AuditWitness{Chain: "system", Seq: 3, Hash: hash[:]}
	}
	rs.witness = func(chain string) *internalapiv1.AuditWitness {
		return &internalapiv1.AuditWitness{Chain: chain, Seq: 3}
	}
	for _, w := range inv.Witnesses(ctx, "teams/acme") {
		if w.Err == nil {
			t.Errorf("%s: a malformed witness taken: %+v", w.Emitter, w)
		}
	}

	// Down.
	conn, err := grpc.NewClient(closedAddr(t), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	for _, w := range inventory.New(conn, conn).Witnesses(context.Background(), "system") {
		if w.Err == nil || w.Head.Seq != 0 {
			t.Errorf("%s down: got %+v, want Err", w.Emitter, w)
		}
	}
}
