package main

// The self-service measurement: the subscriber's reads (docs/api.md,
// "Self-service API") at a fixed rate on a node's proxy listener, after
// the chat phases, on each single node and, with -cluster, through the
// leader and through a follower. Every call authenticates with one of the
// accounts' subscription keys as a bearer token, as a script does: the
// call's read barrier (the self-service package takes one per call) is
// what a follower pays on top of the leader. Sign-in is not measured: it
// is slowed to 10 a minute per address on purpose and is one Raft write.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/valyala/fasthttp"
)

// The self-service mix: ssRate calls a second, round-robin over
// ssEndpoints, each endpoint's calls spread over ssAccounts accounts.
const (
	ssRate     = 200
	ssAccounts = 4  // the chat phases' account plus three fresh ones
	ssChats    = 20 // completions per fresh account, so its request log and usage are not empty
)

// ssEndpoints are the GETs of the mix, in the report's column order.
var ssEndpoints = []struct{ Key, Path string }{
	{"me", "/api/v1/me"},
	{"usage", "/api/v1/me/usage"},
	{"keys", "/api/v1/me/keys"},
	{"requests", "/api/v1/me/requests?limit=20"},
	{"billing", "/api/v1/me/billing"},
}

var errNotJSON = errors.New("answer body is not a JSON object")

// ssTarget is one node's proxy listener, called with several accounts'
// keys.
type ssTarget struct {
	name   string
	addr   string
	auths  []string // "Bearer <key>", one per account
	proc   *proc
	client *fasthttp.HostClient
}

func newSSTarget(name, addr string, keys []string, p *proc, maxConns int) *ssTarget {
	t := &ssTarget{name: name, addr: addr, proc: p, client: &fasthttp.HostClient{
		Addr: addr, Name: "zenmux-bench", MaxConns: maxConns, MaxIdleConnDuration: 2 * time.Minute,
		ReadBufferSize: 16 << 10, NoDefaultUserAgentHeader: true, DisablePathNormalizing: true,
	}}
	for _, k := range keys {
		t.auths = append(t.auths, "Bearer "+k)
	}
	return t
}

// get sends one self-service GET and checks the answer is a JSON object;
// it also returns the body of a 200 (for the sanity check).
func (t *ssTarget) get(base time.Time, path, auth string, timeout time.Duration) (result, []byte) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + t.addr + path)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.Header.Set(fasthttp.HeaderAuthorization, auth)
	req.SetTimeout(timeout)
	err := t.client.Do(req, resp)
	r := result{end: time.Since(base)}
	if err != nil {
		r.err = err
		return r, nil
	}
	r.status = resp.StatusCode()
	body := resp.Body()
	if r.status == fasthttp.StatusOK && (len(body) == 0 || body[0] != '{' || !json.Valid(body)) {
		r.err = errNotJSON
	}
	return r, append([]byte(nil), body...)
}

// ssStats is one self-service run: the whole mix and each endpoint.
type ssStats struct {
	all       *runStats
	endpoints []*runStats // in ssEndpoints order
}

