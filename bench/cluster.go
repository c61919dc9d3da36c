package main

// The cluster measurement (-cluster, -cluster-only): three zenmuxd nodes on
// loopback, set up as README.md "Three nodes" says (a shared secret file
// and admin token file, n1 bootstraps, n2 and n3 join through n1's admin
// address), measured at 1000 req/s through the leader's proxy and through
// a follower's, next to the stub itself.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// clusterTargets are the measurements of one cluster, in order: direct
// again, so the added latency is against the stub measured moments before.
var clusterTargets = []string{"direct", "cluster-leader", "cluster-follower"}

// clusterSize is the number of nodes.
const clusterSize = 3

// benchCluster is one started cluster.
type benchCluster struct {
	ack      string
	ids      []string
	nodes    []*zenmuxd // in id order; nodes[0] bootstrapped
	leader   int        // index into nodes
	follower int
	key      string
	setup    time.Duration // first start to every node ready
}

// clusterView is GET /admin/v1/cluster.
type clusterView struct {
	LeaderID string `json:"leader_id"`
	Nodes    []struct {
		ID        string `json:"id"`
		AdminAddr string `json:"admin_addr"`
		State     string `json:"state"`
	} `json:"nodes"`
}

func (z *zenmuxd) cluster(hc *http.Client) (*clusterView, error) {
	b, err := z.admin(hc, "GET", "/admin/v1/cluster", "", nil)
	if err != nil {
		return nil, err
	}
	var v clusterView
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("GET /admin/v1/cluster: %v: %.300s", err, b)
	}
	return &v, nil
}

