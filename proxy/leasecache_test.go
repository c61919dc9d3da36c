package proxy

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zenmux/ledger"
)

// returned is one give-back a fake lessor saw.
type returned struct {
	key   string
	n     int64
	rpm   int64 // 0 for Flows
	flows bool
}

// fakeLessor grants what it is told and records every call; returns
// arrive on a channel, since the caches give back in the background.
type fakeLessor struct {
	mu      sync.Mutex
	grant   int64 // requests or µFlows granted per lease
	hint    int64 // LeaseResult.RemainingHint
	leases  []int64
	returns chan returned
}

func newFakeLessor(grant, hint int64) *fakeLessor {
	return &fakeLessor{grant: grant, hint: hint, returns: make(chan returned, 16)}
}

func (f *fakeLessor) Lease(bucket string, want, rpm, burst int64) (ledger.LeaseResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leases = append(f.leases, want)
	return ledger.LeaseResult{Granted: min(want, f.grant), RemainingHint: f.hint}, nil
}

func (f *fakeLessor) Return(bucket string, n, rpm int64) error {
	f.returns <- returned{key: bucket, n: n, rpm: rpm}
	return nil
}

func (f *fakeLessor) LeaseFlows(acct string, microFlows int64) (ledger.FlowLease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leases = append(f.leases, microFlows)
	return ledger.FlowLease{GrantedMicroFlows: f.grant}, nil
}

func (f *fakeLessor) ReturnFlows(acct string, microFlows int64) error {
	f.returns <- returned{key: acct, n: microFlows, flows: true}
	return nil
}

func (f *fakeLessor) leaseCalls() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.leases...)
}

// next waits (at most 5 s) for the next give-back.
func (f *fakeLessor) next(t *testing.T) returned {
	t.Helper()
	select {
	case r := <-f.returns:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no give-back within 5 s")
		return returned{}
	}
}

// none checks that no give-back has arrived. A give-back runs in the
// background, so the tests pair it with the amount the cache still holds:
// release zeroes that amount before it starts one.
func (f *fakeLessor) none(t *testing.T) {
	t.Helper()
	select {
	case r := <-f.returns:
		t.Fatalf("unexpected give-back %+v", r)
	default:
	}
}

// held is what the cache holds for key (0 and false when it forgot it).
func held[S any](c *leaseCache[S], key string) (int64, bool) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		e, ok := s.m[key]
		s.mu.Unlock()
		if ok {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.amount, true
		}
	}
	return 0, false
}

// A rate lease expires leaseTTL after it was granted, by the limiter's
// clock: at that very nanosecond it is still held, one later its unspent
// requests go back with the bucket's rpm and the bucket is forgotten.
func TestLeaseLimiterExpiryFrozenClock(t *testing.T) {
	var clock atomic.Int64
	t0 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	clock.Store(t0)
	f := newFakeLessor(100, 90)
	l := NewLeaseLimiter(f, func() int { return 2 }, LeaseOptions{Now: clock.Load})
	defer l.Close()

	// 2 nodes, rpm 600, burst 40: the share is min(40/4, 600/60) = 10.
	d := l.Take("acct", 600, 40, 0)
	if want := (Decision{Allowed: true, Limit: 40, Remaining: 40}); d != want { // 9 held + 90 hinted, shown within the capacity
		t.Fatalf("first take %+v, want %+v", d, want)
	}
	clock.Store(t0 + int64(leaseTTL)/2)
	for range 3 { // spending does not renew the lease
		if d := l.Take("acct", 600, 40, 0); !d.Allowed {
			t.Fatalf("take from the lease refused: %+v", d)
		}
	}
	if got := f.leaseCalls(); len(got) != 1 || got[0] != 10 {
		t.Fatalf("leases %v, want one of 10", got)
	}
	l.c.sweep(t0 + int64(leaseTTL))
	if n, ok := held(l.c, "acct"); n != 6 || !ok {
		t.Fatalf("at expiry the cache holds %d (%v), want 6", n, ok)
	}
	f.none(t)
	l.c.sweep(t0 + int64(leaseTTL) + 1)
	if r := f.next(t); r != (returned{key: "acct", n: 6, rpm: 600}) {
		t.Fatalf("gave back %+v, want 6 requests of acct at rpm 600", r)
	}
	if n, ok := held(l.c, "acct"); n != 0 || ok {
		t.Fatalf("after the give-back the cache holds %d (%v), want it forgotten", n, ok)
	}
	// The next request leases afresh; its lease expires from its own time.
	clock.Store(t0 + 5*int64(time.Second))
	if d := l.Take("acct", 600, 40, 0); !d.Allowed || d.Remaining != 40 {
		t.Fatalf("take after the give-back %+v", d)
	}
	l.c.sweep(t0 + 5*int64(time.Second) + int64(leaseTTL))
	f.none(t)
	if n, _ := held(l.c, "acct"); n != 9 {
		t.Fatalf("fresh lease holds %d, want 9", n)
	}
}