// ssOpenLoop sends rate self-service GETs a second for d, on a fixed
// schedule as openLoop does (latency from the scheduled send); call i
// goes to endpoint i mod len(ssEndpoints) with account (i / that) mod the
// accounts, so every account calls every endpoint alike.
func ssOpenLoop(ctx context.Context, t *ssTarget, rate float64, d time.Duration, workers int, timeout time.Duration) *ssStats {
	n := max(int(rate*d.Seconds()), 1)
	ne := len(ssEndpoints)
	jobs := make(chan time.Duration, n)
	ts := make([][]*tally, workers) // worker → endpoint → tally
	var next atomic.Int64
	var wg sync.WaitGroup
	var samples atomic.Int64
	base := time.Now().Add(2 * time.Millisecond)
	for w := range workers {
		ts[w] = make([]*tally, ne)
		for e := range ne {
			ts[w][e] = &tally{}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sched := range jobs {
				if ctx.Err() != nil {
					continue // drain without sending
				}
				i := int(next.Add(1) - 1)
				e, acct := i%ne, (i/ne)%len(t.auths)
				r, _ := t.get(base, ssEndpoints[e].Path, t.auths[acct], timeout)
				ts[w][e].add(r, sched, false, &samples)
			}
		}()
	}
	lag := dispatch(ctx, base, n, rate, jobs)
	close(jobs)
	// Every request carries its own timeout, so this wait is bounded.
	wg.Wait()
	window := time.Since(base)
	out := &ssStats{}
	var every []*tally
	for e := range ne {
		col := make([]*tally, workers)
		for w := range workers {
			col[w] = ts[w][e]
		}
		s := merge(col, window, 0, false)
		s.Sent = s.OK + s.Non200 + s.Errors // every call sent was answered or failed
		out.endpoints = append(out.endpoints, s)
		every = append(every, col...)
	}
	out.all = merge(every, window, int64(len(lag)), false)
	out.all.Lag = dist(lag)
	return out
}

// ssSingleTargets and ssClusterTargets are the self-service runs, in
// order: each single node after its chat phases; per cluster, the
// leader's proxy listener, then a follower's.
var (
	ssSingleTargets  = []string{"zenmuxd-async", "zenmuxd-quorum"}
	ssClusterTargets = []string{"cluster-leader", "cluster-follower"}
)

// SelfServiceResult is one self-service run in the JSON.
type SelfServiceResult struct {
	Target   string  `json:"target"` // zenmuxd-async, zenmuxd-quorum, cluster-leader or cluster-follower
	Cluster  bool    `json:"cluster"`
	Ack      string  `json:"ack"`
	Node     string  `json:"node,omitempty"` // a cluster node's id
	Rate     float64 `json:"rate"`
	Accounts int     `json:"accounts"`
	// the whole mix: latency, statuses, CPU µs per answered call of the
	// node taking the load
	All *PhaseResult `json:"all,omitempty"`
	// endpoint (me, usage, keys, requests, billing) → its share of the mix
	Endpoints map[string]*PhaseResult `json:"endpoints,omitempty"`
	// cluster: node id (and "total") → CPU µs per answered call
	NodeCPUMicrosPerReq map[string]float64 `json:"node_cpu_us_per_req,omitempty"`
	// cluster-follower: its percentiles minus cluster-leader's (the mix)
	MinusLeader *Delta `json:"minus_leader,omitempty"`
	Error       string `json:"error,omitempty"`
}

