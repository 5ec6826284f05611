//go:build linux

package runner_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/ozsecrets/oz/cli/internal/runner"
)

// These tests start real processes: the test binary, re-executed in one
// of the helper modes below, plays the runner (a process that holds a
// canary credential in its environment and its memory and starts the
// agent with runner.Run) and the agent (an attacker that tries to get at
// its parent).
const (
	helperEnv = "OZ_RUNNER_TEST_HELPER" // "runner", "attacker" or "read"
	hardenEnv = "OZ_RUNNER_TEST_HARDEN" // "1": the runner calls Harden first
	asUserEnv = "OZ_RUNNER_TEST_AS_USER"
	canaryEnv = "OZ_RUNNER_TEST_CANARY" // the runner's credential
	memEnv    = "OZ_RUNNER_TEST_MEM"    // ADDR:LEN of the canary in the runner's memory
	filesEnv  = "OZ_RUNNER_TEST_FILES"  // NAME=PATH,…: files the attacker tries to read
)

// agentID is the uid and gid the tests run agents as when they run as root.
const agentID = 65534

func init() {
	switch os.Getenv(helperEnv) {
	case "runner":
		os.Exit(helperRunner())
	case "attacker":
		os.Exit(helperAttacker())
	case "read":
		os.Exit(helperRead())
	}
}

// helperRunner is the runner: it holds the canary (in its environment,
// and in memory like an opened value) and runs the attacker with
// runner.Run, without the canary in the attacker's environment.
func helperRunner() int {
	if os.Getenv(hardenEnv) == "1" {
		if err := runner.Harden(); err != nil {
			fmt.Println("error", err)
			return 2
		}
	}
	canary := []byte(os.Getenv(canaryEnv))
	exe, err := os.Executable()
	if err != nil {
		fmt.Println("error", err)
		return 2
	}
	c := runner.Command{
		Path: exe,
		Args: []string{"attacker"},
		Env: []string{
			helperEnv + "=attacker",
			fmt.Sprintf("%s=%d:%d", memEnv, uintptr(unsafe.Pointer(&canary[0])), len(canary)),
			filesEnv + "=" + os.Getenv(filesEnv),
		},
		Stdin:   os.Stdin,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		Signals: make(chan os.Signal),
		Started: func(int) { fmt.Println("started") },
	}
	if s := os.Getenv(asUserEnv); s != "" {
		if c.AsUser, err = runner.ParseAsUser(s); err != nil {
			fmt.Println("error", err)
			return 2
		}
	}
	exit, err := runner.Run(c)
	runtime.KeepAlive(canary)
	if err != nil {
		fmt.Println("error", err)
		return 2
	}
	return exit.Code
}

// helperAttacker is the agent: it tries every way at its parent's
// secrets it is asked to test, and says on standard output what it got:
// "check NAME allowed DETAIL" or "check NAME denied ERROR" per attempt.
func helperAttacker() int {
	ppid := os.Getppid()
	report := func(name string, err error, detail string) {
		if err != nil {
			fmt.Printf("check %s denied %v\n", name, err)
		} else {
			fmt.Printf("check %s allowed %s\n", name, detail)
		}
	}

	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", ppid))
	detail := fmt.Sprintf("%d bytes, no canary", len(env))
	for kv := range bytes.SplitSeq(env, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte(canaryEnv+"=")); ok {
			detail = "canary=" + string(v)
		}
	}
	report("environ", err, detail)

	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", ppid))
	report("maps", err, fmt.Sprintf("%d bytes", len(maps)))

	got, err := readMem(ppid)
	report("mem", err, "got="+got)

	runtime.LockOSThread() // a tracer is a thread
	err = unix.PtraceAttach(ppid)
	if err == nil {
		var ws unix.WaitStatus
		_, _ = unix.Wait4(ppid, &ws, unix.WALL, nil)
		_ = unix.PtraceDetach(ppid)
	}
	report("ptrace", err, "attached")

	for nameAndPath := range strings.SplitSeq(os.Getenv(filesEnv), ",") {
		name, path, ok := strings.Cut(nameAndPath, "=")
		if !ok {
			continue
		}
		b, err := os.ReadFile(path)
		report("file:"+name, err, fmt.Sprintf("%d bytes", len(b)))
	}

	if term.IsTerminal(0) {
		c := byte('#')
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCSTI, uintptr(unsafe.Pointer(&c)))
		var err error
		if errno != 0 {
			err = errno
		}
		report("tiocsti", err, "pushed a byte into the terminal's input")
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err == nil {
		tty.Close()
	}
	report("devtty", err, "opened the controlling terminal")

	sid, _ := unix.Getsid(0)
	fmt.Printf("own-session %v\n", sid == os.Getpid())
	status, _ := os.ReadFile("/proc/self/status")
	for line := range strings.Lines(string(status)) {
		fmt.Printf("status %s", line)
	}
	return 0
}

