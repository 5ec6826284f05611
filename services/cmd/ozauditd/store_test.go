package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/etcdtest"
	"github.com/ozsecrets/oz/lib/flagenv"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/audit/kvstore"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/internal/storeflag"
)

func etcdEvent(i int) *auditv1.Event {
	return &auditv1.Event{
		Id: fmt.Sprintf("secretstore-etcd-%d", i), Time: timestamppb.Now(), Action: "secret.create", Team: "acme",
		Resource: fmt.Sprintf("teams/acme/secrets/K%d", i), Outcome: auditv1.Outcome_OUTCOME_OK,
		Actor: &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/alice", Client: "cli"},
	}
}

func appendEvents(t *testing.T, c *grpcConn, evs ...*auditv1.Event) *internalapiv1.AppendEventsResponse {
	t.Helper()
	resp, err := c.ingest.AppendEvents(context.Background(), &internalapiv1.AppendEventsRequest{Events: evs})
	if err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	return resp
}

// TestServeEtcd: with --store etcd:…, the log lives in etcd: it survives a
// restart, and two replicas on one etcd, appending at once (some events
// through both), keep one chain that verifies, each event in it once.
func TestServeEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	data := t.TempDir()
	dir := pki.Dir(filepath.Join(data, "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	resolver := startResolver(t, dir)
	args := []string{"--data-dir", data, "--resolver-addr", resolver, "--store", "etcd:" + srv.Endpoints()[0]}
	d := startDaemon(t, args...)
	ss := dial(t, dir, "secretstore", d.addrs.GRPC.String())
	if resp := appendEvents(t, ss, etcdEvent(1), etcdEvent(2), etcdEvent(1)); resp.GetAppended() != 2 || resp.GetDuplicates() != 1 {
		t.Fatalf("AppendEvents: got %v, want 2 appended, 1 duplicate", resp)
	}
	if err := d.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "audit.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("audit.db: got %v, want no bbolt file with --store etcd", err)
	}
	cli := srv.Client(t)
	if resp, err := cli.Get(context.Background(), kvstore.Namespace+"records/heads/teams/acme"); err != nil || len(resp.Kvs) != 1 {
		t.Errorf("head of acme in etcd: got %v, %v; want it under %s", resp, err, kvstore.Namespace)
	}

	// Restarted, and a second replica beside it.
	d = startDaemon(t, args...)
	d2 := startDaemon(t, args...)
	conns := []*grpcConn{
		dial(t, dir, "secretstore", d.addrs.GRPC.String()),
		dial(t, dir, "secretstore", d2.addrs.GRPC.String()),
	}
	if resp := appendEvents(t, conns[1], etcdEvent(2), etcdEvent(3)); resp.GetAppended() != 1 || resp.GetDuplicates() != 1 {
		t.Fatalf("after restart: got %v, want 1 appended, 1 duplicate", resp)
	}
	var wg sync.WaitGroup
	for r, c := range conns {
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := range 5 {
					own := etcdEvent(100 + 100*(3*r+g) + round)
					shared := etcdEvent(10 + round) // sent by every goroutine
					if _, err := c.ingest.AppendEvents(context.Background(), &internalapiv1.AppendEventsRequest{Events: []*auditv1.Event{shared, own}}); err != nil {
						t.Errorf("replica %d: AppendEvents: %v", r, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	const want = 3 + 5 + 2*3*5 // before, shared, own

	for r, addr := range []string{d.addrs.GRPC.String(), d2.addrs.GRPC.String()} {
		gw := dial(t, dir, "gateway", addr)
		v, err := gw.audit.VerifyChain(as("tok-alice"), &auditv1.VerifyChainRequest{Parent: "teams/acme"})
		if err != nil || !v.GetValid() || v.GetHead().GetSeq() != want {
			t.Fatalf("replica %d: VerifyChain got %v, %v; want %d valid events", r, v, err, want)
		}
		var ids []string
		req := &auditv1.ListEventsRequest{Parent: "teams/acme", PageSize: 1000}
		list, err := gw.audit.ListEvents(as("tok-alice"), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range list.GetEvents() {
			ids = append(ids, ev.GetId())
		}
		slices.Sort(ids)
		distinct := len(slices.Compact(slices.Clone(ids)))
		if len(ids) != want || distinct != want {
			t.Errorf("replica %d: got %d events (%d distinct), want %d once each", r, len(ids), distinct, want)
		}
	}
}

func TestStoreFlags(t *testing.T) {
	lookup := func(env map[string]string) func(string) string {
		return func(k string) string { return env[k] }
	}
	c, err := parse("ozauditd", []string{"--store", "etcd:http://127.0.0.1:2379,http://127.0.0.2:2379"}, lookup(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if st := c.daemon.Store; st.Kind != storeflag.Etcd || !slices.Equal(st.Endpoints, []string{"http://127.0.0.1:2379", "http://127.0.0.2:2379"}) || st.Path != "" {
		t.Errorf("--store etcd: got %+v; want the two endpoints and no db", st)
	}
	c, err = parse("ozauditd", []string{"--store", "bolt:/x/audit.db"}, lookup(nil), io.Discard)
	if err != nil || c.daemon.Store.Kind != storeflag.Bolt || c.daemon.Store.Path != "/x/audit.db" {
		t.Errorf("--store bolt: got %+v, %v; want db /x/audit.db", c, err)
	}
	c, err = parse("ozauditd", nil, lookup(map[string]string{"OZ_STORE": "etcd:https://etcd:2379", "OZ_STORE_TLS_CA": "/ca.pem"}), io.Discard)
	if err != nil || c.daemon.Store.Kind != storeflag.Etcd || c.daemon.Store.TLS.CA != "/ca.pem" {
		t.Errorf("OZ_STORE: got %+v, %v; want etcd with its CA", c, err)
	}
	for name, args := range map[string][]string{
		"DBAndStore":  {"--db", "/a.db", "--store", "etcd:http://127.0.0.1:2379"},
		"TLSOverHTTP": {"--store", "etcd:http://127.0.0.1:2379", "--store-tls-ca", "/ca.pem"},
		"UnknownKind": {"--store", "mysql:x"},
	} {
		if _, err := parse("ozauditd", args, lookup(nil), io.Discard); !flagenv.IsUsage(err) {
			t.Errorf("%s: got %v, want a usage error", name, err)
		}
	}
}

// TestServeUpgradesLayout1: an audit.db written by the build before
// package kvstore (layout 1, testdata of audit/kvstore) is upgraded on the
// first start: the chain verifies with the head it had, and goes on.
func TestServeUpgradesLayout1(t *testing.T) {
	data := t.TempDir()
	dir := pki.Dir(filepath.Join(data, "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	fixtures := filepath.Join("..", "..", "audit", "kvstore", "testdata", "layout1")
	gunzip(t, filepath.Join(fixtures, "audit.db.gz"), filepath.Join(data, "audit.db"))
	var chains []struct {
		Team string `json:"team"`
		Head struct {
			Seq  int64  `json:"seq"`
			Hash string `json:"hash"` // hex
		} `json:"head"`
	}
	var raw bytes.Buffer
	gunzipTo(t, filepath.Join(fixtures, "chains.json.gz"), &raw)
	if err := json.Unmarshal(raw.Bytes(), &chains); err != nil {
		t.Fatal(err)
	}
	i := 0
	for chains[i].Team != "acme" {
		i++
	}
	want := chains[i].Head

	d := startDaemon(t, "--data-dir", data, "--resolver-addr", startResolver(t, dir))
	gw := dial(t, dir, "gateway", d.addrs.GRPC.String())
	v, err := gw.audit.VerifyChain(as("tok-alice"), &auditv1.VerifyChainRequest{Parent: "teams/acme"})
	if err != nil || !v.GetValid() || v.GetHead().GetSeq() != want.Seq || hex.EncodeToString(v.GetHead().GetHash()) != want.Hash {
		t.Fatalf("VerifyChain of the upgraded log: got %v, %v; want valid, head %d %s", v, err, want.Seq, want.Hash)
	}
	ss := dial(t, dir, "secretstore", d.addrs.GRPC.String())
	appendEvents(t, ss, etcdEvent(1))
	v, err = gw.audit.VerifyChain(as("tok-alice"), &auditv1.VerifyChainRequest{Parent: "teams/acme"})
	if err != nil || !v.GetValid() || v.GetHead().GetSeq() != want.Seq+1 {
		t.Errorf("after an append: got %v, %v; want %d valid events", v, err, want.Seq+1)
	}
}

func gunzip(t *testing.T, from, to string) {
	t.Helper()
	f, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	gunzipTo(t, from, f)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func gunzipTo(t *testing.T, from string, w io.Writer) {
	t.Helper()
	f, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, zr); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeCommand: an etcd namespace of the build before package
// kvstore (layout 1) is refused, naming the command that upgrades it;
// `ozauditd upgrade` upgrades it, once; then the service serves it.
func TestUpgradeCommand(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	var dump struct {
		Namespace string `json:"namespace"`
		KVs       []struct {
			Key   string `json:"key"`   // hex
			Value string `json:"value"` // hex
		} `json:"kvs"`
	}
	var raw bytes.Buffer
	gunzipTo(t, filepath.Join("..", "..", "audit", "kvstore", "testdata", "layout1", "etcd.json.gz"), &raw)
	if err := json.Unmarshal(raw.Bytes(), &dump); err != nil {
		t.Fatal(err)
	}
	for _, e := range dump.KVs {
		k, _ := hex.DecodeString(e.Key)
		v, _ := hex.DecodeString(e.Value)
		if _, err := cli.Put(context.Background(), string(k), string(v)); err != nil {
			t.Fatal(err)
		}
	}
	data := t.TempDir()
	dir := pki.Dir(filepath.Join(data, "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	store := "etcd:" + srv.Endpoints()[0]
	args := []string{"--data-dir", data, "--resolver-addr", startResolver(t, dir), "--store", store}
	lookup := func(string) string { return "" }
	log := slog.New(slog.DiscardHandler)

	ctx, cancel := context.WithCancel(context.Background())
	err := run(ctx, args, lookup, io.Discard, log, func(server.Addrs) { t.Error("served a namespace of layout 1"); cancel() })
	cancel()
	if err == nil || !strings.Contains(err.Error(), "ozauditd upgrade --store "+store) {
		t.Fatalf("run before the upgrade: got %v, want a refusal naming the command", err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), append([]string{"upgrade"}, args...), lookup, &out, log, nil); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if !strings.Contains(out.String(), "carried over 305 events") {
		t.Errorf("upgrade printed %q; want what it carried over", out.String())
	}
	out.Reset()
	if err := run(context.Background(), append([]string{"upgrade"}, args...), lookup, &out, log, nil); err != nil || !strings.Contains(out.String(), "nothing to upgrade") {
		t.Errorf("upgrade again: got %v, %q; want nothing to upgrade", err, out.String())
	}

	d := startDaemon(t, args...)
	gw := dial(t, dir, "gateway", d.addrs.GRPC.String())
	v, err := gw.audit.VerifyChain(as("tok-alice"), &auditv1.VerifyChainRequest{Parent: "teams/acme"})
	if err != nil || !v.GetValid() || v.GetHead().GetSeq() != 61 {
		t.Errorf("VerifyChain after the upgrade: got %v, %v; want 61 valid events", v, err)
	}
}
