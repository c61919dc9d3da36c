// Package cluster is one replica of the ledger and its part in the
// cluster: it owns the raftfsm store, proposes commands (on the leader, or
// forwarded to it), makes reads linearizable on followers, serves the
// node-to-node API (/internal/v1 on the admin listener), joins a cluster,
// changes membership, leases rate-bucket requests and quota Flows, and
// ticks billing cycles on the leader. See DESIGN.md.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"zenmux/config"
	"zenmux/ledger"
	"zenmux/raftfsm"
)

// Mode says whether a node has peers. It comes from config
// (config.Cluster.Clustered), never from what files happen to exist.
type Mode int

const (
	// Single is one node on its own: no secret, no internal API, no
	// leases; the quota and rate limits are held in memory.
	Single Mode = iota
	// Clustered is a node of a Raft cluster: a cluster secret, the
	// internal API, forwarding to the leader, leases.
	Clustered
)

// Options configure a replica.
type Options struct {
	Mode Mode
	// Raft is where and how the store runs (its Secret and TLS are taken
	// from here too).
	Raft raftfsm.Options
	// AdminAddr and RaftAddr are where peers reach this node
	// (node.advertise_admin, node.advertise_raft or the listeners).
	AdminAddr, RaftAddr string
	// Join lists members' admin addresses a new node asks to add it.
	Join []string
	// ProposeTimeout bounds one replicated write or read barrier
	// (default 10 s).
	ProposeTimeout time.Duration
	// Dial, when set, opens connections to other nodes' admin listeners
	// (tests put a network they can partition here; see also Raft.Dial).
	Dial func(addr string) (net.Conn, error)
	// WallClock is the wall time in Unix nanoseconds (default time.Now);
	// the replicated test-clock offset is added to it (Now).
	WallClock func() int64
	Log       zerolog.Logger
}

// Replica is one node's copy of the ledger and its cluster duties. All
// methods are safe for concurrent use.
type Replica struct {
	opts  Options
	log   zerolog.Logger
	store *raftfsm.Store
	// token is what nodes present to each other's internal API, derived
	// from the cluster secret ("" on a single node).
	token string
	peers *fasthttp.Client // persistent connections to other nodes' admin listeners
	// barriers shares a follower's read barriers among concurrent callers.
	barriers barriers
	// wrongSecretLogged rate-limits the warning about peers that present
	// another cluster's token.
	wrongSecretLogged rateLimitedLog
	// formatMu orders, on the leader, raising the request-log format
	// (from asking the members to the raise applied) and admitting a node
	// by its join request (format.go): a node admitted meanwhile would be
	// missed by the one and checked against the old format by the other.
	formatMu sync.Mutex
}

// Open opens the store (Pebble and Raft) and returns the replica; it does
// not join or wait for a leader (Start).
func Open(opts Options) (*Replica, error) {
	if opts.ProposeTimeout <= 0 {
		opts.ProposeTimeout = 10 * time.Second
	}
	if opts.WallClock == nil {
		opts.WallClock = func() int64 { return time.Now().UnixNano() }
	}
	if opts.Mode == Clustered && len(opts.Raft.Secret) == 0 {
		return nil, errors.New("cluster: a clustered node needs the cluster secret")
	}
	if opts.Mode == Single && len(opts.Join) > 0 {
		return nil, errors.New("cluster: a single node cannot join a cluster")
	}
	store, err := raftfsm.Open(opts.Raft)
	if err != nil {
		return nil, err
	}
	r := &Replica{opts: opts, log: opts.Log, store: store,
		peers: &fasthttp.Client{Name: "zenmuxd-peer", MaxConnsPerHost: 64, MaxIdleConnDuration: time.Minute,
			ReadTimeout: opts.ProposeTimeout + 5*time.Second, WriteTimeout: opts.ProposeTimeout, TLSConfig: opts.Raft.TLS, Dial: opts.Dial}}
	if opts.Mode == Clustered {
		r.token = clusterToken(opts.Raft.Secret)
	}
	return r, nil
}