// readMem reads the canary's bytes from the parent's memory, at the
// address the runner passed.
func readMem(ppid int) (string, error) {
	addrText, lenText, _ := strings.Cut(os.Getenv(memEnv), ":")
	addr, err1 := strconv.ParseInt(addrText, 10, 64)
	n, err2 := strconv.Atoi(lenText)
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("bad %s %q", memEnv, os.Getenv(memEnv))
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", ppid))
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, addr); err != nil {
		return "", err
	}
	return string(buf), nil
}

// helperRead reads the file named by its first argument and exits 0 if
// it could, 1 if not.
func helperRead() int {
	if _, err := os.ReadFile(os.Args[1]); err != nil {
		return 1
	}
	return 0
}

// result is what the attacker reported.
type result struct {
	out    string
	checks map[string]check  // by name
	status map[string]string // /proc/self/status of the attacker, by field
}

type check struct {
	allowed bool
	detail  string
}

func parseResult(out string) result {
	r := result{out: out, checks: map[string]check{}, status: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		switch kind {
		case "check":
			name, rest, _ := strings.Cut(rest, " ")
			verdict, detail, _ := strings.Cut(rest, " ")
			r.checks[name] = check{allowed: verdict == "allowed", detail: detail}
		case "status":
			k, v, _ := strings.Cut(rest, ":")
			r.status[k] = strings.TrimSpace(v)
		case "own-session":
			r.status["own-session"] = rest
		}
	}
	return r
}

// wantDenied fails for each named check the attacker did not report as
// denied.
func (r result) wantDenied(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		c, ok := r.checks[name]
		switch {
		case !ok:
			t.Errorf("check %s: not reported; output:\n%s", name, r.out)
		case c.allowed:
			t.Errorf("check %s: got allowed (%s), want denied", name, c.detail)
		default:
			t.Logf("check %s: denied (%s)", name, c.detail)
		}
	}
}

// sharedDir returns a new directory that uid agentID can reach and read:
// world-searchable all the way up.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "oz-runner-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			t.Skipf("uid %d cannot reach %s: %s has mode %04o; set TMPDIR to a world-searchable directory", agentID, dir, d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return dir
		}
	}
}

