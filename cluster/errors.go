package cluster

import (
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"zenmux/internal/apierr"
)

// unavailable is the kind of every error that means "not now": no leader,
// a leader that cannot be reached or stopped answering, a commit that timed
// out. Callers may retry (money calls with the same Idempotency-Key). It
// says so through its Unavailable method, which apierr maps to 503 for the
// admin API without it importing this package.
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
func IsUnavailable(err error) bool { return apierr.Unavailable(err) }

// writeError answers a peer in the admin API's error shape, with 403
// cluster_secret_mismatch for another cluster's token.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, errWrongSecret) {
		apierr.Write(ctx, fasthttp.StatusForbidden, "cluster_secret_mismatch", err)
		return
	}
	status, code := apierr.Status(err)
	apierr.Write(ctx, status, code, err)
}
