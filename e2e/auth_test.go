package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/e2e/harness"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// TestAuthenticationAcrossProcesses checks the token and certificate rules
// over the real processes: gateway → services over mutual TLS, the
// secretstore asking the resolver (with its cache) who a token is.
func TestAuthenticationAcrossProcesses(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)
	conn, err := sys.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	secrets := secretsv1.NewSecretServiceClient(conn)
	list := func(token string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if token != "" {
			ctx = harness.WithToken(ctx, token)
		}
		_, err := secrets.ListAvailableSecrets(ctx, &secretsv1.ListAvailableSecretsRequest{})
		return err
	}

	t.Run("NoToken", func(t *testing.T) {
		if got := status.Code(list("")); got != codes.Unauthenticated {
			t.Errorf("got %v, want Unauthenticated", got)
		}
	})
	t.Run("UnknownToken", func(t *testing.T) {
		if got := status.Code(list("oz_notatoken_0000")); got != codes.Unauthenticated {
			t.Errorf("got %v, want Unauthenticated", got)
		}
	})
	t.Run("ValidToken", func(t *testing.T) {
		if err := list(tm.bob); err != nil {
			t.Errorf("got %v, want OK", err)
		}
	})
	t.Run("ExpiredToken", func(t *testing.T) {
		tok := newToken(t, sys, "bob", "--expires", "2s")
		if err := list(tok); err != nil {
			t.Fatalf("fresh token: got %v, want OK", err)
		}
		time.Sleep(2500 * time.Millisecond)
		if got := status.Code(list(tok)); got != codes.Unauthenticated {
			t.Errorf("expired token: got %v, want Unauthenticated", got)
		}
	})
	t.Run("RevokedToken", func(t *testing.T) {
		tok := newToken(t, sys, "bob")
		if err := list(tok); err != nil {
			t.Fatalf("fresh token: got %v, want OK", err)
		}
		res := ozOK(t, sys, sys.AdminToken, "", "admin", "token", "list", "--user", "bob", "--output", "json")
		id := tokenIDOf(t, res.Stdout, tok)
		ozOK(t, sys, sys.AdminToken, "", "admin", "token", "revoke", id)
		// The README promises revocation within the cache time (5 s).
		deadline := time.Now().Add(8 * time.Second)
		for status.Code(list(tok)) != codes.Unauthenticated {
			if time.Now().After(deadline) {
				t.Fatalf("revoked token still accepted after 8s")
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
	t.Run("ServiceCertificateCallingUserRPC", func(t *testing.T) {
		// The resolver's certificate, straight to the secretstore, no token.
		c, err := sys.DialService("secretstore", "resolver")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = secretsv1.NewSecretServiceClient(c).ListAvailableSecrets(context.Background(), &secretsv1.ListAvailableSecretsRequest{})
		if got := status.Code(err); got != codes.Unauthenticated {
			t.Errorf("got %v, want Unauthenticated", got)
		}
	})
	t.Run("UserTokenCallingInternalRPCThroughGateway", func(t *testing.T) {
		_, err := internalapiv1.NewAuthServiceClient(conn).Authenticate(harness.WithToken(context.Background(), tm.alice),
			&internalapiv1.AuthenticateRequest{BearerToken: tm.alice})
		if got := status.Code(err); got != codes.PermissionDenied {
			t.Errorf("got %v, want PermissionDenied", got)
		}
	})
	t.Run("UserTokenCallingInternalRPCDirectly", func(t *testing.T) {
		c, err := sys.DialService("resolver", "gateway")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = internalapiv1.NewAuthServiceClient(c).Authenticate(harness.WithToken(context.Background(), tm.alice),
			&internalapiv1.AuthenticateRequest{BearerToken: tm.alice})
		if got := status.Code(err); got != codes.PermissionDenied {
			t.Errorf("got %v, want PermissionDenied", got)
		}
	})
}

// TestRestartKeepsEverything stops the whole system and starts it again on
// the same data directory: secrets, users and tokens are all still there.
func TestRestartKeepsEverything(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	sys, err := harness.Start(binDir, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	tm := newTeam(t, sys)
	ozOK(t, sys, tm.alice, canaryTeam+"\n", "secret", "create", "--team", "SURVIVOR")
	if err := sys.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	sys2, err := harness.StartWith(binDir, dataDir, sys.Ports)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys2.Stop() })
	if sys2.AdminToken != sys.AdminToken {
		t.Errorf("bootstrap token changed across restart")
	}
	tm.sys = sys2
	if _, ok := listSecrets(t, tm, tm.alice)["team/SURVIVOR"]; !ok {
		t.Errorf("team/SURVIVOR missing after restart")
	}
	assertNoCanary(t, sys2)
}

// TestDataDirFiles checks what `make run` promises about its files: keys and
// tokens only readable by their owner, dev.env with the three settings.
func TestDataDirFiles(t *testing.T) {
	sys := startSystem(t)
	env, err := harness.ParseEnvFile(filepath.Join(sys.DataDir, "dev.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"OZ_ADDR", "OZ_CA_FILE", "OZ_TOKEN"} {
		if env[k] == "" {
			t.Errorf("dev.env: %s missing", k)
		}
	}
	private := []string{"dev.env", "keyring.json", "bootstrap-token", "pki/ca-key.pem", "pki/gateway-key.pem", "pki/secretstore-key.pem", "pki/resolver-key.pem", "pki/audit-key.pem"}
	for _, name := range private {
		fi, err := os.Stat(filepath.Join(sys.DataDir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
}
