// Package tmpfstest gives a test a small filesystem of its own to fill, for
// testing what a program does when its disk is full: a tmpfs of a chosen
// size (Mount), and a file that takes all of its space (Fill).
//
// The tmpfs is mounted in a mount namespace of its own, held by a small
// process (unshare(1) running sh and cat): nothing is mounted on the
// machine, nothing is left mounted when the test ends, however it ends,
// and no privilege is needed where unprivileged user namespaces are
// enabled (as root none is needed at all). The test and every process it
// starts reach the tmpfs through /proc/<pid>/root of that holder, which
// leads into its namespace: Mount returns such a path.
//
//	dir := tmpfstest.Mount(t, 8<<20)   // 8 MiB
//	… start the program with its data in dir …
//	filler := tmpfstest.Fill(t, dir)   // the disk is full
//	… writes fail, reads work …
//	os.Remove(filler)                  // space is back
package tmpfstest

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Fill writes the file dir/filler until the filesystem holding dir has no
// space left (a write fails with ENOSPC), and returns its path: remove it
// to give the space back. Any other failure fails the test.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatalf("tmpfstest: fill: %v", err)
	}
	defer f.Close()
	// Large writes first, then ever smaller ones, so that not even a
	// page is left.
	buf := make([]byte, 1<<20)
	for chunk := len(buf); chunk >= 512; chunk /= 4 {
		for {
			_, err := f.Write(buf[:chunk])
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatalf("tmpfstest: fill %s: %v", path, err)
			}
		}
	}
	return path
}
