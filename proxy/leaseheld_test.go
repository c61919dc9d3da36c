package proxy

import (
	"sync/atomic"
	"testing"
	"time"
)

// Held counts the keys holding an unspent lease and what they hold: a
// spent-out or given-back key counts for nothing, and a key busy with a
// lease round trip counts as one holding a lease without blocking the
// scrape.
func TestLeasesHeld(t *testing.T) {
	var clock atomic.Int64
	t0 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	clock.Store(t0)
	f := newFakeLessor(100, 90)
	l := NewLeaseLimiter(f, func() int { return 2 }, LeaseOptions{Now: clock.Load})
	defer l.Close()
	if n, v := l.Held(); n != 0 || v != 0 {
		t.Fatalf("empty: %d buckets, %d requests", n, v)
	}
	// Share 10 each (see TestLeaseLimiterExpiryFrozenClock): a holds 9
	// after one request, b 8 after two.
	l.Take("a", 600, 40, 0)
	l.Take("b", 600, 40, 0)
	l.Take("b", 600, 40, 0)
	if n, v := l.Held(); n != 2 || v != 17 {
		t.Fatalf("Held = %d buckets, %d requests; want 2, 17", n, v)
	}
	// A key locked by a lease round trip: counted, its amount unread.
	e := l.c.lock("c")
	e.amount = 5
	if n, v := l.Held(); n != 3 || v != 17 {
		t.Fatalf("with c busy: %d, %d; want 3, 17", n, v)
	}
	e.mu.Unlock()
	if n, v := l.Held(); n != 3 || v != 22 {
		t.Fatalf("c free: %d, %d; want 3, 22", n, v)
	}
	// Expired leases go back: nothing held.
	l.c.sweep(t0 + int64(leaseTTL) + 1)
	for range 3 {
		f.next(t)
	}
	if n, v := l.Held(); n != 0 || v != 0 {
		t.Fatalf("after the give-backs: %d, %d; want 0, 0", n, v)
	}

	// Quota allowance: an account overspent (amount ≤ 0) holds nothing.
	fa := newFakeLessor(4_000_000, 0)
	a := NewAllowances(fa, LeaseOptions{Now: clock.Load})
	defer a.Close()
	if ok, _, err := a.Reserve("x", 1_000_000); !ok || err != nil {
		t.Fatalf("reserve: %v %v", ok, err)
	}
	if ok, _, err := a.Reserve("y", 1_000_000); !ok || err != nil {
		t.Fatalf("reserve: %v %v", ok, err)
	}
	a.Settle("y", 1_000_000, 4_500_000)
	if n, v := a.Held(); n != 1 || v != 3_000_000 {
		t.Fatalf("allowances Held = %d accounts, %d µFlows; want 1, 3000000", n, v)
	}
}
