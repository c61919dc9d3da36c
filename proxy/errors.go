package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"zenmux/ledger"
)

// apiError is a refusal in the gateway's terms; writeAPIError renders it in
// the wire format of the path (docs/api.md, "Errors on the proxy").
type apiError struct {
	status  int
	code    string // ours: invalid_api_key, quota_exceeded, …
	message string
}

func (e *apiError) Error() string { return e.message }

func newAPIError(status int, code, msg string) *apiError {
	return &apiError{status: status, code: code, message: msg}
}

// modelUnavailable refuses a model whose provider cannot serve on this
// node (no API key, or no such provider in this node's config): 503
// model_unavailable, which names the cause, rather than a 502 that reads as
// an upstream fault. Nothing reached an upstream and nothing is charged.
func modelUnavailable(model, provider, why string) *apiError {
	if why == "" {
		why = "is not configured on this node"
	}
	return newAPIError(503, "model_unavailable", fmt.Sprintf("model %q is unavailable: its provider %q %s", model, provider, why))
}

// fromLedger maps admission errors to statuses and codes, in one place.
func fromLedger(err error) *apiError {
	var qe *ledger.QuotaError
	switch {
	case errors.As(err, &qe):
		return newAPIError(429, "quota_exceeded", qe.Error())
	case errors.Is(err, ledger.ErrInvalidAPIKey):
		return newAPIError(401, "invalid_api_key", "the API key is missing, unknown, rotated or revoked")
	case errors.Is(err, ledger.ErrModelNotFound):
		return newAPIError(404, "model_not_found", "the model is not in the catalog")
	case errors.Is(err, ledger.ErrModelNotInPlan):
		return newAPIError(403, "model_not_in_plan", "the model is not included in your plan")
	case errors.Is(err, ledger.ErrModelUnpriced): // never served free (M5); the ledger wraps the sentinel with the model id
		return newAPIError(503, "model_unavailable", fmt.Sprintf("model %s has no price on this gateway yet; the operator must set one", strings.TrimPrefix(err.Error(), ledger.ErrModelUnpriced.Error()+": ")))
	case errors.Is(err, ledger.ErrInvalid):
		return newAPIError(400, "invalid_request", err.Error())
	case errors.Is(err, ledger.ErrInsufficientBalance):
		return newAPIError(402, "insufficient_balance", "the pay-as-you-go balance is empty; top it up to continue")
	}
	return newAPIError(500, "internal_error", "internal error")
}

// anthropicType is Anthropic's error type for a status.
func anthropicType(status int) string {
	switch status {
	case 400:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 402:
		return "billing_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	}
	return "api_error"
}

// openAIType is the OpenAI error type for a code.
func openAIType(e *apiError) string {
	switch {
	case e.code == "quota_exceeded" || e.code == "insufficient_balance":
		return "insufficient_quota"
	case e.code == "rate_limit_exceeded":
		return "requests"
	case e.status == 401:
		return "authentication_error"
	case e.status == 403:
		return "permission_error"
	case e.status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// errShape is the wire format of an error body.
type errShape uint8

const (
	shapeOpenAI errShape = iota
	shapeAnthropic
	shapeGemini
)

// shapeOf is the shape of the OpenAI or Anthropic surface.
func shapeOf(anthropic bool) errShape {
	if anthropic {
		return shapeAnthropic
	}
	return shapeOpenAI
}

// writeAPIError answers in the OpenAI or Anthropic wire format.
func writeAPIError(ctx *fasthttp.RequestCtx, anthropic bool, e *apiError) {
	writeError(ctx, shapeOf(anthropic), e)
}

// geminiStatus is google.rpc.Code's name for an HTTP status.
func geminiStatus(status int) string {
	switch status {
	case 400, 413:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 402, 429:
		return "RESOURCE_EXHAUSTED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 405:
		return "UNIMPLEMENTED"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	return "INTERNAL"
}

// writeError answers in the path's wire format. 401 and 403, and an
// exhausted quota, carry x-should-retry: false: retrying cannot help and
// Claude Code otherwise retries them (W3.7). Gemini's shape is
// google.rpc.Status, with the gateway's code as an ErrorInfo reason.
func writeError(ctx *fasthttp.RequestCtx, sh errShape, e *apiError) {
	ctx.SetStatusCode(e.status)
	ctx.SetContentType("application/json")
	if e.status == 401 || e.status == 403 || e.code == "quota_exceeded" || e.code == "insufficient_balance" || e.code == "model_unavailable" {
		ctx.Response.Header.Set("x-should-retry", "false")
	}
	b := make([]byte, 0, 160+len(e.message))
	switch sh {
	case shapeGemini:
		b = append(b, `{"error":{"code":`...)
		b = strconv.AppendInt(b, int64(e.status), 10)
		b = append(b, `,"message":`...)
		b = appendJSONString(b, e.message)
		b = append(b, `,"status":"`...)
		b = append(b, geminiStatus(e.status)...)
		b = append(b, `","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"`...)
		b = append(b, e.code...)
		b = append(b, `","domain":"zenmux"}]}}`...)
	case shapeAnthropic:
		b = append(b, `{"type":"error","error":{"type":"`...)
		b = append(b, anthropicType(e.status)...)
		b = append(b, `","message":`...)
		b = appendJSONString(b, e.message)
		b = append(b, `,"code":"`...)
		b = append(b, e.code...)
		b = append(b, `"}}`...)
	default:
		b = append(b, `{"error":{"message":`...)
		b = appendJSONString(b, e.message)
		b = append(b, `,"type":"`...)
		b = append(b, openAIType(e)...)
		b = append(b, `","code":"`...)
		b = append(b, e.code...)
		b = append(b, `","param":null}}`...)
	}
	ctx.SetBody(b)
}

// TransportError answers errors fasthttp raises before the handler runs
// (a body over proxy.max_body_bytes: 413 request_too_large) in the wire
// format of the path.
func (s *Server) TransportError(ctx *fasthttp.RequestCtx, err error) {
	ctx.Response.Header.Set("x-zenmux-request-id", s.requestID())
	anthropic := bytes.Contains(ctx.Path(), []byte("messages")) || len(ctx.Request.Header.Peek("anthropic-version")) > 0
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		drain(ctx)
		writeAPIError(ctx, anthropic, newAPIError(413, "request_too_large", "the request body is over the size limit"))
		return
	}
	writeAPIError(ctx, anthropic, newAPIError(400, "invalid_request", "the request could not be parsed"))
}

// drainTotal bounds how long drain reads a refused body.
const drainTotal = 2 * time.Second

// drain reads and discards what a client is still sending of a body over
// the limit, so that it reads its 413 rather than a reset: fasthttp refuses
// such a body as soon as it sees its length and closes the connection. It
// stops after 150 ms without data (the client has sent all it will),
// 1 GiB, or 2 s in all.
func drain(ctx *fasthttp.RequestCtx) {
	c := ctx.Conn()
	if c == nil {
		return
	}
	const quiet, total, maxBytes = 150 * time.Millisecond, drainTotal, 1 << 30
	end := time.Now().Add(total)
	buf := make([]byte, 32<<10)
	for read := 0; read < maxBytes; {
		deadline := time.Now().Add(quiet)
		if deadline.After(end) {
			deadline = end
		}
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		read += n
		if err != nil {
			return
		}
	}
}