// Start makes the replica ready to serve: a new node with cluster.join
// asks the members to add it until one does; then it waits for a leader.
// ctx ends the waiting.
func (r *Replica) Start(ctx context.Context) error {
	if r.opts.Mode == Clustered && !r.opts.Raft.Bootstrap && len(r.opts.Join) > 0 && !r.store.HasMembership() {
		if err := r.joinLoop(ctx); err != nil {
			return err
		}
	}
	for r.store.WaitLeader(10*time.Second) != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.log.Warn().Msg("no raft leader yet")
	}
	if r.store.IsLeader() && r.store.Ledger().Seeded() {
		if err := r.refreshOwnMember(); err != nil {
			r.log.Warn().Err(err).Msg("could not record this node's addresses")
		}
	}
	return nil
}

// ReleaseAllowances forgets what the ledger counts as this node's quota
// allowance: a node that starts holds none in memory. Call it once the
// ledger is seeded.
func (r *Replica) ReleaseAllowances() {
	if r.opts.Mode != Clustered {
		return
	}
	if _, err := ledger.Propose(r, &ledger.ResetNode{Node: r.ID()}); err != nil {
		r.log.Warn().Err(err).Msg("could not release this node's old quota allowances")
	}
}

// Close stops Raft and closes the store.
func (r *Replica) Close() error { return r.store.Close() }

// HandOff passes leadership to another voter before this node stops, so
// the cluster elects no one by timeout; on a single node, or a follower,
// it does nothing.
func (r *Replica) HandOff() error {
	if r.Mode() != Clustered {
		return nil
	}
	return r.store.TransferLeadership()
}

// ID is this node's id.
func (r *Replica) ID() string { return r.opts.Raft.NodeID }

// Mode is single node or cluster.
func (r *Replica) Mode() Mode { return r.opts.Mode }

// Ledger returns the current replicated state.
func (r *Replica) Ledger() *ledger.Ledger { return r.store.Ledger() }

// Now is the node's clock: wall time plus the replicated test-clock
// offset, which only a test_clock node can move.
func (r *Replica) Now() int64 { return r.opts.WallClock() + r.store.Ledger().ClockOffset() }

// IsLeader reports whether this node leads.
func (r *Replica) IsLeader() bool { return r.store.IsLeader() }

// Propose commits cmd stamped with the node's clock and returns the
// ledger's result (ledger.Propose gives it typed). An error means the
// command was not committed or its outcome is unknown, and is unavailable:
// the client may retry (money calls with the same Idempotency-Key).
//
// On a follower the command is encoded once, stamped with this node's
// clock, and forwarded to the leader. A write whose outcome is unknown
// (leadership lost, a timeout, a dropped connection, a leader that changed
// while the call waited) is sent again, the same bytes, to the leader this
// node knows next, until an answer comes or ProposeTimeout passes. Every
// command but a lease carries its own id, so a retry is applied at most
// once; a lease is not sent again (ledger.RetrySafe).
func (r *Replica) Propose(cmd ledger.Command) (ledger.Result, error) {
	ts := r.Now()
	data, err := ledger.Encode(cmd, ts)
	if err != nil {
		return ledger.Result{}, fmt.Errorf("%w: %v", ledger.ErrInvalid, err)
	}
	deadline := time.Now().Add(r.opts.ProposeTimeout)
	var last error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if !ledger.RetrySafe(cmd) && !errors.Is(last, ErrNoLeader) {
				// A lease or return has no id: sent twice it would apply
				// twice. After an unknown outcome the caller gets the error
				// and errs on the safe side (a lease not taken, a return
				// not made: capacity stranded, never doubled).
				return ledger.Result{}, last
			}
			if !r.waitToRetry(attempt, last, deadline) {
				return ledger.Result{}, last
			}
			if cb, ok := cmd.(*ledger.ChargeBatch); ok && !cb.Retry && !errors.Is(last, ErrNoLeader) {
				// Sent again after an unknown outcome (ErrNoLeader sent
				// nothing): the ledger must check its durable dedupe
				// records for these ids.
				cb.Retry = true
				if data, err = ledger.Encode(cb, ts); err != nil {
					return ledger.Result{}, fmt.Errorf("%w: %v", ledger.ErrInvalid, err)
				}
			}
		}
		if !r.store.IsLeader() {
			res, err := r.forward(cmd, data, deadline)
			if err == nil || !IsUnavailable(err) {
				return res, err
			}
			last = err
			continue
		}
		resp, _, err := r.store.ProposeEncoded(data, time.Until(deadline))
		if err != nil {
			last = fmt.Errorf("%w: %v", ErrUnavailable, err)
			continue
		}
		res, ok := resp.(ledger.Result)
		if !ok {
			return ledger.Result{}, fmt.Errorf("%w: no result for the command", ErrUnavailable)
		}
		return res, nil
	}
}

