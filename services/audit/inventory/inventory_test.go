package inventory_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/ozsecrets/oz/services/audit/inventory"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// closedAddr is a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func TestErrors(t *testing.T) {
	conn, err := grpc.NewClient(closedAddr(t), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	inv := inventory.New(conn, conn)

	// Without the caller's token there is nobody to act as.
	if _, err := inv.TeamSecrets(context.Background(), "acme"); !errors.Is(err, errs.Unauthenticated) {
		t.Errorf("no token: got %v, want Unauthenticated", err)
	}
	// An unreachable service is Unavailable, named, without its address.
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer oz_x"))
	for name, call := range map[string]func() error{
		"TeamSecrets":     func() error { _, err := inv.TeamSecrets(ctx, "acme"); return err },
		"PersonalSecrets": func() error { _, err := inv.PersonalSecrets(ctx); return err },
		"Agents":          func() error { _, err := inv.Agents(ctx, "acme"); return err },
		"Environments":    func() error { _, err := inv.Environments(ctx, "acme"); return err },
	} {
		err := call()
		var e *errs.Error
		if !errors.As(err, &e) || e.Kind != errs.KindUnavailable || !strings.Contains(e.Message, "is unavailable") || strings.Contains(e.Message, "127.0.0.1") {
			t.Errorf("%s: got %v, want Unavailable naming the service", name, err)
		}
	}
}
