package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"zenmux/internal/apierr"
	"zenmux/internal/mint"
	"zenmux/internal/strictjson"
	"zenmux/ledger"
)

// writeError answers err in the admin API's error shape (docs/api.md) with
// the status its kind maps to.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	status, code := apierr.Status(err)
	apierr.Write(ctx, status, code, err)
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
	key, err := apierr.IdempotencyKey(ctx)
	if err != nil {
		return ledger.Idem{}, err
	}
	if key == "" {
		key = "auto-" + mint.Hex(16)
	} else {
		key = "user-" + key
	}
	return ledger.Idem{IdemKey: key, Fingerprint: apierr.Fingerprint(ctx)}, nil
}
