package timefmt_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/cli/internal/timefmt"
)

func TestRelative(t *testing.T) {
	loc := time.FixedZone("UTC-5", -5*3600)
	now := time.Date(2026, time.March, 15, 16, 30, 0, 0, loc)
	day := func(n int, h, m int) time.Time {
		return time.Date(2026, time.March, 15-n, h, m, 0, 0, loc)
	}
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		{"Zero", time.Time{}, "-"},
		{"TodayMorning", day(0, 10, 0), "10:00am"},
		{"TodayJustNow", day(0, 16, 29), "4:29pm"},
		{"TodayMidnight", day(0, 0, 5), "12:05am"},
		{"TodayNoon", day(0, 12, 0), "12:00pm"},
		{"TodayOtherZone", time.Date(2026, time.March, 15, 15, 0, 0, 0, time.UTC), "10:00am"},
		{"YesterdayLate", day(1, 23, 59), "yesterday"},
		{"YesterdayEarly", day(1, 0, 1), "yesterday"},
		{"TwoDays", day(2, 12, 0), "2 days ago"},
		{"ThreeDays", day(3, 12, 0), "3 days ago"},
		{"SixDays", day(6, 12, 0), "6 days ago"},
		{"SevenDays", day(7, 12, 0), "1 week ago"},
		{"ThirteenDays", day(13, 12, 0), "1 week ago"},
		{"FourteenDays", day(14, 12, 0), "2 weeks ago"},
		{"TwentyNineDays", day(29, 12, 0), "4 weeks ago"},
		{"ThirtyDays", day(30, 12, 0), "1 month ago"},
		{"SixtyDays", day(60, 12, 0), "2 months ago"},
		{"ElevenMonths", day(340, 12, 0), "11 months ago"},
		{"AlmostAYear", day(364, 12, 0), "11 months ago"},
		{"OneYear", day(365, 12, 0), "1 year ago"},
		{"ThreeYears", day(3*365+2, 12, 0), "3 years ago"},
		{"Tomorrow", time.Date(2026, time.March, 16, 9, 0, 0, 0, loc), "Mar 16, 2026"},
		{"LaterToday", day(0, 18, 0), "6:00pm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := timefmt.Relative(tt.t, now); got != tt.want {
				t.Errorf("Relative(%v) = %q, want %q", tt.t, got, tt.want)
			}
		})
	}
}

func TestRelativeAcrossDST(t *testing.T) {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	// DST starts on 8 March 2026 in New York: 7 March 23:00 is still one
	// calendar day before 8 March 01:00 although fewer than 24 hours apart.
	now := time.Date(2026, time.March, 8, 12, 0, 0, 0, loc)
	if got, want := timefmt.Relative(time.Date(2026, time.March, 7, 23, 0, 0, 0, loc), now), "yesterday"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := timefmt.Relative(time.Date(2026, time.March, 1, 12, 0, 0, 0, loc), now), "1 week ago"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTerminalOrScript(t *testing.T) {
	loc := time.FixedZone("UTC-5", -5*3600)
	now := time.Date(2026, time.March, 15, 16, 30, 0, 0, loc)
	ts := time.Date(2026, time.March, 12, 9, 15, 30, 500, loc)
	tests := []struct {
		name, got, want string
	}{
		{"CellTTY", timefmt.Cell(ts, now, true), "3 days ago"},
		{"CellScript", timefmt.Cell(ts, now, false), "2026-03-12T14:15:30Z"},
		{"CellZero", timefmt.Cell(time.Time{}, now, false), "-"},
		{"DateTTY", timefmt.Date(ts, loc, true), "2026-03-12 09:15"},
		{"DateScript", timefmt.Date(ts, loc, false), "2026-03-12T14:15:30Z"},
		{"DateZero", timefmt.Date(time.Time{}, loc, false), ""},
		{"PreciseTTY", timefmt.Precise(ts, loc, true), "2026-03-12 09:15:30"},
		{"PreciseScript", timefmt.Precise(ts, loc, false), "2026-03-12T14:15:30Z"},
		{"PreciseZero", timefmt.Precise(time.Time{}, loc, true), ""},
		{"MachineZero", timefmt.Machine(time.Time{}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
			if _, err := time.Parse(time.RFC3339, tt.got); strings.HasSuffix(tt.name, "Script") && err != nil {
				t.Errorf("%q does not parse as RFC 3339: %v", tt.got, err)
			}
		})
	}
}
