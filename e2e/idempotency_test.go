package e2e_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/e2e/harness"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// Writes sent again (issue 15): a client cannot tell a write that
// committed but whose answer was lost from one that never reached the
// store — both are Unavailable. A write sent with an idempotency key
// (REST header Idempotency-Key, gRPC metadata idempotency-key) and sent
// again with it gets the first answer, and nothing is written twice; the
// CLI sends every write with a fresh key and retries it on Unavailable.

// TestIdempotentCreateREST: through the real gateway and services, a
// create sent twice with one key answers the same twice, and leaves one
// secret version and one audit event; the key with another request is
// refused naming it; the key's record holds no value, in any form.
func TestIdempotentCreateREST(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)
	hc := edgeClient(t, sys)
	const canary = "CANARY-3f9d2a71-idempotent-rest"
	const name = "IDEM_REST"
	body := `{"secretId":"` + name + `","value":"` + base64.StdEncoding.EncodeToString([]byte(canary)) + `","description":"sent twice"}`

	post := func(key, body string) (int, map[string]any, string) {
		t.Helper()
		req, err := http.NewRequest("POST", "https://"+sys.Addr+"/v1/teams/acme/secrets", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tm.alice)
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return resp.StatusCode, m, string(raw)
	}

	code, first, raw := post("create-idem-rest-1", body)
	if code != 200 {
		t.Fatalf("first create: %d %s", code, raw)
	}
	code, again, raw := post("create-idem-rest-1", body)
	if code != 200 || !reflect.DeepEqual(again, first) {
		t.Fatalf("the create sent again with its key: %d %s; want 200 and the first answer %v", code, raw, first)
	}
	// Without the key it is a new request: the duplicate a retry would hit.
	if code, _, raw := post("", body); code != http.StatusConflict {
		t.Errorf("the create sent again without a key: %d %s, want 409", code, raw)
	}
	// The key with another request (another value) is refused, naming it.
	other := strings.Replace(body, base64.StdEncoding.EncodeToString([]byte(canary)), base64.StdEncoding.EncodeToString([]byte(canary+"-other")), 1)
	if code, _, raw := post("create-idem-rest-1", other); code != http.StatusBadRequest || !strings.Contains(raw, "idempotency-key") {
		t.Errorf("the key with another request: %d %s; want 400 naming idempotency-key", code, raw)
	}
	if code, _, raw := post("bad key", body); code != http.StatusBadRequest || !strings.Contains(raw, "idempotency-key") {
		t.Errorf("a malformed key: %d %s; want 400 naming idempotency-key", code, raw)
	}

	sec := getSecret(t, sys, tm.alice, "teams/acme/secrets/"+name)
	if sec.GetValueVersion() != 1 || sec.GetEtag() != first["secret"].(map[string]any)["etag"] {
		t.Errorf("stored: version %d etag %q; want 1 and the first answer's %v", sec.GetValueVersion(), sec.GetEtag(), first["secret"])
	}
	if n := secretEvents(t, sys, tm.alice, name); n != 1 {
		t.Errorf("secret.create events of %s: %d, want 1", name, n)
	}
	checkNotStored(t, sys, canary)
}

