package e2e_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMetricsAndLogsHoldNoSecrets drives every service — secrets created
// and rotated, a run resolved and its command started by `oz exec`, a
// refused request — then scrapes each service's /metrics: the main series
// are there, and neither the metrics nor any service's log holds a value
// planted by the test or a bearer token used in it.
func TestMetricsAndLogsHoldNoSecrets(t *testing.T) {
	svc := startServices(t)
	sys := svc.System
	tm := newTeam(t, sys)
	runner := newRunner(t, sys, "runner-obs", "acme")

	planted := []string{canaryPrefix + "obs-api-key-1", canaryPrefix + "obs-api-key-2", canaryPrefix + "obs-personal"}
	ozOK(t, sys, tm.alice, planted[0], "secret", "create", "--team", "OBS_API_KEY")
	ozOK(t, sys, tm.alice, planted[1], "secret", "update", "--team", "--value", "OBS_API_KEY")
	ozOK(t, sys, tm.alice, planted[2], "secret", "create", "--personal", "OBS_PERSONAL")
	res := redeem(t, sys, runner, startRun(t, sys, tm.alice), nil, "sh", "-c", "test -n \"$OBS_API_KEY\"")
	if res.Code != 0 {
		t.Fatalf("oz exec: exit %d: %s", res.Code, res.Stderr)
	}
	if !strings.Contains(res.Stderr, "OBS_API_KEY") {
		t.Fatalf("oz exec stderr %q does not name the injected secret", res.Stderr)
	}
	// Refused: a member cannot create a team secret; a runner cannot list.
	if r := oz(t, sys, tm.bob, canaryPrefix+"obs-refused", "secret", "create", "--team", "OBS_REFUSED"); r.Code != 4 {
		t.Fatalf("member creating a team secret: exit %d, want 4", r.Code)
	}
	planted = append(planted, canaryPrefix+"obs-refused")

	want := map[string][]string{
		"resolver": {
			`grpc_server_handled_total{grpc_code="OK",grpc_method="ResolveRun",grpc_service="oz.scope.v1.RunService",grpc_type="unary"} 1`,
			`grpc_server_handling_seconds_bucket{grpc_method="ResolveRun"`,
			`oz_run_resolutions_total{outcome="resolved"} 1`,
			`oz_store_operation_duration_seconds_count{op="Apply",outcome="ok",service="resolver",store="bolt"}`,
			`oz_audit_outbox_backlog{emitter="resolver"}`,
			`oz_audit_outbox_delivery_lag_seconds_count{emitter="resolver"}`,
		},
		"secretstore": {
			`grpc_server_handled_total{grpc_code="OK",grpc_method="CreateSecret",grpc_service="oz.secrets.v1.SecretService",grpc_type="unary"} 2`,
			`grpc_server_handled_total{grpc_code="PermissionDenied",grpc_method="CreateSecret",grpc_service="oz.secrets.v1.SecretService",grpc_type="unary"} 1`,
			`grpc_server_handled_total{grpc_code="OK",grpc_method="SealRunSecrets"`,
			`oz_audit_outbox_backlog{emitter="secretstore"}`,
			// Its kv.Store's calls, as the resolver's: the creates' writes, the
			// run's reads.
			`oz_store_operation_duration_seconds_count{op="Apply",outcome="ok",service="secretstore",store="bolt"}`,
			`oz_store_operation_duration_seconds_count{op="Scan",outcome="ok",service="secretstore",store="bolt"}`,
		},
		"audit": {
			`grpc_server_handled_total{grpc_code="OK",grpc_method="AppendEvents"`,
			`oz_audit_events_appended_total`,
		},
	}
	var scraped []string
	for name, series := range want {
		body := scrape(t, svc.Metrics[name])
		scraped = append(scraped, body)
		for _, s := range series {
			if !strings.Contains(body, s) {
				t.Errorf("%s /metrics lacks %s", name, s)
			}
		}
	}

	secrets := append(planted, tm.alice, tm.bob, runner, sys.AdminToken)
	check := func(where, text string) {
		t.Helper()
		for _, s := range secrets {
			for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s))} {
				if strings.Contains(text, form) {
					t.Errorf("%s holds a planted value or token (%.12s…)", where, form)
				}
			}
		}
		// A token's secret part alone (after oz_<id>_) must not be there
		// either. The id is 16 characters; the secret part, base64url, may
		// hold "_" itself, so it is not what follows the last one.
		for _, tok := range []string{tm.alice, tm.bob, runner} {
			if len(tok) > len("oz_")+16+1 && strings.Contains(text, tok[len("oz_")+16+1:]) {
				t.Errorf("%s holds the secret part of a token", where)
			}
		}
	}
	for i, body := range scraped {
		check("a /metrics scrape #"+string(rune('1'+i)), body)
	}
	logs, err := filepath.Glob(filepath.Join(sys.DataDir, "logs", "*.log"))
	if err != nil || len(logs) < 4 {
		t.Fatalf("service logs: %v (%v), want one per service", logs, err)
	}
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Errorf("%s is empty: nothing was checked", f)
		}
		check(filepath.Base(f), string(b))
	}
	check("the CLI's stderr", res.Stderr+res.Stdout)

	// The resolution's log line names its run, as the CLI printed it.
	m := regexp.MustCompile(`run (run-[0-9a-f]+-[0-9a-z]+)`).FindStringSubmatch(res.Stderr)
	if m == nil {
		t.Fatalf("oz exec stderr %q names no run id", res.Stderr)
	}
	rlog, err := os.ReadFile(filepath.Join(sys.DataDir, "logs", "resolver.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rlog), "run_id="+m[1]) && !strings.Contains(string(rlog), `"run_id":"`+m[1]+`"`) {
		t.Errorf("the resolver's log does not name run %s", m[1])
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape %s: %s, %v", url, resp.Status, err)
	}
	return string(b)
}
