package cluster

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"zenmux/ledger"
	"zenmux/raftfsm"
)

// Three replicas in one test binary on loopback (the rqlite pattern):
// forwarding, read-your-writes, typed answers on followers, a leader
// partitioned away, leases across the leadership change.

var testSecret = []byte("0123456789abcdef-in-process")

// testNet carries every connection the replicas open to each other, and
// can cut a node off: its connections then swallow what is written and
// deliver nothing, and new ones hang until their timeout, as packets to a
// partitioned host do (no reset, no refusal).
type testNet struct {
	mu    sync.Mutex
	owner map[string]string // address → node id
	cut   map[string]bool
}

func newTestNet() *testNet { return &testNet{owner: map[string]string{}, cut: map[string]bool{}} }

func (n *testNet) own(addr, id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.owner[addr] = id
}

func (n *testNet) blocked(src, addr string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut[src] || n.cut[n.owner[addr]]
}

func (n *testNet) isolate(id string, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[id] = on
}

func (n *testNet) dial(src, addr string, timeout time.Duration) (net.Conn, error) {
	if n.blocked(src, addr) {
		time.Sleep(timeout)
		return nil, errors.New("dial " + addr + ": i/o timeout (partitioned)")
	}
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return &partConn{Conn: c, net: n, src: src, dst: addr}, nil
}

// partConn is the dialing end of a connection; it drops both directions
// while either end is cut off.
type partConn struct {
	net.Conn
	net      *testNet
	src, dst string
}

func (c *partConn) Write(p []byte) (int, error) {
	if c.net.blocked(c.src, c.dst) {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *partConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if err != nil || !c.net.blocked(c.src, c.dst) {
			return n, err
		}
	}
}

type testNode struct {
	id    string
	rep   *Replica
	admin string
	raft  string
}

const testProposeTimeout = 8 * time.Second

func startNode(t *testing.T, tn *testNet, id string, join []string) *testNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raftAddr := rl.Addr().String()
	rl.Close()
	n := &testNode{id: id, admin: ln.Addr().String(), raft: raftAddr}
	tn.own(n.admin, id)
	tn.own(n.raft, id)
	n.rep, err = Open(Options{
		Mode: Clustered,
		Raft: raftfsm.Options{NodeID: id, Dir: t.TempDir(), RaftAddr: raftAddr, Bootstrap: len(join) == 0, Secret: testSecret,
			HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
			Dial: func(addr string, timeout time.Duration) (net.Conn, error) { return tn.dial(id, addr, timeout) }},
		AdminAddr: n.admin, RaftAddr: raftAddr, Join: join, ProposeTimeout: testProposeTimeout, Log: zerolog.Nop(),
		Dial: func(addr string) (net.Conn, error) { return tn.dial(id, addr, 3*time.Second) },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: n.rep.InternalHandler}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		_ = n.rep.Close()
	})
	ctx, cancel := contextWithTimeout(t, 20*time.Second)
	defer cancel()
	if err := n.rep.Start(ctx); err != nil {
		t.Fatalf("%s: start: %v", id, err)
	}
	return n
}

// startCluster starts n1 (bootstrap, seeded) and two nodes that join it.
func startCluster(t *testing.T) (*testNet, []*testNode) {
	t.Helper()
	tn := newTestNet()
	n1 := startNode(t, tn, "n1", nil)
	_, err := ledger.Propose(n1.rep, &ledger.Seed{NanoUSDPerFlow: ledger.DefaultNanoUSDPerFlow, Plans: ledger.DefaultPlans(), Models: ledger.DefaultModels(),
		DedupeDays: 7, RequestLogDays: 30, Members: []ledger.Member{{ID: "n1", RaftAddr: n1.raft, AdminAddr: n1.admin}}})
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*testNode{n1, startNode(t, tn, "n2", []string{n1.admin}), startNode(t, tn, "n3", []string{n1.admin})}
	waitConverged(t, nodes)
	return tn, nodes
}

