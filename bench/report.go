package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the JSON result file.
type Report struct {
	Meta    Meta                               `json:"meta"`
	Targets []string                           `json:"targets"`
	Results map[string]map[string]*PhaseResult `json:"results"`           // target → phase → result
	Cluster []*ClusterResult                   `json:"cluster,omitempty"` // -cluster: one per ack mode
	// the self-service reads: each single node, then per cluster its
	// leader and its follower
	SelfService []*SelfServiceResult `json:"self_service,omitempty"`
	Checks      []Check              `json:"checks"`
	Errors      []string             `json:"errors,omitempty"`

	// the streams against a relay (streams.go)
	Streams *StreamsResult `json:"streams,omitempty"`
	// the group-commit runs (commit.go)
	Commit *CommitResult `json:"commit,omitempty"`
}

// Meta describes the run.
type Meta struct {
	StartedAt      string             `json:"started_at"`
	GitHead        string             `json:"git_head,omitempty"`
	GoVersion      string             `json:"go_version"`
	NumCPU         int                `json:"num_cpu"`
	GOMAXPROCS     int                `json:"gomaxprocs"`
	DurationS      float64            `json:"duration_s"`
	WarmupS        float64            `json:"warmup_s"`
	Conns          int                `json:"conns"`
	OpenWorkers    int                `json:"open_loop_workers"`
	StreamRate     float64            `json:"stream_rate"`
	Chunks         int                `json:"stream_chunks"`
	ChunkDelayMS   float64            `json:"chunk_delay_ms"`
	TimeoutS       float64            `json:"request_timeout_s"`
	Quick          bool               `json:"quick"`
	Single         bool               `json:"single_node_run"` // false with -cluster-only
	ClusterAcks    []string           `json:"cluster_acks,omitempty"`
	PlanFlows      float64            `json:"plan_flows"`
	LoadAvgStart   string             `json:"loadavg_start"`
	LoadAvgEnd     string             `json:"loadavg_end"`
	StubServed     map[string]int64   `json:"stub_served"`
	IdleCPUPercent map[string]float64 `json:"idle_cpu_pct"`
	StartRSSMiB    map[string]float64 `json:"start_rss_mib"` // after setup, before any load
	LatencyOrigin  string             `json:"latency_origin"`
	CPUResolution  string             `json:"cpu_resolution"`
	AddedLatencyIs string             `json:"added_latency_is"`
}

// PhaseResult is one target's measurement in one phase.
type PhaseResult struct {
	Mode            string           `json:"mode"`
	Rate            float64          `json:"rate,omitempty"`
	Conns           int              `json:"conns,omitempty"`
	WindowS         float64          `json:"window_s"`
	Sent            int64            `json:"sent"`
	OK              int64            `json:"ok"`
	Non200          int64            `json:"non_200"`
	Errors          int64            `json:"errors"`
	Statuses        map[string]int64 `json:"statuses"`
	ErrorSamples    []string         `json:"error_samples,omitempty"`
	WarmupNon200    int64            `json:"warmup_non_200"`
	WarmupErrors    int64            `json:"warmup_errors"`
	ReqPerSec       float64          `json:"ok_per_s"`
	Latency         *Dist            `json:"latency,omitempty"`
	TTFB            *Dist            `json:"ttfb,omitempty"`
	DispatchLag     *Dist            `json:"dispatch_lag,omitempty"`
	CPUSeconds      *float64         `json:"cpu_s,omitempty"`
	CPUMicrosPerReq *float64         `json:"cpu_us_per_req,omitempty"`
	RSSMaxMiB       *float64         `json:"rss_max_mib,omitempty"`
	BenchCPUPercent float64          `json:"bench_process_cpu_pct"`
}

// Check is one acceptance criterion.
type Check struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
}

