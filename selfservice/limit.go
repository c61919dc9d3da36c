package selfservice

import (
	"sync"

	"zenmux/ledger"
)

// maxLimited bounds the buckets one limiter keeps. When it is full after
// dropping the buckets that have refilled, a new name is refused: a flood
// of distinct addresses cannot grow the map without limit, nor empty it to
// reset its own counts (DESIGN.md, invariant 5).
const maxLimited = 1 << 16

// limiter is an in-memory set of token buckets by name (a client address,
// an account id), each rpm a minute holding up to burst, counted by the
// ledger's GCRA so it counts as the plan buckets do. It is per node.
type limiter struct {
	g    ledger.GCRA
	mu   sync.Mutex
	tats map[string]int64
}

func newLimiter(rpm, burst int) *limiter {
	return &limiter{g: ledger.GCRA{RPM: int64(rpm), Burst: int64(burst)}, tats: map[string]int64{}}
}

// take spends one attempt of name's bucket at now. It answers 0 when the
// attempt may go on, else the nanoseconds until one would be allowed.
func (l *limiter) take(name string, now int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	tat, known := l.tats[name]
	if !known && len(l.tats) >= maxLimited {
		for n, t := range l.tats {
			if t <= now {
				delete(l.tats, n)
			}
		}
		if len(l.tats) >= maxLimited {
			return int64(60e9) / l.g.RPM
		}
	}
	gr := l.g.Take(tat, now, 1)
	if gr.Granted == 0 {
		return max(1, gr.Wait)
	}
	l.tats[name] = gr.TAT
	return 0
}
