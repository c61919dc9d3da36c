package main

// Streams against a relay (#13): what a streamed answer costs zenmuxd
// next to noproxy, a relay that flushes every upstream read and keeps
// nothing, with the stub answering 8-event streams. Two loads: events 2 ms
// apart offered open-loop at 1,000 streams a second (the gateway wakes per
// event), and events sent at once from 64 closed-loop connections (the
// gateway's work per event, at saturation). The zenmuxd target streams
// with an account of its own, so that after the run its usage must equal
// the streams it answered times the stub's tokens: metering exact.
//
// CPU per stream on a shared 2-core machine moves with whatever else
// runs, so each load is measured in rounds (-streams-rounds), every
// target in turn in each round, and a target's CPU per stream is its CPU
// over all rounds divided by its streams over all rounds: a change in the
// machine's load falls on every target alike.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The streams measurement's shape (the figures).
const (
	streamsEvents  = 8                    // content events a stream
	streamsSpacing = 2 * time.Millisecond // the stub's pause between events, spaced
	streamsRate    = 1000                 // streams a second, spaced
	streamsConns   = 64                   // closed-loop connections, at once
	// The stub's usage chunk for streamsEvents content events.
	streamsInputTokens  = 14
	streamsOutputTokens = streamsEvents
	// Bounds on zenmuxd's CPU per stream against the relay's.
	streamsSpacedBound = 1.2
	streamsAtOnceBound = 2.0
)

// streamsTargets are the targets, in order; the relay is noproxy.
var streamsTargets = []string{"direct", "noproxy", "zenmuxd-async"}

// streamsPhases are the two loads.
var streamsPhases = []struct{ Key, Label string }{
	{"spaced", fmt.Sprintf("%d events %s apart, %d streams/s", streamsEvents, streamsSpacing, streamsRate)},
	{"at_once", fmt.Sprintf("%d events at once, %d connections", streamsEvents, streamsConns)},
}

// StreamsResult is the streams measurement in the JSON.
type StreamsResult struct {
	Events    int     `json:"events"`
	SpacingMS float64 `json:"spacing_ms"`
	Rate      float64 `json:"spaced_rate"`
	Conns     int     `json:"at_once_conns"`
	Rounds    int     `json:"rounds"`
	// phase (spaced, at_once) → target → one result a round
	Results map[string]map[string][]*PhaseResult `json:"results"`
	// phase → target → CPU µs per stream over all rounds
	CPUMicrosPerStream map[string]map[string]float64 `json:"cpu_us_per_stream"`
	Metering           *StreamsMetering              `json:"metering,omitempty"`
}

// StreamsMetering compares what zenmuxd's ledger holds for the streams
// account with what its answers carried.
type StreamsMetering struct {
	Streams          int64  `json:"streams_answered"`
	Requests         int64  `json:"ledger_requests"`
	InputTokens      int64  `json:"ledger_input_tokens"`
	OutputTokens     int64  `json:"ledger_output_tokens"`
	WantInputTokens  int64  `json:"want_input_tokens"`
	WantOutputTokens int64  `json:"want_output_tokens"`
	Exact            bool   `json:"exact"`
	Detail           string `json:"detail,omitempty"`
}

// streamsSteps is the progress steps runStreams takes.
func streamsSteps(o options) int { return len(streamsPhases) * len(streamsTargets) * o.streamsRounds }

