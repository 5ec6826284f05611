// Package timefmt renders times for people.
package timefmt

import (
	"fmt"
	"time"
)

// Relative renders t relative to now, in now's location, the way a listing
// shows when something last changed:
//
//	same day           3:04pm
//	the day before     yesterday
//	2–6 days before    3 days ago
//	7–29 days before   1 week ago, 2 weeks ago, …
//	30–364 days        1 month ago, 2 months ago, … 11 months ago
//	365 days or more   1 year ago, 2 years ago, …
//
// Days are calendar days. A zero t renders as "-"; a t on a later day than
// now (clock skew) as its date.
func Relative(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	loc := now.Location()
	t = t.In(loc)
	days := calendarDays(t, now)
	switch {
	case days < 0:
		return t.Format("Jan 2, 2006")
	case days == 0:
		return t.Format("3:04pm")
	case days == 1:
		return "yesterday"
	case days < 7:
		return fmt.Sprintf("%d days ago", days)
	case days < 30:
		return plural(days/7, "week")
	case days < 365:
		return plural(min(days/30, 11), "month")
	default:
		return plural(days/365, "year")
	}
}

// calendarDays counts the calendar days from t to now (both already in the
// same location), ignoring the time of day and daylight-saving shifts.
func calendarDays(t, now time.Time) int {
	ty, tm, td := t.Date()
	ny, nm, nd := now.Date()
	a := time.Date(ty, tm, td, 0, 0, 0, 0, time.UTC)
	b := time.Date(ny, nm, nd, 0, 0, 0, 0, time.UTC)
	return int(b.Sub(a).Hours() / 24)
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit + " ago"
	}
	return fmt.Sprintf("%d %ss ago", n, unit)
}

// Absolute renders t as a local date and time ("2006-01-02 15:04"), or
// empty for a zero t.
func Absolute(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	return t.In(loc).Format("2006-01-02 15:04")
}

// Tables show times for people on a terminal and for scripts off one
// (iostreams.IOStreams.StdoutTTY): "3 days ago" or a local date reads
// well but cannot be parsed, compared or sorted, and depends on when and
// where the command ran. Off a terminal a time is therefore always
// Machine: RFC 3339 in UTC.

// Machine renders t as RFC 3339 in UTC, to the second, or "" for a zero t.
func Machine(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// Cell renders t in a table column of relative times: Relative on a
// terminal (tty), else Machine. A zero t is "-" either way.
func Cell(t, now time.Time, tty bool) string {
	if t.IsZero() {
		return "-"
	}
	if tty {
		return Relative(t, now)
	}
	return Machine(t)
}

// Date renders t in a column of dates: Absolute in loc on a terminal
// (tty), else Machine; "" for a zero t.
func Date(t time.Time, loc *time.Location, tty bool) string {
	if tty {
		return Absolute(t, loc)
	}
	return Machine(t)
}

// Precise renders t in a column of event times, to the second: local
// "2006-01-02 15:04:05" in loc on a terminal (tty), else Machine; "" for
// a zero t.
func Precise(t time.Time, loc *time.Location, tty bool) string {
	if t.IsZero() {
		return ""
	}
	if tty {
		return t.In(loc).Format("2006-01-02 15:04:05")
	}
	return Machine(t)
}
