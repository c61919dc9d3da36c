package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"zenmux/config"
	"zenmux/ledger"
	"zenmux/proxy"
	"zenmux/raftfsm"
)

// commitOptions shape the group-commit benchmark (-commit).
type commitOptions struct {
	rate       int           // offered charges per second, over the three nodes
	accounts   int           // accounts the charges are spread over
	memtableMB int           // the nodes' node.memtable_mb
	duration   time.Duration // measured window
	warmup     time.Duration
	// fsm is what the nodes' FSMs do: real (the ledger), null (charge
	// batches left unapplied: the replication floor) or alternate (rounds
	// of a real cluster then a null one).
	fsm    string
	rounds int // alternate: real-then-null rounds
	// cpuProfile, if set, receives a CPU profile of the whole run (a
	// single run only).
	cpuProfile string
}

// CommitResult is -commit's part of the report: every run in the order it
// ran and, with -commit-fsm alternate, the rounds compared.
type CommitResult struct {
	FSM  string          `json:"fsm"` // real, null or alternate
	Runs []*CommitReport `json:"runs"`
	// alternate only: per round (a real run, then a null one) the two
	// p99s and their ratio; the median p99 of each FSM over the rounds
	// and the ratio of those medians, which the bound judges.
	Rounds          []CommitRound `json:"rounds,omitempty"`
	MedianRealP99US float64       `json:"median_real_p99_us,omitempty"`
	MedianNullP99US float64       `json:"median_null_p99_us,omitempty"`
	RatioOfMedians  float64       `json:"ratio_of_medians,omitempty"`
	// Pass: every -commit check passed.
	Pass bool `json:"pass"`
}

// CommitRound is one real run and the null run after it.
type CommitRound struct {
	RealP99US float64 `json:"real_p99_us"`
	NullP99US float64 `json:"null_p99_us"`
	Ratio     float64 `json:"ratio"`
}

// CommitReport is what -commit measures, written as JSON.
type CommitReport struct {
	StartedAt       string  `json:"started_at"`
	GitHead         string  `json:"git_head"`
	NumCPU          int     `json:"num_cpu"`
	Nodes           int     `json:"nodes"`
	FSM             string  `json:"fsm"`
	Accounts        int     `json:"accounts"`
	MemtableMB      int     `json:"memtable_mb"`
	OfferedPerS     int     `json:"offered_charges_per_s"`
	DurationS       float64 `json:"duration_s"`
	Submitted       int64   `json:"submitted"`
	CommittedPerS   float64 `json:"committed_charges_per_s"`
	Latency         *Dist   `json:"commit_latency"` // per charge, µs
	Entries         int64   `json:"raft_entries"`
	ChargesPerEntry float64 `json:"charges_per_entry"`
	EntryLatency    *Dist   `json:"entry_commit"` // per Raft entry, µs
	// Slow splits the latency of the charges over the p99 target.
	Slow           *SlowCharges `json:"slow_charges,omitempty"`
	GOMAXPROCS     int          `json:"gomaxprocs"`
	StateHashEqual bool         `json:"state_hashes_equal"`
	Charged        int64        `json:"charged"`
	LatencyIs      string       `json:"latency_is"`
}

// SlowCharges says where the time of the charges slower than the p99
// target went, as three parts that add up to their latency: the
// benchmark's own submitter running late (a starved CPU), the wait in the
// node's batcher for the entry ahead to commit, and the commit of the
// entry that carried them. Distributions in µs.
type SlowCharges struct {
	Count        int   `json:"count"`
	SubmitterLag *Dist `json:"submitter_late"`
	Queued       *Dist `json:"queued_behind_entry_ahead"`
	InEntry      *Dist `json:"in_own_entry"`
}

// Acceptance of the cluster issue: at least this many charges committed
// per second, with a commit latency p99 at most this (judged on a single
// run; it also splits off the slow charges).
const (
	commitTargetPerS = 50_000
	commitTargetP99  = 10 * time.Millisecond
)

