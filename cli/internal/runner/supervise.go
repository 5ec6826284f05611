package runner

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// ForwardedSignals are the signals the runner passes on to the child's
// process group.
var ForwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// DefaultWaitDelay is how long Run waits, once the child has exited, for
// processes it left behind to close its output.
const DefaultWaitDelay = 2 * time.Second

// Command is the child process to run.
type Command struct {
	Path string   // executable, already looked up
	Args []string // Args[0] is the name the child sees
	Env  []string // the whole environment

	// Stdin is passed through: an *os.File is handed to the child as is.
	Stdin io.Reader
	// Stdout and Stderr receive the child's output through pipes (give
	// masking writers); Run returns once they have all of it.
	Stdout, Stderr io.Writer

	// Signals carries the signals to forward to the child's process
	// group. Nil: ForwardedSignals as this process receives them.
	Signals <-chan os.Signal
	// Started, if set, is called with the child's pid once it runs.
	Started func(pid int)
	// WaitDelay: see DefaultWaitDelay (zero means the default).
	WaitDelay time.Duration

	// AsUser, if set, runs the child as that user (--as-user), which
	// keeps the runner's credential, ticket and keys out of its reach: a
	// process of another uid cannot read the runner's /proc/PID/environ
	// or /proc/PID/mem, attach to it, or signal it. The child has no
	// supplementary groups, no capabilities and no_new_privs (a setuid
	// program it runs does not raise its privileges), and a session of
	// its own, without a controlling terminal: reading a terminal on
	// standard input works, but it cannot push input into the terminal
	// (TIOCSTI) for the runner's caller, say a root shell, to run once the
	// runner has exited. Ctrl-C reaches the runner, which forwards it.
	// Linux only; the runner must be root (Run refuses otherwise, before
	// starting anything), and Path must be executable by the user.
	//
	// Without AsUser the child runs as the runner's uid, and Harden
	// protects the runner process alone: any other process of that uid
	// (a shell that exported OZ_TOKEN) and any file it can read are the
	// agent's too.
	AsUser *User
}

// Exit is how the child ended.
type Exit struct {
	// Code is the child's exit status, or 128 + the signal's number when
	// a signal killed it: what a shell reports.
	Code int
	// Signal is the signal that killed it, if one did.
	Signal syscall.Signal
}

// Run starts c in a process group of its own, forwards signals to that
// group, and waits for it. When standard input is this process's
// controlling terminal and this process is in the foreground, the child's
// group becomes the terminal's foreground group (so that it can read the
// terminal and gets Ctrl-C from it directly) until it exits; not with
// c.AsUser, whose child has a session of its own. Run returns an error
// only if the child could not be started or waited for, or if c.AsUser is
// set and the runner cannot run it as that user (see Command.AsUser):
// then it starts nothing.
func Run(c Command) (Exit, error) {
	if c.AsUser != nil {
		if err := CheckRunAs(*c.AsUser); err != nil {
			return Exit{}, err
		}
	}
	cmd := &exec.Cmd{
		Path:        c.Path,
		Args:        c.Args,
		Env:         c.Env,
		Stdin:       c.Stdin,
		Stdout:      c.Stdout,
		Stderr:      c.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
		WaitDelay:   c.WaitDelay,
	}
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = DefaultWaitDelay
	}
	start := cmd.Start
	var tty int
	var foreground bool
	if u := c.AsUser; u != nil {
		// A session of its own (and so a process group whose id is its
		// pid, as with Setpgid), never the terminal's foreground.
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Setsid:     true,
			Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}},
		}
		start = func() error { return startNoNewPrivs(cmd) }
	} else if tty, foreground = foregroundTTY(c.Stdin); foreground {
		cmd.SysProcAttr.Foreground = true
		cmd.SysProcAttr.Ctty = tty
	}

	sigs := c.Signals
	if sigs == nil {
		ch := make(chan os.Signal, 8)
		signal.Notify(ch, ForwardedSignals...)
		defer signal.Stop(ch)
		sigs = ch
	}

	if err := start(); err != nil {
		return Exit{}, fmt.Errorf("start %s: %w", c.Args[0], err)
	}
	pid := cmd.Process.Pid
	if c.Started != nil {
		c.Started(pid)
	}
	done := make(chan struct{})
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for {
			select {
			case s := <-sigs:
				if sig, ok := s.(syscall.Signal); ok {
					// The group may be gone already: nothing to do then.
					_ = syscall.Kill(-pid, sig)
				}
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	<-forwarded
	if foreground {
		takeTerminal(tty)
	}

	st := cmd.ProcessState
	if st == nil {
		return Exit{}, fmt.Errorf("wait for %s: %w", c.Args[0], err)
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	if !ok {
		return Exit{Code: st.ExitCode()}, nil
	}
	if ws.Signaled() {
		return Exit{Code: 128 + int(ws.Signal()), Signal: ws.Signal()}, nil
	}
	// The status stands even if relaying the output failed (err is then
	// not an *exec.ExitError) or was cut short by WaitDelay.
	return Exit{Code: ws.ExitStatus()}, nil
}

// foregroundTTY reports whether in is a terminal whose foreground process
// group is this process's, and returns its descriptor.
func foregroundTTY(in io.Reader) (int, bool) {
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	fd := int(f.Fd())
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil || pgrp != unix.Getpgrp() {
		return 0, false
	}
	return fd, true
}

// takeTerminal makes this process's group the terminal's foreground group
// again. A background group doing so gets SIGTTOU, which is ignored
// meanwhile.
func takeTerminal(fd int) {
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	_ = unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, unix.Getpgrp())
}
