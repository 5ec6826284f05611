package e2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/e2e/harness"
	"github.com/ozsecrets/oz/lib/etcdtest"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// revocationDelay is the README's promise: a revoked token stops working
// everywhere within 5 seconds (each service caches authentications that
// long). The test allows a second more for a loaded machine.
const revocationDelay = 5 * time.Second

// TestClusterRevocation revokes a token that every replica of the
// resolver and of the secretstore has just authenticated (and cached), on
// one etcd with two replicas of each service: within the documented delay
// every replica refuses it, each asked directly, and so does the gateway.
func TestClusterRevocation(t *testing.T) {
	root := t.TempDir()
	etcd, err := etcdtest.New(etcdtest.Config{Members: 1, Dir: filepath.Join(root, "etcd")})
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(etcd.Close)
	cl, err := harness.StartCluster(binDir, filepath.Join(root, "data"), etcd.Endpoints(), 2)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := cl.Stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	sys := cl.System
	tm := newTeam(t, sys)
	ozOK(t, sys, tm.alice, "v-revocation-test", "secret", "create", "--team", "REVOKE_CHECK")
	tok := newToken(t, sys, "bob")
	res := ozOK(t, sys, sys.AdminToken, "", "admin", "token", "list", "--user", "bob", "--output", "json")
	id := tokenIDOf(t, res.Stdout, tok)

	// One call per replica, straight to it, as the gateway would make.
	type replica struct {
		name string
		call func(context.Context) error
	}
	var replicas []replica
	for i := range cl.Replicas("secretstore") {
		name := fmt.Sprintf("secretstore-%d", i)
		conn, err := sys.DialService(name, "gateway")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c := secretsv1.NewSecretServiceClient(conn)
		replicas = append(replicas, replica{name, func(ctx context.Context) error {
			_, err := c.ListSecrets(ctx, &secretsv1.ListSecretsRequest{Parent: "teams/acme"})
			return err
		}})
	}
	for i := range cl.Replicas("resolver") {
		name := fmt.Sprintf("resolver-%d", i)
		conn, err := sys.DialService(name, "gateway")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c := scopev1.NewAgentServiceClient(conn)
		replicas = append(replicas, replica{name, func(ctx context.Context) error {
			_, err := c.ListAgents(ctx, &scopev1.ListAgentsRequest{Parent: "teams/acme"})
			return err
		}})
	}
	ctx := harness.WithToken(context.Background(), tok)
	for _, r := range replicas {
		if err := r.call(ctx); err != nil {
			t.Fatalf("%s with bob's token before revocation: %v", r.name, err)
		}
	}

	revoked := time.Now()
	ozOK(t, sys, sys.AdminToken, "", "admin", "token", "revoke", id)
	time.Sleep(revocationDelay + time.Second)
	for _, r := range replicas {
		if err := r.call(ctx); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s %v after the revocation: %v, want Unauthenticated", r.name, time.Since(revoked).Round(time.Millisecond), err)
		}
	}
	if r := oz(t, sys, tok, "", "secret", "list", "--team"); r.Code != 4 {
		t.Errorf("oz secret list with the revoked token through the gateway: exit %d, want 4", r.Code)
	}
}
