package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/lib/etcdtest"
	"github.com/ozsecrets/oz/lib/flagenv"
	auditkv "github.com/ozsecrets/oz/services/audit/kvstore"
	"github.com/ozsecrets/oz/services/internal/kv"
	resolverbolt "github.com/ozsecrets/oz/services/internal/kv/boltkv"
	resolveretcd "github.com/ozsecrets/oz/services/internal/kv/etcdkv"
	secretkv "github.com/ozsecrets/oz/services/secretstore/kvstore"
)

func TestNamespaces(t *testing.T) {
	for name, want := range map[string]string{
		"resolver":    resolveretcd.Namespace,
		"audit":       auditkv.Namespace,
		"secretstore": secretkv.Namespace,
	} {
		if got := services[name].namespace; got != want {
			t.Errorf("%s: got namespace %q, want %q (the one its daemon opens)", name, got, want)
		}
	}
}

func TestFlags(t *testing.T) {
	const etcd = "etcd:http://127.0.0.1:2379"
	tests := []struct {
		name string
		args []string
		want string // in the usage error
	}{
		{"ServiceRequired", []string{"--from", "bolt:a.db", "--to", etcd}, "--service: required"},
		{"ServiceUnknown", []string{"--service", "gateway", "--from", "bolt:a.db", "--to", etcd}, `--service "gateway": want secretstore, resolver or audit`},
		{"FromRequired", []string{"--service", "audit", "--to", etcd}, "--from: required"},
		{"ToRequired", []string{"--service", "audit", "--from", "bolt:a.db"}, "--to: required"},
		{"BothBolt", []string{"--service", "audit", "--from", "bolt:a.db", "--to", "bolt:b.db"},
			"--from bolt:… and --to bolt:…: one must be bolt:PATH and the other etcd:"},
		{"BothEtcd", []string{"--service", "audit", "--from", etcd, "--to", "etcd:http://127.0.0.1:2380"},
			"--from etcd:… and --to etcd:…: one must be"},
		{"FromUnknownKind", []string{"--service", "audit", "--from", "file:a.db", "--to", etcd},
			`--from: unknown kind of store "file": want bolt:PATH or etcd:`},
		{"ToNoPath", []string{"--service", "audit", "--from", etcd, "--to", "bolt:"}, "--to: bolt:PATH needs the path of a file"},
		{"ToBadEndpoint", []string{"--service", "audit", "--from", "bolt:a.db", "--to", "etcd:127.0.0.1:2379"},
			"--to: endpoint 1: must be http://HOST:PORT or https://HOST:PORT"},
		{"TLSWithHTTP", []string{"--service", "audit", "--from", "bolt:a.db", "--to", etcd, "--store-tls-ca", "ca.pem"},
			"--store-tls-ca (OZ_STORE_TLS_CA): needs https:// endpoints"},
		{"CertWithoutKey", []string{"--service", "audit", "--from", "etcd:https://e:2379", "--to", "bolt:a.db", "--store-tls-cert", "c.pem"},
			"give both or neither"},
		{"Argument", []string{"--service", "audit", "--from", "bolt:a.db", "--to", etcd, "extra"}, `unexpected argument "extra"`},
		{"UnknownFlag", []string{"--store", "bolt:a.db"}, "flag provided but not defined: -store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(tt.args, func(string) string { return "" }, &bytes.Buffer{})
			if !flagenv.IsUsage(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want a usage error containing %q", err, tt.want)
			}
		})
	}

	t.Run("TLSGoesToTheEtcdSide", func(t *testing.T) {
		env := map[string]string{"OZ_STORE_TLS_CA": "ca.pem"}
		c, err := parse([]string{"--service", "resolver", "--from", "bolt:a.db", "--to", "etcd:https://e:2379"},
			func(k string) string { return env[k] }, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if c.to.TLS.CA != "ca.pem" || c.from.TLS.CA != "" || !c.boltFirst {
			t.Errorf("got from %+v, to %+v; want the CA on the etcd side only", c.from, c.to)
		}
	})
}

// buildBinary builds ozmigrate into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ozmigrate")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type result struct {
	code           int
	stdout, stderr string
}

func runBinary(t *testing.T, bin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "OZ_STORE_TLS_CA=", "OZ_STORE_TLS_CERT=", "OZ_STORE_TLS_KEY=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
}

// recordValue is the value of record i; it must never be printed.
func recordValue(i int) []byte { return fmt.Appendf(nil, "VALUE-never-printed-%03d\x00\xff", i) }

