package node

import (
	"time"

	"zenmux/cluster"
	"zenmux/internal/metrics"
	"zenmux/ledger"
	"zenmux/proxy"
)

// Metrics appends the replica's series (leader, applied index), then the
// node's (traffic, latency, money, upstreams, charge commits).
func (s adminStore) Metrics(b []byte) []byte {
	b, err := s.m.Append(s.Replica.Metrics(b))
	if err != nil {
		// A comment line keeps the page parseable and says what is missing.
		b = append(b, "# zenmux metrics could not be gathered: "...)
		b = append(b, err.Error()...)
		b = append(b, '\n')
	}
	return b
}

// meteredCharges is the replica as the batcher's proposer, timing each
// charge batch's commit and counting what the ledger charged.
type meteredCharges struct {
	rep *cluster.Replica
	m   *metrics.Metrics
}

// ProposeCharges commits one batch through the replica and records it.
func (p meteredCharges) ProposeCharges(b *ledger.ChargeBatch) ([]ledger.ChargeResult, error) {
	start := time.Now()
	res, err := p.rep.ProposeCharges(b)
	if err != nil || len(res) != len(b.Charges) {
		return res, err
	}
	cs := make([]metrics.Charge, len(res))
	for i := range res {
		cs[i] = metrics.Charge{Billing: b.Charges[i].Billing, Result: res[i].Status, MicroUSD: res[i].MicroUSD, MicroFlows: res[i].MicroFlows}
	}
	p.m.Committed(time.Since(start), cs)
	return res, err
}

// scraped has /metrics read, at scrape time, Raft's leader changes, apply
// lag and snapshots, the rate and quota leases this node holds (none on a
// single node: ll and al nil), and the sessions open in the ledger.
func scraped(m *metrics.Metrics, rep *cluster.Replica, ll *proxy.LeaseLimiter, al *proxy.Allowances) {
	src := metrics.Sources{
		Raft: func() metrics.Raft {
			st := rep.RaftStats()
			return metrics.Raft{LeaderChanges: st.LeaderChanges, ApplyLag: st.ApplyLag, SnapshotsTaken: st.SnapshotsTaken, SnapshotsInstalled: st.SnapshotsInstalled}
		},
		Sessions: func() int { return rep.Ledger().ActiveSessions(rep.Now()) },
	}
	if ll != nil {
		src.RateLeases = ll.Held
	}
	if al != nil {
		src.QuotaLeases = al.Held
	}
	m.Read(src)
}
