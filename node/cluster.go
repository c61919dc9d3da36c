package node

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"zenmux/admin"
	"zenmux/ledger"
)

// Node-to-node calls go over the admin listener under /internal/v1/,
// authenticated by a token derived from the cluster secret (never the
// secret itself): apply (a follower's write, forwarded to the leader),
// readindex (the leader's applied index, for linearizable follower reads),
// join (a new node asking to become a voter) and statehash (tests compare
// replicas). With cluster TLS the caller must also present a certificate of
// the cluster CA. Without a secret there is no cluster and these are 404.

const clusterHeader = "X-Zenmux-Cluster"

// loadSecret reads the cluster secret file ("" → no cluster secret).
func loadSecret(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	s := strings.TrimSpace(string(raw))
	if len(s) < 16 {
		return nil, fmt.Errorf("cluster secret in %s is shorter than 16 characters", path)
	}
	return []byte(s), nil
}

// clusterToken is what nodes present to each other's internal endpoints.
func clusterToken(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("zenmux internal v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// errNoLeader is a write or read that found no leader to go to; callers
// see it as 503 and retry.
var errNoLeader = fmt.Errorf("%w: no raft leader", admin.ErrUnavailable)

// leaderAdmin returns the leader's admin address, from the replicated
// member records.
func (n *Node) leaderAdmin() (string, bool) {
	id := n.store.Leader()
	if id == "" {
		return "", false
	}
	for _, m := range n.store.Ledger().Members() {
		if m.ID == id {
			return m.AdminAddr, true
		}
	}
	return "", false
}

// call makes one internal request to another node.
func (n *Node) call(addr, method, path string, body []byte) (int, []byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(n.peerURL(addr, path))
	req.Header.SetMethod(method)
	req.Header.Set(clusterHeader, n.token)
	req.Header.SetContentType("application/octet-stream")
	req.SetBody(body)
	if err := n.peers.DoTimeout(req, resp, proposeTimeout); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), nil
}

// applyAnswer is the leader's answer to a forwarded write.
type applyAnswer struct {
	Index   uint64          `json:"index"`
	Value   json.RawMessage `json:"value"`
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
}

// forward sends an encoded command to the leader. errNotLeader-like
// failures (the peer lost leadership, the connection broke) leave the
// outcome unknown: the caller retries the same bytes, which the ledger
// applies at most once.
func (n *Node) forward(cmd ledger.Command, data []byte) (ledger.Result, error) {
	addr, ok := n.leaderAdmin()
	if !ok || n.token == "" {
		return ledger.Result{}, errNoLeader
	}
	status, body, err := n.call(addr, "POST", "/internal/v1/apply", data)
	if err != nil {
		return ledger.Result{}, fmt.Errorf("%w: forward to the leader: %v", admin.ErrUnavailable, err)
	}
	if status != fasthttp.StatusOK {
		return ledger.Result{}, fmt.Errorf("%w: the leader answered %d: %s", admin.ErrUnavailable, status, body)
	}
	var a applyAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return ledger.Result{}, fmt.Errorf("%w: bad answer from the leader: %v", admin.ErrUnavailable, err)
	}
	// Read your own writes on this node too: a key created through a
	// follower works on that follower's proxy as soon as the call returns.
	// Charges and leases skip the wait: their results come back in the
	// answer, and a follower learns the commit only with the leader's next
	// message, which would add milliseconds to every quorum response.
	if ledger.WaitsLocalApply(cmd) {
		if err := n.store.WaitApplied(a.Index, proposeTimeout); err != nil {
			n.log.Warn().Err(err).Msg("forwarded write committed; local apply is late")
		}
	}
	if a.Code != "" {
		if e := ledger.ErrorFromCode(a.Code, a.Message); e != nil {
			return ledger.Rejected(e), nil
		}
		return ledger.Rejected(errors.New(a.Message)), nil
	}
	r, err := ledger.DecodeAnswer(cmd, a.Value)
	if err != nil {
		return ledger.Result{}, fmt.Errorf("%w: the leader's answer: %v", admin.ErrUnavailable, err)
	}
	return r, nil
}

