package tmpfstest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// readyTimeout bounds how long the holder may take to mount the tmpfs: it
// only turns a hung mount into a failure, it times nothing.
const readyTimeout = 60 * time.Second

// tmpfsMagic is statfs(2)'s f_type of a tmpfs.
const tmpfsMagic = 0x01021994

// holder mounts the tmpfs ($1 bytes, at $2), says so, then waits for its
// standard input to close: when the test ends, or its process dies.
const holder = `mount -t tmpfs -o size="$1",mode=0700 oz-tmpfstest "$2" && echo ready && exec cat >/dev/null`

// Mount mounts a new tmpfs of size bytes (rounded up to whole pages) and
// returns its root: an empty directory, writable by the test's user, under
// /proc/<pid>/root/. It is gone when the test ends. Where that cannot be
// done, the test is skipped, saying what is missing: unshare(1) or
// mount(8) (util-linux) not installed, or neither a mount namespace (root
// with CAP_SYS_ADMIN) nor a user namespace (enabled for unprivileged
// users) allowed, as under a container's default seccomp profile.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	for _, tool := range []string{"unshare", "mount", "sh", "cat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("tmpfstest: %s is not installed (%v): a private tmpfs needs unshare(1) and mount(8) from util-linux", tool, err)
		}
	}
	mnt := t.TempDir() // the mount point: stays empty outside the namespace
	// Root may mount in a mount namespace of its own; anyone may in a user
	// namespace of their own, where they are root, if the machine allows.
	ways := [][]string{{"--user", "--map-root-user", "--mount"}}
	if os.Geteuid() == 0 {
		ways = append([][]string{{"--mount"}}, ways...)
	}
	var denied []string
	for _, way := range ways {
		root, err := hold(t, size, mnt, way)
		if err == nil {
			return root
		}
		if !errors.Is(err, errDenied) {
			t.Fatalf("tmpfstest: mount a tmpfs of %d bytes: %v", size, err)
		}
		denied = append(denied, err.Error())
	}
	t.Skipf("tmpfstest: this machine allows uid %d no private tmpfs (%s). Needed: root with CAP_SYS_ADMIN, or "+
		"unprivileged user namespaces (sysctls user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1, "+
		"kernel.apparmor_restrict_unprivileged_userns=0; in a container, a seccomp profile that allows unshare)",
		os.Geteuid(), strings.Join(denied, "; "))
	return ""
}

// errDenied marks a holder the machine did not allow to make its
// namespaces or to mount.
var errDenied = errors.New("not permitted")

// hold starts a holder with unshare's namespace flags way and, once the
// tmpfs is mounted, returns its root; the holder stops when the test ends.
func hold(t testing.TB, size int64, mnt string, way []string) (string, error) {
	args := append(append([]string{}, way...), "--propagation", "private",
		"sh", "-c", holder, "sh", strconv.FormatInt(size, 10), mnt)
	cmd := exec.Command("unshare", args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start unshare: %w", err)
	}
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, stdout) // Wait waits for stdout to close
		done <- cmd.Wait()
	}()
	stop := func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		<-done
	}
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			stop()
			msg := fmt.Sprintf("unshare %s: %s", strings.Join(way, " "), strings.TrimSpace(stderr.String()))
			for _, refusal := range []string{"Operation not permitted", "Permission denied", "No space left on device", "Invalid argument"} {
				if strings.Contains(msg, refusal) {
					return "", fmt.Errorf("%w: %s", errDenied, msg)
				}
			}
			return "", errors.New(msg)
		}
	case <-time.After(readyTimeout):
		stop()
		return "", fmt.Errorf("the tmpfs was not mounted within %s: %s", readyTimeout, stderr.String())
	}
	t.Cleanup(stop)
	root := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "root", mnt)
	// Make sure the path leads to the tmpfs, rather than fill the
	// machine's disk.
	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err != nil {
		return "", err
	}
	if st.Type != tmpfsMagic {
		return "", fmt.Errorf("%s is not on a tmpfs (filesystem type %#x)", root, st.Type)
	}
	return root, nil
}

// Free reports how many bytes are free on the filesystem holding dir.
func Free(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatalf("tmpfstest: %v", err)
	}
	return int64(st.Bavail) * st.Bsize
}

// syncBuffer is a bytes.Buffer safe for a writer (exec's copying
// goroutine) and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