func newReport(o options, root string) *Report {
	return &Report{
		Meta: Meta{
			StartedAt: time.Now().UTC().Format(time.RFC3339), GitHead: gitHead(root), GoVersion: goVersion(),
			NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), DurationS: o.duration.Seconds(), WarmupS: o.warmup.Seconds(),
			Conns: o.conns, OpenWorkers: o.workers, StreamRate: o.streamRate, Chunks: o.chunks,
			ChunkDelayMS: float64(o.chunkDelay) / 1e6, TimeoutS: o.timeout.Seconds(), Quick: o.quick, PlanFlows: benchFlows,
			Single:         !o.clusterOnly,
			LatencyOrigin:  "open-loop and stream latencies run from each request's scheduled send time; closed-loop from its actual send",
			CPUResolution:  "utime+stime from /proc/<pid>/stat, 10 ms ticks",
			AddedLatencyIs: "target percentile minus direct percentile, same phase",
		},
		Results: map[string]map[string]*PhaseResult{},
	}
}

func phaseResult(ph phase, o options, s, warm *runStats) *PhaseResult {
	r := &PhaseResult{Mode: ph.Mode, WindowS: s.Window.Seconds(), Sent: s.Sent, OK: s.OK, Non200: s.Non200, Errors: s.Errors,
		Statuses: statusString(s.Statuses), ErrorSamples: s.ErrSamples, WarmupNon200: warm.Non200, WarmupErrors: warm.Errors,
		Latency: s.Lat, TTFB: s.TTFB, DispatchLag: s.Lag}
	if ph.Mode == "closed" {
		r.Conns = o.conns
	} else {
		r.Rate = ph.Rate
	}
	if s.Window > 0 {
		r.ReqPerSec = float64(s.OK) / s.Window.Seconds()
	}
	return r
}

func (r *Report) get(target, phase string) *PhaseResult {
	if m := r.Results[target]; m != nil {
		return m[phase]
	}
	return nil
}

// badAnswers counts non-200 answers and failed requests, warm-ups
// included, clusters included.
func (r *Report) badAnswers() int64 {
	var n int64
	for _, m := range r.Results {
		for _, p := range m {
			n += p.bad()
		}
	}
	for _, c := range r.Cluster {
		for _, p := range c.Results {
			n += p.bad()
		}
	}
	for _, s := range r.SelfService {
		n += s.All.bad()
	}
	sb, _ := r.streamsBad()
	return n + sb
}

func (p *PhaseResult) bad() int64 {
	if p == nil {
		return 0
	}
	return p.Non200 + p.Errors + p.WarmupNon200 + p.WarmupErrors
}

func (r *Report) allPass() bool {
	for _, c := range r.Checks {
		if !c.Pass {
			return false
		}
	}
	return true
}

// added is target's percentile minus direct's in one phase; ok is false
// when either is missing.
func (r *Report) added(target, phase string, pick func(*Dist) float64) (float64, bool) {
	t, d := r.get(target, phase), r.get("direct", phase)
	if t == nil || d == nil || t.Latency == nil || d.Latency == nil {
		return 0, false
	}
	return pick(t.Latency) - pick(d.Latency), true
}

func p50(d *Dist) float64 { return d.P50 }
func p90(d *Dist) float64 { return d.P90 }
func p99(d *Dist) float64 { return d.P99 }

// checks evaluates the acceptance criteria.
func (r *Report) checks() {
	add := func(name string, pass bool, detail string) {
		r.Checks = append(r.Checks, Check{Name: name, Pass: pass, Detail: detail})
	}
	if len(r.Targets) > 0 { // the single-node run happened (not -cluster-only)
		r.singleChecks(add)
	}
	r.selfServiceChecks(add)
	r.streamsChecks(add)
	r.commitChecks(add)
	r.answerCheck(add)
}

