package cluster

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// Node-to-node calls go over the admin listener under /internal/v1/,
// authenticated by a token derived from the cluster secret (never the
// secret itself): apply (a follower's write, forwarded to the leader),
// readindex (the leader's applied index, for linearizable follower reads),
// join (a new node asking to become a voter), remove, version (what this
// build reads: format.go) and statehash (tests compare replicas). With cluster TLS the caller must also present a
// certificate of the cluster CA. Without a secret there is no cluster and
// these are 404.

const clusterHeader = "X-Zenmux-Cluster"

// clusterToken is what nodes present to each other's internal endpoints.
func clusterToken(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("zenmux internal v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// errWrongSecret answers a peer whose token is not this cluster's.
var errWrongSecret = errors.New("the caller's cluster secret differs from this node's: cluster.secret_file must hold the same secret on every node")

// errInternalRoute answers a node-to-node path that does not exist, and a
// caller without a token (or certificate), alike.
var errInternalRoute = fmt.Errorf("%w: not found", ledger.ErrNotFound)

// leader returns the leader's id and admin address, from the replicated
// member records.
func (r *Replica) leader() (id, addr string, ok bool) {
	id = r.store.Leader()
	if id == "" {
		return "", "", false
	}
	for _, m := range r.store.Ledger().Members() {
		if m.ID == id {
			return id, m.AdminAddr, true
		}
	}
	return "", "", false
}

// peerURL is the URL of path on another node's admin listener: https with
// cluster TLS.
func (r *Replica) peerURL(addr, path string) string {
	if r.peers.TLSConfig != nil {
		return "https://" + addr + path
	}
	return "http://" + addr + path
}

// call makes one internal request to another node, bounded by deadline.
func (r *Replica) call(addr, method, path string, body []byte, deadline time.Time) (int, []byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(r.peerURL(addr, path))
	req.Header.SetMethod(method)
	req.Header.Set(clusterHeader, r.token)
	req.Header.SetContentType("application/octet-stream")
	req.SetBody(body)
	if err := r.peers.DoDeadline(req, resp, deadline); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), nil
}

type reply struct {
	status int
	body   []byte
	err    error
}

// callLeader makes one internal call to the leader and gives up as soon as
// this node sees another leader, or none: a leader that is frozen or cut
// off from the others answers nothing until the call's deadline, while the
// healthy nodes elect a new one within an election timeout. Abandoned, the
// call's outcome is unknown (errLeaderChanged); the caller retries with the
// new leader. The abandoned request still ends by its deadline.
func (r *Replica) callLeader(method, path string, body []byte, deadline time.Time) (int, []byte, error) {
	changed := r.store.LeaderChanged()
	id, addr, ok := r.leader()
	if !ok || r.opts.Mode != Clustered {
		return 0, nil, ErrNoLeader
	}
	done := make(chan reply, 1)
	go func() {
		s, b, err := r.call(addr, method, path, body, deadline)
		done <- reply{s, b, err}
	}()
	select {
	case rep := <-done:
		if rep.err != nil {
			return 0, nil, fmt.Errorf("%w: call to the leader %s: %v", ErrUnavailable, id, rep.err)
		}
		return rep.status, rep.body, nil
	case <-changed:
		return 0, nil, fmt.Errorf("%w: from %s to %q", errLeaderChanged, id, r.store.Leader())
	}
}

// applyAnswer is the leader's answer to a forwarded write.
type applyAnswer struct {
	Index   uint64          `json:"index"`
	Value   json.RawMessage `json:"value"`
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
}

// forward sends an encoded command to the leader. Failures that leave the
// outcome unknown are unavailable: the caller retries the same bytes,
// which the ledger applies at most once.
func (r *Replica) forward(cmd ledger.Command, data []byte, deadline time.Time) (ledger.Result, error) {
	status, body, err := r.callLeader("POST", "/internal/v1/apply", data, deadline)
	if err != nil {
		return ledger.Result{}, err
	}
	if status != fasthttp.StatusOK {
		return ledger.Result{}, peerError(status, body)
	}
	var a applyAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return ledger.Result{}, fmt.Errorf("%w: bad answer from the leader: %v", ErrUnavailable, err)
	}
	// Read your own writes on this node too: a key created through a
	// follower works on that follower's proxy as soon as the call returns.
	if ledger.WaitsLocalApply(cmd) {
		if err := r.store.WaitApplied(a.Index, time.Until(deadline)); err != nil {
			r.log.Warn().Err(err).Msg("forwarded write committed; local apply is late")
		}
	}
	if a.Code != "" {
		if e := ledger.ErrorFromCode(a.Code, a.Message); e != nil {
			return ledger.Rejected(e), nil
		}
		return ledger.Rejected(errors.New(a.Message)), nil
	}
	return ledger.Answered(a.Value), nil
}

