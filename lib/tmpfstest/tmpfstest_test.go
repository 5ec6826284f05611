package tmpfstest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ozsecrets/oz/lib/tmpfstest"
)

func TestMountFill(t *testing.T) {
	dir := tmpfstest.Mount(t, 1<<20)
	if free := tmpfstest.Free(t, dir); free <= 0 || free > 1<<20 {
		t.Fatalf("free on a new 1 MiB tmpfs: got %d bytes, want (0, 1 MiB]", free)
	}
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o600); err != nil {
		t.Fatalf("write on the tmpfs: %v", err)
	}
	filler := tmpfstest.Fill(t, dir)
	if free := tmpfstest.Free(t, dir); free != 0 {
		t.Errorf("free after Fill: got %d bytes, want 0", free)
	}
	if err := os.WriteFile(filepath.Join(dir, "b"), make([]byte, 8192), 0o600); err == nil {
		t.Errorf("write of 8 KiB on a full tmpfs: got no error, want ENOSPC")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b"), make([]byte, 8192), 0o600); err != nil {
		t.Errorf("write after removing the filler: %v", err)
	}
}
