package auditchain_test

import (
	"io"
	"runtime"
	"testing"

	"github.com/ozsecrets/oz/lib/auditchain"
)

// chainReader is an export of n events of one chain, made line by line as
// it is read, so that the only memory that may grow with n is the
// reader's. Every sampleEvery lines it records the heap in use after a
// collection.
type chainReader struct {
	t           *testing.T
	n, i        int
	head        auditchain.Head
	buf         []byte
	sampleEvery int
	peakHeap    uint64
}

func (r *chainReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.i == r.n {
			return 0, io.EOF
		}
		if r.i%r.sampleEvery == 0 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			r.peakHeap = max(r.peakHeap, ms.HeapAlloc)
		}
		ev := event("acme", r.i)
		r.head = r.head.Link(ev)
		line, err := auditchain.MarshalLine(ev)
		if err != nil {
			r.t.Fatal(err)
		}
		r.buf = line
		r.i++
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// VerifyExport reads an export line by line: verifying 10N events holds
// no more memory than verifying N, and every event is counted.
func TestVerifyExportConstantMemory(t *testing.T) {
	const small, large = 5_000, 50_000
	peak := map[int]uint64{}
	for _, n := range []int{small, large} {
		r := &chainReader{t: t, n: n, sampleEvery: 1000}
		rep, err := auditchain.VerifyExport(r)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Break != nil || rep.Verified != int64(n) || rep.Head.Seq != int64(n) || string(rep.Head.Hash) != string(r.head.Hash) {
			t.Fatalf("%d events: got %+v, want all verified, head seq %d", n, rep, n)
		}
		peak[n] = r.peakHeap
		t.Logf("%d events: peak heap in use %d KiB", n, r.peakHeap>>10)
	}
	// Holding the 45,000 more events would take tens of MiB.
	if grew := int64(peak[large]) - int64(peak[small]); grew > 4<<20 {
		t.Errorf("peak heap grew by %d KiB from %d to %d events: VerifyExport holds the chain in memory", grew>>10, small, large)
	}
}
