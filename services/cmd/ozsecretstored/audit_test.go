package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/audit/audittest"
)

// auditChain returns the audit service's chain parent ("system",
// "teams/acme"), checking that it verifies.
func auditChain(t *testing.T, a *audittest.Server, parent string) []*auditv1.Event {
	t.Helper()
	ctx := context.Background()
	root := audittest.Principals["sysadmin"]
	v, err := a.Service().Verify(ctx, root, parent)
	if err != nil || !v.Valid {
		t.Fatalf("Verify %s: %+v, %v", parent, v, err)
	}
	page, err := a.Service().Export(ctx, root, parent, 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	return page.Events
}

// waitChain waits until chain parent holds want events.
func waitChain(t *testing.T, a *audittest.Server, parent string, want int) []*auditv1.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs := auditChain(t, a, parent)
		if len(evs) == want {
			return evs
		}
		if len(evs) > want || time.Now().After(deadline) {
			var actions []string
			for _, ev := range evs {
				actions = append(actions, ev.GetAction()+" "+ev.GetResource())
			}
			t.Fatalf("%s chain: got %v, want %d events", parent, actions, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricsAddr returns the /metrics URL the daemon logged.
func metricsAddr(t *testing.T, logs string) string {
	t.Helper()
	for line := range strings.Lines(logs) {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "metrics" {
			return rec.Addr
		}
	}
	t.Fatalf("no metrics address in the logs:\n%s", logs)
	return ""
}

// TestAuditShipping: ozsecretstored ships its events — the sealing keys
// made at first start, a secret's creation, a refused request — to the
// audit service (--audit-addr, mutual TLS with its certificate), exports
// the outbox's metrics (--metrics-listen), keeps events made while the
// audit service is down for after its next start, and `keyring rewrap`
// works without the audit service, its events delivered by the next
// start.
func TestAuditShipping(t *testing.T) {
	a := audittest.Start(t, audittest.Options{})
	data := t.TempDir()
	resolver := startResolver(t, a.PKI)
	args := []string{"--data-dir", data, "--resolver-addr", resolver,
		"--tls-cert", a.PKI.For("secretstore").Cert, "--tls-key", a.PKI.For("secretstore").Key, "--tls-ca", a.PKI.CA()}
	env := map[string]string{"OZ_DEV": "true", "OZ_AUDIT_ADDR": a.Addr, "OZ_SECRETSTORE_METRICS_LISTEN": "127.0.0.1:0"}

	d := startDaemon(t, args, env)
	c := dial(t, a.PKI, d.addr)
	if evs := waitChain(t, a, "system", 1); evs[0].GetAction() != "sealing_key.create" ||
		evs[0].GetActor().GetKind() != auditv1.ActorKind_ACTOR_KIND_SERVICE || evs[0].GetActor().GetName() != "secretstore" {
		t.Errorf("first start: got %v, want sealing_key.create by the service secretstore", evs[0])
	}
	if _, err := c.CreateSecret(as("tok-alice"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "API_KEY", Value: []byte(canary)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSecret(as("tok-bob"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "X", Value: []byte(canary)}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("CreateSecret as a member: got %v, want PermissionDenied", err)
	}
	evs := waitChain(t, a, "teams/acme", 2)
	if ev := evs[0]; ev.GetAction() != "secret.create" || ev.GetResource() != "teams/acme/secrets/API_KEY" || ev.GetActor().GetName() != "users/alice" {
		t.Errorf("got %v, want secret.create of API_KEY by users/alice", ev)
	}
	if ev := evs[1]; ev.GetAction() != "request.denied" || ev.GetActor().GetName() != "users/bob" ||
		ev.GetDetails()["method"] != "/oz.secrets.v1.SecretService/CreateSecret" {
		t.Errorf("got %v, want request.denied of CreateSecret by users/bob", ev)
	}

	resp, err := http.Get(metricsAddr(t, d.logs.String()))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`oz_audit_outbox_backlog{emitter="secretstore"}`, `oz_audit_outbox_delivered_total{emitter="secretstore"}`,
		`oz_audit_outbox_delivery_lag_seconds_bucket{emitter="secretstore"`, "go_goroutines",
		`grpc_server_handled_total{grpc_code="PermissionDenied",grpc_method="CreateSecret",grpc_service="oz.secrets.v1.SecretService",grpc_type="unary"} 1`} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	// The audit service goes down: a change waits in the outbox, across a
	// restart of ozsecretstored, and arrives once it is back.
	a.Stop()
	if _, err := c.CreateSecret(as("tok-alice"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "DOWN", Value: []byte(canary)}); err != nil {
		t.Fatalf("CreateSecret while the audit service is down: %v", err)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.logs.String(), "events left in the outbox") {
		t.Errorf("shutdown with the audit service down: the logs do not say events were left:\n%s", d.logs)
	}

	// keyring rotate and rewrap need no audit service; the rewrap's
	// events wait for the next start.
	var out bytes.Buffer
	cmdEnv := map[string]string{"OZ_DEV": "true", "OZ_DATA_DIR": data, "OZ_AUDIT_ADDR": "127.0.0.1:1"}
	for _, cmd := range [][]string{{"keyring", "rotate"}, {"keyring", "rewrap"}} {
		if err := run(context.Background(), cmd, lookupIn(cmdEnv), &out, io.Discard, slog.New(slog.DiscardHandler), nil); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	if !strings.Contains(out.String(), "rewrapped 2 of 2 data keys and 2 sealing keys") || !strings.Contains(out.String(), "audit events wait in the outbox") {
		t.Errorf("rewrap output: got %q", out.String())
	}

	a.Restart()
	d = startDaemon(t, args, env)
	evs = waitChain(t, a, "teams/acme", 5)
	var got []string
	for _, ev := range evs[2:] {
		got = append(got, ev.GetAction()+" "+ev.GetResource())
	}
	if want := "secret.create teams/acme/secrets/DOWN,secret.rewrap teams/acme/secrets/API_KEY,secret.rewrap teams/acme/secrets/DOWN"; strings.Join(got, ",") != want {
		t.Errorf("acme's chain after the restart: got %v, want %s", got, want)
	}
	sys := waitChain(t, a, "system", 2)
	if ev := sys[1]; ev.GetAction() != "sealing_key.rewrap" || ev.GetDetails()["kek_id"] != "k2" || ev.GetActor().GetName() != "secretstore" {
		t.Errorf("system chain after the restart: got %v, want sealing_key.rewrap to k2 by the service", ev)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	for _, parent := range []string{"system", "teams/acme"} {
		for _, ev := range auditChain(t, a, parent) {
			if strings.Contains(ev.String(), canary) {
				t.Errorf("event %s holds the value", ev.GetId())
			}
		}
	}
	if strings.Contains(d.logs.String(), canary) {
		t.Error("logs hold the value")
	}
}
