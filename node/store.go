package node

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"zenmux/admin"
	"zenmux/config"
	"zenmux/ledger"
)

// Node implements admin.Store over the raftfsm store.

// Ledger returns the current replicated state.
func (n *Node) Ledger() *ledger.Ledger { return n.store.Ledger() }

// Now is the node's clock: wall time plus the replicated test-clock
// offset, which only a test_clock node can move.
func (n *Node) Now() int64 { return time.Now().UnixNano() + n.store.Ledger().ClockOffset() }

// Propose commits cmd stamped with the node's clock and unwraps the
// ledger's result. A write that cannot reach a leader is unavailable; the
// client may retry it (money calls with the same Idempotency-Key).
//
// On a follower the command is encoded once, stamped with this node's
// clock, and forwarded to the leader; a write whose outcome is unknown
// (leadership lost, a timeout, a dropped connection) is sent again, the
// same bytes, until an answer comes or the attempts run out. Every
// command carries its own id, so a retry is applied at most once.
func (n *Node) Propose(cmd ledger.Command) (ledger.Result, error) {
	ts := n.Now()
	data, err := ledger.Encode(cmd, ts)
	if err != nil {
		return ledger.Result{}, fmt.Errorf("%w: %v", ledger.ErrInvalid, err)
	}
	var last error
	for attempt := 0; attempt < 8; attempt++ {
		if attempt > 0 {
			if !ledger.RetrySafe(cmd) && !errors.Is(last, errNoLeader) {
				// A lease or return has no id: sent twice it would apply
				// twice. After an unknown outcome the caller gets the error
				// and errs on the safe side (a lease not taken, a return
				// not made: capacity stranded, never doubled).
				return ledger.Result{}, last
			}
			time.Sleep(time.Duration(50<<min(attempt, 5)) * time.Millisecond)
			if cb, ok := cmd.(*ledger.ChargeBatch); ok && !cb.Retry {
				// Sent again after an unknown outcome: the ledger must check
				// its durable dedupe records for these ids.
				cb.Retry = true
				if data, err = ledger.Encode(cb, ts); err != nil {
					return ledger.Result{}, fmt.Errorf("%w: %v", ledger.ErrInvalid, err)
				}
			}
		}
		if !n.store.IsLeader() {
			v, err := n.forward(cmd, data)
			if err == nil || !errors.Is(err, admin.ErrUnavailable) {
				return v, err
			}
			last = err
			continue
		}
		resp, _, err := n.store.ProposeEncoded(data, proposeTimeout)
		if err != nil {
			last = fmt.Errorf("%w: %v", admin.ErrUnavailable, err)
			continue
		}
		r, ok := resp.(ledger.Result)
		if !ok {
			return ledger.Result{}, fmt.Errorf("%w: no result for the command", admin.ErrUnavailable)
		}
		return r, nil
	}
	return ledger.Result{}, last
}

// ReadBarrier makes reads on this node reflect every write acknowledged
// anywhere: the leader confirms it still leads and has applied all it
// committed; a follower waits until it has applied the leader's index.
func (n *Node) ReadBarrier() error {
	if n.store.IsLeader() {
		return n.store.VerifyLeader(proposeTimeout)
	}
	if n.token == "" {
		return nil // a single node that is not the leader has nothing to wait for
	}
	return n.followerReadBarrier()
}

// RequestLog pages through an account's request log.
func (n *Node) RequestLog(accountID, cursor string, limit int) ([]ledger.LogEntryView, string, error) {
	return n.store.RequestLog(accountID, cursor, limit)
}

type clusterNode struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft_addr"`
	AdminAddr string `json:"admin_addr"`
	State     string `json:"state"`
}

// Cluster describes the raft configuration with each member's addresses.
func (n *Node) Cluster() (any, error) {
	leader, servers, err := n.store.Servers()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", admin.ErrUnavailable, err)
	}
	admins := map[string]string{}
	for _, m := range n.store.Ledger().Members() {
		admins[m.ID] = m.AdminAddr
	}
	out := struct {
		LeaderID string        `json:"leader_id"`
		Nodes    []clusterNode `json:"nodes"`
	}{LeaderID: leader, Nodes: []clusterNode{}}
	for _, s := range servers {
		state := "follower"
		switch {
		case string(s.ID) == n.cfg.Node.ID:
			state = n.store.State()
		case string(s.ID) == leader:
			state = "leader"
		}
		out.Nodes = append(out.Nodes, clusterNode{ID: string(s.ID), RaftAddr: string(s.Address), AdminAddr: admins[string(s.ID)], State: state})
	}
	return out, nil
}

