package responses

import (
	"bytes"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// maxErrorText bounds how much of a body that is not an error object goes
// into the message.
const maxErrorText = 200

func (codec) DecodeError(status int, body []byte) *translate.Error {
	e := &translate.Error{Status: status, Kind: translate.KindOfStatus(status)}
	if status < 400 {
		// An error answer with a success status is still an upstream error.
		e.Status, e.Kind = 502, translate.ErrServer
	}
	p := parsers.Get()
	defer parsers.Put(p)
	if v, err := p.ParseBytes(body); err == nil && v.Type() == fastjson.TypeObject {
		ev := v.Get("error")
		if ev != nil && ev.Type() == fastjson.TypeObject {
			e.Message, _ = str(ev.Get("message"))
			e.Param, _ = str(ev.Get("param"))
			e.Code = code(ev.Get("code"))
			if e.Code == "" {
				e.Code, _ = str(ev.Get("type"))
			}
		} else if ev != nil && ev.Type() == fastjson.TypeString {
			e.Message, _ = str(ev)
		} else {
			e.Message, _ = str(v.Get("message"))
		}
	} else if t := bytes.TrimSpace(body); len(t) > 0 {
		if len(t) > maxErrorText {
			t = t[:maxErrorText]
			for len(t) > 0 && !utf8.Valid(t) {
				t = t[:len(t)-1]
			}
		}
		e.Message = "upstream answered " + strconv.Itoa(status) + ": " + string(t)
	}
	if e.Message == "" {
		e.Message = "upstream answered " + strconv.Itoa(status) + " " + http.StatusText(status)
	}
	return e
}

func (codec) EncodeError(dst []byte, e *translate.Error) []byte {
	dst = append(dst, `{"error":{"message":`...)
	dst = translate.AppendString(dst, e.Message)
	dst = append(dst, `,"type":"`...)
	dst = append(dst, errorType(e.Kind)...)
	dst = append(dst, `","param":`...)
	dst = appendOptString(dst, e.Param)
	dst = append(dst, `,"code":`...)
	c := e.Code
	if c == "" && e.Kind == translate.ErrRateLimit {
		c = "rate_limit_exceeded"
	}
	dst = appendOptString(dst, c)
	return append(dst, "}}"...)
}

// appendOptString writes s, or null when it is empty.
func appendOptString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "null"...)
	}
	return translate.AppendString(dst, s)
}

// errorType is OpenAI's error type for a kind.
func errorType(k translate.ErrorKind) string {
	switch k {
	case translate.ErrAuthentication:
		return "authentication_error"
	case translate.ErrPermission:
		return "permission_error"
	case translate.ErrRateLimit:
		return "requests"
	case translate.ErrServer, translate.ErrOverloaded:
		return "server_error"
	}
	return "invalid_request_error"
}

// errorCode is the code a stream's error event or a failed response
// carries: the error's own, else its type.
func errorCode(e *translate.Error) string {
	if e.Code != "" {
		return e.Code
	}
	if e.Kind == translate.ErrRateLimit {
		return "rate_limit_exceeded"
	}
	return errorType(e.Kind)
}
