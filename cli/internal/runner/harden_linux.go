//go:build linux

package runner

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// Harden makes this process non-dumpable (prctl PR_SET_DUMPABLE 0), so
// that a process of the same uid without CAP_SYS_PTRACE can no longer
// read its /proc/PID/environ, /proc/PID/mem or /proc/PID/maps, nor attach
// to it with ptrace; it also leaves no core dump. The agent is such a
// process when it runs as the runner's uid: Harden keeps the runner's
// credential, the run's start ticket, its key and the opened values out
// of the agent's reach through those paths.
//
// Call it first thing in main, before any credential is read: until
// then, OZ_TOKEN is readable in /proc/PID/environ and a value read from a
// file is readable in /proc/PID/mem. The child is not affected: execve
// makes it dumpable again.
//
// What Harden does not do: it protects this process only. When the agent
// runs as the runner's uid, every other process of that uid stays
// readable by the agent, such as the shell that exported OZ_TOKEN, and so
// does every file that uid can read (the config file with the token).
// Root, and processes with CAP_SYS_PTRACE, still read everything.
//
// The deployment that keeps the runner's secrets from the agent: the
// runner as root (needed to start the agent as another user), calling
// Harden, and the agent as a uid of its own (Command.AsUser, --as-user)
// that cannot read the runner's token and config files (CheckPrivate).
// Then neither the runner, nor the shell or service that started it, nor
// its files are the agent's.
func Harden() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("harden: prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	return nil
}

// Secure bits (linux/securebits.h) that keep capabilities across setuid.
const (
	secbitNoSetuidFixup = 1 << 2
	secbitKeepCaps      = 1 << 4
)

// CheckRunAs returns the error Run returns, before starting anything,
// when this process cannot start a child as u (Command.AsUser): u is
// refused (see ParseAsUser), or the runner is not root able to change its
// uid and gid, or its secure bits would keep capabilities across the
// change. Otherwise setuid from root to u clears the child's permitted,
// effective and ambient capabilities. Call it before resolving a run, so
// that a runner that cannot start the agent as u resolves nothing.
func CheckRunAs(u User) error {
	if err := u.validate(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("--as-user needs the runner to run as root (it runs as uid %d): only root can start the agent as another user", os.Geteuid())
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("--as-user: read the runner's capabilities: %w", err)
	}
	const need = 1<<unix.CAP_SETUID | 1<<unix.CAP_SETGID
	if data[0].Effective&need != need {
		return errors.New("--as-user needs the runner to run as root with CAP_SETUID and CAP_SETGID: this root lacks them")
	}
	bits, err := unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0)
	if err != nil {
		return fmt.Errorf("--as-user: read the runner's secure bits: %w", err)
	}
	if bits&(secbitNoSetuidFixup|secbitKeepCaps) != 0 {
		return fmt.Errorf("--as-user: the runner's secure bits (%#x) keep capabilities across setuid: the agent would keep root's capabilities", bits)
	}
	return nil
}

// startNoNewPrivs starts cmd with no_new_privs set, so that neither the
// child nor anything it runs gains privileges through execve: setuid and
// setgid bits and file capabilities are ignored (so a sudo or su the
// agent finds cannot take it back to root).
//
// Go's SysProcAttr cannot set no_new_privs in the child, so it is set on
// the thread that forks it: the flag is inherited by the child and
// survives its execve, and it does not stop the child's setgroups, setgid
// and setuid (no_new_privs only affects execve). The flag belongs to a
// thread, and once set cannot be cleared, so the fork happens on a thread
// locked for it that is never unlocked: it ends with its goroutine, and
// no other goroutine of the runner runs with the flag.
func startNoNewPrivs(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			errc <- fmt.Errorf("--as-user: prctl(PR_SET_NO_NEW_PRIVS, 1): %w", err)
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

// hasAccessACL reports whether the file at path has a POSIX access ACL.
func hasAccessACL(path string) (bool, error) {
	_, err := unix.Getxattr(path, "system.posix_acl_access", nil)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
		return false, nil
	}
	return false, err
}
