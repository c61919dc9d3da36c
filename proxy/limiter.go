package proxy

import (
	"hash/maphash"
	"sync"
	"time"
)

// Limiter is the per-account token bucket of SPEC Q8: it holds `burst`
// requests and refills `rpm` a minute. State is sharded by key so that
// accounts never contend on one lock; each shard's map only holds buckets
// that were used, and idle buckets that are full again are dropped.
type Limiter struct {
	seed   maphash.Seed
	shards [limiterShards]limiterShard
}

const (
	limiterShards = 64
	minute        = int64(time.Minute)
)

type limiterShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	sweeps  int
}

// NewLimiter returns an empty limiter.
func NewLimiter() *Limiter {
	l := &Limiter{seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].buckets = map[string]*bucket{}
	}
	return l
}

// bucket is a token bucket kept as GCRA's theoretical arrival time: tat
// is when the bucket would be full again. Everything is exact integer
// nanoseconds, so rounding never loses a request over time.
type bucket struct {
	tat        int64
	rpm, burst int64
}

// Decision is one Take's answer, with what the x-ratelimit headers show.
type Decision struct {
	Allowed   bool
	Limit     int64         // requests per minute
	Remaining int64         // whole requests left in the bucket now
	Reset     time.Duration // until one more request is available
	// Unavailable: the cluster's bucket could not be reached (an
	// election); the request is refused with 503, not counted.
	Unavailable bool
}

// Take spends one request from key's bucket at now, creating a full bucket
// on first use. A plan change (rpm or burst) applies at once.
func (l *Limiter) Take(key string, rpm, burst int64, now int64) Decision {
	s := &l.shards[maphash.String(l.seed, key)%limiterShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[key]
	if b == nil {
		s.sweep(now)
		b = &bucket{tat: now}
		s.buckets[key] = b
	}
	b.rpm, b.burst = rpm, burst
	interval := minute / rpm
	if b.tat < now {
		b.tat = now
	}
	slack := (burst - 1) * interval // debt the bucket can hold and still admit
	d := Decision{Limit: rpm}
	if b.tat-now <= slack {
		b.tat += interval
		d.Allowed = true
	}
	debt := b.tat - now
	d.Remaining = max(0, (burst*interval-debt)/interval)
	if wait := debt - slack; wait > 0 {
		d.Reset = time.Duration(wait)
	}
	return d
}

// sweep drops buckets that have refilled completely (they carry no
// information), at most once every 1,024 new buckets per shard, so memory
// tracks the accounts active in the last burst/rpm minutes.
func (s *limiterShard) sweep(now int64) {
	s.sweeps++
	if s.sweeps%1024 != 0 {
		return
	}
	for k, b := range s.buckets {
		if b.tat <= now {
			delete(s.buckets, k)
		}
	}
}