// waitToRetry waits before attempt: for a leader when none is known (an
// election takes a heartbeat timeout and a vote), else a short backoff. It
// reports false when the deadline leaves no time for another attempt.
func (r *Replica) waitToRetry(attempt int, last error, deadline time.Time) bool {
	leaderless := errors.Is(last, ErrNoLeader) || errors.Is(last, errLeaderChanged)
	if leaderless && r.store.Leader() != "" {
		return true // the new leader is known already: go to it now
	}
	backoff := time.Duration(25<<min(attempt, 5)) * time.Millisecond
	if leaderless {
		backoff = 20 * time.Millisecond // look for the new leader often
	}
	for time.Now().Add(backoff).Before(deadline) {
		time.Sleep(backoff)
		if !leaderless || r.store.Leader() != "" {
			return true
		}
	}
	return false
}

// ReadBarrier makes reads on this node reflect every write acknowledged
// anywhere: the leader confirms it still leads and has applied all it
// committed; a follower waits until it has applied the leader's index.
func (r *Replica) ReadBarrier() error {
	if r.opts.Mode != Clustered {
		if r.store.IsLeader() {
			return r.verifyLeader()
		}
		return nil // a single node that is not the leader has nothing to wait for
	}
	return r.barriers.do(r.barrier)
}

// barrier is one read barrier by this node's role when it runs. Callers
// share runs (barriers), on the leader too: concurrent reads cost one
// heartbeat round to a majority, not one each.
func (r *Replica) barrier() error {
	if r.store.IsLeader() {
		return r.verifyLeader()
	}
	return r.readIndex()
}

