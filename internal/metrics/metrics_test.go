package metrics

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A nil *Metrics records nothing and does not panic: a gateway without
// metrics (unit tests) calls it unguarded.
func TestNilRecordsNothing(t *testing.T) {
	var m *Metrics
	m.Request("chat", 200, "payg", "zenmux/echo")
	m.Duration("chat", time.Millisecond, 0)
	m.UpstreamFirstByte("echo", time.Millisecond)
	m.UpstreamError("echo", 502)
	m.SignIn("ok")
	m.Fallback("echo")
	m.Refusal("invalid_api_key")
	m.Committed(time.Millisecond, []Charge{{Billing: "payg", Result: "charged", MicroUSD: 1, MicroFlows: 1}})
}

// Append writes the exact series recorded, after the bytes it is given;
// only charged results add money, and status classes name the reason.
func TestAppendExact(t *testing.T) {
	m := New()
	m.Request("chat", 200, "subscription", "zenmux/echo")
	m.Request("chat", 200, "subscription", "zenmux/echo")
	m.Request("messages", 401, "", "")
	m.Duration("chat", 3*time.Millisecond, 2*time.Millisecond)
	m.Duration("chat", time.Millisecond, 2*time.Millisecond)
	m.SignIn("ok")
	m.SignIn("bad_credentials")
	m.SignIn("bad_credentials")
	m.UpstreamError("a", 0)
	m.UpstreamError("a", 429)
	m.UpstreamError("a", 503)
	m.UpstreamError("a", 404)
	m.Fallback("a")
	m.Refusal("quota_exceeded")
	m.Committed(time.Millisecond, []Charge{
		{Billing: "payg", Result: "charged", MicroUSD: 1500, MicroFlows: 0},
		{Billing: "subscription", Result: "charged", MicroUSD: 20, MicroFlows: 1005},
		{Billing: "subscription", Result: "exists", MicroUSD: 20, MicroFlows: 1005},
	})
	m.Read(Sources{
		Raft:        func() Raft { return Raft{LeaderChanges: 3, ApplyLag: 2, SnapshotsTaken: 5, SnapshotsInstalled: 1} },
		QuotaLeases: func() (int, int64) { return 2, 7_500_000 },
		Sessions:    func() int { return 4 },
	})
	b, err := m.Append([]byte("before 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	if !strings.HasPrefix(out, "before 1\n") {
		t.Errorf("Append dropped what it was given: %q", out[:min(20, len(out))])
	}
	for _, line := range []string{
		`zenmux_proxy_requests_total{billing="subscription",model="zenmux/echo",status="200",surface="chat"} 2`,
		`zenmux_proxy_requests_total{billing="",model="",status="401",surface="messages"} 1`,
		`zenmux_upstream_errors_total{provider="a",reason="transport"} 1`,
		`zenmux_upstream_errors_total{provider="a",reason="status_429"} 1`,
		`zenmux_upstream_errors_total{provider="a",reason="status_5xx"} 1`,
		`zenmux_upstream_errors_total{provider="a",reason="status_4xx"} 1`,
		`zenmux_upstream_fallbacks_total{provider="a"} 1`,
		`zenmux_proxy_refusals_total{code="quota_exceeded"} 1`,
		`zenmux_charges_total{result="charged"} 2`,
		`zenmux_charges_total{result="exists"} 1`,
		`zenmux_charged_micro_usd_total{billing="payg"} 1500`,
		`zenmux_charged_micro_usd_total{billing="subscription"} 20`,
		`zenmux_charged_micro_flows_total{billing="subscription"} 1005`,
		`zenmux_raft_charge_batch_size_sum 3`,
		`zenmux_raft_charge_commit_seconds_count 1`,
		"# TYPE zenmux_raft_leader_changes_total counter",
		`zenmux_raft_leader_changes_total 3`,
		"# TYPE zenmux_raft_apply_lag gauge",
		`zenmux_raft_apply_lag 2`,
		`zenmux_raft_snapshots_taken_total 5`,
		`zenmux_raft_snapshots_installed_total 1`,
		// RateLeases is nil: a node that holds none reads 0.
		`zenmux_rate_leases_held 0`,
		`zenmux_rate_leased_requests 0`,
		`zenmux_quota_leases_held 2`,
		`zenmux_quota_leased_micro_flows 7.5e+06`,
		`zenmux_selfservice_sessions_active 4`,
		`zenmux_proxy_request_duration_seconds_count{surface="chat"} 2`,
		`zenmux_proxy_request_duration_seconds_sum{surface="chat"} 0.004`,
		// 3 ms less 2 upstream, and 1 ms less 2 (no less than nothing).
		`zenmux_proxy_added_seconds_count{surface="chat"} 2`,
		`zenmux_proxy_added_seconds_sum{surface="chat"} 0.001`,
		`zenmux_proxy_added_seconds_bucket{surface="chat",le="5e-05"} 1`,
		`zenmux_selfservice_sign_ins_total{result="ok"} 1`,
		`zenmux_selfservice_sign_ins_total{result="bad_credentials"} 2`,
	} {
		if !strings.Contains(out, "\n"+line+"\n") {
			t.Errorf("missing %s in:\n%s", line, out)
		}
	}
}

// Every series the Grafana dashboard queries is one zenmuxd writes: this
// package's, or the admin API's and the replica's own lines.
func TestDashboardNamesExist(t *testing.T) {
	raw, err := os.ReadFile("../../docs/grafana-zenmuxd.json")
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	m.Request("chat", 200, "", "")
	m.Duration("chat", time.Millisecond, 0)
	m.UpstreamFirstByte("echo", time.Millisecond)
	m.UpstreamError("echo", 0)
	m.SignIn("ok")
	m.Fallback("echo")
	m.Refusal("quota_exceeded")
	m.Committed(time.Millisecond, []Charge{{Billing: "payg", Result: "charged", MicroUSD: 1, MicroFlows: 1}})
	m.Read(Sources{})
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"zenmux_admin_requests_total": true, "zenmux_admin_errors_total": true, "zenmux_raft_leader": true, "zenmux_raft_applied_index": true}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[1] == "TYPE" {
			known[f[2]] = true
		}
	}
	used := regexp.MustCompile(`zenmux_[a-z_]+`).FindAllString(string(raw), -1)
	if len(used) == 0 {
		t.Fatal("the dashboard queries no zenmux series")
	}
	for _, name := range used {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && known[b] {
				base = b
			}
		}
		if !known[base] {
			t.Errorf("the dashboard queries %s, which zenmuxd does not write", name)
		}
	}
}
