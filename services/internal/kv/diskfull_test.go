package kv_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ozsecrets/oz/lib/tmpfstest"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/boltkv"
	"github.com/ozsecrets/oz/services/internal/kv/kvtest"
	"github.com/ozsecrets/oz/services/internal/storemetrics"
)

// TestOnDiskFull: a store on a disk that fills up (a real tmpfs) answers
// with the service's own words, "the secret store's disk is full", and
// the operator's log says where, once when writes start failing and once
// when they work again, never with a value.
func TestOnDiskFull(t *testing.T) {
	dir := tmpfstest.Mount(t, 1<<20)
	path := filepath.Join(dir, "secretstore.db")
	raw, err := boltkv.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	s := kv.Instrument(kv.OnDiskFull(raw, "the secret store", slog.New(slog.NewJSONHandler(&logs, nil))),
		nil, storemetrics.New(reg, "secretstore", "bolt"))
	ctx := context.Background()
	const canary = "canary-value-0d5e77"
	value := []byte(canary + strings.Repeat("v", 4000))

	filler := tmpfstest.Fill(t, dir)
	var refused []error
	for i := 0; len(refused) < 3 && i < 10000; i++ {
		if err := s.Apply(ctx, nil, []kv.Write{kv.Put(fmt.Sprintf("k/%05d", i), value)}); err != nil {
			refused = append(refused, err)
		}
	}
	if len(refused) < 3 {
		t.Fatalf("writes on a full disk: %d refused, want 3", len(refused))
	}
	for _, err := range refused {
		st := errs.ToStatus(err)
		if st.Code().String() != "ResourceExhausted" || st.Message() != "the secret store's disk is full" {
			t.Errorf("status: got %v %q, want ResourceExhausted %q", st.Code(), st.Message(), "the secret store's disk is full")
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("cause: got %v, want ENOSPC kept for the log", err)
		}
	}
	if n := strings.Count(logs.String(), `"msg":"store: disk full`); n != 1 {
		t.Errorf("disk-full log lines: got %d, want 1 for the episode:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"store":"`+path+`"`) {
		t.Errorf("the log does not name the file %s:\n%s", path, logs.String())
	}

	if n := diskFullCount(t, reg); n != uint64(len(refused)) {
		t.Errorf(`oz_store_operation_duration_seconds_count{outcome="disk_full"}: got %d, want %d`, n, len(refused))
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Apply(ctx, nil, []kv.Write{kv.Put(fmt.Sprintf("after/%d", i), value)}); err != nil {
			t.Fatalf("write after space came back: %v", err)
		}
	}
	if n := strings.Count(logs.String(), `"msg":"store: space is back`); n != 1 {
		t.Errorf("space-is-back log lines: got %d, want 1:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), canary) {
		t.Errorf("the log holds a value:\n%s", logs.String())
	}
}

// TestOnDiskFullConformance: the decorator changes nothing else.
func TestOnDiskFullConformance(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kv.Store {
		s, err := boltkv.Open(filepath.Join(t.TempDir(), "kv.db"), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return kv.OnDiskFull(s, "the secret store", nil)
	})
}

// diskFullCount is how many Applies the metrics counted as disk_full.
func diskFullCount(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["op"] == "Apply" && labels["outcome"] == "disk_full" {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}
