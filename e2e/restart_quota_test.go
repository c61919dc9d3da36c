package e2e

// Regression tests for quota and rate-bucket leases that a node held
// when it stopped or died (found by the chaos runs).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func zzCluster(t *testing.T, extra string) []*Node {
	dir := t.TempDir()
	secret, token := filepath.Join(dir, "cluster.secret"), filepath.Join(dir, "admin.token")
	os.WriteFile(secret, []byte("test-cluster-secret-0123456789abcdef\n"), 0o600)
	tok := "test-admin-token-0123456789abcdef"
	os.WriteFile(token, []byte(tok+"\n"), 0o600)
	common := fmt.Sprintf("[admin]\ntoken_file = %q\n", token)
	nodes := []*Node{StartNode(t, NodeOptions{ID: "n1", Token: tok, TestClock: true, Extra: common + fmt.Sprintf("[cluster]\nbootstrap = true\nsecret_file = %q\n", secret) + extra})}
	join := strings.TrimPrefix(nodes[0].Admin, "http://")
	for i := 2; i <= 3; i++ {
		nodes = append(nodes, StartNode(t, NodeOptions{ID: fmt.Sprintf("n%d", i), Token: tok, TestClock: true,
			Extra: common + fmt.Sprintf("[cluster]\nbootstrap = false\njoin = [%q]\nsecret_file = %q\n", join, secret) + extra}))
	}
	return nodes
}

// rule Q1, Q4 across nodes (C3): a node that restarts, cleanly or after
// kill -9, strands none of an account's quota: a 20-Flow window admits
// exactly 20 one-Flow requests before and after the restart, and again
// after the window resets.
func TestClusterRestartStrandsNoQuota(t *testing.T) {
	modes := []string{"sigkill"}
	if chaosLong() {
		modes = []string{"none", "sigkill", "sigterm"}
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			cfg := chaosEchoPlan("20", "1000", 1000000, 1000000, "0.03283")
			nodes := zzCluster(t, cfg)
			acct, key := chaosAccount(t, nodes[0])
			hc := chaosHTTP(10 * time.Second)
			body := `{"model":"chaos/echo","max_tokens":1,"messages":[{"role":"user","content":"x"}]}`
			send := func(n *Node) *Response {
				r, err := chaosTry(context.Background(), hc, "POST", n.Proxy+"/v1/chat/completions", body, "Authorization: Bearer "+key)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			first := 0
			if mode != "none" {
				if r := send(nodes[2]); r.Status != 200 {
					t.Fatalf("%d %s", r.Status, r.Body)
				}
				first = 1
				if mode == "sigkill" {
					nodes[2].Kill()
				} else {
					nodes[2].Stop()
				}
				nodes[2].Start()
			}
			count := func() (int, string) {
				ok, last := 0, ""
				for i := 0; i < 60; i++ {
					r := send(nodes[i%2])
					if r.Status == 200 {
						ok++
					} else {
						last = fmt.Sprintf("%d %s", r.Status, tail(string(r.Body), 200))
						if i > 40 {
							break
						}
					}
				}
				return ok, last
			}
			ok, last := count()
			u := nodes[0].AdminDo("GET", "/admin/v1/accounts/"+acct+"/usage", "").JSON(t)
			t.Logf("mode %s: window 20 Flows at 1 Flow/request: %d+%d admitted; used %s; last refusal %s", mode, first, ok, Get(u, "window_5h.used_flows"), last)
			if first+ok != 20 {
				t.Fatalf("mode %s: %d admitted in a 20-Flow window, want 20", mode, first+ok)
			}
			nodes[0].AdminDo("POST", "/admin/v1/clock", `{"advance_seconds":18060}`)
			time.Sleep(3 * time.Second)
			ok, last = count()
			u = nodes[0].AdminDo("GET", "/admin/v1/accounts/"+acct+"/usage", "").JSON(t)
			t.Logf("mode %s: after the 5h window reset: %d admitted; used %s; last refusal %s", mode, ok, Get(u, "window_5h.used_flows"), last)
			if ok != 20 {
				t.Fatalf("mode %s: %d admitted after the reset, want 20", mode, ok)
			}
		})
	}
}
