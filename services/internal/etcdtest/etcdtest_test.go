package etcdtest_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/services/internal/etcdtest"
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
// member stopped, and the member catches up when restarted.
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
	c.Restart(0)

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
}
