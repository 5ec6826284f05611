package outbox

import (
	"testing"
	"time"
)

// TestCursor: reads start at the first key until something is
// acknowledged and every SweepEvery; otherwise Margin below the greatest
// acknowledged key, or at the first key the last read returned when that
// is lower.
func TestCursor(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := Cursor{Margin: 10, SweepEvery: time.Second}
	step := func(now time.Time, wantFrom uint64, wantSweep bool) {
		t.Helper()
		if from, sweep := c.From(now); from != wantFrom || sweep != wantSweep {
			t.Fatalf("From(%v) = %d, %v; want %d, %v", now.Sub(t0), from, sweep, wantFrom, wantSweep)
		}
	}
	step(t0, 0, true) // nothing acknowledged yet
	c.Read(100, 3)
	c.Acked(100)
	c.Acked(105)
	c.Acked(102) // out of order: the greatest counts
	step(t0.Add(time.Millisecond), 95, false)
	c.Read(0, 0) // the last read returned nothing
	step(t0.Add(2*time.Millisecond), 95, false)
	c.Read(50, 2) // a late event the read found and has not been acknowledged
	step(t0.Add(3*time.Millisecond), 50, false)
	c.Read(200, 1)
	step(t0.Add(4*time.Millisecond), 95, false)
	step(t0.Add(time.Second), 0, true) // a sweep
	step(t0.Add(time.Second+time.Millisecond), 95, false)
	c.Acked(5) // below the margin: nothing changes
	step(t0.Add(time.Second+2*time.Millisecond), 95, false)
}
