package admin

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"zenmux/internal/apierr"
	"zenmux/internal/strictjson"
	"zenmux/ledger"
)

// The admin API's own refusals, next to the ledger's rejections and the
// store's unavailable errors that apierr maps.
var (
	errUnauthorized = errors.New("unauthorized")
	// errUnavailable is a read barrier or cluster view that cannot be
	// had now (no leader, a timeout); the cause is wrapped in it.
	errUnavailable = errors.New("unavailable")
	errMethod      = errors.New("method_not_allowed")
	errRoute       = errors.New("route_not_found")
)

// statusOf maps errors to HTTP statuses and codes: the admin API's own
// kinds, then apierr's shared mapping.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, errUnauthorized):
		return fasthttp.StatusUnauthorized, "unauthorized"
	case errors.Is(err, errMethod):
		return fasthttp.StatusMethodNotAllowed, "method_not_allowed"
	case errors.Is(err, errRoute):
		return fasthttp.StatusNotFound, "not_found"
	case errors.Is(err, errUnavailable):
		return fasthttp.StatusServiceUnavailable, "unavailable"
	}
	return apierr.Status(err)
}

// notNow is a store error that stops a read (a read barrier, the cluster
// view) as unavailable: as it is when it says so itself, else wrapped.
func notNow(err error) error {
	if apierr.Unavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %v", errUnavailable, err)
}

// writeError answers err in the admin API's error shape (docs/api.md) with
// the status its kind maps to.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	status, code := statusOf(err)
	apierr.Write(ctx, status, code, err)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	if raw, ok := v.(json.RawMessage); ok {
		ctx.SetBody(raw)
		ctx.Write([]byte("\n"))
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		ctx.SetBodyString(`{"error":{"code":"internal_error","message":"internal error"}}`)
		return
	}
	ctx.SetBody(append(b, '\n'))
}

// decodeBody parses the body strictly (strictjson): unknown fields,
// trailing data and wrong types are refused. An empty body counts as {}.
func decodeBody(ctx *fasthttp.RequestCtx, dst any) error {
	return strictjson.Decode(ctx.PostBody(), dst)
}

// number is a JSON number kept as its exact text, so amounts never pass
// through a float. A quoted string is refused.
type number string

func (n *number) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || !(b[0] == '-' || (b[0] >= '0' && b[0] <= '9')) {
		return fmt.Errorf("must be a number")
	}
	*n = number(b)
	return nil
}

// scaled converts a required number field to an integer with the given
// decimals.
func scaled(name string, n *number, scale int, limit int64) (int64, error) {
	if n == nil {
		return 0, fmt.Errorf("%w: %s is required", ledger.ErrInvalid, name)
	}
	v, err := ledger.ParseDecimal(string(*n), scale, limit)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ledger.ErrInvalid, name, err)
	}
	return v, nil
}

// hostPort checks a node address: host:port, a host without spaces or
// slashes, a port in 1..65535. A malformed address would otherwise be
// added as a Raft voter that can never answer and cost the cluster its
// quorum.
func hostPort(name, v string) error {
	host, port, err := net.SplitHostPort(v)
	if err == nil && host != "" && len(v) <= 256 && !strings.ContainsAny(host, " \t/") {
		if p, err := strconv.Atoi(port); err == nil && p >= 1 && p <= 65535 && port[0] != '+' {
			return nil
		}
	}
	return fmt.Errorf("%w: %s must be host:port, got %q", ledger.ErrInvalid, name, v)
}

func required(name, v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("%w: %s is required", ledger.ErrInvalid, name)
	}
	return nil
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// checkToken compares the bearer token in constant time.
func checkToken(ctx *fasthttp.RequestCtx, token []byte) bool {
	h := ctx.Request.Header.Peek("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(string(h[:len(prefix)]), prefix) {
		return false
	}
	got := sha256.Sum256(h[len(prefix):])
	want := sha256.Sum256(token)
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// idempotency returns the request's Idempotency-Key (or a fresh one, so
// that even an unkeyed money call carries a unique id through retries) and
// the fingerprint of the request it guards.
func idempotency(ctx *fasthttp.RequestCtx) (ledger.Idem, error) {
	key := string(ctx.Request.Header.Peek("Idempotency-Key"))
	if key == "" {
		key = "auto-" + randomHex(16)
	} else if len(key) > 255 || strings.ContainsFunc(key, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return ledger.Idem{}, fmt.Errorf("%w: Idempotency-Key must be 1-255 printable ASCII characters", ledger.ErrInvalid)
	} else {
		key = "user-" + key
	}
	h := sha256.New()
	h.Write(ctx.Method())
	h.Write([]byte{' '})
	h.Write(ctx.Path())
	h.Write([]byte{'\n'})
	h.Write(bytes.TrimSpace(ctx.PostBody()))
	return ledger.Idem{IdemKey: key, Fingerprint: hex.EncodeToString(h.Sum(nil)[:16])}, nil
}

func queryInt(ctx *fasthttp.RequestCtx, name string, def, lo, hi int) (int, error) {
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
