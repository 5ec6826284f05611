package browser_test

import (
	"bytes"
	"context"
	"crypto/hpke"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ozsecrets/oz/e2e/harness"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
)

// rest calls the system's gateway (not the recording one) as token and
// decodes the JSON answer into out (when not nil), failing the test on an
// error status.
func (e *env) rest(t *testing.T, token, method, path string, body, out any) {
	t.Helper()
	client, err := e.sys.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "https://"+e.sys.Addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
}

// restSecret creates a team secret over REST (the value in plaintext: the
// browser's sealing is tested elsewhere).
func (e *env) restSecret(t *testing.T, token, team, name, value string) {
	t.Helper()
	e.rest(t, token, "POST", "/v1/teams/"+team+"/secrets", map[string]any{"secretId": name, "value": []byte(value)}, nil)
}

// runner plays a runner redeeming start tickets over gRPC, as `oz exec
// --ticket-env` does: ResolveRun with the ticket and an HPKE key made for
// the run, then EndRun when "the command" ends.
type runner struct {
	runs scopev1.RunServiceClient
	ctx  context.Context // carries the runner token
}

// newRunner makes a runner of tm's team, named after it, and connects to
// the gateway with its token.
func (e *env) newRunner(t *testing.T, tm team, name string) *runner {
	t.Helper()
	tok := strings.TrimSpace(e.ozOK(t, e.sys.AdminToken, "", "admin", "runner", "create", name+tm.suffix, "--team", tm.id))
	conn, err := e.sys.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &runner{runs: scopev1.NewRunServiceClient(conn), ctx: harness.WithToken(context.Background(), tok)}
}

// redeem resolves the run of ticket and returns its record and the values
// it received, opened with the run's key.
func (r *runner) redeem(t *testing.T, ticket string) (*scopev1.Run, map[string]string) {
	t.Helper()
	priv, err := hpke.MLKEM768X25519().GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	resp, err := r.runs.ResolveRun(ctx, &scopev1.ResolveRunRequest{
		Parent:    "teams/-",
		Ticket:    ticket,
		Recipient: &scopev1.RecipientKey{KemId: kemXWing, PublicKey: priv.PublicKey().Bytes()},
	})
	if err != nil {
		t.Fatalf("redeem the ticket: %v", err)
	}
	values := map[string]string{}
	if s := resp.GetSealed(); s != nil {
		plain, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), s.GetInfo(), s.GetCiphertext())
		if err != nil {
			t.Fatalf("open the run's values: %v", err)
		}
		var env scopev1.RunEnvironment
		if err := proto.Unmarshal(plain, &env); err != nil {
			t.Fatalf("the run's values: %v", err)
		}
		for _, v := range env.GetVars() {
			values[v.GetName()] = string(v.GetValue())
		}
	}
	return resp.GetRun(), values
}

// end reports that the command of run ended with exit code after d.
func (r *runner) end(t *testing.T, run string, exit int32, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	if _, err := r.runs.EndRun(ctx, &scopev1.EndRunRequest{Name: run, ExitCode: exit, Duration: durationpb.New(d)}); err != nil {
		t.Fatalf("end %s: %v", run, err)
	}
}

// startAsIntegration creates an integration of tm's team (as its admin)
// and starts a run with its token; it returns the ticket.
func (e *env) startAsIntegration(t *testing.T, tm team, integration, trigger string, start map[string]any) string {
	t.Helper()
	var created struct {
		BearerToken string `json:"bearerToken"`
	}
	e.rest(t, tm.aliceTok, "POST", "/v1/teams/"+tm.id+"/integrations",
		map[string]any{"integrationId": integration, "trigger": trigger}, &created)
	if created.BearerToken == "" {
		t.Fatalf("create integration %s: no bearer token", integration)
	}
	var started struct {
		Ticket string `json:"ticket"`
	}
	e.rest(t, created.BearerToken, "POST", "/v1/teams/"+tm.id+"/runs:start", start, &started)
	if !strings.HasPrefix(started.Ticket, "ozt_") {
		t.Fatalf("start a run as integration %s: ticket %q, want ozt_…", integration, started.Ticket)
	}
	return started.Ticket
}