// singleChecks are the single-node run's performance criteria.
func (r *Report) singleChecks(add func(name string, pass bool, detail string)) {
	const async, quorum, low = "zenmuxd-async", "zenmuxd-quorum", "rate1000"

	// The bounds are #13's (item 9), each judged against the do-nothing
	// proxy measured in the same run. The CPU bound is checked at max
	// throughput, where the reference (noproxy: ~26 µs per request) was
	// taken; at a fixed low rate every process pays per-request wake-ups
	// that dwarf its work, which the 1000 req/s column shows separately.
	if p := r.get(async, "max"); p != nil && p.CPUMicrosPerReq != nil {
		detail := fmt.Sprintf("%.1f µs/req", *p.CPUMicrosPerReq)
		if n := r.get("noproxy", "max"); n != nil && n.CPUMicrosPerReq != nil {
			detail += fmt.Sprintf(" (noproxy %.1f)", *n.CPUMicrosPerReq)
		}
		add("zenmuxd-async CPU ≤ 35 µs/req (at max throughput)", *p.CPUMicrosPerReq <= 35, detail)
	} else {
		add("zenmuxd-async CPU ≤ 35 µs/req (at max throughput)", false, "no data")
	}

	if a, d := r.get(async, "max"), r.get("direct", "max"); a != nil && d != nil && d.ReqPerSec > 0 {
		pct := 100 * a.ReqPerSec / d.ReqPerSec
		add("zenmuxd-async max throughput ≥ 28% of direct", pct >= 28, fmt.Sprintf("%.1f%% (%.0f of %.0f req/s)", pct, a.ReqPerSec, d.ReqPerSec))
	} else {
		add("zenmuxd-async max throughput ≥ 28% of direct", false, "no data")
	}

	// The noproxy baseline is clamped at 0: noise can make it negative,
	// and a proxy cannot really take time away.
	a50, ok1 := r.added(async, low, p50)
	n50, ok2 := r.added("noproxy", low, p50)
	if ok1 && ok2 {
		bound := math.Max(n50, 0) + 50
		add("zenmuxd-async added p50 at 1000 req/s ≤ noproxy added + 50 µs", a50 <= bound, fmt.Sprintf("%.0f µs vs bound %.0f µs (noproxy added %.0f µs)", a50, bound, n50))
	} else {
		add("zenmuxd-async added p50 at 1000 req/s ≤ noproxy added + 50 µs", false, "no data")
	}
	a99, ok1 := r.added(async, low, p99)
	n99, ok2 := r.added("noproxy", low, p99)
	if ok1 && ok2 {
		bound := 2 * math.Max(n99, 0)
		add("zenmuxd-async added p99 at 1000 req/s ≤ 2 × noproxy added", a99 <= bound, fmt.Sprintf("%.0f µs vs bound %.0f µs (noproxy added %.0f µs)", a99, bound, n99))
	} else {
		add("zenmuxd-async added p99 at 1000 req/s ≤ 2 × noproxy added", false, "no data")
	}

	if q99, ok := r.added(quorum, low, p99); ok {
		add("zenmuxd-quorum added p99 at 1000 req/s ≤ 2 ms", q99 <= 2000, fmt.Sprintf("%.0f µs", q99))
	} else {
		add("zenmuxd-quorum added p99 at 1000 req/s ≤ 2 ms", false, "no data")
	}

	for _, t := range []string{async, quorum} {
		name := t + " RSS at 1000 req/s ≤ 48 MiB"
		if p := r.get(t, low); p != nil && p.RSSMaxMiB != nil {
			add(name, *p.RSSMaxMiB <= 48, fmt.Sprintf("max %.1f MiB", *p.RSSMaxMiB))
		} else {
			add(name, false, "no data")
		}
	}

}

// answerCheck: every answer in every run was a complete 200.
func (r *Report) answerCheck(add func(name string, pass bool, detail string)) {
	bad := r.badAnswers()
	var where []string
	for _, t := range r.Targets {
		for _, ph := range []string{"max", "rate1000", "rate3000", "stream"} {
			if p := r.get(t, ph); p != nil {
				if n := p.bad(); n > 0 {
					where = append(where, fmt.Sprintf("%s/%s: %d non-200 %v, %d errors %q", t, ph, p.Non200+p.WarmupNon200, p.Statuses, p.Errors+p.WarmupErrors, p.ErrorSamples))
				}
			}
		}
	}
	for _, c := range r.Cluster {
		for _, t := range clusterTargets {
			if p := c.Results[t]; p.bad() > 0 {
				where = append(where, fmt.Sprintf("cluster %s %s: %d non-200 %v, %d errors %q", c.Ack, t, p.Non200+p.WarmupNon200, p.Statuses, p.Errors+p.WarmupErrors, p.ErrorSamples))
			}
		}
	}
	for _, s := range r.SelfService {
		if p := s.All; p.bad() > 0 {
			where = append(where, fmt.Sprintf("self-service %s: %d non-200 %v, %d errors %q", s.name(), p.Non200+p.WarmupNon200, p.Statuses, p.Errors+p.WarmupErrors, p.ErrorSamples))
		}
	}
	_, sw := r.streamsBad()
	where = append(where, sw...)
	detail := "0 (warm-ups included)"
	if bad > 0 {
		detail = fmt.Sprintf("%d: %s", bad, strings.Join(where, "; "))
	}
	if len(r.Errors) > 0 {
		detail += fmt.Sprintf("; %d target(s) failed", len(r.Errors))
	}
	add("every answer is a 200 with a complete body", bad == 0 && len(r.Errors) == 0, detail)
}

