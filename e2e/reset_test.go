package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A quota window starts at the nanosecond of its first request; usage and
// refusals show its reset in whole seconds. The shown reset is rounded up,
// so a client that waits until it and sends again is admitted (Q1, Q5, Q6).
//
// The node's clock is the wall clock plus a whole number of seconds (the
// test clock only advances by whole seconds), so its sub-second part is
// the wall clock's: the test times its requests within a second by
// sleeping, and moves across hours by advancing the clock.

// rsClock reads the node's clock offset from the wall clock, and checks
// that the node's now lies within wall + offset around the call.
func rsClock(t *testing.T, n *Node) time.Duration {
	t.Helper()
	before := time.Now()
	m := wtWant(t, n.AdminDo("GET", "/admin/v1/clock", ""), 200)
	after := time.Now()
	off, err := strconv.ParseInt(Get(m, "offset_seconds"), 10, 64)
	if err != nil {
		t.Fatalf("offset_seconds %q: %v", Get(m, "offset_seconds"), err)
	}
	offset := time.Duration(off) * time.Second
	now, err := time.Parse(time.RFC3339Nano, Get(m, "now"))
	if err != nil {
		t.Fatalf("clock now %q: %v", Get(m, "now"), err)
	}
	if now.Before(before.Add(offset)) || now.After(after.Add(offset)) {
		t.Fatalf("node clock %s is not wall clock + %s (%s .. %s)", now, offset, before.Add(offset), after.Add(offset))
	}
	return offset
}

// rsAdvance moves the node's clock by whole seconds and returns the new
// offset.
func rsAdvance(t *testing.T, n *Node, seconds int64) time.Duration {
	t.Helper()
	if seconds <= 0 {
		t.Fatalf("advance by %d s: the clock only moves forward", seconds)
	}
	m := wtWant(t, n.AdminDo("POST", "/admin/v1/clock", fmt.Sprintf(`{"advance_seconds":%d}`, seconds)), 200)
	off, err := strconv.ParseInt(Get(m, "offset_seconds"), 10, 64)
	if err != nil {
		t.Fatalf("offset_seconds %q: %v", Get(m, "offset_seconds"), err)
	}
	return time.Duration(off) * time.Second
}

// rsWallAt is the first wall-clock instant at least lead from now whose
// sub-second part is frac.
func rsWallAt(frac, lead time.Duration) time.Time {
	earliest := time.Now().Add(lead)
	at := earliest.Truncate(time.Second).Add(frac)
	if at.Before(earliest) {
		at = at.Add(time.Second)
	}
	return at
}

// rsCeil rounds t up to the whole second.
func rsCeil(t time.Time) time.Time {
	if t.Nanosecond() == 0 {
		return t
	}
	return t.Truncate(time.Second).Add(time.Second)
}

