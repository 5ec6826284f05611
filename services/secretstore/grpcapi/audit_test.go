package grpcapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/lib/reqmeta"
	"github.com/ozsecrets/oz/lib/sealwire"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/audit/audittest"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/secretstore"
)

// auditCanary is planted as values; no event may hold it, nor its base64.
const auditCanary = "CANARY-a7d1e0-audit-never"

// via returns a context carrying token (none when ""), the client header
// and a request id, as the gateway and the CLI send them.
func via(token, client, requestID string) context.Context {
	ctx := as(token)
	return metadata.AppendToOutgoingContext(ctx, "x-oz-client", client, "x-request-id", requestID)
}

// outboxEvents returns every event waiting in e's outbox, oldest first.
func (e *testEnv) outboxEvents(t testing.TB) []*auditv1.Event {
	t.Helper()
	evs, err := e.store.Outbox().Pending(context.Background(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// wantEvent is what one audit event must say.
type wantEvent struct {
	action, resource, team string
	actorKind              auditv1.ActorKind
	actor, client          string
	outcome                auditv1.Outcome
	details                map[string]string // exactly, but for a request.denied's reason (any, not empty)
}

func checkEvent(t *testing.T, got *auditv1.Event, want wantEvent, requestID string) {
	t.Helper()
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w)) }
	if got.GetAction() != want.action {
		add("action", got.GetAction(), want.action)
	}
	if got.GetResource() != want.resource {
		add("resource", got.GetResource(), want.resource)
	}
	if got.GetTeam() != want.team {
		add("team", got.GetTeam(), want.team)
	}
	if got.GetActor().GetKind() != want.actorKind || got.GetActor().GetName() != want.actor || got.GetActor().GetClient() != want.client {
		add("actor", got.GetActor(), fmt.Sprintf("%v %q via %q", want.actorKind, want.actor, want.client))
	}
	if got.GetOutcome() != want.outcome {
		add("outcome", got.GetOutcome(), want.outcome)
	}
	// A request that sent no id gets one from the server (reqmeta).
	if id := got.GetRequestId(); id != requestID && (requestID != "" || !reqmeta.ValidRequestID(id)) {
		add("request_id", got.GetRequestId(), requestID)
	}
	details := maps.Clone(got.GetDetails())
	if want.action == "request.denied" {
		if details["reason"] == "" {
			add("details[reason]", "", "a reason")
		}
		if details["source"] != "127.0.0.1" {
			add("details[source]", details["source"], "127.0.0.1")
		}
		delete(details, "reason")
		delete(details, "source")
	}
	if !maps.Equal(details, want.details) {
		add("details", details, want.details)
	}
	if !strings.HasPrefix(got.GetId(), "secretstore-") || got.GetTime() == nil {
		add("id and time", got.GetId()+" "+got.GetTime().String(), "secretstore-… and a time")
	}
	if len(d) > 0 {
		t.Errorf("event %s:\n  %s", got.GetId(), strings.Join(d, "\n  "))
	}
}

// noCanaryIn fails when b holds the canary or its base64.
func noCanaryIn(t *testing.T, what string, b []byte) {
	t.Helper()
	for _, form := range []string{
		auditCanary,
		base64.StdEncoding.EncodeToString([]byte(auditCanary)),
		base64.RawStdEncoding.EncodeToString([]byte(auditCanary)),
		base64.URLEncoding.EncodeToString([]byte(auditCanary)),
		base64.RawURLEncoding.EncodeToString([]byte(auditCanary)),
		"CANARY-a7d1e0",
	} {
		if bytes.Contains(b, []byte(form)) {
			t.Errorf("%s holds the canary (%q)", what, form)
		}
	}
}

