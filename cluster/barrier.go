package cluster

import "sync"

// barriers shares read barriers among the callers that need one at the
// same time: at most one is in flight, and every caller gets one that
// started after it asked (so it sees every write acknowledged before it
// asked). The callers that arrive while one runs share the next. A flood of
// requests with unknown keys on a follower then costs the leader at most one
// read-index call per round trip, not one per request.
type barriers struct {
	mu      sync.Mutex
	running bool
	next    *barrierCall // the barrier the callers arriving now will share
}

type barrierCall struct {
	done chan struct{}
	err  error // set before done is closed
}

// do runs fn, or waits for a run of fn that starts after this call.
func (b *barriers) do(fn func() error) error {
	b.mu.Lock()
	if b.next == nil {
		b.next = &barrierCall{done: make(chan struct{})}
	}
	c := b.next
	if !b.running {
		b.running, b.next = true, nil
		go b.run(c, fn)
	}
	b.mu.Unlock()
	<-c.done
	return c.err
}

func (b *barriers) run(c *barrierCall, fn func() error) {
	for {
		c.err = fn()
		close(c.done)
		b.mu.Lock()
		c, b.next = b.next, nil
		if c == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
	}
}
