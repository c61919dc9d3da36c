package responses

import (
	"unsafe"

	"github.com/valyala/fastjson"
)

// peek views a string member without copying it, for comparing only: the
// view dies with the parser's next Parse. Absent or not a string: "".
func peek(v *fastjson.Value) string {
	if v == nil || v.Type() != fastjson.TypeString {
		return ""
	}
	b, _ := v.StringBytes()
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// marshal is v's JSON text in a buffer of its own, viewed as a string.
func marshal(v *fastjson.Value) string {
	b := v.MarshalTo(make([]byte, 0, 512))
	return unsafe.String(unsafe.SliceData(b), len(b))
}
