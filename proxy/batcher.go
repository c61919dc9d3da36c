package proxy

import (
	"errors"
	"sync"
	"time"

	"zenmux/ledger"
)

// ChargeProposer commits one batch of charges and returns a result per
// charge, in order. A returned error means the outcome is unknown.
type ChargeProposer interface {
	ProposeCharges(b *ledger.ChargeBatch) ([]ledger.ChargeResult, error)
}

// ErrBatcherClosed is returned for charges submitted after Close.
var ErrBatcherClosed = errors.New("charge batcher closed")

// Batcher groups completed requests' charges into Raft entries (group
// commit): one batch is in flight at a time, and the charges that arrive
// while it commits form the next one, up to MaxCharges. An idle batcher
// proposes a lone charge at once, so batching never adds a wait of its own;
// under load the batch size grows with the commit latency. The queue is
// bounded: Submit blocks when MaxQueue charges are waiting, which slows
// responses instead of dropping usage. The queue's memory follows the
// load, not the bound: a node at 1,000 requests a second holds a few
// dozen charges, not MaxQueue of them (16,000 by default: ~3 MB of heap
// live for good, and the garbage collector's goal twice that).
//
// A batch whose commit fails with an unknown outcome is proposed again,
// unchanged: every charge carries its request id, so the ledger applies it
// at most once (C2).
type Batcher struct {
	prop     ChargeProposer
	maxBatch int
	maxQueue int
	linger   time.Duration
	retry    time.Duration

	mu      sync.Mutex
	cond    *sync.Cond
	pending []pendingCharge
	closed  bool
	done    chan struct{}
}

type pendingCharge struct {
	c    ledger.Charge
	done func(ChargeOutcome)
}

// ChargeOutcome is what a waiter learns about its charge.
type ChargeOutcome struct {
	Result ledger.ChargeResult
	Err    error
}

// BatcherOptions bound the batcher.
type BatcherOptions struct {
	MaxCharges int // charges per Raft entry
	MaxQueue   int // charges waiting before Submit blocks
	// Linger lets a batch gather for up to this long before it is
	// proposed. Only for ack = "async", where no response waits for the
	// commit: at moderate load it turns many one-charge Raft entries into
	// a few larger ones. Zero proposes at once.
	Linger time.Duration
}

// NewBatcher starts a batcher over prop.
func NewBatcher(prop ChargeProposer, o BatcherOptions) *Batcher {
	b := &Batcher{prop: prop, maxBatch: o.MaxCharges, maxQueue: o.MaxQueue, linger: o.Linger, retry: 50 * time.Millisecond, done: make(chan struct{})}
	if b.maxBatch <= 0 {
		b.maxBatch = 1000
	}
	if b.maxQueue <= 0 {
		b.maxQueue = 16 * b.maxBatch
	}
	b.cond = sync.NewCond(&b.mu)
	go b.run()
	return b
}

// Submit queues a charge. done, if not nil, is called with the outcome
// once the charge is committed (or given up at Close); it runs on the
// batcher's goroutine and must not block.
func (b *Batcher) Submit(c ledger.Charge, done func(ChargeOutcome)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for !b.closed && len(b.pending) >= b.maxQueue {
		b.cond.Wait()
	}
	if b.closed {
		return ErrBatcherClosed
	}
	b.pending = append(b.pending, pendingCharge{c: c, done: done})
	b.cond.Broadcast()
	return nil
}

func (b *Batcher) run() {
	defer close(b.done)
	// batch and b.pending trade backing arrays: a queue that fits one
	// batch is taken whole, without a copy.
	var batch []pendingCharge
	for {
		b.mu.Lock()
		for len(b.pending) == 0 && !b.closed {
			b.cond.Wait()
		}
		if len(b.pending) == 0 && b.closed {
			b.mu.Unlock()
			return
		}
		if b.linger > 0 && len(b.pending) < b.maxBatch && !b.closed {
			b.mu.Unlock()
			time.Sleep(b.linger)
			b.mu.Lock()
		}
		if len(b.pending) <= b.maxBatch {
			batch, b.pending = b.pending, batch[:0]
		} else {
			batch = append(batch[:0], b.pending[:b.maxBatch]...)
			rest := copy(b.pending, b.pending[b.maxBatch:])
			clear(b.pending[rest:])
			b.pending = b.pending[:rest]
		}
		b.cond.Broadcast()
		b.mu.Unlock()
		b.commit(batch)
		// The committed charges' strings and callbacks go; an array a
		// backlog grew past two batches goes too, so a burst's queue is
		// not kept.
		clear(batch)
		if cap(batch) > 2*b.maxBatch {
			batch = nil
		}
	}
}

// commit proposes one batch until its outcome is known. Every attempt
// carries the same charges in the same order, and a charge is never put in
// another batch: the ledger finds a retried batch's first attempt by its
// first logged charge (ledger/logblock.go).
func (b *Batcher) commit(batch []pendingCharge) {
	cb := &ledger.ChargeBatch{Charges: make([]ledger.Charge, len(batch))}
	for i := range batch {
		cb.Charges[i] = batch[i].c
	}
	for attempt := 0; ; attempt++ {
		cb.Retry = attempt > 0 // an unknown outcome may have committed it
		results, err := b.prop.ProposeCharges(cb)
		if err == nil && len(results) == len(batch) {
			for i, p := range batch {
				if p.done != nil {
					p.done(ChargeOutcome{Result: results[i]})
				}
			}
			return
		}
		if err == nil {
			err = errors.New("charge results do not match the batch")
		}
		b.mu.Lock()
		closed := b.closed
		b.mu.Unlock()
		if closed && attempt >= 3 {
			for _, p := range batch {
				if p.done != nil {
					p.done(ChargeOutcome{Err: err})
				}
			}
			return
		}
		time.Sleep(b.retry)
	}
}

// Close stops accepting charges, commits what is queued (giving up after a
// few attempts once closed) and returns when the batcher has stopped.
func (b *Batcher) Close() {
	b.mu.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	<-b.done
}
