package cluster

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// unavailable is the kind of every error that means "not now": no leader,
// a leader that cannot be reached or stopped answering, a commit that timed
// out. Callers may retry (money calls with the same Idempotency-Key). It
// says so through its Unavailable method, so the admin API and the proxy
// map it to 503 without importing this package (which would pull Raft and
// Pebble into them).
type unavailable struct{ msg string }

func (e *unavailable) Error() string { return e.msg }

// Unavailable marks the error as temporary.
func (e *unavailable) Unavailable() bool { return true }

var (
	// ErrUnavailable is a write or read this node cannot carry out now.
	ErrUnavailable error = &unavailable{"unavailable"}
	// ErrNoLeader is a call that found no leader to go to; nothing was
	// sent, so any command may be sent again.
	ErrNoLeader = fmt.Errorf("%w: no raft leader", ErrUnavailable)
	// errLeaderChanged is a forwarded call abandoned because this node
	// learnt of another leader (or of none) while it waited: the old
	// leader may be frozen or cut off. The outcome is unknown.
	errLeaderChanged = fmt.Errorf("%w: the leader changed during the call", ErrUnavailable)
)

// IsUnavailable reports whether err means "not now, retry".
func IsUnavailable(err error) bool {
	var u interface{ Unavailable() bool }
	return errors.As(err, &u) && u.Unavailable()
}

// writeError answers a peer in the admin API's error shape:
// {"error":{"code":…,"message":…}} with the status of its code.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	status, code := fasthttp.StatusInternalServerError, "internal_error"
	switch {
	case IsUnavailable(err):
		status, code = fasthttp.StatusServiceUnavailable, "unavailable"
	case errors.Is(err, errWrongSecret):
		status, code = fasthttp.StatusForbidden, "cluster_secret_mismatch"
	case errors.Is(err, ledger.ErrInvalid), errors.Is(err, ledger.ErrBadCommand), errors.Is(err, ledger.ErrTooLarge):
		status, code = fasthttp.StatusBadRequest, "invalid_request"
	case errors.Is(err, ledger.ErrNotFound):
		status, code = fasthttp.StatusNotFound, "not_found"
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, err.Error()
	b, _ := json.Marshal(body)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}
