package ledger

import "time"

// GCRA is the token bucket of Q8 — rpm requests a minute, holding up to
// burst — kept as the generic cell rate algorithm keeps it: one number,
// the theoretical arrival time tat, the instant the bucket would be full
// again (tat ≤ now is a full bucket). Everything is exact integer
// nanoseconds, so rounding never loses a request over time. It is pure: a
// node's in-memory limiter and the replicated buckets both call it, so a
// bucket counts the same wherever it lives.
type GCRA struct {
	RPM, Burst int64 // each 1..MaxRateLimit
}

// GCRAGrant is what one Take did to a bucket.
type GCRAGrant struct {
	TAT       int64 // the bucket's new theoretical arrival time
	Granted   int64 // requests spent, 0..want
	Remaining int64 // whole requests left in the bucket after the grant
	Wait      int64 // ns until one more request is available; 0 if one is
}

// interval is the time the bucket takes to refill one request.
func (g GCRA) interval() int64 { return int64(time.Minute) / g.RPM }

// Take spends up to want requests, as many as the bucket holds at now.
func (g GCRA) Take(tat, now, want int64) GCRAGrant {
	interval := g.interval()
	tat = max(tat, now)
	slack := (g.Burst - 1) * interval // debt the bucket can hold and still admit
	var granted int64
	if debt := tat - now; debt <= slack {
		granted = min(want, (slack-debt)/interval+1)
		tat += granted * interval
	}
	debt := tat - now
	return GCRAGrant{TAT: tat, Granted: granted, Remaining: max(0, (g.Burst*interval-debt)/interval), Wait: max(0, debt-slack)}
}

// Give puts n unspent requests back, filling the bucket no further than
// full at now, and returns the new theoretical arrival time.
func (g GCRA) Give(tat, now, n int64) int64 {
	return max(now, tat-n*g.interval())
}