// testBinary returns a copy of the test binary that uid agentID can run,
// in a directory it can read. The copy is readable, not only executable:
// the kernel makes a process that runs an unreadable program non-dumpable,
// which would hide what Harden does.
func testBinary(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(dir, "runner.test")
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// helper describes one start of the helper runner.
type helper struct {
	exe    string
	cred   *syscall.Credential // nil: the test's own
	harden bool
	asUser string
	files  string
	stdin  *os.File // with Setsid and Setctty when it is a terminal
}

// run starts the helper runner with a fresh canary and returns what the
// attacker reported, the canary, and the helper's exit code.
func (h helper) run(t *testing.T) (result, string, int) {
	t.Helper()
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	canary := "oz_canary_" + hex.EncodeToString(raw)
	harden := "0"
	if h.harden {
		harden = "1"
	}
	cmd := exec.Command(h.exe)
	cmd.Dir = filepath.Dir(h.exe)
	cmd.Env = []string{
		helperEnv + "=runner",
		hardenEnv + "=" + harden,
		asUserEnv + "=" + h.asUser,
		canaryEnv + "=" + canary,
		filesEnv + "=" + h.files,
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: h.cred}
	if h.stdin != nil {
		cmd.Stdin = h.stdin
		cmd.SysProcAttr.Setsid = true
		cmd.SysProcAttr.Setctty = true
		cmd.SysProcAttr.Ctty = 0
	}
	err := cmd.Run()
	code := 0
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			t.Fatalf("start the helper: %v", err)
		}
	}
	if errOut.Len() > 0 {
		t.Logf("helper stderr:\n%s", errOut.String())
	}
	return parseResult(out.String()), canary, code
}

// sameUIDHelper returns how to start a helper whose agent runs as the
// helper's own uid, which must not be root: root has CAP_SYS_PTRACE and
// reads any process, dumpable or not.
func sameUIDHelper(t *testing.T) helper {
	t.Helper()
	if os.Geteuid() != 0 {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		return helper{exe: exe}
	}
	return helper{
		exe:  testBinary(t, sharedDir(t)),
		cred: &syscall.Credential{Uid: agentID, Gid: agentID, Groups: []uint32{}},
	}
}

// A hardened runner keeps an agent of its own uid out of its environment
// and memory; an unhardened one (the control) does not.
func TestHardenBlocksSameUID(t *testing.T) {
	logYama(t)
	h := sameUIDHelper(t)

	t.Run("Hardened", func(t *testing.T) {
		h := h
		h.harden = true
		r, _, code := h.run(t)
		if code != 0 {
			t.Fatalf("helper exited %d; output:\n%s", code, r.out)
		}
		r.wantDenied(t, "environ", "maps", "mem", "ptrace")
	})

	// The control: without Harden, the same attacker reads the canary
	// from the runner's environment (and, unless Yama forbids it, from
	// its memory), so the checks above can fail.
	t.Run("NotHardened", func(t *testing.T) {
		r, canary, code := h.run(t)
		if code != 0 {
			t.Fatalf("helper exited %d; output:\n%s", code, r.out)
		}
		c := r.checks["environ"]
		if !c.allowed {
			t.Skipf("an unhardened runner's environment was not readable either (%s): something else (hidepid, an LSM) already protects it, and the Hardened case proves nothing here", c.detail)
		}
		if want := "canary=" + canary; c.detail != want {
			t.Errorf("check environ: got %q, want %q", c.detail, want)
		}
		for _, name := range []string{"maps", "mem", "ptrace"} {
			t.Logf("control: check %s: allowed=%v (%s)", name, r.checks[name].allowed, r.checks[name].detail)
		}
		if c := r.checks["mem"]; c.allowed && c.detail != "got="+canary {
			t.Errorf("control: check mem: got %q, want %q", c.detail, "got="+canary)
		}
	})
}

func logYama(t *testing.T) {
	t.Helper()
	if b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil {
		t.Logf("Yama ptrace_scope = %s", strings.TrimSpace(string(b)))
	} else {
		t.Logf("Yama ptrace_scope: %v (no Yama)", err)
	}
}

