package proxy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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

// failProposer fails every proposal; lost, when set, applies the batch
// first through inner, as a commit whose answer never arrived.
type failProposer struct {
	mu      sync.Mutex
	inner   ChargeProposer
	lost    bool
	batches [][]string // each proposal's ids, Retry marked with a "+"
}

func (p *failProposer) ProposeCharges(b *ledger.ChargeBatch) ([]ledger.ChargeResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.batches = append(p.batches, batchIDs(b))
	if p.lost {
		if _, err := p.inner.ProposeCharges(b); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("no quorum")
}

func batchIDs(b *ledger.ChargeBatch) []string {
	var ids []string
	for _, c := range b.Charges {
		ids = append(ids, c.ReqID)
	}
	if b.Retry {
		ids = append(ids, "+")
	}
	return ids
}

// okProposer records each proposal's ids and commits it.
type okProposer struct {
	mu      sync.Mutex
	batches [][]string
}

func (p *okProposer) ProposeCharges(b *ledger.ChargeBatch) ([]ledger.ChargeResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.batches = append(p.batches, batchIDs(b))
	return make([]ledger.ChargeResult, len(b.Charges)), nil
}

func (p *okProposer) count() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.batches) }

func (p *okProposer) String() string { p.mu.Lock(); defer p.mu.Unlock(); return fmt.Sprint(p.batches) }

