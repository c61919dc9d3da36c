package metrics

import (
	"bytes"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Metrics holds one node's series. A nil *Metrics records nothing, so a
// gateway built without one (unit tests) needs no checks of its own.
type Metrics struct {
	reg *prometheus.Registry

	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	added           *prometheus.HistogramVec
	upstreamFirst   *prometheus.HistogramVec
	upstreamErrors  *prometheus.CounterVec
	fallbacks       *prometheus.CounterVec
	refusals        *prometheus.CounterVec
	chargedFlows    *prometheus.CounterVec
	chargedUSD      *prometheus.CounterVec
	charges         *prometheus.CounterVec
	commitDuration  prometheus.Histogram
	commitBatchSize prometheus.Histogram
	signIns         *prometheus.CounterVec

	// The series a request touches, each resolved once by its label
	// values (resolved): a sync.Map lookup costs less than
	// client_golang's label hashing and checks, and a surface's two
	// histograms and a status need no second lookup and no string.
	counters  sync.Map // requestLabels → prometheus.Counter
	surfaces  sync.Map // surface → surfaceSeries
	firstByte sync.Map // provider → prometheus.Observer
}

// resolved returns the series cached in m under k, resolving it with
// series the first time.
func resolved[K comparable, V any](m *sync.Map, k K, series func() V) V {
	if v, ok := m.Load(k); ok {
		return v.(V)
	}
	v, _ := m.LoadOrStore(k, series())
	return v.(V)
}

// requestLabels are one requests_total series' label values.
type requestLabels struct {
	surface, billing, model string
	status                  int
}

// surfaceSeries are one surface's histograms.
type surfaceSeries struct{ duration, added prometheus.Observer }

// latencyBuckets span a cached answer (1 ms) to a long generation (5 min).
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// addedBuckets span zenmuxd's own time on a request: tens of µs of
// admission and relay to the tens of ms of a charge committed before the
// answer ends (accounting.ack = "quorum") or a slow election.
var addedBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5}

// commitBuckets span a loopback group commit (100 µs) to an election (10 s).
var commitBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10}

// batchBuckets count charges per Raft entry, up to the configured maximum.
var batchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096}

// New returns a node's series, registered on a registry of their own (not
// the process-wide default, so several nodes in one test process do not
// share counts).
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zenmux_proxy_requests_total",
			Help: "Proxied model requests by surface (endpoint), HTTP status, billing (subscription, payg, or empty before admission) and catalog model (empty before admission).",
		}, []string{"surface", "status", "billing", "model"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "zenmux_proxy_request_duration_seconds",
			Help:    "Time from the request read to the last byte handed to the client (a stream's end included), by surface.",
			Buckets: latencyBuckets,
		}, []string{"surface"}),
		added: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "zenmux_proxy_added_seconds",
			Help:    "zenmuxd's own time on a request, by surface: its duration less the time providers took to answer (each attempt's status and headers) and, for a relayed stream, the relay (the provider generating): so a stream counts its time to the relay's start.",
			Buckets: addedBuckets,
		}, []string{"surface"}),
		upstreamFirst: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "zenmux_upstream_first_byte_seconds",
			Help:    "Time from sending a request to a provider to its answer's status and headers, by provider.",
			Buckets: latencyBuckets,
		}, []string{"provider"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zenmux_upstream_errors_total",
			Help: "Provider calls that failed, by provider and reason (transport: no answer; status_429, status_4xx, status_5xx: the answer's status).",
		}, []string{"provider", "reason"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zenmux_upstream_fallbacks_total",
			Help: "Requests moved to the next provider on a model's route, by the provider that failed.",
		}, []string{"provider"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zenmux_proxy_refusals_total",
			Help: "Requests zenmuxd refused itself, by error code (invalid_api_key, rate_limit_exceeded, quota_exceeded, insufficient_balance, …).",
		}, []string{"code"}),
		chargedFlows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zenmux_charged_micro_flows_total",
			Help: "Flows charged by committed charges this node submitted, in micro-Flows, by billing.",
		}, []string{"billing"}),
		chargedUSD: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zenmux_charged_micro_usd_total",
			Help: "US dollars charged by committed charges this node submitted, in micro-USD, by billing.",
		}, []string{"billing"}),
		charges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zenmux_charges_total",
			Help: "Committed charges this node submitted, by the ledger's result (charged, exists, rejected).",
		}, []string{"result"}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "zenmux_raft_charge_commit_seconds",
			Help:    "Time to commit and apply one charge batch proposal through Raft (one attempt; a retried batch is timed again).",
			Buckets: commitBuckets,
		}),
		commitBatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "zenmux_raft_charge_batch_size",
			Help:    "Charges per committed Raft entry.",
			Buckets: batchBuckets,
		}),
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zenmux_selfservice_sign_ins_total",
			Help: "Sign-in attempts on this node's self-service API, by result (ok, bad_credentials, rate_limited, invalid, error).",
		}, []string{"result"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.added, m.upstreamFirst, m.upstreamErrors, m.fallbacks, m.refusals,
		m.chargedFlows, m.chargedUSD, m.charges, m.commitDuration, m.commitBatchSize, m.signIns)
	return m
}

