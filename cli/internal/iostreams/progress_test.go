package iostreams_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// syncBuffer is a bytes.Buffer the progress goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgress(t *testing.T) {
	defer goleak.VerifyNone(t)
	var w syncBuffer
	p := iostreams.StartProgress(&w, "exporting", "events", 5*time.Millisecond)
	p.Add(1200)
	p.Add(34)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(w.String(), "exporting: 1234 events (") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.Stop()
	p.Stop() // twice is fine
	got := w.String()
	if !strings.Contains(got, "\r\x1b[Kexporting: 1234 events (") || !strings.Contains(got, "/s, ") {
		t.Errorf("got %q, want a line with the count and the rate", got)
	}
	if !strings.HasSuffix(got, "\r\x1b[K") {
		t.Errorf("got %q, want the line erased at the end", got)
	}
	if strings.Contains(got, "\n") {
		t.Errorf("got %q, want one line redrawn in place", got)
	}
}

func TestProgressElapsedOnly(t *testing.T) {
	defer goleak.VerifyNone(t)
	var w syncBuffer
	p := iostreams.StartProgress(&w, "verifying on the server", "", time.Millisecond)
	for !strings.Contains(w.String(), "verifying on the server: 0s") {
		time.Sleep(time.Millisecond)
	}
	p.Stop()
}

// Shorter than one interval: nothing drawn, nothing erased.
func TestProgressQuickOperation(t *testing.T) {
	defer goleak.VerifyNone(t)
	var w syncBuffer
	p := iostreams.StartProgress(&w, "exporting", "events", time.Hour)
	p.Add(5)
	p.Stop()
	if got := w.String(); got != "" {
		t.Errorf("got %q, want nothing", got)
	}
}

// Off a terminal there is no progress line: a nil one, which does nothing.
func TestProgressNotATerminal(t *testing.T) {
	ios, _, _, errOut := iostreams.Test()
	p := ios.Progress("exporting", "events")
	if p != nil {
		t.Fatalf("got a progress line with standard error not a terminal")
	}
	p.Add(3)
	p.Stop()
	if errOut.Len() != 0 {
		t.Errorf("got %q on standard error, want nothing", errOut)
	}
}
