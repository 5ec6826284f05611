//go:build !linux

package tmpfstest

import (
	"runtime"
	"testing"
)

// Mount skips the test: a private tmpfs needs Linux.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	t.Skipf("tmpfstest: a private tmpfs needs Linux (mount namespaces); this is %s", runtime.GOOS)
	return ""
}

// Free is not known outside Linux.
func Free(t testing.TB, dir string) int64 {
	t.Helper()
	t.Skipf("tmpfstest: needs Linux; this is %s", runtime.GOOS)
	return 0
}
