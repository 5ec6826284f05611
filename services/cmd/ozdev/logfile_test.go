package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/lib/tmpfstest"
)

// TestLogFileFallsBackToTerminal: a service's log lines go to its file;
// while the disk under it is full (a real tmpfs) they go to ozdev's own
// output instead, whole, with one notice; once there is room they go to
// the file again, with one notice. No line is lost and none is cut in two.
func TestLogFileFallsBackToTerminal(t *testing.T) {
	dir := tmpfstest.Mount(t, 256<<10)
	if err := os.Mkdir(filepath.Join(dir, "logs"), 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "logs", "secretstore.log")
	var term, logs bytes.Buffer
	w := openLogFile(path, "secretstore", &lockedWriter{w: &term}, slog.New(slog.NewTextHandler(&logs, nil)))
	clock := time.Unix(1e9, 0)
	w.now = func() time.Time { return clock }
	write := func(s string) {
		t.Helper()
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write: got %d, %v; want %d, nil", n, err, len(s))
		}
	}

	// A first line that fills the file's page exactly, so that the next
	// needs a page of its own (a tmpfs allocates whole pages).
	first := strings.Repeat("a", os.Getpagesize()-1)
	write(first[:10])
	write(first[10:] + "\n")
	filler := tmpfstest.Fill(t, dir)
	write("b1\nb2")
	write("\n")
	clock = clock.Add(time.Hour)
	write("b3\n") // tried on the file again: still full
	// A line longer than the room left: written in part, taken back, sent
	// whole to the terminal.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	leave(t, dir, 8<<10)
	long := strings.Repeat("x", 32<<10)
	clock = clock.Add(time.Hour)
	write(long + "\n")
	write("b4\n") // within retryFile of the last try: not tried
	if err := os.Remove(filepath.Join(dir, "filler2")); err != nil {
		t.Fatal(err)
	}
	write("b5\n") // still within retryFile: the terminal
	clock = clock.Add(retryFile)
	write("c1\n")
	write("c2 without newline")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := first + "\nc1\nc2 without newline\n"; string(got) != want {
		t.Errorf("log file: got %q, want %q", abbrev(string(got)), abbrev(want))
	}
	wantTerm := "secretstore: b1\nsecretstore: b2\nsecretstore: b3\nsecretstore: " + long + "\nsecretstore: b4\nsecretstore: b5\n"
	if term.String() != wantTerm {
		t.Errorf("terminal: got %q, want %q", abbrev(term.String()), abbrev(wantTerm))
	}
	if n := strings.Count(logs.String(), "logs/secretstore.log: disk full; writing to the terminal"); n != 1 {
		t.Errorf("disk-full notices: got %d, want 1:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "logs/secretstore.log: writing to the file again"); n != 1 {
		t.Errorf("back-to-file notices: got %d, want 1:\n%s", n, logs.String())
	}
}

// TestLogFileUnwritableAtStart: a log file that cannot even be created
// (a full disk, no inode left) starts on the terminal.
func TestLogFileUnwritableAtStart(t *testing.T) {
	var term, logs bytes.Buffer
	w := openLogFile(filepath.Join(t.TempDir(), "missing-dir", "audit.log"), "audit", &lockedWriter{w: &term}, slog.New(slog.NewTextHandler(&logs, nil)))
	if _, err := w.Write([]byte("line\n")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if term.String() != "audit: line\n" {
		t.Errorf("terminal: got %q, want %q", term.String(), "audit: line\n")
	}
	if !strings.Contains(logs.String(), "missing-dir/audit.log: ") || !strings.Contains(logs.String(), "writing to the terminal") {
		t.Errorf("no notice naming the file:\n%s", logs.String())
	}
}

// leave fills the filesystem of dir so that about free bytes are left.
func leave(t *testing.T, dir string, free int64) {
	t.Helper()
	n := tmpfstest.Free(t, dir) - free
	if err := os.WriteFile(filepath.Join(dir, "filler2"), make([]byte, n), 0o600); err != nil {
		t.Fatal(err)
	}
}

func abbrev(s string) string {
	s = strings.ReplaceAll(s, strings.Repeat("x", 32<<10), "x…(32 KiB)")
	return strings.ReplaceAll(s, strings.Repeat("a", os.Getpagesize()-1), "a…(a page)")
}
