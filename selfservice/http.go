package selfservice

import (
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"zenmux/internal/apierr"
	"zenmux/internal/strictjson"
)

// The self-service API's own refusals, next to the ledger's rejections
// and the store's unavailable errors that apierr maps.
var (
	errCredentials = errors.New("invalid_credentials")
	errCSRF        = errors.New("csrf_failed")
	errTooMany     = errors.New("too_many_attempts")
	errTooLarge    = errors.New("request_too_large")
)

// statusOf maps errors to HTTP statuses and codes: the API's own kinds,
// then apierr's shared mapping.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, errCredentials):
		return fasthttp.StatusUnauthorized, "invalid_credentials"
	case errors.Is(err, errCSRF):
		return fasthttp.StatusForbidden, "csrf_failed"
	case errors.Is(err, errTooMany):
		return fasthttp.StatusTooManyRequests, "too_many_attempts"
	case errors.Is(err, errTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, "request_too_large"
	case errors.Is(err, ErrNoCardPayments):
		return fasthttp.StatusConflict, "payments_not_configured"
	}
	return apierr.Status(err)
}

// writeError answers err in the API's error shape with the status its kind
// maps to.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	status, code := statusOf(err)
	apierr.Write(ctx, status, code, err)
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
