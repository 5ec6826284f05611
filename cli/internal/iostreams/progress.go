package iostreams

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// ProgressEvery is how often a progress line is redrawn: a few times a
// second reads as live without flooding a slow terminal.
const ProgressEvery = 250 * time.Millisecond

// Progress is one line on standard error, redrawn in place, that tells a
// person at a terminal how a long operation goes: "exporting: 120000
// events (41000/s)", or with nothing counted "verifying on the server: 3s".
// It draws nothing before its first redraw, so an operation shorter than
// ProgressEvery shows nothing, and nothing at all when standard error is
// not a terminal: scripts and tests that capture it see no new output.
// A nil *Progress is a valid one that does nothing.
type Progress struct {
	w     io.Writer
	label string
	unit  string // "events"; empty: show the time elapsed only
	start time.Time
	n     atomic.Int64
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// Progress starts a progress line of label on standard error, counting
// unit ("events", or "" for none), if standard error is a terminal; else
// it returns nil, which does nothing. Call Stop when the operation ends,
// before printing anything else to standard error.
func (s *IOStreams) Progress(label, unit string) *Progress {
	if !s.StderrTTY {
		return nil
	}
	return StartProgress(s.ErrOut, label, unit, ProgressEvery)
}

// StartProgress draws a progress line on w every interval until Stop.
func StartProgress(w io.Writer, label, unit string, every time.Duration) *Progress {
	p := &Progress{w: w, label: label, unit: unit, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop(every)
	return p
}

// Add counts n more units done. Safe for concurrent use.
func (p *Progress) Add(n int64) {
	if p != nil {
		p.n.Add(n)
	}
}

// Stop ends the line: it is erased, so that what follows starts on a
// clean line. Stop waits for the redrawing to end; calling it again does
// nothing.
func (p *Progress) Stop() {
	if p == nil {
		return
	}
	p.once.Do(func() {
		close(p.stop)
		<-p.done
	})
}

func (p *Progress) loop(every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	drawn := false
	for {
		select {
		case <-p.stop:
			if drawn {
				fmt.Fprint(p.w, "\r\x1b[K") // erase the line
			}
			return
		case <-t.C:
			fmt.Fprint(p.w, "\r\x1b[K"+p.line(time.Since(p.start)))
			drawn = true
		}
	}
}

func (p *Progress) line(elapsed time.Duration) string {
	secs := elapsed.Round(time.Second)
	if p.unit == "" {
		return fmt.Sprintf("%s: %s", p.label, secs)
	}
	n := p.n.Load()
	rate := float64(n) / max(elapsed.Seconds(), 0.001)
	return fmt.Sprintf("%s: %d %s (%.0f/s, %s)", p.label, n, p.unit, rate, secs)
}
