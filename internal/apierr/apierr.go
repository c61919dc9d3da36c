// Package apierr is what the JSON APIs (admin, self-service, and the
// node-to-node /internal/v1) share on the wire: the error answer
// {"error":{"code":…,"message":…}} with the status of its code, the one
// mapping from the ledger's rejections, the refusals every API makes and
// "not now" errors to those statuses, the success answer (a listing page
// among them, and a proposed command's), and the request parts they all
// parse alike (a query integer, an Idempotency-Key and the fingerprint of
// the request it guards). Each API adds only its own kinds.
package apierr

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// The refusals every API makes, mapped by Status.
var (
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUnavailable is a read barrier or cluster view that cannot be had
	// now (no leader, a timeout); the cause is wrapped in it.
	ErrUnavailable = errors.New("unavailable")
	ErrMethod      = errors.New("method_not_allowed")
	ErrRoute       = errors.New("route_not_found")
)

// NotNow is a store error that stops a read (a read barrier, the cluster
// view) as unavailable: as it is when it says so itself, else wrapped in
// ErrUnavailable.
func NotNow(err error) error {
	if Unavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// Unavailable reports an error that says of itself, through an
// Unavailable() true method anywhere in its chain, that it means "not now,
// retry": no leader, a leader that stopped answering, a commit that timed
// out. Callers map it without importing the package that made it (the
// cluster's errors would pull Raft and Pebble into the admin API).
func Unavailable(err error) bool {
	var u interface{ Unavailable() bool }
	return errors.As(err, &u) && u.Unavailable()
}

// Status maps an error to its HTTP status and code: the shared refusals,
// the ledger's rejections, then unavailable errors; anything else is 500
// internal_error.
func Status(err error) (int, string) {
	switch {
	case errors.Is(err, ErrUnauthorized):
		return fasthttp.StatusUnauthorized, "unauthorized"
	case errors.Is(err, ErrMethod):
		return fasthttp.StatusMethodNotAllowed, "method_not_allowed"
	case errors.Is(err, ErrRoute):
		return fasthttp.StatusNotFound, "not_found"
	case errors.Is(err, ErrUnavailable):
		return fasthttp.StatusServiceUnavailable, "unavailable"
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

// WriteJSON answers v as JSON with status; a json.RawMessage is sent as
// it is. A value that does not marshal is a 500.
func WriteJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, ok := v.(json.RawMessage)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			Write(ctx, fasthttp.StatusInternalServerError, "internal_error", err)
			return
		}
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
	ctx.Write([]byte("\n"))
}

// QueryInt reads the query parameter name as an integer in lo..hi, def
// when it is absent.
func QueryInt(ctx *fasthttp.RequestCtx, name string, def, lo, hi int) (int, error) {
	raw := ctx.QueryArgs().Peek(name)
	if len(raw) == 0 {
		return def, nil
	}
	n, err := strconv.Atoi(string(raw))
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%w: %s must be an integer in %d..%d", ledger.ErrInvalid, name, lo, hi)
	}
	return n, nil
}

// IdempotencyKey returns the request's Idempotency-Key header, "" when it
// has none, refusing one that is not 1-255 printable ASCII characters.
func IdempotencyKey(ctx *fasthttp.RequestCtx) (string, error) {
	key := string(ctx.Request.Header.Peek("Idempotency-Key"))
	if len(key) > 255 || strings.ContainsFunc(key, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return "", fmt.Errorf("%w: Idempotency-Key must be 1-255 printable ASCII characters", ledger.ErrInvalid)
	}
	return key, nil
}

// Fingerprint identifies the request an idempotency key guards: its
// method, path and trimmed body, so a key reused for another request is
// told apart (ledger.ErrIdempotencyConflict).
func Fingerprint(ctx *fasthttp.RequestCtx) string {
	h := sha256.New()
	h.Write(ctx.Method())
	h.Write([]byte{' '})
	h.Write(ctx.Path())
	h.Write([]byte{'\n'})
	h.Write(bytes.TrimSpace(ctx.PostBody()))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// List is a page of a listing: {"data":[…]}, with "next_cursor" when there
// is another page.
type List struct {
	Data       any     `json:"data"`
	NextCursor *string `json:"next_cursor,omitempty"`
}

// Page is a List whose next page starts at next ("" on the last page).
func Page(data any, next string) List {
	l := List{Data: data}
	if next != "" {
		l.NextCursor = &next
	}
	return l
}

// Propose commits cmd through p and answers its typed result with status,
// as a handler returns it.
func Propose[R any](p ledger.Proposer, cmd ledger.Cmd[R], status int) (any, int, error) {
	v, err := ledger.Propose(p, cmd)
	if err != nil {
		return nil, 0, err
	}
	return v, status, nil
}
