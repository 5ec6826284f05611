package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/e2e/harness"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// The audit log is honest (DESIGN §6): anonymous traffic is counted, not
// recorded request by request; only the service that made a change
// appends its event; what a request says of itself (its client, its
// request id) is recorded only as far as something vouches for it.

// honestCanary is a bearer token of the right shape that nobody issued;
// neither it nor its secret part may appear in any event.
const honestCanary = "oz_0123456789abcdef_HONESTcanarySECRETpart0000000000000000000"

// honestChain returns every event of the chain parent ("system",
// "teams/acme"), read through the gateway as the system admin.
func honestChain(t *testing.T, sys *harness.System, conn *grpc.ClientConn, parent string) []*auditv1.Event {
	t.Helper()
	c := auditv1.NewAuditServiceClient(conn)
	var out []*auditv1.Event
	req := &auditv1.ExportEventsRequest{Parent: parent, PageSize: 1000}
	for {
		ctx, cancel := context.WithTimeout(harness.WithToken(context.Background(), sys.AdminToken), 30*time.Second)
		resp, err := c.ExportEvents(ctx, req)
		cancel()
		if err != nil {
			t.Fatalf("ExportEvents %s: %v", parent, err)
		}
		out = append(out, resp.GetEvents()...)
		if resp.GetNextPageToken() == "" {
			return out
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// checkEventsHoldNoCanary fails if any event of the chains holds the canary token.
func checkEventsHoldNoCanary(t *testing.T, sys *harness.System, conn *grpc.ClientConn, parents ...string) {
	t.Helper()
	secret := honestCanary[strings.LastIndexByte(honestCanary, '_')+1:]
	for _, parent := range parents {
		for _, ev := range honestChain(t, sys, conn, parent) {
			if s := ev.String(); strings.Contains(s, honestCanary) || strings.Contains(s, secret) {
				t.Errorf("event %s of %s holds the canary token: %s", ev.GetId(), parent, s)
			}
		}
	}
}

// TestAuditAnonymousCounted: 1,000 requests with a bad token, relayed by
// the gateway's certificate from one source address, and a few through
// the real gateway (native gRPC and REST), add a bounded number of
// request.denied events to the system chain — none to the team's chain
// the requests name — whose counts sum to the requests, with the source
// address the gateway saw. What is counted when the service stops is
// written then, not lost. No event holds the token.
func TestAuditAnonymousCounted(t *testing.T) {
	svc := startServices(t)
	sys := svc.System
	newTeam(t, sys)
	gwConn, err := sys.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer gwConn.Close()

	// 1,000 requests as the gateway relays them: its certificate, the
	// source in x-oz-peer. (Straight to the secretstore, so that the
	// gateway's own limits on failed authentication do not stop them.)
	direct, err := sys.DialService("secretstore", "gateway")
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	const n, source = 1000, "203.0.113.7"
	secrets := secretsv1.NewSecretServiceClient(direct)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codesGot := map[codes.Code]int{}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				ctx := metadata.AppendToOutgoingContext(context.Background(),
					"authorization", "Bearer "+honestCanary, "x-oz-peer", source, "x-request-id", fmt.Sprintf("anon-%d", i))
				ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := secrets.ListSecrets(ctx, &secretsv1.ListSecretsRequest{Parent: "teams/acme"})
				cancel()
				mu.Lock()
				codesGot[status.Code(err)]++
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if codesGot[codes.Unauthenticated] != n {
		t.Fatalf("got codes %v, want %d Unauthenticated", codesGot, n)
	}

	// A few through the real gateway, from this test's address; the
	// gateway may refuse some itself (rate limits): only those that
	// reached the secretstore (Unauthenticated, 401) are counted there.
	viaGateway := 0
	gwSecrets := secretsv1.NewSecretServiceClient(gwConn)
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(harness.WithToken(context.Background(), honestCanary), 30*time.Second)
		// A caller's own x-oz-peer is not believed: the gateway replaces it.
		ctx = metadata.AppendToOutgoingContext(ctx, "x-oz-peer", "192.0.2.99")
		_, err := gwSecrets.ListSecrets(ctx, &secretsv1.ListSecretsRequest{Parent: "teams/acme"})
		cancel()
		if status.Code(err) == codes.Unauthenticated {
			viaGateway++
		}
	}
	hc, err := sys.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("GET", "https://"+sys.Addr+"/v1/teams/acme/secrets", nil)
		req.Header.Set("Authorization", "Bearer "+honestCanary)
		req.Header.Set("Grpc-Metadata-X-Oz-Peer", "192.0.2.99")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			viaGateway++
		}
	}
	if viaGateway == 0 {
		t.Fatal("no request through the gateway reached the secretstore")
	}

	// Stopping the secretstore writes what it counted (the interval is a
	// minute by default); its outbox delivers it, after the restart at
	// the latest.
	sp := svc.Proc("secretstore")
	if err := sp.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := sp.Start(); err != nil {
		t.Fatal(err)
	}

	sums := map[string]int{}
	var counted []*auditv1.Event
	deadline := time.Now().Add(3 * time.Minute)
	for {
		sums, counted = map[string]int{}, nil
		for _, ev := range honestChain(t, sys, gwConn, "system") {
			d := ev.GetDetails()
			if ev.GetAction() != "request.denied" || !strings.HasPrefix(ev.GetId(), "secretstore-") ||
				d["method"] != secretsv1.SecretService_ListSecrets_FullMethodName {
				continue
			}
			counted = append(counted, ev)
			c, err := strconv.Atoi(d["count"])
			if err != nil {
				t.Fatalf("event %s: count %q: %v (every anonymous refusal is counted): %v", ev.GetId(), d["count"], err, ev)
			}
			sums[d["source"]] += c
		}
		if sums[source] >= n && sums["127.0.0.1"] >= viaGateway || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if sums[source] != n || sums["127.0.0.1"] != viaGateway || len(sums) != 2 {
		t.Fatalf("counts by source: got %v, want %s: %d and 127.0.0.1 (through the gateway): %d", sums, source, n, viaGateway)
	}
	// One event per source, method and reason per interval: the stop's,
	// and at most a few more should an interval have ended meanwhile.
	if len(counted) > 8 {
		t.Errorf("got %d request.denied events for %d requests, want a handful", len(counted), n+viaGateway)
	}
	for _, ev := range counted {
		d := ev.GetDetails()
		if ev.GetTeam() != "" || ev.GetResource() != "" || ev.GetActor().GetName() != "" || ev.GetRequestId() != "" ||
			ev.GetOutcome() != auditv1.Outcome_OUTCOME_DENIED || d["code"] != "UNAUTHENTICATED" || d["reason"] == "" ||
			d["peer_service"] != "gateway" || d["first_time"] == "" || d["last_time"] == "" {
			t.Errorf("counted event: got %v, want an anonymous UNAUTHENTICATED count relayed by the gateway, with times, on the system chain", ev)
		}
	}
	// The team the requests named got none of it.
	for _, ev := range honestChain(t, sys, gwConn, "teams/acme") {
		if ev.GetAction() == "request.denied" {
			t.Errorf("acme's chain holds an anonymous refusal: %v", ev)
		}
	}
	checkEventsHoldNoCanary(t, sys, gwConn, "system", "teams/acme")
}

// TestAuditIngestOnlyEmitters: the gateway makes no change, so its
// certificate may not append events (refused, and the attempt recorded
// as the gateway's); a service appends only the events it emitted (a
// secretstore appending a resolver-… event is refused).
func TestAuditIngestOnlyEmitters(t *testing.T) {
	sys := startSystem(t)
	gwConn, err := sys.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer gwConn.Close()
	forged := func(id string) *internalapiv1.AppendEventsRequest {
		return &internalapiv1.AppendEventsRequest{Events: []*auditv1.Event{{
			Id: id, Time: timestamppb.New(time.Unix(1e9, 0)), Action: "secret.delete", Team: "acme",
			Resource: "teams/acme/secrets/FORGED", Outcome: auditv1.Outcome_OUTCOME_OK,
			Actor: &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/alice", Client: "cli"},
		}}}
	}
	for _, tt := range []struct{ name, cert, id string }{
		{"Gateway", "gateway", "gateway-forged-1"},
		{"GatewayAsSecretstore", "gateway", "secretstore-forged-1"},
		{"SecretstoreAsResolver", "secretstore", "resolver-forged-1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := sys.DialService("audit", tt.cert)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err = internalapiv1.NewAuditIngestServiceClient(conn).AppendEvents(ctx, forged(tt.id))
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("AppendEvents as %s of %s: got %v, want PermissionDenied", tt.cert, tt.id, err)
			}
		})
	}
	for _, ev := range honestChain(t, sys, gwConn, "teams/acme") {
		if strings.Contains(ev.GetId(), "forged") || ev.GetResource() == "teams/acme/secrets/FORGED" {
			t.Errorf("a forged event is in acme's chain: %v", ev)
		}
	}
	// The gateway's attempts are on the record, as the gateway's.
	found := 0
	for _, ev := range honestChain(t, sys, gwConn, "system") {
		a := ev.GetActor()
		if ev.GetAction() == "request.denied" && ev.GetDetails()["method"] == internalapiv1.AuditIngestService_AppendEvents_FullMethodName &&
			a.GetKind() == auditv1.ActorKind_ACTOR_KIND_SERVICE && a.GetName() == "gateway" {
			found++
		}
	}
	if found != 2 {
		t.Errorf("request.denied of the gateway's AppendEvents: got %d, want 2", found)
	}
}

