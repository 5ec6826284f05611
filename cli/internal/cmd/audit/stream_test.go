package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// stepClock is a clock that moves on by step at every reading: an
// operation that reads it at its start and its end took step.
func stepClock(step time.Duration) func() time.Time {
	var mu sync.Mutex
	t := testNow
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(step)
		return t
	}
}

// generatedChain serves an ExportEvents of n events of acme, each page
// made when asked for and linked to the one before, so that the server
// side holds one page at a time. At every page it records the heap in
// use after a collection: the client's, in this process, which must not
// grow with the chain.
type generatedChain struct {
	n        int64
	head     auditchain.Head
	peakHeap uint64
}

func (g *generatedChain) export(r *auditv1.ExportEventsRequest) (*auditv1.ExportEventsResponse, error) {
	from := int64(1)
	if r.GetPageToken() != "" {
		fmt.Sscan(r.GetPageToken(), &from)
	}
	if from != g.head.Seq+1 {
		return nil, fmt.Errorf("page from seq %d, want %d: the client skipped or repeated a page", from, g.head.Seq+1)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	g.peakHeap = max(g.peakHeap, ms.HeapAlloc)

	size := int64(r.GetPageSize())
	if size == 0 {
		size = 500
	}
	resp := &auditv1.ExportEventsResponse{Head: &auditv1.ChainHead{Chain: r.GetParent(), Seq: g.n}}
	for seq := from; seq < from+size && seq <= g.n; seq++ {
		ev := &auditv1.Event{
			Id: fmt.Sprintf("secretstore-e-%d", seq), Time: timestamppb.New(testNow),
			Actor:  &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/alice", Client: "cli"},
			Action: "secret.update", Resource: "teams/acme/secrets/API_KEY", Team: "acme",
			Outcome: auditv1.Outcome_OUTCOME_OK, Details: map[string]string{"value_version": fmt.Sprint(seq)},
			AppendTime: timestamppb.New(testNow),
		}
		g.head = g.head.Link(ev)
		resp.Events = append(resp.Events, ev)
	}
	if g.head.Seq < g.n {
		resp.NextPageToken = fmt.Sprint(g.head.Seq + 1)
	}
	return resp, nil
}

// An export of 10N events holds no more memory than one of N: each page
// is written out and dropped. The offline verify of the file (which reads
// it line by line) counts every event and reports a rate.
func TestExportStreamsInConstantMemory(t *testing.T) {
	const small, large = 2_000, 20_000
	peak := map[int64]uint64{}
	for _, n := range []int64{small, large} {
		g := &generatedChain{n: n}
		d, out, errOut := serve(t, &fakeAudit{teams: []string{"acme"}, export: g.export})
		d.IO.StderrTTY = true // the summary with the rate
		d.Now = stepClock(2 * time.Second)
		file := filepath.Join(t.TempDir(), "export.jsonl")
		if err := runExport(context.Background(), &ExportOptions{Deps: d, OutputFile: file}); err != nil {
			t.Fatalf("export of %d events: %v", n, err)
		}
		if want := fmt.Sprintf("Exported %d events of teams/acme to %s in 2.00s (%d events/s); the chain verifies.", n, file, n/2); !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr %q: want %q", errOut, want)
		}
		peak[n] = g.peakHeap

		d.Now = stepClock(4 * time.Second)
		d.IO.StderrTTY = false
		out.Reset()
		if err := runVerify(context.Background(), &VerifyOptions{Deps: d, File: file, Output: cmdutil.FormatJSON}); err != nil {
			t.Fatalf("verify --file of %d events: %v", n, err)
		}
		var got verifyResult
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if !got.Valid || got.VerifiedEvents != n || got.Head.Seq != n || got.Seconds != 4 || got.EventsPerSecond != float64(n/4) {
			t.Errorf("verify --file of %d events: got %+v, want valid, %d events in 4s, %d events/s", n, got, n, n/4)
		}
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d events: export %d bytes, peak heap in use %d KiB", n, fi.Size(), g.peakHeap>>10)
	}
	// Holding the 18,000 more events would take well over 8 MiB (about
	// 1 KiB each, decoded); a page of 500 is well under it.
	if grew := int64(peak[large]) - int64(peak[small]); grew > 8<<20 {
		t.Errorf("peak heap grew by %d KiB from %d to %d events: the export holds the chain in memory", grew>>10, small, large)
	}
}

// --output json carries the count, the time and the rate of a verify on
// the server.
func TestVerifyOnServerRateJSON(t *testing.T) {
	f := &fakeAudit{teams: []string{"acme"}, verify: func(*auditv1.VerifyChainRequest) (*auditv1.VerifyChainResponse, error) {
		return &auditv1.VerifyChainResponse{Valid: true, VerifiedEvents: 1_000_000, Head: &auditv1.ChainHead{Seq: 1_000_000, Hash: []byte{1}}}, nil
	}}
	d, out, _ := serve(t, f)
	d.Team, d.Now = "acme", stepClock(2500*time.Millisecond)
	if err := runVerify(context.Background(), &VerifyOptions{Deps: d, Output: cmdutil.FormatJSON}); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["verified_events"] != 1e6 || got["seconds"] != 2.5 || got["events_per_second"] != 400000.0 {
		t.Errorf("got %s, want verified_events 1000000, seconds 2.5, events_per_second 400000", out)
	}
}