// An agent started with AsUser cannot reach the runner (even one that did
// not call Harden) nor its token file, runs with exactly the uid and gid
// asked for, no groups, no capabilities and no_new_privs, and has no
// controlling terminal to push input into.
func TestRunAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("--as-user needs root: run the tests as root (sudo go test) to check it")
	}
	logYama(t)
	if err := runner.CheckRunAs(runner.User{UID: agentID, GID: agentID}); err != nil {
		t.Fatalf("CheckRunAs as root: got %v, want nil", err)
	}
	dir := sharedDir(t)
	exe := testBinary(t, dir)
	token := filepath.Join(dir, "token")
	public := filepath.Join(dir, "public")
	if err := os.WriteFile(token, []byte("oz_runner_token"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(public, []byte("public"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := strconv.Itoa(agentID)
	wantStatus := map[string]string{
		"Uid":         strings.Repeat(id+"\t", 3) + id,
		"Gid":         strings.Repeat(id+"\t", 3) + id,
		"Groups":      "",
		"NoNewPrivs":  "1",
		"CapPrm":      "0000000000000000",
		"CapEff":      "0000000000000000",
		"CapAmb":      "0000000000000000",
		"own-session": "true",
	}

	check := func(t *testing.T, h helper, terminal bool) {
		r, canary, code := h.run(t)
		if code != 0 {
			t.Fatalf("helper exited %d; output:\n%s", code, r.out)
		}
		if strings.Contains(r.out, canary) {
			t.Errorf("the canary reached the agent; output:\n%s", r.out)
		}
		r.wantDenied(t, "environ", "maps", "mem", "ptrace", "file:token", "devtty")
		if terminal {
			r.wantDenied(t, "tiocsti")
		}
		// The attacker can reach the directory: the token is refused for
		// its mode alone.
		if c := r.checks["file:public"]; !c.allowed {
			t.Errorf("check file:public: got denied (%s), want allowed: the token check proves nothing", c.detail)
		}
		for k, want := range wantStatus {
			if got := r.status[k]; got != want {
				t.Errorf("agent's %s: got %q, want %q", k, got, want)
			}
		}
	}

	h := helper{exe: exe, asUser: id + ":" + id, files: "token=" + token + ",public=" + public}
	t.Run("NoTerminal", func(t *testing.T) { check(t, h, false) })
	t.Run("Terminal", func(t *testing.T) {
		h := h
		h.stdin = openTerminal(t)
		check(t, h, true)
	})

	// The control for the terminal: an agent of the same (non-root) uid
	// without AsUser is in the terminal's foreground and can push input.
	t.Run("TerminalControl", func(t *testing.T) {
		if b, err := os.ReadFile("/proc/sys/dev/tty/legacy_tiocsti"); err == nil && strings.TrimSpace(string(b)) == "0" {
			t.Skip("dev.tty.legacy_tiocsti is 0: this kernel refuses TIOCSTI to everyone")
		}
		h := helper{exe: exe, cred: &syscall.Credential{Uid: agentID, Gid: agentID, Groups: []uint32{}}, stdin: openTerminal(t)}
		r, _, code := h.run(t)
		if code != 0 {
			t.Fatalf("helper exited %d; output:\n%s", code, r.out)
		}
		if c := r.checks["tiocsti"]; !c.allowed {
			t.Errorf("control: check tiocsti: got denied (%s), want allowed: the Terminal case proves nothing", c.detail)
		}
	})
}

// openTerminal returns the terminal end of a new pseudo-terminal.
func openTerminal(t *testing.T) *os.File {
	t.Helper()
	ptm, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	// Keep the terminal's output drained, until the terminal end closes.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(io.Discard, ptm)
	}()
	t.Cleanup(func() {
		tty.Close()
		<-drained
		ptm.Close()
	})
	return tty
}

// Run refuses AsUser, before starting anything, when the runner is not
// root.
func TestRunAsUserNeedsRoot(t *testing.T) {
	const want = "--as-user needs the runner to run as root"
	if os.Geteuid() != 0 {
		started := false
		_, err := runner.Run(runner.Command{
			Path: "/bin/true", Args: []string{"true"},
			Signals: make(chan os.Signal),
			Started: func(int) { started = true },
			AsUser:  &runner.User{UID: 65533, GID: 65533},
		})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error saying %q", err, want)
		}
		if started {
			t.Error("the child started")
		}
		return
	}
	// As root: ask a helper running as another user.
	h := helper{
		exe:    testBinary(t, sharedDir(t)),
		cred:   &syscall.Credential{Uid: agentID, Gid: agentID, Groups: []uint32{}},
		asUser: "65533",
	}
	r, _, code := h.run(t)
	if code != 2 || !strings.Contains(r.out, "error "+want) {
		t.Errorf("got exit %d and output %q, want exit 2 and an error saying %q", code, r.out, want)
	}
	if strings.Contains(r.out, "started") || len(r.checks) > 0 {
		t.Errorf("the child started; output:\n%s", r.out)
	}
}

// Run refuses a User that ParseAsUser would have refused.
func TestRunAsUserRefusesRoot(t *testing.T) {
	for _, u := range []runner.User{{UID: 0, GID: 65534}, {UID: 65534, GID: 0}} {
		t.Run(u.String(), func(t *testing.T) {
			started := false
			_, err := runner.Run(runner.Command{
				Path: "/bin/true", Args: []string{"true"},
				Signals: make(chan os.Signal),
				Started: func(int) { started = true },
				AsUser:  &u,
			})
			if err == nil || !strings.Contains(err.Error(), "root") {
				t.Errorf("got %v, want an error about root", err)
			}
			if err := runner.CheckRunAs(u); err == nil || !strings.Contains(err.Error(), "root") {
				t.Errorf("CheckRunAs: got %v, want an error about root", err)
			}
			if started {
				t.Error("the child started")
			}
		})
	}
}

// agentReader returns a directory for test files and, when the tests run
// as root, a function that reports whether uid agentID can read a file in
// it, by trying; otherwise nil.
func agentReader(t *testing.T) (dir string, canRead func(path string) bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		return t.TempDir(), nil
	}
	dir = sharedDir(t)
	exe := testBinary(t, dir)
	return dir, func(path string) bool {
		t.Helper()
		cmd := exec.Command(exe, path)
		cmd.Env = []string{helperEnv + "=read"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: agentID, Gid: agentID, Groups: []uint32{}}}
		err := cmd.Run()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatalf("start the reader: %v", err)
		}
		return err == nil
	}
}