// writeResolverFile writes n records through the resolver's bbolt store.
func writeResolverFile(t *testing.T, path string, n int) {
	t.Helper()
	s, err := resolverbolt.Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var writes []kv.Write
	for i := range n {
		writes = append(writes, kv.Write{Key: fmt.Sprintf("rec/%03d", i), Value: recordValue(i)})
	}
	for chunk := range slices.Chunk(writes, 100) {
		if err := s.Apply(context.Background(), nil, chunk); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBinary(t *testing.T) {
	bin := buildBinary(t)
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	etcd := "etcd:" + strings.Join(srv.Endpoints(), ",")
	dir := t.TempDir()
	src := filepath.Join(dir, "resolver.db")
	writeResolverFile(t, src, 150)
	const summary = "151 keys in 2 buckets" // the records and meta/schema

	check := func(t *testing.T, r result, code int, stdout, stderr string) {
		t.Helper()
		t.Logf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		if r.code != code || !strings.Contains(r.stdout, stdout) || !strings.Contains(r.stderr, stderr) {
			t.Errorf("got exit %d, stdout %q, stderr %q; want exit %d, stdout containing %q, stderr %q",
				r.code, r.stdout, r.stderr, code, stdout, stderr)
		}
		if strings.Contains(r.stdout+r.stderr, "VALUE-never-printed") {
			t.Error("the output holds a value")
		}
	}

	t.Run("Help", func(t *testing.T) {
		check(t, runBinary(t, bin, "--help"), 0, "", "Exit codes: 0 success, 1 failure, 2 bad usage.")
	})
	t.Run("BadFlags", func(t *testing.T) {
		check(t, runBinary(t, bin, "--from", "bolt:"+src, "--to", etcd), 2, "", "ozmigrate: --service: required")
		check(t, runBinary(t, bin, "--service", "resolver", "--from", "bolt:"+src, "--to", "bolt:x.db"), 2, "",
			"one must be bolt:PATH and the other etcd:")
		check(t, runBinary(t, bin, "--service", "resolver", "--from", "bolt:"+src, "--to", "etcd:localhost"), 2, "",
			"--to: endpoint 1: must be http://HOST:PORT")
	})
	t.Run("MissingSource", func(t *testing.T) {
		check(t, runBinary(t, bin, "--service", "resolver", "--from", "bolt:"+filepath.Join(dir, "nope.db"), "--to", etcd), 1, "",
			"no such file")
	})
	t.Run("LockedSource", func(t *testing.T) {
		s, err := resolverbolt.Open(src, 0) // as a running ozresolverd would
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		check(t, runBinary(t, bin, "--service", "resolver", "--from", "bolt:"+src, "--to", etcd), 1, "",
			"the file is locked by another process: stop the service first (ozresolverd)")
	})
	t.Run("DryRunToEtcd", func(t *testing.T) {
		check(t, runBinary(t, bin, "--service", "resolver", "--from", "bolt:"+src, "--to", etcd, "--dry-run"), 0,
			"dry run: would copy "+summary, "")
		if n := countKeys(t, cli, "/oz/"); n != 0 {
			t.Errorf("etcd holds %d keys after a dry run, want 0", n)
		}
	})
	t.Run("BoltToEtcd", func(t *testing.T) {
		r := runBinary(t, bin, "--service", "resolver", "--from", "bolt:"+src, "--to", etcd)
		check(t, r, 0, "copied "+summary, "")
		if !strings.Contains(r.stdout, "; verified\n") || !strings.Contains(r.stdout, "digest sha256:") {
			t.Errorf("stdout %q: want the digest and \"verified\"", r.stdout)
		}
		if n := countKeys(t, cli, resolveretcd.Namespace); n != 151 {
			t.Errorf("etcd holds %d keys under %s, want 151", n, resolveretcd.Namespace)
		}
	})
	t.Run("NotEmptyEtcd", func(t *testing.T) {
		check(t, runBinary(t, bin, "--service", "resolver", "--from", "bolt:"+src, "--to", etcd), 1, "",
			"etcd holds 151 keys under /oz/resolver/: copy only into an empty namespace")
	})
	back := filepath.Join(dir, "new", "resolver.db")
	t.Run("DryRunToBolt", func(t *testing.T) {
		check(t, runBinary(t, bin, "--service", "resolver", "--from", etcd, "--to", "bolt:"+back, "--dry-run"), 0,
			"dry run: would copy "+summary, "")
		if _, err := os.Stat(back); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a dry run made %s: %v", back, err)
		}
	})
	t.Run("EtcdToBolt", func(t *testing.T) {
		check(t, runBinary(t, bin, "--service", "resolver", "--from", etcd, "--to", "bolt:"+back), 0, "copied "+summary, "")
		s, err := resolverbolt.Open(back, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		kvs, err := s.Scan(context.Background(), "rec/", "", 0)
		if err != nil || len(kvs) != 150 || !bytes.Equal(kvs[7].Value, recordValue(7)) {
			t.Errorf("the resolver reads %d records from the copy (%v), want the 150 written", len(kvs), err)
		}
	})
	t.Run("NotEmptyBolt", func(t *testing.T) {
		check(t, runBinary(t, bin, "--service", "resolver", "--from", etcd, "--to", "bolt:"+src), 1, "",
			"--to bolt:"+src+": destination not empty")
	})
	t.Run("EmptySource", func(t *testing.T) {
		out := filepath.Join(dir, "audit.db")
		check(t, runBinary(t, bin, "--service", "audit", "--from", etcd, "--to", "bolt:"+out), 1, "",
			"holds no key under /oz/audit/: nothing to copy")
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused copy made %s: %v", out, err)
		}
	})
}

// countKeys counts the keys under prefix.
func countKeys(t *testing.T, cli *clientv3.Client, prefix string) int64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}
