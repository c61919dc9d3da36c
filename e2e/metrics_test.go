package e2e

import (
	"bufio"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape reads the admin listener's /metrics into series → value (the
// series as the text format writes it, labels included).
func scrape(t *testing.T, n *Node) map[string]float64 {
	t.Helper()
	r := n.AdminDo("GET", "/metrics", "")
	if r.Status != 200 {
		t.Fatalf("/metrics: %d %s", r.Status, r.Body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(r.Body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("/metrics line %q is not a series and a value", line)
		}
		out[line[:i]] = v
	}
	return out
}

// Traffic through a real node shows on /metrics with exact counts: four
// answered chat completions, one unknown key (401) and one request over
// the plan's burst (429), each with its added time; a good and a bad
// sign-in and the session the good one opened; the node's one leader
// change; next to the admin API's own series (#13).
func TestMetricsAfterTraffic(t *testing.T) {
	n := StartNode(t, NodeOptions{})
	wtWant(t, n.AdminDo("PUT", "/admin/v1/plans/pro", `{"name":"Pro","price_usd":25,"window_5h_flows":50,"weekly_flows":213.37,"monthly_flows":914.443,"rpm":1,"burst":4}`), 200)
	acct := wtAccount(t, n, "metrics@example.com")
	wtWant(t, n.AdminDo("POST", "/admin/v1/accounts/"+acct+"/subscription", `{"plan":"pro"}`), 200)
	key := Get(wtWant(t, n.AdminDo("POST", "/admin/v1/accounts/"+acct+"/keys", `{"kind":"subscription","name":"m"}`), 201), "key")

	for i := range 4 {
		if r := chat(t, n, key, "zenmux/echo", "hello "+strconv.Itoa(i)); r.Status != 200 {
			t.Fatalf("chat %d: %d %s", i, r.Status, r.Body)
		}
	}
	if r := chat(t, n, "sk-zm-not-a-key", "zenmux/echo", "hello"); r.Status != 401 {
		t.Fatalf("unknown key: %d %s, want 401", r.Status, r.Body)
	}
	if r := chat(t, n, key, "zenmux/echo", "one too many"); r.Status != 429 || !strings.Contains(string(r.Body), "rate_limit_exceeded") {
		t.Fatalf("fifth request within the burst of 4: %d %s, want 429 rate_limit_exceeded", r.Status, r.Body)
	}
	for _, in := range []struct {
		key    string
		status int
	}{{key, 200}, {"sk-zm-not-a-key", 401}} {
		if r := Do(t, "POST", n.Proxy+"/api/v1/sign-in", `{"key":"`+in.key+`"}`); r.Status != in.status {
			t.Fatalf("sign-in: %d %s, want %d", r.Status, r.Body, in.status)
		}
	}
	logged := requestLog(t, n, acct, 4)
	var flows, usd float64
	for _, e := range logged {
		// Decimal amounts are JSON strings or numbers; read both.
		f, _ := strconv.ParseFloat(fmt.Sprint(e["flows"]), 64)
		u, _ := strconv.ParseFloat(fmt.Sprint(e["usd_value"]), 64)
		flows += f
		usd += u
	}

	// Charges are committed just after their answers: wait (at most 10 s)
	// until the node has counted all four.
	var m map[string]float64
	for deadline := time.Now().Add(10 * time.Second); ; {
		m = scrape(t, n)
		if m[`zenmux_charges_total{result="charged"}`] == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := map[string]float64{
		`zenmux_proxy_requests_total{billing="subscription",model="zenmux/echo",status="200",surface="chat"}`: 4,
		`zenmux_proxy_requests_total{billing="subscription",model="zenmux/echo",status="429",surface="chat"}`: 1,
		`zenmux_proxy_requests_total{billing="",model="",status="401",surface="chat"}`:                        1,
		`zenmux_proxy_refusals_total{code="invalid_api_key"}`:                                                 1,
		`zenmux_proxy_refusals_total{code="rate_limit_exceeded"}`:                                             1,
		`zenmux_proxy_request_duration_seconds_count{surface="chat"}`:                                         6,
		`zenmux_upstream_first_byte_seconds_count{provider="echo"}`:                                           4,
		`zenmux_charges_total{result="charged"}`:                                                              4,
		`zenmux_charged_micro_flows_total{billing="subscription"}`:                                            math.Round(flows * 1e6),
		`zenmux_charged_micro_usd_total{billing="subscription"}`:                                              math.Round(usd * 1e6),
		`zenmux_raft_leader{node="n1"}`:                                                                       1,
		// Every request has its added time, zenmuxd's own.
		`zenmux_proxy_added_seconds_count{surface="chat"}`:            6,
		`zenmux_selfservice_sign_ins_total{result="ok"}`:              1,
		`zenmux_selfservice_sign_ins_total{result="bad_credentials"}`: 1,
		`zenmux_selfservice_sessions_active`:                          1,
		`zenmux_raft_leader_changes_total`:                            1,
		`zenmux_raft_snapshots_taken_total`:                           0,
		`zenmux_raft_snapshots_installed_total`:                       0,
		// A single node leases nothing.
		`zenmux_rate_leases_held`:         0,
		`zenmux_rate_leased_requests`:     0,
		`zenmux_quota_leases_held`:        0,
		`zenmux_quota_leased_micro_flows`: 0,
	}
	for series, v := range want {
		got, ok := m[series]
		if !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, v)
		}
	}
	if flows <= 0 {
		t.Errorf("the request log charged %v Flows for four answered requests, want more than 0", flows)
	}
	var batched float64
	for s, v := range m {
		if strings.HasPrefix(s, "zenmux_upstream_errors_total") || strings.HasPrefix(s, "zenmux_upstream_fallbacks_total") {
			t.Errorf("%s = %v, want no upstream errors or fallbacks with the echo provider", s, v)
		}
		if s == "zenmux_raft_charge_batch_size_sum" {
			batched = v
		}
	}
	if batched != 4 {
		t.Errorf("charges in committed batches: %v, want 4", batched)
	}
	if m[`zenmux_proxy_added_seconds_sum{surface="chat"}`] > m[`zenmux_proxy_request_duration_seconds_sum{surface="chat"}`] {
		t.Errorf("added time %v s is more than the requests' duration %v s", m[`zenmux_proxy_added_seconds_sum{surface="chat"}`], m[`zenmux_proxy_request_duration_seconds_sum{surface="chat"}`])
	}
	for _, s := range []string{"zenmux_admin_requests_total", "zenmux_admin_errors_total", `zenmux_raft_applied_index{node="n1"}`, "zenmux_raft_apply_lag"} {
		if _, ok := m[s]; !ok {
			t.Errorf("%s is missing from /metrics", s)
		}
	}
}

// waitSeries scrapes n until series has value want (at most 15 s) and
// returns the last value read.
func waitSeries(t *testing.T, n *Node, series string, want float64) float64 {
	t.Helper()
	var got float64
	for deadline := time.Now().Add(15 * time.Second); ; {
		got = scrape(t, n)[series]
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// In a three-node cluster every node has seen one leader take over (the
// first election); when the leader stops (SIGTERM hands leadership over)
// the two others count exactly one more, and apply everything they know
// committed (#13).
func TestMetricsLeaderChanges(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := chaosLeader(t, nodes)
	for _, n := range nodes {
		if got := waitSeries(t, n, "zenmux_raft_leader_changes_total", 1); got != 1 {
			t.Fatalf("%s: zenmux_raft_leader_changes_total = %v, want 1", n.ID, got)
		}
	}
	leader.Stop()
	var rest []*Node
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	chaosLeader(t, rest)
	for _, n := range rest {
		if got := waitSeries(t, n, "zenmux_raft_leader_changes_total", 2); got != 2 {
			t.Errorf("%s: zenmux_raft_leader_changes_total = %v after the hand-off, want 2", n.ID, got)
		}
		if got := waitSeries(t, n, "zenmux_raft_apply_lag", 0); got != 0 {
			t.Errorf("%s: zenmux_raft_apply_lag = %v at rest, want 0", n.ID, got)
		}
	}
}

// A follower stopped while the others write past its log's end plus
// snapshot_entries catches up from the leader's snapshot: once restarted
// it counts exactly one snapshot installed, and the leader at least one
// taken; the follower that stayed up installed none (#13).
func TestMetricsSnapshots(t *testing.T) {
	const trailing = 16
	nodes := startClusterSpec(t, clusterSpec{nodes: 3, clusterKeys: fmt.Sprintf("snapshot_entries = %d\n", trailing)})
	leader := chaosLeader(t, nodes)
	var stopped, up *Node
	for _, n := range nodes {
		switch {
		case n == leader:
		case stopped == nil:
			stopped = n
		default:
			up = n
		}
	}
	waitSameState(t, nodes)
	stoppedAt := chaosApplied(t, stopped)
	stopped.Stop()
	// Raft looks at the threshold every 5–10 s: write until the leader's
	// newest snapshot is past what the stopped follower holds (at most
	// 60 s), so that it must install one.
	written := 0
	for deadline := time.Now().Add(60 * time.Second); ; {
		idx := chaosSnapshotIndexes(leader.Dir)
		if len(idx) > 0 && idx[len(idx)-1] > stoppedAt+trailing+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader took no snapshot past index %d within 60 s (%d accounts written; snapshots at %v)", stoppedAt+trailing+1, written, idx)
		}
		for range 40 {
			written++
			wtWant(t, leader.AdminDo("POST", "/admin/v1/accounts", fmt.Sprintf(`{"email":"snap%d@example.com","name":"S"}`, written)), 201)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := scrape(t, leader)["zenmux_raft_snapshots_taken_total"]; got < 1 {
		t.Errorf("leader %s: zenmux_raft_snapshots_taken_total = %v, want at least 1", leader.ID, got)
	}
	stopped.Start()
	waitSameState(t, nodes)
	if got := waitSeries(t, stopped, "zenmux_raft_snapshots_installed_total", 1); got != 1 {
		t.Errorf("restarted %s: zenmux_raft_snapshots_installed_total = %v, want 1", stopped.ID, got)
	}
	for _, n := range []*Node{leader, up} {
		if got := scrape(t, n)["zenmux_raft_snapshots_installed_total"]; got != 0 {
			t.Errorf("%s: zenmux_raft_snapshots_installed_total = %v, want 0", n.ID, got)
		}
	}
}
