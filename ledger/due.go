package ledger

import (
	"container/heap"
	"sort"
)

// dueQueue holds every paid account's cycle end (S5), earliest first, so
// that neither the leader's once-a-second NextDue nor a Tick scans every
// account. markAccount queues an account's cycle end whenever it differs
// from the one queued last (Account.dueQueued); entries left behind by a
// renewal, a settle or a drop to Free are skipped when they come up.
// Derived from the accounts: Load rebuilds it.
type dueQueue []dueEntry

type dueEntry struct {
	end int64
	id  string
}

func (q dueQueue) Len() int { return len(q) }
func (q dueQueue) Less(i, j int) bool {
	if q[i].end != q[j].end {
		return q[i].end < q[j].end
	}
	return q[i].id < q[j].id
}
func (q dueQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *dueQueue) Push(x any)   { *q = append(*q, x.(dueEntry)) }
func (q *dueQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// dueAt is when a paid account next needs settling: its cycle end, or
// the deadline of a card renewal not paid yet (PAY5), whichever is first.
func (a *Account) dueAt() int64 {
	if a.Sub.RenewalIntent != "" {
		return min(a.Sub.CycleEnd, a.Sub.RenewalDeadline)
	}
	return a.Sub.CycleEnd
}

// queueDue queues a's due time if a is paid and it changed.
func (l *Ledger) queueDue(a *Account) {
	if a.paid() && a.dueAt() != a.dueQueued {
		a.dueQueued = a.dueAt()
		heap.Push(&l.due, dueEntry{end: a.dueQueued, id: a.ID})
	}
}

// takeDue removes the entries due by now and returns the ids of the
// accounts whose current cycle ended, in id order: exactly the paid
// accounts with a cycle end ≤ now.
func (l *Ledger) takeDue(now int64) []string {
	var ids []string
	for len(l.due) > 0 && l.due[0].end <= now {
		e := heap.Pop(&l.due).(dueEntry)
		a := l.accounts[e.id]
		if a == nil || a.dueQueued != e.end {
			continue // left behind: a later cycle end is queued
		}
		a.dueQueued = 0
		if a.paid() && a.dueAt() == e.end {
			ids = append(ids, e.id)
		}
	}
	sort.Strings(ids)
	return ids
}
