//go:build !linux

package runner

import (
	"errors"
	"os/exec"
)

// Harden does nothing outside Linux, where it makes the process
// non-dumpable (see harden_linux.go): it returns nil, and the runner's
// memory and environment are as open to the agent as the system leaves
// them to any process of the same user.
func Harden() error { return nil }

// CheckRunAs refuses: --as-user needs no_new_privs, which is Linux's.
func CheckRunAs(User) error {
	return errors.New("--as-user is supported on Linux only")
}

func startNoNewPrivs(cmd *exec.Cmd) error { return cmd.Start() }

// hasAccessACL reports false: ACLs are read on Linux only.
func hasAccessACL(string) (bool, error) { return false, nil }
