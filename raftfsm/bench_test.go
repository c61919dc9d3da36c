package raftfsm

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"zenmux/ledger"
)

// BenchmarkCommitChargeBatch measures a single-node commit of one Raft
// entry of 1,000 charges: encode, append to the synced Pebble log, apply
// to the ledger and write state, on this machine's disk. It reports the
// commit latency p50/p99 and the charge rate, with 1 proposer (latency)
// and 4 concurrent proposers (throughput, as the batcher will run).
func BenchmarkCommitChargeBatch(b *testing.B) {
	for _, proposers := range []int{1, 4} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			benchCommit(b, proposers)
		})
	}
}

func benchCommit(b *testing.B, proposers int) {
	s := openStore(b, b.TempDir(), freeAddr(b), 0)
	defer s.Close()
	seed(b, s)
	const accounts, batch = 1000, 1000
	for i := 0; i < accounts; i++ {
		id := fmt.Sprint("a", i)
		propose(b, s, &ledger.CreateAccount{ID: id, Email: id + "@x.io"}, t0)
		propose(b, s, &ledger.CreateKey{AccountID: id, KeyID: "k" + id, Kind: ledger.KindSubscription, Hash: ledger.HashSecret(id), Last4: "abcd"}, t0)
	}
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	var wg sync.WaitGroup
	next := make(chan int, b.N)
	for n := 0; n < b.N; n++ {
		next <- n
	}
	close(next)
	b.ResetTimer()
	for p := 0; p < proposers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			charges := make([]ledger.Charge, batch)
			for n := range next {
				for i := range charges {
					id := fmt.Sprint("a", i%accounts)
					charges[i] = ledger.Charge{ReqID: fmt.Sprintf("r%d-%d", n, i), AccountID: id, KeyID: "k" + id, Model: ledger.EchoModelID, AdmittedAt: t0 + int64(n),
						Billing: ledger.BillingSubscription, InputTokens: 1200, OutputTokens: 300}
				}
				start := time.Now()
				if _, err := s.Propose(&ledger.ChargeBatch{Charges: charges}, t0+int64(n), 10*time.Second); err != nil {
					b.Error(err)
					return
				}
				d := time.Since(start)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	reportCommits(b, lat, batch)
}

// reportCommits reports commit latency p50/p99 and the charge rate.
func reportCommits(b *testing.B, lat []time.Duration, batch int) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "charges/s")
}