// Request counts one finished model request; model and billing are the
// admitted ones (from the catalog and the ledger, so their values are
// bounded), never the client's text.
func (m *Metrics) Request(surface string, status int, billing, model string) {
	if m == nil {
		return
	}
	resolved(&m.counters, requestLabels{surface, billing, model, status}, func() prometheus.Counter {
		return m.requests.WithLabelValues(surface, strconv.Itoa(status), billing, model)
	}).Inc()
}

// Duration records a request's total time on the proxy, and zenmuxd's
// own share of it: total less upstream, the time spent on providers.
func (m *Metrics) Duration(surface string, total, upstream time.Duration) {
	if m == nil {
		return
	}
	s := resolved(&m.surfaces, surface, func() surfaceSeries {
		return surfaceSeries{m.duration.WithLabelValues(surface), m.added.WithLabelValues(surface)}
	})
	s.duration.Observe(total.Seconds())
	s.added.Observe(max(total-upstream, 0).Seconds())
}

// UpstreamFirstByte records how long a provider took to answer's headers.
func (m *Metrics) UpstreamFirstByte(provider string, d time.Duration) {
	if m == nil {
		return
	}
	resolved(&m.firstByte, provider, func() prometheus.Observer {
		return m.upstreamFirst.WithLabelValues(provider)
	}).Observe(d.Seconds())
}

// UpstreamError counts a failed provider call: status 0 means no answer.
func (m *Metrics) UpstreamError(provider string, status int) {
	if m == nil {
		return
	}
	reason := "transport"
	switch {
	case status == 429:
		reason = "status_429"
	case status >= 500:
		reason = "status_5xx"
	case status >= 400:
		reason = "status_4xx"
	}
	m.upstreamErrors.WithLabelValues(provider, reason).Inc()
}

// Fallback counts a request moved past a failing provider.
func (m *Metrics) Fallback(provider string) {
	if m == nil {
		return
	}
	m.fallbacks.WithLabelValues(provider).Inc()
}

// Refusal counts a request zenmuxd refused, by its error code.
func (m *Metrics) Refusal(code string) {
	if m == nil {
		return
	}
	m.refusals.WithLabelValues(code).Inc()
}

// Charge is one committed charge's outcome as the metrics read it.
type Charge struct {
	Billing    string
	Result     string // the ledger's: charged, exists, rejected
	MicroUSD   int64
	MicroFlows int64
}

// Committed records one committed charge batch: its commit time, its size,
// and the money of the charges the ledger charged (a retried charge that
// already existed is counted once, as its first commit counted it).
func (m *Metrics) Committed(d time.Duration, charges []Charge) {
	if m == nil {
		return
	}
	m.commitDuration.Observe(d.Seconds())
	m.commitBatchSize.Observe(float64(len(charges)))
	// A batch holds a few results and billings: each series is looked up
	// once per batch, not once per charge.
	var rbuf [3]resultCount
	var bbuf [2]billingSum
	results, money := rbuf[:0], bbuf[:0]
	for i := range charges {
		c := &charges[i]
		results = countResult(results, c.Result)
		if c.Result == "charged" {
			money = addBilling(money, c)
		}
	}
	for _, r := range results {
		m.charges.WithLabelValues(r.result).Add(float64(r.n))
	}
	for _, b := range money {
		m.chargedFlows.WithLabelValues(b.billing).Add(float64(b.microFlows))
		m.chargedUSD.WithLabelValues(b.billing).Add(float64(b.microUSD))
	}
}

type resultCount struct {
	result string
	n      int
}

func countResult(rs []resultCount, result string) []resultCount {
	for i := range rs {
		if rs[i].result == result {
			rs[i].n++
			return rs
		}
	}
	return append(rs, resultCount{result, 1})
}

