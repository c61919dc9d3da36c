package proxy

import (
	"hash/maphash"
	"sync"
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
// not spend go back to the bucket after leaseTTL. Since every admitted
// request spent a request the replicated bucket granted, the cluster never
// admits more than one bucket allows (B_rpm = 0).
type LeaseLimiter struct {
	lessor Lessor
	nodes  func() int
	seed   maphash.Seed
	shards [limiterShards]leaseShard
	stop   chan struct{}
	done   chan struct{}
}

const leaseTTL = 2 * time.Second

type leaseShard struct {
	mu      sync.Mutex
	buckets map[string]*leased
}

type leased struct {
	mu         sync.Mutex // held across a lease round trip: one lease at a time per bucket
	tokens     int64
	rpm, burst int64
	remaining  int64 // the bucket's remaining after the last grant (headers)
	expires    time.Time
}

// NewLeaseLimiter starts a lease limiter; nodes reports the cluster size.
func NewLeaseLimiter(lessor Lessor, nodes func() int) *LeaseLimiter {
	l := &LeaseLimiter{lessor: lessor, nodes: nodes, seed: maphash.MakeSeed(), stop: make(chan struct{}), done: make(chan struct{})}
	for i := range l.shards {
		l.shards[i].buckets = map[string]*leased{}
	}
	go l.returnLoop()
	return l
}

func (l *LeaseLimiter) bucket(key string) *leased {
	s := &l.shards[maphash.String(l.seed, key)%limiterShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[key]
	if b == nil {
		b = &leased{}
		s.buckets[key] = b
	}
	return b
}

// leaseSize is a node's share: half its even share of the burst, and no
// more than one second of the bucket's refill, so a node that dies strands
// at most what the bucket refills within a second.
func (l *LeaseLimiter) leaseSize(rpm, burst int64) int64 {
	n := int64(max(1, l.nodes()))
	return max(1, min(burst/(2*n), rpm/60))
}

// Take spends one leased request, leasing more when none is left.
func (l *LeaseLimiter) Take(key string, rpm, burst, now int64) Decision {
	b := l.bucket(key)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rpm != rpm || b.burst != burst {
		l.giveBack(key, b) // the plan changed: the old lease's size no longer applies
		b.rpm, b.burst = rpm, burst
	}
	d := Decision{Limit: rpm}
	if b.tokens == 0 {
		res, err := l.lessor.Lease(key, l.leaseSize(rpm, burst), rpm, burst)
		if err != nil {
			d.Unavailable = true
			return d
		}
		b.tokens, b.remaining, b.expires = res.Granted, res.RemainingHint, time.Now().Add(leaseTTL)
		if res.Granted == 0 {
			d.Reset = time.Duration(res.RetryAfterNs)
			return d
		}
	}
	b.tokens--
	d.Allowed = true
	d.Remaining = b.tokens + b.remaining
	return d
}

// giveBack returns a bucket's unspent requests (caller holds b.mu).
func (l *LeaseLimiter) giveBack(key string, b *leased) {
	if b.tokens > 0 && b.rpm > 0 {
		n, rpm := b.tokens, b.rpm
		b.tokens = 0
		go func() { _ = l.lessor.Return(key, n, rpm) }()
	}
}

// returnLoop gives back leases that sat unspent past leaseTTL.
func (l *LeaseLimiter) returnLoop() {
	defer close(l.done)
	t := time.NewTicker(leaseTTL / 2)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case now := <-t.C:
			for i := range l.shards {
				s := &l.shards[i]
				s.mu.Lock()
				for key, b := range s.buckets {
					if b.mu.TryLock() {
						if now.After(b.expires) {
							l.giveBack(key, b)
							if b.tokens == 0 {
								delete(s.buckets, key)
							}
						}
						b.mu.Unlock()
					}
				}
				s.mu.Unlock()
			}
		}
	}
}

// Close stops the return loop and gives back every unspent lease, so a
// node that stops cleanly strands nothing. (A node that dies strands at
// most one lease per bucket, which the bucket refills at its rate.)
func (l *LeaseLimiter) Close() {
	close(l.stop)
	<-l.done
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for key, b := range s.buckets {
			b.mu.Lock()
			if b.tokens > 0 && b.rpm > 0 {
				_ = l.lessor.Return(key, b.tokens, b.rpm)
				b.tokens = 0
			}
			b.mu.Unlock()
		}
		s.mu.Unlock()
	}
}