// TestAuditEvents: over the wire, each change writes exactly one event
// naming the action, the secret, its chain, the actor (with the client
// and the request id) and versions, never the value; a change that fails
// writes none; a refused request writes one request.denied.
func TestAuditEvents(t *testing.T) {
	e := newTestEnv(t)
	c := e.client(t, "gateway")
	keys := e.sealingKeys(t)
	run := internalapiv1.NewRunSecretsServiceClient(e.dial(t, "gateway"))
	user := auditv1.ActorKind_ACTOR_KIND_USER
	ok, denied := auditv1.Outcome_OUTCOME_OK, auditv1.Outcome_OUTCOME_DENIED
	v := func(n string) map[string]string { return map[string]string{"value_version": n} }
	deniedBy := func(method, code string) map[string]string {
		return map[string]string{"method": method, "code": code}
	}
	const svc = "/oz.secrets.v1.SecretService/"
	var etag string
	// Each step runs as token; through client ("cli", "rest") with a
	// request id "req-{step}", or, with client "", as a bare gRPC call
	// (client "grpc", no request id).
	steps := []struct {
		name          string
		token, client string
		op            func(ctx context.Context) error
		code          codes.Code
		want          []wantEvent
	}{
		{"CreateTeamSecret", "admin", "cli", func(ctx context.Context) error {
			resp, err := c.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "API_KEY", Value: []byte(auditCanary), Description: "d"})
			etag = resp.GetSecret().GetEtag()
			return err
		}, codes.OK, []wantEvent{{"secret.create", "teams/acme/secrets/API_KEY", "acme", user, "users/alice", "cli", ok, v("1")}}},
		{"CreateSealed", "admin", "rest", func(ctx context.Context) error {
			_, err := c.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "SEALED",
				SealedValue: e.sealFor(t, sealwire.KEMX25519, "teams/acme", "SEALED", auditCanary)})
			return err
		}, codes.OK, []wantEvent{{"secret.create", "teams/acme/secrets/SEALED", "acme", user, "users/alice", "rest", ok,
			map[string]string{"value_version": "1", "sealed": "true"}}}},
		{"CreatePersonalSecret", "member", "", func(ctx context.Context) error {
			_, err := c.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: "users/me", SecretId: "MINE", Value: []byte(auditCanary)})
			return err
		}, codes.OK, []wantEvent{{"secret.create", "users/bob/secrets/MINE", "", user, "users/bob", "grpc", ok, v("1")}}},
		{"UpdateValue", "admin", "cli", func(ctx context.Context) error {
			_, err := c.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: "teams/acme/secrets/API_KEY", Value: []byte(auditCanary + "2")})
			return err
		}, codes.OK, []wantEvent{{"secret.update", "teams/acme/secrets/API_KEY", "acme", user, "users/alice", "cli", ok,
			map[string]string{"value_version": "2", "value_changed": "true"}}}},
		{"UpdateDescription", "admin", "cli", func(ctx context.Context) error {
			_, err := c.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: "teams/acme/secrets/API_KEY", Description: "new"})
			return err
		}, codes.OK, []wantEvent{{"secret.update", "teams/acme/secrets/API_KEY", "acme", user, "users/alice", "cli", ok,
			map[string]string{"value_version": "2", "description_changed": "true"}}}},
		{"UpdateSameDescription", "admin", "cli", func(ctx context.Context) error {
			_, err := c.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: "teams/acme/secrets/API_KEY", Description: "new"})
			return err
		}, codes.OK, []wantEvent{{"secret.update", "teams/acme/secrets/API_KEY", "acme", user, "users/alice", "cli", ok, v("2")}}},
		{"UpdateSealedValueAndDescription", "member", "cli", func(ctx context.Context) error {
			_, err := c.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: "users/me/secrets/MINE", Description: "mine",
				SealedValue: e.sealFor(t, sealwire.KEMMLKEM768X25519, "users/bob", "MINE", auditCanary+"3")})
			return err
		}, codes.OK, []wantEvent{{"secret.update", "users/bob/secrets/MINE", "", user, "users/bob", "cli", ok,
			map[string]string{"value_version": "2", "value_changed": "true", "sealed": "true", "description_changed": "true"}}}},
		{"DeletePersonal", "member", "", func(ctx context.Context) error {
			_, err := c.DeleteSecret(ctx, &secretsv1.DeleteSecretRequest{Name: "users/me/secrets/MINE"})
			return err
		}, codes.OK, []wantEvent{{"secret.delete", "users/bob/secrets/MINE", "", user, "users/bob", "grpc", ok, v("2")}}},

		// Failures change nothing and write nothing.
		{"CreateInvalidName", "admin", "cli", func(ctx context.Context) error {
			_, err := c.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "PATH", Value: []byte(auditCanary)})
			return err
		}, codes.InvalidArgument, nil},
		{"CreateTooLarge", "admin", "cli", func(ctx context.Context) error {
			_, err := c.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "BIG", Value: bytes.Repeat([]byte(auditCanary), 5000)})
			return err
		}, codes.InvalidArgument, nil},
		{"CreateConflict", "admin", "cli", func(ctx context.Context) error {
			_, err := c.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "api_key", Value: []byte(auditCanary)})
			return err
		}, codes.AlreadyExists, nil},
		{"UpdateStaleEtag", "admin", "cli", func(ctx context.Context) error {
			_, err := c.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: "teams/acme/secrets/API_KEY", Value: []byte(auditCanary), Etag: etag})
			return err
		}, codes.FailedPrecondition, nil},
		{"DeleteStaleEtag", "admin", "cli", func(ctx context.Context) error {
			_, err := c.DeleteSecret(ctx, &secretsv1.DeleteSecretRequest{Name: "teams/acme/secrets/API_KEY", Etag: etag})
			return err
		}, codes.FailedPrecondition, nil},
		{"UpdateMissing", "admin", "cli", func(ctx context.Context) error {
			_, err := c.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: "teams/acme/secrets/NOPE", Value: []byte(auditCanary)})
			return err
		}, codes.NotFound, nil},
		{"DeleteMissing", "admin", "cli", func(ctx context.Context) error {
			_, err := c.DeleteSecret(ctx, &secretsv1.DeleteSecretRequest{Name: "teams/acme/secrets/NOPE"})
			return err
		}, codes.NotFound, nil},
		{"Reads", "member", "cli", func(ctx context.Context) error {
			if _, err := c.GetSecret(ctx, &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/API_KEY"}); err != nil {
				return err
			}
			if _, err := keys.ListSealingKeys(ctx, &secretsv1.ListSealingKeysRequest{}); err != nil {
				return err
			}
			_, err := c.ListAvailableSecrets(ctx, &secretsv1.ListAvailableSecretsRequest{})
			return err
		}, codes.OK, nil},

		// Refusals are request.denied, on the team's chain when the team
		// is known (the caller's, or one with secrets here), else on the
		// system chain; personal secrets' on the system chain.
		{"MemberCreates", "member", "rest", func(ctx context.Context) error {
			_, err := c.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "X", Value: []byte(auditCanary)})
			return err
		}, codes.PermissionDenied, []wantEvent{{"request.denied", "teams/acme/secrets/X", "acme", user, "users/bob", "rest", denied,
			deniedBy(svc+"CreateSecret", "PERMISSION_DENIED")}}},
		{"OutsiderReadsTeamWithSecrets", "outsider", "", func(ctx context.Context) error {
			_, err := c.GetSecret(ctx, &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/API_KEY"})
			return err
		}, codes.PermissionDenied, []wantEvent{{"request.denied", "teams/acme/secrets/API_KEY", "acme", user, "users/carol", "grpc", denied,
			deniedBy(svc+"GetSecret", "PERMISSION_DENIED")}}},
		{"OutsiderListsUnknownTeam", "outsider", "", func(ctx context.Context) error {
			_, err := c.ListSecrets(ctx, &secretsv1.ListSecretsRequest{Parent: "teams/made-up"})
			return err
		}, codes.PermissionDenied, []wantEvent{{"request.denied", "teams/made-up", "", user, "users/carol", "grpc", denied,
			deniedBy(svc+"ListSecrets", "PERMISSION_DENIED")}}},
		{"MemberReadsAnothersPersonal", "member", "cli", func(ctx context.Context) error {
			_, err := c.GetSecret(ctx, &secretsv1.GetSecretRequest{Name: "users/alice/secrets/X"})
			return err
		}, codes.PermissionDenied, []wantEvent{{"request.denied", "users/alice/secrets/X", "", user, "users/bob", "cli", denied,
			deniedBy(svc+"GetSecret", "PERMISSION_DENIED")}}},
		{"MalformedNameNotRecorded", "runner", "runner", func(ctx context.Context) error {
			_, err := c.GetSecret(ctx, &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/" + auditCanary})
			return err
		}, codes.PermissionDenied, []wantEvent{{"request.denied", "", "", auditv1.ActorKind_ACTOR_KIND_RUNNER, "runners/r1", "runner", denied,
			deniedBy(svc+"GetSecret", "PERMISSION_DENIED")}}},
		{"TokenShapedNameNotRecorded", "runner", "runner", func(ctx context.Context) error {
			// A well-formed secret id with a bearer token's shape, as if
			// pasted: the refusal is recorded without it.
			_, err := c.GetSecret(ctx, &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/oz_0123456789abcdef_PastedTokenSecretPartxxxxxxxxxxxxxxxxxxxxx"})
			return err
		}, codes.PermissionDenied, []wantEvent{{"request.denied", "", "", auditv1.ActorKind_ACTOR_KIND_RUNNER, "runners/r1", "runner", denied,
			deniedBy(svc+"GetSecret", "PERMISSION_DENIED")}}},
		{"UnknownToken", "nope", "cli", func(ctx context.Context) error {
			_, err := c.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "X", Value: []byte(auditCanary)})
			return err
		}, codes.Unauthenticated, []wantEvent{{"request.denied", "teams/acme/secrets/X", "acme", auditv1.ActorKind_ACTOR_KIND_UNSPECIFIED, "", "cli", denied,
			map[string]string{"method": svc + "CreateSecret", "code": "UNAUTHENTICATED", "peer_service": "gateway"}}}},
		{"RunSecretsFromGateway", "", "", func(ctx context.Context) error {
			_, err := run.SealRunSecrets(ctx, &internalapiv1.SealRunSecretsRequest{Selection: &internalapiv1.Selection{Owners: []string{"teams/acme"}}})
			return err
		}, codes.PermissionDenied, []wantEvent{{"request.denied", "", "", auditv1.ActorKind_ACTOR_KIND_SERVICE, "gateway", "grpc", denied,
			deniedBy("/oz.internalapi.v1.RunSecretsService/SealRunSecrets", "PERMISSION_DENIED")}}},
		{"MemberRotatesSealingKeys", "member", "cli", func(ctx context.Context) error {
			_, err := keys.RotateSealingKeys(ctx, &secretsv1.RotateSealingKeysRequest{})
			return err
		}, codes.PermissionDenied, []wantEvent{{"request.denied", "", "", user, "users/bob", "cli", denied,
			deniedBy("/oz.secrets.v1.SealingKeyService/RotateSealingKeys", "PERMISSION_DENIED")}}},
		{"SysadminRotatesSealingKeys", "sysadmin", "cli", func(ctx context.Context) error {
			_, err := keys.RotateSealingKeys(ctx, &secretsv1.RotateSealingKeysRequest{})
			return err
		}, codes.OK, []wantEvent{{"sealing_key.rotate", "sealingKeys", "", user, "users/root", "cli", ok,
			map[string]string{"created": "mlkem768x25519-2,x25519-2", "retired": "mlkem768x25519-1,x25519-1"}}}},

		{"DeleteTeamSecret", "admin", "cli", func(ctx context.Context) error {
			_, err := c.DeleteSecret(ctx, &secretsv1.DeleteSecretRequest{Name: "teams/acme/secrets/API_KEY"})
			return err
		}, codes.OK, []wantEvent{{"secret.delete", "teams/acme/secrets/API_KEY", "acme", user, "users/alice", "cli", ok, v("2")}}},
	}

	// The sealing keys made at start are the first event, the service's
	// own.
	first := e.outboxEvents(t)
	if len(first) != 1 {
		t.Fatalf("events at start: got %d, want 1 (sealing_key.create)", len(first))
	}
	checkEvent(t, first[0], wantEvent{"sealing_key.create", "sealingKeys", "", auditv1.ActorKind_ACTOR_KIND_SERVICE, "secretstore", "", ok,
		map[string]string{"created": "mlkem768x25519-1,x25519-1"}}, "")
	seen := len(first)
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			ctx, reqID := as(st.token), ""
			if st.client != "" {
				reqID = "req-" + st.name
				ctx = via(st.token, st.client, reqID)
			}
			err := st.op(ctx)
			if status.Code(err) != st.code {
				t.Fatalf("got %v, want %v", err, st.code)
			}
			all := e.outboxEvents(t)
			evs := all[seen:]
			seen = len(all)
			if len(evs) != len(st.want) {
				var actions []string
				for _, ev := range evs {
					actions = append(actions, ev.GetAction()+" "+ev.GetResource())
				}
				t.Fatalf("events: got %v, want %d", actions, len(st.want))
			}
			for i, w := range st.want {
				checkEvent(t, evs[i], w, reqID)
			}
		})
	}
	for _, ev := range e.outboxEvents(t) {
		noCanaryIn(t, "event "+ev.GetId(), []byte(ev.String()))
	}
}

