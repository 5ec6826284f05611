package e2e_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ozsecrets/oz/e2e/harness"
)

// The agent is the adversary (DESIGN §5.6). These tests play the agent of
// a run as a prompt-injected model would: it reads everything its uid can
// read, calls everything it can reach, and tries every credential it finds
// to get another member's personal secret or an identity's restricted
// secret. Before start tickets, one step did it: the runner's token, read
// from /proc/$PPID/environ, let `oz exec --user alice --agent deployer`
// resolve any context.

// attackScript is the agent. It collects every oz_/ozt_ credential it can
// read — the environment and command line of every process, its parent's
// memory, the runner's token file (named on the parent's command line) and
// config files — then tries each (and none) on every way in: starting a
// run for alice as deployer, redeeming a forged ticket, reading alice's
// secrets. It prints how many it found and every answer it got; the test
// looks in that output for the planted values. (The forged ticket is
// assembled in the script, so that the script's own command line holds
// no credential-shaped string.)
const attackScript = `
oz=$TOOLS/oz
export OZ_CONFIG=$TOOLS/no-config.json # the agent's own oz: no config of the runner's
FORGED="ozt""_0123456789abcdef_$(printf 'A%.0s' $(seq 43))" # a ticket no one issued
creds=$(
  for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do tr '\0' '\n' < "$f" 2>/dev/null; done
  dd if=/proc/$PPID/mem bs=4096 count=1 2>/dev/null
  for f in $(tr '\0' ' ' < /proc/$PPID/cmdline) "$HOME/.config/oz/config.json" /root/.config/oz/config.json "$OZ_CONFIG"; do
    [ -f "$f" ] && cat "$f" 2>/dev/null
  done
)
found=$(printf '%s\n' "$creds" | grep -o 'ozt\{0,1\}_[A-Za-z0-9_-]\{20,\}' | sort -u)
cat /proc/$PPID/environ >/dev/null 2>&1 && echo PARENT-ENVIRON-READ
cat /proc/$PPID/maps >/dev/null 2>&1 && echo PARENT-MAPS-READ
echo "FOUND $(printf '%s' "$found" | grep -c .)"
for tok in "" $found; do
  export OZ_TOKEN=$tok
  $oz run start --trigger cli --user alice --agent deployer 2>&1
  $oz run start --trigger slack --user alice 2>&1
  $oz run start --trigger schedule --agent deployer 2>&1
  $oz secret list --personal 2>&1
  OZ_TICKET=$FORGED $oz exec --ticket-env OZ_TICKET -- sh -c 'printf "%s|%s" "$GITHUB_TOKEN" "$RESTRICTED_KEY" | od -An -tx1' 2>&1
done
echo ATTACK-DONE
`

