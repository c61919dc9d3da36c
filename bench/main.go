// Command bench measures what zenmuxd costs on the request path, against a
// do-nothing reverse proxy and against no proxy at all, on loopback.
//
//	go run ./bench          # ~2 minutes
//	go run ./bench -quick   # ~1 minute, for CI
//
// See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	duration    time.Duration
	warmup      time.Duration
	conns       int
	workers     int
	streamRate  float64
	chunks      int
	chunkDelay  time.Duration
	timeout     time.Duration
	quick       bool
	strict      bool
	keep        bool
	out         string
	cluster     bool     // also measure a 3-node cluster (cluster.go)
	clusterOnly bool     // only the cluster
	clusterAcks []string // one cluster per ack mode, in this order
	commit      bool     // only the group-commit benchmark (commit.go)
	streams     bool     // only the streams against a relay (streams.go)
	commitOpts  commitOptions

	// streamsRounds: each streams load is measured this many times, every
	// target in turn each time
	streamsRounds int
}

// phase is one measurement, run against every target in turn.
type phase struct {
	Key   string // JSON key
	Label string
	Mode  string // closed | open | stream
	Rate  float64
}

// The fixed rates of the acceptance checks and the table's columns.
const (
	rateLow  = 1000
	rateHigh = 3000
)

// singlePhases are the single-node measurements, in order.
func singlePhases(o options) []phase {
	return []phase{
		{"max", "max throughput", "closed", 0},
		{"rate1000", "1000 req/s", "open", rateLow},
		{"rate3000", "3000 req/s", "open", rateHigh},
		{"stream", fmt.Sprintf("streams %g/s", o.streamRate), "stream", o.streamRate},
	}
}

// singleTargets are the single-node run's targets, in order.
var singleTargets = []string{"direct", "noproxy", "zenmuxd-async", "zenmuxd-quorum"}

func main() { os.Exit(run()) }

