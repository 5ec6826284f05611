//go:build !linux

package main

import "syscall"

// childAttr: outside Linux there is no parent-death signal; the services
// stay in ozdev's process group so a terminal's signals still reach them.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

// fileLocked cannot tell outside Linux; the port check still runs.
func fileLocked(string) (bool, error) { return false, nil }
