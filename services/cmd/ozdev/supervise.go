package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"
)

// spawner starts every child from one goroutine locked to its OS thread. The
// parent-death signal (childAttr) fires when the thread that forked the child
// exits, not the process; Go may retire threads, so children are only ever
// forked from this one thread, which lives until ozdev ends.
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with ozdev
		for r := range s.reqs {
			r.errc <- r.cmd.Start()
		}
	}()
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	s.reqs <- spawnReq{cmd, errc}
	return <-errc
}

// proc is one service ozdev runs and, when it exits, restarts.
type proc struct {
	name, bin, addr string
	http            bool
	args            []string
	initArgs        []string // added on the very first start of an empty data dir
	logPath         string
	// term and log are ozdev's output and log: where the service's lines
	// go while its log file cannot be written (see logFile).
	term *lockedWriter
	log  *slog.Logger

	cmd      *exec.Cmd
	gen      int // start count; tells a stale exit from the current one
	done     chan struct{}
	err      error
	restarts int       // restarts since the service last ran stably
	upSince  time.Time // when it last became healthy
}

// exit reports that one start of a proc ended.
type exit struct {
	p   *proc
	gen int
}

func (p *proc) start(sp *spawner, binDir string, first bool, exited chan<- exit) error {
	logf := openLogFile(p.logPath, p.name, p.term, p.log)
	args := p.args
	if first {
		args = append(append([]string(nil), p.initArgs...), args...)
	}
	cmd := exec.Command(filepath.Join(binDir, p.bin), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := sp.start(cmd); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.gen, p.done = cmd, p.gen+1, make(chan struct{})
	gen, done := p.gen, p.done
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.err = err
		close(done)
		exited <- exit{p, gen}
	}()
	return nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) stop(log *slog.Logger) {
	if p.cmd == nil || !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	log.Info("stopped", "service", p.name)
}

// ready waits until the service answers its health check, then makes sure
// the answer came from this process: alive, and (where /proc tells) the
// owner of the listening port. A stale service from an earlier run would
// otherwise pass the health check for us.
func (p *proc) ready(ctx context.Context, tlsCfg *tls.Config) error {
	if err := waitHealthy(ctx, p, tlsCfg); err != nil {
		return err
	}
	if !p.alive() {
		return fmt.Errorf("exited: %v", p.err)
	}
	if owners := portOwners(p.addr); len(owners) > 0 && !slices.Contains(owners, p.pid()) {
		return fmt.Errorf("%s is answered by %s, not by the %s ozdev started (pid %d)",
			p.addr, describePid(owners[0]), p.bin, p.pid())
	}
	p.upSince = time.Now()
	return nil
}

// restartPolicy is how ozdev supervises: a service that exits is restarted
// after a backoff that doubles from base up to max; after limit restarts
// without a stable run in between, ozdev gives up.
type restartPolicy struct {
	limit     int
	base, max time.Duration
	stable    time.Duration // a run this long resets the count
}

func (r restartPolicy) backoff(n int) time.Duration {
	d := r.base
	for i := 1; i < n && d < r.max; i++ {
		d *= 2
	}
	return min(d, r.max)
}

// supervise waits for ctx (stop everything, no error) or for a service to
// exit, which it restarts under policy. It returns an error when a service
// has used up its restarts.
func supervise(ctx context.Context, log *slog.Logger, sp *spawner, binDir string, tlsCfg *tls.Config,
	policy restartPolicy, exited chan exit) error {
	for {
		var e exit
		select {
		case <-ctx.Done():
			return nil
		case e = <-exited:
		}
		p := e.p
		if e.gen != p.gen {
			continue // an earlier start, already handled
		}
		if time.Since(p.upSince) >= policy.stable && !p.upSince.IsZero() {
			p.restarts = 0
		}
		for {
			if ctx.Err() != nil {
				return nil // a Ctrl-C reaches the services too; not a crash
			}
			if p.restarts >= policy.limit {
				return fmt.Errorf("%s exited (%v) after %d restart(s) (limit --max-restarts=%d); giving up and stopping everything (see %s)",
					p.name, p.err, p.restarts, policy.limit, p.logPath)
			}
			p.restarts++
			wait := policy.backoff(p.restarts)
			log.Warn("service exited; restarting", "service", p.name, "err", fmt.Sprint(p.err),
				"restart", p.restarts, "limit", policy.limit, "in", wait, "log", p.logPath)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			if err := p.start(sp, binDir, false, exited); err != nil {
				return err
			}
			err := p.ready(ctx, tlsCfg)
			if err == nil {
				log.Info("restarted", "service", p.name, "addr", p.addr, "pid", p.pid())
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("restart failed", "service", p.name, "err", err)
			p.stop(log)
			p.err = err
		}
	}
}

func waitHealthy(ctx context.Context, p *proc, tlsCfg *tls.Config) error {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		default:
		}
		if last = probe(ctx, p, tlsCfg); last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last == nil {
		last = errors.New("no answer")
	}
	return last
}