// TestAuditClientAndRequestID: over native gRPC, through the gateway and
// straight to the secretstore, the client recorded is the credential's
// where it says (a runner's token: runner) and otherwise a known claim
// (cli, web) or "grpc" — a person claiming "runner" or "rest" is not
// believed — and a request id is kept only when valid; an invalid one
// (odd characters, too long, a pasted token) is replaced whole, and the
// id the gateway answers with is the one recorded.
func TestAuditClientAndRequestID(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)
	runner := newRunner(t, sys, "honest-runner", "acme")
	gwConn, err := sys.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer gwConn.Close()
	direct, err := sys.DialService("secretstore", "resolver")
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()

	longID := strings.Repeat("r", 129)
	cases := []struct {
		name, token, client, reqID string
		conn                       *grpc.ClientConn
		wantClient                 string
		keepID                     bool
	}{
		{"PersonCLI", tm.bob, "cli", "honest-1", gwConn, "cli", true},
		{"PersonWeb", tm.bob, "web", "honest-2:x.y_z", gwConn, "web", true},
		{"PersonClaimsRunner", tm.bob, "runner", "honest 3", gwConn, "grpc", false},
		{"PersonClaimsREST", tm.bob, "rest", honestCanary, gwConn, "grpc", false},
		{"PersonUnknownClient", tm.bob, "curl", longID, gwConn, "grpc", false},
		{"RunnerClaimsCLI", runner, "cli", "honest-6", gwConn, "runner", true},
		{"DirectPersonClaimsRunner", tm.bob, "runner", honestCanary, direct, "grpc", false},
		{"DirectPersonClaimsREST", tm.bob, "rest", "honest-8", direct, "grpc", true},
		{"DirectRunner", runner, "", "honest=9", direct, "runner", false},
	}
	answered := map[string]string{} // case → the x-request-id the gateway answered with
	for i, c := range cases {
		ctx := harness.WithToken(context.Background(), c.token)
		md := []string{"x-request-id", c.reqID}
		if c.client != "" {
			md = append(md, "x-oz-client", c.client)
		}
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var hdr metadata.MD
		// Refused (bob is a member, the runner no person): a
		// request.denied in acme's chain, one per request, naming the
		// secret, so that each case's event can be found.
		_, err := secretsv1.NewSecretServiceClient(c.conn).CreateSecret(ctx, &secretsv1.CreateSecretRequest{
			Parent: "teams/acme", SecretId: fmt.Sprintf("HONEST_%d", i), Value: []byte("v"),
		}, grpc.Header(&hdr))
		cancel()
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s: CreateSecret: got %v, want PermissionDenied", c.name, err)
		}
		if v := hdr.Get("x-request-id"); c.conn == gwConn && len(v) > 0 {
			answered[c.name] = v[0]
		}
	}

	byResource := map[string]*auditv1.Event{}
	deadline := time.Now().Add(2 * time.Minute)
	for len(byResource) < len(cases) && time.Now().Before(deadline) {
		for _, ev := range honestChain(t, sys, gwConn, "teams/acme") {
			if ev.GetAction() == "request.denied" && strings.HasPrefix(ev.GetResource(), "teams/acme/secrets/HONEST_") {
				byResource[ev.GetResource()] = ev
			}
		}
		if len(byResource) < len(cases) {
			time.Sleep(500 * time.Millisecond)
		}
	}
	for i, c := range cases {
		ev := byResource[fmt.Sprintf("teams/acme/secrets/HONEST_%d", i)]
		if ev == nil {
			t.Errorf("%s: no request.denied event", c.name)
			continue
		}
		if got := ev.GetActor().GetClient(); got != c.wantClient {
			t.Errorf("%s: client: got %q, want %q", c.name, got, c.wantClient)
		}
		id := ev.GetRequestId()
		switch {
		case c.keepID && id != c.reqID:
			t.Errorf("%s: request id: got %q, want %q kept", c.name, id, c.reqID)
		case !c.keepID && (id == "" || id == c.reqID || strings.Contains(c.reqID, id) || len(id) > 128 ||
			strings.ContainsAny(id, " =") || strings.Contains(id, "HONEST")):
			t.Errorf("%s: request id: got %q, want a generated one, nothing of %q", c.name, id, c.reqID)
		}
		if want, ok := answered[c.name]; ok && id != want {
			t.Errorf("%s: request id: got %q, but the gateway answered %q", c.name, id, want)
		}
		if ev.GetDetails()["source"] != "127.0.0.1" {
			t.Errorf("%s: source: got %q, want 127.0.0.1", c.name, ev.GetDetails()["source"])
		}
	}
	checkEventsHoldNoCanary(t, sys, gwConn, "system", "teams/acme")
}