// readyz is one GET /readyz: its status, 0 on a transport error.
func readyz(hc *http.Client, adminURL string) (int, error) {
	resp, err := hc.Get(adminURL + "/readyz")
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// logTails quotes the end of every node's log, for error messages.
func (c *benchCluster) logTails(n int) string {
	var b strings.Builder
	for _, z := range c.nodes {
		if z != nil && z.p != nil {
			fmt.Fprintf(&b, "\n--- %s log tail ---\n%s", z.p.name, z.p.logTail(n))
		}
	}
	return b.String()
}

// stop stops the cluster's nodes in parallel.
func (c *benchCluster) stop() {
	var wg sync.WaitGroup
	for _, z := range c.nodes {
		if z != nil && z.p != nil {
			wg.Add(1)
			go func() { defer wg.Done(); z.p.stop(3 * time.Second) }()
		}
	}
	wg.Wait()
}

// startCluster starts three nodes under dir with fresh data dirs, waits
// until every node lists all three and agrees on a leader, and creates
// the account, subscription and key through the leader. On an error the
// nodes started so far are returned in c, for their logs and to stop them.
func startCluster(ctx context.Context, bin, dir, ack string, st *stub, stubKey string, prog *progress) (c *benchCluster, err error) {
	c = &benchCluster{ack: ack}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return c, err
	}
	secret, tokenFile := filepath.Join(dir, "cluster.secret"), filepath.Join(dir, "admin.token")
	token := randomHex(32)
	if err := os.WriteFile(secret, []byte(randomHex(32)+"\n"), 0o600); err != nil {
		return c, err
	}
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return c, err
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	begin := time.Now()
	deadline := begin.Add(60 * time.Second)
	env := zenmuxdEnv(stubKey)
	common := fmt.Sprintf("\n[admin]\ntoken_file = %q\n", tokenFile)

	// start writes node i's config and starts it.
	start := func(i int) (*zenmuxd, error) {
		id := fmt.Sprintf("n%d", i+1)
		ndir := filepath.Join(dir, id)
		if err := os.MkdirAll(ndir, 0o700); err != nil {
			return nil, err
		}
		ports, err := freePorts(3)
		if err != nil {
			return nil, err
		}
		extra := common + fmt.Sprintf("[cluster]\nbootstrap = true\nsecret_file = %q\n", secret)
		if i > 0 {
			join := strings.TrimPrefix(c.nodes[0].adminURL, "http://")
			extra = common + fmt.Sprintf("[cluster]\nbootstrap = false\njoin = [%q]\nsecret_file = %q\n", join, secret)
		}
		z := &zenmuxd{dataDir: filepath.Join(ndir, "data"), proxyAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
			adminURL: fmt.Sprintf("http://127.0.0.1:%d", ports[1]), token: token, ack: ack}
		cfgPath := filepath.Join(ndir, "zenmux.toml")
		if err := os.WriteFile(cfgPath, []byte(zenmuxdConfig(id, z.dataDir, ports[0], ports[1], ports[2], ack, st.addr(), extra)), 0o600); err != nil {
			return nil, err
		}
		p, err := startProc(fmt.Sprintf("cluster-%s-%s", ack, id), bin, []string{"-config", cfgPath}, env, filepath.Join(ndir, "zenmuxd.log"))
		if err != nil {
			return nil, err
		}
		z.p = p
		c.ids = append(c.ids, id)
		c.nodes = append(c.nodes, z)
		return z, nil
	}

	// n1 bootstraps and must be up before the others join through it
	// (a joiner retries once a second).
	prog.setup(fmt.Sprintf("cluster %s: starting n1 (bootstrap)", ack))
	n1, err := start(0)
	if err != nil {
		return c, err
	}
	if err := waitReadyz(ctx, hc, n1.p, n1.adminURL, deadline); err != nil {
		return c, fmt.Errorf("n1: %w", err)
	}
	prog.setup(fmt.Sprintf("cluster %s: starting n2, n3 (join via n1)", ack))
	for i := 1; i < clusterSize; i++ {
		if _, err := start(i); err != nil {
			return c, err
		}
	}

	// Every node: /readyz 200, three members listed, one leader agreed on.
	prog.setup(fmt.Sprintf("cluster %s: waiting for %d members and a leader", ack, clusterSize))
	var last string
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			return c, ctx.Err()
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("the cluster did not form within 60 s; last: %s", last)
		}
		leader, ok := "", true
		for _, z := range c.nodes {
			if !z.p.alive() {
				return c, fmt.Errorf("%s exited during start: %v", z.p.name, z.p.waitErr)
			}
			if code, err := readyz(hc, z.adminURL); code != 200 {
				ok, last = false, fmt.Sprintf("%s: /readyz %d %v", z.p.name, code, err)
				break
			}
			v, err := z.cluster(hc)
			if err != nil {
				ok, last = false, fmt.Sprintf("%s: %v", z.p.name, err)
				break
			}
			if len(v.Nodes) != clusterSize || v.LeaderID == "" || (leader != "" && v.LeaderID != leader) {
				ok, last = false, fmt.Sprintf("%s: %d members, leader %q", z.p.name, len(v.Nodes), v.LeaderID)
				break
			}
			leader = v.LeaderID
		}
		if ok {
			c.leader = -1
			for j, id := range c.ids {
				if id == leader {
					c.leader = j
				}
			}
			if c.leader < 0 {
				return c, fmt.Errorf("leader_id %q is none of %v", leader, c.ids)
			}
			break
		}
		if i > 10_000 {
			return c, fmt.Errorf("the cluster did not form; last: %s", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.follower = (c.leader + 1) % clusterSize
	c.setup = time.Since(begin)

	prog.setup(fmt.Sprintf("cluster %s: account, subscription and key via the leader %s", ack, c.ids[c.leader]))
	if c.key, err = c.nodes[c.leader].provision(hc, 1); err != nil {
		return c, err
	}
	return c, nil
}

// runCluster starts one cluster, measures the stub, the leader's proxy
// and a follower's proxy at 1000 req/s, then the self-service reads
// through both, and stops the cluster. A cluster
// that fails is an error in the report, not the end of the run; only an
// interrupt returns an error.
func runCluster(ctx context.Context, o options, tmp, zbin, ack string, st *stub, stubKey string, direct *target, rep *Report, prog *progress, step *int) error {
	res := &ClusterResult{Ack: ack, Nodes: clusterSize, Rate: rateLow, Results: map[string]*PhaseResult{}, NodeCPUMicrosPerReq: map[string]map[string]float64{}}
	rep.Cluster = append(rep.Cluster, res)
	failed := func(err error, c *benchCluster) error {
		*step += len(clusterTargets) + len(ssClusterTargets) // keep the progress count right
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := fmt.Sprintf("cluster %s: %v", ack, err)
		if c != nil {
			msg += c.logTails(1500)
		}
		res.Error = fmt.Sprintf("%v", err)
		rep.Errors = append(rep.Errors, msg)
		return nil
	}

	c, err := startCluster(ctx, zbin, filepath.Join(tmp, "cluster-"+ack), ack, st, stubKey, prog)
	defer c.stop()
	if err != nil {
		return failed(err, c)
	}
	res.SetupS = c.setup.Seconds()
	res.LeaderID, res.FollowerID = c.ids[c.leader], c.ids[c.follower]
	for _, z := range c.nodes {
		res.NodeAddrs = append(res.NodeAddrs, ClusterNodeAddrs{Proxy: z.proxyAddr, Admin: strings.TrimPrefix(z.adminURL, "http://")})
	}

	maxConns := o.workers + 16
	leader, follower := c.nodes[c.leader], c.nodes[c.follower]
	targets := []*target{
		direct,
		newTarget("cluster-leader", leader.proxyAddr, c.key, "bench/stub", leader.p, maxConns),
		newTarget("cluster-follower", follower.proxyAddr, c.key, "bench/stub", follower.p, maxConns),
	}
	for _, t := range targets[1:] {
		if err := sanity(t, o.timeout); err != nil {
			return failed(err, c)
		}
	}

	ph := phase{Key: "rate1000", Label: "1000 req/s", Mode: "open", Rate: rateLow}
	self := os.Getpid()
	for _, t := range targets {
		*step++
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, z := range c.nodes {
			if !z.p.alive() {
				return failed(fmt.Errorf("%s exited: %v", z.p.name, z.p.waitErr), c)
			}
		}
		label := fmt.Sprintf("cluster %s · %s · %s", ack, t.Name, ph.Label)
		prog.step(*step, label+" · warm-up")
		warm := measure(ctx, t, ph, o, o.warmup)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		prog.step(*step, label)
		cpu0 := make([]time.Duration, len(c.nodes))
		for i, z := range c.nodes {
			cpu0[i], _ = cpuTime(z.p.pid())
		}
		self0, _ := cpuTime(self)
		s := measure(ctx, t, ph, o, o.duration)
		self1, _ := cpuTime(self)
		r := phaseResult(ph, o, s, warm)
		r.BenchCPUPercent = 100 * (self1 - self0).Seconds() / s.Window.Seconds()
		// CPU of every node: the one the load went to (also in the
		// phase result) and the two it talks to. While the load goes to
		// the stub, the nodes' idle CPU instead.
		if t == direct {
			res.IdleCPUPercent = map[string]float64{}
			for i, z := range c.nodes {
				if cpu1, err := cpuTime(z.p.pid()); err == nil && s.Window > 0 {
					res.IdleCPUPercent[c.ids[i]] = 100 * (cpu1 - cpu0[i]).Seconds() / s.Window.Seconds()
				}
			}
		} else if answered := s.OK + s.Non200; answered > 0 {
			per := map[string]float64{}
			var total float64
			for i, z := range c.nodes {
				cpu1, err := cpuTime(z.p.pid())
				if err != nil {
					continue
				}
				v := (cpu1 - cpu0[i]).Seconds() * 1e6 / float64(answered)
				per[c.ids[i]] = v
				total += v
				if t.proc == z.p {
					cpuS := (cpu1 - cpu0[i]).Seconds()
					r.CPUSeconds, r.CPUMicrosPerReq = &cpuS, &v
				}
			}
			per["total"] = total
			res.NodeCPUMicrosPerReq[t.Name] = per
		}
		res.Results[t.Name] = r
	}

	// The self-service reads, through the leader and the follower.
	if err := runSelfServiceCluster(ctx, o, c, rep, prog, step); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rep.Errors = append(rep.Errors, fmt.Sprintf("cluster %s: %v%s", ack, err, c.logTails(1500)))
	}

	// Did leadership hold through the measurements?
	if v, err := leader.cluster(&http.Client{Timeout: 10 * time.Second}); err == nil {
		res.LeaderIDAfter = v.LeaderID
	}
	if res.LeaderIDAfter != "" && res.LeaderIDAfter != res.LeaderID {
		rep.Errors = append(rep.Errors, fmt.Sprintf("cluster %s: the leader changed during the measurements (%s → %s): leader and follower rows are mixed", ack, res.LeaderID, res.LeaderIDAfter))
	}

	res.fill()
	prog.setup(fmt.Sprintf("cluster %s: stopping", ack))
	return nil
}

