package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPortOwnerFindsListener(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := portOwner(l.Addr().String()); got != os.Getpid() {
		t.Fatalf("portOwner = %d, want %d (this test)", got, os.Getpid())
	}
}

func TestCheckFreeNamesHolders(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	store := filepath.Join(t.TempDir(), "resolver.db")
	f, err := os.Create(store)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// bbolt holds an exclusive flock while a store is open.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	err = checkFree([]*proc{{name: "gateway", addr: l.Addr().String()}}, []string{store})
	if err == nil {
		t.Fatal("checkFree = nil while the port and the store are held")
	}
	me := describePid(os.Getpid())
	for _, want := range []string{"gateway address " + l.Addr().String() + " is in use by " + me,
		"store " + store + " is locked by " + me} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %q, want it to contain %q", err, want)
		}
	}

	// Released, both are free; a missing store is free too.
	l.Close()
	f.Close()
	if err := checkFree([]*proc{{name: "gateway", addr: l.Addr().String()}},
		[]string{store, store + ".missing"}); err != nil {
		t.Fatalf("checkFree after release = %v", err)
	}
}

func TestEmptyDataDir(t *testing.T) {
	for _, name := range []string{"", "secretstore.db", "resolver.db", "audit.db", "oz-manifest.json"} {
		t.Run("With"+name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "pki"), 0o700); err != nil {
				t.Fatal(err)
			}
			if name != "" {
				if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got, want := emptyDataDir(dir), name == ""; got != want {
				t.Fatalf("emptyDataDir = %v, want %v", got, want)
			}
		})
	}
}

func TestBackoffDoublesToMax(t *testing.T) {
	p := restartPolicy{base: time.Second, max: 5 * time.Second}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 40: 5 * time.Second} {
		if got := p.backoff(n); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestParseFlagsRejectsBadPolicy(t *testing.T) {
	for _, args := range [][]string{{"--max-restarts", "-1"}, {"--restart-backoff", "0s"}} {
		_, err := parseFlags(args, func(string) string { return "" }, os.Stderr)
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("parseFlags(%v) = %v, want an error naming %s", args, err, args[0])
		}
	}
}

// Two services on one address: refused before anything starts, naming both
// flags (a test harness once handed the resolver and the secretstore the
// same free port, and ozdev started the resolver and then waited for a
// secretstore that could not bind).
func TestParseFlagsRejectsSharedAddress(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{args: []string{"--resolver-addr", "127.0.0.1:4000", "--secretstore-addr", "127.0.0.1:4000"},
			want: []string{"--resolver-addr", "--secretstore-addr", "127.0.0.1:4000"}},
		{env: map[string]string{"OZ_AUDIT_LISTEN": "127.0.0.1:7443"},
			want: []string{"--gateway-addr", "--audit-addr", "127.0.0.1:7443"}},
	} {
		_, err := parseFlags(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("parseFlags(%v, %v) = %v, want an error naming %s", tt.args, tt.env, err, w)
			}
		}
	}
	if _, err := parseFlags(nil, func(string) string { return "" }, io.Discard); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}