// commitRatioBound is #13's (item 7): the real ledger's commit p99 at most
// this times the null FSM's, as the ratio of the medians of alternating
// runs in one session.
const commitRatioBound = 1.5

// runCommitOnly runs -commit: one cluster of -commit-fsm real or null, or
// -commit-rounds rounds of a real cluster then a null one, each fresh in a
// data dir of its own; then report() judges, writes and prints them.
func runCommitOnly(ctx context.Context, o options, tmp, root string) int {
	c := o.commitOpts
	c.duration, c.warmup = o.duration, o.warmup
	fsms, rounds := []string{c.fsm}, 1
	if c.fsm == "alternate" {
		fsms, rounds = []string{"real", "null"}, c.rounds
	}
	runs := rounds * len(fsms)
	fmt.Fprintf(os.Stderr, "bench: group commit, %d charges/s for %s after a %s warm-up, %d run(s): %s\n",
		c.rate, c.duration, c.warmup, runs, strings.Join(fsms, " then "))
	prog := newProgress(runs, time.Duration(runs)*(c.warmup+c.duration+3*time.Second))
	defer prog.finish()
	rep := newReport(o, root)
	rep.Commit = &CommitResult{FSM: c.fsm}
	rep.Meta.LoadAvgStart = loadAvg()
	for r := 1; r <= rounds; r++ {
		for _, fsm := range fsms {
			prog.step(len(rep.Commit.Runs)+1, fmt.Sprintf("round %d · %s FSM", r, fsm))
			dir := filepath.Join(tmp, fmt.Sprintf("commit-%d-%s", r, fsm))
			run, err := runCommit(ctx, c, fsm, dir, root)
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			if err == nil && !o.keep {
				err = os.RemoveAll(dir)
			}
			if err != nil {
				return failed(prog, err)
			}
			rep.Commit.Runs = append(rep.Commit.Runs, run)
		}
	}
	rep.Meta.LoadAvgEnd = loadAvg()
	prog.finish()
	rep.Commit.compare()
	return report(rep, o)
}

// compare fills an alternate run's rounds, medians and ratio: the runs
// alternate real, null, real, null, ….
func (c *CommitResult) compare() {
	if c.FSM != "alternate" {
		return
	}
	var real, null []float64
	for i := 0; i+1 < len(c.Runs); i += 2 {
		rd := CommitRound{RealP99US: c.Runs[i].Latency.P99, NullP99US: c.Runs[i+1].Latency.P99}
		rd.Ratio = rd.RealP99US / rd.NullP99US
		c.Rounds = append(c.Rounds, rd)
		real, null = append(real, rd.RealP99US), append(null, rd.NullP99US)
	}
	c.MedianRealP99US, c.MedianNullP99US = median(real), median(null)
	c.RatioOfMedians = c.MedianRealP99US / c.MedianNullP99US
}