func (r *Report) write(path string) error { return writeJSON(path, r) }

// writeJSON writes v, indented, to path (through a temp file).
func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// print writes the table and the checks.
func (r *Report) print(w io.Writer, out string) {
	m := r.Meta
	fmt.Fprintf(w, "zenmuxd bench  %s  %s  %d CPUs (GOMAXPROCS %d)  %gs per measurement after %gs warm-up  conns %d  load avg %s → %s\n",
		m.GitHead, m.GoVersion, m.NumCPU, m.GOMAXPROCS, m.DurationS, m.WarmupS, m.Conns, m.LoadAvgStart, m.LoadAvgEnd)
	if len(r.Targets) > 0 {
		r.printSingle(w)
	}
	if len(r.Cluster) > 0 {
		r.printCluster(w)
	}
	if len(r.SelfService) > 0 {
		r.printSelfService(w)
	}
	if r.Streams != nil {
		r.printStreams(w)
	}
	if r.Commit != nil {
		r.printCommit(w)
	}
	fmt.Fprintln(w)
	for _, c := range r.Checks {
		v := "PASS"
		if !c.Pass {
			v = "FAIL"
		}
		fmt.Fprintf(w, "%s  %s: %s\n", v, c.Name, c.Detail)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "ERROR %s\n", e)
	}
	fmt.Fprintf(w, "\nresults: %s\n", out)
}