// A plan change gives the old lease back at the old rpm before leasing at
// the new rates; Close gives back what is left, before it returns.
func TestLeaseLimiterPlanChangeAndClose(t *testing.T) {
	var clock atomic.Int64
	clock.Store(1)
	f := newFakeLessor(100, 0)
	l := NewLeaseLimiter(f, func() int { return 1 }, LeaseOptions{Now: clock.Load})
	l.Take("b", 600, 20, 0) // share min(10, 10) = 10, 9 left
	l.Take("b", 1200, 20, 0)
	if r := f.next(t); r != (returned{key: "b", n: 9, rpm: 600}) {
		t.Fatalf("plan change gave back %+v, want 9 at rpm 600", r)
	}
	if got := f.leaseCalls(); len(got) != 2 || got[1] != 10 { // min(20/2, 1200/60)
		t.Fatalf("leases %v, want 10 then 10", got)
	}
	l.Close()
	if r := f.next(t); r != (returned{key: "b", n: 9, rpm: 1200}) {
		t.Fatalf("Close gave back %+v, want 9 at rpm 1200", r)
	}
}

// Quota allowance expires allowanceTTL after its lease by the cache's
// clock; what goes back is the grant less what was reserved, corrected
// by the charges that settled; a debt (spent past the grant) is kept.
func TestAllowancesExpiryFrozenClock(t *testing.T) {
	var clock atomic.Int64
	t0 := int64(1_000_000_000)
	clock.Store(t0)
	f := newFakeLessor(3_000_000, 0)
	a := NewAllowances(f, LeaseOptions{Now: clock.Load})
	defer a.Close()

	ok, _, err := a.Reserve("acct", 400_000)
	if !ok || err != nil {
		t.Fatalf("reserve: %v %v", ok, err)
	}
	if got := f.leaseCalls(); len(got) != 1 || got[0] != 1_600_000 { // 4 × the estimate
		t.Fatalf("leases %v, want one of 1600000", got)
	}
	a.Settle("acct", 400_000, 150_000)
	a.c.sweep(t0 + int64(allowanceTTL))
	f.none(t)
	if n, _ := held(a.c, "acct"); n != 2_850_000 {
		t.Fatalf("held %d at expiry, want 2850000", n)
	}
	a.c.sweep(t0 + int64(allowanceTTL) + 1)
	if r := f.next(t); r != (returned{key: "acct", n: 2_850_000, flows: true}) {
		t.Fatalf("gave back %+v, want 2850000 µFlows of acct", r)
	}
	if _, ok := held(a.c, "acct"); ok {
		t.Fatal("an emptied allowance is still cached")
	}

	// Spent past the grant: nothing goes back and the debt stays, so the
	// next lease first covers it.
	clock.Store(t0 + 10*int64(time.Second))
	a.Reserve("debt", 1_000_000) // leases 4000000, granted 3000000
	a.Settle("debt", 1_000_000, 2_500_000)
	a.Reserve("debt", 500_000)
	a.Settle("debt", 500_000, 1_000_000)
	a.c.sweep(clock.Load() + int64(allowanceTTL) + 1)
	f.none(t)
	if n, ok := held(a.c, "debt"); n != -500_000 || !ok {
		t.Fatalf("debt held %d (%v), want -500000 kept", n, ok)
	}
}

// Close stops the return loop and gives nothing back: a node's allowance
// is forgotten by the ledger when the node starts again.
func TestAllowancesCloseKeepsAllowance(t *testing.T) {
	f := newFakeLessor(1_000_000, 0)
	a := NewAllowances(f, LeaseOptions{Now: func() int64 { return 1 }})
	a.Reserve("acct", 10)
	a.Close()
	f.none(t)
}
