package ledger

import "time"

// Time inside the ledger is Unix nanoseconds (UTC) carried by each command;
// Apply never reads a clock. These helpers keep calendar arithmetic in one
// place.

const (
	window5h     = 5 * int64(time.Hour)
	windowWeekly = 7 * 24 * int64(time.Hour)
	refundWindow = 24 * int64(time.Hour)
	maxCycles    = 12 * 100 // settle at most a century of renewals in one step

	// MaxTime (2200-01-01T00:00:00Z) bounds the time a command is stamped
	// with, and so ledger time: calendar arithmetic past it (a cycle end, a
	// window's reset) must still fit in int64 nanoseconds, which end in
	// April 2262. Encode and Decode refuse a later stamp.
	MaxTime = 7_258_118_400 * int64(time.Second)
)

// addMonths returns anchor moved n calendar months forward in UTC, with the
// day of month clamped to the target month's last day (S2): an anchor
// on Jan 31 gives Feb 28 (or 29), then Mar 31.
func addMonths(anchorNanos int64, n int) int64 {
	t := time.Unix(0, anchorNanos).UTC()
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	last := time.Date(first.Year(), first.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
	if d > last {
		d = last
	}
	return time.Date(first.Year(), first.Month(), d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC).UnixNano()
}

// monthIndex returns the index k of the calendar-month period
// [addMonths(anchor,k), addMonths(anchor,k+1)) that contains now (k ≥ 0).
func monthIndex(anchorNanos, nowNanos int64) int {
	if nowNanos < anchorNanos {
		return 0
	}
	a := time.Unix(0, anchorNanos).UTC()
	b := time.Unix(0, nowNanos).UTC()
	k := (b.Year()-a.Year())*12 + int(b.Month()) - int(a.Month())
	if k < 0 {
		k = 0
	}
	for k > 0 && addMonths(anchorNanos, k) > nowNanos {
		k--
	}
	for addMonths(anchorNanos, k+1) <= nowNanos {
		k++
	}
	return k
}

// rfc3339 renders a ledger time for JSON (docs/api.md, "Time": RFC 3339, UTC).
func rfc3339(nanos int64) string {
	return time.Unix(0, nanos).UTC().Format(time.RFC3339)
}

// optTime renders an optional time: nil when unset (0).
func optTime(nanos int64) *string {
	if nanos == 0 {
		return nil
	}
	s := rfc3339(nanos)
	return &s
}

// dayOf returns the UTC calendar day of a ledger time as "2006-01-02".
func dayOf(nanos int64) string {
	return time.Unix(0, nanos).UTC().Format("2006-01-02")
}