var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// AddNode adds a voter and records its admin address.
func (n *Node) AddNode(id, raftAddr, adminAddr string) error {
	if !nodeIDPattern.MatchString(id) {
		return fmt.Errorf("%w: node id %q must be 1-64 of [A-Za-z0-9._-]", ledger.ErrInvalid, id)
	}
	for _, a := range [...]struct{ name, addr string }{{"raft_addr", raftAddr}, {"admin_addr", adminAddr}} {
		if config.WildcardHost(a.addr) {
			return fmt.Errorf("%w: %s %q is not an address peers can dial (set node.advertise_raft / node.advertise_admin on a node listening on every interface)", ledger.ErrInvalid, a.name, a.addr)
		}
	}
	if !n.store.IsLeader() {
		if n.token == "" {
			return fmt.Errorf("%w: membership changes go to the leader", admin.ErrUnavailable)
		}
		return n.join(ledger.Member{ID: id, RaftAddr: raftAddr, AdminAddr: adminAddr})
	}
	if err := n.store.AddVoter(id, raftAddr, proposeTimeout); err != nil {
		return fmt.Errorf("%w: %v", admin.ErrUnavailable, err)
	}
	_, err := ledger.Propose(n, &ledger.SetMember{Member: ledger.Member{ID: id, RaftAddr: raftAddr, AdminAddr: adminAddr}})
	return err
}

// RemoveNode removes a member.
func (n *Node) RemoveNode(id string) error {
	if !n.store.IsLeader() {
		if n.token == "" {
			return fmt.Errorf("%w: membership changes go to the leader", admin.ErrUnavailable)
		}
		return n.removeViaLeader(id)
	}
	_, servers, err := n.store.Servers()
	if err != nil {
		return fmt.Errorf("%w: %v", admin.ErrUnavailable, err)
	}
	known := false
	for _, sv := range servers {
		known = known || string(sv.ID) == id
	}
	for _, m := range n.store.Ledger().Members() {
		known = known || m.ID == id
	}
	if !known {
		return fmt.Errorf("%w: node %q", ledger.ErrNotFound, id)
	}
	// Raft membership first: a voter whose address record is missing must
	// still be removable.
	if err := n.store.RemoveServer(id, proposeTimeout); err != nil {
		return fmt.Errorf("%w: %v", admin.ErrUnavailable, err)
	}
	if _, err := ledger.Propose(n, &ledger.RemoveMember{ID: id}); err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return err
	}
	_, err = ledger.Propose(n, &ledger.ResetNode{Node: id}) // its quota allowances go back to the pool
	return err
}

// Ready reports a leader and an FSM caught up with what is committed.
func (n *Node) Ready() bool { return n.NotReady() == "" }

// NotReady says why the node cannot serve yet ("" when it can).
func (n *Node) NotReady() string {
	if why := n.store.NotReady(); why != "" {
		return why
	}
	if !n.store.Ledger().Seeded() {
		return "the ledger is not seeded yet"
	}
	return ""
}

// Metrics appends the node's Prometheus lines.
func (n *Node) Metrics(b []byte) []byte {
	leader := 0
	if n.store.IsLeader() {
		leader = 1
	}
	b = append(b, "# TYPE zenmux_raft_leader gauge\n"...)
	b = fmt.Appendf(b, "zenmux_raft_leader{node=%q} %d\n", n.cfg.Node.ID, leader)
	b = append(b, "# TYPE zenmux_raft_applied_index gauge\n"...)
	b = fmt.Appendf(b, "zenmux_raft_applied_index{node=%q} %d\n", n.cfg.Node.ID, n.store.AppliedIndex())
	return b
}

// ProposeCharges commits one charge batch for the proxy's batcher. An
// error means the outcome is unknown; the batcher proposes the same batch
// again and the ledger applies each request id at most once (C2).
func (n *Node) ProposeCharges(b *ledger.ChargeBatch) ([]ledger.ChargeResult, error) {
	return ledger.Propose(n, b)
}