// ship runs an outbox.Shipper from e's outbox to a until the test ends
// (or stop is called), with fast retries.
func (e *testEnv) ship(t *testing.T, a *audittest.Server) (reg *prometheus.Registry, stop func()) {
	t.Helper()
	reg = prometheus.NewRegistry()
	sh := outbox.New(outbox.Config{
		Source:       e.store.Outbox(),
		Client:       internalapiv1.NewAuditIngestServiceClient(a.Dial(t, "secretstore")),
		Emitter:      secretstore.Emitter,
		MinBackoff:   10 * time.Millisecond,
		MaxBackoff:   100 * time.Millisecond,
		PollInterval: 50 * time.Millisecond,
		CallTimeout:  2 * time.Second,
		Registerer:   reg,
	})
	e.store.OnCommit(sh.Notify)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sh.Run(ctx)
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return reg, stop
}

func (e *testEnv) backlog(t testing.TB) int {
	t.Helper()
	n, err := e.store.Outbox().(outbox.Counter).Backlog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls cond for up to 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func gauge(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// auditChain returns every event of the audit service's chain parent
// ("system", "teams/acme"), checking that it verifies end to end.
func auditChain(t *testing.T, a *audittest.Server, parent string) []*auditv1.Event {
	t.Helper()
	ctx := context.Background()
	root := audittest.Principals["sysadmin"]
	v, err := a.Service().Verify(ctx, root, parent)
	if err != nil {
		t.Fatalf("Verify %s: %v", parent, err)
	}
	if !v.Valid {
		t.Fatalf("Verify %s: broken at %+v", parent, v.Break)
	}
	var out []*auditv1.Event
	token := ""
	for {
		page, err := a.Service().Export(ctx, root, parent, 1000, token)
		if err != nil {
			t.Fatalf("Export %s: %v", parent, err)
		}
		out = append(out, page.Events...)
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	if int64(len(out)) != v.Verified {
		t.Fatalf("%s: exported %d events, verified %d", parent, len(out), v.Verified)
	}
	return out
}

func ids(evs []*auditv1.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.GetId()
	}
	return out
}

// TestAuditDeliveryWhileAuditIsDown: with the audit service stopped,
// changes go on and their events wait in the outbox (the backlog metric
// shows them); once it is back, every event arrives exactly once, each
// chain in the order of the outbox, and the chains verify. No planted
// value is in any event, nor in the audit service's database file.
func TestAuditDeliveryWhileAuditIsDown(t *testing.T) {
	e := newTestEnv(t)
	a := audittest.Start(t, audittest.Options{})
	reg, _ := e.ship(t, a)
	c := e.client(t, "gateway")
	admin, member := via("admin", "cli", "r1"), via("member", "rest", "r2")

	mustCreate(t, c, "admin", "teams/acme", "BEFORE", auditCanary)
	waitFor(t, "the first events to be delivered", func() bool { return e.backlog(t) == 0 })
	before := map[string]int{"system": len(auditChain(t, a, "system")), "teams/acme": len(auditChain(t, a, "teams/acme"))}
	if before["system"] != 1 || before["teams/acme"] != 1 {
		t.Fatalf("chains before the outage: got %v, want the sealing keys' event and BEFORE's", before)
	}

	a.Stop()
	const rounds = 25
	for i := range rounds {
		name := fmt.Sprintf("S%03d", i)
		if _, err := c.CreateSecret(admin, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: name, Value: []byte(auditCanary + name)}); err != nil {
			t.Fatalf("create while the audit service is down: %v", err)
		}
		if _, err := c.UpdateSecret(admin, &secretsv1.UpdateSecretRequest{Name: "teams/acme/secrets/" + name, Value: []byte(name + auditCanary)}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateSecret(member, &secretsv1.CreateSecretRequest{Parent: "users/me", SecretId: name, Value: []byte(auditCanary)}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.DeleteSecret(member, &secretsv1.DeleteSecretRequest{Name: "users/me/secrets/" + name}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateSecret(member, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: name, Value: []byte(auditCanary)}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("member creates a team secret: got %v, want PermissionDenied", err)
		}
	}
	const perRound = 5
	if n := e.backlog(t); n != rounds*perRound {
		t.Fatalf("backlog while the audit service is down: got %d, want %d", n, rounds*perRound)
	}
	waitFor(t, "the backlog gauge", func() bool { return gauge(t, reg, "oz_audit_outbox_backlog") == rounds*perRound })
	pending := e.outboxEvents(t)

	a.Restart()
	waitFor(t, "delivery after the restart", func() bool { return e.backlog(t) == 0 })
	byChain := map[string][]string{}
	for _, ev := range pending {
		parent := "system"
		if ev.GetTeam() != "" {
			parent = "teams/" + ev.GetTeam()
		}
		byChain[parent] = append(byChain[parent], ev.GetId())
	}
	if len(byChain["system"]) != 2*rounds || len(byChain["teams/acme"]) != 3*rounds {
		t.Fatalf("events by chain: got %d on the system chain and %d on acme's, want %d and %d (personal secrets on the system chain)",
			len(byChain["system"]), len(byChain["teams/acme"]), 2*rounds, 3*rounds)
	}
	for _, parent := range []string{"system", "teams/acme"} {
		evs := auditChain(t, a, parent)
		if got := ids(evs[before[parent]:]); !slices.Equal(got, byChain[parent]) {
			t.Errorf("%s after the outage: got %d events, want the %d of the outbox, once each, in its order", parent, len(got), len(byChain[parent]))
		}
		for _, ev := range evs {
			noCanaryIn(t, "audit event "+ev.GetId(), []byte(ev.String()))
			if parent == "teams/acme" && strings.HasPrefix(ev.GetResource(), "users/") {
				t.Errorf("personal secret event %s on the team's chain", ev.GetId())
			}
		}
	}

	a.Stop()
	raw, err := os.ReadFile(a.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("teams/acme/secrets/S000")) {
		t.Fatal("the audit database does not hold the events: the canary check would prove nothing")
	}
	noCanaryIn(t, "the audit database file", raw)
	e.stop()
	if raw, err = os.ReadFile(e.dbPath); err != nil {
		t.Fatal(err)
	}
	noCanaryIn(t, "the secretstore database file", raw)
}
