// Package apierr is the error answer the admin API and the node-to-node
// API (/internal/v1) share: {"error":{"code":…,"message":…}} with the
// status of its code, and the one mapping from the ledger's rejections and
// "not now" errors to those statuses. Each API adds only its own kinds.
package apierr

import (
	"encoding/json"
	"errors"

	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// Unavailable reports an error that says of itself, through an
// Unavailable() true method anywhere in its chain, that it means "not now,
// retry": no leader, a leader that stopped answering, a commit that timed
// out. Callers map it without importing the package that made it (the
// cluster's errors would pull Raft and Pebble into the admin API).
func Unavailable(err error) bool {
	var u interface{ Unavailable() bool }
	return errors.As(err, &u) && u.Unavailable()
}

// Status maps an error to its HTTP status and code: the ledger's
// rejections, then unavailable errors; anything else is 500
// internal_error.
func Status(err error) (int, string) {
	switch {
	case errors.Is(err, ledger.ErrInvalid), errors.Is(err, ledger.ErrBadCommand), errors.Is(err, ledger.ErrTooLarge):
		return fasthttp.StatusBadRequest, "invalid_request"
	case errors.Is(err, ledger.ErrNotFound):
		return fasthttp.StatusNotFound, "not_found"
	case errors.Is(err, ledger.ErrIdempotencyConflict):
		return fasthttp.StatusConflict, "idempotency_key_reused"
	case errors.Is(err, ledger.ErrNotEligible):
		return fasthttp.StatusConflict, "refund_not_eligible"
	case errors.Is(err, ledger.ErrConflict):
		return fasthttp.StatusConflict, "conflict"
	case Unavailable(err):
		return fasthttp.StatusServiceUnavailable, "unavailable"
	}
	return fasthttp.StatusInternalServerError, "internal_error"
}

// Write answers err with status and code. A 500 says only "internal
// error": its cause is for the log, not the caller.
func Write(ctx *fasthttp.RequestCtx, status int, code string, err error) {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, err.Error()
	if status == fasthttp.StatusInternalServerError {
		body.Error.Message = "internal error"
	}
	b, _ := json.Marshal(body)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}