// median of xs (0 when empty); sorts xs.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// commitChecks are -commit's criteria: every run keeps every charge and
// the replicas agree; the real ledger holds the offered throughput; a
// single run's p99 is within the cluster issue's bound, alternating runs'
// within #13's ratio of the null FSM's.
func (r *Report) commitChecks(add func(name string, pass bool, detail string)) {
	c := r.Commit
	if c == nil {
		return
	}
	c.Pass = true
	check := func(name string, pass bool, detail string) {
		c.Pass = c.Pass && pass
		add(name, pass, detail)
	}
	alternate := c.FSM == "alternate"
	var broken, rates []string
	rateOK := true
	for i, run := range c.Runs {
		if !run.StateHashEqual || run.Charged != run.Submitted {
			broken = append(broken, fmt.Sprintf("run %d (%s): %d of %d charged, state hashes equal %v", i+1, run.FSM, run.Charged, run.Submitted, run.StateHashEqual))
		}
		if alternate && run.FSM != "real" {
			continue
		}
		rates = append(rates, fmt.Sprintf("%.0f", run.CommittedPerS))
		rateOK = rateOK && run.CommittedPerS >= commitTargetPerS
	}
	keptDetail := fmt.Sprintf("%d run(s)", len(c.Runs))
	if len(broken) > 0 {
		keptDetail = strings.Join(broken, "; ")
	}
	check("every run: every charge charged, state hashes equal", len(broken) == 0 && len(c.Runs) > 0, keptDetail)
	which := "the run"
	if alternate {
		which = "every real run"
	}
	check(fmt.Sprintf("%s commits ≥ %d charges/s", which, commitTargetPerS), rateOK && len(rates) > 0, strings.Join(rates, ", ")+" charges/s")
	if !alternate {
		p99 := c.Runs[0].Latency.P99
		check(fmt.Sprintf("commit p99 ≤ %d ms", commitTargetP99.Milliseconds()), p99 <= us(commitTargetP99), fmt.Sprintf("%.2f ms", p99/1e3))
		return
	}
	check(fmt.Sprintf("real commit p99 ≤ %g × null (ratio of the medians, %d alternating round(s))", commitRatioBound, len(c.Rounds)),
		len(c.Rounds) > 0 && c.RatioOfMedians <= commitRatioBound,
		fmt.Sprintf("%.2f× (real %.2f ms, null %.2f ms)", c.RatioOfMedians, c.MedianRealP99US/1e3, c.MedianNullP99US/1e3))
}

// printCommit writes every run, then an alternate run's rounds.
func (r *Report) printCommit(w io.Writer) {
	c := r.Commit
	for i, run := range c.Runs {
		if c.FSM == "alternate" {
			fmt.Fprintf(w, "\nround %d, run %d of %d:", i/2+1, i+1, len(c.Runs))
		}
		run.print(w)
	}
	if len(c.Rounds) == 0 {
		return
	}
	fmt.Fprintf(w, "\ncommit p99, real against null, alternating in this session (ms)\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\treal p99\tnull p99\treal/null\t")
	for i, rd := range c.Rounds {
		fmt.Fprintf(tw, "%d\t%.2f\t%.2f\t%.2f\t\n", i+1, rd.RealP99US/1e3, rd.NullP99US/1e3, rd.Ratio)
	}
	fmt.Fprintf(tw, "median\t%.2f\t%.2f\t%.2f\t\n", c.MedianRealP99US/1e3, c.MedianNullP99US/1e3, c.RatioOfMedians)
	tw.Flush()
	fmt.Fprintf(w, "ratio of the medians %.2f (bound %g)\n", c.RatioOfMedians, commitRatioBound)
}

