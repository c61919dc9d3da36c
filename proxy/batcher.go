package proxy

import (
	"errors"
	"fmt"
	"slices"
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
// at most once (C2). Once closed, a batcher gives a batch a few more
// attempts; with a spool (BatcherOptions.Spool) the batches still not
// committed then are written to it (first at the first failed attempt,
// before the last ones, which without quorum can outlast the stop), and
// the next batcher over that spool proposes them again, as retries,
// before any new charge (C5).
type Batcher struct {
	prop     ChargeProposer
	maxBatch int
	maxQueue int
	linger   time.Duration
	retry    time.Duration
	spool    string

	mu      sync.Mutex
	cond    *sync.Cond
	pending []pendingCharge
	closed  bool
	// closing: Close was called; Submit refuses new charges, and those
	// waiting for room are queued before closed is set. waiting counts
	// them.
	closing bool
	waiting int
	done    chan struct{}

	// Owned by run: the spool's batches not yet committed, and the ones
	// given up at Close (with the one in flight); spoolErr is set before
	// done is closed. givenUp is the error a batch was given up with
	// once closed; spooledAhead, that the spool was written before the
	// last attempts (spoolAhead).
	spooled      []*ledger.ChargeBatch
	unsent       []*ledger.ChargeBatch
	spoolErr     error
	givenUp      error
	spooledAhead bool
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
	// Spool is the file Close writes the batches it could not commit to;
	// Spooled are the batches read from it at start (ReadSpool), committed
	// first. No spool: batches not committed at Close are given up.
	Spool   string
	Spooled []*ledger.ChargeBatch
}

// NewBatcher starts a batcher over prop.
func NewBatcher(prop ChargeProposer, o BatcherOptions) *Batcher {
	b := &Batcher{prop: prop, maxBatch: o.MaxCharges, maxQueue: o.MaxQueue, linger: o.Linger, retry: 50 * time.Millisecond, done: make(chan struct{}),
		spool: o.Spool, spooled: o.Spooled}
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
// batcher's goroutine and must not block. A Submit waiting for room when
// Close comes queues its charge past the bound: its request was served,
// and refused, the charge would be neither committed nor spooled (C5).
func (b *Batcher) Submit(c ledger.Charge, done func(ChargeOutcome)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return ErrBatcherClosed
	}
	for !b.closing && len(b.pending) >= b.maxQueue {
		b.waiting++
		b.cond.Wait()
		b.waiting--
	}
	b.pending = append(b.pending, pendingCharge{c: c, done: done})
	b.cond.Broadcast()
	return nil
}

func (b *Batcher) run() {
	defer close(b.done)
	if len(b.spooled) > 0 {
		// The last run's batches go first, each as a retry: its first
		// attempt may have committed without the answer arriving.
		for len(b.spooled) > 0 && b.commit(b.spooled[0], nil, 1) {
			b.spooled = b.spooled[1:]
		}
		if len(b.spooled) == 0 && !b.spooledAhead {
			b.spoolErr = writeSpool(b.spool, nil)
		}
	}
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
			if b.spool != "" && (len(b.spooled)+len(b.unsent) > 0 || b.spoolErr != nil || b.spooledAhead) {
				b.spoolErr = writeSpool(b.spool, append(b.spooled, b.unsent...))
			}
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
		b.commitQueued(batch)
		// The committed charges' strings and callbacks go; an array a
		// backlog grew past two batches goes too, so a burst's queue is
		// not kept.
		clear(batch)
		if cap(batch) > 2*b.maxBatch {
			batch = nil
		}
	}
}

// commitQueued commits one batch of queued charges and answers each
// charge's callback; a batch given up at Close is kept for the spool.
func (b *Batcher) commitQueued(batch []pendingCharge) {
	cb := &ledger.ChargeBatch{Charges: make([]ledger.Charge, len(batch))}
	for i := range batch {
		cb.Charges[i] = batch[i].c
	}
	// Listed while in flight, for spoolAhead; taken off once committed.
	b.unsent = append(b.unsent, cb)
	if b.commit(cb, batch, 0) {
		b.unsent[len(b.unsent)-1] = nil
		b.unsent = b.unsent[:len(b.unsent)-1]
	}
}

