package cluster

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent read barriers share runs: 200 callers cost a handful of calls,
// and each caller's run started after it asked (linearizable reads).
func TestBarriersShareRuns(t *testing.T) {
	var b barriers
	var calls atomic.Int64
	var mu sync.Mutex
	var starts []time.Time
	fn := func() error {
		calls.Add(1)
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		return nil
	}
	var wg sync.WaitGroup
	late := make(chan string, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i%20) * time.Millisecond)
			asked := time.Now()
			if err := b.do(fn); err != nil {
				late <- err.Error()
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, s := range starts {
				if !s.Before(asked) {
					return // a run started after it asked and finished before do returned
				}
			}
			late <- "no run started after the caller asked"
		}()
	}
	wg.Wait()
	close(late)
	for msg := range late {
		t.Fatal(msg)
	}
	if n := calls.Load(); n < 1 || n > 40 {
		t.Fatalf("%d runs for 200 callers over ~20 ms of 5 ms runs", n)
	}
}
