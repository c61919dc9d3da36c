package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zenmux/ledger"
)

// startCluster starts n real zenmuxd processes on 127.0.0.1 (see
// startClusterSpec), extra before their [admin] and [cluster] tables.
func startCluster(t *testing.T, n int, extra ...string) []*Node {
	t.Helper()
	return startClusterSpec(t, clusterSpec{nodes: n, head: strings.Join(extra, "\n")})
}

// clusterSpec shapes the nodes of startClusterSpec.
type clusterSpec struct {
	nodes       int
	head        string // TOML before the [admin] and [cluster] tables
	clusterKeys string // more [cluster] keys
	tail        string // TOML after the [cluster] table, from a table header on
	tls         bool   // cluster TLS (NodeOptions.ClusterTLS)
	advertise   string // NodeOptions.AdvertiseHost
	binary      string // NodeOptions.Binary
}

// startClusterSpec starts real zenmuxd processes on 127.0.0.1: n1
// bootstraps, the others join through n1's admin listener, all share the
// cluster secret and the admin token.
func startClusterSpec(t *testing.T, s clusterSpec) []*Node {
	t.Helper()
	dir := t.TempDir()
	secret, token := filepath.Join(dir, "cluster.secret"), filepath.Join(dir, "admin.token")
	if err := os.WriteFile(secret, []byte("test-cluster-secret-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := "test-admin-token-0123456789abcdef"
	if err := os.WriteFile(token, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := func(cluster string) string {
		return fmt.Sprintf("%s\n[admin]\ntoken_file = %q\n[cluster]\n%ssecret_file = %q\n%s%s", s.head, token, cluster, secret, s.clusterKeys, s.tail)
	}
	nodes := []*Node{StartNode(t, NodeOptions{ID: "n1", Token: tok, ClusterTLS: s.tls, AdvertiseHost: s.advertise, Binary: s.binary, Extra: config("bootstrap = true\n")})}
	_, join, _ := strings.Cut(nodes[0].Admin, "://")
	for i := 2; i <= s.nodes; i++ {
		nodes = append(nodes, StartNode(t, NodeOptions{ID: fmt.Sprintf("n%d", i), Token: tok, ClusterTLS: s.tls, AdvertiseHost: s.advertise, Binary: s.binary,
			Extra: config(fmt.Sprintf("bootstrap = false\njoin = [%q]\n", join))}))
	}
	return nodes
}

// stateHashes reads every live node's state hash; ok when all agree.
func stateHashes(t *testing.T, nodes []*Node) (map[string]string, bool) {
	t.Helper()
	out := map[string]string{}
	first := ""
	same := true
	for _, n := range nodes {
		r := doWith(t, n.peer, "GET", n.Admin+"/internal/v1/statehash", "", "X-Zenmux-Cluster: "+clusterToken(n))
		if r.Status != 200 {
			return out, false
		}
		h := Get(r.JSON(t), "hash")
		out[n.ID] = h
		if first == "" {
			first = h
		}
		same = same && h == first
	}
	return out, same
}

// waitSameState waits (bounded) until all nodes hold identical state.
func waitSameState(t *testing.T, nodes []*Node) {
	t.Helper()
	var last map[string]string
	for i := 0; i < 100; i++ {
		h, same := stateHashes(t, nodes)
		if same {
			return
		}
		last = h
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("replicas disagree after 10 s: %v", last)
}

// A write through one follower is visible on the other as soon as it
// returned (docs/api.md, "Reads after writes"); money and charges reach the
// leader from followers; every node ends with the same state (C1).
func TestClusterJoinForwardAndReadYourWrites(t *testing.T) {
	nodes := startCluster(t, 3)
	c := nodes[2].AdminDo("GET", "/admin/v1/cluster", "").JSON(t)
	Expect(t, c, "leader_id", "n1", "nodes.0.id", "n1", "nodes.1.id", "n2", "nodes.2.id", "n3", "nodes.2.admin_addr", strings.TrimPrefix(nodes[2].Admin, "http://"))

	r := nodes[1].AdminDo("POST", "/admin/v1/accounts", `{"email":"c@example.com","name":"C"}`)
	if r.Status != 201 {
		t.Fatalf("create through a follower: %d %s", r.Status, r.Body)
	}
	acct := r.JSON(t)["id"].(string)
	if got := nodes[2].AdminDo("GET", "/admin/v1/accounts/"+acct, ""); got.Status != 200 {
		t.Fatalf("read on the other follower right after: %d %s", got.Status, got.Body)
	}
	for i := 0; i < 3; i++ {
		r = nodes[2].AdminDo("POST", "/admin/v1/accounts/"+acct+"/balance", `{"add_usd":2.5}`, "Idempotency-Key: top-1")
		Expect(t, r.JSON(t), "balance_usd", "2.5")
	}
	Expect(t, nodes[1].AdminDo("GET", "/admin/v1/accounts/"+acct, "").JSON(t), "balance_usd", "2.5")

	key := nodes[1].AdminDo("POST", "/admin/v1/accounts/"+acct+"/keys", `{"kind":"subscription","name":"k"}`).JSON(t)["key"].(string)
	for _, n := range nodes {
		r := Do(t, "POST", n.Proxy+"/v1/chat/completions", `{"model":"zenmux/echo","messages":[{"role":"user","content":"hello cluster"}]}`, "Authorization: Bearer "+key)
		if r.Status != 200 {
			t.Fatalf("proxy on %s: %d %s", n.ID, r.Status, r.Body)
		}
	}
	u := nodes[0].AdminDo("GET", "/admin/v1/accounts/"+acct+"/usage", "").JSON(t)
	Expect(t, u, "by_model.0.requests", "3")
	waitSameState(t, nodes)

	// A peer's bad message gets an error in the admin API's shape and
	// changes nothing: garbage or a command stamped past 2200 for the
	// leader to apply, a member that is not JSON, a path that does not
	// exist, a call without the cluster's token.
	before, _ := stateHashes(t, nodes)
	tok := "X-Zenmux-Cluster: " + clusterToken(nodes[0])
	late := append([]byte{21, 3}, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0) // a charge batch stamped in 2262
	for _, c := range []struct {
		method, path, body string
		headers            []string
		status             int
		code               string
	}{
		{"POST", "/internal/v1/apply", "not a command", []string{tok}, 400, "invalid_request"},
		{"POST", "/internal/v1/apply", string(late), []string{tok}, 400, "invalid_request"},
		{"POST", "/internal/v1/join", "{not json", []string{tok}, 400, "invalid_request"},
		{"POST", "/internal/v1/join", `{"id":"n9","raft_addr":"0.0.0.0:1","admin_addr":"127.0.0.1:2"}`, []string{tok}, 400, "invalid_request"},
		{"POST", "/internal/v1/remove?id=n9", "", []string{tok}, 404, "not_found"},
		{"GET", "/internal/v1/nothing", "", []string{tok}, 404, "not_found"},
		{"POST", "/internal/v1/apply", "not a command", nil, 404, "not_found"},
	} {
		r := Do(t, c.method, nodes[0].Admin+c.path, c.body, c.headers...)
		if r.Status != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, r.Status, r.Body, c.status)
		}
		if err := biErrorShape(r.Body, c.code); err != nil {
			t.Errorf("%s %s: %v: %s", c.method, c.path, err, r.Body)
		}
	}
	if after, same := stateHashes(t, nodes); !same || after["n1"] != before["n1"] {
		t.Fatalf("bad peer messages changed the state: %v → %v", before, after)
	}
}

// Cluster TLS (#4: operator-supplied cert, key and CA files): the admin
// API is https only; a follower forwards writes to the leader and Raft
// replicates over mutual TLS; a node-to-node call needs a certificate of
// the cluster CA besides the secret's token.
func TestClusterTLS(t *testing.T) {
	nodes := startClusterSpec(t, clusterSpec{nodes: 3, tls: true})
	c := nodes[2].AdminDo("GET", "/admin/v1/cluster", "").JSON(t)
	Expect(t, c, "leader_id", "n1", "nodes.2.id", "n3", "nodes.2.admin_addr", strings.TrimPrefix(nodes[2].Admin, "https://"))
	r := nodes[1].AdminDo("POST", "/admin/v1/accounts", `{"email":"tls@example.com"}`)
	if r.Status != 201 {
		t.Fatalf("create through a follower: %d %s", r.Status, r.Body)
	}
	acct := r.JSON(t)["id"].(string)
	if got := nodes[2].AdminDo("GET", "/admin/v1/accounts/"+acct, ""); got.Status != 200 {
		t.Fatalf("read on the other follower right after: %d %s", got.Status, got.Body)
	}
	key := nodes[2].AdminDo("POST", "/admin/v1/accounts/"+acct+"/keys", `{"kind":"subscription","name":"k"}`).JSON(t)["key"].(string)
	for _, n := range nodes {
		r := Do(t, "POST", n.Proxy+"/v1/chat/completions", `{"model":"zenmux/echo","messages":[{"role":"user","content":"hello tls"}]}`, "Authorization: Bearer "+key)
		if r.Status != 200 {
			t.Fatalf("proxy on %s: %d %s", n.ID, r.Status, r.Body)
		}
	}
	Expect(t, nodes[0].AdminDo("GET", "/admin/v1/accounts/"+acct+"/usage", "").JSON(t), "by_model.0.requests", "3")
	waitSameState(t, nodes)

	// The token alone, without a cluster certificate, is not a peer.
	for _, n := range nodes {
		if r := Do(t, "GET", n.Admin+"/internal/v1/statehash", "", "X-Zenmux-Cluster: "+clusterToken(n)); r.Status != 404 {
			t.Errorf("%s: /internal/v1/statehash with the token but no certificate: %d %s", n.ID, r.Status, r.Body)
		}
	}
	// No plain HTTP on the admin listener.
	plain := strings.Replace(nodes[1].Admin, "https://", "http://", 1)
	if resp, err := client.Get(plain + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP on a TLS admin listener answered 200")
		}
	}
}

// node.advertise_admin and node.advertise_raft: peers reach each node at
// the address it advertises (here the name localhost), not at its listen
// address — what a node listening on every interface needs. Membership,
// forwarded writes and replication all go through the advertised names.
func TestClusterAdvertisedAddresses(t *testing.T) {
	nodes := startClusterSpec(t, clusterSpec{nodes: 3, advertise: "localhost"})
	c := nodes[2].AdminDo("GET", "/admin/v1/cluster", "").JSON(t)
	for i, n := range nodes {
		_, adminPort, _ := strings.Cut(strings.TrimPrefix(n.Admin, "http://"), ":")
		_, raftPort, _ := strings.Cut(n.RaftAddr, ":")
		Expect(t, c, fmt.Sprintf("nodes.%d.admin_addr", i), "localhost:"+adminPort, fmt.Sprintf("nodes.%d.raft_addr", i), "localhost:"+raftPort)
	}
	r := nodes[1].AdminDo("POST", "/admin/v1/accounts", `{"email":"adv@example.com"}`)
	if r.Status != 201 {
		t.Fatalf("create through a follower: %d %s", r.Status, r.Body)
	}
	if got := nodes[2].AdminDo("GET", "/admin/v1/accounts/"+r.JSON(t)["id"].(string), ""); got.Status != 200 {
		t.Fatalf("read on the other follower right after: %d %s", got.Status, got.Body)
	}
	waitSameState(t, nodes)
}

// Kill -9 the leader: the others elect a new one and go on serving writes;
// the old leader restarts, catches up by itself and agrees (C3).
func TestClusterLeaderKilledAndRestarted(t *testing.T) {
	nodes := startCluster(t, 3)
	acct := nodes[0].AdminDo("POST", "/admin/v1/accounts", `{"email":"k@example.com"}`).JSON(t)["id"].(string)
	nodes[0].Kill()
	var r *Response
	for i := 0; i < 100; i++ {
		r = nodes[1].AdminDo("POST", "/admin/v1/accounts/"+acct+"/balance", `{"add_usd":1}`, "Idempotency-Key: after-kill")
		if r.Status == 200 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.Status != 200 {
		t.Fatalf("no write accepted within 10 s of the leader's death: %d %s", r.Status, r.Body)
	}
	Expect(t, nodes[2].AdminDo("GET", "/admin/v1/accounts/"+acct, "").JSON(t), "balance_usd", "1")
	nodes[0].Start()
	waitSameState(t, nodes)
	Expect(t, nodes[0].AdminDo("GET", "/admin/v1/accounts/"+acct, "").JSON(t), "balance_usd", "1")
}

// rule Q8 across nodes: one key sent round-robin over the three nodes gets
// at most one bucket (burst 15) through in a burst: nodes spend requests
// they leased from the replicated bucket, so B_rpm = 0.
func TestClusterRateBucketHoldsAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	acct := nodes[0].AdminDo("POST", "/admin/v1/accounts", `{"email":"rr@example.com"}`).JSON(t)["id"].(string)
	key := nodes[0].AdminDo("POST", "/admin/v1/accounts/"+acct+"/keys", `{"kind":"subscription","name":"k"}`).JSON(t)["key"].(string)
	ok, limited := 0, 0
	for i := 0; i < 45; i++ {
		n := nodes[i%3]
		r := Do(t, "POST", n.Proxy+"/v1/chat/completions", `{"model":"zenmux/echo","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`, "Authorization: Bearer "+key)
		switch r.Status {
		case 200:
			ok++
		case 429:
			limited++
			if r.Header.Get("Retry-After") == "" {
				t.Fatalf("429 without Retry-After on %s", n.ID)
			}
			Expect(t, r.JSON(t), "error.code", "rate_limit_exceeded")
		default:
			t.Fatalf("%s: %d %s", n.ID, r.Status, r.Body)
		}
	}
	t.Logf("burst of 45 round-robin: %d admitted, %d limited", ok, limited)
	if ok > 15 || ok < 10 {
		t.Fatalf("%d admitted in a burst over three nodes; the bucket holds 15", ok)
	}
	u := nodes[1].AdminDo("GET", "/admin/v1/accounts/"+acct+"/usage", "").JSON(t)
	Expect(t, u, "by_model.0.requests", fmt.Sprint(ok))
}

// Replace a node: remove n3 through a follower, start a fresh node (empty
// data dir, new id n4) that joins by itself; the cluster is n1, n2, n4 and
// the newcomer holds the same state.
func TestClusterReplaceNode(t *testing.T) {
	nodes := startCluster(t, 3)
	acct := nodes[1].AdminDo("POST", "/admin/v1/accounts", `{"email":"r@example.com"}`).JSON(t)["id"].(string)
	nodes[2].Kill()
	if r := nodes[1].AdminDo("DELETE", "/admin/v1/cluster/nodes/n3", ""); r.Status != 204 {
		t.Fatalf("remove n3 through a follower: %d %s", r.Status, r.Body)
	}
	if r := nodes[1].AdminDo("DELETE", "/admin/v1/cluster/nodes/n3", ""); r.Status != 404 {
		t.Fatalf("removing it again: %d %s", r.Status, r.Body)
	}
	cfg, err := os.ReadFile(nodes[1].Config)
	if err != nil {
		t.Fatal(err)
	}
	// Reuse n2's [admin] and [cluster] settings for the newcomer.
	extra := string(cfg[strings.Index(string(cfg), "[admin]"):])
	n4 := StartNode(t, NodeOptions{ID: "n4", Token: nodes[1].Token, Extra: extra})
	c := n4.AdminDo("GET", "/admin/v1/cluster", "").JSON(t)
	Expect(t, c, "nodes.0.id", "n1", "nodes.1.id", "n2", "nodes.2.id", "n4", "nodes.3", "<missing>")
	Expect(t, n4.AdminDo("GET", "/admin/v1/accounts/"+acct, "").JSON(t), "email", "r@example.com")
	waitSameState(t, []*Node{nodes[0], nodes[1], n4})
}

// rule Q4 across nodes: requests for one account spread over the three
// nodes pass the Free 5 h window (5 Flows) by at most B_flows plus one
// request: each node admits only against Flows it leased from the
// replicated windows. With tight estimates (max_tokens bounds the output,
// the body bounds the input) B_flows is one request per other node.
func TestClusterQuotaHoldsAcrossNodes(t *testing.T) {
	pricey := `[[models]]
id = "test/pricey"
provider = "echo"
upstream = "echo"
input_usd_per_mtok = 1000
output_usd_per_mtok = 1000
plans = ["free", "pro"]
`
	nodes := startCluster(t, 3, pricey)
	acct := nodes[0].AdminDo("POST", "/admin/v1/accounts", `{"email":"q@example.com"}`).JSON(t)["id"].(string)
	key := nodes[0].AdminDo("POST", "/admin/v1/accounts/"+acct+"/keys", `{"kind":"subscription","name":"k"}`).JSON(t)["key"].(string)
	body := `{"model":"test/pricey","max_tokens":4,"messages":[{"role":"user","content":"one two three four"}]}`
	// The estimate: ceil(len(body)/4) input + 4 output tokens at $1000 per
	// million each (1,000 µUSD a token), in µFlows at 32,830 µUSD a Flow,
	// rounded up.
	estTokens := int64((len(body)+3)/4 + 4)
	estMicroFlows := (estTokens*1000*1_000_000 + 32_829) / 32_830
	ok, refused := 0, 0
	for i := 0; i < 15; i++ { // one burst: the bucket may strand a lease, the quota decides the rest
		r := Do(t, "POST", nodes[i%3].Proxy+"/v1/chat/completions", body, "Authorization: Bearer "+key)
		switch {
		case r.Status == 200:
			ok++
		case r.Status == 429 && Get(r.JSON(t), "error.code") == "quota_exceeded":
			refused++
		case r.Status == 429 && Get(r.JSON(t), "error.code") == "rate_limit_exceeded":
		default:
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	}
	u := nodes[2].AdminDo("GET", "/admin/v1/accounts/"+acct+"/usage", "").JSON(t)
	used, err := ledger.ParseDecimal(fmt.Sprint(Get(u, "window_5h.used_flows")), 6, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d admitted, %d refused; window_5h used %d of 5,000,000 µFlows; one request ≤ %d µFlows", ok, refused, used, estMicroFlows)
	if bound := 5_000_000 + 3*estMicroFlows; used > bound {
		t.Fatalf("used %d µFlows > limit 5 Flows + B_flows (2 requests) + one request = %d", used, bound)
	}
	if refused == 0 {
		t.Fatal("the window was never enforced")
	}
}
