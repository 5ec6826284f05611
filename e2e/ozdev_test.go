package e2e_test

// `make run` cleans up after itself (issue 15): ozdev's services die with it,
// a second ozdev refuses while the first runs, a service that exits is
// restarted, and one that keeps dying makes ozdev give up cleanly.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ozsecrets/oz/e2e/harness"
)

// devRun is one ozdev started by a test that needs its pid (the harness
// keeps its own private).
type devRun struct {
	cmd     *exec.Cmd
	out     *lockedBuffer
	done    chan struct{}
	err     error
	dataDir string
	ports   map[string]string
	pgid    int // ozdev's own process group, as a terminal's foreground job
}

func freePorts(t *testing.T) map[string]string {
	t.Helper()
	ports := map[string]string{}
	for _, name := range []string{"gateway", "resolver", "secretstore", "audit"} {
		p, err := harness.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[name] = p
	}
	return ports
}

// startDev starts ozdev without waiting; it is killed (SIGKILL to ozdev,
// whose services then die too) when the test ends, if still running.
func startDev(t *testing.T, dataDir string, ports map[string]string, env ...string) *devRun {
	t.Helper()
	r := &devRun{out: &lockedBuffer{}, done: make(chan struct{}), dataDir: dataDir, ports: ports}
	r.cmd = exec.Command(filepath.Join(binDir, "ozdev"))
	r.cmd.Env = append(append(os.Environ(),
		"OZ_DATA_DIR="+dataDir,
		"OZ_GATEWAY_ADDR="+ports["gateway"],
		"OZ_RESOLVER_LISTEN="+ports["resolver"],
		"OZ_SECRETSTORE_LISTEN="+ports["secretstore"],
		"OZ_AUDIT_LISTEN="+ports["audit"],
	), env...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	// Its own group, like a job a shell starts, so a test can signal the
	// group without signalling itself.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.pgid = r.cmd.Process.Pid
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		if !r.exited() {
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-r.done:
			case <-time.After(60 * time.Second):
				_ = r.cmd.Process.Kill()
				<-r.done
			}
		}
		if t.Failed() {
			t.Logf("ozdev output:\n%s", r.out.String())
		}
	})
	return r
}

func (r *devRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// waitRunning waits for "oz secrets is running" and returns the system for
// CLI calls.
func (r *devRun) waitRunning(t *testing.T) *harness.System {
	t.Helper()
	eventually(t, 90*time.Second, "ozdev prints that it is running", func() bool {
		if r.exited() {
			t.Fatalf("ozdev exited: %v\n%s", r.err, r.out.String())
		}
		return strings.Contains(r.out.String(), "oz secrets is running")
	})
	env, err := harness.ParseEnvFile(filepath.Join(r.dataDir, "dev.env"))
	if err != nil {
		t.Fatal(err)
	}
	return &harness.System{BinDir: binDir, DataDir: r.dataDir, Addr: r.ports["gateway"],
		Ports: r.ports, CAFile: env["OZ_CA_FILE"], AdminToken: env["OZ_TOKEN"]}
}

// waitExit waits for ozdev to end and returns its exit code.
func (r *devRun) waitExit(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(120 * time.Second):
		t.Fatalf("ozdev did not exit\n%s", r.out.String())
	}
	return r.cmd.ProcessState.ExitCode()
}

// children maps each live child of ozdev to its pid, by binary name.
func (r *devRun) children(t *testing.T) map[string]int {
	t.Helper()
	kids := map[string]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, stat := range stats {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(stat)))
		state, ppid, ok := procStat(pid)
		if !ok || ppid != r.cmd.Process.Pid || state == "Z" {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			continue
		}
		kids[filepath.Base(exe)] = pid
	}
	return kids
}

// procStat reads a process's state and parent pid.
func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state ppid …; comm may hold spaces, so cut at the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid, true
}

// alive: the pid exists and is not a zombie (an orphan's zombie may linger
// where nothing reaps it; it holds no port or lock).
func alive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != "Z"
}

func eventually(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", bound, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func skipUnlessProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc (Linux)")
	}
}

const allServices = 4

// TestOzdevKilledTakesServicesAlong: SIGKILL to ozdev (as a closed terminal
// or an OOM kill would) leaves no service behind and frees every port.
func TestOzdevKilledTakesServicesAlong(t *testing.T) {
	skipUnlessProc(t)
	r := startDev(t, filepath.Join(t.TempDir(), "data"), freePorts(t))
	r.waitRunning(t)
	kids := r.children(t)
	if len(kids) != allServices {
		t.Fatalf("ozdev children = %v, want %d services", kids, allServices)
	}
	_ = r.cmd.Process.Kill()
	r.waitExit(t)
	eventually(t, 60*time.Second, "every service of a killed ozdev exits", func() bool {
		for _, pid := range kids {
			if alive(pid) {
				return false
			}
		}
		return true
	})
	for name, addr := range r.ports {
		eventually(t, 30*time.Second, name+" port is free again", func() bool {
			l, err := net.Listen("tcp", addr)
			if err == nil {
				l.Close()
			}
			return err == nil
		})
	}
	// And the next start works on the same ports and data.
	again := startDev(t, r.dataDir, r.ports)
	sys := again.waitRunning(t)
	if res := ozOK(t, sys, sys.AdminToken, "", "whoami"); res.Code != 0 {
		t.Fatalf("whoami after restart: %s", res.Stderr)
	}
}

