package etcdtest_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/lib/etcdtest"
)

func TestStart(t *testing.T) {
	c := etcdtest.Start(t)
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	resp, err := cli.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("Get: got %v, %v, want v", resp, err)
	}
	if a, b := etcdtest.Prefix(), etcdtest.Prefix(); a == b {
		t.Errorf("Prefix: got %q twice, want distinct prefixes", a)
	}
}

// TestClusterStopRestart: a three-member cluster keeps serving with one
// member stopped, and the member catches up when restarted; likewise with
// its leader killed.
func TestClusterStopRestart(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "before", "1"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	c.Stop(0)
	if c.Members[0].Running() {
		t.Errorf("member 0 runs after Stop")
	}
	if _, err := cli.Put(ctx, "during", "2"); err != nil {
		t.Fatalf("Put with a member stopped: %v", err)
	}
	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}

	// The restarted member alone serves both writes.
	cfg := c.Config()
	cfg.Endpoints = []string{c.Members[0].ClientURL}
	m0, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m0.Close()
	for _, key := range []string{"before", "during"} {
		resp, err := m0.Get(ctx, key, clientv3.WithSerializable())
		if err != nil || len(resp.Kvs) != 1 {
			t.Errorf("member 0 after restart, Get(%s): got %v, %v, want one value", key, resp, err)
		}
	}

	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Kill(leader)
	// The others elect a new leader: a write fails meanwhile.
	for {
		_, err := cli.Put(ctx, "after-kill", "3")
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Put with the leader killed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.Restart(leader); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Leader(ctx); err != nil || got < 0 || got >= len(c.Members) {
		t.Errorf("Leader after the restart: got %d, %v; want a member", got, err)
	}
}

// TestNew: a cluster started by New keeps its data in Dir, after Close too.
func TestNew(t *testing.T) {
	dir := t.TempDir()
	c, err := etcdtest.New(etcdtest.Config{Members: 1, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Dir != dir || len(c.Members) != 1 || !c.Members[0].Running() {
		t.Fatalf("got Dir %q, %d members; want %q, 1 running", c.Dir, len(c.Members), dir)
	}
	c.Close()
	if c.Members[0].Running() {
		t.Error("member runs after Close")
	}
	if _, err := os.Stat(filepath.Join(dir, "m0", "member")); err != nil {
		t.Errorf("data: %v", err)
	}
	if _, err := etcdtest.New(etcdtest.Config{Members: 0, Dir: dir}); err == nil {
		t.Error("New with no members: got no error")
	}
}
