package gemini

import (
	"net/http"
	"strings"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// DecodeError reads a gemini upstream's error answer, google.rpc.Status
// ({"error":{"code","message","status","details"}}, or a one-element
// array of it, as the non-SSE stream answers), or any other body.
func (codec) DecodeError(status int, body []byte) *translate.Error {
	e := &translate.Error{Status: status}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err == nil && v.Type() == fastjson.TypeArray {
		if a, _ := v.Array(); len(a) > 0 {
			v = a[0]
		}
	}
	if ev := v.Get("error"); err == nil && ev != nil && ev.Type() == fastjson.TypeObject {
		e.Message = str(ev.Get("message"))
		e.Code = str(ev.Get("status"))
		if e.Status == 0 {
			e.Status = int(count(ev.Get("code")))
		}
		for _, d := range ev.GetArray("details") {
			if fv := d.GetArray("fieldViolations"); len(fv) > 0 {
				e.Param = str(fv[0].Get("field"))
				break
			}
		}
	} else {
		e.Message = strings.TrimSpace(strings.ToValidUTF8(string(body[:min(len(body), maxErrorText)]), "\uFFFD"))
	}
	if e.Status < 400 || e.Status > 599 {
		e.Status = http.StatusBadGateway
	}
	if e.Message == "" {
		e.Message = http.StatusText(e.Status)
	}
	e.Kind = translate.KindOfStatus(e.Status)
	return e
}

// maxErrorText bounds the text kept from an error body that is not JSON
// (an HTML page from a proxy in front of the upstream).
const maxErrorText = 512

// EncodeError writes e as google.rpc.Status, with the field at fault, when
// known, as a BadRequest field violation.
func (codec) EncodeError(dst []byte, e *translate.Error) []byte {
	status := e.Status
	if status == 0 {
		status = kindStatus(e.Kind)
	}
	dst = append(dst, `{"error":{"code":`...)
	dst = translate.AppendInt(dst, int64(status))
	dst = append(dst, `,"message":`...)
	dst = translate.AppendString(dst, e.Message)
	dst = append(dst, `,"status":"`...)
	if canonical(e.Code) {
		dst = append(dst, e.Code...)
	} else {
		dst = append(dst, statusName(status)...)
	}
	dst = append(dst, '"')
	if e.Param != "" {
		dst = append(dst, `,"details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":`...)
		dst = translate.AppendString(dst, e.Param)
		dst = append(dst, `,"description":`...)
		dst = translate.AppendString(dst, e.Message)
		dst = append(dst, "}]}]"...)
	}
	return append(dst, "}}"...)
}

// canonical reports whether code is a google.rpc.Code name.
func canonical(code string) bool {
	switch code {
	case "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
		"PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
		"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED":
		return true
	}
	return false
}

// statusName is google.rpc.Code's name for an HTTP status.
func statusName(status int) string {
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
	case 503, 529:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	if status < 500 {
		return "FAILED_PRECONDITION"
	}
	return "INTERNAL"
}

// kindStatus is the HTTP status an error kind travels with.
func kindStatus(k translate.ErrorKind) int {
	switch k {
	case translate.ErrInvalidRequest:
		return 400
	case translate.ErrAuthentication:
		return 401
	case translate.ErrPermission:
		return 403
	case translate.ErrNotFound:
		return 404
	case translate.ErrTooLarge:
		return 413
	case translate.ErrRateLimit:
		return 429
	case translate.ErrOverloaded:
		return 503
	}
	return 500
}