// ssPrepare creates ssAccounts-1 fresh accounts (subscription and key)
// through admin's API and sends ssChats completions with each new key
// through proxyAddr, so every account has usage, a request log and a
// billing line; it returns mainKey (the chat phases' account, whose log
// is long by now) and the new keys.
func ssPrepare(admin *zenmuxd, proxyAddr, mainKey string, timeout time.Duration) ([]string, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	keys := []string{mainKey}
	for n := 2; n <= ssAccounts; n++ {
		k, err := admin.provision(hc, n)
		if err != nil {
			return nil, err
		}
		t := newTarget("self-service warm-up", proxyAddr, k, "bench/stub", nil, 1)
		for range ssChats {
			r := t.doUnary(time.Now(), timeout)
			if r.err != nil || r.status != fasthttp.StatusOK {
				return nil, fmt.Errorf("account %d: a completion: status %d, %v", n, r.status, r.err)
			}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// ssSanity calls every endpoint once with every account's key: each must
// be a 200 JSON object, and the request log must show entries (with
// ack = "async" the last charges may take a moment: up to 10 s).
func ssSanity(t *ssTarget, timeout time.Duration) error {
	deadline := time.Now().Add(10 * time.Second)
	for a, auth := range t.auths {
		for _, e := range ssEndpoints {
			for i := 0; ; i++ {
				r, body := t.get(time.Now(), e.Path, auth, timeout)
				switch {
				case r.err != nil && r.status == 0:
					return fmt.Errorf("%s: GET %s (account %d): %v", t.name, e.Path, a+1, r.err)
				case r.status != fasthttp.StatusOK:
					return fmt.Errorf("%s: GET %s (account %d): status %d: %.300s", t.name, e.Path, a+1, r.status, body)
				case r.err != nil:
					return fmt.Errorf("%s: GET %s (account %d): %v: %.300s", t.name, e.Path, a+1, r.err, body)
				}
				if e.Key != "requests" || bytes.HasPrefix(body, []byte(`{"data":[{`)) {
					break
				}
				if i >= 200 || time.Now().After(deadline) {
					return fmt.Errorf("%s: GET %s (account %d): no entries after 10 s: %.300s", t.name, e.Path, a+1, body)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	return nil
}

// ssMeasure runs the warm-up and the measured mix on t and fills res;
// nodes (id → process) are the processes whose CPU it samples, the
// target's among them.
func ssMeasure(ctx context.Context, o options, t *ssTarget, nodes map[string]*proc, res *SelfServiceResult, prog *progress, step int, label string) {
	ph := phase{Key: "selfservice", Label: fmt.Sprintf("self-service %d req/s", ssRate), Mode: "open", Rate: ssRate}
	prog.step(step, label+" · warm-up")
	warm := &ssStats{all: &runStats{Statuses: map[int]int64{}}}
	if o.warmup > 0 {
		warm = ssOpenLoop(ctx, t, ssRate, o.warmup, o.workers, o.timeout)
	}
	if ctx.Err() != nil {
		return
	}
	prog.step(step, label)
	cpu0 := map[string]time.Duration{}
	for id, p := range nodes {
		cpu0[id], _ = cpuTime(p.pid())
	}
	self := os.Getpid()
	self0, _ := cpuTime(self)
	s := ssOpenLoop(ctx, t, ssRate, o.duration, o.workers, o.timeout)
	self1, _ := cpuTime(self)
	res.All = phaseResult(ph, o, s.all, warm.all)
	if s.all.Window > 0 {
		res.All.BenchCPUPercent = 100 * (self1 - self0).Seconds() / s.all.Window.Seconds()
	}
	res.Endpoints = map[string]*PhaseResult{}
	for i, e := range ssEndpoints {
		w := &runStats{Statuses: map[int]int64{}}
		if len(warm.endpoints) > i {
			w = warm.endpoints[i]
		}
		r := phaseResult(phase{Mode: "open", Rate: ssRate / float64(len(ssEndpoints))}, o, s.endpoints[i], w)
		res.Endpoints[e.Key] = r
	}
	answered := s.all.OK + s.all.Non200
	if answered == 0 {
		return
	}
	per := map[string]float64{}
	var total float64
	for id, p := range nodes {
		cpu1, err := cpuTime(p.pid())
		if err != nil {
			continue
		}
		v := (cpu1 - cpu0[id]).Seconds() * 1e6 / float64(answered)
		per[id], total = v, total+v
		if p == t.proc {
			cpuS := (cpu1 - cpu0[id]).Seconds()
			res.All.CPUSeconds, res.All.CPUMicrosPerReq = &cpuS, &v
		}
	}
	if res.Cluster {
		per["total"] = total
		res.NodeCPUMicrosPerReq = per
	}
}

// runSelfServiceSingle measures the mix on each single node (in
// ssSingleTargets order) that is still running. A node that cannot be
// set up is an error in the report, not the end of the run.
func runSelfServiceSingle(ctx context.Context, o options, nodes map[string]*zenmuxd, rep *Report, prog *progress, step *int) error {
	for _, name := range ssSingleTargets {
		*step++
		if ctx.Err() != nil {
			return ctx.Err()
		}
		z := nodes[name]
		if z == nil || !z.p.alive() { // its exit is already reported
			continue
		}
		res := &SelfServiceResult{Target: name, Ack: z.ack, Rate: ssRate, Accounts: ssAccounts}
		rep.SelfService = append(rep.SelfService, res)
		prog.setup(name + ": self-service accounts and their completions")
		keys, err := ssPrepare(z, z.proxyAddr, z.key, o.timeout)
		t := newSSTarget(name, z.proxyAddr, keys, z.p, o.workers+16)
		if err == nil {
			err = ssSanity(t, o.timeout)
		}
		if err != nil {
			res.Error = err.Error()
			rep.Errors = append(rep.Errors, fmt.Sprintf("self-service %s: %v\n--- log tail ---\n%s", name, err, z.p.logTail(2000)))
			continue
		}
		ssMeasure(ctx, o, t, map[string]*proc{name: z.p}, res, prog, *step, fmt.Sprintf("%s · self-service %d req/s", name, ssRate))
	}
	return ctx.Err()
}

// runSelfServiceCluster measures the mix through c's leader, then through
// its follower, with accounts created through the leader; an error is
// returned for the cluster's report.
func runSelfServiceCluster(ctx context.Context, o options, c *benchCluster, rep *Report, prog *progress, step *int) error {
	leader, follower := c.nodes[c.leader], c.nodes[c.follower]
	prog.setup(fmt.Sprintf("cluster %s: self-service accounts and their completions via the leader %s", c.ack, c.ids[c.leader]))
	keys, err := ssPrepare(leader, leader.proxyAddr, c.key, o.timeout)
	if err != nil {
		*step += len(ssClusterTargets)
		return fmt.Errorf("self-service: %w", err)
	}
	procs := map[string]*proc{}
	for i, z := range c.nodes {
		procs[c.ids[i]] = z.p
	}
	var results []*SelfServiceResult
	for i, z := range []*zenmuxd{leader, follower} {
		*step++
		name, id := ssClusterTargets[i], c.ids[c.leader]
		if z == follower {
			id = c.ids[c.follower]
		}
		t := newSSTarget(name, z.proxyAddr, keys, z.p, o.workers+16)
		if err := ssSanity(t, o.timeout); err != nil {
			*step += len(ssClusterTargets) - 1 - i
			return fmt.Errorf("self-service: %w", err)
		}
		res := &SelfServiceResult{Target: name, Cluster: true, Ack: c.ack, Node: id, Rate: ssRate, Accounts: ssAccounts}
		rep.SelfService = append(rep.SelfService, res)
		results = append(results, res)
		ssMeasure(ctx, o, t, procs, res, prog, *step, fmt.Sprintf("cluster %s · %s · self-service %d req/s", c.ack, name, ssRate))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	results[1].MinusLeader = delta(results[1].All, results[0].All)
	return nil
}

// name is the run's name in checks and errors.
func (s *SelfServiceResult) name() string {
	if s.Cluster {
		return fmt.Sprintf("cluster %s %s %s", s.Ack, s.Target, s.Node)
	}
	return s.Target
}

// The self-service bounds: a console page load makes about six of these
// calls at once, and should not wait on any of them.
const (
	ssP99Single   = 10_000 // µs, on a single node
	ssP99Follower = 20_000 // µs, through a follower: one ReadIndex round trip to the leader more
)

// selfServiceChecks bound the mix's p99 on each single node and through
// each cluster's follower.
func (r *Report) selfServiceChecks(add func(name string, pass bool, detail string)) {
	for _, s := range r.SelfService {
		bound, where := ssP99Single, "on "+s.Target
		if s.Cluster {
			if s.Target != "cluster-follower" {
				continue
			}
			bound, where = ssP99Follower, fmt.Sprintf("through a follower (cluster %s)", s.Ack)
		}
		name := fmt.Sprintf("self-service p99 at %d req/s ≤ %d ms %s", ssRate, bound/1000, where)
		if s.All == nil || s.All.Latency == nil {
			add(name, false, "no data")
			continue
		}
		detail := fmt.Sprintf("%.0f µs (p50 %.0f, max %.0f)", s.All.Latency.P99, s.All.Latency.P50, s.All.Latency.Max)
		if l := s.All.DispatchLag; l != nil && l.P99 > 1000 {
			// The generator itself ran late: the machine, not the node.
			detail += fmt.Sprintf("; the bench's own send lag p99 %.0f µs", l.P99)
		}
		add(name, s.All.Latency.P99 <= float64(bound), detail)
	}
}

// printSelfService writes the self-service table: per run, the mix and
// each endpoint, and per cluster the follower − leader row.
func (r *Report) printSelfService(w io.Writer) {
	fmt.Fprintf(w, "\nself-service GETs at %d req/s, round-robin over %d endpoints and %d accounts (bearer key): latencies in µs from the scheduled send; lag p99: how late the bench itself sent (a busy machine); CPU µs/req: the node taking the load (cluster: / all %d nodes)\n\n",
		ssRate, len(ssEndpoints), ssAccounts, clusterSize)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"ack", "target", "node", "all p50/p99/max"}
	for _, e := range ssEndpoints {
		head = append(head, e.Key)
	}
	fmt.Fprintln(tw, strings.Join(append(head, "lag p99", "CPU µs/req", "non-200+err"), "\t")+"\t")
	lat := func(p *PhaseResult) string {
		if p == nil || p.Latency == nil {
			return "-"
		}
		return fmt.Sprintf("%.0f/%.0f/%.0f", p.Latency.P50, p.Latency.P99, p.Latency.Max)
	}
	diff := func(a, b *PhaseResult) string {
		if a == nil || b == nil || a.Latency == nil || b.Latency == nil {
			return "-"
		}
		return fmt.Sprintf("%+.0f/%+.0f/%+.0f", a.Latency.P50-b.Latency.P50, a.Latency.P99-b.Latency.P99, a.Latency.Max-b.Latency.Max)
	}
	var leader *SelfServiceResult
	for _, s := range r.SelfService {
		node := s.Node
		if node == "" {
			node = "-"
		}
		row := []string{s.Ack, s.Target, node, lat(s.All)}
		for _, e := range ssEndpoints {
			row = append(row, lat(s.Endpoints[e.Key]))
		}
		lag, cpu := "-", "-"
		if s.All != nil && s.All.DispatchLag != nil {
			lag = fmt.Sprintf("%.0f", s.All.DispatchLag.P99)
		}
		if s.All != nil && s.All.CPUMicrosPerReq != nil {
			cpu = fmt.Sprintf("%.1f", *s.All.CPUMicrosPerReq)
			if t, ok := s.NodeCPUMicrosPerReq["total"]; ok {
				cpu += fmt.Sprintf("/%.1f", t)
			}
		}
		bad := "-"
		if s.All != nil {
			bad = fmt.Sprint(s.All.bad())
		}
		fmt.Fprintln(tw, strings.Join(append(row, lag, cpu, bad), "\t")+"\t")
		switch {
		case s.Target == "cluster-leader":
			leader = s
		case s.Target == "cluster-follower" && leader != nil && leader.Ack == s.Ack:
			row := []string{s.Ack, "follower − leader", "", diff(s.All, leader.All)}
			for _, e := range ssEndpoints {
				row = append(row, diff(s.Endpoints[e.Key], leader.Endpoints[e.Key]))
			}
			fmt.Fprintln(tw, strings.Join(append(row, "", "", ""), "\t")+"\t")
		}
	}
	tw.Flush()
	for _, s := range r.SelfService {
		if s.Error != "" {
			fmt.Fprintf(w, "self-service %s: FAILED: %s\n", s.name(), firstLine(s.Error))
		}
	}
}
