package main

import (
	"errors"
	"os"
	"syscall"
)

// childAttr keeps a service in ozdev's process group (so a terminal's Ctrl-C
// or SIGHUP reaches it too) and has the kernel send it SIGTERM when the
// thread that started it exits — which, because children are started from
// one locked thread (see spawner), is when ozdev itself exits, even by
// SIGKILL.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// fileLocked reports whether another process holds bbolt's lock on path
// (bbolt takes an exclusive flock on the database file while it is open).
// A missing file is not locked.
func fileLocked(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return false, syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