// runStreams measures both loads against direct, noproxy and zenmuxd
// (async), then checks zenmuxd's metering. z's node gets a fresh account
// for it. The stub's stream shape is set here and put back after.
func runStreams(ctx context.Context, o options, st *stub, direct, noproxy *target, z *zenmuxd, rep *Report, prog *progress, step *int) error {
	res := &StreamsResult{Events: streamsEvents, SpacingMS: float64(streamsSpacing) / 1e6, Rate: streamsRate, Conns: streamsConns,
		Rounds: o.streamsRounds, Results: map[string]map[string][]*PhaseResult{}, CPUMicrosPerStream: map[string]map[string]float64{}}
	rep.Streams = res
	prog.setup("streams: a fresh account on zenmuxd-async")
	hc := &http.Client{Timeout: 10 * time.Second}
	key, err := z.provision(hc, 9)
	if err != nil {
		return fmt.Errorf("streams: %w", err)
	}
	zt := newTarget("zenmuxd-async", z.proxyAddr, key, "bench/stub", z.p, streamsConns+o.workers+16)
	targets := []*target{direct, noproxy, zt}
	defer st.setStream(o.chunks, o.chunkDelay)
	timeout := o.timeout + streamsEvents*streamsSpacing
	var zAnswered int64
	self := os.Getpid()
	for _, ph := range streamsPhases {
		res.Results[ph.Key] = map[string][]*PhaseResult{}
		cpu, streams := map[string]float64{}, map[string]int64{}
		delay := time.Duration(0)
		if ph.Key == "spaced" {
			delay = streamsSpacing
		}
		st.setStream(streamsEvents, delay)
		run := func(t *target, d time.Duration) *runStats {
			if ph.Key == "spaced" {
				return openLoop(ctx, t, streamsRate, d, o.workers, true, timeout)
			}
			return closedLoop(ctx, t, streamsConns, d, timeout, true)
		}
		for round := range o.streamsRounds {
			for _, t := range targets {
				*step++
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if t.proc != nil && !t.proc.alive() {
					return fmt.Errorf("streams: %s exited: %v\n%s", t.Name, t.proc.waitErr, t.proc.logTail(2000))
				}
				label := fmt.Sprintf("%s · streams, %s · round %d/%d", t.Name, ph.Label, round+1, o.streamsRounds)
				prog.step(*step, label+" · warm-up")
				warm := run(t, o.warmup)
				prog.step(*step, label)
				var cpu0 time.Duration
				if t.proc != nil {
					cpu0, _ = cpuTime(t.proc.pid())
				}
				self0, _ := cpuTime(self)
				s := run(t, o.duration)
				self1, _ := cpuTime(self)
				mode := "closed"
				if ph.Key == "spaced" {
					mode = "stream"
				}
				r := phaseResult(phase{Key: ph.Key, Label: ph.Label, Mode: mode, Rate: streamsRate}, options{conns: streamsConns}, s, warm)
				r.BenchCPUPercent = 100 * (self1 - self0).Seconds() / s.Window.Seconds()
				if t.proc != nil {
					if cpu1, err := cpuTime(t.proc.pid()); err == nil {
						cpuS := (cpu1 - cpu0).Seconds()
						r.CPUSeconds = &cpuS
						if answered := s.OK + s.Non200; answered > 0 {
							v := cpuS * 1e6 / float64(answered)
							r.CPUMicrosPerReq = &v
						}
						cpu[t.Name] += cpuS
						streams[t.Name] += s.OK + s.Non200
					}
				}
				if t == zt {
					zAnswered += s.OK + warm.OK
				}
				res.Results[ph.Key][t.Name] = append(res.Results[ph.Key][t.Name], r)
			}
		}
		res.CPUMicrosPerStream[ph.Key] = map[string]float64{}
		for name, c := range cpu {
			if streams[name] > 0 {
				res.CPUMicrosPerStream[ph.Key][name] = c * 1e6 / float64(streams[name])
			}
		}
	}
	prog.setup("streams: reading zenmuxd's usage")
	res.Metering = streamsMetering(ctx, zt, zAnswered)
	return nil
}

var errUsageShort = errors.New("the ledger's usage does not match the streams answered")

// streamsMetering waits (at most 10 s: with async ack the last charges
// commit a moment after their answers) until the streams account's usage
// counts every stream answered, then compares its tokens with the stub's
// usage chunk times the streams.
func streamsMetering(ctx context.Context, t *target, answered int64) *StreamsMetering {
	m := &StreamsMetering{Streams: answered, WantInputTokens: answered * streamsInputTokens, WantOutputTokens: answered * streamsOutputTokens}
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for i := 0; i < 1000 && ctx.Err() == nil; i++ { // bounded by the deadline; the count is a backstop
		err = m.read(hc, t)
		if err == nil && m.Requests >= answered || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	switch {
	case err != nil:
		m.Detail = err.Error()
	case m.Requests != answered || m.InputTokens != m.WantInputTokens || m.OutputTokens != m.WantOutputTokens:
		m.Detail = fmt.Errorf("%w: %d requests, %d/%d tokens in/out; want %d, %d/%d", errUsageShort,
			m.Requests, m.InputTokens, m.OutputTokens, answered, m.WantInputTokens, m.WantOutputTokens).Error()
	default:
		m.Exact = true
	}
	return m
}

// read fetches the account's usage through the self-service API with its
// own key and sums its by_model rows.
func (m *StreamsMetering) read(hc *http.Client, t *target) error {
	req, err := http.NewRequest("GET", "http://"+t.Addr+"/api/v1/me/usage", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", t.auth)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /api/v1/me/usage: %d %s", resp.StatusCode, b)
	}
	var u struct {
		ByModel []struct {
			Requests     int64 `json:"requests"`
			InputTokens  int64 `json:"input_tokens"`
			OutputTokens int64 `json:"output_tokens"`
		} `json:"by_model"`
	}
	if err := json.Unmarshal(b, &u); err != nil {
		return fmt.Errorf("GET /api/v1/me/usage: %w", err)
	}
	m.Requests, m.InputTokens, m.OutputTokens = 0, 0, 0
	for _, r := range u.ByModel {
		m.Requests += r.Requests
		m.InputTokens += r.InputTokens
		m.OutputTokens += r.OutputTokens
	}
	return nil
}

