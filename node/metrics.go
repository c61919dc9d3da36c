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

// scraped registers the series read at scrape time, so the request path
// pays nothing for them: Raft's leader changes, apply lag and snapshots,
// the rate and quota leases this node holds (none on a single node, ll and
// al nil), and the sessions open in the ledger.
func scraped(m *metrics.Metrics, rep *cluster.Replica, ll *proxy.LeaseLimiter, al *proxy.Allowances) {
	m.Counter("zenmux_raft_leader_changes_total", "Leaders this node has seen take over since it started (its first election included).",
		func() float64 { return float64(rep.RaftStats().LeaderChanges) })
	m.Gauge("zenmux_raft_apply_lag", "Entries this node knows committed and has not applied yet.",
		func() float64 { return float64(rep.RaftStats().ApplyLag) })
	m.Counter("zenmux_raft_snapshots_taken_total", "Snapshots this node persisted (its Raft log compacted) since it started.",
		func() float64 { return float64(rep.RaftStats().SnapshotsTaken) })
	m.Counter("zenmux_raft_snapshots_installed_total", "Snapshots this node installed from a leader since it started.",
		func() float64 { return float64(rep.RaftStats().SnapshotsInstalled) })
	held := func(f func() (int, int64)) (func() float64, func() float64) {
		if f == nil {
			zero := func() float64 { return 0 }
			return zero, zero
		}
		return func() float64 { n, _ := f(); return float64(n) }, func() float64 { _, v := f(); return float64(v) }
	}
	var rate, quota func() (int, int64)
	if ll != nil {
		rate = ll.Held
	}
	if al != nil {
		quota = al.Held
	}
	buckets, requests := held(rate)
	accounts, flows := held(quota)
	m.Gauge("zenmux_rate_leases_held", "Rate buckets this node holds leased, unspent requests of.", buckets)
	m.Gauge("zenmux_rate_leased_requests", "Requests this node holds leased and unspent, over all rate buckets.", requests)
	m.Gauge("zenmux_quota_leases_held", "Accounts this node holds leased, unspent quota allowance of.", accounts)
	m.Gauge("zenmux_quota_leased_micro_flows", "Quota allowance this node holds leased and unspent, in micro-Flows, over all accounts.", flows)
	m.Gauge("zenmux_selfservice_sessions_active", "Self-service sessions open in the ledger (every node's, not expired).",
		func() float64 { return float64(rep.Ledger().ActiveSessions(rep.Now())) })
}