// TestIdempotentCreateLostAnswer: `oz secret create` whose first attempt
// commits but whose answer is lost on the way back (a proxy between the
// CLI and the gateway drops it) is retried with the same key and
// succeeds: one secret version, one audit event, no "already exists".
func TestIdempotentCreateLostAnswer(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)
	p := startLossyProxy(t, sys, "/oz.secrets.v1.SecretService/CreateSecret", 1)
	env := []string{"OZ_ADDR=" + p.addr, "OZ_CA_FILE=" + p.caFile}

	res, err := sys.OZ(tm.alice, []byte("lost-answer-value"), env, "secret", "create", "--team", "LOST_ANSWER")
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != 0 || strings.Contains(res.Stderr, "already exists") {
		t.Fatalf("oz secret create through a lost answer: exit %d, stderr %q; want success", res.Code, res.Stderr)
	}
	keys := p.keys()
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Errorf("the attempts sent idempotency keys %q, want two, the same", keys)
	}
	if sec := getSecret(t, sys, tm.alice, "teams/acme/secrets/LOST_ANSWER"); sec.GetValueVersion() != 1 {
		t.Errorf("stored version %d, want 1", sec.GetValueVersion())
	}
	if n := secretEvents(t, sys, tm.alice, "LOST_ANSWER"); n != 1 {
		t.Errorf("secret.create events: %d, want 1", n)
	}

	// Without retries, the lost answer is an Unavailable although the
	// secret was made: what a person could not tell apart.
	p2 := startLossyProxy(t, sys, "/oz.secrets.v1.SecretService/CreateSecret", 1)
	res, err = sys.OZ(tm.alice, []byte("v"), []string{"OZ_ADDR=" + p2.addr, "OZ_CA_FILE=" + p2.caFile, "OZ_RETRIES=0"},
		"secret", "create", "--team", "NO_RETRY")
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != 5 {
		t.Errorf("with OZ_RETRIES=0: exit %d (%s), want 5 (unavailable)", res.Code, res.Stderr)
	}
	if sec := getSecret(t, sys, tm.alice, "teams/acme/secrets/NO_RETRY"); sec.GetValueVersion() != 1 {
		t.Errorf("the create whose answer was lost: version %d, want it committed", sec.GetValueVersion())
	}
}

// TestIdempotentCreateGRPC: over native gRPC through the gateway, the
// same key answers the same; the key sent with an update is its own.
func TestIdempotentCreateGRPC(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)
	conn, err := sys.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := secretsv1.NewSecretServiceClient(conn)
	ctx := func(key string) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		return metadata.AppendToOutgoingContext(harness.WithToken(ctx, tm.alice), "idempotency-key", key)
	}
	req := &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "IDEM_GRPC", Value: []byte("grpc-value")}
	first, err := c.CreateSecret(ctx("grpc-1"), req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.CreateSecret(ctx("grpc-1"), req)
	if err != nil || again.GetSecret().GetEtag() != first.GetSecret().GetEtag() {
		t.Fatalf("sent again: %v, %v; want etag %q", again, err, first.GetSecret().GetEtag())
	}
	upd := &secretsv1.UpdateSecretRequest{Name: "teams/acme/secrets/IDEM_GRPC", Value: []byte("v2"), Etag: first.GetSecret().GetEtag()}
	u1, err := c.UpdateSecret(ctx("grpc-2"), upd)
	if err != nil {
		t.Fatal(err)
	}
	u2, err := c.UpdateSecret(ctx("grpc-2"), upd) // its etag is stale now
	if err != nil || u2.GetSecret().GetEtag() != u1.GetSecret().GetEtag() || u2.GetSecret().GetValueVersion() != 2 {
		t.Fatalf("the update sent again: %v, %v; want the first answer (version 2)", u2, err)
	}
	_, err = c.CreateSecret(ctx("grpc-1"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "OTHER", Value: []byte("x")})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "idempotency-key") {
		t.Errorf("the key with another create: %v, want InvalidArgument naming idempotency-key", err)
	}
	if n := secretEvents(t, sys, tm.alice, "IDEM_GRPC"); n != 2 {
		t.Errorf("events of IDEM_GRPC: %d, want 2 (one create, one update)", n)
	}
}

func getSecret(t *testing.T, sys *harness.System, token, name string) *secretsv1.Secret {
	t.Helper()
	conn, err := sys.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(harness.WithToken(context.Background(), token), 30*time.Second)
	defer cancel()
	resp, err := secretsv1.NewSecretServiceClient(conn).GetSecret(ctx, &secretsv1.GetSecretRequest{Name: name})
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return resp.GetSecret()
}