func run() int {
	var o options
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measurement (each is preceded by a warm-up)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up before each measurement")
	flag.IntVar(&o.conns, "conns", 64, "closed-loop workers (one connection each) for the max-throughput run")
	flag.IntVar(&o.workers, "workers", 512, "open-loop: most requests in flight at once (a request waiting for a worker is still timed from its schedule)")
	flag.Float64Var(&o.streamRate, "stream-rate", 200, "streamed requests a second in the time-to-first-byte run")
	flag.IntVar(&o.chunks, "chunks", 20, "content chunks in a streamed answer (plus the usage chunk and [DONE])")
	flag.DurationVar(&o.chunkDelay, "chunk-delay", 0, "stub's pause between two chunks of a streamed answer")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	flag.BoolVar(&o.quick, "quick", false, "short measurements (1 s each) for CI: the whole run takes about a minute")
	flag.BoolVar(&o.strict, "strict", false, "exit 3 when an acceptance check fails")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (configs, data dirs, logs)")
	flag.StringVar(&o.out, "out", "", "JSON result file (default <module>/bench/results/latest.json)")
	flag.BoolVar(&o.cluster, "cluster", false, "after the single-node targets, measure a 3-node cluster at 1000 req/s: through the leader's proxy and through a follower's")
	flag.BoolVar(&o.clusterOnly, "cluster-only", false, "measure only the 3-node cluster (implies -cluster)")
	flag.BoolVar(&o.commit, "commit", false, "only the group-commit benchmark: a 3-node cluster in this process, charges offered at -commit-rate through one batcher per node")
	flag.IntVar(&o.commitOpts.rate, "commit-rate", 55000, "-commit: charges offered per second, over the three nodes")
	flag.IntVar(&o.commitOpts.accounts, "commit-accounts", 1000, "-commit: accounts the charges are spread over")
	flag.IntVar(&o.commitOpts.memtableMB, "commit-memtable-mb", 16, "-commit: the nodes' node.memtable_mb (the config default is 4)")
	flag.StringVar(&o.commitOpts.fsm, "commit-fsm", "alternate", "-commit: the nodes' FSM: real (the ledger), null (charge batches left unapplied and answered charged: the replication floor), or alternate (-commit-rounds rounds of a real cluster then a null one, judged on the ratio of their median p99s)")
	flag.IntVar(&o.commitOpts.rounds, "commit-rounds", 3, "-commit-fsm alternate: rounds, each a fresh real cluster then a fresh null one (default 3, 1 with -quick)")
	flag.StringVar(&o.commitOpts.cpuProfile, "commit-cpuprofile", "", "-commit: write a CPU profile of the run to this file (-commit-fsm real or null only)")
	flag.BoolVar(&o.streams, "streams", false, "only the streams against a relay: 8-event streams, spaced (2 ms, 1,000/s) and at once (64 connections), through noproxy and zenmuxd-async")
	flag.IntVar(&o.streamsRounds, "streams-rounds", 1, "the streams loads: rounds, each measuring every target in turn for -duration (default 3 with -streams, 1 with -quick or in the whole run)")
	acks := flag.String("cluster-ack", "quorum", "the clusters' [accounting] ack modes, comma-separated, one cluster each: quorum, async or quorum,async")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q (see -h)\n", flag.Args())
		return 2
	}
	o.cluster = o.cluster || o.clusterOnly
	for a := range strings.SplitSeq(*acks, ",") {
		a = strings.TrimSpace(a)
		if (a != "quorum" && a != "async") || slices.Contains(o.clusterAcks, a) {
			fmt.Fprintf(os.Stderr, "bench: -cluster-ack %q: want quorum, async or both, comma-separated, each once\n", *acks)
			return 2
		}
		o.clusterAcks = append(o.clusterAcks, a)
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick && !set["duration"] {
		o.duration = time.Second
	}
	if o.streams && !o.quick && !set["streams-rounds"] {
		o.streamsRounds = 3
	}
	if o.commit && !set["duration"] {
		o.duration = 10 * time.Second
		if o.quick {
			o.duration = 3 * time.Second
		}
	}
	if o.quick && !set["commit-rounds"] {
		o.commitOpts.rounds = 1
	}
	if o.commitOpts.rate < 1000 || o.commitOpts.rate > 1_000_000 || o.commitOpts.accounts < 1 || o.commitOpts.accounts > 1_000_000 ||
		o.commitOpts.memtableMB < 4 || o.commitOpts.memtableMB > 1024 || o.commitOpts.rounds < 1 || o.commitOpts.rounds > 20 {
		fmt.Fprintln(os.Stderr, "bench: -commit-rate, -commit-accounts, -commit-memtable-mb or -commit-rounds out of range (see -h)")
		return 2
	}
	if f := o.commitOpts.fsm; f != "real" && f != "null" && f != "alternate" {
		fmt.Fprintf(os.Stderr, "bench: -commit-fsm %q: want real, null or alternate\n", f)
		return 2
	}
	if o.commitOpts.cpuProfile != "" && o.commitOpts.fsm == "alternate" {
		fmt.Fprintln(os.Stderr, "bench: -commit-cpuprofile profiles one run: add -commit-fsm real or null")
		return 2
	}
	if o.duration <= 0 || o.duration > time.Hour || o.warmup < 0 || o.warmup > time.Minute || o.conns < 1 || o.conns > 10000 ||
		o.workers < 1 || o.workers > 20000 || o.streamRate <= 0 || o.streamRate > 100000 || o.chunks < 1 || o.chunks > 10000 ||
		o.chunkDelay < 0 || o.chunkDelay > 10*time.Second || o.timeout <= 0 || o.timeout > 10*time.Minute || o.streamsRounds < 1 || o.streamsRounds > 100 {
		fmt.Fprintln(os.Stderr, "bench: a flag is out of range (see -h)")
		return 2
	}
	// A stream must fit its timeout.
	o.timeout += time.Duration(o.chunks) * o.chunkDelay

	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if o.out == "" {
		o.out = filepath.Join(root, "bench", "results", "latest.json")
		if o.commit {
			o.out = filepath.Join(root, "bench", "results", "commit.json")
		}
	}

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	finished := make(chan struct{})
	defer close(finished)
	go func() { // on a signal, cleanup gets 15 s; then force it
		select {
		case <-finished:
			return
		case <-ctx.Done():
		}
		select {
		case <-finished:
		case <-time.After(15 * time.Second):
			fmt.Fprintln(os.Stderr, "\nbench: cleanup is stuck; killing children")
			stopAll(0)
			os.Exit(130)
		}
	}()

	tmp, err := os.MkdirTemp("", "zenmux-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer func() {
		if o.keep {
			fmt.Fprintln(os.Stderr, "bench: kept", tmp)
			return
		}
		os.RemoveAll(tmp)
	}()
	defer stopAll(3 * time.Second)

	if o.commit {
		return runCommitOnly(ctx, o, tmp, root)
	}

	if o.streams {
		return runStreamsOnly(ctx, o, tmp, root)
	}

	steps := 0
	if !o.clusterOnly {
		steps += len(singlePhases(o))*len(singleTargets) + len(ssSingleTargets) + streamsSteps(o)
	}
	if o.cluster {
		steps += len(o.clusterAcks) * (len(clusterTargets) + len(ssClusterTargets))
	}
	prog := newProgress(steps, time.Duration(steps)*(o.warmup+o.duration+50*time.Millisecond))
	defer prog.finish()

	rep := newReport(o, root)
	if o.cluster {
		rep.Meta.ClusterAcks = o.clusterAcks
	}
	fail := func(err error) int { return failed(prog, err) }

	// 1. Build zenmuxd and noproxy (in parallel; noproxy only for the
	// single-node targets).
	zbin, nbin := filepath.Join(tmp, "zenmuxd"), filepath.Join(tmp, "noproxy")
	builds := map[string]string{"./cmd/zenmuxd": zbin}
	if !o.clusterOnly {
		builds["./bench/noproxy"] = nbin
		prog.setup("building zenmuxd and noproxy")
	} else {
		prog.setup("building zenmuxd")
	}
	errc := make(chan error, len(builds))
	for pkg, out := range builds {
		go func() { errc <- buildBinary(ctx, root, pkg, out) }()
	}
	for range builds {
		if err := <-errc; err != nil {
			if ctx.Err() != nil {
				return fail(ctx.Err())
			}
			return fail(err)
		}
	}
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}

	// 2. The upstream stub, in this process.
	stubKey := "sk-stub-" + randomHex(16)
	st, err := startStub(stubKey, o.chunks, o.chunkDelay)
	if err != nil {
		return fail(err)
	}
	defer func() { stopAll(3 * time.Second); st.close() }()
	maxConns := max(o.conns, o.workers) + 16
	direct := newTarget("direct", st.addr(), stubKey, "stub-model", nil, maxConns)

	// 3. Measure: the single-node targets, then the clusters, one at a
	// time with nothing else running.
	step := 0
	rep.Meta.LoadAvgStart = loadAvg()
	if !o.clusterOnly {
		if err := runSingle(ctx, o, tmp, zbin, nbin, st, stubKey, direct, rep, prog, &step); err != nil {
			return fail(err)
		}
	}
	if o.cluster {
		if !o.clusterOnly {
			prog.setup("stopping noproxy and the single nodes")
			stopAll(3 * time.Second)
		}
		if err := sanity(direct, o.timeout); err != nil {
			return fail(err)
		}
		for _, ack := range o.clusterAcks {
			if err := runCluster(ctx, o, tmp, zbin, ack, st, stubKey, direct, rep, prog, &step); err != nil {
				return fail(err)
			}
		}
	}
	rep.Meta.LoadAvgEnd = loadAvg()
	rep.Meta.StubServed = map[string]int64{"unary": st.unary.Load(), "streams": st.streams.Load(), "refused_auth": st.refused.Load()}
	prog.finish()

	// 4. Report.
	return report(rep, o)
}

