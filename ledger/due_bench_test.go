package ledger

import (
	"fmt"
	"testing"
)

// BenchmarkNextDue is the leader's once-a-second question "has some
// cycle ended?" over 100,000 accounts, a tenth of them subscribed. It
// holds the ledger's read lock, so charges wait for it.
func BenchmarkNextDue(b *testing.B) {
	f := newFixture(b)
	for i := range 100_000 {
		id := fmt.Sprint("a", i)
		f.must(&CreateAccount{ID: id, Email: id + "@x.io"})
		if i%10 == 0 {
			f.must(&Subscribe{Idem: f.idem("s"), AccountID: id, Plan: "pro"})
		}
	}
	b.ResetTimer()
	for range b.N {
		if f.l.NextDue(f.now) {
			b.Fatal("nothing is due yet")
		}
	}
}