// TestOzdevCtrlCStopsAll: a Ctrl-C reaches ozdev and its services alike (one
// process group); everything stops, nothing is restarted, exit 0.
func TestOzdevCtrlCStopsAll(t *testing.T) {
	skipUnlessProc(t)
	r := startDev(t, filepath.Join(t.TempDir(), "data"), freePorts(t), "OZ_DEV_RESTART_BACKOFF=5s")
	r.waitRunning(t)
	kids := r.children(t)
	if len(kids) != allServices {
		t.Fatalf("ozdev children = %v, want %d services", kids, allServices)
	}
	for name, pid := range kids {
		if pgid, _ := syscall.Getpgid(pid); pgid != r.pgid {
			t.Errorf("%s is in process group %d, want ozdev's %d (a terminal's signals must reach it)", name, pgid, r.pgid)
		}
	}
	// What the terminal does on Ctrl-C: SIGINT to the foreground group.
	if err := syscall.Kill(-r.pgid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := r.waitExit(t); code != 0 {
		t.Errorf("ozdev exit code %d after Ctrl-C, want 0", code)
	}
	if out := r.out.String(); strings.Contains(out, "msg=restarted") {
		t.Errorf("ozdev restarted a service while stopping:\n%s", out)
	}
	for name, pid := range kids {
		if alive(pid) {
			t.Errorf("%s (pid %d) still alive after Ctrl-C", name, pid)
		}
	}
}

// TestOzdevRefusesWhileRunning: a second ozdev on the same ports and data
// refuses, naming the address and the process holding it, and never claims
// to be running (the first system's health checks would have answered).
func TestOzdevRefusesWhileRunning(t *testing.T) {
	skipUnlessProc(t)
	first := startDev(t, filepath.Join(t.TempDir(), "data"), freePorts(t))
	first.waitRunning(t)
	kids := first.children(t)

	second := startDev(t, first.dataDir, first.ports)
	code := second.waitExit(t)
	out := second.out.String()
	if code == 0 {
		t.Errorf("second ozdev exit code 0, want non-zero")
	}
	if strings.Contains(out, "is running") {
		t.Errorf("second ozdev printed that it is running:\n%s", out)
	}
	want := fmt.Sprintf("gateway address %s is in use by ozgateway (pid %d)", first.ports["gateway"], kids["ozgateway"])
	if !strings.Contains(out, want) {
		t.Errorf("second ozdev output lacks %q:\n%s", want, out)
	}
	if !strings.Contains(out, "resolver.db is locked by ozresolverd") {
		t.Errorf("second ozdev output does not name the store lock's holder:\n%s", out)
	}
	// The first system is untouched.
	for name, pid := range kids {
		if !alive(pid) {
			t.Errorf("%s (pid %d) of the first ozdev is gone", name, pid)
		}
	}
	if first.exited() {
		t.Fatalf("first ozdev exited: %v", first.err)
	}
}

// TestOzdevRestartsAService: kill -9 the resolver; ozdev logs the restart
// and the system answers again.
func TestOzdevRestartsAService(t *testing.T) {
	skipUnlessProc(t)
	r := startDev(t, filepath.Join(t.TempDir(), "data"), freePorts(t), "OZ_DEV_RESTART_BACKOFF=200ms")
	sys := r.waitRunning(t)
	old := r.children(t)["ozresolverd"]
	if old == 0 {
		t.Fatal("no resolver child")
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "ozdev logs the resolver's restart", func() bool {
		if r.exited() {
			t.Fatalf("ozdev exited instead of restarting: %v", r.err)
		}
		return strings.Contains(r.out.String(), "msg=restarted service=resolver")
	})
	if !strings.Contains(r.out.String(), "service exited; restarting") {
		t.Errorf("no log line for the exit:\n%s", r.out.String())
	}
	if now := r.children(t)["ozresolverd"]; now == 0 || now == old {
		t.Fatalf("resolver pid after restart = %d (was %d)", now, old)
	}
	eventually(t, 60*time.Second, "oz whoami answers after the restart", func() bool {
		res, err := sys.OZ(sys.AdminToken, nil, nil, "whoami")
		return err == nil && res.Code == 0
	})
}

// TestOzdevGivesUp: a service that keeps dying makes ozdev stop everything
// after its restart limit and exit non-zero, leaving no child behind.
func TestOzdevGivesUp(t *testing.T) {
	skipUnlessProc(t)
	const limit = 2
	r := startDev(t, filepath.Join(t.TempDir(), "data"), freePorts(t),
		"OZ_DEV_RESTART_BACKOFF=200ms", "OZ_DEV_MAX_RESTARTS="+strconv.Itoa(limit))
	r.waitRunning(t)
	seen := map[int]bool{}
	for _, pid := range r.children(t) {
		seen[pid] = true
	}
	victim := r.children(t)["ozsecretstored"]
	for i := 0; i <= limit; i++ {
		if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if i == limit {
			break
		}
		old := victim
		eventually(t, 90*time.Second, "ozdev restarts the secretstore", func() bool {
			if r.exited() {
				t.Fatalf("ozdev exited after %d kills: %v", i+1, r.err)
			}
			victim = r.children(t)["ozsecretstored"]
			return victim != 0 && victim != old &&
				strings.Count(r.out.String(), "msg=restarted service=secretstore") == i+1
		})
		seen[victim] = true
	}
	if code := r.waitExit(t); code == 0 {
		t.Errorf("ozdev exit code 0 after giving up, want non-zero")
	}
	if out := r.out.String(); !strings.Contains(out, "giving up") {
		t.Errorf("output does not say ozdev gave up:\n%s", out)
	}
	for pid := range seen {
		if alive(pid) {
			t.Errorf("pid %d still alive after ozdev gave up", pid)
		}
	}
}