func (r *Replica) verifyLeader() error {
	if err := r.store.VerifyLeader(r.opts.ProposeTimeout); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Refresh is the proxy's catch-up before it refuses an unknown key: a
// follower's read barrier; nothing to do on a leader or a single node.
func (r *Replica) Refresh() error {
	if r.opts.Mode != Clustered || r.store.IsLeader() {
		return errors.New("nothing to refresh")
	}
	return r.barriers.do(r.barrier)
}

// RequestLog pages through an account's request log.
func (r *Replica) RequestLog(accountID, cursor string, limit int) ([]ledger.LogEntryView, string, error) {
	return r.store.RequestLog(accountID, cursor, limit)
}

// Ready reports a leader and an FSM caught up with what is committed.
func (r *Replica) Ready() bool { return r.NotReady() == "" }

// NotReady says why the node cannot serve yet ("" when it can).
func (r *Replica) NotReady() string {
	if why := r.store.NotReady(); why != "" {
		return why
	}
	if !r.store.Ledger().Seeded() {
		return "the ledger is not seeded yet"
	}
	return ""
}

// Metrics appends the replica's Prometheus lines.
func (r *Replica) Metrics(b []byte) []byte {
	leader := 0
	if r.store.IsLeader() {
		leader = 1
	}
	b = append(b, "# TYPE zenmux_raft_leader gauge\n"...)
	b = fmt.Appendf(b, "zenmux_raft_leader{node=%q} %d\n", r.ID(), leader)
	b = append(b, "# TYPE zenmux_raft_applied_index gauge\n"...)
	b = fmt.Appendf(b, "zenmux_raft_applied_index{node=%q} %d\n", r.ID(), r.store.AppliedIndex())
	return b
}

// RaftStats returns Raft's leader changes, apply lag and snapshot counts
// for the node's metrics, which read them at scrape time.
func (r *Replica) RaftStats() raftfsm.Stats { return r.store.Stats() }

// ProposeCharges commits one charge batch for the proxy's batcher. An
// error means the outcome is unknown; the batcher proposes the same batch
// again and the ledger applies each request id at most once (C2).
func (r *Replica) ProposeCharges(b *ledger.ChargeBatch) ([]ledger.ChargeResult, error) {
	return ledger.Propose(r, b)
}

// Lease takes requests from a replicated rate bucket (proxy.Lessor).
func (r *Replica) Lease(bucket string, want, rpm, burst int64) (ledger.LeaseResult, error) {
	return ledger.Propose(r, &ledger.LeaseTokens{Bucket: bucket, Want: want, RPM: rpm, Burst: burst})
}

// Return gives back leased requests (proxy.Lessor).
func (r *Replica) Return(bucket string, count, rpm int64) error {
	_, err := ledger.Propose(r, &ledger.ReturnTokens{Bucket: bucket, N: count, RPM: rpm})
	return err
}

// LeaseFlows leases quota allowance for this node (proxy.FlowLessor).
func (r *Replica) LeaseFlows(acct string, microFlows int64) (ledger.FlowLease, error) {
	return ledger.Propose(r, &ledger.LeaseFlows{AccountID: acct, Node: r.ID(), MicroFlows: microFlows})
}

// ReturnFlows gives back unspent allowance (proxy.FlowLessor).
func (r *Replica) ReturnFlows(acct string, microFlows int64) error {
	_, err := ledger.Propose(r, &ledger.ReturnFlows{AccountID: acct, Node: r.ID(), MicroFlows: microFlows})
	return err
}

// Size is the number of voters, for lease sizing.
func (r *Replica) Size() int {
	_, servers, err := r.store.Servers()
	if err != nil || len(servers) == 0 {
		return 1
	}
	return len(servers)
}

// TickLoop proposes a Tick on the leader whenever a billing cycle has
// ended, so renewals and cancellations show up without waiting for the
// account's next request (S5); a Tick also starts the retry clock in state
// written before it existed. It also raises the request-log format once
// every member reads a newer one (format.go). It returns when ctx is done.
func (r *Replica) TickLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var formatChecked time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !r.store.IsLeader() {
				continue
			}
			if l := r.store.Ledger(); l.NextDue(r.Now()) || !l.RetryClockStarted() {
				if _, err := ledger.Propose(r, &ledger.Tick{}); err != nil {
					r.log.Warn().Err(err).Msg("tick")
				}
			}
			if time.Since(formatChecked) >= formatCheckEvery {
				formatChecked = time.Now()
				r.raiseLogFormat()
			}
		}
	}
}

// View describes the raft configuration with each member's addresses
// (GET /admin/v1/cluster).
type View struct {
	LeaderID string       `json:"leader_id"`
	Nodes    []MemberView `json:"nodes"`
	// LogFormat is how the cluster logs charges (ledger.SetLogFormat):
	// below this build's own until every member runs a build that reads it.
	LogFormat int `json:"log_format"`
}

// MemberView is one member in View.
type MemberView struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft_addr"`
	AdminAddr string `json:"admin_addr"`
	State     string `json:"state"`
}

// adminAddrs maps each member's id to its admin address, from the
// replicated member records.
func (r *Replica) adminAddrs() map[string]string {
	admins := map[string]string{}
	for _, m := range r.store.Ledger().Members() {
		admins[m.ID] = m.AdminAddr
	}
	return admins
}