// internal serves /internal/v1/* on the admin listener.
func (n *Node) internal(ctx *fasthttp.RequestCtx) {
	got := ctx.Request.Header.Peek(clusterHeader)
	// With cluster TLS a peer also shows a certificate of the cluster CA
	// (the admin listener asks for one and verifies any given; admin
	// clients such as curl need none).
	peerCert := n.peers.TLSConfig == nil
	if cs := ctx.TLSConnectionState(); cs != nil && len(cs.VerifiedChains) > 0 {
		peerCert = true
	}
	if n.token == "" || !peerCert || subtle.ConstantTimeCompare(got, []byte(n.token)) != 1 {
		admin.WriteError(ctx, errInternalRoute)
		return
	}
	ctx.SetContentType("application/json")
	switch string(ctx.Path()) {
	case "/internal/v1/apply":
		n.internalApply(ctx)
	case "/internal/v1/readindex":
		if err := n.store.VerifyLeader(proposeTimeout); err != nil {
			admin.WriteError(ctx, fmt.Errorf("%w: not the leader: %v", admin.ErrUnavailable, err))
			return
		}
		fmt.Fprintf(ctx, `{"index":%d}`, n.store.AppliedIndex())
	case "/internal/v1/join":
		var m ledger.Member
		if err := json.Unmarshal(ctx.PostBody(), &m); err != nil {
			admin.WriteError(ctx, fmt.Errorf("%w: the body must be a member object: %v", ledger.ErrInvalid, err))
			return
		}
		if err := n.join(m); err != nil {
			if !errors.Is(err, ledger.ErrInvalid) {
				err = fmt.Errorf("%w: %v", admin.ErrUnavailable, err)
			}
			admin.WriteError(ctx, err)
			return
		}
		ctx.SetBodyString(`{"ok":true}`)
	case "/internal/v1/remove":
		if err := n.RemoveNode(string(ctx.QueryArgs().Peek("id"))); err != nil {
			if !errors.Is(err, ledger.ErrNotFound) {
				err = fmt.Errorf("%w: %v", admin.ErrUnavailable, err)
			}
			admin.WriteError(ctx, err)
			return
		}
		ctx.SetBodyString(`{"ok":true}`)
	case "/internal/v1/statehash":
		h, idx, err := n.store.StateHash()
		if err != nil {
			n.log.Error().Err(err).Msg("state hash")
			admin.WriteError(ctx, err)
			return
		}
		fmt.Fprintf(ctx, `{"hash":"%x","applied_index":%d}`, h, idx)
	default:
		admin.WriteError(ctx, errInternalRoute)
	}
}

// errInternalRoute answers a node-to-node path that does not exist, and a
// caller without the cluster's token (or certificate), alike.
var errInternalRoute = fmt.Errorf("%w: not found", ledger.ErrNotFound)

// internalApply commits a follower's encoded command on this node, which
// must be the leader.
func (n *Node) internalApply(ctx *fasthttp.RequestCtx) {
	resp, index, err := n.store.ProposeEncoded(ctx.PostBody(), proposeTimeout)
	if err != nil {
		kind := admin.ErrUnavailable
		if errors.Is(err, ledger.ErrBadCommand) || errors.Is(err, ledger.ErrTooLarge) {
			kind = ledger.ErrInvalid
		}
		admin.WriteError(ctx, fmt.Errorf("%w: %v", kind, err))
		return
	}
	r, _ := resp.(ledger.Result)
	a := applyAnswer{Index: index, Value: json.RawMessage("null")}
	if r.Err != nil {
		a.Code, a.Message = ledger.ErrorCode(r.Err), r.Err.Error()
	} else {
		b, err := r.EncodeAnswer()
		if err != nil {
			admin.WriteError(ctx, err)
			return
		}
		a.Value = b
	}
	b, _ := json.Marshal(a)
	ctx.SetBody(b)
}

// join adds a node as a voter: on the leader directly, from a follower by
// asking the leader.
func (n *Node) join(m ledger.Member) error {
	if n.store.IsLeader() {
		return n.AddNode(m.ID, m.RaftAddr, m.AdminAddr)
	}
	addr, ok := n.leaderAdmin()
	if !ok {
		return errNoLeader
	}
	body, _ := json.Marshal(m)
	status, answer, err := n.call(addr, "POST", "/internal/v1/join", body)
	if err != nil {
		return err
	}
	switch status {
	case fasthttp.StatusOK:
		return nil
	case fasthttp.StatusBadRequest: // the leader refused the member (AddNode)
		return fmt.Errorf("%w: the leader refused: %s", ledger.ErrInvalid, answer)
	}
	return fmt.Errorf("the leader answered %d: %s", status, answer)
}