// readIndex asks the leader for its applied index (after the leader's own
// barrier) and waits until this node has applied as much.
func (r *Replica) readIndex() error {
	deadline := time.Now().Add(r.opts.ProposeTimeout)
	status, body, err := r.callLeader("GET", "/internal/v1/readindex", nil, deadline)
	if err != nil {
		return err
	}
	if status != fasthttp.StatusOK {
		return peerError(status, body)
	}
	var ri struct {
		Index uint64 `json:"index"`
	}
	if err := json.Unmarshal(body, &ri); err != nil {
		return fmt.Errorf("%w: read index from the leader: %v", ErrUnavailable, err)
	}
	if err := r.store.WaitApplied(ri.Index, time.Until(deadline)); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// InternalHandler serves /internal/v1/* on the admin listener.
func (r *Replica) InternalHandler(ctx *fasthttp.RequestCtx) {
	got := ctx.Request.Header.Peek(clusterHeader)
	// With cluster TLS a peer also shows a certificate of the cluster CA
	// (the admin listener asks for one and verifies any given; admin
	// clients such as curl need none).
	peerCert := r.peers.TLSConfig == nil
	if cs := ctx.TLSConnectionState(); cs != nil && len(cs.VerifiedChains) > 0 {
		peerCert = true
	}
	if r.opts.Mode != Clustered || !peerCert || len(got) == 0 {
		writeError(ctx, errInternalRoute)
		return
	}
	if subtle.ConstantTimeCompare(got, []byte(r.token)) != 1 {
		r.wrongSecretLogged.do(func() {
			r.log.Warn().Str("peer", ctx.RemoteAddr().String()).Msg("refused a peer call: its cluster secret differs from this node's (cluster.secret_file must be the same on every node)")
		})
		writeError(ctx, errWrongSecret)
		return
	}
	ctx.SetContentType("application/json")
	switch string(ctx.Path()) {
	case "/internal/v1/apply":
		r.internalApply(ctx)
	case "/internal/v1/readindex":
		if err := r.store.VerifyLeader(r.opts.ProposeTimeout); err != nil {
			writeError(ctx, fmt.Errorf("%w: not the leader: %v", ErrUnavailable, err))
			return
		}
		fmt.Fprintf(ctx, `{"index":%d}`, r.store.AppliedIndex())
	case "/internal/v1/join":
		var m joinRequest
		if err := json.Unmarshal(ctx.PostBody(), &m); err != nil {
			writeError(ctx, fmt.Errorf("%w: the body must be a member object: %v", ledger.ErrInvalid, err))
			return
		}
		if err := r.join(m); err != nil {
			if !errors.Is(err, ledger.ErrInvalid) && !IsUnavailable(err) {
				err = fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
			writeError(ctx, err)
			return
		}
		ctx.SetBodyString(`{"ok":true}`)
	case "/internal/v1/remove":
		if err := r.RemoveNode(string(ctx.QueryArgs().Peek("id"))); err != nil {
			if !errors.Is(err, ledger.ErrNotFound) && !IsUnavailable(err) {
				err = fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
			writeError(ctx, err)
			return
		}
		ctx.SetBodyString(`{"ok":true}`)
	case "/internal/v1/version":
		fmt.Fprintf(ctx, `{"log_format":%d}`, ledger.LogFormatCurrent)
	case "/internal/v1/statehash":
		h, idx, err := r.store.StateHash()
		if err != nil {
			r.log.Error().Err(err).Msg("state hash")
			writeError(ctx, err)
			return
		}
		fmt.Fprintf(ctx, `{"hash":"%x","applied_index":%d}`, h, idx)
	default:
		writeError(ctx, errInternalRoute)
	}
}

// internalApply commits a follower's encoded command on this node, which
// must be the leader.
func (r *Replica) internalApply(ctx *fasthttp.RequestCtx) {
	resp, index, err := r.store.ProposeEncoded(ctx.PostBody(), r.opts.ProposeTimeout)
	if err != nil {
		if !errors.Is(err, ledger.ErrBadCommand) && !errors.Is(err, ledger.ErrTooLarge) {
			err = fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		writeError(ctx, err)
		return
	}
	res, _ := resp.(ledger.Result)
	a := applyAnswer{Index: index, Value: json.RawMessage("null")}
	if res.Err != nil {
		// A refusal of no known kind still travels as one: an empty code
		// would read as success on the follower.
		a.Code, a.Message = cmp.Or(ledger.ErrorCode(res.Err), "internal_error"), res.Err.Error()
	} else {
		b, err := res.EncodeAnswer()
		if err != nil {
			writeError(ctx, err)
			return
		}
		a.Value = b
	}
	b, _ := json.Marshal(a)
	ctx.SetBody(b)
}

// joinRequest is what a node sends to join: its member record and the
// newest request-log format its build reads (format.go). Earlier builds
// send none: 0.
type joinRequest struct {
	ledger.Member
	LogFormat int `json:"log_format"`
}

// join adds a node as a voter: on the leader directly, from a follower by
// asking the leader. The leader refuses a node whose build cannot read the
// request-log format the cluster logs in: it would stop at, or store
// differently, the first charge batch it applies.
func (r *Replica) join(m joinRequest) error {
	if r.store.IsLeader() {
		r.formatMu.Lock()
		defer r.formatMu.Unlock()
		if f := r.store.Ledger().LogFormat(); m.LogFormat < f {
			return fmt.Errorf("%w: node %s runs a build that reads request-log format %d, and the cluster logs in %d: start it on this release's build",
				ledger.ErrInvalid, m.ID, m.LogFormat, f)
		}
		return r.AddNode(m.ID, m.RaftAddr, m.AdminAddr)
	}
	body, _ := json.Marshal(m)
	status, answer, err := r.callLeader("POST", "/internal/v1/join", body, time.Now().Add(r.opts.ProposeTimeout))
	if err != nil {
		return err
	}
	if status != fasthttp.StatusOK {
		return peerError(status, answer)
	}
	return nil
}

// removeViaLeader asks the leader to remove a member.
func (r *Replica) removeViaLeader(id string) error {
	status, body, err := r.callLeader("POST", "/internal/v1/remove?id="+url.QueryEscape(id), nil, time.Now().Add(r.opts.ProposeTimeout))
	switch {
	case err != nil:
		return err
	case status == fasthttp.StatusNotFound:
		return fmt.Errorf("%w: node %q", ledger.ErrNotFound, id)
	case status != fasthttp.StatusOK:
		return peerError(status, body)
	}
	return nil
}

// peerError is a peer's answer other than 200 as an error of its kind: a
// 400 is the ledger's refusal, rebuilt from its code so errors.Is matches
// here as on the peer, and final; a 403 is another cluster's secret, final
// too; anything else (503, a 404 for a missing token or certificate, a
// 500) leaves the outcome unknown and is unavailable, so a write is sent
// again while the propose timeout lasts.
func peerError(status int, body []byte) error {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	switch status {
	case fasthttp.StatusBadRequest:
		if err := ledger.ErrorFromCode(e.Error.Code, e.Error.Message); err != nil {
			return err
		}
	case fasthttp.StatusForbidden:
		return errWrongSecret
	}
	return fmt.Errorf("%w: the leader answered %d: %s", ErrUnavailable, status, body)
}

// joinLoop asks the configured members to add this node until one does
// (docs/api.md, "Joining"). A member that refuses this node's cluster
// secret is named as such in the log.
func (r *Replica) joinLoop(ctx context.Context) error {
	me, _ := json.Marshal(joinRequest{Member: ledger.Member{ID: r.ID(), RaftAddr: r.opts.RaftAddr, AdminAddr: r.opts.AdminAddr},
		LogFormat: ledger.LogFormatCurrent})
	for attempt := 0; ; attempt++ {
		for _, addr := range r.opts.Join {
			status, body, err := r.call(addr, "POST", "/internal/v1/join", me, time.Now().Add(r.opts.ProposeTimeout))
			if err == nil && status == fasthttp.StatusOK {
				r.log.Info().Str("via", addr).Msg("joined the cluster")
				return nil
			}
			switch {
			case err == nil && status == fasthttp.StatusForbidden:
				r.log.Error().Str("via", addr).Msg("join refused: the member's cluster secret differs from this node's (cluster.secret_file must hold the same secret on every node)")
			case attempt%10 == 0:
				r.log.Warn().Str("via", addr).Int("status", status).Bytes("answer", body).AnErr("err", err).Msg("join not accepted yet")
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// rateLimitedLog runs a logging function at most once every 10 s.
type rateLimitedLog struct {
	mu   sync.Mutex
	last time.Time
}

func (l *rateLimitedLog) do(f func()) {
	l.mu.Lock()
	due := time.Since(l.last) >= 10*time.Second
	if due {
		l.last = time.Now()
	}
	l.mu.Unlock()
	if due {
		f()
	}
}
