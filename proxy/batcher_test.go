package proxy

import (
	"strings"
	"sync"
	"testing"
	"time"

	"zenmux/ledger"
)

// gateProposer hands each proposal's request ids to the test and commits
// it when the test opens the gate once; each charge's result names its id.
type gateProposer struct {
	batches chan string // a proposal's ids, joined by spaces
	gate    chan struct{}
}

func (p *gateProposer) ProposeCharges(b *ledger.ChargeBatch) ([]ledger.ChargeResult, error) {
	ids := make([]string, len(b.Charges))
	out := make([]ledger.ChargeResult, len(b.Charges))
	for i := range b.Charges {
		ids[i] = b.Charges[i].ReqID
		out[i] = ledger.ChargeResult{Status: "charged", Reason: b.Charges[i].ReqID}
	}
	p.batches <- strings.Join(ids, " ")
	<-p.gate
	return out, nil
}

// nextBatch waits (at most 5 s) for the batcher's next proposal.
func nextBatch(t *testing.T, p *gateProposer) string {
	t.Helper()
	select {
	case ids := <-p.batches:
		return ids
	case <-time.After(5 * time.Second):
		t.Fatal("no proposal within 5 s")
		return ""
	}
}

// TestBatcherQueueBoundAndOrder: one batch in flight; the charges that
// arrive meanwhile form the next ones, MaxCharges at a time and in order;
// with MaxQueue charges waiting, Submit blocks until a batch is taken; each
// callback gets its own charge's result, in order.
func TestBatcherQueueBoundAndOrder(t *testing.T) {
	p := &gateProposer{batches: make(chan string, 10), gate: make(chan struct{})}
	b := NewBatcher(p, BatcherOptions{MaxCharges: 2, MaxQueue: 3})
	var mu sync.Mutex
	var got []string
	submit := func(id string) error {
		return b.Submit(ledger.Charge{ReqID: id}, func(o ChargeOutcome) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, o.Result.Reason)
		})
	}
	if err := submit("a"); err != nil {
		t.Fatal(err)
	}
	if ids := nextBatch(t, p); ids != "a" {
		t.Fatalf("first proposal %q, want a", ids)
	}
	for _, id := range []string{"b", "c", "d"} { // the queue's three places
		if err := submit(id); err != nil {
			t.Fatal(err)
		}
	}
	fourth := make(chan error, 1)
	go func() { fourth <- submit("e") }()
	select {
	case err := <-fourth:
		t.Fatalf("Submit with MaxQueue charges waiting returned (%v), want it to block", err)
	case <-time.After(50 * time.Millisecond):
	}
	p.gate <- struct{}{} // commit "a": "b c" is taken, which makes room for "e"
	if ids := nextBatch(t, p); ids != "b c" {
		t.Fatalf("second proposal %q, want \"b c\"", ids)
	}
	select {
	case err := <-fourth:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Submit still blocked after a batch was taken")
	}
	p.gate <- struct{}{}
	if ids := nextBatch(t, p); ids != "d e" {
		t.Fatalf("third proposal %q, want \"d e\"", ids)
	}
	p.gate <- struct{}{}
	b.Close()
	if strings.Join(got, " ") != "a b c d e" {
		t.Fatalf("callbacks saw %q, want \"a b c d e\"", got)
	}
	if err := submit("f"); err != ErrBatcherClosed {
		t.Fatalf("Submit after Close: %v, want ErrBatcherClosed", err)
	}
}