// A POSIX ACL can grant reading to a user the mode bits do not name:
// ReadableBy counts a file with an ACL whose mask allows reading.
func TestReadableByACL(t *testing.T) {
	dir, canRead := agentReader(t)
	agent := runner.User{UID: agentID, GID: agentID}
	if os.Getuid() == agentID {
		t.Skipf("the tests run as uid %d, the agent's", agentID)
	}
	tests := []struct {
		name string
		mask uint16 // the ACL's mask: the most a named entry grants
		want bool
	}{
		{"NamedUserReads", 4, true},
		{"MaskForbids", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if err := os.WriteFile(path, []byte("oz_runner_token"), 0o600); err != nil {
				t.Fatal(err)
			}
			// user::rw- user:AGENT:r-- group::--- mask::MASK other::---
			acl := aclXattr([][3]uint32{
				{0x01, 6, 0xffffffff},
				{0x02, 4, agentID},
				{0x04, 0, 0xffffffff},
				{0x10, uint32(tt.mask), 0xffffffff},
				{0x20, 0, 0xffffffff},
			})
			if err := unix.Setxattr(path, "system.posix_acl_access", acl, 0); err != nil {
				t.Skipf("cannot set a POSIX ACL on %s: %v", dir, err)
			}
			got, err := runner.ReadableBy(path, agent)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if canRead != nil {
				if kernel := canRead(path); kernel != tt.want {
					t.Errorf("uid %d can read it: %v; want %v", agentID, kernel, tt.want)
				}
			}
		})
	}
}

// aclXattr encodes ACL entries (tag, permissions, id) as the value of
// system.posix_acl_access: version 2, little-endian.
func aclXattr(entries [][3]uint32) []byte {
	le := binary.LittleEndian
	b := le.AppendUint32(nil, 2)
	for _, e := range entries {
		b = le.AppendUint16(b, uint16(e[0]))
		b = le.AppendUint16(b, uint16(e[1]))
		b = le.AppendUint32(b, e[2])
	}
	return b
}
