package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit/audittest"
)

// systemChain returns the audit service's system chain, checking that it
// verifies.
func systemChain(t *testing.T, a *audittest.Server) []*auditv1.Event {
	t.Helper()
	ctx := context.Background()
	root := audittest.Principals["sysadmin"]
	v, err := a.Service().Verify(ctx, root, "system")
	if err != nil || !v.Valid {
		t.Fatalf("Verify system chain: %+v, %v", v, err)
	}
	page, err := a.Service().Export(ctx, root, "system", 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	return page.Events
}

// waitChain waits until the system chain holds want events.
func waitChain(t *testing.T, a *audittest.Server, want int) []*auditv1.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs := systemChain(t, a)
		if len(evs) == want {
			return evs
		}
		if len(evs) > want || time.Now().After(deadline) {
			var actions []string
			for _, ev := range evs {
				actions = append(actions, ev.GetAction())
			}
			t.Fatalf("system chain: got %v, want %d events", actions, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAuditShipping: ozresolverd ships its events — the bootstrap, a
// refused request — to the audit service (mutual TLS, --audit-addr),
// exports the outbox's metrics, and keeps events made while the audit
// service is down for after its next start.
func TestAuditShipping(t *testing.T) {
	a := audittest.Start(t, audittest.Options{})
	dataDir := filepath.Join(t.TempDir(), "data")
	tokenFile := filepath.Join(dataDir, "bootstrap-token")
	args := []string{"--listen", "127.0.0.1:0", "--data-dir", dataDir, "--bootstrap-token-file", tokenFile,
		"--tls-cert", a.PKI.For("resolver").Cert, "--tls-key", a.PKI.For("resolver").Key, "--tls-ca", a.PKI.CA(),
		"--secretstore-addr", "127.0.0.1:1"}
	// Refusals of unknown tokens are counted, and recorded once per
	// --denied-count-interval: a short one, so the count comes soon.
	d := start(t, map[string]string{"OZ_AUDIT_ADDR": a.Addr, "OZ_RESOLVER_METRICS_LISTEN": "127.0.0.1:0", "OZ_DENIED_COUNT_INTERVAL": "1s"}, args...)
	admin := readToken(t, tokenFile)

	evs := waitChain(t, a, 2)
	if evs[0].GetAction() != "user.create" || evs[1].GetAction() != "token.create" ||
		evs[0].GetActor().GetKind() != auditv1.ActorKind_ACTOR_KIND_SERVICE || evs[0].GetActor().GetName() != "resolver" {
		t.Errorf("bootstrap events: got %v, %v; want user.create and token.create by the service resolver", evs[0], evs[1])
	}

	if _, err := callerWith(t, a.PKI, d, "oz_0123456789abcdef_"+strings.Repeat("A", 43)); err == nil {
		t.Fatal("GetCaller with an unknown token: got no error")
	}
	evs = waitChain(t, a, 3)
	if ev := evs[2]; ev.GetAction() != "request.denied" || ev.GetDetails()["method"] != "/oz.scope.v1.DirectoryService/GetCaller" ||
		ev.GetDetails()["code"] != "UNAUTHENTICATED" {
		t.Errorf("got %v, want request.denied of GetCaller", ev)
	}

	if d.metrics == "" {
		t.Fatalf("no metrics address in the logs:\n%s", d.logs)
	}
	resp, err := http.Get(d.metrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`oz_audit_outbox_backlog{emitter="resolver"}`, `oz_audit_outbox_delivered_total{emitter="resolver"}`, "go_goroutines",
		`grpc_server_handled_total{grpc_code="OK",grpc_method="ResolveRun",grpc_service="oz.scope.v1.RunService",grpc_type="unary"}`,
		`grpc_server_handling_seconds_bucket{grpc_method="CreateToken",grpc_service="oz.scope.v1.TokenService",grpc_type="unary"`,
		`oz_run_resolutions_total{outcome="resolved"}`,
		`oz_store_operation_duration_seconds_bucket{op="Apply",outcome="ok",service="resolver",store="bolt"`,
		`oz_store_operation_duration_seconds_count{op="Get",outcome="not_found",service="resolver",store="bolt"}`} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	// The audit service goes down: a refused request waits in the outbox,
	// across a restart of ozresolverd, and arrives once it is back.
	a.Stop()
	if _, err := callerWith(t, a.PKI, d, "oz_0123456789abcdef_"+strings.Repeat("B", 43)); err == nil {
		t.Fatal("GetCaller with an unknown token: got no error")
	}
	d.stop()
	if !strings.Contains(d.logs.String(), "events left in the outbox") {
		t.Errorf("shutdown with the audit service down: the logs do not say events were left:\n%s", d.logs)
	}
	a.Restart()
	d = start(t, map[string]string{"OZ_AUDIT_ADDR": a.Addr}, args...)
	evs = waitChain(t, a, 4)
	if ev := evs[3]; ev.GetAction() != "request.denied" {
		t.Errorf("after the restart: got %s, want the request.denied made while the audit service was down", ev.GetAction())
	}
	d.stop()
	for _, ev := range evs {
		if strings.Contains(ev.String(), admin) || strings.Contains(ev.String(), admin[20:]) {
			t.Errorf("event %s holds the bootstrap token", ev.GetId())
		}
	}
	if strings.Contains(d.logs.String(), admin) {
		t.Errorf("logs hold the bootstrap token")
	}
}
