package anthropic

import (
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// errorTypes are the API's error types by neutral kind.
var errorTypes = [...]string{
	translate.ErrInvalidRequest: "invalid_request_error",
	translate.ErrAuthentication: "authentication_error",
	translate.ErrPermission:     "permission_error",
	translate.ErrNotFound:       "not_found_error",
	translate.ErrTooLarge:       "request_too_large",
	translate.ErrRateLimit:      "rate_limit_error",
	translate.ErrServer:         "api_error",
	translate.ErrOverloaded:     "overloaded_error",
}

// kindOfType is the neutral kind of an API error type; the SDK's types
// without a kind of their own (billing, timeout, conflict) keep their word
// in Error.Code.
func kindOfType(t string) (translate.ErrorKind, bool) {
	switch t {
	case "billing_error":
		return translate.ErrPermission, false
	case "timeout_error":
		return translate.ErrServer, false
	case "conflict_error":
		return translate.ErrInvalidRequest, false
	}
	for k, w := range errorTypes {
		if w != "" && w == t {
			return translate.ErrorKind(k), true
		}
	}
	return 0, false
}

// DecodeError reads an anthropic-kind upstream's error answer. A body that
// is not the API's error JSON (a proxy's HTML page) gives the status's own
// words, and its text only when it is short plain text.
func (codec) DecodeError(status int, body []byte) *translate.Error {
	p := parsers.Get()
	defer parsers.Put(p)
	if v, err := p.ParseBytes(body); err == nil && v.Type() == fastjson.TypeObject {
		if e := v.Get("error"); e != nil && e.Type() == fastjson.TypeObject {
			return decodeError(status, v)
		}
	}
	e := &translate.Error{Status: status, Kind: translate.KindOfStatus(status)}
	e.Message = "upstream answered HTTP " + strconv.Itoa(status)
	if t := http.StatusText(status); t != "" {
		e.Message += " " + t
	}
	if b := trimSpace(body); len(b) > 0 && len(b) <= 200 && b[0] != '<' && utf8.Valid(b) {
		e.Message += ": " + string(b)
	}
	return e
}

// decodeError reads {"type":"error","error":{"type","message"}}.
func decodeError(status int, v *fastjson.Value) *translate.Error {
	t := string(v.GetStringBytes("error", "type"))
	e := &translate.Error{Status: status, Message: string(v.GetStringBytes("error", "message"))}
	kind, exact := kindOfType(t)
	if kind == 0 {
		kind = translate.KindOfStatus(status)
	}
	e.Kind = kind
	if !exact {
		e.Code = t
	}
	if e.Message == "" {
		e.Message = t
	}
	return e
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// EncodeError writes an error body a Claude client reads.
func (codec) EncodeError(dst []byte, e *translate.Error) []byte {
	dst = append(dst, `{"type":"error","error":{"type":`...)
	dst = translate.AppendString(dst, errorType(e))
	dst = append(dst, `,"message":`...)
	dst = translate.AppendString(dst, e.Message)
	return append(dst, "}}"...)
}

// errorType is the API's word for e: its own when it came from an
// Anthropic upstream, else by kind (or by status when the kind is unset).
func errorType(e *translate.Error) string {
	switch e.Code {
	case "billing_error", "timeout_error", "conflict_error":
		return e.Code
	}
	k := e.Kind
	if k == 0 {
		k = translate.KindOfStatus(e.Status)
	}
	if int(k) < len(errorTypes) && errorTypes[k] != "" {
		return errorTypes[k]
	}
	return "api_error"
}