type billingSum struct {
	billing              string
	microFlows, microUSD int64
}

func addBilling(bs []billingSum, c *Charge) []billingSum {
	for i := range bs {
		if bs[i].billing == c.Billing {
			bs[i].microFlows += c.MicroFlows
			bs[i].microUSD += c.MicroUSD
			return bs
		}
	}
	return append(bs, billingSum{c.Billing, c.MicroFlows, c.MicroUSD})
}

// SignIn counts one self-service sign-in attempt by its result.
func (m *Metrics) SignIn(result string) {
	if m == nil {
		return
	}
	m.signIns.WithLabelValues(result).Inc()
}

// Sources are values kept outside the request path that /metrics reads
// when scraped, so requests pay nothing for them. A nil func reads as 0
// (a single node holds no leases).
type Sources struct {
	// Raft returns Raft's counts since the node started and its lag now.
	Raft func() Raft
	// RateLeases returns the rate buckets this node holds leased
	// requests of, and the requests, unspent.
	RateLeases func() (buckets int, requests int64)
	// QuotaLeases returns the accounts this node holds quota allowance
	// of, and the allowance, unspent, in micro-Flows.
	QuotaLeases func() (accounts int, microFlows int64)
	// Sessions returns the self-service sessions open now.
	Sessions func() int
}

// Raft is what Sources.Raft reads.
type Raft struct {
	LeaderChanges      uint64 // leaders seen taking over (the first election included)
	ApplyLag           uint64 // entries known committed and not applied yet
	SnapshotsTaken     uint64 // snapshots persisted (the log compacted)
	SnapshotsInstalled uint64 // snapshots installed from a leader
}

// Read registers the series read from src at scrape time; call it once.
func (m *Metrics) Read(src Sources) {
	raft := func(f func(Raft) uint64) func() float64 {
		return func() float64 {
			if src.Raft == nil {
				return 0
			}
			return float64(f(src.Raft()))
		}
	}
	pair := func(f func() (int, int64)) (func() float64, func() float64) {
		if f == nil {
			zero := func() float64 { return 0 }
			return zero, zero
		}
		return func() float64 { n, _ := f(); return float64(n) }, func() float64 { _, v := f(); return float64(v) }
	}
	buckets, requests := pair(src.RateLeases)
	accounts, flows := pair(src.QuotaLeases)
	sessions := func() float64 {
		if src.Sessions == nil {
			return 0
		}
		return float64(src.Sessions())
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.reg.MustRegister(
		counter("zenmux_raft_leader_changes_total", "Leaders this node has seen take over since it started (its first election included).",
			raft(func(r Raft) uint64 { return r.LeaderChanges })),
		gauge("zenmux_raft_apply_lag", "Raft entries this node knows committed and has not applied yet.",
			raft(func(r Raft) uint64 { return r.ApplyLag })),
		counter("zenmux_raft_snapshots_taken_total", "Snapshots this node persisted (its Raft log compacted) since it started.",
			raft(func(r Raft) uint64 { return r.SnapshotsTaken })),
		counter("zenmux_raft_snapshots_installed_total", "Snapshots this node installed from a leader since it started.",
			raft(func(r Raft) uint64 { return r.SnapshotsInstalled })),
		gauge("zenmux_rate_leases_held", "Rate buckets this node holds leased, unspent requests of.", buckets),
		gauge("zenmux_rate_leased_requests", "Requests this node holds leased and unspent, over all rate buckets.", requests),
		gauge("zenmux_quota_leases_held", "Accounts this node holds leased, unspent quota allowance of.", accounts),
		gauge("zenmux_quota_leased_micro_flows", "Quota allowance this node holds leased and unspent, in micro-Flows, over all accounts.", flows),
		gauge("zenmux_selfservice_sessions_active", "Self-service sessions open in the ledger (every node's, not expired).", sessions),
	)
}

// Append appends the series in Prometheus text format (0.0.4), for the
// admin listener's /metrics next to its own lines.
func (m *Metrics) Append(b []byte) ([]byte, error) {
	families, err := m.reg.Gather()
	if err != nil {
		return b, err
	}
	buf := bytes.NewBuffer(b)
	for _, f := range families {
		if _, err := expfmt.MetricFamilyToText(buf, f); err != nil {
			return buf.Bytes(), err
		}
	}
	return buf.Bytes(), nil
}