// Cluster describes the raft configuration with each member's addresses.
func (r *Replica) Cluster() (View, error) {
	leader, servers, err := r.store.Servers()
	if err != nil {
		return View{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	admins := r.adminAddrs()
	out := View{LeaderID: leader, Nodes: []MemberView{}, LogFormat: r.store.Ledger().LogFormat()}
	for _, s := range servers {
		state := "follower"
		switch {
		case string(s.ID) == r.ID():
			state = r.store.State()
		case string(s.ID) == leader:
			state = "leader"
		}
		out.Nodes = append(out.Nodes, MemberView{ID: string(s.ID), RaftAddr: string(s.Address), AdminAddr: admins[string(s.ID)], State: state})
	}
	return out, nil
}

// AddNode adds a voter and records its admin address; a follower asks the
// leader.
func (r *Replica) AddNode(id, raftAddr, adminAddr string) error {
	if !config.ValidNodeID(id) {
		return fmt.Errorf("%w: node id %q must be 1-64 of [A-Za-z0-9._-]", ledger.ErrInvalid, id)
	}
	for _, a := range [...]struct{ name, addr string }{{"raft_addr", raftAddr}, {"admin_addr", adminAddr}} {
		if config.WildcardHost(a.addr) {
			return fmt.Errorf("%w: %s %q is not an address peers can dial (set node.advertise_raft / node.advertise_admin on a node listening on every interface)", ledger.ErrInvalid, a.name, a.addr)
		}
	}
	if !r.store.IsLeader() {
		if r.opts.Mode != Clustered {
			return fmt.Errorf("%w: membership changes go to the leader", ErrUnavailable)
		}
		// An operator's add names another node, whose build it cannot
		// vouch for: unchecked, as on the leader; a node's own join
		// request (joinLoop) says what its build reads.
		return r.join(joinRequest{Member: ledger.Member{ID: id, RaftAddr: raftAddr, AdminAddr: adminAddr}, LogFormat: ledger.LogFormatCurrent})
	}
	if err := r.refreshOwnMember(); err != nil {
		return err
	}
	if err := r.store.AddVoter(id, raftAddr, r.opts.ProposeTimeout); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	_, err := ledger.Propose(r, &ledger.SetMember{Member: ledger.Member{ID: id, RaftAddr: raftAddr, AdminAddr: adminAddr}})
	return err
}

// refreshOwnMember makes the leader's member record name the addresses it
// runs with, at start and before a node joins: followers read it to reach
// the leader. A cluster restored from a backup starts with the record of
// the node the backup came from (zenmuxd restore keeps the state as it
// was), and an operator may have moved a node; otherwise the record is
// already right and nothing is written.
func (r *Replica) refreshOwnMember() error {
	me := ledger.Member{ID: r.ID(), RaftAddr: r.opts.RaftAddr, AdminAddr: r.opts.AdminAddr}
	for _, m := range r.store.Ledger().Members() {
		if m == me {
			return nil
		}
	}
	_, err := ledger.Propose(r, &ledger.SetMember{Member: me})
	return err
}

// OpenBackup pins a copy of the state for GET /admin/v1/backup after a
// read barrier, so it holds every write acknowledged before the call, on
// a follower as on the leader.
func (r *Replica) OpenBackup() (*raftfsm.Backup, error) {
	if err := r.ReadBarrier(); err != nil {
		return nil, err
	}
	return r.store.OpenBackup()
}

// RemoveNode removes a member; a follower asks the leader.
func (r *Replica) RemoveNode(id string) error {
	if !r.store.IsLeader() {
		if r.opts.Mode != Clustered {
			return fmt.Errorf("%w: membership changes go to the leader", ErrUnavailable)
		}
		return r.removeViaLeader(id)
	}
	_, servers, err := r.store.Servers()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	known := false
	for _, sv := range servers {
		known = known || string(sv.ID) == id
	}
	for _, m := range r.store.Ledger().Members() {
		known = known || m.ID == id
	}
	if !known {
		return fmt.Errorf("%w: node %q", ledger.ErrNotFound, id)
	}
	// Raft membership first: a voter whose address record is missing must
	// still be removable.
	if err := r.store.RemoveServer(id, r.opts.ProposeTimeout); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if _, err := ledger.Propose(r, &ledger.RemoveMember{ID: id}); err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return err
	}
	_, err = ledger.Propose(r, &ledger.ResetNode{Node: id}) // its quota allowances go back to the pool
	return err
}
