package raftfsm

import (
	"fmt"
	"io"
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

// BenchmarkClusterCommit measures group commit on a three-node cluster in
// one process over real loopback TCP (authenticated transport): entries of
// `batch` charges proposed by 4 concurrent proposers on the leader; it
// reports charges/s and commit latency p50/p99.
func BenchmarkClusterCommit(b *testing.B) {
	for _, batch := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchCluster(b, batch) })
	}
}

func benchCluster(b *testing.B, batch int) {
	secret := []byte("bench-cluster-secret-0123456789")
	var stores []*Store
	for i := 1; i <= 3; i++ {
		s, err := Open(Options{NodeID: fmt.Sprint("n", i), Dir: b.TempDir(), RaftAddr: freeAddr(b), Bootstrap: i == 1, Secret: secret, LogOutput: io.Discard})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	leader := stores[0]
	if err := leader.WaitLeader(10 * time.Second); err != nil {
		b.Fatal(err)
	}
	for _, s := range stores[1:] {
		if err := leader.AddVoter(s.nodeID, string(s.trans.LocalAddr()), 10*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	seed(b, leader)
	const accounts = 1000
	for i := 0; i < accounts; i++ {
		id := fmt.Sprint("a", i)
		propose(b, leader, &ledger.CreateAccount{ID: id, Email: id + "@x.io"}, t0)
	}
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	next := make(chan int, b.N)
	for n := 0; n < b.N; n++ {
		next <- n
	}
	close(next)
	var wg sync.WaitGroup
	b.ResetTimer()
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			charges := make([]ledger.Charge, batch)
			for n := range next {
				for i := range charges {
					charges[i] = ledger.Charge{ReqID: fmt.Sprintf("r%d-%d", n, i), AccountID: fmt.Sprint("a", (n*batch+i)%accounts), Model: ledger.EchoModelID,
						Billing: ledger.BillingSubscription, AdmittedAt: t0 + int64(n), InputTokens: 1200, OutputTokens: 300}
				}
				start := time.Now()
				if _, err := leader.Propose(&ledger.ChargeBatch{Charges: charges}, t0+int64(n), 10*time.Second); err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(start))
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
