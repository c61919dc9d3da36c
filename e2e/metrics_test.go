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
// the plan's burst (429), next to the admin API's own series (#13).
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
	for _, s := range []string{"zenmux_admin_requests_total", "zenmux_admin_errors_total", `zenmux_raft_applied_index{node="n1"}`} {
		if _, ok := m[s]; !ok {
			t.Errorf("%s is missing from /metrics", s)
		}
	}
}
