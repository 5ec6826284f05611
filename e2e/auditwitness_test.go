package e2e_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/e2e/harness"
)

// The audit chain's head and length are kept outside the audit store too
// (issue 15): each emitting service keeps, beside its outbox, the last
// event of each chain the audit service acknowledged to it. A log that
// went backwards — audit.db restored from an older copy — verifies link
// by link, but no longer holds those events: `oz audit verify` fails,
// naming the service that saw more and the counts.

// witnessVerify is `oz audit verify --output json`.
type witnessVerify struct {
	Valid          bool  `json:"valid"`
	VerifiedEvents int64 `json:"verified_events"`
	Head           struct {
		Seq int64 `json:"seq"`
	} `json:"head"`
	FirstBreak *struct {
		Seq    int64  `json:"seq"`
		Reason string `json:"reason"`
	} `json:"first_break"`
	Witnesses []struct {
		Emitter string `json:"emitter"`
		Seq     int64  `json:"seq"`
		State   string `json:"state"`
		Reason  string `json:"reason"`
	} `json:"witnesses"`
}

// auditVerify runs `oz audit verify` with args as token, again while the
// gateway has not reached a restarted audit service yet (exit 5).
func auditVerify(t *testing.T, sys *harness.System, token string, args ...string) harness.CLIResult {
	t.Helper()
	var res harness.CLIResult
	eventually(t, 60*time.Second, "the audit service answers through the gateway", func() bool {
		res = oz(t, sys, token, "", append([]string{"audit", "verify"}, args...)...)
		return res.Code != 5
	})
	return res
}

// verifyReport runs `oz audit verify --output json` with args (the
// chain) as token, and returns its report and exit code.
func verifyReport(t *testing.T, sys *harness.System, token string, args ...string) (witnessVerify, int) {
	t.Helper()
	res := auditVerify(t, sys, token, append([]string{"--output", "json"}, args...)...)
	var rep witnessVerify
	if err := json.Unmarshal([]byte(res.Stdout), &rep); err != nil {
		t.Fatalf("oz audit verify %v: exit %d, %v; stdout %q, stderr %q", args, res.Code, err, res.Stdout, res.Stderr)
	}
	return rep, res.Code
}

// witnessState returns the state of emitter's witness in rep ("" when it
// has none).
func witnessState(rep witnessVerify, emitter string) string {
	for _, w := range rep.Witnesses {
		if w.Emitter == emitter {
			return w.State
		}
	}
	return ""
}

var backlogLine = regexp.MustCompile(`(?m)^oz_audit_outbox_backlog\{[^}]*\} (\S+)$`)

// deliveredAndSettled waits until both emitters' outboxes are empty and
// the chains (verify's flags, by name, with tokens[name]) stop growing,
// and returns their heads.
func deliveredAndSettled(t *testing.T, svc *harness.Services, chains map[string][]string, tokens map[string]string) map[string]int64 {
	t.Helper()
	heads := map[string]int64{}
	eventually(t, 60*time.Second, "the audit events delivered and the chains settled", func() bool {
		for _, name := range []string{"secretstore", "resolver"} {
			m := backlogLine.FindStringSubmatch(scrape(t, svc.Metrics[name]))
			if m == nil || m[1] != "0" {
				return false
			}
		}
		same := true
		for name, args := range chains {
			rep, code := verifyReport(t, svc.System, tokens[name], args...)
			if code != 0 {
				t.Fatalf("oz audit verify %v: exit %d before anything went backwards: %+v", args, code, rep)
			}
			if rep.Head.Seq != heads[name] {
				same = false
			}
			heads[name] = rep.Head.Seq
		}
		return same
	})
	return heads
}

