package ledger

import (
	"bytes"
	"container/heap"
)

// expiryQueue holds when each session, sign-in link and decided plan
// request is to be removed, earliest first, so that they go at their time
// without a scan (B2, B3, B4, C4). The sweep runs before every command on
// ledger time alone, so every replica removes the same records at the same
// index. An entry whose record is gone, or was replaced with another
// time, is skipped when it comes up. Derived from the records: Load
// rebuilds it.
type expiryQueue []expiryEntry

// Kinds of expiry entries.
const (
	expirySession byte = iota + 1
	expiryLink
	expiryPlanRequest
)

type expiryEntry struct {
	at   int64
	kind byte
	hash [32]byte // a session's or a link's
	id   string   // a plan request's
}

func (q expiryQueue) Len() int { return len(q) }
func (q expiryQueue) Less(i, j int) bool {
	a, b := &q[i], &q[j]
	switch {
	case a.at != b.at:
		return a.at < b.at
	case a.kind != b.kind:
		return a.kind < b.kind
	case a.hash != b.hash:
		return bytes.Compare(a.hash[:], b.hash[:]) < 0
	}
	return a.id < b.id
}
func (q expiryQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *expiryQueue) Push(x any)   { *q = append(*q, x.(expiryEntry)) }
func (q *expiryQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func (l *Ledger) queueExpiry(e expiryEntry) {
	heap.Push(&l.expiries, e)
	l.compactExpiries()
}

// compactExpiries bounds the entries left behind by sessions ended early
// (a sign-out, a revoked or rotated key, an account's oldest making room),
// which would otherwise stay until their time, up to 30 days: when the
// queue outgrows twice the live records, it is rebuilt from them. The
// queue is derived, so this changes nothing replicated.
func (l *Ledger) compactExpiries() {
	if live := len(l.sessions) + len(l.links) + len(l.planReqs); len(l.expiries) > 2*live+64 {
		l.rebuildExpiries()
	}
}

// rebuildExpiries makes the queue again from the records.
func (l *Ledger) rebuildExpiries() {
	q := l.expiries[:0]
	for h, s := range l.sessions {
		q = append(q, expiryEntry{at: s.ExpiresAt, kind: expirySession, hash: h})
	}
	for h, k := range l.links {
		q = append(q, expiryEntry{at: k.ExpiresAt, kind: expiryLink, hash: h})
	}
	for id, r := range l.planReqs {
		if r.DecidedAt != 0 {
			q = append(q, expiryEntry{at: r.DecidedAt + planRequestKeep, kind: expiryPlanRequest, id: id})
		}
	}
	heap.Init(&q)
	l.expiries = q
}

// sweepExpired removes every session, link and decided plan request whose
// time came by now; it answers how many.
func (l *Ledger) sweepExpired(now int64) int {
	n := 0
	for len(l.expiries) > 0 && l.expiries[0].at <= now {
		e := heap.Pop(&l.expiries).(expiryEntry)
		switch e.kind {
		case expirySession:
			if s := l.sessions[e.hash]; s != nil && s.ExpiresAt == e.at {
				l.endSession(s)
				n++
			}
		case expiryLink:
			if k := l.links[e.hash]; k != nil && k.ExpiresAt == e.at {
				delete(l.links, e.hash)
				l.markLink(e.hash)
				n++
			}
		case expiryPlanRequest:
			if r := l.planReqs[e.id]; r != nil && r.DecidedAt != 0 && r.DecidedAt+planRequestKeep == e.at {
				delete(l.planReqs, e.id)
				l.markPlanRequest(e.id)
				n++
			}
		}
	}
	return n
}
