package proxy

import (
	"hash/maphash"
	"sync"
	"time"
)

// LeaseOptions configure a lease cache (NewLeaseLimiter, NewAllowances).
type LeaseOptions struct {
	// Now is the clock leases expire by, in Unix nanoseconds; nil means
	// the wall clock. A node passes its own clock; tests freeze it.
	Now func() int64
}

// leaseCache is what LeaseLimiter (requests leased from rate buckets) and
// Allowances (µFlows leased from quota windows) share: per key, an amount
// leased from the ledger through Raft that this node spends in memory,
// and when that lease expires — ttl after it was granted. An amount still
// unspent after that goes back to the ledger, so it is not stranded on a
// node the key's traffic left, and a key with nothing left is forgotten.
// S is each cache's own state per key.
type leaseCache[S any] struct {
	now func() int64
	ttl int64
	// giveBack returns n unspent to the ledger (a Raft round trip); s is
	// the key's state when the amount was taken off it.
	giveBack func(key string, n int64, s S)
	seed     maphash.Seed
	shards   [limiterShards]leaseShard[S]
	stop     chan struct{}
	done     chan struct{}
}

type leaseShard[S any] struct {
	mu sync.Mutex
	m  map[string]*lease[S]
}

// lease is one key's entry. Its lock is held across a lease round trip,
// so a key has one lease in flight at a time.
type lease[S any] struct {
	mu      sync.Mutex
	amount  int64 // leased and not yet spent
	expires int64 // Unix ns after which the unspent amount goes back
	gone    bool  // swept from its shard: a holder looks the key up again
	state   S
}

// newLeaseCache starts a cache and its return loop, which sweeps every
// ttl/2.
func newLeaseCache[S any](o LeaseOptions, ttl time.Duration, giveBack func(key string, n int64, s S)) *leaseCache[S] {
	c := &leaseCache[S]{now: o.Now, ttl: int64(ttl), giveBack: giveBack, seed: maphash.MakeSeed(), stop: make(chan struct{}), done: make(chan struct{})}
	if c.now == nil {
		c.now = func() int64 { return time.Now().UnixNano() }
	}
	for i := range c.shards {
		c.shards[i].m = map[string]*lease[S]{}
	}
	go c.returnLoop(ttl / 2)
	return c
}

// lock returns key's entry, locked, creating an empty one on first use.
// An entry swept between the lookup and the lock is no longer the key's:
// what was leased into it would never go back, so the key is looked up
// again (a sweep removes an entry at most once a tick, so this ends).
func (c *leaseCache[S]) lock(key string) *lease[S] {
	s := &c.shards[maphash.String(c.seed, key)%limiterShards]
	for {
		s.mu.Lock()
		e := s.m[key]
		if e == nil {
			e = &lease[S]{}
			s.m[key] = e
		}
		s.mu.Unlock()
		e.mu.Lock()
		if !e.gone {
			return e
		}
		e.mu.Unlock()
	}
}

// leased adds a grant to a locked entry; its lease now expires ttl from
// now.
func (c *leaseCache[S]) leased(e *lease[S], granted int64) {
	e.amount += granted
	e.expires = c.now() + c.ttl
}

// release gives back a locked entry's unspent amount in the background:
// the Raft round trip must hold neither the entry nor a sweep.
func (c *leaseCache[S]) release(key string, e *lease[S]) {
	if e.amount > 0 {
		n := e.amount
		e.amount = 0
		go c.giveBack(key, n, e.state)
	}
}

// sweep gives back what expired before now and forgets the keys that
// hold nothing. An entry busy with a lease round trip is skipped: its
// lease is about to be fresh.
func (c *leaseCache[S]) sweep(now int64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for key, e := range s.m {
			if !e.mu.TryLock() {
				continue
			}
			if now > e.expires {
				c.release(key, e)
				if e.amount == 0 {
					e.gone = true
					delete(s.m, key)
				}
			}
			e.mu.Unlock()
		}
		s.mu.Unlock()
	}
}

func (c *leaseCache[S]) returnLoop(every time.Duration) {
	defer close(c.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.sweep(c.now())
		}
	}
}

// held counts the keys holding an unspent lease and the amount they hold,
// for the node's metrics at scrape time. An entry busy with a lease round
// trip counts as a key holding one, its amount unread: the scrape waits
// for no round trip.
func (c *leaseCache[S]) held() (keys int, amount int64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, e := range s.m {
			if !e.mu.TryLock() {
				keys++
				continue
			}
			if e.amount > 0 {
				keys++
				amount += e.amount
			}
			e.mu.Unlock()
		}
		s.mu.Unlock()
	}
	return keys, amount
}

// close stops the return loop.
func (c *leaseCache[S]) close() {
	close(c.stop)
	<-c.done
}

// drain gives back every unspent amount, expired or not, and waits for
// each return.
func (c *leaseCache[S]) drain() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for key, e := range s.m {
			e.mu.Lock()
			if e.amount > 0 {
				c.giveBack(key, e.amount, e.state)
				e.amount = 0
			}
			e.mu.Unlock()
		}
		s.mu.Unlock()
	}
}