// ClusterResult is one cluster's measurements in the JSON.
type ClusterResult struct {
	Ack           string             `json:"ack"`
	Nodes         int                `json:"nodes"`
	NodeAddrs     []ClusterNodeAddrs `json:"node_addrs,omitempty"` // n1, n2, n3
	LeaderID      string             `json:"leader_id,omitempty"`
	FollowerID    string             `json:"follower_id,omitempty"`
	LeaderIDAfter string             `json:"leader_id_after,omitempty"` // GET /admin/v1/cluster after the measurements
	SetupS        float64            `json:"setup_s"`                   // first start to three members, a leader and /readyz 200 everywhere
	Rate          float64            `json:"rate"`
	// target (direct, cluster-leader, cluster-follower) → the 1000 req/s run
	Results map[string]*PhaseResult `json:"results"`
	// target's percentile minus direct's, µs
	Added map[string]*Delta `json:"added_vs_direct,omitempty"`
	// follower's percentile minus leader's, µs: what going through a
	// follower costs on top of going through the leader
	FollowerMinusLeader *Delta `json:"follower_minus_leader,omitempty"`
	// target → node id (and "total") → CPU µs per answered request
	NodeCPUMicrosPerReq map[string]map[string]float64 `json:"node_cpu_us_per_req"`
	// node id → CPU % (one core = 100) while the load went to the stub
	IdleCPUPercent map[string]float64 `json:"idle_cpu_pct,omitempty"`
	Error          string             `json:"error,omitempty"`
}

// ClusterNodeAddrs are one node's listeners.
type ClusterNodeAddrs struct {
	Proxy string `json:"proxy"`
	Admin string `json:"admin"`
}

// Delta is a difference of latency percentiles in µs.
type Delta struct {
	P50 float64 `json:"p50_us"`
	P90 float64 `json:"p90_us"`
	P99 float64 `json:"p99_us"`
}

func delta(a, b *PhaseResult) *Delta {
	if a == nil || b == nil || a.Latency == nil || b.Latency == nil {
		return nil
	}
	return &Delta{P50: a.Latency.P50 - b.Latency.P50, P90: a.Latency.P90 - b.Latency.P90, P99: a.Latency.P99 - b.Latency.P99}
}

// fill computes the differences from the results.
func (r *ClusterResult) fill() {
	d := r.Results["direct"]
	r.Added = map[string]*Delta{}
	for _, t := range clusterTargets[1:] {
		if x := delta(r.Results[t], d); x != nil {
			r.Added[t] = x
		}
	}
	r.FollowerMinusLeader = delta(r.Results["cluster-follower"], r.Results["cluster-leader"])
}