// removeViaLeader asks the leader to remove a member.
func (n *Node) removeViaLeader(id string) error {
	addr, ok := n.leaderAdmin()
	if !ok {
		return errNoLeader
	}
	status, body, err := n.call(addr, "POST", "/internal/v1/remove?id="+url.QueryEscape(id), nil)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %v", admin.ErrUnavailable, err)
	case status == fasthttp.StatusNotFound:
		return fmt.Errorf("%w: node %q", ledger.ErrNotFound, id)
	case status != fasthttp.StatusOK:
		return fmt.Errorf("%w: the leader answered %d: %s", admin.ErrUnavailable, status, body)
	}
	return nil
}

// joinLoop asks the configured members to add this node until one does
// (API.md: "A node with cluster.join joins by itself at start, retrying
// until a member accepts it").
func (n *Node) joinLoop(ctx context.Context) error {
	me, _ := json.Marshal(ledger.Member{ID: n.cfg.Node.ID, RaftAddr: n.cfg.Node.RaftAddr(), AdminAddr: n.cfg.Node.AdminAddr()})
	for attempt := 0; ; attempt++ {
		for _, addr := range n.cfg.Cluster.Join {
			status, body, err := n.call(addr, "POST", "/internal/v1/join", me)
			if err == nil && status == fasthttp.StatusOK {
				n.log.Info().Str("via", addr).Msg("joined the cluster")
				return nil
			}
			if attempt%10 == 0 {
				n.log.Warn().Str("via", addr).Int("status", status).Bytes("answer", body).AnErr("err", err).Msg("join not accepted yet")
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// refresh is the proxy's catch-up before refusing an unknown key: a
// follower's read barrier; nothing on a leader or a single node.
func (n *Node) refresh() error {
	if n.token == "" || n.store.IsLeader() {
		return errors.New("nothing to refresh")
	}
	return n.followerReadBarrier()
}

// followerReadBarrier makes a follower's reads linearizable: it asks the
// leader for its applied index (after the leader's own barrier) and waits
// until this node has applied as much. Concurrent callers share one
// (barriers).
func (n *Node) followerReadBarrier() error { return n.barriers.do(n.readIndex) }

func (n *Node) readIndex() error {
	addr, ok := n.leaderAdmin()
	if !ok || n.token == "" {
		return errNoLeader
	}
	status, body, err := n.call(addr, "GET", "/internal/v1/readindex", nil)
	if err != nil || status != fasthttp.StatusOK {
		return fmt.Errorf("%w: read index from the leader: %d %v", admin.ErrUnavailable, status, err)
	}
	var ri struct {
		Index uint64 `json:"index"`
	}
	if err := json.Unmarshal(body, &ri); err != nil {
		return err
	}
	if err := n.store.WaitApplied(ri.Index, proposeTimeout); err != nil {
		return fmt.Errorf("%w: %v", admin.ErrUnavailable, err)
	}
	return nil
}

// Lease takes requests from a replicated rate bucket (proxy.Lessor).
func (n *Node) Lease(bucket string, want, rpm, burst int64) (ledger.LeaseResult, error) {
	return ledger.Propose(n, &ledger.LeaseTokens{Bucket: bucket, Want: want, RPM: rpm, Burst: burst})
}

// Return gives back leased requests (proxy.Lessor).
func (n *Node) Return(bucket string, count, rpm int64) error {
	_, err := ledger.Propose(n, &ledger.ReturnTokens{Bucket: bucket, N: count, RPM: rpm})
	return err
}

// clusterSize is the number of voters, for lease sizing.
func (n *Node) clusterSize() int {
	_, servers, err := n.store.Servers()
	if err != nil || len(servers) == 0 {
		return 1
	}
	return len(servers)
}

// LeaseFlows leases quota allowance for this node (proxy.FlowLessor).
func (n *Node) LeaseFlows(acct string, microFlows int64) (ledger.FlowLease, error) {
	return ledger.Propose(n, &ledger.LeaseFlows{AccountID: acct, Node: n.cfg.Node.ID, MicroFlows: microFlows})
}

// ReturnFlows gives back unspent allowance (proxy.FlowLessor).
func (n *Node) ReturnFlows(acct string, microFlows int64) error {
	_, err := ledger.Propose(n, &ledger.ReturnFlows{AccountID: acct, Node: n.cfg.Node.ID, MicroFlows: microFlows})
	return err
}