// secretEvents counts the secret.* events of team acme's secret name in
// the audit log, once everything committed before now has been
// delivered: a marker secret is created, and its event waited for (the
// outbox delivers in commit order).
func secretEvents(t *testing.T, sys *harness.System, token, name string) int {
	t.Helper()
	marker := "MARKER_" + strings.ToUpper(hex.EncodeToString(randBytes(t, 4)))
	ozOK(t, sys, token, "m", "secret", "create", "--team", marker)
	conn, err := sys.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	audit := auditv1.NewAuditServiceClient(conn)
	count := func(name string) int {
		ctx, cancel := context.WithTimeout(harness.WithToken(context.Background(), token), 30*time.Second)
		defer cancel()
		n := 0
		req := &auditv1.ListEventsRequest{Parent: "teams/acme", Resource: "teams/acme/secrets/" + name, Action: "secret.*", PageSize: 1000}
		for {
			resp, err := audit.ListEvents(ctx, req)
			if err != nil {
				t.Logf("list events: %v", err)
				return -1
			}
			n += len(resp.GetEvents())
			if resp.GetNextPageToken() == "" {
				return n
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
	eventually(t, 60*time.Second, "the marker's event delivered", func() bool { return count(marker) == 1 })
	return count(name)
}

// checkNotStored searches every file of the data directory for value, its
// base64 and hex, and its SHA-256 (raw, hex, base64): the idempotency
// records keep no value, nor a plain hash of one.
func checkNotStored(t *testing.T, sys *harness.System, value string) {
	t.Helper()
	sum := sha256.Sum256([]byte(value))
	needles := map[string][]byte{
		"value":         []byte(value),
		"base64":        []byte(base64.StdEncoding.EncodeToString([]byte(value))),
		"hex":           []byte(hex.EncodeToString([]byte(value))),
		"sha256":        sum[:],
		"sha256 hex":    []byte(hex.EncodeToString(sum[:])),
		"sha256 base64": []byte(base64.StdEncoding.EncodeToString(sum[:])),
	}
	scanned := 0
	err := filepath.WalkDir(sys.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if filepath.Base(path) == "secretstore.db" {
			scanned++
		}
		for what, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s holds the value (%s)", path, what)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned == 0 {
		t.Errorf("no secretstore.db under %s: is this the data directory?", sys.DataDir)
	}
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// lossyProxy stands between the CLI and the gateway (its own TLS, a
// certificate of its own) and forwards unary calls as bytes; the first
// drop answers of method it gets from the gateway — after the write has
// committed — it throws away, answering Unavailable instead, as a broken
// connection would.
type lossyProxy struct {
	addr, caFile string
	method       string

	mu       sync.Mutex
	drop     int
	seenKeys []string
}

func startLossyProxy(t *testing.T, sys *harness.System, method string, drop int) *lossyProxy {
	t.Helper()
	pool, err := sys.CAPool()
	if err != nil {
		t.Fatal(err)
	}
	upstream, err := grpc.NewClient("passthrough:///"+sys.Addr,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { upstream.Close() })
	cert, certPEM := selfSignedLoopback(t)
	p := &lossyProxy{method: method, drop: drop, caFile: filepath.Join(t.TempDir(), "proxy-ca.pem")}
	if err := os.WriteFile(p.caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})),
		grpc.ForceServerCodecV2(rawCodec{}),
		grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error { return p.forward(upstream, ss) }),
	)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = lis.Addr().String()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return p
}

func (p *lossyProxy) forward(upstream *grpc.ClientConn, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	var req rawFrame
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	in, _ := metadata.FromIncomingContext(ss.Context())
	out := metadata.MD{}
	for k, v := range in {
		switch {
		case strings.HasPrefix(k, ":"), k == "content-type", k == "user-agent", k == "te", strings.HasPrefix(k, "grpc-"):
			continue
		}
		out[k] = v
	}
	if method == p.method {
		p.mu.Lock()
		p.seenKeys = append(p.seenKeys, strings.Join(in.Get("idempotency-key"), ","))
		p.mu.Unlock()
	}
	var resp rawFrame
	var header metadata.MD
	err := upstream.Invoke(metadata.NewOutgoingContext(ss.Context(), out), method, &req, &resp,
		grpc.ForceCodecV2(rawCodec{}), grpc.Header(&header))
	if method == p.method {
		p.mu.Lock()
		lose := p.drop > 0
		p.drop--
		p.mu.Unlock()
		if lose {
			return status.Error(codes.Unavailable, "test proxy: the answer was lost on its way back")
		}
	}
	if err != nil {
		return err
	}
	_ = ss.SendHeader(header)
	return ss.SendMsg(&resp)
}

func (p *lossyProxy) keys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seenKeys...)
}

// rawFrame is a message as its encoded bytes: the proxy decodes nothing.
type rawFrame struct{ b []byte }

type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.(*rawFrame).b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	v.(*rawFrame).b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// selfSignedLoopback returns a certificate for 127.0.0.1, and its PEM.
func selfSignedLoopback(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "lossy proxy"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