// attackTools is a folder the agent's uid may enter, with a copy of oz and
// of the gateway's CA certificate (public: the agent could bring both).
func attackTools(t *testing.T, sys *harness.System) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "oz-agent-tools-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ from, to string }{
		{filepath.Join(sys.BinDir, "oz"), "oz"},
		{sys.CAFile, "ca.pem"},
	} {
		b, err := os.ReadFile(f.from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.to), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// leaked returns the planted values found in out, raw or encoded.
func leaked(out string, values ...string) []string {
	var found []string
	lower := strings.ToLower(out)
	for _, v := range values {
		for _, form := range []string{v, hex.EncodeToString([]byte(v)), base64.StdEncoding.EncodeToString([]byte(v))} {
			if strings.Contains(lower, strings.ToLower(form)) {
				found = append(found, v)
			}
		}
		// od -tx1 prints hex bytes separated by spaces.
		if strings.Contains(strings.ReplaceAll(lower, " ", ""), hex.EncodeToString([]byte(v))) {
			found = append(found, v)
		}
	}
	return found
}

// TestAgentCannotRobTheRunner runs the attack in the recommended
// deployment: the runner as root with its token in a file only root can
// read, the agent as another uid (--as-user). The agent started by bob's
// run finds no credential and gets nothing of alice's or deployer's.
func TestAgentCannotRobTheRunner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the recommended deployment runs the runner as root and the agent as another uid (--as-user); this test runs as uid " + strconv.Itoa(os.Geteuid()))
	}
	sys := startSystem(t)
	rt := newRunTeam(t, sys)
	tools := attackTools(t, sys)
	tokenFile := filepath.Join(t.TempDir(), "runner-token")
	if err := os.WriteFile(tokenFile, []byte(rt.runnerA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ticket := startRun(t, sys, rt.bob, "--no-secrets")
	res, err := sys.OZ("", nil, []string{"OZ_TICKET=" + ticket, "TOOLS=" + tools, "OZ_CA_FILE=" + filepath.Join(tools, "ca.pem")},
		"--token-file", tokenFile, "exec", "--ticket-env", "OZ_TICKET", "--as-user", "65534", "--", "sh", "-c", attackScript)
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != 0 || !strings.Contains(res.Stdout, "ATTACK-DONE") {
		t.Fatalf("the agent did not run to its end: exit %d\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	if !strings.Contains(res.Stdout, "FOUND 0\n") || strings.Contains(res.Stdout, "PARENT-") {
		t.Errorf("the agent found credentials, or read its parent:\n%s", res.Stdout)
	}
	if l := leaked(res.Stdout+res.Stderr, canaryPersonalG, canaryRestrict, rt.runnerA, ticket); len(l) > 0 {
		t.Errorf("the agent obtained %d planted values or credentials", len(l))
	}
	checkNoStolenRuns(t, sys, rt)
}

// TestAgentOfTheSameUser runs the attack with the runner and the agent as
// one (non-root) user, without --as-user. oz is non-dumpable, so the
// agent reads neither its environment nor its memory; but the runner's
// token file is its user's, so the agent finds the token (that is why
// --as-user is the recommended deployment) — and still gets nothing with
// it, since a runner's token starts no run and redeems no spent ticket.
func TestAgentOfTheSameUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the test switches the runner to uid 65534, which needs root; this test runs as uid " + strconv.Itoa(os.Geteuid()))
	}
	sys := startSystem(t)
	rt := newRunTeam(t, sys)
	tools := attackTools(t, sys)
	tokenFile := filepath.Join(tools, "runner-token")
	if err := os.WriteFile(tokenFile, []byte(rt.runnerA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tokenFile, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	ticket := startRun(t, sys, rt.bob, "--no-secrets")
	cmd := exec.Command(filepath.Join(tools, "oz"), "--token-file", tokenFile, "exec", "--ticket-env", "OZ_TICKET", "--", "sh", "-c", attackScript)
	cmd.Dir = tools
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + tools, "OZ_ADDR=" + sys.Addr, "OZ_CA_FILE=" + filepath.Join(tools, "ca.pem"),
		"OZ_CONFIG=" + filepath.Join(tools, "no-config.json"), "OZ_TICKET=" + ticket, "TOOLS=" + tools}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || !strings.Contains(stdout.String(), "ATTACK-DONE") {
		t.Fatalf("the agent did not run to its end: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	out := stdout.String() + stderr.String()
	if strings.Contains(out, "PARENT-") {
		t.Errorf("the agent read its parent (oz is not non-dumpable?):\n%s", out)
	}
	if !strings.Contains(out, "do not start runs") {
		t.Errorf("the agent did not try the runner's token (the test proves less than it says):\n%s", out)
	}
	if l := leaked(out, canaryPersonalG, canaryRestrict); len(l) > 0 {
		t.Errorf("the agent obtained %d planted values", len(l))
	}
	checkNoStolenRuns(t, sys, rt)
}

// TestStolenRunnerTokenYieldsNothing: even holding the runner's token
// (stolen some other way), the agent cannot choose a run's context: it
// can neither start a run nor redeem one without a ticket, and the ticket
// of a run already redeemed is spent.
func TestStolenRunnerTokenYieldsNothing(t *testing.T) {
	sys := startSystem(t)
	rt := newRunTeam(t, sys)
	_, forged := forgedTicket()

	// bob's run, redeemed by the runner: its ticket is spent.
	ticket := startRun(t, sys, rt.bob, "--no-secrets")
	if r := redeem(t, sys, rt.runnerA, ticket, nil, "true"); r.Code != 0 {
		t.Fatalf("bob's run: exit %d: %s", r.Code, r.Stderr)
	}
	var outs []string
	for _, tk := range []string{ticket, forged} {
		// The agent holds the runner's token (what /proc/$PPID/environ
		// gave before oz was non-dumpable) and a spent or forged ticket.
		for _, args := range [][]string{
			{"run", "start", "--trigger", "cli", "--user", "alice", "--agent", "deployer"},
			{"run", "start", "--trigger", "slack", "--user", "alice"},
			{"run", "start", "--trigger", "schedule", "--agent", "deployer"},
			{"exec", "--ticket-env", "T", "--trigger", "cli", "--user", "alice", "--agent", "deployer", "--", "sh", "-c", `printf "%s|%s" "$GITHUB_TOKEN" "$RESTRICTED_KEY" | od -An -tx1`},
			{"exec", "--ticket-env", "T", "--", "sh", "-c", `printf "%s|%s" "$GITHUB_TOKEN" "$RESTRICTED_KEY" | od -An -tx1`},
		} {
			r, err := sys.OZ(rt.runnerA, nil, []string{"T=" + tk}, args...)
			if err != nil {
				t.Fatal(err)
			}
			if r.Code != 4 {
				t.Errorf("oz %v with the runner's token: exit %d, want 4 (denied)\nstdout: %s\nstderr: %s", args, r.Code, r.Stdout, r.Stderr)
			}
			outs = append(outs, r.Stdout, r.Stderr)
		}
	}
	// REST, as the runner.
	for _, body := range []string{
		`{"context":{"trigger":"TRIGGER_CLI","user":"alice","agent":"deployer"}}`,
		`{"context":{"trigger":"TRIGGER_SCHEDULE","agent":"deployer"}}`,
	} {
		outs = append(outs, restJSON(t, sys, rt.runnerA, "POST", "/v1/teams/acme/runs:start", body, http.StatusForbidden))
	}
	if l := leaked(strings.Join(outs, "\n"), canaryPersonalG, canaryRestrict); len(l) > 0 {
		t.Errorf("the stolen runner token yielded %d planted values", len(l))
	}
	checkNoStolenRuns(t, sys, rt)

	// Every refused redemption is in acme's audit chain, naming the run.
	events := ozOK(t, sys, rt.alice, "", "audit", "list", "--action", "request.denied", "--output", "json")
	if !strings.Contains(events.Stdout, "ResolveRun") || !strings.Contains(events.Stdout, "redeemed already") {
		t.Errorf("acme's audit log does not hold the refused redemption of the spent ticket:\n%s", events.Stdout)
	}
}

// checkNoStolenRuns: no run of alice's nor as deployer was resolved but
// those the test itself made legitimately (none here).
func checkNoStolenRuns(t *testing.T, sys *harness.System, rt runTeam) {
	t.Helper()
	list := ozOK(t, sys, rt.alice, "", "run", "list", "--output", "json")
	if strings.Contains(list.Stdout, `"users/alice"`) || strings.Contains(list.Stdout, `"deployer"`) {
		t.Errorf("a run for alice or as deployer exists:\n%s", list.Stdout)
	}
}

// forgedTicket is a ticket of the right shape that no one issued.
func forgedTicket() (id, ticket string) {
	id = "0123456789abcdef"
	return id, "ozt_" + id + "_" + strings.Repeat("A", 43)
}
