package e2e_test

// Every call has a deadline (issue 15, DESIGN §7): with one service frozen
// (SIGSTOP, as a hung process or a paused VM would be), the CLI and REST
// callers get a prompt Unavailable naming the service that did not answer,
// not a 30 s wait for "context deadline exceeded", and the gateway keeps
// accepting connections.

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ozsecrets/oz/e2e/harness"
)

// deadlineBound is how long a call may take before the test calls it hung.
// The services answer within a few seconds (their call timeouts); the bound
// is loose on purpose, for a loaded 2-core machine, and still well under
// the 30 s the CLI waited before.
const deadlineBound = 20 * time.Second

// freeze stops the service's process (SIGSTOP) until the test ends.
func freeze(t *testing.T, p *harness.Proc) {
	t.Helper()
	pid := p.Pid()
	if pid == 0 {
		t.Fatalf("%s is not running", p.Name)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("freeze %s: %v", p.Name, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
}

// answer is what a caller got: its message, and whether it failed.
type answer struct {
	msg    string
	failed bool
}

// TestDeadlinesFrozenService freezes each backend in turn and checks that
// the CLI and REST answer promptly; what fails names the frozen service
// and does not blame the gateway, which is up. What does not need the
// frozen service (whoami without the secret store) may succeed.
func TestDeadlinesFrozenService(t *testing.T) {
	for _, c := range []struct {
		service  string
		title    string          // as the messages name it
		mustFail map[string]bool // the checks that cannot succeed without it
	}{
		{"resolver", "the resolver", map[string]bool{"oz whoami": true, "oz secret create": true, "oz secret list": true}},
		{"secretstore", "the secret store", map[string]bool{"oz secret create": true, "oz secret list": true, "REST secrets": true}},
		{"audit", "the audit service", map[string]bool{"REST events": true}},
	} {
		t.Run(c.service, func(t *testing.T) {
			svc := startServices(t)
			sys := svc.System
			tm := newTeam(t, sys)
			ozOK(t, sys, tm.alice, "before-the-freeze", "secret", "create", "--team", "BEFORE")
			client := edgeClient(t, sys)

			freeze(t, svc.Proc(c.service))

			check := func(what string, run func() answer) {
				t.Helper()
				done := make(chan answer, 1)
				go func() { done <- run() }()
				var got answer
				select {
				case got = <-done:
				case <-time.After(deadlineBound):
					t.Errorf("%s with %s frozen: no answer within %s", what, c.service, deadlineBound)
					<-done
					return
				}
				switch {
				case !got.failed && c.mustFail[what]:
					t.Errorf("%s with %s frozen: succeeded (%q), want a failure", what, c.service, got.msg)
				case got.failed && !strings.Contains(got.msg, c.title+" did not answer within") &&
					!strings.Contains(got.msg, c.title+" is unavailable"):
					// "is unavailable" when the connection to it was not made
					// before the freeze: its TLS handshake times out.
					t.Errorf("%s with %s frozen: got %q, want a message saying %s did not answer", what, c.service, got.msg, c.title)
				case strings.Contains(got.msg, "cannot reach the gateway"):
					t.Errorf("%s with %s frozen: got %q, blaming the gateway, which is up", what, c.service, got.msg)
				}
			}
			cli := func(stdin string, args ...string) func() answer {
				return func() answer {
					res := oz(t, sys, tm.alice, stdin, args...)
					if res.Code == 0 {
						return answer{msg: res.Stdout}
					}
					if res.Code != 5 { // exitcode.Unavailable
						t.Errorf("oz %v: exit %d, want 5 (unavailable)", args, res.Code)
					}
					if !strings.HasPrefix(res.Stderr, "oz: the gateway answered: ") {
						t.Errorf("oz %v: got %q, want it to say the gateway answered", args, res.Stderr)
					}
					return answer{msg: res.Stderr, failed: true}
				}
			}
			rest := func(path string) func() answer {
				return func() answer {
					req, _ := http.NewRequest(http.MethodGet, "https://"+sys.Addr+path, nil)
					req.Header.Set("Authorization", "Bearer "+tm.alice)
					resp, err := client.Do(req)
					if err != nil {
						return answer{msg: "transport error: " + err.Error(), failed: true}
					}
					defer resp.Body.Close()
					body, _ := io.ReadAll(resp.Body)
					if resp.StatusCode/100 == 2 {
						return answer{msg: string(body)}
					}
					if resp.StatusCode != http.StatusServiceUnavailable {
						t.Errorf("GET %s: %s, want 503", path, resp.Status)
					}
					return answer{msg: string(body), failed: true}
				}
			}
			check("oz whoami", cli("", "whoami"))
			check("oz secret create", cli("a-value", "secret", "create", "--team", "AFTER"))
			check("oz secret list", cli("", "secret", "list", "--team"))
			check("REST secrets", rest("/v1/teams/acme/secrets"))
			check("REST events", rest("/v1/teams/acme/events"))
		})
	}
}

// TestDeadlinesSeriesAgainstFrozenResolver: creates one after another
// against a frozen resolver each fail promptly (they took 30 s each), and
// the gateway keeps accepting connections (TLS handshakes) all along.
func TestDeadlinesSeriesAgainstFrozenResolver(t *testing.T) {
	svc := startServices(t)
	sys := svc.System
	tm := newTeam(t, sys)
	freeze(t, svc.Proc("resolver"))

	const n = 6
	start := time.Now()
	for i := range n {
		res := oz(t, sys, tm.alice, "a-value", "secret", "create", "--team", fmt.Sprintf("SERIES_%d", i))
		if res.Code != 5 || !strings.Contains(res.Stderr, "the resolver did not answer within") {
			t.Fatalf("create %d with the resolver frozen: exit %d, %q; want 5 and a message naming the resolver", i, res.Code, res.Stderr)
		}
	}
	// Loose on purpose (no timed assertion): n creates used to take n×30 s.
	if took := time.Since(start); took > n*deadlineBound {
		t.Errorf("%d creates took %s, more than %s each", n, took, deadlineBound)
	}
}

// TestDeadlinesFrozenGateway: with the gateway itself frozen, the CLI gives
// up within its own bound and names the gateway and OZ_ADDR.
func TestDeadlinesFrozenGateway(t *testing.T) {
	svc := startServices(t)
	sys := svc.System
	freeze(t, svc.Proc("gateway"))
	done := make(chan harness.CLIResult, 1)
	go func() { done <- oz(t, sys, sys.AdminToken, "", "whoami") }()
	select {
	case res := <-done:
		if res.Code != 5 || !strings.Contains(res.Stderr, "the gateway at "+sys.Addr) {
			t.Errorf("oz whoami with the gateway frozen: exit %d, %q; want 5 and a message naming the gateway at %s", res.Code, res.Stderr, sys.Addr)
		}
	case <-time.After(2 * time.Minute): // the CLI's own bound is 30s
		t.Fatal("oz whoami with the gateway frozen: no answer within 2m")
	}
}