// rule C5: what a closing batcher cannot commit goes to its spool, in the
// batches it was proposed in, and the next batcher over that spool
// proposes those batches again, as retries and before any new charge,
// then removes the spool. A damaged spool is refused.
func TestC5_SpoolKeepsWhatCloseCannotCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "charges.spool")
	fail := &failProposer{}
	b := NewBatcher(fail, BatcherOptions{MaxCharges: 2, Spool: path})
	var mu sync.Mutex
	var errs []string
	cb := func(o ChargeOutcome) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, fmt.Sprint(o.Err))
	}
	charge := func(id string) ledger.Charge {
		return ledger.Charge{ReqID: id, AccountID: "acct_1", KeyID: "key_1", Model: "m", Billing: ledger.BillingSubscription, AdmittedAt: testT0, InputTokens: 7, OutputTokens: 3}
	}
	if err := b.Submit(charge("a"), cb); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for { // "a" alone is in flight, retried, before the rest is queued
		fail.mu.Lock()
		n := len(fail.batches)
		fail.mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for _, id := range []string{"b", "c", "d"} {
		if err := b.Submit(charge(id), cb); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Unsent() != 3 || len(errs) != 4 || !strings.Contains(errs[3], "no quorum; kept in the charge spool") {
		t.Fatalf("unsent %d, outcomes %q", b.Unsent(), errs)
	}
	spooled, err := ReadSpool(path)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, s := range spooled {
		got = append(got, batchIDs(s))
	}
	if fmt.Sprint(got) != "[[a +] [b c] [d]]" { // after "a" was given up, "b c" and "d" were spooled without attempts
		t.Fatalf("spooled %v", got)
	}
	if c := spooled[1].Charges[1]; c != charge("c") {
		t.Fatalf("spooled charge %+v, want %+v", c, charge("c"))
	}

	ok := &okProposer{}
	b2 := NewBatcher(ok, BatcherOptions{MaxCharges: 2, Spool: path, Spooled: spooled})
	defer b2.Close()
	if err := b2.Submit(charge("e"), nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ok.count() < 4 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
	}
	if got := ok.String(); got != "[[a +] [b c +] [d +] [e]]" {
		t.Fatalf("proposed after the restart: %s", got)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the spool was not removed once its batches committed")
		}
	}

	raw, err := os.ReadFile(filepath.Join(filepath.Dir(path), "charges.spool.tmp"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary spool left: %d bytes, %v", len(raw), err)
	}
	if err := writeSpool(path, spooled); err != nil {
		t.Fatal(err)
	}
	whole, _ := os.ReadFile(path)
	for _, bad := range [][]byte{whole[:len(whole)-1], append([]byte("zenmux-charge-spool\x00\x02"), whole[len(spoolHeader):]...), append(whole[:len(whole):len(whole)], 0)} {
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSpool(path); err == nil {
			t.Fatalf("damaged spool read (%d bytes)", len(bad))
		}
	}
}

// rule C5 with the ledger: a spooled batch whose first attempt committed
// (its answer lost) is not applied again when the next start proposes it,
// and one that never committed is charged once: two requests, charged
// once each.
func TestC5_SpooledBatchesChargeOnce(t *testing.T) {
	g := newGateway(t, gatewayOptions{})
	acct, _, _ := g.account("pro")
	path := filepath.Join(t.TempDir(), "charges.spool")
	fail := &failProposer{inner: proposer{g}, lost: true}
	b := NewBatcher(fail, BatcherOptions{Spool: path})
	charge := func(id string) ledger.Charge {
		return ledger.Charge{ReqID: id, AccountID: acct, KeyID: acct + "-subscription", Model: modelGPT, Billing: ledger.BillingSubscription,
			AdmittedAt: g.now.Load(), InputTokens: 1000, OutputTokens: 500}
	}
	if err := b.Submit(charge("req_committed_answer_lost"), nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		fail.mu.Lock()
		n := len(fail.batches)
		if n > 0 {
			fail.lost = false // from now on nothing commits
		}
		fail.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no proposal within 5 s")
		}
	}
	if err := b.Submit(charge("req_never_committed"), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	one := g.usedFlows(acct)
	if one <= 0 || len(g.requests(acct)) != 1 {
		t.Fatalf("before the restart: %d µFlows, %d requests logged", one, len(g.requests(acct)))
	}
	spooled, err := ReadSpool(path)
	if err != nil || len(spooled) != 2 {
		t.Fatalf("spool: %d batches, %v", len(spooled), err)
	}
	b2 := NewBatcher(proposer{g}, BatcherOptions{Spool: path, Spooled: spooled})
	if err := b2.Close(); err != nil { // Close commits the spooled batches first
		t.Fatal(err)
	}
	var ids []string
	for _, e := range g.requests(acct) {
		ids = append(ids, e.ID)
	}
	if got := g.usedFlows(acct); got != 2*one || fmt.Sprint(ids) != "[req_committed_answer_lost req_never_committed]" {
		t.Fatalf("after the restart: %d µFlows (want %d), requests %v", got, 2*one, ids)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("spool left after its batches committed: %v", err)
	}
}

// spyProposer fails every proposal and records, for each, its ids and
// the batches the spool holds at that moment.
type spyProposer struct {
	mu     sync.Mutex
	path   string
	closed func() bool
	after  [][]string // proposals made once the batcher was closed
	seen   []string   // the spool's batches at each of those
}

func (p *spyProposer) ProposeCharges(b *ledger.ChargeBatch) ([]ledger.ChargeResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed() {
		p.after = append(p.after, plainIDs(b))
		var got [][]string
		spooled, err := ReadSpool(p.path)
		for _, s := range spooled {
			got = append(got, plainIDs(s))
		}
		p.seen = append(p.seen, fmt.Sprint(got, err))
	}
	return nil, errors.New("no quorum")
}

// plainIDs is a batch's ids, without its Retry mark.
func plainIDs(b *ledger.ChargeBatch) []string {
	ids := batchIDs(b)
	if b.Retry {
		ids = ids[:len(ids)-1]
	}
	return ids
}

// rule C5 when the stop outlasts its timeout: once closed, the first
// failed commit writes every batch not committed (the one in flight and
// the queue, in the batches they will be proposed in) to the spool before
// the last attempts, which without quorum take a propose timeout each,
// so a node killed meanwhile still has its charges spooled; and once a
// batch is given up, the batches after it are spooled without attempts.
func TestC5_SpoolWrittenBeforeTheLastAttempts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "charges.spool")
	var b *Batcher
	spy := &spyProposer{path: path, closed: func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.closed }}
	b = NewBatcher(spy, BatcherOptions{MaxCharges: 2, Spool: path})
	charge := func(id string) ledger.Charge {
		return ledger.Charge{ReqID: id, AccountID: "acct_1", KeyID: "key_1", Model: "m", Billing: ledger.BillingSubscription, AdmittedAt: testT0, InputTokens: 7, OutputTokens: 3}
	}
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		if err := b.Submit(charge(id), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	spy.mu.Lock()
	defer spy.mu.Unlock()
	if n := len(spy.after); n < 2 {
		t.Fatalf("%d attempts after Close: %v", n, spy.after)
	}
	head := fmt.Sprint(spy.after[0])
	for i, ids := range spy.after {
		if got := fmt.Sprint(ids); got != head {
			t.Fatalf("attempt %d after Close proposed %v: only the batch in flight (%s) is tried, the rest is spooled at once; all: %v", i, ids, head, spy.after)
		}
	}
	want := map[string]string{"[a]": "[[a] [b c] [d e]] <nil>", "[a b]": "[[a b] [c d] [e]] <nil>"}[head]
	if want == "" {
		t.Fatalf("batch in flight %s", head)
	}
	if got := spy.seen[len(spy.seen)-1]; got != want {
		t.Fatalf("the spool at the last attempt: %s, want %s", got, want)
	}
	spooled, err := ReadSpool(path)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, s := range spooled {
		got = append(got, plainIDs(s))
	}
	if fmt.Sprint(got, nil) != want || b.Unsent() != 3 {
		t.Fatalf("spooled at the end %v, unsent %d", got, b.Unsent())
	}
}