// commit proposes cb until its outcome is known, from attempt (a retry
// from 1 on), and reports whether it committed; once the batcher is
// closed it gives up after a few more attempts; with a spool, once one
// batch was given up, it gives up the next ones without any, to the
// spool: the cluster cannot commit, and each attempt without quorum takes
// a propose timeout, which would hold the stop for minutes. Every attempt
// carries the same charges in the same order, and a charge is never put
// in another batch: the ledger finds a retried batch's first attempt by
// its first logged charge (ledger/logblock.go). The callback of queued[i],
// if any, gets charge i's outcome; a spooled batch has none.
func (b *Batcher) commit(cb *ledger.ChargeBatch, queued []pendingCharge, attempt int) bool {
	failedClosed := 0
	for ; ; attempt++ {
		if b.givenUp != nil {
			return b.giveUp(b.givenUp, queued)
		}
		cb.Retry = attempt > 0 // an unknown outcome may have committed it
		results, err := b.prop.ProposeCharges(cb)
		if err == nil && len(results) == len(cb.Charges) {
			for i, p := range queued {
				if p.done != nil {
					p.done(ChargeOutcome{Result: results[i]})
				}
			}
			return true
		}
		if err == nil {
			err = errors.New("charge results do not match the batch")
		}
		b.mu.Lock()
		closed := b.closed
		b.mu.Unlock()
		if closed {
			if b.spool != "" && !b.spooledAhead {
				b.spoolAhead()
			}
			if failedClosed++; failedClosed > 3 {
				if b.spool != "" { // without one, each batch gets its attempts
					b.givenUp = err
				}
				return b.giveUp(err, queued)
			}
		}
		time.Sleep(b.retry)
	}
}

// giveUp answers a batch given up at Close with err; it returns false.
func (b *Batcher) giveUp(err error, queued []pendingCharge) bool {
	if b.spool != "" {
		err = fmt.Errorf("%w; kept in the charge spool for the next start", err)
	}
	for _, p := range queued {
		if p.done != nil {
			p.done(ChargeOutcome{Err: err})
		}
	}
	return false
}

// spoolAhead writes to the spool, at the first failed commit once closed,
// every batch not committed yet: the spool's and those given up, the one
// in flight among them, then the queue, in the batches run will propose
// it in (MaxCharges each, in order; nothing joins it once closed). The
// last attempts without quorum can outlast the stop's timeout: a node
// killed meanwhile has its charges in the spool. run rewrites the spool
// with what is left when it returns; a batch in it that did commit is
// recognised when the next start proposes it again, as a retry (C2).
func (b *Batcher) spoolAhead() {
	b.spooledAhead = true
	batches := append(slices.Clone(b.spooled), b.unsent...)
	b.mu.Lock()
	for rest := b.pending; len(rest) > 0; {
		cb := &ledger.ChargeBatch{Charges: make([]ledger.Charge, min(len(rest), b.maxBatch))}
		for i := range cb.Charges {
			cb.Charges[i] = rest[i].c
		}
		batches = append(batches, cb)
		rest = rest[len(cb.Charges):]
	}
	b.mu.Unlock()
	b.spoolErr = writeSpool(b.spool, batches)
}

// Close stops accepting charges, commits what is queued (giving up after a
// few attempts once closed), writes what it gave up to the spool, and
// returns when the batcher has stopped; the error is the spool's.
func (b *Batcher) Close() error {
	b.mu.Lock()
	b.closing = true
	b.cond.Broadcast()
	for b.waiting > 0 {
		b.cond.Wait()
	}
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	<-b.done
	return b.spoolErr
}

// Unsent is, after Close, how many batches were not committed: written
// to the spool when the batcher has one, lost otherwise.
func (b *Batcher) Unsent() int {
	<-b.done
	return len(b.spooled) + len(b.unsent)
}
