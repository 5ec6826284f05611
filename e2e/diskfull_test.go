package e2e_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/e2e/harness"
	"github.com/ozsecrets/oz/lib/tmpfstest"
)

// exitExhausted is oz's exit code for a ResourceExhausted answer.
const exitExhausted = 9

// TestDiskFull runs the whole system as `make run` does, with its data
// directory on a small disk of its own (a real tmpfs), and fills that disk.
// A secret write is refused with ResourceExhausted "the secret store's
// disk is full" — by the CLI (its message, exit code 9) and over REST (429
// with the message) — never "internal error", and the resolver's in its
// own words; reads go on (list, get, whoami); the secretstore logs where
// the disk is full, and its log lines,
// which can no longer go to <data-dir>/logs, reach ozdev's output instead.
// Once the space is back, writes succeed again with nothing restarted, the
// logs go back to their files, nothing acknowledged is lost, and the audit
// log holds every acknowledged write and verifies.
func TestDiskFull(t *testing.T) {
	disk := tmpfstest.Mount(t, 16<<20)
	sys, err := harness.Start(binDir, filepath.Join(disk, "data"))
	if err != nil {
		t.Fatalf("start system: %v", err)
	}
	t.Cleanup(func() {
		if err := sys.Stop(); err != nil {
			t.Errorf("stop system: %v", err)
		}
	})
	tm := newTeam(t, sys)
	const canary = "canary-diskfull-7d3a91"
	create := func(name string) harness.CLIResult {
		return oz(t, sys, tm.alice, canary+"-"+name+"\n", "secret", "create", "--team", name)
	}
	acked := []string{"BEFORE_FULL"}
	ozOK(t, sys, tm.alice, canary+"\n", "secret", "create", "--team", "BEFORE_FULL")

	filler := tmpfstest.Fill(t, disk)
	// The first writes may still fit in pages the store's file holds
	// free; one is refused soon.
	var refused harness.CLIResult
	for i := 0; ; i++ {
		if i == 500 {
			t.Fatalf("500 secrets created on a full disk, none refused")
		}
		name := fmt.Sprintf("KEY_%03d", i)
		res := create(name)
		if res.Code == 0 {
			acked = append(acked, name)
			continue
		}
		refused = res
		break
	}
	t.Logf("%d secrets acknowledged, then the secret store's disk was full", len(acked))
	if want := "oz: the secret store's disk is full"; refused.Code != exitExhausted || strings.TrimSpace(refused.Stderr) != want {
		t.Errorf("secret create on a full disk: exit %d, stderr %q; want exit %d, %q", refused.Code, refused.Stderr, exitExhausted, want)
	}

	// The resolver's writes are refused in its own words.
	var teams []string
	for i := 0; ; i++ {
		if i == 500 {
			t.Fatalf("500 teams created on a full disk, none refused")
		}
		name := fmt.Sprintf("team-%03d", i)
		res := oz(t, sys, sys.AdminToken, "", "admin", "team", "create", name)
		if res.Code == 0 {
			teams = append(teams, name)
			continue
		}
		t.Logf("%d teams acknowledged, then the resolver's disk was full", len(teams))
		if want := "oz: the resolver's disk is full"; res.Code != exitExhausted || strings.TrimSpace(res.Stderr) != want {
			t.Errorf("team create on a full disk: exit %d, stderr %q; want exit %d, %q", res.Code, res.Stderr, exitExhausted, want)
		}
		break
	}

	// REST: 429 with the same message.
	code, st, text := rest(t, tm, tm.alice, http.MethodPost, "/v1/teams/acme/secrets",
		map[string]any{"secretId": "REST_KEY", "value": base64.StdEncoding.EncodeToString([]byte(canary))})
	if code != http.StatusTooManyRequests || st["code"] != float64(8) || st["message"] != "the secret store's disk is full" {
		t.Errorf("POST a secret on a full disk: %d %s; want 429 with code 8 (ResourceExhausted) and the message", code, text)
	}

	// Reads go on.
	checkListed(t, tm, acked)
	if code, _, text := rest(t, tm, tm.alice, http.MethodGet, "/v1/teams/acme/secrets/BEFORE_FULL", nil); code != http.StatusOK {
		t.Errorf("GET a secret's metadata on a full disk: %d %s, want 200", code, text)
	}
	ozOK(t, sys, tm.bob, "", "whoami")

	// The operator learns where the disk is full, and the service's log
	// lines reach ozdev's output once its log file cannot take them.
	logPath := filepath.Join(sys.DataDir, "logs", "secretstore.log")
	eventually(t, 60*time.Second, "ozdev says the secretstore's log goes to the terminal", func() bool {
		oz(t, sys, tm.bob, "", "secret", "list")
		return strings.Contains(sys.Output(), "logs/secretstore.log: disk full; writing to the terminal")
	})
	if !strings.Contains(sys.Output(), `secretstore: {"time"`) {
		t.Errorf("ozdev's output holds none of the secretstore's log lines:\n%s", tail(sys.Output()))
	}
	logged, _ := os.ReadFile(logPath)
	all := string(logged) + sys.Output()
	if !strings.Contains(all, `"msg":"store: disk full`) || !strings.Contains(all, filepath.Join(sys.DataDir, "secretstore.db")) {
		t.Errorf("no log line says the secretstore's disk is full, naming its file:\n%s", tail(sys.Output()))
	}

	// Space is back: writes succeed again, with no restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if res := create("AFTER_FULL"); res.Code != 0 {
		t.Fatalf("secret create once space is back: exit %d, %s", res.Code, res.Stderr)
	}
	acked = append(acked, "AFTER_FULL")
	checkListed(t, tm, acked)
	ozOK(t, sys, sys.AdminToken, "", "admin", "team", "create", "after-full")
	for _, name := range append(teams, "after-full") { // each exists: created again, it conflicts
		if res := oz(t, sys, sys.AdminToken, "", "admin", "team", "create", name); res.Code != 6 {
			t.Errorf("team %s (acknowledged): created again: exit %d, %s; want 6 (it exists)", name, res.Code, res.Stderr)
		}
	}
	eventually(t, 60*time.Second, "ozdev says the secretstore's log goes to its file again", func() bool {
		oz(t, sys, tm.bob, "", "secret", "list")
		return strings.Contains(sys.Output(), "logs/secretstore.log: writing to the file again")
	})
	if strings.Contains(sys.Output(), "service exited") {
		t.Errorf("a service exited meanwhile:\n%s", tail(sys.Output()))
	}

	// Every acknowledged write reached the audit log, which verifies.
	eventually(t, 90*time.Second, "every acknowledged secret.create is in the audit log", func() bool {
		res := oz(t, sys, tm.alice, "", "audit", "list", "--action", "secret.create", "--limit", "0", "--output", "json")
		for _, name := range acked {
			if !strings.Contains(res.Stdout, `teams/acme/secrets/`+name+`"`) {
				return false
			}
		}
		return true
	})
	ozOK(t, sys, tm.alice, "", "audit", "verify")

	// No value anywhere it should not be.
	logs, _ := filepath.Glob(filepath.Join(sys.DataDir, "logs", "*.log"))
	for _, f := range logs {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(canary)) {
			t.Errorf("%s holds a secret value", f)
		}
	}
	if strings.Contains(sys.Output()+refused.Stderr+text, canary) {
		t.Errorf("a secret value was printed")
	}
}

// checkListed fails the test unless `oz secret list` shows every team
// secret of names.
func checkListed(t *testing.T, tm team, names []string) {
	t.Helper()
	listed := listSecrets(t, tm, tm.bob)
	for _, name := range names {
		if _, ok := listed["team/"+name]; !ok {
			t.Errorf("secret list: %s (acknowledged) is missing", name)
		}
	}
}

// tail is the end of a long output, for a failure message.
func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}