// waitConverged waits (bounded) until every node has applied the same
// index and holds the same state hash.
func waitConverged(t *testing.T, nodes []*testNode) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var first [32]byte
		same := true
		for i, n := range nodes {
			h, _, err := n.rep.store.StateHash()
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = h
			}
			same = same && h == first && n.rep.NotReady() == ""
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the replicas did not converge in 15 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func leaderOf(t *testing.T, nodes []*testNode) (*testNode, []*testNode) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range nodes {
			if n.rep.IsLeader() {
				var rest []*testNode
				rest = append(rest, nodes[:i]...)
				return n, append(rest, nodes[i+1:]...)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader in 10 s")
	return nil, nil
}

func hasAccount(n *testNode, id string) bool {
	_, err := n.rep.Ledger().Account(id, n.rep.Now())
	return err == nil
}

// A write through a follower answers with the command's own type, and the
// follower reads it at once (read-your-writes); a money command repeated
// with its key answers the first answer, decoded through the command
// table; the rate bucket is one across the nodes (Q8).
func TestForwardingTypedAnswersReadYourWrites(t *testing.T) {
	_, nodes := startCluster(t)
	leader, followers := leaderOf(t, nodes)
	f1, f2 := followers[0], followers[1]

	acct, err := ledger.Propose(f1.rep, &ledger.CreateAccount{ID: "acct_fw", Email: "fw@example.com", Name: "F"})
	if err != nil || acct.ID != "acct_fw" || acct.Plan != "free" {
		t.Fatalf("CreateAccount through %s: %+v %v", f1.id, acct, err)
	}
	if !hasAccount(f1, "acct_fw") {
		t.Fatalf("%s does not read its own write", f1.id)
	}
	key, err := ledger.Propose(f2.rep, &ledger.CreateKey{AccountID: "acct_fw", KeyID: "key_fw", Kind: ledger.KindSubscription, Name: "k", Hash: ledger.HashSecret("s"), Last4: "abcd"})
	if err != nil || key.ID != "key_fw" || key.Last4 != "abcd" {
		t.Fatalf("CreateKey through %s: %+v %v", f2.id, key, err)
	}
	if keys, err := f2.rep.Ledger().Keys("acct_fw"); err != nil || len(keys) != 1 {
		t.Fatalf("%s lists %d keys (%v) right after creating one", f2.id, len(keys), err)
	}
	sub := &ledger.Subscribe{Idem: ledger.Idem{IdemKey: "sub-fw", Fingerprint: "fp"}, AccountID: "acct_fw", Plan: "pro"}
	first, err := ledger.Propose(f1.rep, sub)
	if err != nil || first.Plan != "pro" || first.PaidUSD != 20_000_000 {
		t.Fatalf("Subscribe through %s: %+v %v", f1.id, first, err)
	}
	again, err := ledger.Propose(f2.rep, sub)
	if err != nil || !reflect.DeepEqual(again, first) {
		t.Fatalf("the same Idempotency-Key through %s answered %+v %v, first %+v", f2.id, again, err, first)
	}
	if _, err := ledger.Propose(f1.rep, &ledger.CreateAccount{ID: "acct_fw", Email: "other@example.com"}); !errors.Is(err, ledger.ErrConflict) && !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("a refused write through a follower: %v, want the ledger's rejection", err)
	}
	// One bucket across nodes: 1 a minute, burst 10.
	a, err := f1.rep.Lease("acct_fw", 6, 1, 10)
	if err != nil || a.Granted != 6 {
		t.Fatalf("lease through %s: %+v %v", f1.id, a, err)
	}
	b, err := leader.rep.Lease("acct_fw", 6, 1, 10)
	if err != nil || b.Granted != 4 {
		t.Fatalf("lease on the leader after 6 of 10 went: %+v %v", b, err)
	}
	waitConverged(t, nodes)
}

// A leader cut off from its peers, while its clients still reach it,
// acknowledges nothing; the healthy majority serves again as soon as it
// has elected a new leader, not after the forwarded calls to the old one
// time out; acknowledged writes survive the heal; the rate bucket carries
// over the leadership change.
func TestPartitionedLeader(t *testing.T) {
	tn, nodes := startCluster(t)
	old, healthy := leaderOf(t, nodes)
	if _, err := ledger.Propose(healthy[0].rep, &ledger.CreateAccount{ID: "acct_p", Email: "p@example.com"}); err != nil {
		t.Fatal(err)
	}
	if l, err := healthy[0].rep.Lease("acct_p", 6, 1, 10); err != nil || l.Granted != 6 {
		t.Fatalf("lease before the cut: %+v %v", l, err)
	}
	waitConverged(t, nodes)

	tn.isolate(old.id, true)
	cut := time.Now()
	cutWrite := make(chan error, 1)
	go func() {
		_, err := ledger.Propose(old.rep, &ledger.CreateAccount{ID: "acct_cut", Email: "cut@example.com"})
		cutWrite <- err
	}()
	acct, err := ledger.Propose(healthy[0].rep, &ledger.CreateAccount{ID: "acct_after", Email: "after@example.com"})
	stall := time.Since(cut)
	if err != nil || acct.ID != "acct_after" {
		t.Fatalf("a write through %s after the cut: %+v %v", healthy[0].id, acct, err)
	}
	t.Logf("the healthy nodes served again %v after the leader was cut off (propose timeout %v)", stall.Round(time.Millisecond), testProposeTimeout)
	if stall >= testProposeTimeout/2 {
		t.Fatalf("the healthy nodes stalled %v: they waited on the cut-off leader", stall)
	}
	// The bucket moved to the new leader with the log: 4 of 10 are left.
	if l, err := healthy[1].rep.Lease("acct_p", 10, 1, 10); err != nil || l.Granted != 4 {
		t.Fatalf("lease after the leadership change: %+v %v", l, err)
	}
	if err := <-cutWrite; err == nil || !IsUnavailable(err) {
		t.Fatalf("the cut-off leader answered a write with %v, want unavailable", err)
	}

	tn.isolate(old.id, false)
	waitConverged(t, nodes)
	for _, n := range nodes {
		if !hasAccount(n, "acct_after") || hasAccount(n, "acct_cut") {
			t.Fatalf("%s after the heal: acknowledged write present %v, refused write present %v", n.id, hasAccount(n, "acct_after"), hasAccount(n, "acct_cut"))
		}
	}
	if l, err := old.rep.Lease("acct_p", 1, 1, 10); err != nil || l.Granted != 0 {
		t.Fatalf("lease through the healed old leader from an empty bucket: %+v %v", l, err)
	}
}

// A peer with another cluster's secret is told so (403
// cluster_secret_mismatch), not sent a 404 it cannot tell from a wrong
// address.
func TestWrongSecretNamed(t *testing.T) {
	tn := newTestNet()
	n1 := startNode(t, tn, "n1", nil)
	other := &Replica{opts: Options{Mode: Clustered, ProposeTimeout: time.Second}, token: clusterToken([]byte("another-cluster-secret")), peers: &fasthttp.Client{}}
	status, body, err := other.call(n1.admin, "POST", "/internal/v1/join", []byte(`{}`), time.Now().Add(2*time.Second))
	if err != nil || status != fasthttp.StatusForbidden || !bytesContain(body, `"code":"cluster_secret_mismatch"`) {
		t.Fatalf("join with another secret: %d %s %v", status, body, err)
	}
}

func bytesContain(b []byte, s string) bool { return strings.Contains(string(b), s) }

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
