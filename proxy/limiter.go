package proxy

import (
	"hash/maphash"
	"sync"
	"time"

	"zenmux/ledger"
)

// Limiter is the per-account token bucket (Q8) of a single node: it holds
// `burst` requests and refills `rpm` a minute, counted by ledger.GCRA, the
// arithmetic of the cluster's replicated buckets too. State is sharded by
// key so that accounts never contend on one lock; each shard's map only
// holds buckets that were used, and idle buckets that are full again are
// dropped.
type Limiter struct {
	seed   maphash.Seed
	shards [limiterShards]limiterShard
}

// limiterShards is how many locks the per-key caches spread over.
const limiterShards = 64

type limiterShard struct {
	mu   sync.Mutex
	tats map[string]*int64 // each bucket's GCRA time, by pointer: a Take hashes the key once
	// sweeps counts new buckets, to sweep once every 1,024 of them.
	sweeps int
}

// NewLimiter returns an empty limiter.
func NewLimiter() *Limiter {
	l := &Limiter{seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].tats = map[string]*int64{}
	}
	return l
}

// Decision is one Take's answer, with what the x-ratelimit headers show.
type Decision struct {
	Allowed   bool
	Limit     int64         // the bucket's capacity (burst): Remaining never exceeds it
	Remaining int64         // whole requests left in the bucket now
	Reset     time.Duration // until one more request is available
	// Unavailable: the cluster's bucket could not be reached (an
	// election); the request is refused with 503, not counted.
	Unavailable bool
}

// Take spends one request from key's bucket at now, creating a full bucket
// on first use. A plan change (rpm or burst) applies at once: the bucket
// is only its time, read with the rates of each request.
func (l *Limiter) Take(key string, rpm, burst int64, now int64) Decision {
	s := &l.shards[maphash.String(l.seed, key)%limiterShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	tat := s.tats[key]
	if tat == nil {
		s.sweep(now)
		tat = new(int64)
		s.tats[key] = tat
	}
	g := ledger.GCRA{RPM: rpm, Burst: burst}.Take(*tat, now, 1)
	*tat = g.TAT
	return Decision{Allowed: g.Granted == 1, Limit: burst, Remaining: g.Remaining, Reset: time.Duration(g.Wait)}
}

// sweep drops buckets that have refilled completely (they carry no
// information), at most once every 1,024 new buckets per shard, so memory
// tracks the accounts active in the last burst/rpm minutes.
func (s *limiterShard) sweep(now int64) {
	s.sweeps++
	if s.sweeps%1024 != 0 {
		return
	}
	for k, tat := range s.tats {
		if *tat <= now {
			delete(s.tats, k)
		}
	}
}