// rule C5 for a full queue: a Submit waiting for room when Close comes
// queues its charge (its request was served) instead of failing, and the
// closing batcher commits it; a Submit after Close is refused.
func TestC5_CloseQueuesTheSubmitsWaitingForRoom(t *testing.T) {
	p := &gateProposer{batches: make(chan string, 8), gate: make(chan struct{}, 8)}
	b := NewBatcher(p, BatcherOptions{MaxCharges: 1, MaxQueue: 1})
	charge := func(id string) ledger.Charge {
		return ledger.Charge{ReqID: id, AccountID: "acct_1", KeyID: "key_1", Model: "m", Billing: ledger.BillingSubscription, AdmittedAt: testT0}
	}
	var mu sync.Mutex
	var got []string
	done := func(o ChargeOutcome) { mu.Lock(); got = append(got, fmt.Sprint(o.Result.Reason, o.Err)); mu.Unlock() }
	if err := b.Submit(charge("a"), done); err != nil {
		t.Fatal(err)
	}
	if ids := nextBatch(t, p); ids != "a" { // "a" in flight, held at the gate
		t.Fatalf("first proposal %q", ids)
	}
	if err := b.Submit(charge("b"), done); err != nil { // the queue is full
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- b.Submit(charge("c"), done) }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		buf := make([]byte, 1<<20)
		if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "sync.(*Cond).Wait") && strings.Contains(stacks, "(*Batcher).Submit") {
			break // "c" waits for room
		}
		if time.Now().After(deadline) {
			t.Fatal("the third Submit did not wait for room within 5 s")
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("Submit waiting for room when Close came: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting Submit did not return within 5 s of Close")
	}
	for range 3 {
		p.gate <- struct{}{}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if ids := nextBatch(t, p) + " " + nextBatch(t, p); ids != "b c" {
		t.Fatalf("proposed after the first: %q", ids)
	}
	if fmt.Sprint(got) != "[a<nil> b<nil> c<nil>]" {
		t.Fatalf("outcomes %v", got)
	}
	if err := b.Submit(charge("d"), nil); !errors.Is(err, ErrBatcherClosed) {
		t.Fatalf("Submit after Close: %v", err)
	}
}