// streamsCPURatio is zenmuxd's CPU per stream over the relay's in a
// phase, each over all rounds.
func (r *Report) streamsCPURatio(ph string) (z, relay float64, ratio float64, ok bool) {
	if r.Streams == nil {
		return 0, 0, 0, false
	}
	z, ok1 := r.Streams.CPUMicrosPerStream[ph]["zenmuxd-async"]
	relay, ok2 := r.Streams.CPUMicrosPerStream[ph]["noproxy"]
	if !ok1 || !ok2 || relay <= 0 {
		return 0, 0, 0, false
	}
	return z, relay, z / relay, true
}

// streamsChecks are #13's streaming criteria: zenmuxd's CPU per stream
// against the relay's in both loads, and its metering exact. The answers
// themselves count in answerCheck.
func (r *Report) streamsChecks(add func(name string, pass bool, detail string)) {
	if r.Streams == nil {
		return
	}
	for _, c := range []struct {
		ph    string
		bound float64
	}{{"spaced", streamsSpacedBound}, {"at_once", streamsAtOnceBound}} {
		name := fmt.Sprintf("streams %s: zenmuxd-async CPU per stream ≤ %g × the relay's", c.ph, c.bound)
		if z, n, ratio, ok := r.streamsCPURatio(c.ph); ok {
			add(name, ratio <= c.bound, fmt.Sprintf("%.0f vs %.0f µs (%.2f×)", z, n, ratio))
		} else {
			add(name, false, "no data")
		}
	}
	if m := r.Streams.Metering; m != nil {
		detail := fmt.Sprintf("%d streams: %d requests, %d/%d tokens in/out in the ledger", m.Streams, m.Requests, m.InputTokens, m.OutputTokens)
		if !m.Exact {
			detail = m.Detail
		}
		add("streams: zenmuxd's usage is every stream's, exactly", m.Exact, detail)
	} else {
		add("streams: zenmuxd's usage is every stream's, exactly", false, "no data")
	}
}

// streamsBad counts the streams measurement's wrong answers, warm-ups
// included.
func (r *Report) streamsBad() (n int64, where []string) {
	if r.Streams == nil {
		return 0, nil
	}
	for _, ph := range streamsPhases {
		for _, t := range streamsTargets {
			for i, p := range r.Streams.Results[ph.Key][t] {
				if p.bad() > 0 {
					n += p.bad()
					where = append(where, fmt.Sprintf("streams %s %s round %d: %d non-200 %v, %d errors %q", ph.Key, t, i+1, p.Non200+p.WarmupNon200, p.Statuses, p.Errors+p.WarmupErrors, p.ErrorSamples))
				}
			}
		}
	}
	return n, where
}

// streamsRate is a target's streams a second over all rounds of a phase.
func (s *StreamsResult) streamsRate(ph, t string) float64 {
	var ok int64
	var window float64
	for _, p := range s.Results[ph][t] {
		ok += p.OK
		window += p.WindowS
	}
	if window <= 0 {
		return 0
	}
	return float64(ok) / window
}