// runCommit starts three raftfsm stores in this process, joined over
// loopback TCP with the authenticated transport, seeds accounts, and runs
// one charge batcher per node — the proxy's, with the node's default
// settings — fed on a fixed schedule. A follower's batcher proposes on the
// leader directly (the HTTP forwarding hop is what -cluster measures). A
// charge's latency runs from its scheduled submit time to the batcher's
// callback with its committed result.
//
// Three nodes in one process share one Go scheduler: it gets the Ps three
// zenmuxd processes would have (3 × NumCPU), so a node's background work
// does not hold back another's request path more than the kernel would.
// fsm is real or null; the nodes' data dirs go under dir.
func runCommit(ctx context.Context, o commitOptions, fsm, dir, root string) (*CommitReport, error) {
	null := fsm == "null"
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3 * runtime.NumCPU()))
	defaults := config.Default()
	secret := []byte("bench-commit-cluster-secret-0123456789")
	var stores []*raftfsm.Store
	defer func() {
		for _, s := range stores {
			s.Close()
		}
	}()
	for i := 1; i <= 3; i++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		s, err := raftfsm.Open(raftfsm.Options{NodeID: fmt.Sprint("n", i), Dir: filepath.Join(dir, fmt.Sprint("commit-n", i)), RaftAddr: addr,
			Bootstrap: i == 1, Secret: secret, SnapshotEvery: uint64(defaults.Cluster.SnapshotEntries), MemTableMB: o.memtableMB, SkipCharges: null})
		if err != nil {
			return nil, err
		}
		stores = append(stores, s)
	}
	leader := stores[0]
	if err := leader.WaitLeader(10 * time.Second); err != nil {
		return nil, err
	}
	for i, s := range stores[1:] {
		if err := leader.AddVoter(fmt.Sprint("n", i+2), s.LocalAddr(), 10*time.Second); err != nil {
			return nil, err
		}
	}
	now := time.Now().UnixNano()
	setup := []ledger.Command{&ledger.Seed{NanoUSDPerFlow: ledger.DefaultNanoUSDPerFlow, Plans: ledger.DefaultPlans(), Models: ledger.DefaultModels(),
		DedupeDays: defaults.Accounting.DedupeDays, RequestLogDays: defaults.Accounting.RequestLogDays, LogFormat: ledger.LogFormatCurrent}}
	for i := 0; i < o.accounts; i++ {
		id := fmt.Sprint("acct_", i)
		setup = append(setup, &ledger.CreateAccount{ID: id, Email: id + "@bench.example"})
	}
	for _, cmd := range setup {
		v, err := leader.Propose(cmd, now, 10*time.Second)
		if err != nil {
			return nil, err
		}
		if r := v.(ledger.Result); r.Err != nil {
			return nil, r.Err
		}
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	batchers := make([]*proxy.Batcher, len(stores))
	proposers := make([]*benchProposer, len(stores))
	total := int(float64(o.rate) * (o.warmup + o.duration).Seconds())
	// Per charge, by index: ns after its scheduled time at which it was
	// submitted and proposed, and ns its entry took to commit.
	submitLag, proposed, inEntry := make([]int64, total), make([]int64, total), make([]int64, total)
	for i, s := range stores {
		p := &benchProposer{leader: leader, local: s == leader, null: null, firstAdmitted: now, proposedAt: proposed, inEntry: inEntry}
		proposers[i] = p
		batchers[i] = proxy.NewBatcher(p, proxy.BatcherOptions{MaxCharges: defaults.Accounting.BatchMaxCharges, MaxQueue: defaults.Accounting.MaxQueuedCharges})
	}
	defer func() {
		for _, b := range batchers {
			b.Close()
		}
	}()

	lat := make([]int64, total) // ns, by charge; < 0 when not measured
	for i := range lat {
		lat[i] = -1
	}
	var charged, failed, done atomic.Int64
	var measured, lastDone atomic.Int64 // lastDone: ns after the window opened
	start := time.Now().Add(20 * time.Millisecond)
	measureFrom := start.Add(o.warmup)
	const tick = time.Millisecond
	perTick := float64(o.rate) * tick.Seconds()
	var wg sync.WaitGroup
	var submitErr atomic.Value
	// The submitters' strings are made up front or with strconv: this
	// process's own CPU is taken from the three nodes it measures.
	acctIDs := make([]string, o.accounts)
	for i := range acctIDs {
		acctIDs[i] = "acct_" + strconv.Itoa(i)
	}
	for node := range batchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(node), 7))
			nodeID, reqPrefix := "n"+strconv.Itoa(node+1), "n"+strconv.Itoa(node)+"-"
			sent := 0
			for t := 0; ; t++ {
				at := start.Add(time.Duration(t) * tick)
				// charges of this node due by the end of this tick
				due := int(float64(t+1)*perTick) / len(batchers)
				if sent >= total/len(batchers) || ctx.Err() != nil {
					return
				}
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				}
				for ; sent < due && sent < total/len(batchers); sent++ {
					i := sent*len(batchers) + node
					c := ledger.Charge{ReqID: reqPrefix + strconv.Itoa(sent), AccountID: acctIDs[rng.IntN(o.accounts)], Model: ledger.EchoModelID, Node: nodeID,
						Billing: ledger.BillingSubscription, AdmittedAt: now + int64(i), InputTokens: 1200, OutputTokens: 300}
					inWindow := !at.Before(measureFrom)
					if inWindow {
						measured.Add(1)
					}
					submitLag[i] = int64(time.Since(at))
					err := batchers[node].Submit(c, func(out proxy.ChargeOutcome) {
						lat[i] = int64(time.Since(at))
						proposed[i] -= at.UnixNano()
						if !inWindow {
							lat[i] = -2
						} else {
							d := int64(time.Since(measureFrom))
							for old := lastDone.Load(); d > old && !lastDone.CompareAndSwap(old, d); old = lastDone.Load() {
							}
						}
						switch {
						case out.Err != nil:
							failed.Add(1)
						case out.Result.Status == "charged":
							charged.Add(1)
						default:
							failed.Add(1)
						}
						done.Add(1)
					})
					if err != nil {
						submitErr.Store(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := submitErr.Load().(error); err != nil {
		return nil, err
	}
	submitted := int64(total / len(batchers) * len(batchers))
	deadline := time.Now().Add(60 * time.Second)
	for done.Load() < submitted {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("commit bench: %d of %d charges answered", done.Load(), submitted)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if f := failed.Load(); f > 0 {
		return nil, fmt.Errorf("commit bench: %d charges failed", f)
	}
	var window []time.Duration
	var slowLag, slowQueued, slowEntry []time.Duration
	for i, v := range lat {
		if v < 0 {
			continue
		}
		window = append(window, time.Duration(v))
		if time.Duration(v) > commitTargetP99 {
			slowLag = append(slowLag, time.Duration(submitLag[i]))
			slowQueued = append(slowQueued, time.Duration(proposed[i]-submitLag[i]))
			slowEntry = append(slowEntry, time.Duration(inEntry[i]))
		}
	}
	if len(window) == 0 {
		return nil, errors.New("commit bench: no charge in the measured window")
	}
	// Committed per second: the measured charges over the time from the
	// window's start to the last of them committed.
	span := time.Duration(lastDone.Load())
	rep := &CommitReport{StartedAt: time.Now().UTC().Format(time.RFC3339), GitHead: gitHead(root), NumCPU: runtime.NumCPU(), Nodes: len(stores),
		GOMAXPROCS: runtime.GOMAXPROCS(0), FSM: fsm, Accounts: o.accounts, MemtableMB: o.memtableMB, OfferedPerS: o.rate, DurationS: o.duration.Seconds(), Submitted: submitted,
		CommittedPerS: float64(len(window)) / span.Seconds(),
		Latency:       dist(window), Charged: charged.Load(),
		LatencyIs: "from each charge's scheduled submit time to its committed result (quorum-acknowledged and applied on the leader)"}
	var entries []time.Duration
	for _, p := range proposers {
		p.mu.Lock()
		entries = append(entries, p.commits...)
		p.mu.Unlock()
	}
	rep.Entries = int64(len(entries))
	rep.ChargesPerEntry = float64(submitted) / float64(max(rep.Entries, 1))
	rep.EntryLatency = dist(entries)
	if len(slowLag) > 0 {
		rep.Slow = &SlowCharges{Count: len(slowLag), SubmitterLag: dist(slowLag), Queued: dist(slowQueued), InEntry: dist(slowEntry)}
	}
	// Every replica must reach the same state.
	last := leader.AppliedIndex()
	var first [32]byte
	rep.StateHashEqual = true
	for i, s := range stores {
		if err := s.WaitApplied(last, 30*time.Second); err != nil {
			return nil, err
		}
		h, _, err := s.StateHash()
		if err != nil {
			return nil, err
		}
		if i == 0 {
			first = h
		} else if h != first {
			rep.StateHashEqual = false
		}
	}
	if measured.Load() != int64(len(window)) {
		return nil, errors.New("commit bench: measured charges were lost")
	}
	return rep, nil
}

// benchProposer commits a batch on the leader, as node.Propose does: the
// leader's own batches directly, a follower's as the bytes it would
// forward.
type benchProposer struct {
	leader *raftfsm.Store
	local  bool
	// null: the FSM skips charges (-commit-fsm null), so the proposer
	// answers every committed charge "charged" itself.
	null bool
	// A charge's index is its AdmittedAt minus firstAdmitted; the
	// proposer records, by index, when it proposed the charge (ns since
	// the epoch) and how long the entry took (ns).
	firstAdmitted       int64
	proposedAt, inEntry []int64

	mu      sync.Mutex
	commits []time.Duration // each entry's propose-to-result time
}

func (p *benchProposer) ProposeCharges(b *ledger.ChargeBatch) ([]ledger.ChargeResult, error) {
	start := time.Now()
	for _, c := range b.Charges {
		p.proposedAt[c.AdmittedAt-p.firstAdmitted] = start.UnixNano()
	}
	defer func() {
		took := time.Since(start)
		for _, c := range b.Charges {
			p.inEntry[c.AdmittedAt-p.firstAdmitted] = int64(took)
		}
		p.mu.Lock()
		p.commits = append(p.commits, took)
		p.mu.Unlock()
	}()
	ts := time.Now().UnixNano()
	var v any
	var err error
	if p.local {
		v, err = p.leader.Propose(b, ts, 10*time.Second)
	} else {
		data, eerr := ledger.Encode(b, ts)
		if eerr != nil {
			return nil, eerr
		}
		v, _, err = p.leader.ProposeEncoded(data, 10*time.Second)
	}
	if err != nil {
		return nil, err
	}
	if p.null {
		out := make([]ledger.ChargeResult, len(b.Charges))
		for i := range out {
			out[i].Status = "charged"
		}
		return out, nil
	}
	return ledger.Answer(b, v.(ledger.Result))
}

// print writes the run's lines; the checks are the report's.
func (r *CommitReport) print(w io.Writer) {
	fmt.Fprintf(w, "\ngroup commit, %s FSM, %d-node cluster in one process over loopback TCP, %d CPUs, %d accounts, memtable_mb %d, offered %d charges/s for %.0f s\n",
		r.FSM, r.Nodes, r.NumCPU, r.Accounts, r.MemtableMB, r.OfferedPerS, r.DurationS)
	l, e := r.Latency, r.EntryLatency
	fmt.Fprintf(w, "  committed %.0f charges/s   commit latency p50 %.2f ms  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
		r.CommittedPerS, l.P50/1e3, l.P90/1e3, l.P99/1e3, l.P999/1e3, l.Max/1e3)
	if e != nil {
		fmt.Fprintf(w, "  %d raft entries, %.0f charges each, each committed in p50 %.2f ms  p99 %.2f  max %.2f (propose to result)\n",
			r.Entries, r.ChargesPerEntry, e.P50/1e3, e.P99/1e3, e.Max/1e3)
	}
	if sl := r.Slow; sl != nil {
		fmt.Fprintf(w, "  %d charges over %d ms (%.1f%%); p50 of their parts: submitter late %.2f ms, queued behind the entry ahead %.2f, in their own entry %.2f\n",
			sl.Count, commitTargetP99.Milliseconds(), 100*float64(sl.Count)/(r.CommittedPerS*r.DurationS), sl.SubmitterLag.P50/1e3, sl.Queued.P50/1e3, sl.InEntry.P50/1e3)
	}
	fmt.Fprintf(w, "  %d of %d charged; state hashes equal: %v; GOMAXPROCS %d\n", r.Charged, r.Submitted, r.StateHashEqual, r.GOMAXPROCS)
}
