package chat

import (
	"net/http"
	"strconv"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// DecodeError reads an upstream's error answer: OpenAI's
// {"error":{"message","type","param","code"}}, the variants of
// OpenAI-compatible vendors ({"error":"text"}, vLLM's top-level message,
// a one-element array), or anything else, an HTML page included.
func (codec) DecodeError(status int, body []byte) *translate.Error {
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return &translate.Error{Status: status, Kind: translate.KindOfStatus(status), Message: statusMessage(status)}
	}
	return errorOf(status, v)
}

func statusMessage(status int) string {
	if t := http.StatusText(status); t != "" {
		return "the upstream answered " + strconv.Itoa(status) + " " + t
	}
	return "the upstream answered " + strconv.Itoa(status)
}

// errorOf reads an error object. With no HTTP status (an error inside a
// stream or a 200 answer) the status follows the error's type or code.
func errorOf(status int, v *fastjson.Value) *translate.Error {
	if v.Type() == fastjson.TypeArray {
		if a := v.GetArray(); len(a) > 0 {
			return errorOf(status, a[0])
		}
	}
	e := &translate.Error{Status: status}
	ev := v.Get("error")
	switch {
	case ev != nil && ev.Type() == fastjson.TypeObject:
	case ev != nil && ev.Type() == fastjson.TypeString:
		e.Message = string(ev.GetStringBytes())
		ev = nil
	default:
		ev = v
	}
	var typ string
	if ev != nil {
		e.Message = string(ev.GetStringBytes("message"))
		e.Param = string(ev.GetStringBytes("param"))
		typ = string(ev.GetStringBytes("type"))
		if c := ev.Get("code"); c != nil {
			switch c.Type() {
			case fastjson.TypeString:
				e.Code = string(c.GetStringBytes())
			case fastjson.TypeNumber:
				e.Code = string(c.MarshalTo(nil))
			}
		}
	}
	if e.Status < 400 || e.Status > 599 {
		e.Status = statusOfType(typ, e.Code)
	}
	e.Kind = translate.KindOfStatus(e.Status)
	if e.Message == "" {
		e.Message = statusMessage(e.Status)
	}
	return e
}

// statusOfType is the status an error of this type or code travels with.
func statusOfType(typ, code string) int {
	if n, err := strconv.Atoi(code); err == nil && n >= 400 && n <= 599 {
		return n
	}
	switch typ {
	case "invalid_request_error":
		return 400
	case "authentication_error":
		return 401
	case "permission_error":
		return 403
	case "not_found_error":
		return 404
	case "request_too_large":
		return 413
	case "rate_limit_error", "requests", "tokens", "insufficient_quota":
		return 429
	case "overloaded_error":
		return 503
	}
	return 500
}

// EncodeError writes an error body as OpenAI does. The type follows the
// kind as the gateway's own errors name it (docs/api.md): OpenAI itself
// sends invalid_request_error for a 404 and a 413, requests (or tokens)
// for a rate limit, insufficient_quota for an exhausted quota.
func (codec) EncodeError(dst []byte, e *translate.Error) []byte {
	kind := e.Kind
	if kind == 0 {
		kind = translate.KindOfStatus(e.Status)
	}
	typ, code := "invalid_request_error", e.Code
	switch kind {
	case translate.ErrAuthentication:
		typ = "authentication_error"
	case translate.ErrPermission:
		typ = "permission_error"
	case translate.ErrRateLimit:
		switch code {
		case "insufficient_quota", "quota_exceeded", "insufficient_balance":
			typ = "insufficient_quota"
		case "":
			typ, code = "requests", "rate_limit_exceeded"
		default:
			typ = "requests"
		}
	case translate.ErrServer:
		typ = "server_error"
	case translate.ErrOverloaded:
		typ = "server_error"
		if code == "" {
			code = "overloaded"
		}
	}
	b := append(dst, `{"error":{"message":`...)
	b = translate.AppendString(b, e.Message)
	b = append(b, `,"type":"`...)
	b = append(b, typ...)
	b = append(b, `","param":`...)
	b = appendOrNull(b, e.Param)
	b = append(b, `,"code":`...)
	b = appendOrNull(b, code)
	return append(b, "}}"...)
}

func appendOrNull(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return translate.AppendString(b, s)
}