// report judges, writes and prints rep, and returns the exit code: 1 for
// a broken run (a target failed, an answer was not a whole 200), 3 for a
// failed check with -strict.
func report(rep *Report, o options) int {
	rep.checks()
	if err := rep.write(o.out); err != nil {
		fmt.Fprintln(os.Stderr, "bench: write results:", err)
	}
	rep.print(os.Stdout, o.out)
	switch {
	case len(rep.Errors) > 0 || rep.badAnswers() > 0:
		return 1
	case o.strict && !rep.allPass():
		return 3
	}
	return 0
}

// runSingle starts noproxy and one zenmuxd per ack mode next to the stub,
// measures every phase against every single-node target, then the
// self-service reads on each zenmuxd.
func runSingle(ctx context.Context, o options, tmp, zbin, nbin string, st *stub, stubKey string, direct *target, rep *Report, prog *progress, step *int) error {
	phases := singlePhases(o)
	maxConns := max(o.conns, o.workers) + 16

	// noproxy and the two zenmuxd nodes.
	prog.setup("starting noproxy")
	port, err := freePort()
	if err != nil {
		return err
	}
	npAddr := fmt.Sprintf("127.0.0.1:%d", port)
	np, err := startProc("noproxy", nbin, []string{"-listen", npAddr, "-upstream", st.addr()}, os.Environ(), filepath.Join(tmp, "noproxy.log"))
	if err != nil {
		return err
	}
	if err := waitTCP(ctx, np, npAddr, 15*time.Second); err != nil {
		return err
	}
	noproxy := newTarget("noproxy", npAddr, stubKey, "stub-model", np, maxConns)

	targets := []*target{direct, noproxy}
	nodes := map[string]*zenmuxd{}
	for _, ack := range []string{"async", "quorum"} {
		name := "zenmuxd-" + ack
		prog.setup("starting " + name)
		z, err := startZenmuxd(ctx, zbin, filepath.Join(tmp, name), name, ack, st.addr(), stubKey)
		if err != nil {
			return err
		}
		nodes[name] = z
		targets = append(targets, newTarget(name, z.proxyAddr, z.key, "bench/stub", z.p, maxConns))
	}
	for _, t := range targets {
		if err := sanity(t, o.timeout); err != nil {
			if t.proc != nil {
				err = fmt.Errorf("%w\n--- %s log tail ---\n%s", err, t.proc.name, t.proc.logTail(3000))
			}
			return err
		}
		rep.Targets = append(rep.Targets, t.Name)
		rep.Results[t.Name] = map[string]*PhaseResult{}
	}

	// Background CPU of each proxy while idle, to read CPU µs/req against:
	// at 1000 req/s, 1 ms/s of background work adds 1 µs/req.
	prog.setup("measuring idle CPU")
	idle0 := map[string]time.Duration{}
	for _, t := range targets {
		if t.proc != nil {
			idle0[t.Name], _ = cpuTime(t.proc.pid())
		}
	}
	idleStart := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Second):
	}
	rep.Meta.IdleCPUPercent, rep.Meta.StartRSSMiB = map[string]float64{}, map[string]float64{}
	for _, t := range targets {
		if t.proc != nil {
			if c, err := cpuTime(t.proc.pid()); err == nil {
				rep.Meta.IdleCPUPercent[t.Name] = 100 * (c - idle0[t.Name]).Seconds() / time.Since(idleStart).Seconds()
			}
			if v, err := rssBytes(t.proc.pid()); err == nil {
				rep.Meta.StartRSSMiB[t.Name] = float64(v) / (1 << 20)
			}
		}
	}

	// Measure: phase by phase, every target in turn, so that targets
	// compared in one column were measured close together in time.
	self := os.Getpid()
	for _, ph := range phases {
		for _, t := range targets {
			*step++
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if t.failed != nil {
				continue
			}
			if t.proc != nil && !t.proc.alive() {
				t.failed = fmt.Errorf("%s exited: %v\n%s", t.Name, t.proc.waitErr, t.proc.logTail(2000))
				rep.Errors = append(rep.Errors, t.failed.Error())
				continue
			}
			label := fmt.Sprintf("%s · %s", t.Name, ph.Label)
			prog.step(*step, label+" · warm-up")
			warm := measure(ctx, t, ph, o, o.warmup)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			prog.step(*step, label)
			var cpu0, self0 time.Duration
			var rss *rssSampler
			if t.proc != nil {
				cpu0, _ = cpuTime(t.proc.pid())
				rss = sampleRSS(t.proc.pid())
			}
			self0, _ = cpuTime(self)
			s := measure(ctx, t, ph, o, o.duration)
			self1, _ := cpuTime(self)
			r := phaseResult(ph, o, s, warm)
			r.BenchCPUPercent = 100 * (self1 - self0).Seconds() / s.Window.Seconds()
			if t.proc != nil {
				cpu1, err := cpuTime(t.proc.pid())
				max := rss.finish()
				if err == nil {
					cpuS := (cpu1 - cpu0).Seconds()
					r.CPUSeconds = &cpuS
					if answered := s.OK + s.Non200; answered > 0 {
						v := cpuS * 1e6 / float64(answered)
						r.CPUMicrosPerReq = &v
					}
				}
				mib := float64(max) / (1 << 20)
				r.RSSMaxMiB = &mib
			}
			rep.Results[t.Name][ph.Key] = r
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	if err := runSelfServiceSingle(ctx, o, nodes, rep, prog, step); err != nil {
		return err
	}
	return runStreams(ctx, o, st, direct, noproxy, nodes["zenmuxd-async"], rep, prog, step)
}

// measure runs one phase against one target for d.
func measure(ctx context.Context, t *target, ph phase, o options, d time.Duration) *runStats {
	if d <= 0 {
		return &runStats{Statuses: map[int]int64{}}
	}
	switch ph.Mode {
	case "closed":
		return closedLoop(ctx, t, o.conns, d, o.timeout, false)
	case "stream":
		return openLoop(ctx, t, ph.Rate, d, o.workers, true, o.timeout)
	default:
		return openLoop(ctx, t, ph.Rate, d, o.workers, false, o.timeout)
	}
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func gitHead(root string) string {
	cmd := exec.Command("git", "rev-parse", "--short", "HEAD")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func goVersion() string { return runtime.Version() }

// failed ends the progress display and reports err: exit code 130 for an
// interrupt, 1 otherwise.
func failed(prog *progress, err error) int {
	prog.finish()
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "bench: interrupted")
		return 130
	}
	fmt.Fprintln(os.Stderr, "bench:", err)
	return 1
}