// medianOf is the median of the rounds' values of pick (nil when none
// has it).
func medianOf(ps []*PhaseResult, pick func(*PhaseResult) *Dist, q func(*Dist) float64) *float64 {
	var xs []float64
	for _, p := range ps {
		if d := pick(p); d != nil {
			xs = append(xs, q(d))
		}
	}
	if len(xs) == 0 {
		return nil
	}
	slices.Sort(xs)
	m := xs[len(xs)/2]
	if len(xs)%2 == 0 {
		m = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	return &m
}

// printStreams writes the streams table.
func (r *Report) printStreams(w io.Writer) {
	s := r.Streams
	fmt.Fprintf(w, "\nstreams of %d events (µs; latencies from the scheduled send, median of %d round(s)): spaced = %s apart at %g streams/s, open loop; at once = no pause, %d connections, closed loop; CPU over all rounds\n\n",
		s.Events, s.Rounds, time.Duration(s.SpacingMS*1e6), s.Rate, s.Conns)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "load\ttarget\tstreams/s\t% direct\tTTFB p50/p99\ttotal p50/p99\tCPU µs/stream\t× relay\tnon-200+err\t")
	ttfb := func(p *PhaseResult) *Dist { return p.TTFB }
	lat := func(p *PhaseResult) *Dist { return p.Latency }
	pair := func(ps []*PhaseResult, pick func(*PhaseResult) *Dist) string {
		a, b := medianOf(ps, pick, p50), medianOf(ps, pick, p99)
		if a == nil || b == nil {
			return "-"
		}
		return fmt.Sprintf("%.0f/%.0f", *a, *b)
	}
	for _, ph := range streamsPhases {
		direct := s.streamsRate(ph.Key, "direct")
		for _, t := range streamsTargets {
			ps := s.Results[ph.Key][t]
			if len(ps) == 0 {
				continue
			}
			var bad int64
			for _, p := range ps {
				bad += p.bad()
			}
			rate := s.streamsRate(ph.Key, t)
			row := []string{ph.Key, t, fmt.Sprintf("%.0f", rate), "-", pair(ps, ttfb), pair(ps, lat), "-", "-", fmt.Sprint(bad)}
			if direct > 0 {
				row[3] = fmt.Sprintf("%.2f", rate/direct)
			}
			if c, ok := s.CPUMicrosPerStream[ph.Key][t]; ok {
				row[6] = fmt.Sprintf("%.0f", c)
			}
			if t == "zenmuxd-async" {
				if _, _, ratio, ok := r.streamsCPURatio(ph.Key); ok {
					row[7] = fmt.Sprintf("%.2f", ratio)
				}
			}
			fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
		}
	}
	tw.Flush()
	if m := s.Metering; m != nil {
		fmt.Fprintf(w, "zenmuxd-async metering: %d streams answered, the ledger holds %d requests, %d/%d tokens in/out (want %d/%d)\n",
			m.Streams, m.Requests, m.InputTokens, m.OutputTokens, m.WantInputTokens, m.WantOutputTokens)
	}
}

// runStreamsOnly is -streams: build zenmuxd and noproxy, start the stub,
// noproxy and one zenmuxd (async), measure the streams, report.
func runStreamsOnly(ctx context.Context, o options, tmp, root string) int {
	prog := newProgress(streamsSteps(o), time.Duration(streamsSteps(o))*(o.warmup+o.duration+50*time.Millisecond))
	defer prog.finish()
	rep := newReport(o, root)
	fail := func(err error) int { return failed(prog, err) }
	prog.setup("building zenmuxd and noproxy")
	zbin, nbin := filepath.Join(tmp, "zenmuxd"), filepath.Join(tmp, "noproxy")
	for pkg, out := range map[string]string{"./cmd/zenmuxd": zbin, "./bench/noproxy": nbin} {
		if err := buildBinary(ctx, root, pkg, out); err != nil {
			return fail(err)
		}
	}
	stubKey := "sk-stub-" + randomHex(16)
	st, err := startStub(stubKey, o.chunks, o.chunkDelay)
	if err != nil {
		return fail(err)
	}
	defer func() { stopAll(3 * time.Second); st.close() }()
	maxConns := max(streamsConns, o.workers) + 16
	direct := newTarget("direct", st.addr(), stubKey, "stub-model", nil, maxConns)
	prog.setup("starting noproxy")
	port, err := freePort()
	if err != nil {
		return fail(err)
	}
	npAddr := fmt.Sprintf("127.0.0.1:%d", port)
	np, err := startProc("noproxy", nbin, []string{"-listen", npAddr, "-upstream", st.addr()}, os.Environ(), filepath.Join(tmp, "noproxy.log"))
	if err != nil {
		return fail(err)
	}
	if err := waitTCP(ctx, np, npAddr, 15*time.Second); err != nil {
		return fail(err)
	}
	noproxy := newTarget("noproxy", npAddr, stubKey, "stub-model", np, maxConns)
	prog.setup("starting zenmuxd-async")
	z, err := startZenmuxd(ctx, zbin, filepath.Join(tmp, "zenmuxd-async"), "zenmuxd-async", "async", st.addr(), stubKey)
	if err != nil {
		return fail(err)
	}
	for _, t := range []*target{direct, noproxy} {
		if err := sanity(t, o.timeout); err != nil {
			return fail(err)
		}
	}
	rep.Meta.LoadAvgStart = loadAvg()
	step := 0
	if err := runStreams(ctx, o, st, direct, noproxy, z, rep, prog, &step); err != nil {
		return fail(err)
	}
	rep.Meta.LoadAvgEnd = loadAvg()
	prog.finish()
	return report(rep, o)
}
