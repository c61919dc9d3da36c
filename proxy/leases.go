package proxy

import (
	"time"

	"zenmux/ledger"
)

// RateLimiter decides the rate bucket (Q8) for one request.
type RateLimiter interface {
	Take(key string, rpm, burst, now int64) Decision
}

// Lessor leases requests from the cluster's replicated buckets (through
// Raft) and takes back those not spent.
type Lessor interface {
	Lease(bucket string, want, rpm, burst int64) (ledger.LeaseResult, error)
	Return(bucket string, n, rpm int64) error
}

// LeaseLimiter is the rate bucket of a cluster: each node spends, in
// memory, requests it leased from the account's replicated bucket. A node
// asks for a lease only when its own requests for that bucket run out, so
// Raft sees one round trip per lease, not per request; the lease size is a
// share of the burst, so no node hoards it. Requests a node leased but did
// not spend go back to the bucket leaseTTL after the lease. Since every
// admitted request spent a request the replicated bucket granted, the
// cluster never admits more than one bucket allows (B_rpm = 0).
type LeaseLimiter struct {
	lessor Lessor
	nodes  func() int
	c      *leaseCache[bucketLease]
}

const leaseTTL = 2 * time.Second

// bucketLease is what a LeaseLimiter keeps per bucket beside the requests
// it holds.
type bucketLease struct {
	rpm, burst int64 // the rates the lease was taken at
	remaining  int64 // the bucket's remaining after the last grant (headers)
}

// NewLeaseLimiter starts a lease limiter; nodes reports the cluster size.
func NewLeaseLimiter(lessor Lessor, nodes func() int, o LeaseOptions) *LeaseLimiter {
	l := &LeaseLimiter{lessor: lessor, nodes: nodes}
	l.c = newLeaseCache(o, leaseTTL, func(key string, n int64, b bucketLease) { _ = lessor.Return(key, n, b.rpm) })
	return l
}

// leaseSize is a node's share: half its even share of the burst, and no
// more than one second of the bucket's refill, so a node that dies strands
// at most what the bucket refills within a second.
func (l *LeaseLimiter) leaseSize(rpm, burst int64) int64 {
	n := int64(max(1, l.nodes()))
	return max(1, min(burst/(2*n), rpm/60))
}

// Take spends one leased request, leasing more when none is left. A lease
// expires by the limiter's own clock (LeaseOptions.Now), the one its
// sweep reads, so the request's time is not needed.
func (l *LeaseLimiter) Take(key string, rpm, burst, _ int64) Decision {
	b := l.c.lock(key)
	defer b.mu.Unlock()
	if b.state.rpm != rpm || b.state.burst != burst {
		l.c.release(key, b) // the plan changed: the old lease's size no longer applies
		b.state.rpm, b.state.burst = rpm, burst
	}
	d := Decision{Limit: burst}
	if b.amount == 0 {
		res, err := l.lessor.Lease(key, l.leaseSize(rpm, burst), rpm, burst)
		if err != nil {
			d.Unavailable = true
			return d
		}
		l.c.leased(b, res.Granted)
		b.state.remaining = res.RemainingHint
		if res.Granted == 0 {
			d.Reset = time.Duration(res.RetryAfterNs)
			return d
		}
	}
	b.amount--
	d.Allowed = true
	// What this node holds plus what the bucket had left when it last
	// said: never shown above the capacity the limit header names.
	d.Remaining = min(b.amount+b.state.remaining, burst)
	return d
}

// Held counts the rate buckets this node holds leased requests of, and
// the requests, unspent (read at scrape time).
func (l *LeaseLimiter) Held() (buckets int, requests int64) { return l.c.held() }

// Close stops the return loop and gives back every unspent lease, so a
// node that stops cleanly strands nothing. (A node that dies strands at
// most one lease per bucket, which the bucket refills at its rate.)
func (l *LeaseLimiter) Close() {
	l.c.close()
	l.c.drain()
}