// rsTime formats a node time as a response would show it.
func rsTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// rule Q1, Q5, Q6: a 1-Flow window opened at hh:mm:ss.6 really ends 5 h
// later at a fraction of a second. The usage shows resets_at rounded up
// (the truncated second is still inside the window: a request there is
// refused with Retry-After 1); advanced to exactly the shown resets_at,
// the node admits the next request on the subscription.
func TestResetShownResetsAtAdmitsOnSubscription(t *testing.T) {
	n := StartNode(t, NodeOptions{TestClock: true, Extra: chaosEchoPlan("1", "1000", 1000, 1000, "0.03283")})
	const body = `{"model":"chaos/echo","max_tokens":1,"messages":[{"role":"user","content":"x"}]}`
	var key string
	offset := rsClock(t, n)
	send := func() (*Response, time.Time, time.Time) {
		t.Helper()
		from := time.Now().Add(offset)
		r := Do(t, "POST", n.Proxy+"/v1/chat/completions", body, "Authorization: Bearer "+key)
		return r, from, time.Now().Add(offset)
	}

	// The first request opens the window at a node time with a sub-second
	// part of at least 0.5 s, inside one known second: [first, firstDone].
	// A request that missed it opened its window too; the next attempt
	// takes a fresh account.
	var acct string
	var first, firstDone time.Time
	for attempt := 1; ; attempt++ {
		acct, key = chaosAccount(t, n)
		time.Sleep(time.Until(rsWallAt(600*time.Millisecond, 0)))
		var r *Response
		r, first, firstDone = send()
		if r.Status != 200 || r.Header.Get("x-zenmux-billing") != "subscription" {
			t.Fatalf("first request: %d %q %s, want 200 on the subscription", r.Status, r.Header.Get("x-zenmux-billing"), r.Body)
		}
		if first.Nanosecond() >= int(500*time.Millisecond) && first.Truncate(time.Second).Equal(firstDone.Truncate(time.Second)) {
			break
		}
		if attempt == 3 {
			t.Fatalf("the first request never ran within the second half of one second (last %s .. %s)", first, firstDone)
		}
	}
	base := "/admin/v1/accounts/" + acct
	var usage map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; {
		usage = wtWant(t, n.AdminDo("GET", base+"/usage", ""), 200)
		if Get(usage, "window_5h.used_flows") == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first request is not charged after 10 s: %v", usage)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The real end lies in [endLo, endHi], strictly inside one second: the
	// truncated second (what the usage showed before) is early.
	endLo, endHi := first.Add(5*time.Hour), firstDone.Add(5*time.Hour)
	shown := wtTime(t, usage, "window_5h.resets_at")
	truncated := endLo.Truncate(time.Second)
	Expect(t, usage, "window_5h.remaining_flows", "0", "window_5h.started_at", rsTime(first.Truncate(time.Second)),
		"window_5h.resets_at", rsTime(rsCeil(endLo)))
	if !shown.Equal(truncated.Add(time.Second)) || !shown.After(endHi) {
		t.Fatalf("resets_at %s, want the real end (%s .. %s) rounded up to %s", rsTime(shown),
			endLo.UTC().Format(time.RFC3339Nano), endHi.UTC().Format(time.RFC3339Nano), rsTime(truncated.Add(time.Second)))
	}

	refused := func(what string, lo, hi time.Time) {
		t.Helper()
		r, from, to := send()
		if r.Status != 429 || !strings.Contains(string(r.Body), "quota_exceeded") || !strings.Contains(string(r.Body), "resets at "+rsTime(shown)) {
			t.Fatalf("%s: %d %s, want 429 quota_exceeded naming resets at %s", what, r.Status, r.Body, rsTime(shown))
		}
		// Retry-After is the wait to the real end, rounded up.
		wantLo := int64((lo.Sub(to) + time.Second - 1) / time.Second)
		wantHi := int64((hi.Sub(from) + time.Second - 1) / time.Second)
		got, err := strconv.ParseInt(r.Header.Get("Retry-After"), 10, 64)
		if err != nil || got < max(1, wantLo) || got > max(1, wantHi) {
			t.Errorf("%s: Retry-After %q, want %d .. %d", what, r.Header.Get("Retry-After"), max(1, wantLo), max(1, wantHi))
		}
	}
	refused("right after the window filled", endLo, endHi)

	// Land a request at 0.1 s past the truncated second, the reset the
	// usage showed before: the window is not over yet.
	landAt := rsWallAt(100*time.Millisecond, 500*time.Millisecond)
	offset = rsAdvance(t, n, truncated.Unix()-landAt.Unix()-int64(offset/time.Second))
	if time.Now().After(landAt) {
		t.Fatalf("advancing the clock took past %s: the test cannot land in the truncated second", landAt)
	}
	time.Sleep(time.Until(landAt))
	r, from, to := send()
	if from.Before(truncated) || !to.Before(endLo) {
		t.Fatalf("the request ran at %s .. %s, not inside [%s, %s): the machine is too slow for this test",
			from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano), rsTime(truncated), endLo.UTC().Format(time.RFC3339Nano))
	}
	if r.Status != 429 || r.Header.Get("Retry-After") != "1" || !strings.Contains(string(r.Body), "resets at "+rsTime(shown)) {
		t.Fatalf("at the truncated reset %s: %d Retry-After %q %s, want 429 quota_exceeded, Retry-After 1, resets at %s",
			rsTime(truncated), r.Status, r.Header.Get("Retry-After"), r.Body, rsTime(shown))
	}

	// Advance to exactly the shown resets_at, from the node's clock: the
	// fewest whole seconds that bring it there, so that it lands at the
	// shown instant plus less than the rest of the real end's second.
	offset = rsClock(t, n)
	now := time.Now().Add(offset)
	offset = rsAdvance(t, n, int64((shown.Sub(now)+time.Second-1)/time.Second))
	r, from, to = send()
	if from.Before(shown) || !to.Before(endLo.Add(time.Second)) {
		t.Fatalf("the request ran at %s .. %s, not inside [%s, %s): the machine is too slow for this test",
			from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano), rsTime(shown), endLo.Add(time.Second).UTC().Format(time.RFC3339Nano))
	}
	if r.Status != 200 || r.Header.Get("x-zenmux-billing") != "subscription" {
		t.Fatalf("at the shown resets_at %s: %d %q %s, want 200 on the subscription", rsTime(shown), r.Status, r.Header.Get("x-zenmux-billing"), r.Body)
	}
	t.Logf("window from %s: real end %s .. %s, resets_at %s; refused at %s, admitted at %s",
		first.UTC().Format(time.RFC3339Nano), endLo.UTC().Format(time.RFC3339Nano), endHi.UTC().Format(time.RFC3339Nano),
		rsTime(shown), rsTime(truncated), from.UTC().Format(time.RFC3339Nano))
}
