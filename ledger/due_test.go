package ledger

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// rule S5: the due queue finds exactly the paid accounts whose cycle has
// ended — what a scan of every account finds — through a seeded random
// run of subscribes, plan changes, cancels, refunds (failed, canceled,
// succeeded), lazy settles, ticks, time jumps and reloads.
func TestS5_DueQueueMatchesScan(t *testing.T) {
	f := newFixture(t)
	w := memWriter{}
	f.l.SetDurable(w)
	rng := rand.New(rand.NewPCG(4, 2))
	var accts []string
	for range 12 {
		a, _ := f.account()
		accts = append(accts, a)
	}
	scan := func() []string {
		var ids []string
		for id, a := range f.l.accounts {
			if a.paid() && f.now >= a.Sub.CycleEnd {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		return ids
	}
	plans := []string{"pro", "max"}
	refunds := 0
	settled := 0
	for step := range 3000 {
		a := accts[rng.IntN(len(accts))]
		op := rng.IntN(10)
		switch op {
		case 0, 1:
			f.do(&Subscribe{Idem: f.idem("s"), AccountID: a, Plan: plans[rng.IntN(2)]})
		case 2:
			f.do(&ChangePlan{Idem: f.idem("c"), AccountID: a, Plan: []string{"free", "pro", "max"}[rng.IntN(3)]})
		case 3:
			f.do(&Cancel{AccountID: a})
		case 4:
			refunds++
			f.do(&RefundSubmit{Idem: f.idem("r"), AccountID: a, RefundID: fmt.Sprint("rf", refunds)})
		case 5:
			if refunds > 0 {
				f.do(&RefundStatus{Idem: f.idem("st"), RefundID: fmt.Sprint("rf", 1+rng.IntN(refunds)),
					Status: []string{RefundFailed, RefundCanceled, RefundSucceeded}[rng.IntN(3)]})
			}
		case 6, 7:
			f.advance(time.Duration(rng.Int64N(int64(40 * 24 * time.Hour))))
		case 8:
			want := scan()
			if len(want) > 0 && !f.l.NextDue(f.now) {
				t.Fatalf("step %d: %d accounts due by a scan, NextDue says no", step, len(want))
			}
			got := f.must(&Tick{})["settled"]
			if fmt.Sprint(got) != fmt.Sprint(len(want)) {
				t.Fatalf("step %d: Tick settled %v, a scan found %d due", step, got, len(want))
			}
			settled += len(want)
			if left := scan(); len(left) > 0 && !f.l.NextDue(f.now) {
				t.Fatalf("step %d: still due after the Tick (maxCycles), NextDue says no", step)
			}
		case 9:
			if err := f.l.Flush(w); err != nil {
				t.Fatal(err)
			}
			l, err := Load(w.scan, w)
			if err != nil {
				t.Fatal(err)
			}
			f.l = l
		}
		if len(scan()) > 0 && !f.l.NextDue(f.now) {
			t.Fatalf("step %d (op %d): an account is due by a scan, NextDue says no", step, op)
		}
	}
	if settled < 50 {
		t.Fatalf("only %d accounts settled by ticks: the run did not exercise renewals", settled)
	}
}
