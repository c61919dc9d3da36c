package selfservice

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/valyala/fasthttp"

	"zenmux/internal/apierr"
	"zenmux/internal/strictjson"
	"zenmux/ledger"
)

// The self-service API's own refusals, next to the ledger's rejections
// and the store's unavailable errors that apierr maps.
var (
	errUnauthorized = errors.New("unauthorized")
	errCredentials  = errors.New("invalid_credentials")
	errCSRF         = errors.New("csrf_failed")
	errTooMany      = errors.New("too_many_attempts")
	errUnavailable  = errors.New("unavailable")
	errMethod       = errors.New("method_not_allowed")
	errRoute        = errors.New("route_not_found")
	errTooLarge     = errors.New("request_too_large")
)

// statusOf maps errors to HTTP statuses and codes: the API's own kinds,
// then apierr's shared mapping.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, errUnauthorized):
		return fasthttp.StatusUnauthorized, "unauthorized"
	case errors.Is(err, errCredentials):
		return fasthttp.StatusUnauthorized, "invalid_credentials"
	case errors.Is(err, errCSRF):
		return fasthttp.StatusForbidden, "csrf_failed"
	case errors.Is(err, errTooMany):
		return fasthttp.StatusTooManyRequests, "too_many_attempts"
	case errors.Is(err, errMethod):
		return fasthttp.StatusMethodNotAllowed, "method_not_allowed"
	case errors.Is(err, errRoute):
		return fasthttp.StatusNotFound, "not_found"
	case errors.Is(err, errTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, "request_too_large"
	case errors.Is(err, errUnavailable):
		return fasthttp.StatusServiceUnavailable, "unavailable"
	case errors.Is(err, ErrNoCardPayments):
		return fasthttp.StatusConflict, "payments_not_configured"
	}
	return apierr.Status(err)
}

// notNow is a store error that stops a read (a read barrier) as
// unavailable: as it is when it says so itself, else wrapped.
func notNow(err error) error {
	if apierr.Unavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %v", errUnavailable, err)
}

// writeError answers err in the API's error shape with the status its kind
// maps to.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	status, code := statusOf(err)
	apierr.Write(ctx, status, code, err)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

// decodeBody parses the body strictly (strictjson: unknown fields at
// every depth, trailing data and wrong types refused; an empty body counts
// as {}), and refuses a body over maxBody.
func decodeBody(ctx *fasthttp.RequestCtx, dst any) error {
	body := ctx.PostBody()
	if len(body) > maxBody {
		return fmt.Errorf("%w: the body is over %d bytes", errTooLarge, maxBody)
	}
	return strictjson.Decode(body, dst)
}

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

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