func TestAuditWitnessLogWentBackwards(t *testing.T) {
	svc := startServices(t)
	sys := svc.System
	tm := newTeam(t, sys)
	admin := sys.AdminToken
	chains := map[string][]string{"acme": {"--team", "acme"}, "system": {"--system"}}
	tokens := map[string]string{"acme": tm.alice, "system": admin}
	planted := []string{}
	create := func(name string) {
		t.Helper()
		v := canaryPrefix + "witness-" + strings.ToLower(name)
		planted = append(planted, v)
		ozOK(t, sys, tm.alice, v, "secret", "create", "--team", name)
	}
	for _, name := range []string{"ONE", "TWO", "THREE"} {
		create(name)
	}
	old := deliveredAndSettled(t, svc, chains, tokens)

	// An older copy of the log, taken while the audit service is stopped:
	// a nightly backup.
	audit := svc.Proc("audit")
	db := filepath.Join(svc.DataDir, "audit.db")
	if err := audit.Stop(); err != nil {
		t.Fatal(err)
	}
	backup, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Start(); err != nil {
		t.Fatal(err)
	}

	// Then more happens: secrets (the secretstore's events, acme's chain)
	// and a user (the resolver's, the system chain).
	for _, name := range []string{"FOUR", "FIVE", "SIX", "SEVEN"} {
		create(name)
	}
	ozOK(t, sys, admin, "", "admin", "user", "create", "dave", "--team", "beta", "--role", "member")
	now := deliveredAndSettled(t, svc, chains, tokens)
	if now["acme"] <= old["acme"] || now["system"] <= old["system"] {
		t.Fatalf("the chains did not grow: acme %d → %d, system %d → %d", old["acme"], now["acme"], old["system"], now["system"])
	}

	// A log that did not go backwards verifies, every witness held; a
	// chain an emitter never delivered to has nothing to compare.
	rep, code := verifyReport(t, sys, tm.alice, "--team", "acme")
	if code != 0 || !rep.Valid || witnessState(rep, "secretstore") != "held" {
		t.Errorf("verify of a log that did not go backwards: exit %d, %+v; want valid, the secretstore's witness held", code, rep)
	}
	rep, code = verifyReport(t, sys, tm.carol, "--team", "beta")
	if code != 0 || !rep.Valid || witnessState(rep, "secretstore") != "none" || witnessState(rep, "resolver") != "held" {
		t.Errorf("verify of beta (no secret events): exit %d, %+v; want valid, secretstore none, resolver held", code, rep)
	}

	// The log restored from the older copy: it verifies link by link, but
	// the emitters saw more.
	if err := audit.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := audit.Start(); err != nil {
		t.Fatalf("the audit service refused the restored copy: %v", err)
	}
	for _, c := range []struct {
		chain, token, emitter string
		args                  []string
	}{
		{"acme", tm.alice, "secretstore", []string{"--team", "acme"}},
		{"system", admin, "resolver", []string{"--system"}},
	} {
		res := auditVerify(t, sys, c.token, c.args...)
		want := fmt.Sprintf("the log went backwards: the %s saw %s events", c.emitter, strconv.FormatInt(now[c.chain], 10))
		holds := fmt.Sprintf("the log holds %d", old[c.chain])
		if res.Code != 8 || !strings.Contains(res.Stderr, want) || !strings.Contains(res.Stderr, holds) ||
			!strings.Contains(res.Stdout, "WENT BACKWARDS") {
			t.Errorf("verify %s after the restore: exit %d, stdout %q, stderr %q; want exit 8 saying %q and %q",
				c.chain, res.Code, res.Stdout, res.Stderr, want, holds)
		}
	}

	// New events are not lost: they are appended to the rolled-back chain,
	// the delivery is logged and counted, and verification goes on failing.
	create("AFTER")
	eventually(t, 60*time.Second, "the event of a secret created after the restore in acme's log", func() bool {
		res := ozOK(t, sys, tm.alice, "", "audit", "list", "--team", "acme", "--resource", "teams/acme/secrets/AFTER")
		return strings.Contains(res.Stdout, "secret.create")
	})
	rep, code = verifyReport(t, sys, tm.alice, "--team", "acme")
	if code != 8 || rep.Valid || witnessState(rep, "secretstore") != "log_shorter" || rep.FirstBreak == nil ||
		!strings.Contains(rep.FirstBreak.Reason, "the secretstore saw") {
		t.Errorf("verify after a delivery onto the restored log: exit %d, %+v; want exit 8, the secretstore's witness log_shorter", code, rep)
	}
	eventually(t, 30*time.Second, "oz_audit_witness_failures_total of the secretstore counted", func() bool {
		return regexp.MustCompile(`(?m)^oz_audit_witness_failures_total\{emitter="secretstore"\} [1-9]`).MatchString(scrape(t, svc.Metrics["audit"]))
	})
	alog, err := os.ReadFile(audit.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(alog), "the audit log went backwards") {
		t.Errorf("the audit service did not log the delivery onto a log that went backwards")
	}

	// No value anywhere in the logs.
	logs, _ := filepath.Glob(filepath.Join(svc.DataDir, "logs", "*.log"))
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range planted {
			if strings.Contains(string(b), v) {
				t.Errorf("%s holds a secret value", path)
			}
		}
	}
}
