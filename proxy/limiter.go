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
	tokenScale    = 1_000_000 // tokens are counted in millionths
	minute        = int64(time.Minute)
)

type limiterShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	sweeps  int
}

type bucket struct {
	microTokens int64
	last        int64 // Unix nanos of the last refill
	rpm, burst  int64
}

// NewLimiter returns an empty limiter.
func NewLimiter() *Limiter {
	l := &Limiter{seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].buckets = map[string]*bucket{}
	}
	return l
}

// Decision is one Take's answer, with what the x-ratelimit headers show.
type Decision struct {
	Allowed   bool
	Limit     int64         // requests per minute
	Remaining int64         // whole requests left in the bucket now
	Reset     time.Duration // until one more request is available
}

func (b *bucket) refill(now int64) {
	if now <= b.last {
		return
	}
	add := (now - b.last) * b.rpm * tokenScale / minute
	b.microTokens = min(b.burst*tokenScale, b.microTokens+add)
	b.last = now
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
		b = &bucket{microTokens: burst * tokenScale, last: now, rpm: rpm, burst: burst}
		s.buckets[key] = b
	}
	b.rpm, b.burst = rpm, burst
	b.refill(now)
	d := Decision{Limit: rpm}
	if b.microTokens >= tokenScale {
		b.microTokens -= tokenScale
		d.Allowed = true
	}
	d.Remaining = b.microTokens / tokenScale
	if missing := tokenScale - b.microTokens%tokenScale; b.microTokens < b.burst*tokenScale {
		d.Reset = time.Duration(missing * minute / (rpm * tokenScale))
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
		b.refill(now)
		if b.microTokens >= b.burst*tokenScale {
			delete(s.buckets, k)
		}
	}
}