// printSingle writes the single-node table.
func (r *Report) printSingle(w io.Writer) {
	m := r.Meta
	fmt.Fprintf(w, "latencies in µs; fixed-rate and stream latencies from the scheduled send time; +X = added vs direct; CPU µs/req and RSS at 1000 req/s, CPU@max at max throughput\n\n")

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tmax req/s\t% direct\t1k p50/p90/p99\t3k p50/p90/p99\t+1k p50/p90/p99\t+3k p50/p90/p99\tTTFB p50/p99\tCPU µs/req\tCPU@max\tRSS MiB\tnon-200+err\t")
	dmax := r.get("direct", "max")
	for _, t := range r.Targets {
		row := []string{t}
		mx := r.get(t, "max")
		if mx != nil {
			row = append(row, fmt.Sprintf("%.0f", mx.ReqPerSec))
			if dmax != nil && dmax.ReqPerSec > 0 {
				row = append(row, fmt.Sprintf("%.0f%%", 100*mx.ReqPerSec/dmax.ReqPerSec))
			} else {
				row = append(row, "-")
			}
		} else {
			row = append(row, "-", "-")
		}
		for _, ph := range []string{"rate1000", "rate3000"} {
			if p := r.get(t, ph); p != nil && p.Latency != nil {
				row = append(row, fmt.Sprintf("%.0f/%.0f/%.0f", p.Latency.P50, p.Latency.P90, p.Latency.P99))
			} else {
				row = append(row, "-")
			}
		}
		for _, ph := range []string{"rate1000", "rate3000"} {
			a, ok := r.added(t, ph, p50)
			b, _ := r.added(t, ph, p90)
			c, _ := r.added(t, ph, p99)
			if ok && t != "direct" {
				row = append(row, fmt.Sprintf("%+.0f/%+.0f/%+.0f", a, b, c))
			} else {
				row = append(row, "-")
			}
		}
		if p := r.get(t, "stream"); p != nil && p.TTFB != nil {
			row = append(row, fmt.Sprintf("%.0f/%.0f", p.TTFB.P50, p.TTFB.P99))
		} else {
			row = append(row, "-")
		}
		p := r.get(t, "rate1000")
		if p != nil && p.CPUMicrosPerReq != nil {
			row = append(row, fmt.Sprintf("%.1f", *p.CPUMicrosPerReq))
		} else {
			row = append(row, "-")
		}
		if mx != nil && mx.CPUMicrosPerReq != nil {
			row = append(row, fmt.Sprintf("%.1f", *mx.CPUMicrosPerReq))
		} else {
			row = append(row, "-")
		}
		if p != nil && p.RSSMaxMiB != nil {
			row = append(row, fmt.Sprintf("%.1f", *p.RSSMaxMiB))
		} else {
			row = append(row, "-")
		}
		var bad int64
		for _, ph := range []string{"max", "rate1000", "rate3000", "stream"} {
			if q := r.get(t, ph); q != nil {
				bad += q.Non200 + q.Errors + q.WarmupNon200 + q.WarmupErrors
			}
		}
		row = append(row, fmt.Sprint(bad))
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()

	if len(m.IdleCPUPercent) > 0 {
		var parts []string
		for _, t := range r.Targets {
			if v, ok := m.IdleCPUPercent[t]; ok {
				parts = append(parts, fmt.Sprintf("%s %.1f%%", t, v))
			}
		}
		fmt.Fprintf(w, "\nidle CPU before the runs (1 s, one core = 100%%): %s\n", strings.Join(parts, ", "))
	}
	if len(m.StartRSSMiB) > 0 {
		var parts []string
		for _, t := range r.Targets {
			if v, ok := m.StartRSSMiB[t]; ok {
				parts = append(parts, fmt.Sprintf("%s %.1f", t, v))
			}
		}
		fmt.Fprintf(w, "RSS MiB before any load: %s (RSS grows with requests served; the 1000 req/s run comes after max throughput)\n", strings.Join(parts, ", "))
	}
}

// printCluster writes the cluster table: per cluster, direct, the
// leader's proxy, a follower's proxy, and the follower − leader row.
func (r *Report) printCluster(w io.Writer) {
	fmt.Fprintf(w, "\n%d-node cluster at %d req/s: latencies in µs from the scheduled send time; +X = added vs direct, measured just before in the same run; CPU µs/req: the node taking the load / all %d nodes\n\n", clusterSize, rateLow, clusterSize)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ack\ttarget\tnode\tp50/p90/p99\t+p50/p90/p99\tCPU µs/req\tnon-200+err\t")
	lat := func(p *PhaseResult) string {
		if p == nil || p.Latency == nil {
			return "-"
		}
		return fmt.Sprintf("%.0f/%.0f/%.0f", p.Latency.P50, p.Latency.P90, p.Latency.P99)
	}
	diff := func(d *Delta) string {
		if d == nil {
			return "-"
		}
		return fmt.Sprintf("%+.0f/%+.0f/%+.0f", d.P50, d.P90, d.P99)
	}
	for _, c := range r.Cluster {
		for _, t := range clusterTargets {
			p := c.Results[t]
			node, cpu := "-", "-"
			switch t {
			case "cluster-leader":
				node = c.LeaderID
			case "cluster-follower":
				node = c.FollowerID
			}
			if per, ok := c.NodeCPUMicrosPerReq[t]; ok {
				cpu = fmt.Sprintf("%.1f/%.1f", per[node], per["total"])
			}
			added := "-"
			if t != "direct" {
				added = diff(c.Added[t])
			}
			bad := "-"
			if p != nil {
				bad = fmt.Sprint(p.bad())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", c.Ack, t, node, lat(p), added, cpu, bad)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", c.Ack, "follower − leader", "", diff(c.FollowerMinusLeader), "", "", "")
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, c := range r.Cluster {
		if c.Error != "" {
			fmt.Fprintf(w, "cluster %s: FAILED: %s\n", c.Ack, firstLine(c.Error))
			continue
		}
		after := c.LeaderIDAfter
		if after == "" {
			after = "?"
		}
		var idle []string
		for _, id := range []string{"n1", "n2", "n3"} {
			if v, ok := c.IdleCPUPercent[id]; ok {
				idle = append(idle, fmt.Sprintf("%s %.1f%%", id, v))
			}
		}
		fmt.Fprintf(w, "cluster %s: formed in %.1f s; leader %s (after the runs: %s), follower measured %s; idle CPU while direct ran: %s\n",
			c.Ack, c.SetupS, c.LeaderID, after, c.FollowerID, strings.Join(idle, ", "))
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
