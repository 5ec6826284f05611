package audit_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/audit/kvstore"
	"github.com/ozsecrets/oz/services/internal/auth"
)

// heapStore records, at every Range, the heap in use after a collection:
// what a reader of the chain holds between two pages.
type heapStore struct {
	audit.Store
	peak uint64
}

func (s *heapStore) Range(ctx context.Context, team string, from int64, limit int) ([]*auditv1.Event, error) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.peak = max(s.peak, ms.HeapAlloc)
	return s.Store.Range(ctx, team, from, limit)
}

// appendChain appends n valid events to team's chain, a full batch at a
// time.
func appendChain(t testing.TB, svc *audit.Service, team string, n int) {
	t.Helper()
	for done := 0; done < n; {
		batch := make([]*auditv1.Event, 0, min(audit.MaxBatch, n-done))
		for range cap(batch) {
			done++
			batch = append(batch, &auditv1.Event{
				Id: fmt.Sprintf("secretstore-%s-%07d", team, done), Time: timestamppb.New(reviewStart), Action: audit.ActionSecretUpdate,
				Team: team, Resource: fmt.Sprintf("teams/%s/secrets/S%d", team, done%50),
				Actor:   &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/alice", Client: "cli"},
				Outcome: auditv1.Outcome_OUTCOME_OK, Details: map[string]string{audit.DetailValueVersion: fmt.Sprint(done)},
			})
		}
		if _, err := svc.Append(context.Background(), "secretstore", batch); err != nil {
			t.Fatal(err)
		}
	}
}

// Verify and Export of a chain many pages long read it a page at a time:
// the heap they hold is the same for 10N events as for N.
func TestVerifyAndExportConstantMemory(t *testing.T) {
	var hs *heapStore
	svc, _ := witnessServiceOver(t, nil, func(s audit.Store) audit.Store { hs = &heapStore{Store: s}; return hs })
	const small, large = 2_000, 20_000
	appendChain(t, svc, "small", small)
	appendChain(t, svc, "large", large)
	admin := &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice",
		Teams: map[string]auth.Role{"small": auth.RoleAdmin, "large": auth.RoleAdmin}}
	ctx := context.Background()

	type peaks struct{ verify, export uint64 }
	got := map[int]peaks{}
	for _, tc := range []struct {
		team string
		n    int
	}{{"small", small}, {"large", large}} {
		parent := "teams/" + tc.team
		hs.peak = 0
		res, err := svc.Verify(ctx, admin, parent)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Valid || res.Verified != int64(tc.n) || res.Head.Seq != int64(tc.n) {
			t.Fatalf("verify %s: got valid %v, %d events, head %v; want valid, %d events", parent, res.Valid, res.Verified, res.Head, tc.n)
		}
		p := peaks{verify: hs.peak}

		// Export page by page, as the CLI does, each page written out and
		// dropped.
		hs.peak = 0
		v := auditchain.NewVerifier()
		token, pages := "", 0
		for {
			page, err := svc.Export(ctx, admin, parent, audit.MaxPageSize, token)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range page.Events {
				line, err := auditchain.MarshalLine(ev)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Discard.Write(line)
				if err := v.Check(ev); err != nil {
					t.Fatalf("export %s: %v", parent, err)
				}
			}
			pages++
			if token = page.NextPageToken; token == "" {
				break
			}
		}
		if v.Count() != int64(tc.n) || pages != tc.n/audit.MaxPageSize {
			t.Fatalf("export %s: got %d events in %d pages, want %d in %d", parent, v.Count(), pages, tc.n, tc.n/audit.MaxPageSize)
		}
		p.export = hs.peak
		got[tc.n] = p
		t.Logf("%d events: peak heap in use %d KiB verifying, %d KiB exporting", tc.n, p.verify>>10, p.export>>10)
	}
	// Holding the 18,000 more events would take well over 8 MiB (hundreds
	// of bytes each, decoded); a page of 1,000 is well under it.
	const bound = 8 << 20
	if grew := int64(got[large].verify) - int64(got[small].verify); grew > bound {
		t.Errorf("verify: peak heap grew by %d KiB from %d to %d events: it holds the chain in memory", grew>>10, small, large)
	}
	if grew := int64(got[large].export) - int64(got[small].export); grew > bound {
		t.Errorf("export: peak heap grew by %d KiB from %d to %d events: it holds the chain in memory", grew>>10, small, large)
	}
}

// BenchmarkVerify verifies a chain of 100,000 events on bbolt, as
// VerifyChain does; events/s is the rate `oz audit verify` may reach
// without the network.
func BenchmarkVerify(b *testing.B) {
	var svc *audit.Service
	kvs, _, err := kvstore.OpenBoltKV(filepath.Join(b.TempDir(), "audit.db"), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer kvs.Close()
	store, err := kvstore.New(context.Background(), kvs, kvstore.BoltOptions)
	if err != nil {
		b.Fatal(err)
	}
	svc = audit.NewService(audit.Config{Store: store})
	const n = 100_000
	appendChain(b, svc, "acme", n)
	admin := &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}}
	b.ResetTimer()
	for range b.N {
		res, err := svc.Verify(context.Background(), admin, "teams/acme")
		if err != nil || !res.Valid || res.Verified != n {
			b.Fatalf("got %+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

// tamperStore changes what Range returns of a chain, as an edit of the
// file would: the event at changed gets another detail, the one at
// removed is left out.
type tamperStore struct {
	audit.Store
	changed, removed int64
}

func (s *tamperStore) Range(ctx context.Context, team string, from int64, limit int) ([]*auditv1.Event, error) {
	evs, err := s.Store.Range(ctx, team, from, limit)
	out := evs[:0]
	for _, ev := range evs {
		switch ev.GetSeq() {
		case s.removed:
			continue
		case s.changed:
			ev.Details[audit.DetailValueVersion] = "1"
		}
		out = append(out, ev)
	}
	return out, err
}

// A broken link pages into the chain is found at its seq, and the
// verification stops there (its reader too: goroutines are not left).
func TestVerifyBreakPagesIn(t *testing.T) {
	ts := &tamperStore{}
	svc, _ := witnessServiceOver(t, nil, func(s audit.Store) audit.Store { ts.Store = s; return ts })
	appendChain(t, svc, "acme", 4_500)
	admin := &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}}
	for _, tc := range []struct {
		name             string
		changed, removed int64
		wantSeq          int64
		wantReason       string
	}{
		{"Changed", 2_345, 0, 2_345, "the event was changed"},
		{"Removed", 0, 3_001, 3_001, "an event is missing"},
		{"RemovedLast", 0, 4_500, 4_500, "removed from its end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts.changed, ts.removed = tc.changed, tc.removed
			before := runtime.NumGoroutine()
			res, err := svc.Verify(context.Background(), admin, "teams/acme")
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid || res.Break == nil || res.Break.Seq != tc.wantSeq || res.Verified != tc.wantSeq-1 || !strings.Contains(res.Break.Reason, tc.wantReason) {
				t.Fatalf("got valid %v, %d verified, break %+v; want a break at seq %d (%s), %d verified", res.Valid, res.Verified, res.Break, tc.wantSeq, tc.wantReason, tc.wantSeq-1)
			}
			for i := 0; runtime.NumGoroutine() > before && i < 100; i++ {
				time.Sleep(10 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > before {
				t.Errorf("%d goroutines after Verify, %d before: its reader was left running", n, before)
			}
		})
	}
}
