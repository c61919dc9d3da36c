package raftfsm

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble"

	"zenmux/ledger"
)

// BenchmarkCheckpointWrite measures one checkpoint as the FSM writes it
// under bench -commit's load: 100 ms of charges at 55,000/s (5,500 over
// 1,000 accounts, admitted by three nodes whose batches interleave),
// encoded into a batch and committed to the state's memtable. Apply is
// not timed.
func BenchmarkCheckpointWrite(b *testing.B) {
	cache := pebble.NewCache(8 << 20)
	defer cache.Unref()
	pebbleOpts := pebbleOptions(cache, 16, true)
	pebbleOpts.DisableWAL = true
	db, err := pebble.Open(filepath.Join(b.TempDir(), "state"), pebbleOpts)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	l := ledger.New()
	cmds := []ledger.Command{&ledger.Seed{NanoUSDPerFlow: ledger.DefaultNanoUSDPerFlow, Plans: ledger.DefaultPlans(), Models: ledger.DefaultModels(), DedupeDays: 7, RequestLogDays: 30, LogFormat: ledger.LogFormatCurrent}}
	const accounts, perCheckpoint, nodes, perBatch = 1000, 5500, 3, 30
	for i := range accounts {
		id := fmt.Sprint("acct_", i)
		cmds = append(cmds, &ledger.CreateAccount{ID: id, Email: id + "@bench.example"})
	}
	for _, c := range cmds {
		if r := l.Apply(c, t0); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	sent := make([]int, nodes)
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		for i := 0; i < perCheckpoint/perBatch; i++ {
			node := i % nodes
			batch := &ledger.ChargeBatch{}
			for range perBatch {
				k := sent[node]
				sent[node]++
				batch.Charges = append(batch.Charges, ledger.Charge{ReqID: fmt.Sprintf("n%d-%d", node, k), AccountID: fmt.Sprint("acct_", (k*7+node)%accounts),
					Model: ledger.EchoModelID, Billing: ledger.BillingSubscription, AdmittedAt: t0 + int64(k*nodes+node)*1000, InputTokens: 1200, OutputTokens: 300})
			}
			if r := l.Apply(batch, t0+int64(n)); r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		b.StartTimer()
		changes := l.TakeChanges()
		wb := db.NewBatchWithSize(changes.SizeHint())
		if err := changes.Write(&batchWriter{b: wb}); err != nil {
			b.Fatal(err)
		}
		if err := wb.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		wb.Close()
	}
}
