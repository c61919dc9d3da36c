package ledger

import (
	"fmt"
	"testing"
	"time"
)

// dueBench is 100,000 accounts, every tenth subscribed, one a second.
func dueBench(b *testing.B) *fixture {
	f := newFixture(b)
	for i := range 100_000 {
		id := fmt.Sprint("a", i)
		f.must(&CreateAccount{ID: id, Email: id + "@x.io"})
		if i%10 == 0 {
			f.advance(time.Second)
			f.must(&Subscribe{Idem: f.idem("s"), AccountID: id, Plan: "pro"})
		}
	}
	return f
}

// BenchmarkNextDue is the leader's once-a-second question "has some
// cycle ended?" over dueBench's accounts. It holds the ledger's read lock,
// so charges wait for it.
func BenchmarkNextDue(b *testing.B) {
	f := dueBench(b)
	b.ResetTimer()
	for range b.N {
		if f.l.NextDue(f.now) {
			b.Fatal("nothing is due yet")
		}
	}
}

// BenchmarkTickOneDue is a Tick that renews one of dueBench's accounts,
// under the ledger's write lock.
func BenchmarkTickOneDue(b *testing.B) {
	f := dueBench(b)
	f.now = time.Unix(0, t0).AddDate(0, 1, 0).UnixNano() // the first cycle ends
	b.ResetTimer()
	for range b.N {
		f.advance(time.Second)
		f.do(&Tick{})
	}
}
